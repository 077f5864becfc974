using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Json;
using System.Text;
using Broker.Core.AppPasswords;
using Broker.Core.GeoIp;
using Broker.Host.Embedded;
using Broker.Testing;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

// Measures the credential core and the gateway; writes docs/benchmarks.md (core section).
// Bounded: fixed request counts, all on loopback. Usage: dotnet run -c Release --project tests/Broker.Benchmarks [-- --quick]
var quick = args.Contains("--quick");
var n = quick ? 2_000 : 20_000;
var report = new StringBuilder();
report.AppendLine(CultureInfo.InvariantCulture, $"Measured {DateTimeOffset.UtcNow:yyyy-MM-dd} on {Environment.ProcessorCount} cores, .NET {Environment.Version}, Release build; {n} sequential operations per row after 1,000 warm-up operations. Broker time = from the call into `AppPasswordService.ValidateAsync` to its answer, including the Redis round trip on loopback.");
report.AppendLine();

await using var redis = await RedisServer.StartAsync();
await using var redisEverySec = await RedisServer.StartAsync("everysec");
var garnetDir = Directory.CreateTempSubdirectory("broker-bench-garnet-").FullName;
// Disposed explicitly below, once: Garnet throws on a second Dispose.
var garnet = EmbeddedGarnet.Start(garnetDir, FreePort.Get());

report.AppendLine("### Validation, store level (success path)");
report.AppendLine();
report.AppendLine("| store | throttling | median (µs) | p99 (µs) | max (µs) | validations/s (1 caller) |");
report.AppendLine("|---|---|---|---|---|---|");
foreach (var (name, config) in new[] { ("redis-server 7, appendfsync always", redis.Configuration), ("redis-server 7, appendfsync everysec", redisEverySec.Configuration), ("embedded Garnet, AOF commit-wait", garnet.Endpoint) })
{
    foreach (var throttling in new[] { true, false })
    {
        var row = await MeasureStoreAsync(config, throttling, n);
        report.AppendLine(CultureInfo.InvariantCulture, $"| {name} | {(throttling ? "on" : "off")} | {row.Median:F0} | {row.P99:F0} | {row.Max:F0} | {row.PerSecond:F0} |");
    }
}

report.AppendLine();
report.AppendLine("### Country look-up (per-app-password country limits, `Broker:GeoIp:CountryDatabase`)");
report.AppendLine();
// A database about the size of GeoLite2-Country (~400k networks; here 300k random public IPv4
// networks of /16 to /24 plus 30k IPv6 /32 to /48), written by the tests' MMDB writer.
var geoNetworks = quick ? 30_000 : 300_000;
using var countryDb = TestCountryDatabase.Create(RandomCountryDatabase(geoNetworks, seed: 7));
report.AppendLine("| what | networks in the database | file size (MB) | median (µs) | p99 (µs) |");
report.AppendLine("|---|---|---|---|---|");
{
    using var lookup = new CountryLookup(Options.Create(new GeoIpOptions { CountryDatabase = countryDb.Path }), TimeProvider.System, NullLogger<CountryLookup>.Instance);
    var random = new Random(11);
    var addresses = Enumerable.Range(0, 4096).Select(_ => $"{random.Next(1, 224)}.{random.Next(256)}.{random.Next(256)}.{random.Next(1, 255)}").ToArray();
    var k = 0;
    // Batches of 100 calls, so the timer's own cost does not dominate a call of a few hundred ns.
    var row = await MeasureAsync(() =>
    {
        for (var j = 0; j < 100; j++)
        {
            lookup.CountryOf(addresses[k++ & 4095]);
        }

        return Task.CompletedTask;
    }, n);
    report.AppendLine(CultureInfo.InvariantCulture, $"| `CountryLookup.CountryOf`, random public IPv4 addresses (per call) | {geoNetworks + (geoNetworks / 10)} | {new FileInfo(countryDb.Path).Length / 1e6:F1} | {row.Median / 100:F2} | {row.P99 / 100:F2} |");
}

{
    var withDb = await MeasureStoreAsync(redisEverySec.Configuration, throttling: true, n, countryDb.Path);
    var without = await MeasureStoreAsync(redisEverySec.Configuration, throttling: true, n);
    report.AppendLine(CultureInfo.InvariantCulture, $"| validation, redis-server everysec, throttling on, without a country database (same run) | | | {without.Median:F0} | {without.P99:F0} |");
    report.AppendLine(CultureInfo.InvariantCulture, $"| the same with the country database configured (every validation looks the client up) | {geoNetworks + (geoNetworks / 10)} | | {withDb.Median:F0} | {withDb.P99:F0} |");
}

