using Broker.MailServers.Tests.Infrastructure;
using MailKit;
using MailKit.Net.Imap;
using MailKit.Security;

namespace Broker.MailServers.Tests;

/// <summary>Real Dovecot with the shipped Lua passdb (infra/dovecot/conf.d/90-broker.conf + broker.lua) and a real MailKit client.</summary>
[Collection(MailLabDefinition.Name)]
public sealed class DovecotLuaPassdbTests(MailLab lab)
{
    [Fact]
    public async Task ImapLogin_ValidAppPassword_OpensMailbox()
    {
        var secret = await lab.IssueAsync("lua-login@example.com");

        using var client = await ConnectAsync(lab.Dovecot.ImapPort);
        // No SASL mechanisms: MailKit falls back to the IMAP LOGIN command.
        client.AuthenticationMechanisms.Clear();
        await client.AuthenticateAsync("lua-login@example.com", secret);
        var inbox = await client.Inbox.OpenAsync(FolderAccess.ReadWrite);

        Assert.True(client.IsAuthenticated);
        Assert.Equal(0, client.Inbox.Count);
        Assert.Equal(FolderAccess.ReadWrite, inbox);
    }

    [Fact]
    public async Task AuthenticatePlain_ValidAppPasswordTypedSloppily_OpensMailbox()
    {
        var secret = await lab.IssueAsync("Lua-Plain@Example.com");

        using var client = await ConnectAsync(lab.Dovecot.ImapPort);
        // Upper-case name and lower-case password without dashes: both are accepted as typed on a phone.
        await client.AuthenticateAsync(new SaslMechanismPlain("LUA-PLAIN@example.com", secret.Replace("-", string.Empty, StringComparison.Ordinal).ToLowerInvariant()));
        await client.Inbox.OpenAsync(FolderAccess.ReadOnly);

        Assert.True(client.IsAuthenticated);
    }

