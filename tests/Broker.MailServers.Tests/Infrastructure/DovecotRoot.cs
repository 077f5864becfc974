using Broker.Testing;

namespace Broker.MailServers.Tests.Infrastructure;

/// <summary>
/// A Debian 13 (trixie) root holding Dovecot 2.4, which this Debian 12 machine does not have: the
/// tests run its Dovecot with chroot. A chroot shares the network namespace, so Dovecot reaches
/// Broker on loopback and the tests reach Dovecot's ports; every file Dovecot reads must be inside.
/// tests/run.sh builds the root (tests/build-dovecot24-root.sh) and names it in <see cref="EnvVar"/>.
/// </summary>
public sealed class DovecotRoot
{
    public const string EnvVar = "BROKER_DOVECOT24_ROOT";

    public const string DefaultPath = "/var/cache/broker-tests/trixie-dovecot";

    /// <summary>Written last by the build script: a root without it was interrupted.</summary>
    public const string CompleteMarker = ".broker-complete";

    /// <summary>
    /// What the tests run from the root. A root built before the script's package list grew lacks
    /// some (the script rebuilds it); checked here so the error names the fix instead of Dovecot
    /// failing on a protocol it has no binary for.
    /// </summary>
    private static readonly string[] RequiredFiles =
    [
        "usr/sbin/dovecot",
        "usr/lib/dovecot/imap",
        "usr/lib/dovecot/pop3",
        "usr/lib/dovecot/submission",
        "usr/lib/dovecot/lmtp",
    ];

    private DovecotRoot(string path) => Path = path;

    /// <summary>The root's directory on the host.</summary>
    public string Path { get; }

    /// <summary>The Dovecot 2.4 root, or an error naming the command that builds it (never a skip).</summary>
    public static DovecotRoot Trixie()
    {
        var path = Environment.GetEnvironmentVariable(EnvVar) is { Length: > 0 } fromEnv ? fromEnv : DefaultPath;
        var missing = RequiredFiles.Prepend(CompleteMarker).Where(f => !File.Exists(System.IO.Path.Combine(path, f))).ToList();
        if (missing.Count > 0)
        {
            throw new InvalidOperationException(
                $"The Debian 13 root with Dovecot 2.4 is missing, incomplete or older than the tests at {path} ({EnvVar}; missing: {string.Join(", ", missing)}). " +
                $"Build it with: sudo tests/build-dovecot24-root.sh {path}   (tests/run.sh does this itself; it needs mmdebstrap and deb.debian.org).");
        }

        return new DovecotRoot(path);
    }

    /// <summary>A fresh directory inside the root (under its /tmp), traversable by Dovecot's unprivileged users.</summary>
    public string TempDirectory(string name)
    {
        var dir = System.IO.Path.Combine(Path, "tmp", $"broker-{name}-{Guid.NewGuid():N}"[..40]);
        Directory.CreateDirectory(dir);
        File.SetUnixFileMode(dir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);
        return dir;
    }

    /// <summary>
    /// Gives the root the host's account of a user (and its group), so that Dovecot in the chroot,
    /// which resolves names from the root's /etc/passwd, gives a socket to the same uid the host's
    /// program runs as (e.g. user = postfix on the Postfix SASL listener). On a real Debian 13 host
    /// the package creates that account; the root has none. Idempotent: an entry with the host's
    /// ids is left alone, a stale one replaced.
    /// </summary>
    public async Task AddHostAccountAsync(string user)
    {
        var passwd = (await Shell.RunCheckedAsync(Tool.Find("getent"), "passwd", user)).Trim();
        var gid = passwd.Split(':')[3];
        var group = (await Shell.RunCheckedAsync(Tool.Find("getent"), "group", gid)).Trim();
        Replace("etc/passwd", passwd);
        Replace("etc/group", group);

        void Replace(string file, string entry)
        {
            var hostFile = System.IO.Path.Combine(Path, file);
            var name = entry[..(entry.IndexOf(':', StringComparison.Ordinal) + 1)];
            var lines = File.ReadAllLines(hostFile).ToList();
            if (lines.Contains(entry))
            {
                return;
            }

            lines.RemoveAll(l => l.StartsWith(name, StringComparison.Ordinal));
            lines.Add(entry);
            // Written aside and renamed: a Dovecot reading the file meanwhile sees the old or the new one.
            var temp = hostFile + ".broker-tmp";
            File.WriteAllLines(temp, lines);
            File.SetUnixFileMode(temp, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
            File.Move(temp, hostFile, overwrite: true);
        }
    }

    /// <summary>The path Dovecot sees for a host path inside the root.</summary>
    public string Inside(string hostPath)
    {
        var relative = System.IO.Path.GetRelativePath(Path, hostPath);
        if (relative.StartsWith("..", StringComparison.Ordinal) || System.IO.Path.IsPathRooted(relative))
        {
            throw new ArgumentException($"{hostPath} is outside the Dovecot root {Path}: chrooted Dovecot cannot read it.", nameof(hostPath));
        }

        return "/" + relative;
    }
}
