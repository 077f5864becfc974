using System.Collections.Concurrent;
using System.Net;
using System.Text;
using Broker.Core.Callers;
using Broker.Testing;
using Broker.Testing.Fuzz;
using Xunit.Abstractions;

namespace Broker.Validation.Tests.Fuzz;

/// <summary>
/// 100,000 generated requests per mail-server parser (Dovecot password grant and introspection
/// form bodies, Dovecot policy JSON, nginx auth_http headers) over real HTTP with a real
/// redis-server behind them: no 5xx, no allow, no hang.
/// </summary>
public sealed class MailServerApiFuzzTests(RedisFixture redis, ITestOutputHelper output) : IClassFixture<RedisFixture>
{
    private const int Inputs = 100_000;
    private const int Workers = 8;

    private static readonly string[] FormFields = ["grant_type", "username", "password", "client_id", "client_secret", "token", "service", "scope"];
    private static readonly string[] PolicyFields = ["device_id", "local", "login", "mech", "protocol", "pwhash", "remote", "session_id", "tls", "success", "policy_reject"];
    private static readonly string[] NginxHeaders = ["Auth-Method", "Auth-User", "Auth-Pass", "Auth-Protocol", "Auth-Login-Attempt", "Client-IP", "Client-Host"];
    private static readonly string[] Protocols = ["imap", "pop3", "smtp"];

    [Fact]
    public Task PasswordGrantForms_NeverAllowNeverFail() => RunAsync("grant", (fuzz, client) =>
        client.PostAsync("/v1/dovecot/oauth2/token", Form(fuzz)), async r =>
        {
            Assert.NotEqual(HttpStatusCode.OK, r.StatusCode);
            await Task.CompletedTask;
        });

    [Fact]
    public Task IntrospectionForms_NeverActiveNeverFail() => RunAsync("introspect", (fuzz, client) =>
        client.PostAsync("/v1/dovecot/oauth2/introspect", Form(fuzz)), async r =>
        {
            var body = await r.Content.ReadAsStringAsync();
            Assert.DoesNotContain("\"active\":true", body, StringComparison.Ordinal);
        });

    [Fact]
    public Task PolicyBodies_NeverFail() => RunAsync("policy", (fuzz, client) =>
        {
            var command = fuzz.Chance(90) ? (fuzz.Chance(50) ? "allow" : "report") : Uri.EscapeDataString(fuzz.Text());
            var body = fuzz.Chance(5) ? fuzz.Bytes(600) : fuzz.JsonObject(PolicyFields);
            var content = new ByteArrayContent(body);
            content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json");
            return client.PostAsync($"/v1/dovecot/policy?command={command}", content);
        }, _ => Task.CompletedTask);

    [Fact]
    public Task NginxHeaders_NeverOkNeverFail() => RunAsync("nginx", (fuzz, client) =>
        {
            var request = new HttpRequestMessage(HttpMethod.Get, "/v1/nginx/auth");
            foreach (var name in NginxHeaders)
            {
                if (fuzz.Chance(85))
                {
                    request.Headers.TryAddWithoutValidation(name, HeaderSafe(name switch
                    {
                        "Auth-Method" when fuzz.Chance(70) => fuzz.Chance(50) ? "plain" : "login",
                        "Auth-Protocol" when fuzz.Chance(70) => Protocols[fuzz.Next(3)],
                        "Client-IP" when fuzz.Chance(60) => $"192.0.2.{fuzz.Next(256)}",
                        _ => fuzz.Chance(30) ? Uri.EscapeDataString(fuzz.Text()) : fuzz.Text(),
                    }));
                }
            }

            return client.SendAsync(request);
        }, r =>
        {
            Assert.False(r.Headers.TryGetValues("Auth-Status", out var status) && status.Contains("OK"), "nginx was told OK");
            return Task.CompletedTask;
        });

    private static ByteArrayContent Form(FuzzInput fuzz)
    {
        string body;
        if (fuzz.Chance(5))
        {
            return new ByteArrayContent(fuzz.Bytes(600));
        }

        var pairs = FormFields.Where(_ => fuzz.Chance(60)).Select(f =>
        {
            var name = fuzz.Chance(90) ? f : fuzz.Text();
            var value = f switch
            {
                "grant_type" when fuzz.Chance(80) => "password",
                "client_secret" when fuzz.Chance(80) => BrokerApps.CallerKey,
                _ => fuzz.Text(),
            };
            return fuzz.Chance(80) ? $"{Uri.EscapeDataString(name)}={Uri.EscapeDataString(value)}" : $"{name}={value}";
        });
        body = string.Join(fuzz.Chance(95) ? "&" : ";", pairs);
        var content = new ByteArrayContent(Encoding.UTF8.GetBytes(body));
        content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/x-www-form-urlencoded");
        return content;
    }

    /// <summary>HttpClient sends only ASCII headers without CR, LF or NUL; nginx forwards what it gets, so the rest goes.</summary>
    private static string HeaderSafe(string value) => new([.. value.Where(c => c is not ('\r' or '\n' or '\0') && c < 0x80)]);

    private async Task RunAsync(string name, Func<FuzzInput, HttpClient, Task<HttpResponseMessage>> send, Func<HttpResponseMessage, Task> check)
    {
        await using var app = await BrokerApps.StartValidationAsync(BrokerApps.BaseConfig(redis.Server.Configuration));
        await app.AppPasswords.IssueAsync("fuzz@example.com", "real", ["imap", "submission"], null);
        var statuses = new ConcurrentDictionary<HttpStatusCode, int>();
        var seed = Environment.TickCount;
        output.WriteLine($"{name}: seed {seed}");
        await Task.WhenAll(Enumerable.Range(0, Workers).Select(w => Task.Run(async () =>
        {
            var fuzz = new FuzzInput(seed + w);
            using var keyed = app.CreateClient();
            using var anonymous = app.CreateClient(withCallerKey: false);
            for (var i = 0; i < Inputs / Workers; i++)
            {
                // Most requests carry the caller key so they reach the parsers behind authentication.
                using var response = await send(fuzz, fuzz.Chance(90) ? keyed : anonymous);
                statuses.AddOrUpdate(response.StatusCode, 1, (_, n) => n + 1);
                Assert.True((int)response.StatusCode < 500, $"{name}: {(int)response.StatusCode} for seed {seed + w}, input {i}");
                await check(response);
            }
        })));
        output.WriteLine($"{name}: " + string.Join(", ", statuses.OrderBy(s => s.Key).Select(s => $"{(int)s.Key}: {s.Value}")));
        Assert.Equal(Inputs, statuses.Values.Sum());
    }
}
