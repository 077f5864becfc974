using Broker.MailServers.Tests.Infrastructure;
using MailKit.Security;

namespace Broker.MailServers.Tests;

/// <summary>
/// POP3 on Debian 13's Dovecot 2.4 (dovecot-pop3d) with each of the shipped infra/dovecot-2.4/
/// passdbs, the Lua drop-in with broker.lua and the oauth2 alternative: what
/// <see cref="DovecotPop3Tests"/> proves for 2.3. 2.4 reports the service as "protocol", which the
/// script reads from the request object and the oauth2 passdb sends as X-Dovecot-Auth-Protocol.
/// </summary>
[Collection(Dovecot24ProtocolsLabDefinition.Name)]
public sealed class Dovecot24Pop3Tests(Dovecot24ProtocolsLab lab)
{
    /// <summary>Dovecot 2.4's reply to every refused POP3 login (USER/PASS and AUTH alike), as 2.3's.</summary>
    private const string Refused = "-ERR [AUTH] Authentication failed.";

    [Theory]
    [InlineData("lua", "sasl")]
    [InlineData("lua", "userpass")]
    [InlineData("oauth2", "sasl")]
    [InlineData("oauth2", "userpass")]
    public async Task Pop3Login_AppPasswordWithPop3Scope_MailboxLists(string passdb, string how)
    {
        var user = $"v24-pop3-ok-{passdb}-{how}@example.com";
        var issued = await lab.AppPasswords.IssueAsync(user, "mail client", ["pop3"], null);

        using var client = await DovecotPop3Tests.ConnectAsync(lab.Passdb(passdb).Pop3Port);
        if (how == "userpass")
        {
            // No SASL mechanisms: MailKit falls back to USER/PASS.
            client.AuthenticationMechanisms.Clear();
        }

        await client.AuthenticateAsync(user, issued.Secret);
        var sizes = await client.GetMessageSizesAsync();   // LIST
        await client.DisconnectAsync(true);

        Assert.Empty(sizes);
        // Broker saw 2.4's protocol name for POP3.
        var ap = await lab.AppPasswords.GetAsync(user, issued.AppPassword.Id);
        Assert.Equal("pop3", ap?.LastUsed?.Protocol);
    }

    [Theory]
    [InlineData("lua")]
    [InlineData("oauth2")]
    public async Task Pop3Login_ImapOnlyAppPassword_Refused(string passdb)
    {
        var user = $"v24-pop3-imaponly-{passdb}@example.com";
        var secret = await lab.IssueAsync(user, "imap,submission");
        var port = lab.Passdb(passdb).Pop3Port;

        await using (var pop3 = await RawPop3.ConnectAsync(port))
        {
            Assert.Equal(Refused, await pop3.UserPassAsync(user, secret));
            Assert.Equal(Refused, await pop3.AuthPlainAsync(user, secret));
        }

        using var client = await DovecotPop3Tests.ConnectAsync(port);
        await Assert.ThrowsAsync<AuthenticationException>(() => client.AuthenticateAsync(user, secret));
    }

    [Theory]
    [InlineData("lua")]
    [InlineData("oauth2")]
    public async Task Pop3Login_AccountOrOtherUsersPassword_RefusedThenOwnWorks(string passdb)
    {
        var user = $"v24-pop3-wrong-{passdb}@example.com";
        var secret = await lab.IssueAsync(user, "pop3");
        var other = await lab.IssueAsync($"v24-pop3-wrong-other-{passdb}@example.com", "pop3");

        await using var pop3 = await RawPop3.ConnectAsync(lab.Passdb(passdb).Pop3Port);

        // The account (portal) password, a mistyped app password, another user's valid one.
        Assert.Equal(Refused, await pop3.UserPassAsync(user, "Correct-Horse-Battery-Staple-1"));
        Assert.Equal(Refused, await pop3.AuthPlainAsync(user, MailProtocolsLab.Mistyped(secret)));
        Assert.Equal(Refused, await pop3.UserPassAsync(user, other));
        // The user's own one still works on the same connection afterwards.
        Assert.StartsWith("+OK", await pop3.AuthPlainAsync(user, secret), StringComparison.Ordinal);
        Assert.StartsWith("+OK 0 0", await pop3.CommandAsync("STAT"), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("lua", "userpass")]
    [InlineData("lua", "plain")]
    [InlineData("oauth2", "userpass")]
    [InlineData("oauth2", "plain")]
    public async Task Pop3Login_BrokerDown_TemporaryFailureNeverSuccess(string passdb, string how)
    {
        var user = $"v24-pop3-down-{passdb}-{how}@example.com";
        var secret = await lab.IssueAsync(user, "pop3");
        var down = lab.BrokerDown(passdb);
        await using var pop3 = await RawPop3.ConnectAsync(down.Pop3Port);

        var reply = how == "userpass" ? await pop3.UserPassAsync(user, secret) : await pop3.AuthPlainAsync(user, secret);

        // As 2.3: Dovecot appends "[host:time]" so the admin can find the log line.
        Assert.StartsWith("-ERR [SYS/TEMP] Temporary authentication failure.", reply, StringComparison.Ordinal);
        Assert.Contains(passdb == "lua" ? "broker: HTTP status 9003" : "Password grant failed: connect(", down.Dovecot.Log, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("lua")]
    [InlineData("oauth2")]
    public async Task Pop3Login_BrokerCannotDecide_TemporaryFailureNeverSuccess(string passdb)
    {
        var user = $"v24-pop3-redis-down-{passdb}@example.com";
        var secret = await lab.IssueAsync(user, "pop3");
        var server = lab.Passdb(passdb);

        await lab.WithRedisDownAsync(async () =>
        {
            await using var pop3 = await RawPop3.ConnectAsync(server.Pop3Port);

            Assert.StartsWith("-ERR [SYS/TEMP] Temporary authentication failure.", await pop3.UserPassAsync(user, secret), StringComparison.Ordinal);
        });

        // Broker's own 503 (see BrokerUnderTest.StoreTimeout), not a deny and not Dovecot giving up.
        Assert.Contains(Dovecot24Lab.BrokerUndecidedLogLine(passdb), Dovecot24Lab.AuthLogLines(server.Dovecot, user), StringComparison.Ordinal);
    }
}
