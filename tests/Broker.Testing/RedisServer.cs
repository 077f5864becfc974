using System.Diagnostics;

namespace Broker.Testing;

/// <summary>
/// A real <c>redis-server</c> on a free loopback port with its own directory, AOF on
/// (fsync always) so restart tests see what production sees. Stopped and deleted on dispose.
/// </summary>
public sealed class RedisServer : IAsyncDisposable
{
    private Process? _process;

    private readonly string _fsync;

    private RedisServer(int port, string directory, string fsync)
    {
        Port = port;
        Directory = directory;
        _fsync = fsync;
    }

    public int Port { get; }

    public string Directory { get; }

    public string Endpoint => $"127.0.0.1:{Port}";

    /// <summary>A StackExchange.Redis connection string that fails fast, for tests that stop the server.</summary>
    public string Configuration => $"{Endpoint},connectTimeout=1000,abortConnect=false";

    /// <param name="appendFsync">Redis <c>appendfsync</c>: <c>always</c> (default here) or <c>everysec</c>.</param>
    public static async Task<RedisServer> StartAsync(string appendFsync = "always")
    {
        var dir = Path.Combine(Path.GetTempPath(), "broker-redis-" + Guid.NewGuid().ToString("N")[..12]);
        System.IO.Directory.CreateDirectory(dir);
        var server = new RedisServer(FreePort.Get(), dir, appendFsync);
        await server.StartAgainAsync();
        return server;
    }

    /// <summary>Starts the server (again) on the same port and directory; data comes back from the AOF.</summary>
    public async Task StartAgainAsync()
    {
        var psi = new ProcessStartInfo(Tool.Find("redis-server"))
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in new[]
                 {
                     "--port", Port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--bind", "127.0.0.1", "--dir", Directory,
                     "--appendonly", "yes", "--appendfsync", _fsync, "--save", "", "--daemonize", "no", "--protected-mode", "yes",
                 })
        {
            psi.ArgumentList.Add(arg);
        }

        _process = Process.Start(psi) ?? throw new InvalidOperationException("redis-server did not start.");
        _process.OutputDataReceived += (_, _) => { };
        _process.ErrorDataReceived += (_, _) => { };
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
        await FreePort.WaitListeningAsync(Port, TimeSpan.FromSeconds(10));
    }

    /// <summary>
    /// Freezes the server (SIGSTOP): connections stay open but nothing is answered, the way a
    /// swapping or overloaded Redis looks to a client. Calls then time out instead of failing.
    /// </summary>
    public Task PauseAsync() => SignalAsync("STOP");

    /// <summary>Lets a paused server run again (SIGCONT); it answers what queued up meanwhile.</summary>
    public Task ResumeAsync() => SignalAsync("CONT");

    private async Task SignalAsync(string signal)
    {
        var pid = (_process ?? throw new InvalidOperationException("Not running.")).Id;
        using var kill = Process.Start(Tool.Find("kill"), [$"-{signal}", pid.ToString(System.Globalization.CultureInfo.InvariantCulture)])
            ?? throw new InvalidOperationException("kill did not start.");
        await kill.WaitForExitAsync();
        if (kill.ExitCode != 0)
        {
            throw new InvalidOperationException($"kill -{signal} {pid} failed with exit code {kill.ExitCode}.");
        }
    }

    /// <summary>Kills the server (SIGKILL: no chance to save, like a crash).</summary>
    public async Task StopAsync()
    {
        if (_process is { HasExited: false } p)
        {
            p.Kill(entireProcessTree: true);
            await p.WaitForExitAsync();
        }

        _process?.Dispose();
        _process = null;
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
