using System.Net;
using System.Net.Http.Json;
using Broker.Core.Callers;
using Broker.Testing;
using Broker.Validation;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;

namespace Broker.Gateway.Tests.Routing;

/// <summary>The YARP front door in front of real validation instances backed by a real redis-server.</summary>
public sealed class GatewayTests(RedisFixture redis) : IClassFixture<RedisFixture>
{
    private static Dictionary<string, string?> GatewayConfig(params RunningApp[] destinations)
    {
        var config = new Dictionary<string, string?>
        {
            ["Logging:LogLevel:Default"] = "Warning",
            ["Broker:Gateway:HealthCheckInterval"] = "00:00:00.200",
            ["Broker:Gateway:HealthCheckTimeout"] = "00:00:00.500",
        };
        for (var i = 0; i < destinations.Length; i++)
        {
            config[$"Broker:Gateway:ValidationDestinations:v{i}"] = destinations[i].Address.ToString();
        }

        return config;
    }

    /// <summary>A validation instance with one extra endpoint that reports which instance answered and whom it saw.</summary>
    private Task<RunningApp> StartValidation(string name) =>
        BrokerApps.StartAsync(
            BrokerApps.BaseConfig(redis.Server.Configuration, PepperForAll),
            s => s.AddBrokerValidation(),
            app =>
            {
                app.MapBrokerValidation();
                app.MapGet("/v1/whoami", (HttpContext c) => $"{name} {c.Connection.RemoteIpAddress}");
            });

    private static readonly string PepperForAll = Convert.ToBase64String(new byte[32]);

    private static HttpClient Client(RunningApp gateway, string? forwardedFor = null)
    {
        var client = gateway.CreateClient();
        if (forwardedFor is not null)
        {
            client.DefaultRequestHeaders.Add("X-Forwarded-For", forwardedFor);
        }

        return client;
    }

    [Fact]
    public async Task ValidationRoute_ForwardsToAValidationInstance()
    {
        await using var validation = await StartValidation("a");
        await using var gateway = await BrokerApps.StartGatewayAsync(GatewayConfig(validation));
        var issued = await validation.AppPasswords.IssueAsync("carol@example.com", "A", ["imap"], null);
        using var client = Client(gateway);

        using var response = await client.PostAsJsonAsync("/v1/validate", new { username = "carol@example.com", password = issued.Secret, service = "imap" });

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    [Fact]
    public async Task SourceOutsideAllowedNetworks_Gets403BeforeAnyValidation()
    {
        await using var validation = await StartValidation("a");
        var config = GatewayConfig(validation);
        config["Broker:Gateway:AllowedNetworks:0"] = "192.0.2.0/24";
        await using var gateway = await BrokerApps.StartGatewayAsync(config);
        using var client = Client(gateway);

        using var response = await client.PostAsJsonAsync("/v1/validate", new { username = "x", password = "y", service = "imap" });
        using var health = await client.GetAsync("/health/live");

        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
        Assert.Contains("not an allowed mail server", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.OK, health.StatusCode);
    }

    [Fact]
    public async Task PerSourceRateLimit_Returns429PastTheLimit()
    {
        await using var validation = await StartValidation("a");
        var config = GatewayConfig(validation);
        config["Broker:Gateway:RateLimitPermits"] = "5";
        config["Broker:Gateway:RateLimitWindow"] = "00:01:00";
        await using var gateway = await BrokerApps.StartGatewayAsync(config);
        using var client = Client(gateway);

        var statuses = new List<HttpStatusCode>();
        for (var i = 0; i < 8; i++)
        {
            using var response = await client.PostAsJsonAsync("/v1/validate", new { username = "x", password = "y", service = "imap" });
            statuses.Add(response.StatusCode);
        }

        Assert.Equal(5, statuses.Count(s => s == HttpStatusCode.Forbidden));
        Assert.Equal(3, statuses.Count(s => s == HttpStatusCode.TooManyRequests));
    }

    [Fact]
    public async Task LoadIsBalanced_AndADeadInstanceIsTakenOut()
    {
        var a = await StartValidation("a");
        await using var b = await StartValidation("b");
        await using var gateway = await BrokerApps.StartGatewayAsync(GatewayConfig(a, b));
        using var client = Client(gateway);

        var seen = new HashSet<string>();
        for (var i = 0; i < 40; i++)
        {
            seen.Add((await client.GetStringAsync("/v1/whoami")).Split(' ')[0]);
        }

        Assert.Equal(["a", "b"], seen.Order());

        await a.DisposeAsync();
        // Give the active health check (200 ms interval) time to notice.
        await Task.Delay(1500);
        var afterDeath = new List<HttpStatusCode>();
        for (var i = 0; i < 20; i++)
        {
            using var response = await client.GetAsync("/v1/whoami");
            afterDeath.Add(response.StatusCode);
            if (response.IsSuccessStatusCode)
            {
                Assert.StartsWith("b ", await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
            }
        }

        Assert.All(afterDeath, s => Assert.Equal(HttpStatusCode.OK, s));
    }

    [Fact]
    public async Task AllInstancesDead_AnswersAnErrorNeverAnAllow()
    {
        var a = await StartValidation("a");
        await using var gateway = await BrokerApps.StartGatewayAsync(GatewayConfig(a));
        using var client = Client(gateway);
        await a.DisposeAsync();

        using var response = await client.PostAsJsonAsync("/v1/validate", new { username = "x", password = "y", service = "imap" });

        Assert.True((int)response.StatusCode >= 500, $"got {response.StatusCode}");
    }

    [Fact]
    public async Task ValidatorSeesTheCallersAddress_AndAForgedForwardedForIsNotTrusted()
    {
        await using var validation = await StartValidation("a");
        await using var gateway = await BrokerApps.StartGatewayAsync(GatewayConfig(validation));
        using var client = Client(gateway, forwardedFor: "203.0.113.66");

        using var whoami = await client.GetAsync("/v1/whoami");
        var seen = await whoami.Content.ReadAsStringAsync();

        // The gateway replaces X-Forwarded-For with the address it saw; the client's claim is dropped.
        Assert.True(whoami.IsSuccessStatusCode, seen);
        Assert.Equal("a 127.0.0.1", seen);
    }

    [Fact]
    public async Task ForwardedFor_FromAConfiguredTrustedProxy_ReachesTheValidator()
    {
        await using var validation = await StartValidation("a");
        var config = GatewayConfig(validation);
        config["Broker:Gateway:TrustedProxies:0"] = "127.0.0.1";
        config["Broker:Gateway:AllowedNetworks:0"] = "203.0.113.0/24";
        await using var gateway = await BrokerApps.StartGatewayAsync(config);
        using var viaProxy = Client(gateway, forwardedFor: "203.0.113.66");
        using var direct = Client(gateway);

        using var allowed = await viaProxy.GetAsync("/v1/whoami");
        using var refused = await direct.GetAsync("/v1/whoami");

        Assert.Equal("a 203.0.113.66", await allowed.Content.ReadAsStringAsync());
        Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);
    }

    [Fact]
    public async Task CallerKey_IsPassedThroughToTheValidator()
    {
        await using var validation = await StartValidation("a");
        await using var gateway = await BrokerApps.StartGatewayAsync(GatewayConfig(validation));
        using var anonymous = new HttpClient { BaseAddress = gateway.Address };

        using var response = await anonymous.PostAsJsonAsync("/v1/validate", new { username = "x", password = "y", service = "imap" });

        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.False(response.Headers.Contains(CallerKeyOptions.HeaderName));
    }
}