    [Theory]
    [InlineData("login")]
    [InlineData("plain")]
    public async Task Login_AccountPassword_Fails(string command)
    {
        await lab.IssueAsync("lua-account@example.com");

        var reply = await LoginAsync(lab.Dovecot.ImapPort, command, "lua-account@example.com", "Correct-Horse-Battery-Staple-1");

        Assert.StartsWith("NO [AUTHENTICATIONFAILED]", reply, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("login")]
    [InlineData("plain")]
    public async Task Login_WrongAppPassword_Fails(string command)
    {
        var secret = await lab.IssueAsync("lua-wrong@example.com");
        var other = await lab.IssueAsync("lua-wrong-other@example.com");

        Assert.StartsWith("NO [AUTHENTICATIONFAILED]", await LoginAsync(lab.Dovecot.ImapPort, command, "lua-wrong@example.com", other), StringComparison.Ordinal);
        Assert.StartsWith("NO [AUTHENTICATIONFAILED]", await LoginAsync(lab.Dovecot.ImapPort, command, "lua-wrong-other@example.com", secret), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Login_ExpiredAppPassword_Fails()
    {
        var secret = await lab.IssueAsync("lua-expired@example.com", lifetime: TimeSpan.FromHours(1));
        Assert.StartsWith("OK", await LoginAsync(lab.Dovecot.ImapPort, "login", "lua-expired@example.com", secret), StringComparison.Ordinal);

        // Broker's clock moves past the expiry; every other credential in the suite lives 30 days.
        lab.Broker.Time.Advance(TimeSpan.FromHours(2));

        Assert.StartsWith("NO [AUTHENTICATIONFAILED]", await LoginAsync(lab.Dovecot.ImapPort, "login", "lua-expired@example.com", secret), StringComparison.Ordinal);
        Assert.StartsWith("NO [AUTHENTICATIONFAILED]", await LoginAsync(lab.Dovecot.ImapPort, "plain", "lua-expired@example.com", secret), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Login_RevokedAppPassword_Fails()
    {
        var issued = await lab.AppPasswords.IssueAsync("lua-revoked@example.com", "phone", ["imap"], null);
        await lab.AppPasswords.RevokeAsync("lua-revoked@example.com", issued.AppPassword.Id);

        Assert.StartsWith("NO [AUTHENTICATIONFAILED]", await LoginAsync(lab.Dovecot.ImapPort, "login", "lua-revoked@example.com", issued.Secret), StringComparison.Ordinal);
        Assert.StartsWith("NO [AUTHENTICATIONFAILED]", await LoginAsync(lab.Dovecot.ImapPort, "plain", "lua-revoked@example.com", issued.Secret), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Login_AppPasswordWithoutImapScope_Fails()
    {
        var secret = await lab.IssueAsync("lua-scope@example.com", scopes: "submission,pop3");

        Assert.StartsWith("NO [AUTHENTICATIONFAILED]", await LoginAsync(lab.Dovecot.ImapPort, "login", "lua-scope@example.com", secret), StringComparison.Ordinal);
        Assert.StartsWith("NO [AUTHENTICATIONFAILED]", await LoginAsync(lab.Dovecot.ImapPort, "plain", "lua-scope@example.com", secret), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("lua", "login")]
    [InlineData("lua", "plain")]
    [InlineData("oauth2", "login")]
    [InlineData("oauth2", "plain")]
    public async Task Login_WithoutTlsFromAnUntrustedAddress_RefusedBeforeBrokerIsAsked(string dropIn, string command)
    {
        var user = $"lua-cleartext-{dropIn}-{command}@example.com";
        var issued = await lab.AppPasswords.IssueAsync(user, "phone", ["imap"], null);
        var port = dropIn == "lua" ? lab.Dovecot.ImapPort : lab.OAuth2Dovecot.ImapPort;

        // 127.0.1.1 is outside the test's login_trusted_networks: a client on the Internet without TLS.
        await using var imap = await RawImap.ConnectAsync(port, System.Net.IPAddress.Parse("127.0.1.1"));
        var reply = command == "login" ? await imap.LoginAsync(user, issued.Secret) : await imap.AuthenticatePlainAsync(user, issued.Secret);

        // The drop-in's disable_plaintext_auth = yes: LOGIN is announced as disabled and refused.
        Assert.Contains("LOGINDISABLED", imap.Greeting, StringComparison.Ordinal);
        Assert.StartsWith("NO [PRIVACYREQUIRED]", reply, StringComparison.Ordinal);
        Assert.Null((await lab.AppPasswords.GetAsync(user, issued.AppPassword.Id))?.LastUsed);
    }

    [Theory]
    [InlineData("login")]
    [InlineData("plain")]
    public async Task Login_BrokerDown_TemporaryFailureNeverSuccess(string command)
    {
        var secret = await lab.IssueAsync("lua-down@example.com");

        var reply = await LoginAsync(lab.BrokerDownDovecot.ImapPort, command, "lua-down@example.com", secret);

        Assert.StartsWith("NO [UNAVAILABLE]", reply, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("login")]
    [InlineData("plain")]
    public async Task Login_OverHttpsWithBrokersCa_Succeeds(string command)
    {
        var secret = await lab.IssueAsync("lua-tls@example.com");

        Assert.StartsWith("OK", await LoginAsync(lab.TlsDovecot.ImapPort, command, "lua-tls@example.com", secret), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Login_OverHttpsWithUntrustedCertificate_TemporaryFailureNeverSuccess()
    {
        var secret = await lab.IssueAsync("lua-badtls@example.com");

        Assert.StartsWith("NO [UNAVAILABLE]", await LoginAsync(lab.WrongCaDovecot.ImapPort, "login", "lua-badtls@example.com", secret), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Login_BrokerHangs_TemporaryFailureWithinScriptTimeout()
    {
        var started = System.Diagnostics.Stopwatch.StartNew();

        var reply = await LoginAsync(lab.HungBrokerDovecot.ImapPort, "login", "lua-hung@example.com", "abcd-efgh-jkmn-pqrs-tuvw");

        Assert.StartsWith("NO [UNAVAILABLE]", reply, StringComparison.Ordinal);
        // broker.lua's TIMEOUT_MSECS is 2.5 s; the login must not hang for Dovecot's own timeouts.
        Assert.InRange(started.Elapsed, TimeSpan.FromSeconds(2), TimeSpan.FromSeconds(10));
    }

    [Theory]
    [InlineData("login")]
    [InlineData("plain")]
    public async Task Login_GatewayRefusesDovecotsAddress_TemporaryFailureNotWrongPassword(string command)
    {
        var secret = await lab.IssueAsync("lua-refused@example.com");
        // A gateway whose allow-list leaves out the Dovecot host (127.0.0.1): it answers 403 with a
        // ProblemDetails body, which must not pass for Broker's deny.
        await using var gateway = await Broker.Testing.BrokerApps.StartGatewayAsync(new Dictionary<string, string?>
        {
            ["Logging:LogLevel:Default"] = "Warning",
            ["Broker:Gateway:ValidationDestinations:main"] = lab.Broker.Validation.Address.ToString(),
            ["Broker:Gateway:AllowedNetworks:0"] = "192.0.2.0/24",
        });
        var dir = Shell.TempDirectory("dovecot-refused");
        await using var dovecot = await DovecotServer.StartAsync("refused", ShippedPassdbs.Lua(dir, gateway.Address.ToString().TrimEnd('/')), dir: dir);

        var reply = await LoginAsync(dovecot.ImapPort, command, "lua-refused@example.com", secret);

        Assert.StartsWith("NO [UNAVAILABLE]", reply, StringComparison.Ordinal);
        Assert.Contains("HTTP 403 without Broker's deny", dovecot.Log, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Login_CallerKeyPlaceholderLeftInScript_TemporaryFailureNeverSuccess()
    {
        var secret = await lab.IssueAsync("lua-placeholder@example.com");
        // broker.lua installed with only its URL edited: BROKER_API_KEY is still "CHANGE-ME-…".
        var dir = Shell.TempDirectory("dovecot-placeholder");
        var script = Path.Combine(dir, "broker.lua");
        await File.WriteAllTextAsync(script, InfraFiles.Render("infra/dovecot/broker.lua", ("http://127.0.0.1:5080", lab.Broker.GatewayUrl)));
        Assert.Contains("CHANGE-ME", await File.ReadAllTextAsync(script), StringComparison.Ordinal);
        await using var dovecot = await DovecotServer.StartAsync("placeholder", [("90-broker.conf", InfraFiles.Render("infra/dovecot/conf.d/90-broker.conf", ("/etc/dovecot/broker.lua", script)))], dir: dir);

        Assert.StartsWith("NO [UNAVAILABLE]", await LoginAsync(dovecot.ImapPort, "login", "lua-placeholder@example.com", secret), StringComparison.Ordinal);
        Assert.StartsWith("NO [UNAVAILABLE]", await LoginAsync(dovecot.ImapPort, "plain", "lua-placeholder@example.com", secret), StringComparison.Ordinal);
        Assert.Contains("HTTP 401, Broker refused BROKER_API_KEY", dovecot.Log, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("login")]
    [InlineData("plain")]
    public async Task Login_PasswordNotUtf8_WrongPasswordNotTemporaryFailure(string command)
    {
        await lab.IssueAsync("lua-latin1@example.com");

        // An old client typing "pässwörd" sends Latin-1: 0xE4 and 0xF6 are not UTF-8. Broker would
        // refuse such JSON with 400 (a temporary failure), and the client would retry for ever.
        await using var imap = await RawImap.ConnectAsync(lab.Dovecot.ImapPort);
        var reply = command == "login"
            ? await imap.LoginAsync("lua-latin1@example.com", "pässwörd", System.Text.Encoding.Latin1)
            : await imap.AuthenticatePlainAsync("lua-latin1@example.com", "pässwörd", System.Text.Encoding.Latin1);

        Assert.StartsWith("NO [AUTHENTICATIONFAILED]", reply, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Login_RedisDownBehindBroker_TemporaryFailure()
    {
        var secret = await lab.IssueAsync("lua-redis-down@example.com");
        await lab.WithRedisDownAsync(async () =>
        {
            var reply = await LoginAsync(lab.Dovecot.ImapPort, "login", "lua-redis-down@example.com", secret);

            Assert.StartsWith("NO [UNAVAILABLE]", reply, StringComparison.Ordinal);
        });

        // Broker's own "temporary failure" (inside the script's timeout: BrokerUnderTest.StoreTimeout),
        // not the Lua passdb giving up on a silent Broker.
        Assert.Contains(Dovecot24Lab.BrokerUndecidedLogLine("lua"), Dovecot24Lab.AuthLogLines(lab.Dovecot, "lua-redis-down@example.com"), StringComparison.Ordinal);
        // Back up: the same app password works again (the outage decided nothing).
        await WaitUntilAsync(async () => (await LoginAsync(lab.Dovecot.ImapPort, "login", "lua-redis-down@example.com", secret)).StartsWith("OK", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Revoke_WhileSessionOpen_SessionIsClosed()
    {
        var issued = await lab.AppPasswords.IssueAsync("lua-kick@example.com", "laptop", ["imap"], null);
        using var client = await ConnectAsync(lab.Dovecot.ImapPort);
        await client.AuthenticateAsync(new SaslMechanismPlain("lua-kick@example.com", issued.Secret));
        await client.Inbox.OpenAsync(FolderAccess.ReadOnly);

        await lab.AppPasswords.RevokeAsync("lua-kick@example.com", issued.AppPassword.Id);

        // Dovecot sends "* BYE" and closes: the next command on the open session fails.
        Assert.True(await MailboxWaits.SessionClosedAsync(client), "the IMAP session survived the revocation. Dovecot log:\n" + lab.Dovecot.Log);
    }

    [Fact]
    public async Task Disable_WhileSessionOpen_SessionIsClosedAndLoginFails()
    {
        var secret = await lab.IssueAsync("lua-disable@example.com");
        using var client = await ConnectAsync(lab.Dovecot.ImapPort);
        await client.AuthenticateAsync(new SaslMechanismPlain("lua-disable@example.com", secret));

        await lab.AppPasswords.SetDisabledAsync("lua-disable@example.com", true);

        Assert.True(await MailboxWaits.SessionClosedAsync(client));
        Assert.StartsWith("NO [AUTHENTICATIONFAILED]", await LoginAsync(lab.Dovecot.ImapPort, "login", "lua-disable@example.com", secret), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Login_WithImapId_ClientIdRecordedAsLastUse()
    {
        var issued = await lab.AppPasswords.IssueAsync("lua-id@example.com", "thunderbird", ["imap"], null);
        using var client = await ConnectAsync(lab.Dovecot.ImapPort);
        await client.IdentifyAsync(new ImapImplementation { Name = "Thunderbird", Version = "115.3" });
        await client.AuthenticateAsync(new SaslMechanismPlain("lua-id@example.com", issued.Secret));

        var ap = await lab.AppPasswords.GetAsync("lua-id@example.com", issued.AppPassword.Id);

        Assert.NotNull(ap?.LastUsed);
        Assert.Contains("Thunderbird", ap!.LastUsed!.ClientId, StringComparison.Ordinal);
        Assert.Equal("imap", ap.LastUsed.Protocol);
        Assert.Equal("127.0.0.1", ap.LastUsed.RemoteIp);
    }

    internal static async Task<ImapClient> ConnectAsync(int port)
    {
        var client = new ImapClient { Timeout = 15000 };
        await client.ConnectAsync("127.0.0.1", port, SecureSocketOptions.None);
        return client;
    }

    internal static async Task<string> LoginAsync(int port, string command, string user, string password, System.Net.IPAddress? from = null)
    {
        await using var imap = await RawImap.ConnectAsync(port, from);
        return command == "login" ? await imap.LoginAsync(user, password) : await imap.AuthenticatePlainAsync(user, password);
    }

    internal static async Task WaitUntilAsync(Func<Task<bool>> condition)
    {
        for (var i = 0; i < 50; i++)
        {
            if (await condition())
            {
                return;
            }

            await Task.Delay(200);
        }

        Assert.Fail("condition not met in 10 s");
    }
}
