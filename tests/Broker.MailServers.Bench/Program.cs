using System.Diagnostics;
using System.Globalization;
using System.Text;
using Broker.MailServers.Bench;
using Broker.MailServers.Tests.Infrastructure;
using Broker.Testing;

// IMAP login latency with Dovecot's passwd-file vs Dovecot + Broker (the shipped Lua passdb through
// the gateway), measured in the same run with the auth cache off, plus the auth step alone over
// Dovecot's auth-client socket. Usage: [--logins N] [--write docs/benchmarks.md]
var logins = 300;
string? write = null;
for (var i = 0; i < args.Length; i++)
{
    switch (args[i])
    {
        case "--logins":
            logins = int.Parse(args[++i], CultureInfo.InvariantCulture);
            break;
        case "--write":
            write = args[++i];
            break;
        default:
            Console.Error.WriteLine($"unknown argument {args[i]}");
            return 2;
    }
}

const string User = "bench@example.com";
const string StaticPassword = "bench-static-password";
await using var broker = await BrokerUnderTest.StartAsync(new Dictionary<string, string?> { ["Logging:LogLevel:Default"] = "Error" }, appendFsync: "everysec");
var secret = (await broker.Validation.AppPasswords.IssueAsync(User, "bench", ["imap"], null)).Secret;

var passwdDir = Shell.TempDirectory("bench-passwd");
await File.WriteAllTextAsync(Path.Combine(passwdDir, "users"), $"{User}:{{PLAIN}}{StaticPassword}::::::\n");
await using var passwd = await DovecotServer.StartAsync("bench-passwd", [("passwd.conf", $$"""
    auth_cache_size = 0
    passdb {
      driver = passwd-file
      args = {{passwdDir}}/users
    }
    """)], dir: passwdDir);

// The variants under test, all with the shipped configuration.
async Task<DovecotServer> LuaDovecotAsync(string name, string baseUrl)
{
    var dir = Shell.TempDirectory(name);
    var script = Path.Combine(dir, "broker.lua");
    await File.WriteAllTextAsync(script, InfraFiles.Render("infra/dovecot/broker.lua", ("http://127.0.0.1:5080", baseUrl), ("CHANGE-ME-broker-caller-key", BrokerApps.CallerKey)));
    return await DovecotServer.StartAsync(name, [("90-broker.conf", InfraFiles.Render("infra/dovecot/conf.d/90-broker.conf", ("/etc/dovecot/broker.lua", script)))], dir: dir);
}

var oauthDir = Shell.TempDirectory("bench-oauth2");
var ext = Path.Combine(oauthDir, "dovecot-oauth2-broker.conf.ext");
await File.WriteAllTextAsync(ext, InfraFiles.Render("infra/dovecot/dovecot-oauth2-broker.conf.ext", ("http://127.0.0.1:5080", broker.GatewayUrl), ("CHANGE-ME-broker-caller-key", BrokerApps.CallerKey)));
var variants = new List<(string Name, DovecotServer Server, string Password)>
{
    ("passwd-file (baseline)", passwd, StaticPassword),
    ("Broker: Lua passdb → gateway → validation (shipped default)", await LuaDovecotAsync("bench-lua", broker.GatewayUrl), secret),
    ("Broker: Lua passdb → validation directly (no gateway hop)", await LuaDovecotAsync("bench-lua-direct", broker.Validation.Address.ToString().TrimEnd('/')), secret),
    ("Broker: oauth2 passdb (password grant) → gateway → validation", await DovecotServer.StartAsync("bench-oauth2", [("90-broker-oauth2.conf", InfraFiles.Render("infra/dovecot/conf.d/90-broker-oauth2.conf", ("/etc/dovecot/dovecot-oauth2-broker.conf.ext", ext)))], dir: oauthDir), secret),
};

