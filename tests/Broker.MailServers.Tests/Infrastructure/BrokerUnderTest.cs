using Broker.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Time.Testing;

namespace Broker.MailServers.Tests.Infrastructure;

/// <summary>Broker as a mail server meets it: real redis-server, validation role, gateway in front.</summary>
public sealed class BrokerUnderTest : IAsyncDisposable
{
    private BrokerUnderTest(RedisServer redis, RunningApp validation, RunningApp gateway, FakeTimeProvider time, CapturingLoggerProvider logs)
    {
        Logs = logs;
        Redis = redis;
        Validation = validation;
        Gateway = gateway;
        Time = time;
    }

    public RedisServer Redis { get; }

    /// <summary>Every log line of the validation role, Information and up, for secret scans.</summary>
    public CapturingLoggerProvider Logs { get; }

    public RunningApp Validation { get; }

    public RunningApp Gateway { get; }

    /// <summary>Broker's clock: starts at the real time, moves only when a test advances it (expiry).</summary>
    public FakeTimeProvider Time { get; }

    /// <summary>The gateway's base URL without a trailing slash, e.g. <c>http://127.0.0.1:41234</c>.</summary>
    public string GatewayUrl => Gateway.Address.ToString().TrimEnd('/');

    /// <summary>
    /// Broker's Redis:OperationTimeout in the mail-server tests. The tests' usual 5 s is longer than
    /// broker.lua's 2.5 s and the oauth2 files' 3 s, so with Redis down Dovecot would give up first
    /// and the tests would see Dovecot's own timeout, not Broker's answer. Production's 500 ms is
    /// well inside both; 1.5 s still is, and leaves a busy test machine room.
    /// </summary>
    public const string StoreTimeout = "00:00:01.500";

    /// <param name="extra">Settings added to the test defaults.</param>
    /// <param name="appendFsync">redis-server's <c>appendfsync</c>; benchmarks use the production recommendation <c>everysec</c>.</param>
    public static async Task<BrokerUnderTest> StartAsync(IDictionary<string, string?>? extra = null, string appendFsync = "always")
    {
        var redis = await RedisServer.StartAsync(appendFsync);
        var config = BrokerApps.BaseConfig(redis.Configuration);
        config["Redis:OperationTimeout"] = StoreTimeout;
        foreach (var (k, v) in extra ?? new Dictionary<string, string?>())
        {
            config[k] = v;
        }

        // Every IMAP client here is 127.0.0.1 and many tests fail on purpose: keep Broker's per-network
        // throttle out of the way (its behaviour has its own tests) so test order cannot matter.
        config.TryAdd("Broker:Throttling:PerNetwork", "100000");
        config.TryAdd("Broker:Throttling:PerUser", "100");
        // Broker's own categories at Information for the capture, the console stays at Warning.
        config.TryAdd("Logging:LogLevel:Broker", "Information");
        config.TryAdd("Logging:Console:LogLevel:Default", "Warning");
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var logs = new CapturingLoggerProvider();
        var validation = await BrokerApps.StartValidationAsync(config, s => s.Replace(ServiceDescriptor.Singleton<TimeProvider>(time)), logs);
        var gatewayConfig = new Dictionary<string, string?>(config)
        {
            ["Broker:Gateway:ValidationDestinations:main"] = validation.Address.ToString(),
        };
        var gateway = await BrokerApps.StartGatewayAsync(gatewayConfig);
        return new BrokerUnderTest(redis, validation, gateway, time, logs);
    }

    /// <summary>Runs <paramref name="whileDown"/> with Broker's Redis stopped (Broker can decide nothing), then restarts it and waits until Broker reaches it again.</summary>
    public async Task WithRedisDownAsync(Func<Task> whileDown)
    {
        await Redis.StopAsync();
        try
        {
            await whileDown();
        }
        finally
        {
            await Redis.StartAgainAsync();
            for (var i = 0; i < 100 && !await Validation.AppPasswords.PingAsync(); i++)
            {
                await Task.Delay(100);
            }

            // The gateway's health probe may have marked the validation role unhealthy meanwhile
            // (it then answers 503 itself): wait until it routes again, so the next test is not
            // decided by probe timing.
            using var http = Gateway.CreateClient();
            for (var i = 0; i < 100 && !await GatewayRoutesAsync(http); i++)
            {
                await Task.Delay(100);
            }
        }
    }

    private static async Task<bool> GatewayRoutesAsync(HttpClient http)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, "/v1/nginx/auth");
        request.Headers.Add("Auth-Method", "plain");
        request.Headers.Add("Auth-Protocol", "smtp");
        request.Headers.Add("Auth-User", "gateway-probe@example.com");
        request.Headers.Add("Auth-Pass", "not-a-password");
        using var response = await http.SendAsync(request);
        return response.IsSuccessStatusCode;
    }

    public async ValueTask DisposeAsync()
    {
        await Gateway.DisposeAsync();
        await Validation.DisposeAsync();
        await Redis.DisposeAsync();
    }
}
