using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Broker.Testing;

namespace Broker.Host.Tests;

/// <summary>
/// The unit files in <c>infra/systemd</c>, which an admin copies to /etc/systemd/system: systemd's own
/// offline checks, and the broker their ExecStart line starts with their Environment= and
/// EnvironmentFile= settings, read from the unit files. systemd is not PID 1 here, so the sandboxing
/// (User=, ProtectSystem=, capabilities, …) is checked by <c>systemd-analyze</c> only, not applied.
/// </summary>
public sealed class SystemdUnitTests(RedisFixture redis) : IClassFixture<RedisFixture>
{
    private static readonly string Units = Path.Combine(RepoRoot(), "infra", "systemd");

    [Fact]
    public async Task UnitsAndAccount_PassSystemdsOfflineChecks()
    {
        // An installed system as the guide lays it out: the units in /etc/systemd/system, the
        // executable in /opt/broker, and the distribution's units (sysinit.target, …) they pull in.
        using var root = new TempDirectory();
        var etc = Path.Combine(root.Path, "etc", "systemd", "system");
        CopyDirectory(Units, etc);
        CopyDirectory("/usr/lib/systemd/system", Path.Combine(root.Path, "usr", "lib", "systemd", "system"));
        Directory.CreateDirectory(Path.Combine(root.Path, "opt", "broker"));
        File.Copy(Path.Combine(AppContext.BaseDirectory, "broker"), Path.Combine(root.Path, "opt", "broker", "broker"));

        string[] units = ["broker@gateway.service", "broker@validation.service", "broker@portal.service", "broker.service", "broker.target"];
        var verify = await RunAsync(Tool.Find("systemd-analyze"), ["verify", $"--root={root.Path}", .. units]);

        // verify exits 0 on an unknown key or a value it cannot parse too (it ignores them, as systemd
        // would at run time): anything it says is a mistake in the unit.
        Assert.True(verify.ExitCode == 0 && verify.Output.Length == 0, $"systemd-analyze verify: exit {verify.ExitCode}\n{verify.Output}");

        // The account the units run as, made by systemd-sysusers from the shipped line, in the same root.
        foreach (var file in new[] { "passwd", "group", "shadow", "gshadow" })
        {
            await File.WriteAllTextAsync(Path.Combine(root.Path, "etc", file), string.Empty);
        }

        var sysusers = await RunAsync(Tool.Find("systemd-sysusers"), [$"--root={root.Path}", Path.Combine(Units, "broker.sysusers")]);
        Assert.True(sysusers.ExitCode == 0, sysusers.Output);
        Assert.Matches("^broker:x:[0-9]+:[0-9]+:[^:]*:/var/lib/broker:/usr/sbin/nologin$", (await File.ReadAllTextAsync(Path.Combine(root.Path, "etc", "passwd"))).Trim());

        foreach (var unit in units.Where(u => u.EndsWith(".service", StringComparison.Ordinal)))
        {
            // The sandboxing settings, scored by systemd 252 (0 = fully confined, 10 = none): 1.8, and
            // 2.0 for the gateway with its capability, when written. A setting dropped or misspelt raises it.
            var security = await RunAsync(Tool.Find("systemd-analyze"), ["security", "--offline=true", $"--root={root.Path}", "--threshold=25", "--no-pager", unit]);
            Assert.True(security.ExitCode == 0, $"{unit}: exposure above 2.5\n{security.Output}");
            Assert.Contains($"Overall exposure level for {unit}:", security.Output, StringComparison.Ordinal);
        }
    }

