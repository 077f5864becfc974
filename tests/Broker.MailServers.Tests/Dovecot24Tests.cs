using System.Net;
using Broker.MailServers.Tests.Infrastructure;
using MailKit;
using MailKit.Net.Imap;
using MailKit.Security;

namespace Broker.MailServers.Tests;

/// <summary>
/// Debian 13's Dovecot 2.4 with the shipped infra/dovecot-2.4/ drop-ins and the same broker.lua as
/// 2.3, and a real MailKit client: what <see cref="DovecotLuaPassdbTests"/>, <see cref="DovecotOAuth2PassdbTests"/>
/// and <see cref="DovecotPolicyTests"/> prove for 2.3, for the configuration syntax 2.4 needs.
/// </summary>
[Collection(Dovecot24LabDefinition.Name)]
public sealed class Dovecot24Tests(Dovecot24Lab lab)
{
    [Theory]
    [InlineData("lua")]
    [InlineData("oauth2")]
    public async Task ImapLogin_ValidAppPassword_OpensMailbox(string passdb)
    {
        var user = $"v24-login-{passdb}@example.com";
        var secret = await lab.IssueAsync(user);

        using var client = await DovecotLuaPassdbTests.ConnectAsync(Server(passdb).ImapPort);
        // No SASL mechanisms: MailKit falls back to the IMAP LOGIN command.
        client.AuthenticationMechanisms.Clear();
        await client.AuthenticateAsync(user, secret);
        var access = await client.Inbox.OpenAsync(FolderAccess.ReadWrite);

        Assert.True(client.IsAuthenticated);
        Assert.Equal(FolderAccess.ReadWrite, access);
    }

    [Theory]
    [InlineData("lua")]
    [InlineData("oauth2")]
    public async Task AuthenticatePlain_ValidAppPassword_OpensMailbox(string passdb)
    {
        var user = $"v24-plain-{passdb}@example.com";
        var secret = await lab.IssueAsync(user);

        using var client = await DovecotLuaPassdbTests.ConnectAsync(Server(passdb).ImapPort);
        await client.AuthenticateAsync(new SaslMechanismPlain(user, secret));
        await client.Inbox.OpenAsync(FolderAccess.ReadOnly);

        Assert.True(client.IsAuthenticated);
    }

