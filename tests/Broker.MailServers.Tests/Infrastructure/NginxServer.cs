using System.Diagnostics;
using System.Globalization;
using Broker.Testing;

namespace Broker.MailServers.Tests.Infrastructure;

/// <summary>A real nginx mail proxy (<c>nginx -p prefix -c conf</c>, mail module loaded) on a free loopback port.</summary>
public sealed class NginxServer : IAsyncDisposable
{
    private Process? _process;

    private NginxServer(string dir, int imapPort, int smtpPort)
    {
        Dir = dir;
        ImapPort = imapPort;
        SmtpPort = smtpPort;
    }

    public string Dir { get; }

    public int ImapPort { get; }

    /// <summary>The SMTP listener from infra/nginx/mail-smtp.conf; 0 unless started with <c>smtp: true</c>.</summary>
    public int SmtpPort { get; }

    public string ErrorLog => File.Exists(Path.Combine(Dir, "error.log")) ? File.ReadAllText(Path.Combine(Dir, "error.log")) : string.Empty;

    /// <param name="authHttpUrl">Broker's auth_http URL (through the gateway).</param>
    /// <param name="callerKey">Broker caller key nginx sends.</param>
    /// <param name="smtp">Also enable the optional SMTP server (infra/nginx/mail-smtp.conf), as an admin does by uncommenting its include.</param>
    public static async Task<NginxServer> StartAsync(string authHttpUrl, string callerKey, bool smtp = false)
    {
        var server = new NginxServer(Shell.TempDirectory("nginx"), FreePort.Get(), smtp ? FreePort.Get() : 0);
        (string, string)[] replacements =
        [
            ("auth_http http://127.0.0.1:5080/v1/nginx/auth;", $"auth_http {authHttpUrl};"),
            ("CHANGE-ME-broker-caller-key", callerKey),
            ("listen 143;", $"listen 127.0.0.1:{server.ImapPort.ToString(CultureInfo.InvariantCulture)};"),
        ];
        if (smtp)
        {
            var smtpConf = Path.Combine(server.Dir, "mail-smtp.conf");
            await File.WriteAllTextAsync(smtpConf, InfraFiles.Render(
                "infra/nginx/mail-smtp.conf",
                ("listen 587;", $"listen 127.0.0.1:{server.SmtpPort.ToString(CultureInfo.InvariantCulture)};")));
            replacements = [.. replacements, ("#include /etc/nginx/mail-smtp.conf;", $"include {smtpConf};")];
        }

        var mail = InfraFiles.Render("infra/nginx/mail.conf", replacements);
        await File.WriteAllTextAsync(Path.Combine(server.Dir, "mail.conf"), mail);
        await File.WriteAllTextAsync(Path.Combine(server.Dir, "nginx.conf"), $"""
            # Written by the test: the admin's nginx.conf. The mail block comes from infra/nginx/mail.conf.
            load_module /usr/lib/nginx/modules/ngx_mail_module.so;
            daemon off;
            worker_processes 1;
            pid {server.Dir}/nginx.pid;
            error_log {server.Dir}/error.log info;
            events {'{'} worker_connections 64; {'}'}
            include {server.Dir}/mail.conf;
            """);
        var psi = new ProcessStartInfo(Tool.Find("nginx"))
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in new[] { "-p", server.Dir + "/", "-c", Path.Combine(server.Dir, "nginx.conf"), "-e", Path.Combine(server.Dir, "error.log") })
        {
            psi.ArgumentList.Add(a);
        }

        server._process = Process.Start(psi) ?? throw new InvalidOperationException("nginx did not start.");
        server._process.OutputDataReceived += (_, _) => { };
        server._process.ErrorDataReceived += (_, _) => { };
        server._process.BeginOutputReadLine();
        server._process.BeginErrorReadLine();
        try
        {
            await FreePort.WaitListeningAsync(server.ImapPort, TimeSpan.FromSeconds(10));
            if (smtp)
            {
                await FreePort.WaitListeningAsync(server.SmtpPort, TimeSpan.FromSeconds(10));
            }
        }
        catch (System.Net.Sockets.SocketException)
        {
            throw new InvalidOperationException("nginx did not listen: " + server.ErrorLog);
        }

        return server;
    }

    public async ValueTask DisposeAsync()
    {
        if (_process is { HasExited: false } p)
        {
            p.Kill(entireProcessTree: true);
            await p.WaitForExitAsync();
        }

        _process?.Dispose();
        Shell.DeleteQuietly(Dir);
    }
}