    [Theory]
    [InlineData("validation")]
    [InlineData("portal")]
    [InlineData("gateway")]
    public async Task InstanceUnit_StartsItsRole_WithTheUnitsEnvironment_SignalsReadyOnceItAnswers_AndStopsCleanly(string role)
    {
        using var system = new TempDirectory();
        var etcBroker = Directory.CreateDirectory(Path.Combine(system.Path, "etc-broker")).FullName;
        var state = Directory.CreateDirectory(Path.Combine(system.Path, "var-lib-broker")).FullName;
        var pepper = Path.Combine(etcBroker, "pepper.key");
        await File.WriteAllTextAsync(pepper, Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32)));
        var port = FreePort.Get();

        // The files the guide tells the admin to write: the shared one (a value quoted as in a
        // shell, which systemd unquotes too) and the instance's.
        await File.WriteAllTextAsync(Path.Combine(etcBroker, "broker.env"), $"""
            # shared by every instance and the command line
            Redis__Configuration='{redis.Server.Configuration}'
            Broker__Pepper__File={pepper}

            """);
        await File.WriteAllTextAsync(Path.Combine(etcBroker, $"{role}.env"), $"""
            Broker__Urls__{role}=http://127.0.0.1:{port}
            {role switch
            {
                "portal" => $"Broker__Portal__PublicOrigin=http://localhost:{port}",
                "gateway" => $"Broker__Gateway__ValidationDestinations__v1=http://127.0.0.1:{FreePort.Get()}\nBroker__Gateway__PortalDestinations__p1=http://127.0.0.1:{FreePort.Get()}",
                _ => string.Empty,
            }}
            """);

        var unit = SystemdUnit.Load(Path.Combine(Units, "broker@.service"), role);
        Assert.Equal("notify", unit.Single("Service", "Type"));
        var paths = new Dictionary<string, string> { ["/etc/broker/"] = etcBroker + "/", ["/var/lib/broker"] = state, ["/opt/broker/"] = AppContext.BaseDirectory };
        var environment = unit.Environment(path => Map(path, paths));
        var exec = unit.Single("Service", "ExecStart").Split(' ', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal("/opt/broker/broker", exec[0]);

        using var notify = AsSystemdWould(environment, system.Path, home: state);

        await using var process = BrokerProcess.StartExecutable(Map(exec[0], paths), exec[1..], environment, Map(unit.Single("Service", "WorkingDirectory"), paths));
        var ready = await ReceiveAsync(notify, TimeSpan.FromSeconds(60), process);
        Assert.Contains("READY=1", ready, StringComparison.Ordinal);

        // Ready means answering: the gateway, started after this unit, can send to it at once.
        using var client = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") };
        using (var health = await client.GetAsync(role == "gateway" ? "/health/live" : "/health/ready"))
        {
            Assert.True(health.StatusCode == HttpStatusCode.OK, process.Output);
        }

        Assert.Contains($"broker {role} listening on http://127.0.0.1:{port}", process.Output, StringComparison.Ordinal);
        // Log entries in journald's form: one line, led by the syslog level, which becomes the priority.
        Assert.Contains($"<6>Microsoft.Hosting.Lifetime[14] Now listening on: http://127.0.0.1:{port}", process.Output, StringComparison.Ordinal);
        Assert.DoesNotContain("info: ", process.Output, StringComparison.Ordinal);
        Assert.Contains(role == "gateway" ? "credential store: none" : "credential store: external Redis", process.Output, StringComparison.Ordinal);
        if (role == "portal")
        {
            // WorkingDirectory= is where the default data directory (SQLite, keys) goes.
            Assert.True(File.Exists(Path.Combine(state, "data", "portal.db")), process.Output);
        }

        await StopAsSystemctlWouldAsync(process, notify);
    }

    [Fact]
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public async Task SingleHostUnit_RunsEveryRoleWithItsDataInTheStateDirectory_AndSignalsReady()
    {
        using var system = new TempDirectory();
        var etcBroker = Directory.CreateDirectory(Path.Combine(system.Path, "etc-broker")).FullName;
        var state = Directory.CreateDirectory(Path.Combine(system.Path, "var-lib-broker")).FullName;
        int gateway = FreePort.Get(), validation = FreePort.Get(), portal = FreePort.Get(), garnet = FreePort.Get();
        // Only the ports differ from the defaults, so that the test can run beside another broker.
        await File.WriteAllTextAsync(Path.Combine(etcBroker, "broker.env"), $"""
            Broker__EmbeddedRedisPort={garnet}
            Broker__Urls__gateway=http://127.0.0.1:{gateway}
            Broker__Urls__validation=http://127.0.0.1:{validation}
            Broker__Urls__portal=http://127.0.0.1:{portal}

            """);
        var unit = SystemdUnit.Load(Path.Combine(Units, "broker.service"), instance: string.Empty);
        Assert.Equal("notify", unit.Single("Service", "Type"));
        var paths = new Dictionary<string, string> { ["/etc/broker/"] = etcBroker + "/", ["/var/lib/broker"] = state, ["/opt/broker/"] = AppContext.BaseDirectory };
        var environment = unit.Environment(path => Map(path, paths));
        // The unit's own Broker__DataDirectory names the state directory.
        environment["Broker__DataDirectory"] = Map(environment["Broker__DataDirectory"], paths);
        using var notify = AsSystemdWould(environment, system.Path, home: state);

        await using var process = BrokerProcess.StartExecutable(Map(unit.Single("Service", "ExecStart"), paths), [], environment, Map(unit.Single("Service", "WorkingDirectory"), paths));
        Assert.Contains("READY=1", await ReceiveAsync(notify, TimeSpan.FromSeconds(90), process), StringComparison.Ordinal);

        // Through the gateway: the portal's readiness, so every role is up.
        using var client = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{gateway}") };
        using (var health = await client.GetAsync("/health/ready"))
        {
            Assert.True(health.StatusCode == HttpStatusCode.OK, process.Output);
        }

        Assert.Contains($"credential store: embedded Garnet on 127.0.0.1:{garnet}, data in {state}", process.Output, StringComparison.Ordinal);
        Assert.True(File.Exists(Path.Combine(state, "pepper.key")), process.Output);
        Assert.True(File.Exists(Path.Combine(state, "portal.db")), process.Output);
        // The first-run caller key stays valid: it goes to an owner-only file, not into the journal.
        var keyFile = Path.Combine(state, "first-run-caller-key");
        Assert.Contains($"caller API key for local mail servers written to {keyFile}", process.Output, StringComparison.Ordinal);
        Assert.DoesNotContain("bk_", process.Output, StringComparison.Ordinal);
        Assert.StartsWith("bk_", await File.ReadAllTextAsync(keyFile), StringComparison.Ordinal);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(keyFile));

        await StopAsSystemctlWouldAsync(process, notify);
    }

    [Fact]
    public async Task InstanceUnit_WithAMistypedRole_FailsWithExit3_WhichTheUnitDoesNotRestart()
    {
        using var system = new TempDirectory();
        await File.WriteAllTextAsync(Path.Combine(system.Path, "broker.env"), $"Redis__Configuration={redis.Server.Configuration}\n");
        var unit = SystemdUnit.Load(Path.Combine(Units, "broker@.service"), "validation2");
        var paths = new Dictionary<string, string> { ["/etc/broker/"] = system.Path + "/", ["/var/lib/broker"] = system.Path, ["/opt/broker/"] = AppContext.BaseDirectory };
        var environment = unit.Environment(path => Map(path, paths));
        environment["PATH"] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin";

        await using var process = BrokerProcess.StartExecutable(Map(unit.Single("Service", "ExecStart"), paths), [], environment, Map(unit.Single("Service", "WorkingDirectory"), paths));

        // Without Broker__Roles in validation2.env, the instance name is taken as the role.
        Assert.Equal(3, await process.WaitForExitAsync(TimeSpan.FromSeconds(60)));
        Assert.Contains("Broker:Roles must name gateway, validation, portal or all; got 'validation2'", process.Output, StringComparison.Ordinal);
        Assert.Contains("3", unit.Single("Service", "RestartPreventExitStatus").Split(' '));
    }

    private static string Map(string path, Dictionary<string, string> paths)
    {
        foreach (var (from, to) in paths)
        {
            if (path.StartsWith(from, StringComparison.Ordinal))
            {
                return to + path[from.Length..];
            }
        }

        throw new InvalidOperationException($"the unit names {path}, which the test does not map");
    }

    /// <summary>
    /// What systemd adds to a service's environment besides the unit's settings (nothing is
    /// inherited from the test run): its notification socket, bound here in <paramref name="directory"/>
    /// (READY=1 and STOPPING=1 come to it), PATH, HOME, and JOURNAL_STREAM, set when output goes to
    /// the journal (StandardOutput=journal, the default).
    /// </summary>
    private static Socket AsSystemdWould(Dictionary<string, string> environment, string directory, string home)
    {
        var socketPath = Path.Combine(directory, "notify");
        var notify = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
        notify.Bind(new UnixDomainSocketEndPoint(socketPath));
        environment["NOTIFY_SOCKET"] = socketPath;
        environment["PATH"] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin";
        environment["HOME"] = home;
        environment["JOURNAL_STREAM"] = "8:4242";
        return notify;
    }

    /// <summary>systemctl stop: SIGTERM, then STOPPING=1 and exit 0 (which Restart=on-failure leaves stopped).</summary>
    private static async Task StopAsSystemctlWouldAsync(BrokerProcess process, Socket notify)
    {
        await process.TerminateAsync();
        Assert.Contains("STOPPING=1", await ReceiveAsync(notify, TimeSpan.FromSeconds(30), process), StringComparison.Ordinal);
        Assert.Equal(0, await process.WaitForExitAsync(TimeSpan.FromSeconds(60)));
    }

    private static async Task<string> ReceiveAsync(Socket socket, TimeSpan timeout, BrokerProcess process)
    {
        var buffer = new byte[4096];
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            var n = await socket.ReceiveAsync(buffer, SocketFlags.None, cts.Token);
            return Encoding.UTF8.GetString(buffer, 0, n);
        }
        catch (OperationCanceledException)
        {
            throw new TimeoutException($"no notification within {timeout}:\n{process.Output}");
        }
    }

    private static async Task<(int ExitCode, string Output)> RunAsync(string file, string[] args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in args)
        {
            psi.ArgumentList.Add(arg);
        }

        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        await p.WaitForExitAsync();
        return (p.ExitCode, (await stderr) + (await stdout));
    }

    private static void CopyDirectory(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (var entry in new DirectoryInfo(from).EnumerateFileSystemInfos())
        {
            var target = Path.Combine(to, entry.Name);
            switch (entry)
            {
                case DirectoryInfo d when d.LinkTarget is null:
                    CopyDirectory(d.FullName, target);
                    break;
                case FileSystemInfo link when link.LinkTarget is { } linkTarget:
                    File.CreateSymbolicLink(target, linkTarget);
                    break;
                default:
                    File.Copy(entry.FullName, target);
                    break;
            }
        }
    }

    private static string RepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Broker.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException("Cannot find the repository root (Broker.sln) above " + AppContext.BaseDirectory);
    }
}

