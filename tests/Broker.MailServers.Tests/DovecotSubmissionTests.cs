using Broker.MailServers.Tests.Infrastructure;
using MailKit.Net.Smtp;
using MailKit.Security;
using MimeKit;

namespace Broker.MailServers.Tests;

/// <summary>
/// Dovecot's own submission service (dovecot-submissiond) with the shipped Lua passdb: Dovecot reports
/// service "submission", authenticates against Broker, and relays accepted mail to a real Postfix
/// (submission_relay_host), which delivers it back into Dovecot over LMTP.
/// </summary>
[Collection(MailProtocolsLabDefinition.Name)]
public sealed class DovecotSubmissionTests(MailProtocolsLab lab)
{
    [Theory]
    [InlineData("PLAIN")]
    [InlineData("LOGIN")]
    public async Task Send_WithSubmissionAppPassword_AcceptedAndDelivered(string mechanism)
    {
        var user = $"dsub-{mechanism.ToLowerInvariant()}@{MailProtocolsLab.Domain}";
        var secret = await lab.IssueAsync(user, "submission");
        var subject = $"through Dovecot submission ({mechanism})";

        using var client = await ConnectAsync(lab.SubmissionPort);
        SaslMechanism sasl = mechanism == "PLAIN" ? new SaslMechanismPlain(user, secret) : new SaslMechanismLogin(user, secret);
        await client.AuthenticateAsync(sasl);
        var message = new MimeMessage();
        message.From.Add(MailboxAddress.Parse(user));
        message.To.Add(MailboxAddress.Parse(user));
        message.Subject = subject;
        message.Body = new TextPart("plain") { Text = "sent with an app password" };
        var reply = await client.SendAsync(message);
        await client.DisconnectAsync(true);

        Assert.Contains("queued", reply, StringComparison.OrdinalIgnoreCase);
        // The relay really got it: it arrives in the user's mailbox, read back over POP3 with another app password.
        Assert.Equal(subject, await MailboxWaits.FirstSubjectAsync(lab.Pop3Port, user, await lab.IssueAsync(user, "pop3"), () => lab.Logs));
    }

    [Theory]
    [InlineData("PLAIN")]
    [InlineData("LOGIN")]
    public async Task Auth_WrongPasswordOrImapOnlyAppPassword_535(string mechanism)
    {
        var secret = await lab.IssueAsync("dsub-wrong@example.com", "submission");
        var imapOnly = await lab.IssueAsync("dsub-imaponly@example.com", "imap,pop3");
        await using var smtp = await RawSmtp.ConnectAsync(lab.SubmissionPort);

        var wrong = await AuthAsync(smtp, mechanism, "dsub-wrong@example.com", MailProtocolsLab.Mistyped(secret));
        var account = await AuthAsync(smtp, mechanism, "dsub-wrong@example.com", "Correct-Horse-Battery-Staple-1");
        var noScope = await AuthAsync(smtp, mechanism, "dsub-imaponly@example.com", imapOnly);

        Assert.Equal("535 5.7.8 Authentication failed.", wrong);
        Assert.Equal("535 5.7.8 Authentication failed.", account);
        Assert.Equal("535 5.7.8 Authentication failed.", noScope);
    }

    [Fact]
    public async Task Auth_ImapOnlyAppPasswordWithMailKit_AuthenticationFails()
    {
        var imapOnly = await lab.IssueAsync("dsub-mailkit@example.com", "imap");

        using var client = await ConnectAsync(lab.SubmissionPort);

        await Assert.ThrowsAsync<AuthenticationException>(() => client.AuthenticateAsync(new SaslMechanismPlain("dsub-mailkit@example.com", imapOnly)));
    }

    [Fact]
    public async Task Send_WithoutAuthentication_Refused()
    {
        await using var smtp = await RawSmtp.ConnectAsync(lab.SubmissionPort);

        var mail = await smtp.CommandAsync($"MAIL FROM:<anyone@{MailProtocolsLab.Domain}>");

        Assert.Equal("530 5.7.0 Authentication required.", mail);
    }

    [Fact]
    public async Task Auth_BrokerCannotDecide_454TemporaryFailure()
    {
        var secret = await lab.IssueAsync("dsub-down@example.com", "submission");
        await lab.WithRedisDownAsync(async () =>
        {
            await using var smtp = await RawSmtp.ConnectAsync(lab.SubmissionPort);

            // Dovecot appends "[host:time]" so the admin can find the log line.
            Assert.StartsWith("454 4.7.0 Temporary authentication failure.", await smtp.AuthPlainAsync("dsub-down@example.com", secret), StringComparison.Ordinal);
        });
    }

    private static Task<string> AuthAsync(RawSmtp smtp, string mechanism, string user, string password) =>
        mechanism == "PLAIN" ? smtp.AuthPlainAsync(user, password) : smtp.AuthLoginAsync(user, password);

    internal static async Task<SmtpClient> ConnectAsync(int port)
    {
        var client = new SmtpClient { Timeout = 15000 };
        await client.ConnectAsync("127.0.0.1", port, SecureSocketOptions.None);
        return client;
    }
}
