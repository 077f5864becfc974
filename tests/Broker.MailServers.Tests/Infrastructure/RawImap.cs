using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Broker.MailServers.Tests.Infrastructure;

/// <summary>
/// A minimal IMAP client for assertions on the exact tagged reply (response codes such as
/// <c>[UNAVAILABLE]</c> or <c>[ALERT]</c>), which MailKit folds into exception messages.
/// </summary>
public sealed class RawImap : IAsyncDisposable
{
    private readonly TcpClient _tcp;
    private readonly StreamReader _reader;
    private readonly Stream _stream;
    private int _tag;

    private RawImap(TcpClient tcp, Stream stream)
    {
        _tcp = tcp;
        _stream = stream;
        _reader = new StreamReader(_stream, Encoding.ASCII);
    }

    public string Greeting { get; private set; } = string.Empty;

    /// <param name="port">IMAP port on 127.0.0.1.</param>
    /// <param name="from">Local source address (any 127.x.y.z), so tests can act as distinct clients.</param>
    /// <param name="tls">Implicit TLS (IMAPS), trusting exactly the certificates this accepts; null for plain IMAP.</param>
    public static async Task<RawImap> ConnectAsync(int port, IPAddress? from = null, Func<System.Security.Cryptography.X509Certificates.X509Certificate?, bool>? tls = null)
    {
        var tcp = new TcpClient(AddressFamily.InterNetwork);
        if (from is not null)
        {
            tcp.Client.Bind(new IPEndPoint(from, 0));
        }

        await tcp.ConnectAsync(IPAddress.Loopback, port);
        Stream stream = tcp.GetStream();
        if (tls is not null)
        {
            var ssl = new System.Net.Security.SslStream(stream, leaveInnerStreamOpen: false, (_, cert, _, _) => tls(cert));
            await ssl.AuthenticateAsClientAsync("localhost");
            stream = ssl;
        }

        var imap = new RawImap(tcp, stream);
        imap.Greeting = await imap.ReadLineAsync();
        return imap;
    }

    /// <summary>LOGIN with quoted strings, encoded as UTF-8 unless <c>encoding</c> plays an old client (Latin-1).</summary>
    public Task<string> LoginAsync(string user, string password, Encoding? encoding = null) => CommandAsync($"LOGIN {Quote(user)} {Quote(password)}", encoding);

    /// <summary>AUTHENTICATE PLAIN with an initial response (SASL-IR); credentials in UTF-8 unless <c>encoding</c> says otherwise.</summary>
    public Task<string> AuthenticatePlainAsync(string user, string password, Encoding? encoding = null) =>
        CommandAsync("AUTHENTICATE PLAIN " + (password.Length == 0 && user.Length == 0 ? "=" : Convert.ToBase64String((encoding ?? Encoding.UTF8).GetBytes($"\0{user}\0{password}"))));

    /// <summary>Sends a command and returns the tagged reply line (untagged lines are skipped).</summary>
    public async Task<string> CommandAsync(string command, Encoding? encoding = null)
    {
        var tag = "a" + (++_tag).ToString(System.Globalization.CultureInfo.InvariantCulture);
        var bytes = (encoding ?? Encoding.UTF8).GetBytes($"{tag} {command}\r\n");
        await _stream.WriteAsync(bytes);
        while (true)
        {
            var line = await ReadLineAsync();
            if (line.StartsWith(tag + " ", StringComparison.Ordinal))
            {
                return line[(tag.Length + 1)..];
            }
        }
    }

    private async Task<string> ReadLineAsync()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        return await _reader.ReadLineAsync(cts.Token) ?? throw new IOException("The server closed the connection.");
    }

    private static string Quote(string s) => "\"" + s.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal) + "\"";

    public async ValueTask DisposeAsync()
    {
        await _stream.DisposeAsync();
        _tcp.Dispose();
    }
}
