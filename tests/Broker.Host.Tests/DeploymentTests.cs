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

        // One validator dies; the gateway routes around it.
        await validation1.CrashAsync();
        await Task.Delay(TimeSpan.FromSeconds(5));
        for (var i = 0; i < 10; i++)
        {
            using var response = await client.PostAsJsonAsync("/v1/validate", new { username = "frank", password, service = "imap" });
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }
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
    }

    [Theory]
    [InlineData("app-password issue --name x --scopes imap", "--user is required")]
    [InlineData("app-password issue --user u --name x --scopes telnet", "Unknown scope 'telnet'")]
    [InlineData("app-password issue --user u --name x --scopes imap --lifetime soon", "is not a lifetime")]
    [InlineData("app-password frobnicate", "unknown command")]
    [InlineData("user disable", "USER is required")]
    [InlineData("app-password allow-networks --user u --id x --networks 10.0.0.0/99", "is not an address or network")]
    [InlineData("app-password allow-networks --user u --id x", "--networks is required (--networks= to remove the limit)")]
    [InlineData("user new-network-approval u maybe", "is not on, off or default")]
    public async Task Cli_BadInput_GetsAClearMessageAndNonZeroExit(string command, string message)
    {
        var (code, output) = await BrokerProcess.RunAsync([.. Shared, .. command.Split(' ')]);

        Assert.NotEqual(0, code);
        Assert.Contains(message, output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Cli_StoreDown_SaysSoAndExitsNonZero()
    {
        var (code, output) = await BrokerProcess.RunAsync($"--Redis:Configuration=127.0.0.1:{FreePort.Get()},connectTimeout=300", $"--Broker:Pepper:Value={Pepper}", "app-password", "list", "--user", "x");

        Assert.Equal(4, code);
        Assert.Contains("cannot reach the credential store", output, StringComparison.Ordinal);
    }
}
