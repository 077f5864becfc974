using System.Net;
using System.Net.Http.Json;
using System.Net.Sockets;
using Broker.Testing;

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