/// <summary>
/// A unit file and its drop-ins (<c>NAME.d/*.conf</c>, and for an instance <c>TEMPLATE@INSTANCE.service.d</c>)
/// read as systemd reads them, for the settings the test applies: %i is the only specifier it knows,
/// and any other fails the test rather than being passed on unreplaced.
/// </summary>
internal sealed class SystemdUnit
{
    private readonly List<(string Section, string Key, string Value)> _settings = [];

    public static SystemdUnit Load(string templatePath, string instance)
    {
        var unit = new SystemdUnit();
        var directory = Path.GetDirectoryName(templatePath)!;
        var template = Path.GetFileName(templatePath);
        unit.Read(templatePath, instance);
        var instanceName = template.Contains("@.", StringComparison.Ordinal) ? template.Replace("@.", $"@{instance}.", StringComparison.Ordinal) : template;
        foreach (var dropIns in new[] { Path.Combine(directory, template + ".d"), Path.Combine(directory, instanceName + ".d") }.Distinct().Where(Directory.Exists))
        {
            foreach (var file in Directory.GetFiles(dropIns, "*.conf").Order(StringComparer.Ordinal))
            {
                unit.Read(file, instance);
            }
        }

        return unit;
    }

    public string Single(string section, string key)
    {
        var values = _settings.Where(s => s.Section == section && s.Key == key).Select(s => s.Value).ToList();
        return values.Count == 1 ? values[0] : throw new InvalidOperationException($"[{section}] {key}= is set {values.Count} times");
    }

