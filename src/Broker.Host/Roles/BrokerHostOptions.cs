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
    /// and SQLite and Garnet create their files world-readable under the usual umask. One that
    /// exists open to other users (made by hand, or by a release before 1.0) is made private too.
    /// </summary>
    /// <returns>The mode an existing directory had when it was made private; null when nothing was changed.</returns>
    /// <exception cref="IOException">It is open to other users and cannot be made private.</exception>
    public UnixFileMode? CreateDataDirectory()
    {
        if (OperatingSystem.IsWindows())
        {
            Directory.CreateDirectory(DataDirectory);
            return null;
        }

        const UnixFileMode Private = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
        const UnixFileMode Others = UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.GroupExecute
            | UnixFileMode.OtherRead | UnixFileMode.OtherWrite | UnixFileMode.OtherExecute;
        var directory = Directory.CreateDirectory(DataDirectory, Private);
        var mode = directory.UnixFileMode;
        if ((mode & Others) == 0)
        {
            return null;
        }

        // A shared directory (/tmp) is not Broker's to close: that would break every other user of it.
        if (mode.HasFlag(UnixFileMode.StickyBit))
        {
            throw new IOException($"it is a shared directory (mode {Octal(mode)}); give Broker a directory of its own");
        }

        try
        {
            File.SetUnixFileMode(directory.FullName, Private);
        }
        catch (UnauthorizedAccessException ex)
        {
            throw new IOException($"it is open to other users (mode {Octal(mode)}) and this user cannot make it private: `chmod 700` it, or run broker as its owner", ex);
        }

        return mode;
    }

    /// <summary>A file mode as <c>chmod</c> writes it (<c>0755</c>).</summary>
    public static string Octal(UnixFileMode mode) => Convert.ToString((int)mode, 8).PadLeft(4, '0');

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
