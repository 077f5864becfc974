using Garnet;

namespace Broker.Host.Embedded;

/// <summary>
/// Garnet in-process, for the one-command default: loopback only, Lua on, every write appended
/// to an AOF in the data directory and replayed at start, so a restart loses no app password.
/// </summary>
internal sealed class EmbeddedGarnet : IDisposable
{
    private readonly GarnetServer _server;

    private EmbeddedGarnet(GarnetServer server, int port)
    {
        _server = server;
        Port = port;
    }

    public int Port { get; }

    public string Endpoint => $"127.0.0.1:{Port}";

    public static EmbeddedGarnet Start(string dataDirectory, int port)
    {
        var dir = Path.Combine(Path.GetFullPath(dataDirectory), "garnet");
        Directory.CreateDirectory(dir);
        string[] args =
        [
            "--bind", "127.0.0.1",
            "--port", port.ToString(System.Globalization.CultureInfo.InvariantCulture),
            // The default native device needs libaio with a newer glibc than Debian 12 has.
            "--device-type", "RandomAccess",
            "--checkpointdir", dir,
            "--aof", "true",
            // Commit the AOF on every write: a credential acknowledged to a user must survive a crash.
            "--aof-commit-freq", "0",
            // ...and answer only once it is on disk: a revocation lost in a crash would bring a credential back.
            "--aof-commit-wait", "true",
            "--recover", "true",
            "--lua", "true",
            // Sized for credentials, not a cache: Garnet's defaults reserve hundreds of MB.
            // (AOF pages must be at least twice the log page; AOF memory twice the AOF page.)
            "--memory", "256m",
            "--page", "1m",
            "--index", "8m",
            "--aof-memory", "8m",
            "--aof-page-size", "2m",
            "--lua-transaction-mode", "true",
        ];
        var server = new GarnetServer(args);
        server.Start();
        return new EmbeddedGarnet(server, port);
    }

    public void Dispose() => _server.Dispose();
}
