using System.Diagnostics;
using System.Globalization;

namespace Broker.Testing;

/// <summary>
/// A real three-master Redis Cluster (redis-server --cluster-enabled, joined with
/// <c>redis-cli --cluster create</c>) on free loopback ports, for proving the key design.
/// </summary>
public sealed class RedisCluster : IAsyncDisposable
{
    private readonly List<Process> _nodes = [];
    private readonly string _dir = Directory.CreateTempSubdirectory("broker-cluster-").FullName;

    public IReadOnlyList<int> Ports { get; private set; } = [];

    public string Configuration => string.Join(',', Ports.Select(p => $"127.0.0.1:{p}")) + ",connectTimeout=2000,abortConnect=false";

    public static async Task<RedisCluster> StartAsync()
    {
        var cluster = new RedisCluster();
        var ports = Enumerable.Range(0, 3).Select(_ => FreePort.Get()).Distinct().ToList();
        cluster.Ports = ports;
        foreach (var port in ports)
        {
            var dir = Path.Combine(cluster._dir, port.ToString(CultureInfo.InvariantCulture));
            Directory.CreateDirectory(dir);
            var psi = new ProcessStartInfo(Tool.Find("redis-server")) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = dir };
            foreach (var arg in new[] { "--port", port.ToString(CultureInfo.InvariantCulture), "--bind", "127.0.0.1", "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--dir", dir, "--save", "", "--appendonly", "no" })
            {
                psi.ArgumentList.Add(arg);
            }

            var p = Process.Start(psi)!;
            p.OutputDataReceived += (_, _) => { };
            p.ErrorDataReceived += (_, _) => { };
            p.BeginOutputReadLine();
            p.BeginErrorReadLine();
            cluster._nodes.Add(p);
        }

        foreach (var port in ports)
        {
            await FreePort.WaitListeningAsync(port, TimeSpan.FromSeconds(10));
        }

        var create = new ProcessStartInfo(Tool.Find("redis-cli")) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        create.ArgumentList.Add("--cluster");
        create.ArgumentList.Add("create");
        foreach (var port in ports)
        {
            create.ArgumentList.Add($"127.0.0.1:{port}");
        }

        create.ArgumentList.Add("--cluster-replicas");
        create.ArgumentList.Add("0");
        create.ArgumentList.Add("--cluster-yes");
        using (var cli = Process.Start(create)!)
        {
            var output = await cli.StandardOutput.ReadToEndAsync();
            await cli.WaitForExitAsync();
            if (cli.ExitCode != 0 || !output.Contains("All 16384 slots covered", StringComparison.Ordinal))
            {
                throw new InvalidOperationException($"redis-cli --cluster create failed:\n{output}");
            }
        }

        // Wait until every node agrees the cluster is up.
        for (var i = 0; i < 100; i++)
        {
            var info = new ProcessStartInfo(Tool.Find("redis-cli"), ["-p", ports[0].ToString(CultureInfo.InvariantCulture), "cluster", "info"]) { RedirectStandardOutput = true, UseShellExecute = false };
            using var p = Process.Start(info)!;
            var text = await p.StandardOutput.ReadToEndAsync();
            await p.WaitForExitAsync();
            if (text.Contains("cluster_state:ok", StringComparison.Ordinal))
            {
                return cluster;
            }

            await Task.Delay(100);
        }

        throw new InvalidOperationException("Redis Cluster did not reach cluster_state:ok.");
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var p in _nodes)
        {
            if (!p.HasExited)
            {
                p.Kill(entireProcessTree: true);
                await p.WaitForExitAsync();
            }

            p.Dispose();
        }

        try
        {
            Directory.Delete(_dir, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

/// <summary>One Redis Cluster per test class.</summary>
public sealed class RedisClusterFixture : Xunit.IAsyncLifetime
{
    private RedisCluster? _cluster;

    public RedisCluster Cluster => _cluster ?? throw new InvalidOperationException("Not started.");

    public async Task InitializeAsync() => _cluster = await RedisCluster.StartAsync();

    public async Task DisposeAsync()
    {
        if (_cluster is not null)
        {
            await _cluster.DisposeAsync();
        }
    }
}
