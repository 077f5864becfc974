using System.Net.Sockets;
using System.Text;

namespace Broker.MailServers.Bench;

/// <summary>
/// Dovecot's auth-client protocol over its unix socket (what imap-login speaks): isolates the cost
/// of the passdb from process spawning and IMAP. One connection, one request at a time.
/// </summary>
internal sealed class DovecotAuthClient : IDisposable
{
    private readonly Socket _socket;
    private readonly NetworkStream _stream;
    private readonly StreamReader _reader;
    private int _id;

    private DovecotAuthClient(Socket socket)
    {
        _socket = socket;
        _stream = new NetworkStream(socket, ownsSocket: false);
        _reader = new StreamReader(_stream, Encoding.UTF8);
    }

    public static async Task<DovecotAuthClient> ConnectAsync(string path)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        await socket.ConnectAsync(new UnixDomainSocketEndPoint(path));
        var client = new DovecotAuthClient(socket);
        await client.WriteAsync($"VERSION\t1\t2\nCPID\t{Environment.ProcessId}\n");
        while (await client._reader.ReadLineAsync() is { } line && line != "DONE")
        {
        }

        return client;
    }

    /// <summary>AUTH PLAIN with initial response; true on OK, false on FAIL.</summary>
    public async Task<bool> AuthenticatePlainAsync(string user, string password)
    {
        var id = (++_id).ToString(System.Globalization.CultureInfo.InvariantCulture);
        var resp = Convert.ToBase64String(Encoding.UTF8.GetBytes($"\0{user}\0{password}"));
        await WriteAsync($"AUTH\t{id}\tPLAIN\tservice=imap\tsecured\tlip=127.0.0.1\trip=127.0.0.1\tresp={resp}\n");
        while (await _reader.ReadLineAsync() is { } line)
        {
            if (line.StartsWith("OK\t" + id, StringComparison.Ordinal))
            {
                return true;
            }

            if (line.StartsWith("FAIL\t" + id, StringComparison.Ordinal))
            {
                return false;
            }
        }

        throw new IOException("auth socket closed");
    }

    private async Task WriteAsync(string text) => await _stream.WriteAsync(Encoding.UTF8.GetBytes(text));

    public void Dispose()
    {
        _reader.Dispose();
        _stream.Dispose();
        _socket.Dispose();
    }
}