    /// <summary>Environment= in order, then each EnvironmentFile= in order (systemd: files win); <paramref name="resolve"/> maps a file's path.</summary>
    public Dictionary<string, string> Environment(Func<string, string> resolve)
    {
        var environment = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (_, _, value) in _settings.Where(s => s.Section == "Service" && s.Key == "Environment"))
        {
            var (name, text) = Assignment(value) ?? throw new InvalidOperationException($"Environment={value} is not NAME=VALUE");
            environment[name] = text;
        }

        foreach (var (_, _, value) in _settings.Where(s => s.Section == "Service" && s.Key == "EnvironmentFile"))
        {
            // "-": optional, a missing file is skipped; a missing required one fails the start.
            var optional = value.StartsWith('-');
            var path = resolve(optional ? value[1..] : value);
            if (optional && !File.Exists(path))
            {
                continue;
            }

            foreach (var line in File.ReadAllLines(path).Select(l => l.Trim()).Where(l => l.Length > 0 && l[0] is not '#' and not ';'))
            {
                var (name, text) = Assignment(line) ?? throw new InvalidOperationException($"{path}: '{line}' is not NAME=VALUE");
                environment[name] = text;
            }
        }

        return environment;
    }

    private static (string Name, string Value)? Assignment(string text)
    {
        var eq = text.IndexOf('=', StringComparison.Ordinal);
        if (eq <= 0)
        {
            return null;
        }

        var value = text[(eq + 1)..];
        // One quoted value, as in a shell; systemd removes the quotes.
        if (value.Length >= 2 && value[0] is '\'' or '"' && value[^1] == value[0])
        {
            value = value[1..^1];
        }
        else if (value.Contains(' ', StringComparison.Ordinal))
        {
            throw new InvalidOperationException($"'{text}': unquoted spaces, which the test does not read as systemd would");
        }

        return (text[..eq].Trim(), value);
    }

    private void Read(string path, string instance)
    {
        var section = string.Empty;
        foreach (var raw in File.ReadAllLines(path))
        {
            var line = raw.Trim();
            if (line.Length == 0 || line[0] is '#' or ';')
            {
                continue;
            }

            if (line.EndsWith('\\'))
            {
                throw new InvalidOperationException($"{path}: continued lines are not read by the test");
            }

            if (line[0] == '[')
            {
                section = line.Trim('[', ']');
                continue;
            }

            var eq = line.IndexOf('=', StringComparison.Ordinal);
            var key = line[..eq].Trim();
            var value = line[(eq + 1)..].Trim();
            value = value.Replace("%i", instance, StringComparison.Ordinal);
            if (value.Contains('%', StringComparison.Ordinal))
            {
                throw new InvalidOperationException($"{path}: {key}={value} has a specifier the test does not replace");
            }

            if (value.Length == 0)
            {
                // An empty assignment resets the list (Environment=, EnvironmentFile=, …).
                _settings.RemoveAll(s => s.Section == section && s.Key == key);
                continue;
            }

            _settings.Add((section, key, value));
        }
    }
}