report.AppendLine();
report.AppendLine("### During a pepper rotation (`Broker:Pepper:RotationFile`; redis-server everysec, throttling on)");
report.AppendLine();
report.AppendLine("| what | median (µs) | p99 (µs) |");
report.AppendLine("|---|---|---|");
{
    var plain = await MeasureStoreAsync(redisEverySec.Configuration, throttling: true, n);
    var rotating = await MeasureStoreAsync(redisEverySec.Configuration, throttling: true, n, rotationPepper: Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32)));
    report.AppendLine(CultureInfo.InvariantCulture, $"| validation, no rotation (same run) | {plain.Median:F0} | {plain.P99:F0} |");
    report.AppendLine(CultureInfo.InvariantCulture, $"| validation during a rotation, the app password already under the current pepper (a second HMAC, two more keys in the script) | {rotating.Median:F0} | {rotating.P99:F0} |");
}

report.AppendLine();
report.AppendLine("### Validation API over HTTP (success path, redis-server everysec; one keep-alive connection per caller)");
report.AppendLine();
report.AppendLine("| path | median (µs) | p99 (µs) | requests/s (1 caller) | requests/s (16 callers, 5 s) |");
report.AppendLine("|---|---|---|---|---|");
var pepper = Convert.ToBase64String(new byte[32]);
await using (var validation = await BrokerApps.StartValidationAsync(BrokerApps.BaseConfig(redisEverySec.Configuration, pepper)))
await using (var gateway = await BrokerApps.StartGatewayAsync(new Dictionary<string, string?>
{
    ["Logging:LogLevel:Default"] = "Warning",
    ["Broker:Gateway:ValidationDestinations:v"] = validation.Address.ToString(),
    ["Broker:Gateway:RateLimitPermits"] = "1000000",
}))
{
    var issued = await validation.AppPasswords.IssueAsync("bench@example.com", "bench", ["imap"], TimeSpan.FromDays(1));
    var body = new { username = "bench@example.com", password = issued.Secret, service = "imap", remoteIp = "192.0.2.1" };
    foreach (var (name, app) in new[] { ("direct to validation", validation), ("through the YARP gateway", gateway) })
    {
        using var client = app.CreateClient();
        var row = await MeasureAsync(async () =>
        {
            using var r = await client.PostAsJsonAsync("/v1/validate", body);
            if (!r.IsSuccessStatusCode)
            {
                throw new InvalidOperationException($"validation failed: {r.StatusCode}");
            }
        }, quick ? 1_000 : 5_000);
        var concurrent = await ThroughputAsync(app, body, 16, TimeSpan.FromSeconds(quick ? 2 : 5));
        report.AppendLine(CultureInfo.InvariantCulture, $"| {name} | {row.Median:F0} | {row.P99:F0} | {row.PerSecond:F0} | {concurrent:F0} |");
    }
}

report.AppendLine();
report.AppendLine("### Memory per app password in Redis");
report.AppendLine();
report.AppendLine(CultureInfo.InvariantCulture, $"| store | app passwords | bytes each (used_memory delta) |");
report.AppendLine("|---|---|---|");
var memory = await MemoryPerCredentialAsync(redis.Configuration, quick ? 1_000 : 10_000);
report.AppendLine(CultureInfo.InvariantCulture, $"| redis-server | {(quick ? 1_000 : 10_000)} | {memory:F0} |");

garnet.Dispose();
Directory.Delete(garnetDir, recursive: true);

var text = report.ToString();
Console.WriteLine(text);
if (!quick)
{
    WriteSection(Path.Combine(FindRepoRoot(), "docs", "benchmarks.md"), "core", "## Credential core, validation API and gateway", text);
}

static async Task<Row> MeasureStoreAsync(string redisConfiguration, bool throttling, int count, string? countryDatabase = null, string? rotationPepper = null)
{
    var config = BrokerApps.BaseConfig(redisConfiguration);
    config["Broker:Throttling:Enabled"] = throttling ? "true" : "false";
    config["Broker:GeoIp:CountryDatabase"] = countryDatabase;
    config["Broker:Pepper:RotationValue"] = rotationPepper;
    await using var app = await BrokerApps.StartValidationAsync(config);
    var store = app.AppPasswords;
    var user = $"bench-{Guid.NewGuid():N}";
    var issued = await store.IssueAsync(user, "bench", ["imap"], TimeSpan.FromDays(1));
    // A public address, so that with a database it is really looked up.
    var context = new ValidationContext("imap", "81.2.69.142", "bench");
    return await MeasureAsync(async () =>
    {
        if ((await store.ValidateAsync(user, issued.Secret, context)).Result != ValidationResult.Allowed)
        {
            throw new InvalidOperationException("validation failed");
        }
    }, count);
}

