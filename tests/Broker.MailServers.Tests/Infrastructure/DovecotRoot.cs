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

    private DovecotRoot(string path) => Path = path;

    /// <summary>The root's directory on the host.</summary>
    public string Path { get; }

    /// <summary>The Dovecot 2.4 root, or an error naming the command that builds it (never a skip).</summary>
    public static DovecotRoot Trixie()
    {
        var path = Environment.GetEnvironmentVariable(EnvVar) is { Length: > 0 } fromEnv ? fromEnv : DefaultPath;
        if (!File.Exists(System.IO.Path.Combine(path, CompleteMarker)) || !File.Exists(System.IO.Path.Combine(path, "usr/sbin/dovecot")))
        {
            throw new InvalidOperationException(
                $"The Debian 13 root with Dovecot 2.4 is missing or incomplete at {path} ({EnvVar}). " +
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
