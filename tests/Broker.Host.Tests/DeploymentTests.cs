using System.Net;
using System.Net.Http.Json;
using Broker.Core.Callers;
using Broker.Testing;

namespace Broker.Host.Tests;

/// <summary>Scaled-out shape: each role its own process, one shared real redis-server.</summary>
public sealed class DeploymentTests(RedisFixture redis) : IClassFixture<RedisFixture>
{
    private static readonly string Pepper = Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32));

    private string[] Shared => [$"--Redis:Configuration={redis.Server.Configuration}", $"--Broker:Pepper:Value={Pepper}"];

    [Fact]
    public async Task TwoValidationProcessesBehindAGatewayProcess_ShareOneRedis()
    {
        int v1 = FreePort.Get(), v2 = FreePort.Get(), gw = FreePort.Get();
        await using var validation1 = BrokerProcess.Start([.. Shared, "--Broker:Roles=validation", $"--Broker:Urls:validation=http://127.0.0.1:{v1}"]);
        await using var validation2 = BrokerProcess.Start([.. Shared, "--Broker:Roles=validation", $"--Broker:Urls:validation=http://127.0.0.1:{v2}"]);
        await using var gateway = BrokerProcess.Start(
        [
            "--Broker:Roles=gateway", $"--Broker:Urls:gateway=http://127.0.0.1:{gw}",
            $"--Broker:Gateway:ValidationDestinations:v1=http://127.0.0.1:{v1}",
            $"--Broker:Gateway:ValidationDestinations:v2=http://127.0.0.1:{v2}",
        ]);
        foreach (var p in new[] { validation1, validation2, gateway })
        {
            // The host's last start-up line, printed once every role listens ("listening on" alone
            // also matches Kestrel's own log line, which comes earlier).
            await p.WaitForOutputAsync("credential store:", TimeSpan.FromSeconds(60));
        }

        Assert.Contains("external Redis", validation1.Output, StringComparison.Ordinal);
        Assert.Contains("credential store: none", gateway.Output, StringComparison.Ordinal);
        var (_, keyOutput) = await BrokerProcess.RunAsync([.. Shared, "apikey", "create", "dovecot-1"]);
        var key = System.Text.RegularExpressions.Regex.Match(keyOutput, "api key \\(shown once\\): (bk_[A-Za-z0-9_-]+)").Groups[1].Value;
        var (_, issued) = await BrokerProcess.RunAsync([.. Shared, "app-password", "issue", "--user", "frank", "--name", "Outlook", "--scopes", "imap"]);
        var password = System.Text.RegularExpressions.Regex.Match(issued, "password: ([0-9a-z-]+)").Groups[1].Value;

        using var client = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{gw}") };
        client.DefaultRequestHeaders.Add(CallerKeyOptions.HeaderName, key);
        var statuses = new List<HttpStatusCode>();
        for (var i = 0; i < 100 && statuses.Count(s => s == HttpStatusCode.OK) < 10; i++)
        {
            // New keys reach running validators on their next refresh (default 10 s): poll.
            using var response = await client.PostAsJsonAsync("/v1/validate", new { username = "frank", password, service = "imap" });
            statuses.Add(response.StatusCode);
            Assert.True(response.StatusCode != HttpStatusCode.Forbidden, await response.Content.ReadAsStringAsync() + validation1.Output + validation2.Output + gateway.Output);
            if (response.StatusCode != HttpStatusCode.OK)
            {
                await Task.Delay(250);
            }
        }

        Assert.Equal(10, statuses.Count(s => s == HttpStatusCode.OK));

        // One validator dies; the gateway routes around it at once, not only once its readiness
        // probe has failed twice (4 s): a login balanced onto the dead instance in that time goes
        // to the other one instead of getting a 502.
        await validation1.CrashAsync();
        for (var i = 0; i < 40; i++)
        {
            using var response = await client.PostAsJsonAsync("/v1/validate", new { username = "frank", password, service = "imap" });
            Assert.True(response.StatusCode == HttpStatusCode.OK, $"login {i} after the crash: {(int)response.StatusCode}\n{gateway.Output}");
        }

        await Task.Delay(TimeSpan.FromSeconds(5));
        for (var i = 0; i < 10; i++)
        {
            using var response = await client.PostAsJsonAsync("/v1/validate", new { username = "frank", password, service = "imap" });
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        // It comes back: once it passes its readiness probe it gets logins again within a few
        // seconds, not only after YARP's 60 s passive-check window (the logins that failed to
        // connect to it above took it out passively too).
        await using var restarted = BrokerProcess.Start([.. Shared, "--Broker:Roles=validation", $"--Broker:Urls:validation=http://127.0.0.1:{v1}"]);
        await restarted.WaitForOutputAsync("credential store:", TimeSpan.FromSeconds(60));
        using var direct = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{v1}") };
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        while (!(await direct.GetStringAsync("/metrics")).Contains("result=\"allow\"", StringComparison.Ordinal))
        {
            Assert.True(DateTime.UtcNow < deadline, "the restarted validation instance got no login within 20 s\n" + gateway.Output);
            using var response = await client.PostAsJsonAsync("/v1/validate", new { username = "frank", password, service = "imap" });
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            await Task.Delay(200);
        }
    }

    [Fact]
    public async Task PortalAlone_WithItsDatabaseAndKeysElsewhere_CreatesNoDataDirectory_AndAnswersHealth()
    {
        using var elsewhere = new TempDirectory();
        var data = Path.Combine(elsewhere.Path, "data");
        int portal = FreePort.Get(), validation = FreePort.Get();
        await using var p = BrokerProcess.Start(
        [
            .. Shared, "--Broker:Roles=portal", $"--Broker:Urls:portal=http://127.0.0.1:{portal}",
            $"--Broker:Portal:PublicOrigin=http://localhost:{portal}",
            $"--Broker:Portal:ConnectionString=Data Source={Path.Combine(elsewhere.Path, "accounts.db")}",
            $"--Broker:Portal:KeysDirectory={Path.Combine(elsewhere.Path, "keys")}",
            $"--Broker:DataDirectory={data}",
        ]);
        await using var v = BrokerProcess.Start([.. Shared, "--Broker:Roles=validation", $"--Broker:Urls:validation=http://127.0.0.1:{validation}", $"--Broker:DataDirectory={data}"]);
        await p.WaitForOutputAsync("credential store:", TimeSpan.FromSeconds(60));
        await v.WaitForOutputAsync("credential store:", TimeSpan.FromSeconds(60));

        // Every role answers its health endpoints in the same format, so one probe setting fits all.
        foreach (var port in new[] { portal, validation })
        {
            using var client = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") };
            foreach (var path in new[] { "/health/live", "/health/ready" })
            {
                using var response = await client.GetAsync(path);
                Assert.Equal(HttpStatusCode.OK, response.StatusCode);
                Assert.Equal("text/plain", response.Content.Headers.ContentType?.MediaType);
                Assert.Equal("Healthy", await response.Content.ReadAsStringAsync());
            }
        }

        Assert.True(File.Exists(Path.Combine(elsewhere.Path, "accounts.db")), p.Output);
        Assert.False(Directory.Exists(data), "the portal made a data directory it does not use\n" + p.Output);
    }

    [Fact]
    public async Task ExternalRedisWithoutPepper_RefusesToStart_NamingTheSetting()
    {
        await using var p = BrokerProcess.Start($"--Redis:Configuration={redis.Server.Configuration}", "--Broker:Roles=validation", $"--Broker:Urls:validation=http://127.0.0.1:{FreePort.Get()}");

        var code = await p.WaitForExitAsync(TimeSpan.FromSeconds(60));

        Assert.NotEqual(0, code);
        Assert.Contains("No pepper configured", p.Output, StringComparison.Ordinal);
        Assert.Contains("Broker:Pepper:File", p.Output, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("gateway", "--Broker:Gateway:AllowedNetworks:0=10.0.0.0/99", "10.0.0.0/99")]
    [InlineData("validation", "--Broker:Callers:RefreshInterval=00:00:00", "Broker:Callers:RefreshInterval must be between")]
    public async Task BadConfiguration_StopsStartUpWithAClearMessage(string role, string setting, string message)
    {
        await using var p = BrokerProcess.Start([.. Shared, $"--Broker:Roles={role}", $"--Broker:Urls:{role}=http://127.0.0.1:{FreePort.Get()}", setting]);

        var code = await p.WaitForExitAsync(TimeSpan.FromSeconds(60));

        Assert.NotEqual(0, code);
        Assert.Contains(message, p.Output, StringComparison.Ordinal);
        // The host's own "Hosting failed to start" came first, with the whole stack trace.
        Assert.DoesNotContain("   at ", p.Output, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("app-password issue --name x --scopes imap", 2, "--user is required")]
    [InlineData("app-password issue --user u --name x --scopes telnet", 1, "Unknown scope 'telnet'")]
    [InlineData("app-password issue --user u --name x --scopes imap --lifetime soon", 2, "is not a lifetime")]
    [InlineData("app-password frobnicate", 2, "unknown command")]
    [InlineData("user disable", 2, "USER is required")]
    [InlineData("app-password allow-networks --user u --id x --networks 10.0.0.0/99", 1, "is not an address or network")]
    [InlineData("app-password allow-networks --user u --id x", 2, "--networks is required (--networks= to remove the limit)")]
    [InlineData("user new-network-approval u maybe", 2, "is not on, off or default")]
    // A mistyped or unknown flag was ignored: the app password was issued without it (--lifetme: 30 days, not 1 hour).
    [InlineData("app-password issue --user u --name x --scope imap", 2, "unknown flag --scope: 'app-password issue' takes --user --name --scopes --lifetime. Did you mean --scopes?")]
    [InlineData("app-password issue --user u --name x --scopes imap --lifetme 1h", 2, "unknown flag --lifetme: 'app-password issue' takes --user --name --scopes --lifetime. Did you mean --lifetime?")]
    [InlineData("app-password renew --user u --id x --lifetim 2h", 2, "Did you mean --lifetime?")]
    [InlineData("user disable --user u", 2, "unknown flag --user: 'user disable' takes USER.")]
    // A flag given twice: the last one won.
    [InlineData("app-password issue --user u --user v --name x --scopes imap", 2, "--user is given more than once")]
    // A flag without a value at the end was an unhandled exception with a stack trace.
    [InlineData("app-password list --user", 2, "--user needs a value")]
    // A flag without a value took the next flag as its value (an app password named "--lifetime", 30 days).
    [InlineData("app-password issue --user u --name --lifetime 1h --scopes imap", 2, "--name needs a value")]
    [InlineData("apikey list --", 2, "'--' is not a flag")]
    // Words too many were ignored: only alice was disabled, "bob" was dropped.
    [InlineData("user disable alice bob", 2, "unexpected argument 'bob': 'user disable' takes USER")]
    [InlineData("apikey create dovecot extra", 2, "unexpected argument 'extra'")]
    [InlineData("app-password list alice", 2, "unexpected argument 'alice': 'app-password list' takes --user")]
    [InlineData("user new-network-approval u on off", 2, "unexpected argument 'off'")]
    // A bare number was read by TimeSpan as days: --lifetime 12 gave 12 days.
    [InlineData("app-password issue --user u --name x --scopes imap --lifetime 12", 2, "'12' has no unit: write 12h for hours or 12d for days.")]
    [InlineData("app-password approve-network --user u --id x --network 203.0.113.5", 2, "'203.0.113.5' is not a network")]
    // Settings: a space instead of "=" left the value behind as a word; a value not of its type, or a
    // connection string with an unknown option, was an unhandled exception.
    [InlineData("--Redis:Configuration 127.0.0.1:6379 apikey list", 2, "write settings as --Redis:Configuration=VALUE")]
    [InlineData("--Redis:OperationTimeout=soon apikey list", 3, "Failed to convert configuration value 'soon' at 'Redis:OperationTimeout'")]
    [InlineData("--Broker:EmbeddedRedisPort=high apikey list", 3, "at 'Broker:EmbeddedRedisPort'")]
    [InlineData("--Redis:Configuration=127.0.0.1:6379,foo=bar apikey list", 3, "Redis:Configuration is not a Redis connection string")]
    // A word after serve was ignored and every role started.
    [InlineData("serve gateway", 2, "serve takes only --Section:Key=value settings, not 'gateway'")]
    public async Task Cli_BadInput_GetsAClearMessageAndNonZeroExit(string command, int exitCode, string message)
    {
        var (code, output) = await BrokerProcess.RunAsync([.. Shared, .. command.Split(' ')]);

        Assert.True(code == exitCode, $"exit {code}, expected {exitCode}:\n{output}");
        Assert.Contains(message, output, StringComparison.Ordinal);
        Assert.DoesNotContain("Unhandled exception", output, StringComparison.Ordinal);
        Assert.DoesNotContain("password:", output, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("help")]
    [InlineData("--help")]
    [InlineData("-h")]
    [InlineData("app-password --help")]
    [InlineData("app-password issue --user u --help")]
    [InlineData("serve --help")]
    public async Task Cli_Help_PrintsTheUsageAndExitsZero(string command)
    {
        var (code, output) = await BrokerProcess.RunAsync([.. Shared, .. command.Split(' ')]);

        Assert.True(code == 0, output);
        Assert.Contains("usage:", output, StringComparison.Ordinal);
        Assert.Contains("exit codes:", output, StringComparison.Ordinal);
    }

    /// <summary>Values that cannot go through the space-split theory above: empty, with spaces or control characters.</summary>
    [Theory]
    // A caller name the store refuses was an unhandled ArgumentException with a stack trace.
    [InlineData(1, "The caller name must be 1 to 64 printable characters.", "apikey", "create", "")]
    [InlineData(1, "The caller name must be 1 to 64 printable characters.", "apikey", "create", "0123456789012345678901234567890123456789012345678901234567890123456789")]
    [InlineData(1, "The caller name must be 1 to 64 printable characters.", "apikey", "create", "dove\u001b[31mcot")]
    [InlineData(2, "unexpected argument 'Phone'", "app-password", "issue", "--user", "u", "--name", "My", "Phone", "--scopes", "imap")]
    [InlineData(2, "--name is required", "app-password", "issue", "--user", "u", "--name", "  ", "--scopes", "imap")]
    // Control characters in what is echoed back are shown, not sent to the terminal.
    [InlineData(1, "The username is empty, too long or contains control characters.", "app-password", "list", "--user", "al\u001b[2Jice")]
    [InlineData(2, "unexpected argument 'x\\u001b[2Jy'", "apikey", "list", "x\u001b[2Jy")]
    public async Task Cli_BadValues_GetAClearMessageAndNonZeroExit(int exitCode, string message, params string[] command)
    {
        var (code, output) = await BrokerProcess.RunAsync([.. Shared, .. command]);

        Assert.True(code == exitCode, $"exit {code}, expected {exitCode}:\n{output}");
        Assert.Contains(message, output, StringComparison.Ordinal);
        Assert.DoesNotContain("Unhandled exception", output, StringComparison.Ordinal);
        Assert.DoesNotContain("\u001b", output, StringComparison.Ordinal);
        // A refused name lists no header that reads like "no app passwords".
        Assert.DoesNotContain("id\tname", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Cli_UsernameWithInvisibleCharacter_IsRefusedAndNamed()
    {
        using var directory = new TempDirectory();
        var portal = $"--Broker:Portal:ConnectionString=Data Source={Path.Combine(directory.Path, "portal.db")}";

        var create = await BrokerProcess.RunAsync([.. Shared, portal, "user", "create", "pat\u200B@example.com"]);
        var issue = await BrokerProcess.RunAsync([.. Shared, "app-password", "issue", "--user", "pat\u202E@example.com", "--name", "Phone", "--scopes", "imap"]);

        Assert.True(create.ExitCode == 1, create.Output);
        Assert.Contains("invisible character U+200B", create.Output, StringComparison.Ordinal);
        Assert.True(issue.ExitCode == 1, issue.Output);
        Assert.Contains("invisible character U+202E", issue.Output, StringComparison.Ordinal);
        Assert.DoesNotContain("Unhandled exception", create.Output + issue.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Cli_StoreDown_SaysSoAndExitsNonZero()
    {
        var port = FreePort.Get();
        var (code, output) = await BrokerProcess.RunAsync($"--Redis:Configuration=127.0.0.1:{port},connectTimeout=300,password=hunter2-not-for-screens", $"--Broker:Pepper:Value={Pepper}", "app-password", "list", "--user", "x");

        Assert.Equal(4, code);
        // One line, naming the setting; it was StackExchange.Redis's paragraph of diagnostics (after the operation timeout).
        Assert.Equal(
            $"error: cannot reach the credential store at 127.0.0.1:{port},connectTimeout=300,password=***** (Redis:Configuration): "
            + "no connection within 2 s (connectTimeout in Redis:Configuration). Is Redis up, and is Redis:Configuration right?",
            output.Trim());
        // The connection string was echoed whole, Redis password included.
        Assert.DoesNotContain("hunter2", output, StringComparison.Ordinal);
        Assert.DoesNotContain("unavailable..", output, StringComparison.Ordinal);
        // No list header that would read as "no app passwords".
        Assert.DoesNotContain("id\tname", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Cli_Interrupted_SaysSoAndExits130()
    {
        // A store that takes the connection but does not answer writes, and a minute before the CLI gives up: Ctrl+C comes first.
        await using var store = await RedisServer.StartAsync();
        await using (var admin = await StackExchange.Redis.ConnectionMultiplexer.ConnectAsync(store.Configuration + ",allowAdmin=true"))
        {
            await admin.GetDatabase().ExecuteAsync("CLIENT", "PAUSE", "60000", "WRITE");
        }

        await using var p = BrokerProcess.Start($"--Redis:Configuration={store.Configuration}", "--Redis:OperationTimeout=00:01:00", $"--Broker:Pepper:Value={Pepper}", "apikey", "create", "paused");
        await Task.Delay(TimeSpan.FromSeconds(5));

        await p.InterruptAsync();
        var code = await p.WaitForExitAsync(TimeSpan.FromSeconds(30));

        // It was an unhandled TaskCanceledException (exit 134, a stack trace). Then, with a store that
        // had taken the command, it waited out the operation timeout: closing the connection queued
        // QUIT behind the unanswered command.
        Assert.True(code == 130, $"exit {code}:\n{p.Output}");
        Assert.Contains("error: interrupted", p.Output, StringComparison.Ordinal);
        Assert.DoesNotContain("Unhandled exception", p.Output, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("user", "create", "pat@example.com")]
    [InlineData("user", "create-admin", "pat@example.com")]
    [InlineData("user", "enrollment-link", "admin")]
    public async Task Cli_PortalAccountCommands_WithoutAPortalDatabase_AreRefusedAndCreateNothing(params string[] command)
    {
        // The command line run from another working directory: its default data directory is not the server's.
        using var elsewhere = new TempDirectory();
        var data = Path.Combine(elsewhere.Path, "data");

        var (code, output) = await BrokerProcess.RunAsync([.. Shared, $"--Broker:DataDirectory={data}", .. command]);

        // It made a new data directory (0755) with a new, empty portal.db, and the account and
        // one-time link there, which the portal knew nothing of.
        Assert.True(code == 3, output);
        Assert.Contains($"error: no portal database at {Path.Combine(data, "portal.db")}: the command line does not create one (the portal does, at its first start). "
            + "Run the command in the server's working directory, or give it the server's data directory: --Broker:DataDirectory=PATH.", output, StringComparison.Ordinal);
        Assert.DoesNotContain("enrollment link", output, StringComparison.Ordinal);
        Assert.False(Directory.Exists(data));
    }

    [Fact]
    public async Task Cli_PortalDatabaseUnreachable_SaysSoAndExits4()
    {
        var unreachable = $"--Broker:Portal:ConnectionString=Data Source={Path.Combine(Path.GetTempPath(), $"missing-{Guid.NewGuid():N}", "portal.db")}";

        var create = await BrokerProcess.RunAsync([.. Shared, unreachable, "user", "create", "pat@example.com"]);
        var disable = await BrokerProcess.RunAsync([.. Shared, unreachable, "user", "disable", "pat@example.com"]);

        // Both were unhandled SqliteExceptions (the process aborted with a stack trace).
        Assert.True(create.ExitCode == 4, create.Output);
        Assert.Contains("cannot use the portal database", create.Output, StringComparison.Ordinal);
        Assert.Contains("unable to open database file", create.Output, StringComparison.Ordinal);
        Assert.DoesNotContain("Unhandled exception", create.Output, StringComparison.Ordinal);
        Assert.True(disable.ExitCode == 4, disable.Output);
        // The mail-login part is done (and said so) before the portal step fails.
        Assert.Contains("disabled pat@example.com for mail login and revoked 0 app password(s)", disable.Output, StringComparison.Ordinal);
        Assert.Contains("cannot use the portal database", disable.Output, StringComparison.Ordinal);
        Assert.DoesNotContain("Unhandled exception", disable.Output, StringComparison.Ordinal);
    }
}
