using Broker.MailServers.Tests.Infrastructure;
using MailKit.Net.Smtp;
using MailKit.Security;
using MimeKit;

namespace Broker.MailServers.Tests;

/// <summary>
/// SMTP through the real nginx mail proxy (infra/nginx/mail.conf + mail-smtp.conf): nginx asks Broker
/// (auth_http, scope submission) and hands an accepted session to a real Postfix with XCLIENT
/// (infra/postfix/master.cf.nginx-backend), which accepts the mail as SASL-authenticated.
/// </summary>
[Collection(MailProtocolsLabDefinition.Name)]
public sealed class NginxSmtpProxyTests(MailProtocolsLab lab)
{
    [Theory]
    [InlineData("PLAIN")]
    [InlineData("LOGIN")]
    public async Task Send_ThroughNginxWithAppPassword_AcceptedByPostfixViaXclient(string mechanism)
    {
        var user = $"nginx-smtp-{mechanism.ToLowerInvariant()}@example.com";
        var secret = await lab.IssueAsync(user, "submission");

        using var client = await lab.Nginx.ConnectSmtpClientAsync();
        SaslMechanism sasl = mechanism == "PLAIN" ? new SaslMechanismPlain(user, secret) : new SaslMechanismLogin(user, secret);
        await client.AuthenticateAsync(sasl);
        var message = new MimeMessage();
        message.From.Add(MailboxAddress.Parse(user));
        message.To.Add(MailboxAddress.Parse("someone@example.net"));
        message.Subject = "hello through nginx";
        message.Body = new TextPart("plain") { Text = "sent with an app password" };
        var reply = await client.SendAsync(message);
        await client.DisconnectAsync(true);

        // Postfix's own reply, so the message went through nginx into Postfix...
        Assert.Contains("queued as", reply, StringComparison.OrdinalIgnoreCase);
        // ...which took nginx's XCLIENT LOGIN (Broker's canonical name) as the SASL login.
        await WaitForLogAsync($"sasl_method=XCLIENT, sasl_username={user}");
    }

    [Theory]
    [InlineData("PLAIN")]
    [InlineData("LOGIN")]
    public async Task Auth_ThroughNginxWithWrongPasswordOrImapOnly_535(string mechanism)
    {
        var secret = await lab.IssueAsync("nginx-smtp-wrong@example.com", "submission");
        var imapOnly = await lab.IssueAsync("nginx-smtp-imaponly@example.com", "imap");

        // One connection each: with Auth-Wait 0 (Broker:Nginx:FailureWaitSeconds=0) nginx closes
        // the connection after the failure reply; with a wait it keeps it open for a retry.
        var wrong = await AuthOnNewConnectionAsync(mechanism, "nginx-smtp-wrong@example.com", MailProtocolsLab.Mistyped(secret));
        var noScope = await AuthOnNewConnectionAsync(mechanism, "nginx-smtp-imaponly@example.com", imapOnly);

        // nginx answers with Broker's Auth-Error-Code and Auth-Status.
        Assert.Equal("535 5.7.8 Authentication failed", wrong);
        Assert.Equal("535 5.7.8 Authentication failed", noScope);
    }

    [Fact]
    public async Task Auth_ThroughNginxWithWrongPasswordWithMailKit_AuthenticationFails()
    {
        await lab.IssueAsync("nginx-smtp-mailkit@example.com", "submission");

        using var client = await lab.Nginx.ConnectSmtpClientAsync();

        await Assert.ThrowsAsync<AuthenticationException>(() => client.AuthenticateAsync(new SaslMechanismPlain("nginx-smtp-mailkit@example.com", "Correct-Horse-Battery-Staple-1")));
    }

    [Fact]
    public async Task Auth_ThroughNginxBrokerCannotDecide_TemporaryFailure()
    {
        var secret = await lab.IssueAsync("nginx-smtp-down@example.com", "submission");
        await lab.WithRedisDownAsync(async () =>
        {
            var reply = await AuthOnNewConnectionAsync("PLAIN", "nginx-smtp-down@example.com", secret);

            // Either Broker answers "cannot decide" (Auth-Error-Code 454 4.7.0), or, once the gateway's
            // health probe has marked the validation role unhealthy, the gateway answers 503 and nginx
            // reports its own "451 4.3.2 Internal server error". Both are temporary: never 235.
            Assert.Matches(@"^(454 4\.7\.0 Temporary authentication failure, try again later|451 4\.3\.2 Internal server error)$", reply);
        });
    }

    [Fact]
    public async Task Backend_XclientFromUntrustedAddress_Refused()
    {
        // Only nginx's address may hand over sessions: from another loopback address XCLIENT is refused.
        await using var smtp = await RawSmtp.ConnectAsync(lab.NginxBackendPort, System.Net.IPAddress.Parse("127.0.0.2"));

        var xclient = await smtp.CommandAsync("XCLIENT LOGIN=nginx-smtp-forged@example.com");

        Assert.Equal("550 5.7.0 Error: insufficient authorization", xclient);
    }

    [Fact]
    public async Task Send_ThroughNginxWithoutAuthentication_Refused()
    {
        await using var smtp = await lab.Nginx.ConnectSmtpAsync();

        var mail = await smtp.CommandAsync("MAIL FROM:<anyone@example.com>");

        // nginx itself refuses: without a login it never opens a backend connection.
        Assert.Equal("530 5.7.1 Authentication required", mail);
    }

    private async Task<string> AuthOnNewConnectionAsync(string mechanism, string user, string password)
    {
        await using var smtp = await lab.Nginx.ConnectSmtpAsync();
        return mechanism == "PLAIN" ? await smtp.AuthPlainAsync(user, password) : await smtp.AuthLoginAsync(user, password);
    }

    private async Task WaitForLogAsync(string text)
    {
        for (var i = 0; i < 50; i++)
        {
            if (lab.NginxBackend.Log.Contains(text, StringComparison.Ordinal))
            {
                return;
            }

            await Task.Delay(100);
        }

        Assert.Fail($"'{text}' not in the backend Postfix log.\n{lab.Logs}");
    }
}
