using System.Net;
using System.Net.Sockets;
using Broker.Testing;

namespace Broker.Host.Tests;

/// <summary>
/// A server that cannot start says why, naming the setting, and exits non-zero. Each of these was an
/// unhandled exception: exit 134 (abort) and a stack trace.
/// </summary>
public sealed class StartUpFailureTests
{
    /// <summary>
    /// A gateway alone needs no store, so these start (and fail) in a moment. Its validation
    /// destination is not there: the warnings of its failed health probes are not what is tested.
    /// </summary>
    private static string[] Gateway(string url) =>
        ["--Broker:Roles=gateway", $"--Broker:Urls:gateway={url}", "--Broker:Gateway:ValidationDestinations:v=http://127.0.0.1:1", "--Logging:LogLevel:Yarp.ReverseProxy.Health=Error"];

    [Theory]
    [InlineData("notaurl", "Broker:Urls:gateway is not a listen URL such as http://127.0.0.1:5080; got 'notaurl'.")]
    [InlineData("http://127.0.0.1:99999", "Broker:Urls:gateway is not a listen URL")]
    // Empty: Kestrel listened on its own default, http://localhost:5000, instead.
    [InlineData("", "Broker:Urls:gateway is not set")]
    public async Task BadListenUrl_IsRefusedNamingTheSetting(string url, string message)
    {
        await using var p = BrokerProcess.Start(Gateway(url));

        var code = await p.WaitForExitAsync(TimeSpan.FromSeconds(60));

        AssertRefused(p, code, 3, message);
    }

    [Fact]
    public async Task UnknownRole_IsBadConfiguration()
    {
        // It exited 2, the code for a command line that is wrong, though the role may come from a file or the environment.
        await using var p = BrokerProcess.Start("--Broker:Roles=gateway,mail");

        var code = await p.WaitForExitAsync(TimeSpan.FromSeconds(60));

        AssertRefused(p, code, 3, "Broker:Roles must name gateway, validation, portal or all; got 'gateway,mail'.");
    }

    [Fact]
    public async Task ListenPortInUse_IsRefusedNamingTheSetting()
    {
        using var taken = new TcpListener(IPAddress.Loopback, 0);
        taken.Start();
        var port = ((IPEndPoint)taken.LocalEndpoint).Port;
        await using var p = BrokerProcess.Start(Gateway($"http://127.0.0.1:{port}"));

        var code = await p.WaitForExitAsync(TimeSpan.FromSeconds(60));

        AssertRefused(p, code, 3, $"the gateway role cannot listen: Failed to bind to address http://127.0.0.1:{port}: address already in use (Broker:Urls:gateway");
    }

    [Fact]
    public async Task EmbeddedStorePortInUse_IsRefusedNamingTheSetting()
    {
        // What a second `dotnet run` next to a running one meets first.
        using var layout = new EmbeddedLayout();
        using var taken = new TcpListener(IPAddress.Loopback, layout.RedisPort);
        taken.Start();
        await using var p = BrokerProcess.Start(layout.Args);

        var code = await p.WaitForExitAsync(TimeSpan.FromSeconds(60));

        AssertRefused(p, code, 3, $"the embedded Garnet cannot listen on 127.0.0.1:{layout.RedisPort} (Broker:EmbeddedRedisPort): AddressAlreadyInUse");
    }

    [Fact]
    public async Task EmbeddedStorePortOutOfRange_IsRefusedNamingTheSetting()
    {
        using var layout = new EmbeddedLayout();
        await using var p = BrokerProcess.Start([.. layout.Args, "--Broker:EmbeddedRedisPort=99999"]);

        var code = await p.WaitForExitAsync(TimeSpan.FromSeconds(60));

        AssertRefused(p, code, 3, "Broker:EmbeddedRedisPort must be a port from 1 to 65535; got 99999.");
    }

    [Fact]
    public async Task DataDirectoryThatCannotBeCreated_IsRefusedNamingTheSetting()
    {
        using var layout = new EmbeddedLayout();
        // Below a regular file: no directory can be made there, not even by root.
        var file = Path.Combine(layout.DataDirectory, "not-a-directory");
        await File.WriteAllTextAsync(file, "x");
        await using var p = BrokerProcess.Start([.. layout.Args, $"--Broker:DataDirectory={Path.Combine(file, "data")}"]);

        var code = await p.WaitForExitAsync(TimeSpan.FromSeconds(60));

        AssertRefused(p, code, 3, $"cannot use the data directory {Path.Combine(file, "data")} (Broker:DataDirectory)");
    }

    [Fact]
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public async Task SharedDataDirectory_IsRefusedNotClosed()
    {
        // Like /tmp: made 0700 it would lock every other user out of it; left open, it exposes the pepper and the portal database.
        using var layout = new EmbeddedLayout();
        var shared = Path.Combine(layout.DataDirectory, "shared");
        Directory.CreateDirectory(shared);
        File.SetUnixFileMode(shared, (UnixFileMode)Convert.ToInt32("1777", 8));
        await using var p = BrokerProcess.Start([.. layout.Args, $"--Broker:DataDirectory={shared}"]);

        var code = await p.WaitForExitAsync(TimeSpan.FromSeconds(60));

        AssertRefused(p, code, 3, $"cannot use the data directory {shared} (Broker:DataDirectory): it is a shared directory (mode 1777); give Broker a directory of its own");
        Assert.Equal((UnixFileMode)Convert.ToInt32("1777", 8), File.GetUnixFileMode(shared));
    }

    [Fact]
    public async Task PortalDatabaseThatCannotBeOpened_IsRefusedNamingTheSetting()
    {
        using var layout = new EmbeddedLayout();
        var missing = Path.Combine(layout.DataDirectory, "missing", "portal.db");
        await using var p = BrokerProcess.Start([.. layout.Args, $"--Broker:Portal:ConnectionString=Data Source={missing}"]);

        var code = await p.WaitForExitAsync(TimeSpan.FromSeconds(60));

        AssertRefused(p, code, 4, "the portal role cannot use the portal database (Broker:Portal:DatabaseProvider, Broker:Portal:ConnectionString");
        Assert.Contains("unable to open database file", p.Output, StringComparison.Ordinal);
    }

    private static void AssertRefused(BrokerProcess p, int code, int expected, string message)
    {
        Assert.True(code == expected, $"exit {code}, expected {expected}:\n{p.Output}");
        Assert.Contains($"error: {message}", p.Output, StringComparison.Ordinal);
        Assert.DoesNotContain("Unhandled exception", p.Output, StringComparison.Ordinal);
        // The host's own "Hosting failed to start" came first, with the whole stack trace.
        Assert.DoesNotContain("   at ", p.Output, StringComparison.Ordinal);
        Assert.DoesNotContain("Hosting failed to start", p.Output, StringComparison.Ordinal);
    }
}
