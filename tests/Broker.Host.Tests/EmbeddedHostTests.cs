using System.Net;
using System.Net.Http.Json;
using System.Text.RegularExpressions;
using Broker.Core.Callers;
using Broker.Testing;

namespace Broker.Host.Tests;

/// <summary>The one-command default: embedded Garnet, data directory, CLI — run as real processes.</summary>
public sealed partial class EmbeddedHostTests
{
    [GeneratedRegex("caller API key for local mail servers \\(shown once\\): (bk_[A-Za-z0-9_-]+)")]
    private static partial Regex CallerKeyLine();

    [GeneratedRegex("password: ([0-9a-z-]+)")]
    private static partial Regex PasswordLine();

    [Fact]
    public async Task FreshDataDirectory_RunsEverything_AndAppPasswordsSurviveACrash()
    {
        using var layout = new EmbeddedLayout();
        var first = BrokerProcess.Start(layout.Args);
        string key;
        string password;
        try
        {
            await first.WaitForOutputAsync("credential store: embedded Garnet", TimeSpan.FromSeconds(60));
            Assert.Contains($"listening on http://127.0.0.1:{layout.GatewayPort}", first.Output, StringComparison.Ordinal);
            key = CallerKeyLine().Match(first.Output).Groups[1].Value;
            Assert.NotEmpty(key);

            var (code, output) = await BrokerProcess.RunAsync([.. layout.Args, "app-password", "issue", "--user", "Dana@Example.com", "--name", "Thunderbird", "--scopes", "imap,smtp", "--lifetime", "2d"]);
            Assert.True(code == 0, output);
            password = PasswordLine().Match(output).Groups[1].Value;

            Assert.Equal(HttpStatusCode.OK, await ValidateAsync(layout, key, "dana@example.com", password));
            Assert.Equal(HttpStatusCode.Forbidden, await ValidateAsync(layout, key, "dana@example.com", password, "pop3"));
        }
        finally
        {
            await first.CrashAsync();
            await first.DisposeAsync();
        }

        // A crash right after the last write: the AOF must still hold the credential and the pepper file is reused.
        await using var second = BrokerProcess.Start(layout.Args);
        await second.WaitForOutputAsync("credential store: embedded Garnet", TimeSpan.FromSeconds(60));
        Assert.DoesNotContain("caller API key for local mail servers", second.Output, StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.OK, await ValidateAsync(layout, key, "dana@example.com", password));

        var (listCode, list) = await BrokerProcess.RunAsync([.. layout.Args, "app-password", "list", "--user", "dana@example.com"]);
        Assert.Equal(0, listCode);
        Assert.Contains("Thunderbird", list, StringComparison.Ordinal);
        Assert.Contains("imap", list, StringComparison.Ordinal);
        await second.StopAsync();
        Assert.True(second.HasExited);
    }

    [Fact]
    public async Task AllRoles_WithAnHttpsEndpoint_TheGatewayTakesIt_AndTheOtherRolesKeepTheirUrls()
    {
        using var layout = new EmbeddedLayout();
        using var key = System.Security.Cryptography.ECDsa.Create();
        var request = new System.Security.Cryptography.X509Certificates.CertificateRequest("CN=localhost", key, System.Security.Cryptography.HashAlgorithmName.SHA256);
        using var cert = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddDays(1));
        var certPath = Path.Combine(layout.DataDirectory, "gateway.pem");
        var keyPath = Path.Combine(layout.DataDirectory, "gateway.key");
        await File.WriteAllTextAsync(certPath, cert.ExportCertificatePem());
        await File.WriteAllTextAsync(keyPath, key.ExportPkcs8PrivateKeyPem());
        var httpsPort = FreePort.Get();

        await using var broker = BrokerProcess.Start([
            .. layout.Args,
            $"--Kestrel:Endpoints:Https:Url=https://127.0.0.1:{httpsPort}",
            $"--Kestrel:Endpoints:Https:Certificate:Path={certPath}",
            $"--Kestrel:Endpoints:Https:Certificate:KeyPath={keyPath}"]);
        await broker.WaitForOutputAsync("credential store: embedded Garnet", TimeSpan.FromSeconds(60));

