using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using Broker.Testing;
using Npgsql;

namespace Broker.Portal.Tests.Infrastructure;

/// <summary>
/// A private PostgreSQL cluster made with the Debian binaries (<c>initdb</c>, <c>pg_ctl</c>) in a
/// temp directory, listening only on 127.0.0.1 on a free port (and a Unix socket in that directory),
/// with a random superuser password. One per test class (xunit class fixture); each test gets its
/// own database from <see cref="CreateDatabaseAsync"/>. Stopped and deleted on dispose.
/// </summary>
/// <remarks>
/// PostgreSQL refuses to run as root, and CI runs the tests as root: then initdb and pg_ctl run as
/// the <c>postgres</c> system user (created by the Debian package) through <c>runuser</c>, and the
/// directory belongs to that user.
/// </remarks>
public sealed class PostgresCluster : IAsyncLifetime
{
    private const string Superuser = "broker_test";
    private const string SystemUser = "postgres";

    private readonly string _password = Convert.ToHexString(RandomNumberGenerator.GetBytes(16));
    private string _bin = string.Empty;

    public int Port { get; private set; }

    public string Directory { get; private set; } = string.Empty;

    private string DataDirectory => Path.Combine(Directory, "data");

    /// <summary>The superuser password, so tests can check it never reaches a log.</summary>
    public string Password => _password;

    public async Task InitializeAsync()
    {
        _bin = FindBinDirectory();
        Port = FreePort.Get();
        Directory = Path.Combine(Path.GetTempPath(), "broker-pg-" + Guid.NewGuid().ToString("N")[..12]);
        System.IO.Directory.CreateDirectory(Directory);
        var pwfile = Path.Combine(Directory, "pwfile");
        await File.WriteAllTextAsync(pwfile, _password + "\n");
        if (Environment.IsPrivilegedProcess)
        {
            await RunAsync(Tool.Find("chown"), ["-R", $"{SystemUser}:{SystemUser}", Directory], asPostgres: false);
        }

        await RunAsync(Path.Combine(_bin, "initdb"),
            ["-D", DataDirectory, "-U", Superuser, "--pwfile", pwfile, "-A", "scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"]);
        File.Delete(pwfile);

        var port = Port.ToString(CultureInfo.InvariantCulture);
        // Loopback only; fsync off because the cluster is thrown away after the test class.
        var serverOptions = $"-p {port} -k {Directory} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200";
        await RunAsync(Path.Combine(_bin, "pg_ctl"), ["-D", DataDirectory, "-l", Path.Combine(Directory, "server.log"), "-w", "-t", "60", "-o", serverOptions, "start"]);
    }

    /// <summary>A new, empty database; returns its connection string (127.0.0.1 only).</summary>
    public async Task<string> CreateDatabaseAsync()
    {
        var name = "portal_" + Guid.NewGuid().ToString("N")[..12];
        await using (var connection = new NpgsqlConnection(ConnectionString("postgres")))
        {
            await connection.OpenAsync();
            await using var create = connection.CreateCommand();
            // The name is generated above (letters and digits), never input.
#pragma warning disable CA2100
            create.CommandText = $"CREATE DATABASE \"{name}\"";
#pragma warning restore CA2100
            await create.ExecuteNonQueryAsync();
        }

        return ConnectionString(name);
    }

    public string ConnectionString(string database) => new NpgsqlConnectionStringBuilder
    {
        Host = "127.0.0.1",
        Port = Port,
        Database = database,
        Username = Superuser,
        Password = _password,
    }.ConnectionString;

    public async Task DisposeAsync()
    {
        NpgsqlConnection.ClearAllPools();
        if (File.Exists(Path.Combine(DataDirectory, "postmaster.pid")))
        {
            await RunAsync(Path.Combine(_bin, "pg_ctl"), ["-D", DataDirectory, "-m", "immediate", "-w", "stop"]);
        }

        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private static string FindBinDirectory()
    {
        // The newest installed major version (Debian: /usr/lib/postgresql/<major>/bin).
        var root = "/usr/lib/postgresql";
        var bin = System.IO.Directory.Exists(root)
            ? System.IO.Directory.GetDirectories(root)
                .Select(d => (Dir: Path.Combine(d, "bin"), Major: int.TryParse(Path.GetFileName(d), NumberStyles.None, CultureInfo.InvariantCulture, out var m) ? m : 0))
                .Where(d => File.Exists(Path.Combine(d.Dir, "initdb")))
                .OrderByDescending(d => d.Major)
                .Select(d => d.Dir)
                .FirstOrDefault()
            : null;
        return bin ?? throw new InvalidOperationException("PostgreSQL server binaries (/usr/lib/postgresql/*/bin/initdb) are not installed. Run the README's test command (tests/run.sh), which installs the postgresql package.");
    }

    private async Task RunAsync(string program, IEnumerable<string> arguments, bool asPostgres = true)
    {
        var psi = new ProcessStartInfo
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = Directory,
        };
        if (asPostgres && Environment.IsPrivilegedProcess)
        {
            psi.FileName = Tool.Find("runuser");
            foreach (var a in new[] { "-u", SystemUser, "--", program })
            {
                psi.ArgumentList.Add(a);
            }
        }
        else
        {
            psi.FileName = program;
        }

        foreach (var a in arguments)
        {
            psi.ArgumentList.Add(a);
        }

        using var process = Process.Start(psi) ?? throw new InvalidOperationException($"{program} did not start.");
        // pg_ctl start with -l: the server writes to its log file, so these pipes close when pg_ctl exits.
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        if (process.ExitCode != 0)
        {
            var log = Path.Combine(Directory, "server.log");
            var serverLog = File.Exists(log) ? await File.ReadAllTextAsync(log) : string.Empty;
            throw new InvalidOperationException($"{Path.GetFileName(program)} failed ({process.ExitCode}): {await stdout}{await stderr}{serverLog}");
        }
    }
}
