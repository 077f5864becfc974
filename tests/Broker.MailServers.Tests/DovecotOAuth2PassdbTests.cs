using Broker.MailServers.Tests.Infrastructure;
using MailKit;
using MailKit.Security;

namespace Broker.MailServers.Tests;

/// <summary>
/// Real Dovecot with the shipped no-code alternative: infra/dovecot/conf.d/90-broker-oauth2.conf
/// (empty-password guard + oauth2 passdb) and dovecot-oauth2-broker.conf.ext (password grant).
/// </summary>
[Collection(MailLabDefinition.Name)]
public sealed class DovecotOAuth2PassdbTests(MailLab lab)
{
    [Fact]
    public async Task ImapLogin_ValidAppPassword_OpensMailbox()
    {
        var secret = await lab.IssueAsync("oauth-login@example.com");

        using var client = await DovecotLuaPassdbTests.ConnectAsync(lab.OAuth2Dovecot.ImapPort);
        client.AuthenticationMechanisms.Clear();
        await client.AuthenticateAsync("oauth-login@example.com", secret);
        await client.Inbox.OpenAsync(FolderAccess.ReadWrite);

        Assert.True(client.IsAuthenticated);
    }

    [Fact]
    public async Task AuthenticatePlain_ValidAppPassword_OpensMailbox()
    {
        var secret = await lab.IssueAsync("oauth-plain@example.com");

        using var client = await DovecotLuaPassdbTests.ConnectAsync(lab.OAuth2Dovecot.ImapPort);
        await client.AuthenticateAsync(new SaslMechanismPlain("oauth-plain@example.com", secret));
        await client.Inbox.OpenAsync(FolderAccess.ReadOnly);

        Assert.True(client.IsAuthenticated);
    }

    [Theory]
    [InlineData("login")]
    [InlineData("plain")]
    public async Task Login_WrongAccountRevokedOrWrongScope_Fails(string command)
    {
        var other = await lab.IssueAsync("oauth-deny-other@example.com");
        var noImap = await lab.IssueAsync("oauth-deny-scope@example.com", scopes: "submission");
        var revoked = await lab.AppPasswords.IssueAsync("oauth-deny-revoked@example.com", "old phone", ["imap"], null);
        await lab.AppPasswords.RevokeAsync("oauth-deny-revoked@example.com", revoked.AppPassword.Id);

        var port = lab.OAuth2Dovecot.ImapPort;
        Assert.StartsWith("NO [AUTHENTICATIONFAILED]", await DovecotLuaPassdbTests.LoginAsync(port, command, "oauth-deny@example.com", other), StringComparison.Ordinal);
        Assert.StartsWith("NO [AUTHENTICATIONFAILED]", await DovecotLuaPassdbTests.LoginAsync(port, command, "oauth-deny@example.com", "account-password-123"), StringComparison.Ordinal);
        Assert.StartsWith("NO [AUTHENTICATIONFAILED]", await DovecotLuaPassdbTests.LoginAsync(port, command, "oauth-deny-scope@example.com", noImap), StringComparison.Ordinal);
        Assert.StartsWith("NO [AUTHENTICATIONFAILED]", await DovecotLuaPassdbTests.LoginAsync(port, command, "oauth-deny-revoked@example.com", revoked.Secret), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("login")]
    [InlineData("plain")]
    public async Task Login_EmptyPassword_FailsWithoutCrashingAuth(string command)
    {
        var secret = await lab.IssueAsync("oauth-empty@example.com");

        var reply = await DovecotLuaPassdbTests.LoginAsync(lab.OAuth2Dovecot.ImapPort, command, "oauth-empty@example.com", string.Empty);

        Assert.StartsWith("NO", reply, StringComparison.Ordinal);
        Assert.DoesNotContain("Panic", lab.OAuth2Dovecot.Log, StringComparison.Ordinal);
        // The auth process is still the same healthy one: the next login works at once.
        Assert.StartsWith("OK", await DovecotLuaPassdbTests.LoginAsync(lab.OAuth2Dovecot.ImapPort, command, "oauth-empty@example.com", secret), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("login")]
    [InlineData("plain")]
    public async Task Login_BrokerDown_TemporaryFailureNeverSuccess(string command)
    {
        var secret = await lab.IssueAsync("oauth-down@example.com");

        var reply = await DovecotLuaPassdbTests.LoginAsync(lab.OAuth2BrokerDownDovecot.ImapPort, command, "oauth-down@example.com", secret);

        Assert.StartsWith("NO [UNAVAILABLE]", reply, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Login_RedisDownBehindBroker_TemporaryFailure()
    {
        var secret = await lab.IssueAsync("oauth-redis-down@example.com");

        await lab.WithRedisDownAsync(async () =>
            Assert.StartsWith("NO [UNAVAILABLE]", await DovecotLuaPassdbTests.LoginAsync(lab.OAuth2Dovecot.ImapPort, "login", "oauth-redis-down@example.com", secret), StringComparison.Ordinal));
    }

    [Fact]
    public async Task Login_BrokerHangs_TemporaryFailureWithinTimeout()
    {
        var started = System.Diagnostics.Stopwatch.StartNew();

        var reply = await DovecotLuaPassdbTests.LoginAsync(lab.OAuth2HungBrokerDovecot.ImapPort, "login", "oauth-hung@example.com", "abcd-efgh-jkmn-pqrs-tuvw");

        Assert.StartsWith("NO [UNAVAILABLE]", reply, StringComparison.Ordinal);
        // timeout_msecs = 3000 in the shipped .conf.ext; without it Dovecot waits 60 s.
        Assert.InRange(started.Elapsed, TimeSpan.FromSeconds(2), TimeSpan.FromSeconds(10));
    }
}