async Task<double> ImapLoginAsync(int port, string password)
{
    var sw = Stopwatch.StartNew();
    await using var client = await RawImap.ConnectAsync(port);
    var reply = await client.LoginAsync(User, password);
    var ms = sw.Elapsed.TotalMilliseconds;
    if (!reply.StartsWith("OK", StringComparison.Ordinal))
    {
        throw new InvalidOperationException("login failed: " + reply);
    }

    await client.CommandAsync("LOGOUT");
    return ms;
}

var imap = variants.Select(_ => new List<double>()).ToArray();
var socket = variants.Select(_ => new List<double>()).ToArray();
try
{
    // Warm-up: first logins pay for process start, JIT and connection set-up on every side.
    for (var i = 0; i < 20; i++)
    {
        foreach (var v in variants)
        {
            await ImapLoginAsync(v.Server.ImapPort, v.Password);
        }
    }

    // Interleaved, so every variant sees the same machine load.
    for (var i = 0; i < logins; i++)
    {
        for (var k = 0; k < variants.Count; k++)
        {
            imap[k].Add(await ImapLoginAsync(variants[k].Server.ImapPort, variants[k].Password));
        }
    }

    var clients = new List<DovecotAuthClient>();
    foreach (var v in variants)
    {
        clients.Add(await DovecotAuthClient.ConnectAsync(v.Server.AuthClientSocket));
    }

    for (var i = 0; i < logins + 20; i++)
    {
        for (var k = 0; k < variants.Count; k++)
        {
            var sw = Stopwatch.StartNew();
            if (!await clients[k].AuthenticatePlainAsync(User, variants[k].Password))
            {
                throw new InvalidOperationException(variants[k].Name + ": auth failed");
            }

            if (i >= 20)
            {
                socket[k].Add(sw.Elapsed.TotalMilliseconds);
            }
        }
    }

    foreach (var c in clients)
    {
        c.Dispose();
    }
}
finally
{
    // The baseline is disposed by its await using; the others here.
    foreach (var v in variants.Skip(1))
    {
        await v.Server.DisposeAsync();
    }
}

// Broker alone, as the Lua script calls it (same JSON, caller key, through the gateway) but from a
// keep-alive .NET client: separates Broker's HTTP path from Dovecot's auth-worker and HTTP client.
using var http = broker.Gateway.CreateClient();
var httpOnly = new List<double>();
var body = $$"""{"username":"{{User}}","password":"{{secret}}","service":"imap","remoteIp":"127.0.0.1","mech":"PLAIN"}""";
for (var i = 0; i < logins + 20; i++)
{
    var sw = Stopwatch.StartNew();
    using var response = await http.PostAsync("/v1/validate", new StringContent(body, Encoding.UTF8, "application/json"));
    var ms = sw.Elapsed.TotalMilliseconds;
    if (!response.IsSuccessStatusCode)
    {
        throw new InvalidOperationException("validate failed: " + (int)response.StatusCode);
    }

    if (i >= 20)
    {
        httpOnly.Add(ms);
    }
}

static double Percentile(List<double> values, double p)
{
    var sorted = values.Order().ToArray();
    var rank = p * (sorted.Length - 1);
    var lo = (int)Math.Floor(rank);
    var hi = (int)Math.Ceiling(rank);
    return sorted[lo] + ((sorted[hi] - sorted[lo]) * (rank - lo));
}

