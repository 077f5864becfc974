using System.Net;
using Broker.MailServers.Tests.Infrastructure;
using MailKit.Net.Smtp;
using MailKit.Security;
using MimeKit;

namespace Broker.MailServers.Tests;

/// <summary>
/// The host's Postfix (Debian 12's 3.7) with the shipped infra/postfix files, authenticating through
/// Dovecot 2.4's SASL socket (infra/postfix/dovecot-10-postfix-auth.conf, unchanged on 2.4) and the
/// 2.4 Lua drop-in: what <see cref="PostfixSubmissionTests"/> proves against 2.3.
/// </summary>
[Collection(Dovecot24ProtocolsLabDefinition.Name)]
public sealed class PostfixDovecot24Tests(Dovecot24ProtocolsLab lab)
{
    [Theory]
    [InlineData("PLAIN")]
    [InlineData("LOGIN")]
    public async Task Send_WithAppPassword_MessageAccepted(string mechanism)
    {
        var user = $"v24-smtp-send-{mechanism.ToLowerInvariant()}@example.com";
        var issued = await lab.AppPasswords.IssueAsync(user, "phone", ["submission"], null);
        using var client = new SmtpClient { Timeout = 15000, ServerCertificateValidationCallback = (_, cert, _, _) => lab.Postfix.IsOurCertificate(cert) };
        await client.ConnectAsync("127.0.0.1", lab.Postfix.SubmissionPort, SecureSocketOptions.StartTls);
        SaslMechanism sasl = mechanism == "PLAIN" ? new SaslMechanismPlain(user, issued.Secret) : new SaslMechanismLogin(user, issued.Secret);

        await client.AuthenticateAsync(sasl);
        var message = new MimeMessage();
        message.From.Add(MailboxAddress.Parse(user));
        message.To.Add(MailboxAddress.Parse("someone@example.net"));
        message.Subject = "hello through Broker and Dovecot 2.4";
        message.Body = new TextPart("plain") { Text = "sent with an app password" };
        var reply = await client.SendAsync(message);
        await client.DisconnectAsync(true);

        Assert.Contains("queued", reply, StringComparison.OrdinalIgnoreCase);
        // Postfix's SASL requests reach Broker as service "smtp" through 2.4 too.
        var ap = await lab.AppPasswords.GetAsync(user, issued.AppPassword.Id);
        Assert.Equal("smtp", ap?.LastUsed?.Protocol);
    }

    [Fact]
    public async Task Auth_WithAppPassword_235()
    {
        var secret = await lab.IssueAsync("v24-smtp-235@example.com", "submission");
        await using var plain = await RawSmtp.ConnectWithTlsAsync(lab.Postfix);
        await using var login = await RawSmtp.ConnectWithTlsAsync(lab.Postfix);

        Assert.Equal("235 2.7.0 Authentication successful", await plain.AuthPlainAsync("v24-smtp-235@example.com", secret));
        Assert.Equal("235 2.7.0 Authentication successful", await login.AuthLoginAsync("v24-smtp-235@example.com", secret));
    }

    /// <summary>
    /// The drop-in's auth_allow_cleartext = no must not refuse Postfix's PLAIN/LOGIN from a client
    /// outside login_trusted_networks: Postfix marks the request as secured once TLS is up.
    /// </summary>
    [Fact]
    public async Task Auth_FromUntrustedAddressInsideTls_235WithClientAddress()
    {
        var issued = await lab.AppPasswords.IssueAsync("v24-smtp-remote@example.com", "phone", ["submission"], null);
        await using var smtp = await RawSmtp.ConnectWithTlsAsync(lab.Postfix, IPAddress.Parse("127.0.1.1"));

        Assert.Equal("235 2.7.0 Authentication successful", await smtp.AuthPlainAsync("v24-smtp-remote@example.com", issued.Secret));
        var ap = await lab.AppPasswords.GetAsync("v24-smtp-remote@example.com", issued.AppPassword.Id);
        Assert.Equal("127.0.1.1", ap?.LastUsed?.RemoteIp);
    }

    [Theory]
    [InlineData("PLAIN")]
    [InlineData("LOGIN")]
    public async Task Auth_WrongPasswordOrImapOnlyAppPassword_535(string mechanism)
    {
        var secret = await lab.IssueAsync("v24-smtp-wrong@example.com", "submission");
        var imapOnly = await lab.IssueAsync("v24-smtp-imaponly@example.com", "imap");
        await using var smtp = await RawSmtp.ConnectWithTlsAsync(lab.Postfix);

        var wrong = mechanism == "PLAIN" ? await smtp.AuthPlainAsync("v24-smtp-wrong@example.com", MailProtocolsLab.Mistyped(secret)) : await smtp.AuthLoginAsync("v24-smtp-wrong@example.com", MailProtocolsLab.Mistyped(secret));
        var account = mechanism == "PLAIN" ? await smtp.AuthPlainAsync("v24-smtp-wrong@example.com", "Correct-Horse-Battery-Staple-1") : await smtp.AuthLoginAsync("v24-smtp-wrong@example.com", "Correct-Horse-Battery-Staple-1");
        var noScope = mechanism == "PLAIN" ? await smtp.AuthPlainAsync("v24-smtp-imaponly@example.com", imapOnly) : await smtp.AuthLoginAsync("v24-smtp-imaponly@example.com", imapOnly);

        Assert.StartsWith("535 5.7.8 Error: authentication failed", wrong, StringComparison.Ordinal);
        Assert.StartsWith("535 5.7.8 Error: authentication failed", account, StringComparison.Ordinal);
        Assert.StartsWith("535 5.7.8 Error: authentication failed", noScope, StringComparison.Ordinal);
    }

    /// <summary>
    /// As with 2.3: Postfix's Dovecot SASL client turns Dovecot's temporary failure into 535, so a
    /// Broker outage looks like a wrong password to clients sending through Postfix.
    /// </summary>
    [Fact]
    public async Task Auth_BrokerCannotDecide_Postfix535NotTemporary()
    {
        var secret = await lab.IssueAsync("v24-smtp-down@example.com", "submission");
        await lab.WithRedisDownAsync(async () =>
        {
            await using var smtp = await RawSmtp.ConnectWithTlsAsync(lab.Postfix);

            Assert.StartsWith("535 5.7.8 Error: authentication failed", await smtp.AuthPlainAsync("v24-smtp-down@example.com", secret), StringComparison.Ordinal);
        });
        // Dovecot 2.4's Lua passdb got Broker's "temporary failure" (503; see
        // BrokerUnderTest.StoreTimeout): the 535 is Postfix's mapping, not a deny.
        Assert.Contains(Dovecot24Lab.BrokerUndecidedLogLine("lua"), Dovecot24Lab.AuthLogLines(lab.Dovecot, "v24-smtp-down@example.com"), StringComparison.Ordinal);
    }
}
