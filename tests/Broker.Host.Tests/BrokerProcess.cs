using System.Collections.Concurrent;
using System.Diagnostics;
using Broker.Testing;

namespace Broker.Host.Tests;

/// <summary>The real <c>broker</c> executable, started as a person would start it, with its output kept.</summary>
internal sealed class BrokerProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly ConcurrentQueue<string> _output = new();
    private readonly ConcurrentQueue<string> _standardOutput = new();

    private BrokerProcess(Process process)
    {
        _process = process;
        _process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                _output.Enqueue(e.Data);
                _standardOutput.Enqueue(e.Data);
            }
        };
        _process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data is not null)
            {
                _output.Enqueue(e.Data);
            }
        };
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    public string Output => string.Join('\n', _output);

    /// <summary>Standard output alone: the command's answer, without log lines and errors.</summary>
    public string StandardOutput => string.Join('\n', _standardOutput);

    public bool HasExited => _process.HasExited;

    public static string BrokerDll => Path.Combine(AppContext.BaseDirectory, "broker.dll");

    public static BrokerProcess Start(params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false, WorkingDirectory = Path.GetTempPath() };
        psi.ArgumentList.Add(BrokerDll);
        foreach (var arg in args)
        {
            psi.ArgumentList.Add(arg);
        }

        psi.Environment["DOTNET_ENVIRONMENT"] = "Production";
        // A test run started by a systemd unit would pass its journal stream and notification socket on:
        // broker would log in journald's form, which the tests' checks of log lines do not expect, and
        // tell that unit's manager it is ready.
        psi.Environment.Remove("JOURNAL_STREAM");
        psi.Environment.Remove("NOTIFY_SOCKET");
        return new BrokerProcess(Process.Start(psi)!);
    }

    /// <summary>An executable (the apphost, as a service unit starts it) with exactly this environment and working directory.</summary>
    public static BrokerProcess StartExecutable(string path, IEnumerable<string> args, IReadOnlyDictionary<string, string> environment, string workingDirectory)
    {
        var psi = new ProcessStartInfo(path) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false, WorkingDirectory = workingDirectory };
        foreach (var arg in args)
        {
            psi.ArgumentList.Add(arg);
        }

        psi.Environment.Clear();
        foreach (var (name, value) in environment)
        {
            psi.Environment[name] = value;
        }

        return new BrokerProcess(Process.Start(psi)!);
    }

    /// <summary>Runs a CLI command to completion and returns its exit code and output.</summary>
    public static async Task<(int ExitCode, string Output)> RunAsync(params string[] args)
    {
        var (code, output, _) = await RunSeparatedAsync(args);
        return (code, output);
    }

    /// <summary>Runs a CLI command to completion; its output, and its standard output alone.</summary>
    public static async Task<(int ExitCode, string Output, string StandardOutput)> RunSeparatedAsync(params string[] args)
    {
        await using var p = Start(args);
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await p._process.WaitForExitAsync(cts.Token);
        // Let the async readers drain.
        p._process.WaitForExit();
        return (p._process.ExitCode, p.Output, p.StandardOutput);
    }

    public async Task WaitForOutputAsync(string text, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!Output.Contains(text, StringComparison.Ordinal))
        {
            if (_process.HasExited || DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"broker did not print '{text}'. Output:\n{Output}");
            }

            await Task.Delay(50);
        }
    }

    public async Task<int> WaitForExitAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        await _process.WaitForExitAsync(cts.Token);
        _process.WaitForExit();
        return _process.ExitCode;
    }

    /// <summary>SIGTERM, as systemd or Ctrl+C would stop it.</summary>
    public async Task StopAsync()
    {
        if (!_process.HasExited)
        {
            using var kill = Process.Start("kill", ["-TERM", _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
            await kill.WaitForExitAsync();
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(20));
            try
            {
                await _process.WaitForExitAsync(cts.Token);
            }
            catch (OperationCanceledException)
            {
                _process.Kill(entireProcessTree: true);
            }
        }
    }

    /// <summary>SIGTERM without waiting for the process to exit.</summary>
    public async Task TerminateAsync()
    {
        using var kill = Process.Start("kill", ["-TERM", _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        await kill.WaitForExitAsync();
    }

    /// <summary>SIGINT, as Ctrl+C in a terminal.</summary>
    public async Task InterruptAsync()
    {
        using var kill = Process.Start("kill", ["-INT", _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
        await kill.WaitForExitAsync();
    }

    /// <summary>SIGKILL: a crash, no chance to flush anything.</summary>
    public async Task CrashAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await CrashAsync();
        _process.Dispose();
    }
}

/// <summary>Ports and a data directory for one embedded-mode broker.</summary>
internal sealed class EmbeddedLayout : IDisposable
{
    public string DataDirectory { get; } = Directory.CreateTempSubdirectory("broker-data-").FullName;

    public int GatewayPort { get; } = FreePort.Get();

    public int ValidationPort { get; } = FreePort.Get();

    public int PortalPort { get; } = FreePort.Get();

    public int RedisPort { get; } = FreePort.Get();

    public string[] Args =>
    [
        $"--Broker:DataDirectory={DataDirectory}",
        $"--Broker:EmbeddedRedisPort={RedisPort}",
        $"--Broker:Urls:gateway=http://127.0.0.1:{GatewayPort}",
        $"--Broker:Urls:validation=http://127.0.0.1:{ValidationPort}",
        $"--Broker:Urls:portal=http://localhost:{PortalPort}",
    ];

    public void Dispose() => Directory.Delete(DataDirectory, recursive: true);
}