static TestMmdbWriter RandomCountryDatabase(int ipv4Networks, int seed)
{
    string[] countries = ["DE", "FR", "GB", "US", "SE", "NL", "PL", "IT", "ES", "JP", "CN", "BR", "IN", "CA", "AU", "RU", "UA", "CH", "AT", "BE"];
    var random = new Random(seed);
    var writer = new TestMmdbWriter();
    for (var i = 0; i < ipv4Networks; i++)
    {
        var prefix = random.Next(16, 25);
        var address = (uint)random.NextInt64(0x01000000, 0xDF000000) & (uint.MaxValue << (32 - prefix));
        writer.Add($"{address >> 24}.{(address >> 16) & 255}.{(address >> 8) & 255}.{address & 255}/{prefix}", countries[random.Next(countries.Length)]);
    }

    for (var i = 0; i < ipv4Networks / 10; i++)
    {
        writer.Add($"2{random.Next(0, 0x1000):x3}:{random.Next(0, 0x10000):x4}::/{random.Next(32, 49) & ~3}", countries[random.Next(countries.Length)]);
    }

    return writer;
}

static async Task<Row> MeasureAsync(Func<Task> op, int count)
{
    for (var i = 0; i < 1_000; i++)
    {
        await op();
    }

    var samples = new double[count];
    var total = Stopwatch.StartNew();
    for (var i = 0; i < count; i++)
    {
        var start = Stopwatch.GetTimestamp();
        await op();
        samples[i] = Stopwatch.GetElapsedTime(start).TotalMicroseconds;
    }

    total.Stop();
    Array.Sort(samples);
    return new Row(samples[count / 2], samples[(int)(count * 0.99)], samples[^1], count / total.Elapsed.TotalSeconds);
}

static async Task<double> ThroughputAsync(RunningApp app, object body, int callers, TimeSpan duration)
{
    using var cts = new CancellationTokenSource(duration);
    long done = 0;
    var workers = Enumerable.Range(0, callers).Select(async _ =>
    {
        using var client = app.CreateClient();
        while (!cts.IsCancellationRequested)
        {
            using var r = await client.PostAsJsonAsync("/v1/validate", body);
            Interlocked.Increment(ref done);
        }
    });
    var sw = Stopwatch.StartNew();
    await Task.WhenAll(workers);
    return done / sw.Elapsed.TotalSeconds;
}

static async Task<double> MemoryPerCredentialAsync(string redisConfiguration, int count)
{
    await using var app = await BrokerApps.StartValidationAsync(BrokerApps.BaseConfig(redisConfiguration + ",allowAdmin=true"));
    var muxer = (IConnectionMultiplexer)app.Services.GetService(typeof(IConnectionMultiplexer))!;
    var server = muxer.GetServers()[0];
    static long Used(IServer s) => long.Parse(s.Info("memory").SelectMany(g => g).First(kv => kv.Key == "used_memory").Value, CultureInfo.InvariantCulture);
    var before = Used(server);
    for (var i = 0; i < count; i++)
    {
        await app.AppPasswords.IssueAsync($"mem-{i}@example.com", "Thunderbird on laptop", ["imap", "submission"], null);
    }

    return (Used(server) - before) / (double)count;
}

static string FindRepoRoot()
{
    var dir = new DirectoryInfo(AppContext.BaseDirectory);
    while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Broker.sln")))
    {
        dir = dir.Parent;
    }

    return dir?.FullName ?? throw new InvalidOperationException("Broker.sln not found above the benchmark.");
}

static void WriteSection(string path, string id, string heading, string body)
{
    var begin = $"<!-- {id}:begin -->";
    var end = $"<!-- {id}:end -->";
    var section = $"{begin}\n{heading}\n\n{body}{end}";
    var doc = File.Exists(path) ? File.ReadAllText(path) : "# Benchmarks\n\nProduced by the benchmark programs named in each section; re-run them to refresh.\n\n";
    var i = doc.IndexOf(begin, StringComparison.Ordinal);
    var j = doc.IndexOf(end, StringComparison.Ordinal);
    doc = i >= 0 && j > i ? doc[..i] + section + doc[(j + end.Length)..] : doc.TrimEnd() + "\n\n" + section + "\n";
    File.WriteAllText(path, doc);
}

internal readonly record struct Row(double Median, double P99, double Max, double PerSecond);
