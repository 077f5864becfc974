namespace Broker.Host.Roles;

/// <summary>What this process runs and where. Bound from <c>Broker</c>.</summary>
public sealed class BrokerHostOptions
{
    public const string SectionName = "Broker";

    /// <summary>Comma-separated roles: <c>gateway</c>, <c>validation</c>, <c>portal</c>, or <c>all</c> (default).</summary>
    public string Roles { get; set; } = "all";

    /// <summary>Where the embedded store and generated secrets live. Relative paths are from the working directory.</summary>
    public string DataDirectory { get; set; } = "data";

    /// <summary>Listen URL per role.</summary>
    public Dictionary<string, string> Urls { get; set; } = new(StringComparer.OrdinalIgnoreCase)
    {
        ["gateway"] = "http://127.0.0.1:5080",
        ["validation"] = "http://127.0.0.1:5081",
        ["portal"] = "http://127.0.0.1:5082",
    };

    /// <summary>Where the embedded host keeps its generated pepper; the CLI reads the same file.</summary>
    public string EmbeddedPepperFile => Path.Combine(Path.GetFullPath(DataDirectory), "pepper.key");

    /// <summary>Loopback port of the embedded Garnet when <c>Redis:Configuration</c> is empty.</summary>
    public int EmbeddedRedisPort { get; set; } = 6390;

    /// <summary>
    /// Creates the data directory readable by this user only: it holds the pepper, the store's AOF
    /// (keyed hashes of every credential) and the portal database (password hashes, TOTP keys),
    /// and SQLite and Garnet create their files world-readable under the usual umask.
    /// </summary>
    public void CreateDataDirectory()
    {
        if (OperatingSystem.IsWindows())
        {
            Directory.CreateDirectory(DataDirectory);
        }
        else
        {
            Directory.CreateDirectory(DataDirectory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }
    }

    public IReadOnlySet<string> RoleSet()
    {
        var set = new HashSet<string>(Roles.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries), StringComparer.OrdinalIgnoreCase);
        if (set.Remove("all"))
        {
            set.UnionWith(KnownRoles);
        }

        return set;
    }

    public static IReadOnlyList<string> KnownRoles { get; } = ["gateway", "validation", "portal"];
}
