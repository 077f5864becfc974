using System.Net;
using System.Net.Http.Headers;
using Broker.Testing;
using Broker.Testing.Fuzz;
using Xunit.Abstractions;

namespace Broker.Validation.Tests.Fuzz;

/// <summary>
/// 100,000 generated bodies against <c>POST /v1/validate</c> over real HTTP with a real
/// redis-server behind it: no 5xx, no allow, no hang.
/// </summary>
public sealed class ValidationApiFuzzTests(RedisFixture redis, ITestOutputHelper output) : IClassFixture<RedisFixture>
{
    private const int Inputs = 100_000;
    private const int Workers = 8;

    private static readonly string[] Fields = ["username", "password", "service", "remoteIp", "remotePort", "localIp", "localPort", "session", "secured", "mech", "clientId"];

    // Free-text fields only, so that half the inputs get past field validation to the credential check.
    private static readonly string[] TextFields = ["username", "password", "service", "session", "secured", "mech", "clientId"];

    [Fact]
    public async Task GeneratedBodies_NeverAllowNeverFail()
    {
        await using var app = await BrokerApps.StartValidationAsync(BrokerApps.BaseConfig(redis.Server.Configuration));
        // A real credential exists, so an allow would be possible if a parser confused fields.
        await app.AppPasswords.IssueAsync("fuzz@example.com", "real", ["imap"], null);
        var statuses = new System.Collections.Concurrent.ConcurrentDictionary<HttpStatusCode, int>();
        var seed = Environment.TickCount;
        output.WriteLine($"seed {seed}");

        var workers = Enumerable.Range(0, Workers).Select(w => Task.Run(async () =>
        {
            var fuzz = new FuzzInput(seed + w);
            using var client = app.CreateClient();
            for (var i = 0; i < Inputs / Workers; i++)
            {
                var body = fuzz.Chance(5) ? fuzz.Bytes(600) : fuzz.JsonObject(fuzz.Chance(50) ? TextFields : Fields, required: 3);
                using var content = new ByteArrayContent(body);
                content.Headers.ContentType = new MediaTypeHeaderValue(fuzz.Chance(90) ? "application/json" : "text/plain");
                using var response = await client.PostAsync("/v1/validate", content);
                statuses.AddOrUpdate(response.StatusCode, 1, (_, n) => n + 1);
                Assert.True((int)response.StatusCode < 500, $"5xx for seed {seed + w}, input {i}: {Convert.ToBase64String(body)}");
                Assert.NotEqual(HttpStatusCode.OK, response.StatusCode);
            }
        }));
        await Task.WhenAll(workers);

        output.WriteLine(string.Join(", ", statuses.Select(s => $"{(int)s.Key}: {s.Value}")));
        Assert.Equal(Inputs, statuses.Values.Sum());
        Assert.Equal([HttpStatusCode.BadRequest, HttpStatusCode.Forbidden], statuses.Keys.Order());
    }
}
