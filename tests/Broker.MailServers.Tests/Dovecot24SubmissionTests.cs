using Broker.MailServers.Tests.Infrastructure;
using MailKit.Security;
using MimeKit;

namespace Broker.MailServers.Tests;

/// <summary>
/// Dovecot 2.4's own submission service (dovecot-submissiond) with the shipped infra/dovecot-2.4/ Lua
/// drop-in: what <see cref="DovecotSubmissionTests"/> proves for 2.3. Accepted mail goes to a real
/// Postfix relay (submission_relay_host), which delivers it back into the same Dovecot over LMTP,
/// where the test reads it with POP3.
/// </summary>
[Collection(Dovecot24ProtocolsLabDefinition.Name)]
public sealed class Dovecot24SubmissionTests(Dovecot24ProtocolsLab lab)
{
    [Theory]
    [InlineData("PLAIN")]
    [InlineData("LOGIN")]
    public async Task Send_WithSubmissionAppPassword_AcceptedAndDelivered(string mechanism)
    {
        var user = $"v24-dsub-{mechanism.ToLowerInvariant()}@{MailProtocolsLab.Domain}";
        var issued = await lab.AppPasswords.IssueAsync(user, "phone", ["submission"], null);
        var subject = $"through Dovecot 2.4 submission ({mechanism})";

        using var client = await DovecotSubmissionTests.ConnectAsync(lab.SubmissionPort);
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

    [Fact]
    public async Task Auth_WithSubmissionAppPassword_235()
    {
        var secret = await lab.IssueAsync("v24-dsub-235@example.com", "submission");
        await using var plain = await RawSmtp.ConnectAsync(lab.SubmissionPort);
        await using var login = await RawSmtp.ConnectAsync(lab.SubmissionPort);

        Assert.Equal("235 2.7.0 Logged in.", await plain.AuthPlainAsync("v24-dsub-235@example.com", secret));
        Assert.Equal("235 2.7.0 Logged in.", await login.AuthLoginAsync("v24-dsub-235@example.com", secret));
    }

    [Theory]
    [InlineData("PLAIN")]
    [InlineData("LOGIN")]
    public async Task Auth_WrongPasswordOrImapOnlyAppPassword_535(string mechanism)
    {
        var secret = await lab.IssueAsync("v24-dsub-wrong@example.com", "submission");
        var imapOnly = await lab.IssueAsync("v24-dsub-imaponly@example.com", "imap,pop3");
        await using var smtp = await RawSmtp.ConnectAsync(lab.SubmissionPort);

        var wrong = await AuthAsync(smtp, mechanism, "v24-dsub-wrong@example.com", MailProtocolsLab.Mistyped(secret));
        var account = await AuthAsync(smtp, mechanism, "v24-dsub-wrong@example.com", "Correct-Horse-Battery-Staple-1");
        var noScope = await AuthAsync(smtp, mechanism, "v24-dsub-imaponly@example.com", imapOnly);

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
    [InlineData("PLAIN")]
    [InlineData("LOGIN")]
    public async Task Auth_BrokerDown_454TemporaryFailure(string mechanism)
    {
        var user = $"v24-dsub-down-{mechanism.ToLowerInvariant()}@example.com";
        var secret = await lab.IssueAsync(user, "submission");
        await using var smtp = await RawSmtp.ConnectAsync(lab.BrokerDownSubmissionPort);

        var reply = await AuthAsync(smtp, mechanism, user, secret);

        // As 2.3: Dovecot appends "[host:time]" so the admin can find the log line.
        Assert.StartsWith("454 4.7.0 Temporary authentication failure.", reply, StringComparison.Ordinal);
    }

    private static Task<string> AuthAsync(RawSmtp smtp, string mechanism, string user, string password) =>
        mechanism == "PLAIN" ? smtp.AuthPlainAsync(user, password) : smtp.AuthLoginAsync(user, password);
}
