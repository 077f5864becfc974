using Broker.MailServers.Tests.Infrastructure;
using MailKit.Security;
using MimeKit;

namespace Broker.MailServers.Tests;

/// <summary>
/// Dovecot 2.4's own submission service (dovecot-submissiond) with each of the shipped
/// infra/dovecot-2.4/ passdbs, the Lua drop-in and the oauth2 alternative: what
/// <see cref="DovecotSubmissionTests"/> proves for 2.3. Accepted mail goes to a real Postfix relay
/// (submission_relay_host), which delivers it over LMTP into the lab's Lua Dovecot, where the test
/// reads it with POP3.
/// </summary>
[Collection(Dovecot24ProtocolsLabDefinition.Name)]
public sealed class Dovecot24SubmissionTests(Dovecot24ProtocolsLab lab)
{
    [Theory]
    [InlineData("lua", "PLAIN")]
    [InlineData("lua", "LOGIN")]
    [InlineData("oauth2", "PLAIN")]
    [InlineData("oauth2", "LOGIN")]
    public async Task Send_WithSubmissionAppPassword_AcceptedAndDelivered(string passdb, string mechanism)
    {
        var user = $"v24-dsub-{passdb}-{mechanism.ToLowerInvariant()}@{MailProtocolsLab.Domain}";
        var issued = await lab.AppPasswords.IssueAsync(user, "phone", ["submission"], null);
        var subject = $"through Dovecot 2.4 submission ({passdb}, {mechanism})";

        using var client = await DovecotSubmissionTests.ConnectAsync(lab.Passdb(passdb).SubmissionPort);
        SaslMechanism sasl = mechanism == "PLAIN" ? new SaslMechanismPlain(user, issued.Secret) : new SaslMechanismLogin(user, issued.Secret);
        await client.AuthenticateAsync(sasl);
        var message = new MimeMessage();
        message.From.Add(MailboxAddress.Parse(user));
        message.To.Add(MailboxAddress.Parse(user));
        message.Subject = subject;
        message.Body = new TextPart("plain") { Text = "sent with an app password" };
        var reply = await client.SendAsync(message);
        await client.DisconnectAsync(true);

        // The relay's "250 2.0.0 Ok: queued as …", passed on by Dovecot.
        Assert.Contains("queued", reply, StringComparison.OrdinalIgnoreCase);
        var ap = await lab.AppPasswords.GetAsync(user, issued.AppPassword.Id);
        Assert.Equal("submission", ap?.LastUsed?.Protocol);
        // The relay really got it: it arrives in the user's mailbox, read back over POP3 with another app password.
        Assert.Equal(subject, await MailboxWaits.FirstSubjectAsync(lab.Pop3Port, user, await lab.IssueAsync(user, "pop3"), () => lab.Logs));
    }

    [Theory]
    [InlineData("lua")]
    [InlineData("oauth2")]
    public async Task Auth_WithSubmissionAppPassword_235(string passdb)
    {
        var user = $"v24-dsub-235-{passdb}@example.com";
        var secret = await lab.IssueAsync(user, "submission");
        await using var plain = await RawSmtp.ConnectAsync(lab.Passdb(passdb).SubmissionPort);
        await using var login = await RawSmtp.ConnectAsync(lab.Passdb(passdb).SubmissionPort);

        Assert.Equal("235 2.7.0 Logged in.", await plain.AuthPlainAsync(user, secret));
        Assert.Equal("235 2.7.0 Logged in.", await login.AuthLoginAsync(user, secret));
    }

    [Theory]
    [InlineData("lua", "PLAIN")]
    [InlineData("lua", "LOGIN")]
    [InlineData("oauth2", "PLAIN")]
    [InlineData("oauth2", "LOGIN")]
    public async Task Auth_WrongPasswordOrImapOnlyAppPassword_535(string passdb, string mechanism)
    {
        var user = $"v24-dsub-wrong-{passdb}-{mechanism.ToLowerInvariant()}@example.com";
        var imapOnlyUser = $"v24-dsub-imaponly-{passdb}-{mechanism.ToLowerInvariant()}@example.com";
        var secret = await lab.IssueAsync(user, "submission");
        var imapOnly = await lab.IssueAsync(imapOnlyUser, "imap,pop3");
        await using var smtp = await RawSmtp.ConnectAsync(lab.Passdb(passdb).SubmissionPort);

        var wrong = await AuthAsync(smtp, mechanism, user, MailProtocolsLab.Mistyped(secret));
        var account = await AuthAsync(smtp, mechanism, user, "Correct-Horse-Battery-Staple-1");
        var noScope = await AuthAsync(smtp, mechanism, imapOnlyUser, imapOnly);

        Assert.Equal("535 5.7.8 Authentication failed.", wrong);
        Assert.Equal("535 5.7.8 Authentication failed.", account);
        Assert.Equal("535 5.7.8 Authentication failed.", noScope);
    }

    [Fact]
    public async Task Send_WithoutAuthentication_Refused()
    {
        await using var smtp = await RawSmtp.ConnectAsync(lab.SubmissionPort);

        var mail = await smtp.CommandAsync($"MAIL FROM:<anyone@{MailProtocolsLab.Domain}>");

        Assert.Equal("530 5.7.0 Authentication required.", mail);
    }

    [Theory]
    [InlineData("lua", "PLAIN")]
    [InlineData("lua", "LOGIN")]
    [InlineData("oauth2", "PLAIN")]
    [InlineData("oauth2", "LOGIN")]
    public async Task Auth_BrokerDown_454TemporaryFailure(string passdb, string mechanism)
    {
        var user = $"v24-dsub-down-{passdb}-{mechanism.ToLowerInvariant()}@example.com";
        var secret = await lab.IssueAsync(user, "submission");
        await using var smtp = await RawSmtp.ConnectAsync(lab.BrokerDown(passdb).SubmissionPort);

        var reply = await AuthAsync(smtp, mechanism, user, secret);

        // As 2.3: Dovecot appends "[host:time]" so the admin can find the log line.
        Assert.StartsWith("454 4.7.0 Temporary authentication failure.", reply, StringComparison.Ordinal);
        // And the mail is not taken without the login.
        Assert.StartsWith("530 ", await smtp.CommandAsync($"MAIL FROM:<{user}>"), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("lua")]
    [InlineData("oauth2")]
    public async Task Auth_BrokerCannotDecide_454TemporaryFailure(string passdb)
    {
        var user = $"v24-dsub-redis-down-{passdb}@example.com";
        var secret = await lab.IssueAsync(user, "submission");
        var server = lab.Passdb(passdb);

        await lab.WithRedisDownAsync(async () =>
        {
            await using var smtp = await RawSmtp.ConnectAsync(server.SubmissionPort);

            Assert.StartsWith("454 4.7.0 Temporary authentication failure.", await smtp.AuthPlainAsync(user, secret), StringComparison.Ordinal);
        });

        // Broker's own 503 (see BrokerUnderTest.StoreTimeout), not a deny and not Dovecot giving up.
        Assert.Contains(Dovecot24Lab.BrokerUndecidedLogLine(passdb), Dovecot24Lab.AuthLogLines(server.Dovecot, user), StringComparison.Ordinal);
    }

    private static Task<string> AuthAsync(RawSmtp smtp, string mechanism, string user, string password) =>
        mechanism == "PLAIN" ? smtp.AuthPlainAsync(user, password) : smtp.AuthLoginAsync(user, password);
}
