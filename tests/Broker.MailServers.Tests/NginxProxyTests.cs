using Broker.MailServers.Tests.Infrastructure;
using MailKit;
using MailKit.Security;

namespace Broker.MailServers.Tests;

/// <summary>
/// Real nginx mail proxy configured from infra/nginx/mail.conf, asking Broker (auth_http) and proxying
/// to a backend Dovecot configured from infra/nginx/backend-dovecot.conf (knows only the proxy secret).
/// </summary>
[Collection(MailLabDefinition.Name)]
public sealed class NginxProxyTests(MailLab lab)
{
    [Fact]
    public async Task ImapLogin_ThroughNginxWithAppPassword_OpensBackendMailbox()
    {
        var secret = await lab.IssueAsync("nginx-user@example.com");

        using var client = await DovecotLuaPassdbTests.ConnectAsync(lab.Nginx.ImapPort);
        client.AuthenticationMechanisms.Clear();
        await client.AuthenticateAsync("nginx-user@example.com", secret);
        await client.Inbox.OpenAsync(FolderAccess.ReadWrite);

        Assert.True(client.IsAuthenticated);
    }

    [Fact]
    public async Task AuthenticatePlain_ThroughNginxWithAppPassword_Succeeds()
    {
        var secret = await lab.IssueAsync("nginx-plain@example.com");

        var reply = await DovecotLuaPassdbTests.LoginAsync(lab.Nginx.ImapPort, "plain", "nginx-plain@example.com", secret);

        Assert.StartsWith("OK", reply, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("login")]
    [InlineData("plain")]
    public async Task Login_ThroughNginxWithWrongPassword_FailsWithBrokerMessage(string command)
    {
        var other = await lab.IssueAsync("nginx-other@example.com");

        var reply = await DovecotLuaPassdbTests.LoginAsync(lab.Nginx.ImapPort, command, "nginx-wrong@example.com", other);

        Assert.StartsWith("NO [AUTHENTICATIONFAILED]", reply, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Backend_DirectLoginWithAppPassword_Fails()
    {
        var secret = await lab.IssueAsync("nginx-direct@example.com");

        var reply = await DovecotLuaPassdbTests.LoginAsync(lab.BackendDovecot.ImapPort, "login", "nginx-direct@example.com", secret);

        Assert.StartsWith("NO", reply, StringComparison.Ordinal);
    }
}
