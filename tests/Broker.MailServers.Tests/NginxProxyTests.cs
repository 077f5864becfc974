using Broker.MailServers.Tests.Infrastructure;
using MailKit;
using MailKit.Security;

namespace Broker.MailServers.Tests;

/// <summary>
/// Real nginx mail proxy configured from infra/nginx/mail.conf (IMAP with implicit TLS), asking Broker
/// (auth_http) and proxying to a backend Dovecot configured from infra/nginx/backend-dovecot.conf
/// (knows only the proxy secret).
/// </summary>
[Collection(MailLabDefinition.Name)]
public sealed class NginxProxyTests(MailLab lab)
{
    [Fact]
    public async Task ImapLogin_ThroughNginxWithAppPassword_OpensBackendMailbox()
    {
        var secret = await lab.IssueAsync("nginx-user@example.com");

        using var client = await lab.Nginx.ConnectImapClientAsync();
        client.AuthenticationMechanisms.Clear();
        await client.AuthenticateAsync("nginx-user@example.com", secret);
        await client.Inbox.OpenAsync(FolderAccess.ReadWrite);

        Assert.True(client.IsAuthenticated);
    }

    [Fact]
    public async Task AuthenticatePlain_ThroughNginxWithAppPassword_Succeeds()
    {
        var secret = await lab.IssueAsync("nginx-plain@example.com");

        var reply = await lab.Nginx.LoginAsync("plain", "nginx-plain@example.com", secret);

        Assert.StartsWith("OK", reply, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("login")]
    [InlineData("plain")]
    public async Task Login_ThroughNginxWithWrongPassword_FailsWithBrokerMessage(string command)
    {
        var other = await lab.IssueAsync("nginx-other@example.com");

        var reply = await lab.Nginx.LoginAsync(command, "nginx-wrong@example.com", other);

        Assert.StartsWith("NO [AUTHENTICATIONFAILED]", reply, StringComparison.Ordinal);
    }

    [Fact]
    public async Task PlainImapToTheProxy_NeverGreetedSoNoPasswordInTheClear()
    {
        // The shipped listener is TLS only (listen 993 ssl): a client speaking plain IMAP gets no
        // greeting and no chance to send LOGIN; nginx drops what is not a TLS handshake.
        using var tcp = new System.Net.Sockets.TcpClient();
        await tcp.ConnectAsync(System.Net.IPAddress.Loopback, lab.Nginx.ImapPort);
        var stream = tcp.GetStream();
        await stream.WriteAsync("a1 CAPABILITY\r\n"u8.ToArray());

        var received = new List<byte>();
        var buffer = new byte[512];
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        try
        {
            int read;
            while ((read = await stream.ReadAsync(buffer, timeout.Token)) > 0)
            {
                received.AddRange(buffer.AsSpan(0, read));
            }
        }
        catch (IOException)
        {
            // Reset by nginx: also no greeting.
        }

        Assert.False(timeout.IsCancellationRequested, "nginx kept a non-TLS connection open");
        Assert.DoesNotContain("OK", System.Text.Encoding.ASCII.GetString([.. received]), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Backend_DirectLoginWithAppPassword_Fails()
    {
        var secret = await lab.IssueAsync("nginx-direct@example.com");

        var reply = await DovecotLuaPassdbTests.LoginAsync(lab.BackendDovecot.ImapPort, "login", "nginx-direct@example.com", secret);

        Assert.StartsWith("NO", reply, StringComparison.Ordinal);
    }
}
