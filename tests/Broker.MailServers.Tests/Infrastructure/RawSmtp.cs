using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Text;

namespace Broker.MailServers.Tests.Infrastructure;

/// <summary>A minimal SMTP client (EHLO, STARTTLS, AUTH) for asserting the exact reply code, e.g. 535.</summary>
public sealed class RawSmtp : IAsyncDisposable
{
    private readonly TcpClient _tcp;
    private Stream _stream;
    private StreamReader _reader;

    private RawSmtp(TcpClient tcp)
    {
        _tcp = tcp;
        _stream = tcp.GetStream();
        _reader = new StreamReader(_stream, Encoding.ASCII);
    }

    /// <summary>Plain SMTP on a loopback port (greeting and EHLO read), for servers the tests run without TLS.</summary>
    /// <param name="port">SMTP port on 127.0.0.1.</param>
    /// <param name="from">Local source address (any 127.x.y.z), to act as another client.</param>
    public static async Task<RawSmtp> ConnectAsync(int port, IPAddress? from = null)
    {
        var tcp = new TcpClient(AddressFamily.InterNetwork);
        if (from is not null)
        {
            tcp.Client.Bind(new IPEndPoint(from, 0));
        }

        await tcp.ConnectAsync(IPAddress.Loopback, port);
        var smtp = new RawSmtp(tcp);
        await smtp.ReadReplyAsync();
        await smtp.CommandAsync("EHLO client.example");
        return smtp;
    }

    /// <summary>SMTP with implicit TLS (submissions, RFC 8314) on a loopback port, trusting exactly the certificates <paramref name="trust"/> accepts.</summary>
    public static async Task<RawSmtp> ConnectImplicitTlsAsync(int port, Func<System.Security.Cryptography.X509Certificates.X509Certificate?, bool> trust)
    {
        var tcp = new TcpClient(AddressFamily.InterNetwork);
        await tcp.ConnectAsync(IPAddress.Loopback, port);
        var smtp = new RawSmtp(tcp);
        var ssl = new SslStream(smtp._stream, leaveInnerStreamOpen: false, (_, cert, _, _) => trust(cert));
        await ssl.AuthenticateAsClientAsync("localhost");
        smtp._stream = ssl;
        smtp._reader = new StreamReader(ssl, Encoding.ASCII);
        await smtp.ReadReplyAsync();
        await smtp.CommandAsync("EHLO client.example");
        return smtp;
    }

    /// <summary>The Postfix submission port, STARTTLS done (and EHLO again).</summary>
    /// <param name="server">The Postfix whose pinned certificate is trusted.</param>
    /// <param name="from">Local source address (any 127.x.y.z), e.g. one outside Dovecot's login_trusted_networks.</param>
    public static async Task<RawSmtp> ConnectWithTlsAsync(PostfixServer server, IPAddress? from = null)
    {
        var tcp = new TcpClient(AddressFamily.InterNetwork);
        if (from is not null)
        {
            tcp.Client.Bind(new IPEndPoint(from, 0));
        }

        await tcp.ConnectAsync(IPAddress.Loopback, server.SubmissionPort);
        var smtp = new RawSmtp(tcp);
        await smtp.ReadReplyAsync();
        await smtp.CommandAsync("EHLO client.example");
        var starttls = await smtp.CommandAsync("STARTTLS");
        if (!starttls.StartsWith("220", StringComparison.Ordinal))
        {
            throw new IOException("STARTTLS refused: " + starttls);
        }

        // The test server's certificate is a throwaway self-signed one, pinned.
        var ssl = new SslStream(smtp._stream, leaveInnerStreamOpen: false, (_, cert, _, _) => server.IsOurCertificate(cert));
        await ssl.AuthenticateAsClientAsync("localhost");
        smtp._stream = ssl;
        smtp._reader = new StreamReader(ssl, Encoding.ASCII);
        await smtp.CommandAsync("EHLO client.example");
        return smtp;
    }

    public Task<string> AuthPlainAsync(string user, string password) =>
        CommandAsync("AUTH PLAIN " + Convert.ToBase64String(Encoding.UTF8.GetBytes($"\0{user}\0{password}")));

    public async Task<string> AuthLoginAsync(string user, string password)
    {
        var first = await CommandAsync("AUTH LOGIN");
        if (!first.StartsWith("334", StringComparison.Ordinal))
        {
            return first;
        }

        await CommandAsync(Convert.ToBase64String(Encoding.UTF8.GetBytes(user)));
        return await CommandAsync(Convert.ToBase64String(Encoding.UTF8.GetBytes(password)));
    }

    /// <summary>Sends a line and returns the last line of the reply.</summary>
    public async Task<string> CommandAsync(string line)
    {
        await _stream.WriteAsync(Encoding.ASCII.GetBytes(line + "\r\n"));
        await _stream.FlushAsync();
        return await ReadReplyAsync();
    }

    private async Task<string> ReadReplyAsync()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        while (true)
        {
            var line = await _reader.ReadLineAsync(cts.Token) ?? throw new IOException("The server closed the connection.");
            if (line.Length < 4 || line[3] != '-')
            {
                return line;
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stream.DisposeAsync();
        _tcp.Dispose();
    }
}