string F(double v) => v.ToString(v < 10 ? "0.00" : "0.0", CultureInfo.InvariantCulture);
var ci = CultureInfo.InvariantCulture;
var imapOverhead = (Percentile(imap[1], 0.5) / Percentile(imap[0], 0.5)) - 1;
var authOverhead = Percentile(socket[1], 0.5) - Percentile(socket[0], 0.5);
var report = new StringBuilder();
report.AppendLine("## Mail-server integration");
report.AppendLine();
report.AppendLine(ci, $"Measured {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC on this machine ({Environment.ProcessorCount} vCPUs, shared with other work), Dovecot {(await Shell.RunAsync(Tool.Find("dovecot"), ["--version"])).Output.Trim()}, auth cache off (`auth_cache_size = 0`), {logins} sequential logins per row after 20 warm-up logins, a fresh TCP connection per IMAP login, all Dovecots interleaved in the same run, each configured from the shipped `infra/dovecot` files; Broker (gateway, validation) runs in the benchmark process with redis-server (`appendfsync everysec`), all on loopback. Baseline: a `passwd-file` with a `{{PLAIN}}` password (the cheapest possible passdb).");
report.AppendLine();
report.AppendLine("| passdb | IMAP login median / p99 (ms) | auth only over Dovecot's auth-client socket, median / p99 (ms) |");
report.AppendLine("|---|---|---|");
for (var k = 0; k < variants.Count; k++)
{
    report.AppendLine(ci, $"| {variants[k].Name} | {F(Percentile(imap[k], 0.5))} / {F(Percentile(imap[k], 0.99))} | {F(Percentile(socket[k], 0.5))} / {F(Percentile(socket[k], 0.99))} |");
}

report.AppendLine(ci, $"| (Broker's HTTP path alone: POST /v1/validate through the gateway from a keep-alive client) | | {F(Percentile(httpOnly, 0.5))} / {F(Percentile(httpOnly, 0.99))} |");
report.AppendLine();
report.AppendLine(ci, $"With the shipped default, Broker adds {(imapOverhead * 100).ToString("0.0", ci)} % to the median IMAP login (goal: ≤ 10 %) and {authOverhead.ToString("0.00", ci)} ms to the median auth step (goal: < 0.5 ms).");
report.AppendLine();
var load = File.Exists("/proc/loadavg") ? (await File.ReadAllTextAsync("/proc/loadavg")).Split(' ')[0] : "?";
report.AppendLine(ci, $"Reading (load average {load} at the end of the run): of the {authOverhead.ToString("0.00", ci)} ms the shipped default adds to the auth step, the gateway hop is {(Percentile(socket[1], 0.5) - Percentile(socket[2], 0.5)).ToString("0.00", ci)} ms (row 2 vs 3) and Broker's own HTTP path, measured alone, {F(Percentile(httpOnly, 0.5))} ms (last row: gateway + validation + one Redis script); the rest is Dovecot's auth-worker hand-off and HTTP client. The IMAP login itself is dominated by Dovecot's process spawning, so the relative overhead shrinks on a quiet machine. Both goals of issue 4 (≤ 10 % per IMAP login, < 0.5 ms per auth step) are missed on this shared machine; the lever is Broker's validation path, not the Dovecot integration (the oauth2 row, with Dovecot's C HTTP client instead of Lua, costs the same order). Differences below about 0.3 ms between rows are within the run-to-run noise here.");
report.AppendLine();
report.AppendLine("Command: `tests/bench/imap-login.sh` (builds and runs `tests/Broker.MailServers.Bench` in Release, then rewrites this section).");
Console.WriteLine(report.ToString());

if (write is not null)
{
    var existing = File.Exists(write) ? await File.ReadAllTextAsync(write) : "# Benchmarks\n";
    var lines = existing.Split('\n').ToList();
    var start = lines.FindIndex(l => l.TrimEnd() == "## Mail-server integration");
    var section = report.ToString().TrimEnd('\n').Split('\n');
    if (start < 0)
    {
        lines = [.. lines.Take(lines.Count - (lines[^1].Length == 0 ? 1 : 0)), string.Empty, .. section, string.Empty];
    }
    else
    {
        // The next section starts at its heading or at the marker comment another benchmark writes before it.
        var end = lines.FindIndex(start + 1, l => l.StartsWith("## ", StringComparison.Ordinal) || l.StartsWith("<!--", StringComparison.Ordinal));
        end = end < 0 ? lines.Count : end;
        lines.RemoveRange(start, end - start);
        lines.InsertRange(start, [.. section, string.Empty]);
    }

    await File.WriteAllTextAsync(write, string.Join('\n', lines).TrimEnd('\n') + "\n");
    Console.WriteLine($"updated {write}");
}

return 0;
