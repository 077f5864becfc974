using Broker.MailServers.Tests.Infrastructure;
using MailKit.Net.Smtp;
using MailKit.Security;
using MimeKit;

namespace Broker.MailServers.Tests;

/// <summary>
/// Real Postfix submission with the shipped infra/postfix files, authenticating through the shipped
/// Dovecot SASL socket (infra/postfix/dovecot-10-postfix-auth.conf) and Broker's Lua passdb.
/// </summary>
[Collection(MailLabDefinition.Name)]
public sealed class PostfixSubmissionTests(MailLab lab)
{
    [Theory]
    [InlineData("PLAIN")]
    [InlineData("LOGIN")]
    public async Task Send_WithAppPassword_MessageAccepted(string mechanism)
    {
        var secret = await lab.IssueAsync("smtp-send@example.com", scopes: "submission");
        using var client = new SmtpClient { Timeout = 15000, ServerCertificateValidationCallback = (_, cert, _, _) => lab.Postfix.IsOurCertificate(cert) };
        await client.ConnectAsync("127.0.0.1", lab.Postfix.SubmissionPort, SecureSocketOptions.StartTls);
        SaslMechanism sasl = mechanism == "PLAIN"
            ? new SaslMechanismPlain("smtp-send@example.com", secret)
            : new SaslMechanismLogin("smtp-send@example.com", secret);

        await client.AuthenticateAsync(sasl);
        var message = new MimeMessage();
        message.From.Add(MailboxAddress.Parse("smtp-send@example.com"));
        message.To.Add(MailboxAddress.Parse("someone@example.net"));
        message.Subject = "hello through Broker";
        message.Body = new TextPart("plain") { Text = "sent with an app password" };
        var reply = await client.SendAsync(message);
        await client.DisconnectAsync(true);

        Assert.Contains("queued", reply, StringComparison.OrdinalIgnoreCase);
    }

    [Theory]
    [InlineData("PLAIN")]
    [InlineData("LOGIN")]
    public async Task Auth_WrongPassword_535(string mechanism)
    {
        var secret = await lab.IssueAsync("smtp-wrong@example.com", scopes: "submission");
        var imapOnly = await lab.IssueAsync("smtp-imaponly@example.com", scopes: "imap");
        await using var smtp = await RawSmtp.ConnectWithTlsAsync(lab.Postfix);

        var wrong = mechanism == "PLAIN" ? await smtp.AuthPlainAsync("smtp-wrong@example.com", MailProtocolsLab.Mistyped(secret)) : await smtp.AuthLoginAsync("smtp-wrong@example.com", "account-password");
        var noScope = mechanism == "PLAIN" ? await smtp.AuthPlainAsync("smtp-imaponly@example.com", imapOnly) : await smtp.AuthLoginAsync("smtp-imaponly@example.com", imapOnly);

        Assert.StartsWith("535", wrong, StringComparison.Ordinal);
        Assert.StartsWith("535", noScope, StringComparison.Ordinal);
    }

    /// <summary>
    /// Postfix's Dovecot SASL client turns every Dovecot FAIL into 535, the temporary flag included:
    /// only a lost connection to Dovecot's auth socket gives 454. So while Broker cannot decide, a
    /// client sending through Postfix is told its password is wrong (docs/postfix.md says so).
    /// </summary>
    [Fact]
    public async Task Auth_BrokerCannotDecide_Postfix535NotTemporary()
    {
        var secret = await lab.IssueAsync("smtp-down@example.com", scopes: "submission");
        await lab.WithRedisDownAsync(async () =>
        {
            await using var smtp = await RawSmtp.ConnectWithTlsAsync(lab.Postfix);

            Assert.StartsWith("535 5.7.8 Error: authentication failed", await smtp.AuthPlainAsync("smtp-down@example.com", secret), StringComparison.Ordinal);
        });
        // The Lua passdb answered a temporary failure (503 or its own timeout, 9008): the 535 is
        // Postfix's mapping, not a deny.
        var log = lab.Dovecot.Log;
        Assert.True(
            log.Split('\n').Any(line => line.Contains("lua(smtp-down@example.com", StringComparison.Ordinal) && line.Contains("broker: HTTP status ", StringComparison.Ordinal)),
            "Dovecot logged no temporary failure for the login. Dovecot log:\n" + log);
    }

    [Fact]
    public async Task Send_WithoutAuthentication_Refused()
    {
        await using var smtp = await RawSmtp.ConnectWithTlsAsync(lab.Postfix);

        await smtp.CommandAsync("MAIL FROM:<anyone@example.com>");
        var rcpt = await smtp.CommandAsync("RCPT TO:<someone@example.net>");

        Assert.StartsWith("5", rcpt, StringComparison.Ordinal);
    }
}