    [Theory]
    [InlineData("lua", "login")]
    [InlineData("lua", "plain")]
    [InlineData("oauth2", "login")]
    [InlineData("oauth2", "plain")]
    public async Task Login_AccountWrongRevokedOrWrongScope_Fails(string passdb, string command)
    {
        var prefix = $"v24-deny-{passdb}-{command}";
        var other = await lab.IssueAsync($"{prefix}-other@example.com");
        var noImap = await lab.IssueAsync($"{prefix}-scope@example.com", scopes: "submission,pop3");
        var revoked = await lab.AppPasswords.IssueAsync($"{prefix}-revoked@example.com", "old phone", ["imap"], null);
        await lab.AppPasswords.RevokeAsync($"{prefix}-revoked@example.com", revoked.AppPassword.Id);
        await lab.IssueAsync($"{prefix}@example.com");
        var port = Server(passdb).ImapPort;

        // The account (portal) password, another user's app password, an app password without imap, a revoked one.
        Assert.StartsWith("NO [AUTHENTICATIONFAILED]", await DovecotLuaPassdbTests.LoginAsync(port, command, $"{prefix}@example.com", "Correct-Horse-Battery-Staple-1"), StringComparison.Ordinal);
        Assert.StartsWith("NO [AUTHENTICATIONFAILED]", await DovecotLuaPassdbTests.LoginAsync(port, command, $"{prefix}@example.com", other), StringComparison.Ordinal);
        Assert.StartsWith("NO [AUTHENTICATIONFAILED]", await DovecotLuaPassdbTests.LoginAsync(port, command, $"{prefix}-scope@example.com", noImap), StringComparison.Ordinal);
        Assert.StartsWith("NO [AUTHENTICATIONFAILED]", await DovecotLuaPassdbTests.LoginAsync(port, command, $"{prefix}-revoked@example.com", revoked.Secret), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("lua", "login")]
    [InlineData("lua", "plain")]
    [InlineData("oauth2", "login")]
    [InlineData("oauth2", "plain")]
    public async Task Login_BrokerDown_TemporaryFailureNeverSuccess(string passdb, string command)
    {
        var user = $"v24-down-{passdb}-{command}@example.com";
        var secret = await lab.IssueAsync(user);
        var server = passdb == "lua" ? lab.LuaBrokerDown : lab.OAuth2BrokerDown;

        Assert.StartsWith("NO [UNAVAILABLE]", await DovecotLuaPassdbTests.LoginAsync(server.ImapPort, command, user, secret), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("lua")]
    [InlineData("oauth2")]
    public async Task Login_RedisDownBehindBroker_TemporaryFailureNeverSuccess(string passdb)
    {
        var user = $"v24-redis-down-{passdb}@example.com";
        var secret = await lab.IssueAsync(user);
        var server = Server(passdb);

        await lab.WithRedisDownAsync(async () =>
        {
            Assert.StartsWith("NO [UNAVAILABLE]", await DovecotLuaPassdbTests.LoginAsync(server.ImapPort, "login", user, secret), StringComparison.Ordinal);
            Assert.StartsWith("NO [UNAVAILABLE]", await DovecotLuaPassdbTests.LoginAsync(server.ImapPort, "plain", user, secret), StringComparison.Ordinal);
        });

        // Both refusals are Broker's own "temporary failure" (503, inside the passdbs' timeouts: see
        // BrokerUnderTest.StoreTimeout), neither Dovecot giving up on a silent Broker nor a deny.
        var answer = Dovecot24Lab.BrokerUndecidedLogLine(passdb);
        var authLines = Dovecot24Lab.AuthLogLines(server, user);
        Assert.True(authLines.Split('\n').Count(l => l.Contains(answer, StringComparison.Ordinal)) == 2, $"expected two \"{answer}\" lines. Dovecot's auth lines:\n" + authLines);
        // Back up: the same app password works again (the outage decided nothing).
        Assert.StartsWith("OK", await DovecotLuaPassdbTests.LoginAsync(server.ImapPort, "login", user, secret), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("lua")]
    [InlineData("oauth2")]
    public async Task Login_BrokerHangs_TemporaryFailureWithinTimeout(string passdb)
    {
        var server = passdb == "lua" ? lab.LuaBrokerHung : lab.OAuth2BrokerHung;
        var started = System.Diagnostics.Stopwatch.StartNew();

        var reply = await DovecotLuaPassdbTests.LoginAsync(server.ImapPort, "login", $"v24-hung-{passdb}@example.com", "abcd-efgh-jkmn-pqrs-tuvw");

        Assert.StartsWith("NO [UNAVAILABLE]", reply, StringComparison.Ordinal);
        // broker.lua's 2.5 s (as 2.4's http_client_request_absolute_timeout), the oauth2 file's 3 s;
        // Dovecot's own default would hold the login for a minute.
        Assert.InRange(started.Elapsed, TimeSpan.FromSeconds(2), TimeSpan.FromSeconds(10));
    }

    [Theory]
    [InlineData("login")]
    [InlineData("plain")]
    public async Task Login_OAuth2EmptyPassword_FailsWithoutCrashingAuth(string command)
    {
        var user = $"v24-empty-{command}@example.com";
        var secret = await lab.IssueAsync(user);

        var reply = await DovecotLuaPassdbTests.LoginAsync(lab.OAuth2.ImapPort, command, user, string.Empty);

        // 2.4 needs no guard passdb (2.3.19 aborted the auth process here): refused, and the next login works at once.
        Assert.StartsWith("NO", reply, StringComparison.Ordinal);
        Assert.DoesNotContain("Panic", lab.OAuth2.Log, StringComparison.Ordinal);
        Assert.StartsWith("OK", await DovecotLuaPassdbTests.LoginAsync(lab.OAuth2.ImapPort, command, user, secret), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Login_WithImapId_FullContextReachesBroker()
    {
        var issued = await lab.AppPasswords.IssueAsync("v24-id@example.com", "thunderbird", ["imap"], null);
        using var client = await DovecotLuaPassdbTests.ConnectAsync(lab.Lua.ImapPort);
        await client.IdentifyAsync(new ImapImplementation { Name = "Thunderbird", Version = "115.3" });
        await client.AuthenticateAsync(new SaslMechanismPlain("v24-id@example.com", issued.Secret));

        var ap = await lab.AppPasswords.GetAsync("v24-id@example.com", issued.AppPassword.Id);

        // imap_id_retain and 2.4's variable names (protocol, remote_ip, …) as broker.lua reads them.
        Assert.NotNull(ap?.LastUsed);
        Assert.Contains("Thunderbird", ap!.LastUsed!.ClientId, StringComparison.Ordinal);
        Assert.Equal("imap", ap.LastUsed.Protocol);
        Assert.Equal("127.0.0.1", ap.LastUsed.RemoteIp);
    }

    [Fact]
    public async Task Revoke_WhileSessionOpen_SessionIsClosed()
    {
        var issued = await lab.AppPasswords.IssueAsync("v24-kick@example.com", "laptop", ["imap"], null);
        using var client = await DovecotLuaPassdbTests.ConnectAsync(lab.Lua.ImapPort);
        await client.AuthenticateAsync(new SaslMechanismPlain("v24-kick@example.com", issued.Secret));
        await client.Inbox.OpenAsync(FolderAccess.ReadOnly);

        await lab.AppPasswords.RevokeAsync("v24-kick@example.com", issued.AppPassword.Id);

        // Broker posts "kick" to 2.4's doveadm HTTP API; Dovecot closes the session.
        Assert.True(await MailboxWaits.SessionClosedAsync(client), "the IMAP session survived the revocation. Dovecot log:\n" + lab.Lua.Log);
    }

    [Fact]
    public async Task Login_SourceOverFailureThreshold_RejectedWithBrokerMessage()
    {
        var sprayer = IPAddress.Parse("127.0.0.87");
        var secret = await lab.IssueAsync("v24-policy-victim@example.com");
        var port = lab.Policy.ImapPort;

        for (var i = 0; i < Dovecot24Lab.PolicyThreshold; i++)
        {
            Assert.StartsWith("NO [AUTHENTICATIONFAILED]", await DovecotLuaPassdbTests.LoginAsync(port, "login", $"v24-sprayed{i}@example.com", "Password1!", sprayer), StringComparison.Ordinal);
        }

        // Over the threshold: refused before the password is checked, even the right one, with Broker's message.
        Assert.StartsWith("NO [ALERT] Too many failed logins from your address", await DovecotLuaPassdbTests.LoginAsync(port, "login", "v24-policy-victim@example.com", secret, sprayer), StringComparison.Ordinal);
        // Another source is unaffected.
        Assert.StartsWith("OK", await DovecotLuaPassdbTests.LoginAsync(port, "login", "v24-policy-victim@example.com", secret, IPAddress.Parse("127.0.0.88")), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("lua", "login")]
    [InlineData("oauth2", "plain")]
    public async Task Login_WithoutTlsFromAnUntrustedAddress_RefusedBeforeBrokerIsAsked(string passdb, string command)
    {
        var user = $"v24-cleartext-{passdb}@example.com";
        var issued = await lab.AppPasswords.IssueAsync(user, "phone", ["imap"], null);

        // 127.0.1.1 is outside the test's login_trusted_networks: the drop-ins' auth_allow_cleartext = no.
        await using var imap = await RawImap.ConnectAsync(Server(passdb).ImapPort, IPAddress.Parse("127.0.1.1"));
        var reply = command == "login" ? await imap.LoginAsync(user, issued.Secret) : await imap.AuthenticatePlainAsync(user, issued.Secret);

        Assert.Contains("LOGINDISABLED", imap.Greeting, StringComparison.Ordinal);
        Assert.StartsWith("NO [PRIVACYREQUIRED]", reply, StringComparison.Ordinal);
        Assert.Null((await lab.AppPasswords.GetAsync(user, issued.AppPassword.Id))?.LastUsed);
    }

    [Theory]
    [InlineData("lua", "login")]
    [InlineData("lua", "plain")]
    [InlineData("oauth2", "login")]
    [InlineData("oauth2", "plain")]
    public async Task Login_OverHttpsWithBrokersCa_Succeeds(string passdb, string command)
    {
        var user = $"v24-tls-{passdb}-{command}@example.com";
        var secret = await lab.IssueAsync(user);
        var server = passdb == "lua" ? lab.LuaTls : lab.OAuth2Tls;

        Assert.StartsWith("OK", await DovecotLuaPassdbTests.LoginAsync(server.ImapPort, command, user, secret), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Login_OverHttpsWithUntrustedCertificate_TemporaryFailureNeverSuccess()
    {
        var secret = await lab.IssueAsync("v24-badtls@example.com");

        Assert.StartsWith("NO [UNAVAILABLE]", await DovecotLuaPassdbTests.LoginAsync(lab.LuaWrongCa.ImapPort, "login", "v24-badtls@example.com", secret), StringComparison.Ordinal);
        Assert.Contains("broker: HTTP status 9003", lab.LuaWrongCa.Log, StringComparison.Ordinal);
    }

    private DovecotServer Server(string passdb) => passdb == "lua" ? lab.Lua : lab.OAuth2;
}
