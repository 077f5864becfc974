using Broker.MailServers.Tests.Infrastructure;
using MailKit.Net.Pop3;
using MailKit.Security;

namespace Broker.MailServers.Tests;

/// <summary>
/// POP3 on a real Dovecot (dovecot-pop3d) with the shipped Lua passdb (infra/dovecot/conf.d/90-broker.conf
/// + broker.lua): Dovecot reports service "pop3", so only app passwords with the pop3 scope get in.
/// </summary>
[Collection(MailProtocolsLabDefinition.Name)]
public sealed class DovecotPop3Tests(MailProtocolsLab lab)
{
    /// <summary>Dovecot's reply to every refused POP3 login (USER/PASS and AUTH alike).</summary>
    private const string Refused = "-ERR [AUTH] Authentication failed.";

    [Theory]
    [InlineData("sasl")]
    [InlineData("userpass")]
    public async Task Pop3Login_AppPasswordWithPop3Scope_StatWorks(string how)
    {
        var user = $"pop3-ok-{how}@example.com";
        var secret = await lab.IssueAsync(user, "pop3");

        using var client = await ConnectAsync(lab.Pop3Port);
        if (how == "userpass")
        {
            // No SASL mechanisms: MailKit falls back to USER/PASS.
            client.AuthenticationMechanisms.Clear();
        }

        await client.AuthenticateAsync(user, secret);
        var count = await client.GetMessageCountAsync();   // STAT
        await client.DisconnectAsync(true);

        Assert.Equal(0, count);
    }

    [Fact]
    public async Task Pop3Login_ImapOnlyAppPassword_Refused()
    {
        var secret = await lab.IssueAsync("pop3-imaponly@example.com", "imap,submission");

        await using (var pop3 = await RawPop3.ConnectAsync(lab.Pop3Port))
        {
            Assert.Equal(Refused, await pop3.UserPassAsync("pop3-imaponly@example.com", secret));
            Assert.Equal(Refused, await pop3.AuthPlainAsync("pop3-imaponly@example.com", secret));
        }

        using var client = await ConnectAsync(lab.Pop3Port);
        await Assert.ThrowsAsync<AuthenticationException>(() => client.AuthenticateAsync("pop3-imaponly@example.com", secret));
    }

    [Theory]
    [InlineData("Correct-Horse-Battery-Staple-1")]   // the account (portal) password
    [InlineData("abcd-efgh-jkmn-pqrs-tuvw")]          // well-formed, never issued
    public async Task Pop3Login_AccountOrWrongPassword_Refused(string password)
    {
        var secret = await lab.IssueAsync("pop3-wrong@example.com", "pop3");
        var other = await lab.IssueAsync("pop3-wrong-other@example.com", "pop3");

        await using var pop3 = await RawPop3.ConnectAsync(lab.Pop3Port);

        Assert.Equal(Refused, await pop3.UserPassAsync("pop3-wrong@example.com", password));
        Assert.Equal(Refused, await pop3.AuthPlainAsync("pop3-wrong@example.com", password));
        // Another user's valid app password.
        Assert.Equal(Refused, await pop3.UserPassAsync("pop3-wrong@example.com", other));
        // The user's own one still works on the same connection afterwards.
        Assert.StartsWith("+OK", await pop3.UserPassAsync("pop3-wrong@example.com", secret), StringComparison.Ordinal);
        Assert.StartsWith("+OK 0 0", await pop3.CommandAsync("STAT"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Pop3Login_BrokerCannotDecide_TemporaryFailureNeverSuccess()
    {
        var secret = await lab.IssueAsync("pop3-down@example.com", "pop3");
        await lab.WithRedisDownAsync(async () =>
        {
            await using var pop3 = await RawPop3.ConnectAsync(lab.Pop3Port);

            // Dovecot appends "[host:time]" so the admin can find the log line.
            Assert.StartsWith("-ERR [SYS/TEMP] Temporary authentication failure.", await pop3.UserPassAsync("pop3-down@example.com", secret), StringComparison.Ordinal);
        });
    }

    internal static async Task<Pop3Client> ConnectAsync(int port)
    {
        var client = new Pop3Client { Timeout = 15000 };
        await client.ConnectAsync("127.0.0.1", port, SecureSocketOptions.None);
        return client;
    }
}