        Assert.Contains($"broker gateway listening on https://127.0.0.1:{httpsPort}", broker.Output, StringComparison.Ordinal);
        Assert.Contains($"broker validation listening on http://127.0.0.1:{layout.ValidationPort}", broker.Output, StringComparison.Ordinal);
        Assert.Contains($"broker portal listening on http://localhost:{layout.PortalPort}", broker.Output, StringComparison.Ordinal);
        using var handler = new HttpClientHandler
        {
            // Trust exactly the certificate made above.
            ServerCertificateCustomValidationCallback = (_, presented, _, _) => presented?.Thumbprint == cert.Thumbprint,
        };
        using var client = new HttpClient(handler);
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync(new Uri($"https://127.0.0.1:{httpsPort}/health/live"))).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync(new Uri($"http://127.0.0.1:{layout.ValidationPort}/health/live"))).StatusCode);
    }

    [Fact]
    public async Task Cli_ServerNotRunning_SaysWhereItLookedForTheStore()
    {
        using var layout = new EmbeddedLayout();

        var (code, output) = await BrokerProcess.RunAsync([.. layout.Args, "apikey", "list"]);

        // It said "cannot reach the credential store at :" (the unset Redis:Configuration) and to check that setting.
        // Then, after some 17 s (connect, then the operation timeout in StackExchange.Redis's backlog),
        // it went on with a paragraph of that library's connection diagnostics.
        Assert.True(code == 4, output);
        Assert.Equal(
            $"error: cannot reach the credential store at 127.0.0.1:{layout.RedisPort} (the embedded Garnet of a running `broker`, Broker:EmbeddedRedisPort): no connection within 2 s. "
            + "Is `broker` running, with the same Broker:EmbeddedRedisPort? Without Redis:Configuration the command line uses the server's embedded store.",
            output.Trim());
    }

    [Fact]
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public async Task FreshDataDirectory_IsPrivateToTheServiceUser()
    {
        using var layout = new EmbeddedLayout();
        var data = Path.Combine(layout.DataDirectory, "data");
        await using var broker = BrokerProcess.Start([.. layout.Args, $"--Broker:DataDirectory={data}"]);
        await broker.WaitForOutputAsync("credential store: embedded Garnet", TimeSpan.FromSeconds(60));

        // It was 0755 with portal.db (password hashes, TOTP keys) and the AOF 0644 inside: readable by every local user.
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(data));
        Assert.True(File.Exists(Path.Combine(data, "portal.db")), broker.Output);
        Assert.True(File.Exists(Path.Combine(data, "pepper.key")), broker.Output);
    }

    [Theory]
    [InlineData("portal", true, false, 0)]
    [InlineData("gateway", false, true, 0)]
    [InlineData("validation", false, false, 70)]
    public void AfterStop_ARoleThatStoppedByItself_IsACrash_NotAStop(string stoppedBy, bool signalled, bool interrupted, int expected)
    {
        var (code, error) = Roles.BrokerHost.AfterStop(stoppedBy, signalled, interrupted);

        Assert.Equal(expected, code);
        if (expected == 0)
        {
            Assert.Null(error);
        }
        else
        {
            Assert.Contains("the validation role stopped by itself", error, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task Sigterm_DuringValidations_StopsTheGatewayFirst_NoFailedRequestsOrErrorsLogged()
    {
        using var layout = new EmbeddedLayout();
        // As fast as the loops below can ask: not this test's business to meet the per-source rate limit.
        await using var broker = BrokerProcess.Start([.. layout.Args, "--Broker:Gateway:RateLimitPermits=1000000"]);
        var (key, password) = await FirstRunWithAppPasswordAsync(broker, layout, "gus");
        Assert.Equal(HttpStatusCode.OK, await ValidateAsync(layout, key, "gus", password));

        // Mail servers keep asking while systemd stops the service: each answer is a real one, or no connection at all.
        var answers = new System.Collections.Concurrent.ConcurrentBag<HttpStatusCode>();
        using var stop = new CancellationTokenSource();
        var streams = Enumerable.Range(0, 4).Select(_ => Task.Run(async () =>
        {
            using var client = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{layout.GatewayPort}") };
            client.DefaultRequestHeaders.Add(CallerKeyOptions.HeaderName, key);
            while (!stop.IsCancellationRequested)
            {
                try
                {
                    using var response = await client.PostAsJsonAsync("/v1/validate", new { username = "gus", password, service = "imap", remoteIp = "192.0.2.1" });
                    answers.Add(response.StatusCode);
                }
                catch (HttpRequestException)
                {
                    // The gateway no longer listens (or closed a kept-alive connection): the mail server tries the next Broker.
                }
            }
        })).ToList();
        while (answers.Count < 50)
        {
            await Task.Delay(20);
        }

        // One request the gateway has taken but not forwarded yet (its body is still to come) when
        // SIGTERM arrives: the roles behind the gateway must still be there when it is forwarded.
        using var slow = new System.Net.Sockets.TcpClient();
        await slow.ConnectAsync(IPAddress.Loopback, layout.GatewayPort);
        var wire = slow.GetStream();
        var body = System.Text.Encoding.UTF8.GetBytes(System.Text.Json.JsonSerializer.Serialize(new { username = "gus", password, service = "imap", remoteIp = "192.0.2.1" }));
        await wire.WriteAsync(System.Text.Encoding.ASCII.GetBytes(
            $"POST /v1/validate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {body.Length}\r\n{CallerKeyOptions.HeaderName}: {key}\r\nConnection: close\r\n\r\n"));
        await Task.Delay(500);
        await broker.TerminateAsync();
        // Long enough for roles stopping alongside the gateway to be gone.
        await Task.Delay(1500);
        await wire.WriteAsync(body);
        using var reader = new StreamReader(wire);
        var statusLine = await reader.ReadLineAsync();

        Assert.True(await broker.WaitForExitAsync(TimeSpan.FromSeconds(30)) == 0, broker.Output);
        await stop.CancelAsync();
        await Task.WhenAll(streams);
        Assert.True(statusLine == "HTTP/1.1 200 OK", $"{statusLine}:\n{broker.Output}");
        Assert.True(answers.All(s => s == HttpStatusCode.OK), $"{string.Join(", ", answers.Where(s => s != HttpStatusCode.OK).Distinct())}:\n{broker.Output}");
        // The roles behind the gateway stopped while it still sent them requests and probes: proxy errors and failed probes were logged with stack traces.
        Assert.DoesNotContain("   at ", broker.Output, StringComparison.Ordinal);
        Assert.DoesNotContain("fail:", broker.Output, StringComparison.Ordinal);
        Assert.DoesNotContain("crit:", broker.Output, StringComparison.Ordinal);
        Assert.DoesNotContain("warn: Yarp", broker.Output, StringComparison.Ordinal);
    }

    [Fact]
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public async Task ExistingDataDirectoryOpenToOthers_IsMadePrivateAtStart()
    {
        // As an earlier release, or mkdir under the usual umask, left it: 0755, the portal database inside readable by all.
        using var layout = new EmbeddedLayout();
        var data = Path.Combine(layout.DataDirectory, "data");
        Directory.CreateDirectory(data, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);
        await using var broker = BrokerProcess.Start([.. layout.Args, $"--Broker:DataDirectory={data}"]);
        await broker.WaitForOutputAsync("credential store: embedded Garnet", TimeSpan.FromSeconds(60));

        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(data));
        Assert.Contains($"data directory {data} (Broker:DataDirectory) was open to other users (mode 0755): made it private (0700)", broker.StandardOutput, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Revocation_SurvivesACrash()
    {
        using var layout = new EmbeddedLayout();
        string key;
        string password;
        await using (var first = BrokerProcess.Start(layout.Args))
        {
            (key, password) = await FirstRunWithAppPasswordAsync(first, layout, "erin");
            var (revokeCode, revoked) = await BrokerProcess.RunAsync([.. layout.Args, "app-password", "revoke-all", "--user", "erin"]);
            Assert.True(revokeCode == 0, revoked);
            await first.CrashAsync();
        }

        await using var second = BrokerProcess.Start(layout.Args);
        await second.WaitForOutputAsync("credential store: embedded Garnet", TimeSpan.FromSeconds(60));
        Assert.Equal(HttpStatusCode.Forbidden, await ValidateAsync(layout, key, "erin", password));
    }

    [Fact]
    public async Task PepperRotation_EmbeddedDefault_OneStepAsTheAdminGuideSays()
    {
        using var layout = new EmbeddedLayout();
        string key;
        string password;
        await using (var first = BrokerProcess.Start(layout.Args))
        {
            (key, password) = await FirstRunWithAppPasswordAsync(first, layout, "rita");
            await first.StopAsync();
        }

        // Stop, move pepper.key to pepper.old, start with it as the rotation file: a new pepper is generated.
        var pepper = Path.Combine(layout.DataDirectory, "pepper.key");
        var old = Path.Combine(layout.DataDirectory, "pepper.old");
        File.Move(pepper, old);
        string[] rotating = [.. layout.Args, $"--Broker:Pepper:RotationFile={old}"];
        await using var second = BrokerProcess.Start(rotating);
        await second.WaitForOutputAsync("credential store: embedded Garnet", TimeSpan.FromSeconds(60));
        Assert.NotEqual(await File.ReadAllTextAsync(old), await File.ReadAllTextAsync(pepper));
        var (_, before) = await BrokerProcess.RunAsync([.. rotating, "pepper", "status"]);
        Assert.Contains("under another pepper: 1", before, StringComparison.Ordinal);

        Assert.Equal(HttpStatusCode.OK, await ValidateAsync(layout, key, "rita", password));

        var (code, after) = await BrokerProcess.RunAsync([.. rotating, "pepper", "status"]);
        Assert.True(code == 0, after);
        Assert.Contains(": 1 app password(s)", after, StringComparison.Ordinal);
        Assert.Contains("can be removed", after, StringComparison.Ordinal);
        await second.StopAsync();

        // The rotation ended (setting removed): the moved app password works under the new pepper alone.
        await using var third = BrokerProcess.Start(layout.Args);
        await third.WaitForOutputAsync("credential store: embedded Garnet", TimeSpan.FromSeconds(60));
        Assert.Equal(HttpStatusCode.OK, await ValidateAsync(layout, key, "rita", password));
    }

    /// <summary>
    /// Waits until a broker started on a fresh data directory is up, reads the caller key its first
    /// run printed, and issues an IMAP app password for <paramref name="user"/> with the command line.
    /// </summary>
    private static async Task<(string Key, string Password)> FirstRunWithAppPasswordAsync(BrokerProcess broker, EmbeddedLayout layout, string user)
    {
        await broker.WaitForOutputAsync("credential store: embedded Garnet", TimeSpan.FromSeconds(60));
        var key = CallerKeyLine().Match(broker.Output).Groups[1].Value;
        var (code, issued) = await BrokerProcess.RunAsync([.. layout.Args, "app-password", "issue", "--user", user, "--name", "Phone", "--scopes", "imap"]);
        Assert.True(code == 0, issued);
        return (key, PasswordLine().Match(issued).Groups[1].Value);
    }

    private static async Task<HttpStatusCode> ValidateAsync(EmbeddedLayout layout, string key, string user, string password, string service = "imap")
    {
        using var client = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{layout.GatewayPort}") };
        client.DefaultRequestHeaders.Add(CallerKeyOptions.HeaderName, key);
        // The gateway may still be waiting for its first health probe of the validation instance.
        for (var attempt = 0; ; attempt++)
        {
            using var response = await client.PostAsJsonAsync("/v1/validate", new { username = user, password, service, remoteIp = "192.0.2.1" });
            if (response.StatusCode != HttpStatusCode.ServiceUnavailable || attempt == 50)
            {
                return response.StatusCode;
            }

            await Task.Delay(100);
        }
    }
}
