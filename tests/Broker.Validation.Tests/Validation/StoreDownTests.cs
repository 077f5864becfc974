using System.Net;
using System.Net.Http.Json;
using System.Net.Sockets;
using Broker.Core.AppPasswords;
using Broker.Testing;
using Microsoft.Extensions.DependencyInjection;

namespace Broker.Validation.Tests.Validation;

/// <summary>Fail closed: when Redis cannot be asked, the answer is "temporary failure", never allow and never deny.</summary>
public sealed class StoreDownTests
{
    [Fact]
    public async Task RedisKilledMidRun_Returns503TempFail_ThenRecovers()
    {
        await using var redis = await RedisServer.StartAsync();
        var config = BrokerApps.BaseConfig(redis.Configuration);
        config["Redis:OperationTimeout"] = "00:00:01";
        await using var app = await BrokerApps.StartValidationAsync(config);
        using var client = app.CreateClient();
        var user = "bob@example.com";
        var issued = await app.AppPasswords.IssueAsync(user, "A", ["imap"], null);
        var body = new { username = user, password = issued.Secret, service = "imap" };
        // The 1-second operation timeout is for the outage below; on a busy machine the role's first
        // connection to Redis can take longer, so the "before" waits until the role reports ready.
        for (var i = 0; i < 100 && (await client.GetAsync("/health/ready")).StatusCode != HttpStatusCode.OK; i++)
        {
            await Task.Delay(100);
        }

        using (var before = await client.PostAsJsonAsync("/v1/validate", body))
        {
            Assert.Equal(HttpStatusCode.OK, before.StatusCode);
        }

        await redis.StopAsync();

        using (var down = await client.PostAsJsonAsync("/v1/validate", body))
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, down.StatusCode);
            Assert.Equal("tempfail", (await down.Content.ReadFromJsonAsync<System.Text.Json.JsonElement>()).GetProperty("result").GetString());
            Assert.NotNull(down.Headers.RetryAfter);
        }

        using (var ready = await client.GetAsync("/health/ready"))
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, ready.StatusCode);
        }

        await redis.StartAgainAsync();
        // AOF with fsync always: the credential survived the kill.
        var recovered = HttpStatusCode.ServiceUnavailable;
        for (var i = 0; i < 100 && recovered != HttpStatusCode.OK; i++)
        {
            await Task.Delay(100);
            using var after = await client.PostAsJsonAsync("/v1/validate", body);
            recovered = after.StatusCode;
            Assert.NotEqual(HttpStatusCode.Forbidden, recovered);
        }

        Assert.Equal(HttpStatusCode.OK, recovered);
    }

    [Fact]
    public async Task StoreDownAtStartUp_UnknownCallerKey_IsTemporaryFailureNot401_UntilTheStoredKeysAreRead()
    {
        await using var redis = await RedisServer.StartAsync();
        await redis.StopAsync();
        var config = BrokerApps.BaseConfig(redis.Configuration);
        config["Redis:OperationTimeout"] = "00:00:01";
        await using var app = await BrokerApps.StartValidationAsync(config);
        // A key an admin created with `broker apikey create`: kept in Redis, so unknown until Redis is read.
        const string storedKey = "bk_stored-in-redis-only-0123456789";
        var body = new { username = "bob@example.com", password = AppPasswordFormat.Generate(), service = "imap" };

        using (var early = await PostAsync(app, storedKey, body))
        {
            // Not "unauthorized": a mail server told that would report a bad configuration, not an outage.
            Assert.Equal(HttpStatusCode.ServiceUnavailable, early.StatusCode);
            Assert.NotNull(early.Headers.RetryAfter);
            Assert.Contains("not loaded", await early.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        // Keys from configuration need no store: those callers get the store's own answer (503 tempfail here).
        using (var configured = await PostAsync(app, BrokerApps.CallerKey, body))
        {
            Assert.Equal("tempfail", (await configured.Content.ReadFromJsonAsync<System.Text.Json.JsonElement>()).GetProperty("result").GetString());
        }

        await redis.StartAgainAsync();
        using (var mux = await StackExchange.Redis.ConnectionMultiplexer.ConnectAsync(redis.Configuration))
        {
            var keys = app.Services.GetRequiredService<Broker.Core.Redis.RedisKeys>();
            await mux.GetDatabase().HashSetAsync(keys.CallerKeys, Broker.Core.Callers.CallerKeyStore.HashHex(storedKey), "dovecot-2");
        }

        // The first successful read may come just before the key is written (then the 10 s refresh
        // brings it): wait for the key, whatever comes first.
        var status = HttpStatusCode.ServiceUnavailable;
        for (var i = 0; i < 300 && status != HttpStatusCode.Forbidden; i++)
        {
            await Task.Delay(100);
            using var later = await PostAsync(app, storedKey, body);
            status = later.StatusCode;
        }

        // Read from Redis: the stored key is accepted (a random password is denied), and a wrong key is now plainly unauthorized.
        Assert.Equal(HttpStatusCode.Forbidden, status);
        using var wrong = await PostAsync(app, "bk_never-issued-0123456789", body);
        Assert.Equal(HttpStatusCode.Unauthorized, wrong.StatusCode);
    }

    private static async Task<HttpResponseMessage> PostAsync(RunningApp app, string callerKey, object body)
    {
        using var client = app.CreateClient(withCallerKey: false);
        client.DefaultRequestHeaders.Add(Broker.Core.Callers.CallerKeyOptions.HeaderName, callerKey);
        return await client.PostAsJsonAsync("/v1/validate", body);
    }

    [Fact]
    public async Task RedisThatAcceptsButNeverAnswers_Returns503WithinTheTimeout()
    {
        // A TCP listener that never speaks RESP: the slowest possible Redis.
        using var blackHole = new TcpListener(IPAddress.Loopback, 0);
        blackHole.Start();
        var port = ((IPEndPoint)blackHole.LocalEndpoint).Port;
        var config = BrokerApps.BaseConfig($"127.0.0.1:{port},connectTimeout=300,abortConnect=false");
        config["Redis:OperationTimeout"] = "00:00:00.200";
        await using var app = await BrokerApps.StartValidationAsync(config);
        using var client = app.CreateClient();

        using var response = await client.PostAsJsonAsync("/v1/validate", new { username = "bob", password = Core.AppPasswords.AppPasswordFormat.Generate(), service = "imap" });

        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
    }
}
