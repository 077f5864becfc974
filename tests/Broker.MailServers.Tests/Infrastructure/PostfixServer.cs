using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using Broker.Testing;

namespace Broker.MailServers.Tests.Infrastructure;

/// <summary>
/// A real Postfix with its own config_directory and queue_directory (<c>postfix -c DIR start</c>),
/// submission on a free loopback port, STARTTLS with a throwaway certificate, and mail discarded
/// after acceptance (the test is about authentication, not delivery).
/// </summary>
public sealed partial class PostfixServer : IAsyncDisposable
{
    private PostfixServer(string dir, int submissionPort)
    {
        Dir = dir;
        SubmissionPort = submissionPort;
    }

    public string Dir { get; }

    public string ConfigDir => Path.Combine(Dir, "etc");

    public string QueueDir => Path.Combine(Dir, "queue");

    /// <summary>Where Dovecot must put the SASL socket for this Postfix (smtpd_sasl_path = private/auth).</summary>
    public string SaslSocketPath => Path.Combine(QueueDir, "private", "auth");

    public int SubmissionPort { get; }

    public string CertificatePath => Path.Combine(ConfigDir, "cert.pem");

    /// <summary>Certificate pinning for the throwaway test certificate: only exactly that certificate is trusted.</summary>
    public bool IsOurCertificate(System.Security.Cryptography.X509Certificates.X509Certificate? presented)
    {
        if (presented is null)
        {
            return false;
        }

        var pem = File.ReadAllText(CertificatePath);
        var fields = System.Security.Cryptography.PemEncoding.Find(pem);
        var der = Convert.FromBase64String(pem[fields.Base64Data]);
        return presented.GetRawCertData().AsSpan().SequenceEqual(der);
    }

    public string Log => File.Exists(Path.Combine(Dir, "maillog")) ? File.ReadAllText(Path.Combine(Dir, "maillog")) : string.Empty;

    /// <summary>Creates the directories (so Dovecot can create the SASL socket before Postfix starts).</summary>
    /// <param name="dir">
    /// An empty directory to use, e.g. inside a <see cref="DovecotRoot"/> so that a chrooted Dovecot can
    /// create the SASL socket in the queue directory; by default a new one under /tmp.
    /// </param>
    public static async Task<PostfixServer> PrepareAsync(string? dir = null)
    {
        var server = new PostfixServer(dir ?? Shell.TempDirectory("postfix"), FreePort.Get());
        Directory.CreateDirectory(server.ConfigDir);
        Directory.CreateDirectory(Path.Combine(server.QueueDir, "private"));
        Directory.CreateDirectory(Path.Combine(server.Dir, "data"));
        await Shell.RunCheckedAsync("chown", "postfix:", Path.Combine(server.QueueDir, "private"), Path.Combine(server.Dir, "data"));
        return server;
    }

    /// <param name="extraServices">More master.cf services (rendered from infra/), appended after the submission services.</param>
    public async Task StartAsync(string? extraServices = null)
    {
        var cert = CertificatePath;
        var key = Path.Combine(ConfigDir, "key.pem");
        await Shell.RunCheckedAsync(Tool.Find("openssl"), "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=localhost");

        var main = new StringBuilder($"""
            # Written by the test: the admin's own main.cf. Broker's part is appended from infra/postfix.
            compatibility_level = 3.6
            queue_directory = {QueueDir}
            data_directory = {Path.Combine(Dir, "data")}
            mail_owner = postfix
            setgid_group = postdrop
            inet_interfaces = 127.0.0.1
            inet_protocols = ipv4
            myhostname = broker-test.localdomain
            mydestination =
            alias_maps =
            alias_database =
            local_recipient_maps =
            default_transport = discard
            relay_transport = discard
            maillog_file = {Path.Combine(Dir, "maillog")}
            maillog_file_prefixes = {Dir}
            smtpd_tls_cert_file = {cert}
            smtpd_tls_key_file = {key}
            smtp_tls_security_level = none
            """);
        main.AppendLine();
        main.Append(InfraFiles.Render("infra/postfix/main.cf.broker"));
        await File.WriteAllTextAsync(Path.Combine(ConfigDir, "main.cf"), main.ToString());

        // The distribution's master.cf without its port-25 listener, every service out of the chroot
        // (a chroot would need copies of /etc files inside this temporary queue directory).
        var master = new StringBuilder();
        foreach (var line in await File.ReadAllLinesAsync("/etc/postfix/master.cf"))
        {
            if (line.StartsWith("smtp      inet", StringComparison.Ordinal))
            {
                continue;
            }

            master.AppendLine(NoChroot(line));
        }

        var submission = InfraFiles.Render(
            "infra/postfix/master.cf.broker",
            ("submission inet", $"127.0.0.1:{SubmissionPort.ToString(CultureInfo.InvariantCulture)} inet"),
            ("submissions inet", $"127.0.0.1:{FreePort.Get().ToString(CultureInfo.InvariantCulture)} inet"));
        foreach (var line in (extraServices is null ? submission : submission + "\n" + extraServices).Split('\n'))
        {
            master.AppendLine(NoChroot(line));
        }

        await File.WriteAllTextAsync(Path.Combine(ConfigDir, "master.cf"), master.ToString());
        var (code, output) = await Shell.RunAsync(Tool.Find("postfix"), ["-c", ConfigDir, "start"]);
        if (code != 0)
        {
            // Postfix reports fatal start-up errors only to a terminal or the mail log.
            throw new InvalidOperationException($"postfix start exited with {code}: {output}\n{Log}");
        }

        await FreePort.WaitListeningAsync(SubmissionPort, TimeSpan.FromSeconds(15));
    }

    /// <summary>Sets the chroot column (5th) of a service line to n.</summary>
    internal static string NoChroot(string line)
    {
        if (line.Length == 0 || line[0] == '#' || char.IsWhiteSpace(line[0]))
        {
            return line;
        }

        return ServiceLine().Replace(line, "$1n$2", 1);
    }

    [GeneratedRegex(@"^(\S+\s+\S+\s+\S+\s+\S+\s+)\S+(\s)")]
    private static partial Regex ServiceLine();

    public async ValueTask DisposeAsync()
    {
        await Shell.RunAsync(Tool.Find("postfix"), ["-c", ConfigDir, "stop"], TimeSpan.FromSeconds(20));
        Shell.DeleteQuietly(Dir);
    }
}
