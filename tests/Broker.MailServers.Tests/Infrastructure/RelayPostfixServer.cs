using System.Globalization;
using System.Text;
using Broker.Testing;

namespace Broker.MailServers.Tests.Infrastructure;

/// <summary>
/// A real Postfix as the SMTP relay Broker's notifier talks to: plain SMTP on a free loopback
/// port, relaying for <c>mynetworks</c> (loopback) without authentication, and delivering one
/// virtual mailbox domain over LMTP to a Dovecot; every other destination bounces, so nothing
/// ever leaves the machine.
/// </summary>
public sealed class RelayPostfixServer : IAsyncDisposable
{
    private RelayPostfixServer(string dir, int smtpPort)
    {
        Dir = dir;
        SmtpPort = smtpPort;
    }

    public string Dir { get; }

    public string ConfigDir => Path.Combine(Dir, "etc");

    public string QueueDir => Path.Combine(Dir, "queue");

    public int SmtpPort { get; }

    public string Log => File.Exists(Path.Combine(Dir, "maillog")) ? File.ReadAllText(Path.Combine(Dir, "maillog")) : string.Empty;

    /// <param name="domain">The virtual mailbox domain delivered to Dovecot.</param>
    /// <param name="lmtpPort">Dovecot's LMTP listener on 127.0.0.1.</param>
    public static async Task<RelayPostfixServer> StartAsync(string domain, int lmtpPort)
    {
        var server = new RelayPostfixServer(Shell.TempDirectory("postfix-relay"), FreePort.Get());
        try
        {
            await server.ConfigureAndStartAsync(domain, lmtpPort);
            return server;
        }
        catch
        {
            await server.DisposeAsync();
            throw;
        }
    }

    private async Task ConfigureAndStartAsync(string domain, int lmtpPort)
    {
        Directory.CreateDirectory(ConfigDir);
        Directory.CreateDirectory(QueueDir);
        Directory.CreateDirectory(Path.Combine(Dir, "data"));
        await Shell.RunCheckedAsync("chown", "postfix:", Path.Combine(Dir, "data"));

        // The relay setup docs/configuration.md ("Email notifications") describes, with test paths.
        await File.WriteAllTextAsync(Path.Combine(ConfigDir, "main.cf"), $"""
            compatibility_level = 3.6
            queue_directory = {QueueDir}
            data_directory = {Path.Combine(Dir, "data")}
            mail_owner = postfix
            setgid_group = postdrop
            inet_interfaces = 127.0.0.1
            inet_protocols = ipv4
            myhostname = relay.broker-test.localdomain
            mydestination =
            alias_maps =
            alias_database =
            local_recipient_maps =
            mynetworks = 127.0.0.0/8
            smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
            virtual_mailbox_domains = {domain}
            virtual_transport = lmtp:inet:127.0.0.1:{lmtpPort.ToString(CultureInfo.InvariantCulture)}
            default_transport = error:this test relay delivers only to {domain}
            relay_transport = error:this test relay delivers only to {domain}
            maillog_file = {Path.Combine(Dir, "maillog")}
            maillog_file_prefixes = {Dir}
            """);

        // The distribution's master.cf with smtpd on the test port instead of 25, every service out
        // of the chroot (a chroot would need copies of /etc files inside this temporary queue directory).
        var master = new StringBuilder();
        foreach (var line in await File.ReadAllLinesAsync("/etc/postfix/master.cf"))
        {
            var l = line.StartsWith("smtp      inet", StringComparison.Ordinal)
                ? $"127.0.0.1:{SmtpPort.ToString(CultureInfo.InvariantCulture)} inet n - n - - smtpd"
                : line;
            master.AppendLine(PostfixServer.NoChroot(l));
        }

        await File.WriteAllTextAsync(Path.Combine(ConfigDir, "master.cf"), master.ToString());
        var (code, output) = await Shell.RunAsync(Tool.Find("postfix"), ["-c", ConfigDir, "start"]);
        if (code != 0)
        {
            // Postfix reports fatal start-up errors only to a terminal or the mail log.
            throw new InvalidOperationException($"postfix start exited with {code}: {output}\n{Log}");
        }

        await FreePort.WaitListeningAsync(SmtpPort, TimeSpan.FromSeconds(15));
    }

    /// <summary>Whether the queue is empty: everything accepted has been delivered (or bounced).</summary>
    public async Task<bool> QueueIsEmptyAsync()
    {
        var (_, output) = await Shell.RunAsync(Tool.Find("postqueue"), ["-c", ConfigDir, "-p"]);
        return output.Contains("Mail queue is empty", StringComparison.Ordinal);
    }

    public async ValueTask DisposeAsync()
    {
        if (Directory.Exists(ConfigDir) && File.Exists(Path.Combine(ConfigDir, "main.cf")))
        {
            await Shell.RunAsync(Tool.Find("postfix"), ["-c", ConfigDir, "stop"], TimeSpan.FromSeconds(20));
        }

        Shell.DeleteQuietly(Dir);
    }
}
