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
    public async Task Login_PasswordShapedLikeAnExpensiveHash_NeitherHashedNorStallingOtherLogins(string command)
    {
        var secret = await lab.IssueAsync($"oauth-hash-{command}@example.com");
        var port = lab.OAuth2Dovecot.ImapPort;
        // The empty-password guard compares against the client's own password. Taken as a stored
        // password, "{SHA512-CRYPT}$6$rounds=N$…" makes Dovecot's single auth process run N rounds of
        // SHA-512 (up to 999,999,999: minutes of CPU) before any passdb asks Broker, and every other
        // login on the server waits meanwhile. 20 million rounds take about 15 s here.
        var hashLike = "{SHA512-CRYPT}$6$rounds=20000000$saltsalt$notarealhash";
        var started = System.Diagnostics.Stopwatch.StartNew();

        var attack = DovecotLuaPassdbTests.LoginAsync(port, command, $"oauth-hash-{command}@example.com", hashLike);
        await Task.Delay(200);
        var legitimate = await DovecotLuaPassdbTests.LoginAsync(port, command, $"oauth-hash-{command}@example.com", secret);

        Assert.StartsWith("OK", legitimate, StringComparison.Ordinal);
        // Passed on to Broker like any other password, which denies it.
        Assert.StartsWith("NO [AUTHENTICATIONFAILED]", await attack, StringComparison.Ordinal);
        Assert.InRange(started.Elapsed, TimeSpan.Zero, TimeSpan.FromSeconds(5));
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

    [Theory]
    [InlineData("oauth2", "login")]
    [InlineData("oauth2", "plain")]
    [InlineData("lua", "login")]
    [InlineData("lua", "plain")]
    public async Task Login_UsernameWithFormAndJsonMetacharacters_DefaultRefusedWidenedReachesBrokerAsTyped(string integration, string command)
    {
        // Each integration encodes the name differently on the way to Broker: a form body (oauth2
        // grant) or JSON (Lua). '+' must not turn into a space, '&' and '=' must not start a new form
        // field, '%' must not be decoded twice, quotes must not end a string.
        var user = $"o+{integration}.{command}&grant_type=x=1%41\"q'@example.com";
        var secret = await lab.IssueAsync(user);
        // What a form split at '&' would leave of the name: another user's, with another password.
        var victim = $"o+{integration}.{command}";
        var victimSecret = await lab.IssueAsync(victim);

        // Dovecot's default auth_username_chars (letters, digits, ".-_@") refuses such names itself,
        // before any passdb: with the shipped drop-ins as they are, they never reach Broker.
        var shipped = integration == "lua" ? lab.Dovecot : lab.OAuth2Dovecot;
        Assert.StartsWith("NO [AUTHENTICATIONFAILED]", await DovecotLuaPassdbTests.LoginAsync(shipped.ImapPort, command, user, secret), StringComparison.Ordinal);

        // An admin who allows every character: the name arrives intact and only its own password works.
        var dir = Shell.TempDirectory($"dovecot-anychars-{integration}");
        (string, string)[] dropIn;
        if (integration == "lua")
        {
            dropIn = ShippedPassdbs.Lua(dir, lab.Broker.GatewayUrl);
        }
        else
        {
            var ext = Path.Combine(dir, "dovecot-oauth2-broker.conf.ext");
            await File.WriteAllTextAsync(ext, InfraFiles.Render("infra/dovecot/dovecot-oauth2-broker.conf.ext",
                ("http://127.0.0.1:5080", lab.Broker.GatewayUrl), ("CHANGE-ME-broker-caller-key", Broker.Testing.BrokerApps.CallerKey)));
            dropIn = [("90-broker-oauth2.conf", InfraFiles.Render("infra/dovecot/conf.d/90-broker-oauth2.conf", ("/etc/dovecot/dovecot-oauth2-broker.conf.ext", ext)))];
        }

        await using var widened = await DovecotServer.StartAsync($"anychars-{integration}", dropIn, extraMain: "auth_username_chars =", dir: dir);

        Assert.StartsWith("OK", await DovecotLuaPassdbTests.LoginAsync(widened.ImapPort, command, user, secret), StringComparison.Ordinal);
        Assert.StartsWith("NO [AUTHENTICATIONFAILED]", await DovecotLuaPassdbTests.LoginAsync(widened.ImapPort, command, user, victimSecret), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Login_ClientSecretPlaceholderLeft_TemporaryFailureNeverSuccess()
    {
        var secret = await lab.IssueAsync("oauth-placeholder@example.com");
        // dovecot-oauth2-broker.conf.ext installed with only grant_url edited: client_secret is still "CHANGE-ME-…".
        var dir = Shell.TempDirectory("dovecot-oauth2-placeholder");
        var ext = Path.Combine(dir, "dovecot-oauth2-broker.conf.ext");
        await File.WriteAllTextAsync(ext, InfraFiles.Render("infra/dovecot/dovecot-oauth2-broker.conf.ext", ("http://127.0.0.1:5080", lab.Broker.GatewayUrl)));
        Assert.Contains("CHANGE-ME", await File.ReadAllTextAsync(ext), StringComparison.Ordinal);
        await using var dovecot = await DovecotServer.StartAsync("oauth2-placeholder", [
            ("90-broker-oauth2.conf", InfraFiles.Render("infra/dovecot/conf.d/90-broker-oauth2.conf", ("/etc/dovecot/dovecot-oauth2-broker.conf.ext", ext))),
        ], dir: dir);

        // Broker answers 401 invalid_client, which Dovecot's oauth2 passdb takes as a temporary failure.
        Assert.StartsWith("NO [UNAVAILABLE]", await DovecotLuaPassdbTests.LoginAsync(dovecot.ImapPort, "login", "oauth-placeholder@example.com", secret), StringComparison.Ordinal);
        Assert.StartsWith("NO [UNAVAILABLE]", await DovecotLuaPassdbTests.LoginAsync(dovecot.ImapPort, "plain", "oauth-placeholder@example.com", secret), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Login_RedisDownBehindBroker_TemporaryFailure()
    {
        var secret = await lab.IssueAsync("oauth-redis-down@example.com");

        await lab.WithRedisDownAsync(async () =>
            Assert.StartsWith("NO [UNAVAILABLE]", await DovecotLuaPassdbTests.LoginAsync(lab.OAuth2Dovecot.ImapPort, "login", "oauth-redis-down@example.com", secret), StringComparison.Ordinal));

        // Broker's own 503 (inside timeout_msecs: BrokerUnderTest.StoreTimeout), not Dovecot giving up.
        var authLines = Dovecot24Lab.AuthLogLines(lab.OAuth2Dovecot, "oauth-redis-down@example.com");
        Assert.True(authLines.Contains("503", StringComparison.Ordinal), "Dovecot's auth lines:\n" + authLines);
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
