using System.Diagnostics;
using System.Globalization;
using Broker.Testing;

namespace Broker.MailServers.Tests.Infrastructure;

/// <summary>
/// A real nginx mail proxy (<c>nginx -p prefix -c conf</c>, mail module loaded) on a free loopback
/// port, with the shipped TLS listeners and a certificate from a throwaway CA. Clients connect with
/// implicit TLS and trust exactly that certificate.
/// </summary>
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
        var certs = await TestCertificates.CreateAsync(Path.Combine(server.Dir, "certs"));
        server._certificatePath = certs.ServerCertPath;
        (string, string)[] replacements =
        [
            ("auth_http http://127.0.0.1:5080/v1/nginx/auth;", $"auth_http {authHttpUrl};"),
            ("CHANGE-ME-broker-caller-key", callerKey),
            ("/etc/ssl/mail.example.com/fullchain.pem", certs.ServerCertPath),
            ("/etc/ssl/mail.example.com/privkey.pem", certs.ServerKeyPath),
            ("listen 993 ssl;", $"listen 127.0.0.1:{server.ImapPort.ToString(CultureInfo.InvariantCulture)} ssl;"),
        ];
        if (smtp)
        {
            var smtpConf = Path.Combine(server.Dir, "mail-smtp.conf");
            await File.WriteAllTextAsync(smtpConf, InfraFiles.Render(
                "infra/nginx/mail-smtp.conf",
                ("listen 465 ssl;", $"listen 127.0.0.1:{server.SmtpPort.ToString(CultureInfo.InvariantCulture)} ssl;")));
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

    private string _certificatePath = string.Empty;

    /// <summary>Certificate pinning: only the certificate this nginx was started with is trusted.</summary>
    public bool IsOurCertificate(System.Security.Cryptography.X509Certificates.X509Certificate? presented)
    {
        if (presented is null)
        {
            return false;
        }

        var pem = File.ReadAllText(_certificatePath);
        var fields = System.Security.Cryptography.PemEncoding.Find(pem);
        return presented.GetRawCertData().AsSpan().SequenceEqual(Convert.FromBase64String(pem[fields.Base64Data]));
    }

    /// <summary>The raw IMAP client over implicit TLS to this proxy.</summary>
    public Task<RawImap> ConnectImapAsync(System.Net.IPAddress? from = null) => RawImap.ConnectAsync(ImapPort, from, IsOurCertificate);

    /// <summary>LOGIN or AUTHENTICATE PLAIN over implicit TLS; returns the tagged reply.</summary>
    public async Task<string> LoginAsync(string command, string user, string password)
    {
        await using var imap = await ConnectImapAsync();
        return command == "login" ? await imap.LoginAsync(user, password) : await imap.AuthenticatePlainAsync(user, password);
    }

    /// <summary>MailKit's IMAP client over implicit TLS to this proxy.</summary>
    public async Task<MailKit.Net.Imap.ImapClient> ConnectImapClientAsync()
    {
        var client = new MailKit.Net.Imap.ImapClient { Timeout = 15000, ServerCertificateValidationCallback = (_, cert, _, _) => IsOurCertificate(cert) };
        await client.ConnectAsync("127.0.0.1", ImapPort, MailKit.Security.SecureSocketOptions.SslOnConnect);
        return client;
    }

    /// <summary>MailKit's SMTP client over implicit TLS to this proxy's SMTP listener.</summary>
    public async Task<MailKit.Net.Smtp.SmtpClient> ConnectSmtpClientAsync()
    {
        var client = new MailKit.Net.Smtp.SmtpClient { Timeout = 15000, ServerCertificateValidationCallback = (_, cert, _, _) => IsOurCertificate(cert) };
        await client.ConnectAsync("127.0.0.1", SmtpPort, MailKit.Security.SecureSocketOptions.SslOnConnect);
        return client;
    }

    /// <summary>The raw SMTP client over implicit TLS to this proxy's SMTP listener (greeting and EHLO read).</summary>
    public Task<RawSmtp> ConnectSmtpAsync() => RawSmtp.ConnectImplicitTlsAsync(SmtpPort, IsOurCertificate);

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
