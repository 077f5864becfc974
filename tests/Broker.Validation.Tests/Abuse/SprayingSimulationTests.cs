using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Json;
using System.Text.RegularExpressions;
using Broker.Core.AppPasswords;
using Broker.Testing;
using Xunit.Abstractions;

namespace Broker.Validation.Tests.Abuse;

/// <summary>
/// Password spraying through the real validation API and a real redis-server, while real users
/// keep logging in from their own networks. Figures are printed and recorded in docs/security.md.
/// </summary>
public sealed partial class SprayingSimulationTests(ITestOutputHelper output)
{
    private const int Users = 100;
    private const int AttackNetworks = 20;
    private const int AttemptsPerNetwork = 150;

    [GeneratedRegex(@"Validation denied \S+: (\w+), service imap from (\d+\.\d+\.\d+)\.\d+")]
    private static partial Regex DeniedLine();

    [Fact]
    public async Task Spraying_NeverSucceeds_EverySourceIsThrottled_RealUsersKeepWorking()
    {
        await using var redis = await RedisServer.StartAsync();
        using var logs = new CapturingLoggerProvider();
        var config = BrokerApps.BaseConfig(redis.Configuration);
        config["Logging:LogLevel:Broker"] = "Information";
        await using var app = await BrokerApps.StartValidationAsync(config, logs: logs);
        var users = await IssueUsersAsync(app);

        var attackerSuccesses = 0;
        var realFailures = new ConcurrentBag<string>();
        var attackers = Enumerable.Range(0, AttackNetworks).Select(n => Task.Run(async () =>
        {
            using var client = app.CreateClient();
            for (var i = 0; i < AttemptsPerNetwork; i++)
            {
                var victim = users[(n * 7 + i) % Users];
                // Half sprayed dictionary passwords, half random strings in app-password shape.
                var guess = i % 2 == 0 ? $"Winter{2020 + (i % 6)}!" : AppPasswordFormat.Generate();
                using var r = await client.PostAsJsonAsync("/v1/validate", new { username = victim.User, password = guess, service = "imap", remoteIp = $"198.18.{n}.{1 + (i % 200)}" });
                if (r.StatusCode == HttpStatusCode.OK)
                {
                    Interlocked.Increment(ref attackerSuccesses);
                }
            }
        }));
        var realUsers = Task.Run(async () =>
        {
            using var client = app.CreateClient();
            for (var round = 0; round < 5; round++)
            {
                foreach (var u in users)
                {
                    using var r = await client.PostAsJsonAsync("/v1/validate", new { username = u.User, password = u.Secret, service = "imap", remoteIp = u.HomeIp });
                    if (r.StatusCode != HttpStatusCode.OK)
                    {
                        realFailures.Add($"{u.User}: {r.StatusCode}");
                    }
                }
            }
        });
        await Task.WhenAll([.. attackers, realUsers]);

        var perSource = logs.Lines.Select(l => DeniedLine().Match(l)).Where(m => m.Success && m.Groups[2].Value.StartsWith("198.18.", StringComparison.Ordinal))
            .GroupBy(m => m.Groups[2].Value)
            .ToDictionary(g => g.Key, g => (Checked: g.Count(m => m.Groups[1].Value != "Throttled"), Throttled: g.Count(m => m.Groups[1].Value == "Throttled")));
        output.WriteLine($"attempts: {AttackNetworks * AttemptsPerNetwork} from {AttackNetworks} networks against {Users} users; attacker successes: {attackerSuccesses}");
        output.WriteLine($"real-user logins: {Users * 5}, failed: {realFailures.Count}");
        output.WriteLine($"per source: attempts answered before throttling max {perSource.Values.Max(v => v.Checked)}, min throttled {perSource.Values.Min(v => v.Throttled)}");

        Assert.Equal(0, attackerSuccesses);
        Assert.Empty(realFailures);
        Assert.Equal(AttackNetworks, perSource.Count);
        // Every source is cut off close to the per-network limit (50); the slack covers requests
        // already in flight when the fire-and-forget counter crossed it.
        Assert.All(perSource.Values, v => Assert.InRange(v.Checked, 1, 50 + 10));
        Assert.All(perSource.Values, v => Assert.True(v.Throttled >= AttemptsPerNetwork - 60, $"only {v.Throttled} throttled"));
        foreach (var n in Enumerable.Range(0, AttackNetworks))
        {
            Assert.True(await app.AppPasswords.IsNetworkThrottledAsync($"198.18.{n}.1"));
        }
    }

    [Fact]
    public async Task RedisRestartMidRun_CountersAndCredentialsSurvive_NoAllowWhileDown()
    {
        await using var redis = await RedisServer.StartAsync();
        var config = BrokerApps.BaseConfig(redis.Configuration);
        config["Redis:OperationTimeout"] = "00:00:01";
        await using var app = await BrokerApps.StartValidationAsync(config);
        using var client = app.CreateClient();
        var user = "survivor@example.com";
        var issued = await app.AppPasswords.IssueAsync(user, "A", ["imap"], null);

        for (var i = 0; i < 60; i++)
        {
            using var r = await client.PostAsJsonAsync("/v1/validate", new { username = $"sprayed{i}", password = "Autumn2025!", service = "imap", remoteIp = "198.19.7.1" });
        }

        for (var i = 0; i < 50 && !await app.AppPasswords.IsNetworkThrottledAsync("198.19.7.1"); i++)
        {
            await Task.Delay(20);
        }

        Assert.True(await app.AppPasswords.IsNetworkThrottledAsync("198.19.7.1"));

        await redis.StopAsync();
        var whileDown = new List<HttpStatusCode>();
        foreach (var ip in new[] { "198.19.7.1", "192.0.2.50" })
        {
            using var r = await client.PostAsJsonAsync("/v1/validate", new { username = user, password = issued.Secret, service = "imap", remoteIp = ip });
            whileDown.Add(r.StatusCode);
        }

        await redis.StartAgainAsync();
        var home = HttpStatusCode.ServiceUnavailable;
        for (var i = 0; i < 100 && home == HttpStatusCode.ServiceUnavailable; i++)
        {
            await Task.Delay(100);
            using var r = await client.PostAsJsonAsync("/v1/validate", new { username = user, password = issued.Secret, service = "imap", remoteIp = "192.0.2.50" });
            home = r.StatusCode;
        }

        Assert.All(whileDown, s => Assert.Equal(HttpStatusCode.ServiceUnavailable, s));
        Assert.Equal(HttpStatusCode.OK, home);
        // The sprayer's counters came back from the AOF: still throttled, even with the right password.
        Assert.True(await app.AppPasswords.IsNetworkThrottledAsync("198.19.7.1"));
        using var fromSprayer = await client.PostAsJsonAsync("/v1/validate", new { username = user, password = issued.Secret, service = "imap", remoteIp = "198.19.7.1" });
        Assert.Equal(HttpStatusCode.Forbidden, fromSprayer.StatusCode);
    }

    private static async Task<List<(string User, string Secret, string HomeIp)>> IssueUsersAsync(RunningApp app)
    {
        var users = new List<(string, string, string)>();
        for (var i = 0; i < Users; i++)
        {
            var user = $"staff{i}-{Guid.NewGuid():N}@example.com";
            var issued = await app.AppPasswords.IssueAsync(user, "Thunderbird", ["imap"], null);
            users.Add((user, issued.Secret, $"100.64.{i}.10"));
        }

        return users;
    }
}
