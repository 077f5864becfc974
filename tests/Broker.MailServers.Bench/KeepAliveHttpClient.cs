using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Broker.MailServers.Bench;

/// <summary>
/// A bare HTTP/1.1 keep-alive client that sends a JSON POST the way Dovecot 2.3's Lua client does
/// (<c>Expect: 100-continue</c>, body after the interim answer), so Broker's own time can be
/// measured without .NET HttpClient's overhead or Dovecot's. One request at a time.
/// </summary>
internal sealed class KeepAliveHttpClient : IDisposable
{
    private readonly Socket _socket;
    private readonly byte[] _buffer = new byte[16 * 1024];

    private KeepAliveHttpClient(Socket socket) => _socket = socket;

    public static async Task<KeepAliveHttpClient> ConnectAsync(Uri baseAddress)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        await socket.ConnectAsync(IPAddress.Parse(baseAddress.Host), baseAddress.Port);
        return new KeepAliveHttpClient(socket);
    }

    /// <summary>Posts <paramref name="json"/> and returns the status code.</summary>
    public async Task<int> PostJsonAsync(string path, string json, string apiKey)
    {
        var body = Encoding.UTF8.GetBytes(json);
        var head = Encoding.ASCII.GetBytes(
            $"POST {path} HTTP/1.1\r\nHost: broker\r\nContent-Type: application/json\r\nX-Broker-Api-Key: {apiKey}\r\nExpect: 100-continue\r\nContent-Length: {body.Length}\r\n\r\n");
        await _socket.SendAsync(head);
        var interim = await ReadResponseAsync();
        if (interim != 100)
        {
            return interim;
        }

        await _socket.SendAsync(body);
        return await ReadResponseAsync();
    }

    // Reads one response (interim or final) whole: headers, then a Content-Length or chunked body.
    private async Task<int> ReadResponseAsync()
    {
        var length = 0;
        int headerEnd;
        while ((headerEnd = _buffer.AsSpan(0, length).IndexOf("\r\n\r\n"u8)) < 0)
        {
            length += await ReceiveAsync(length);
        }

        var head = Encoding.ASCII.GetString(_buffer, 0, headerEnd);
        var status = int.Parse(head.AsSpan(9, 3), CultureInfo.InvariantCulture);
        var bodyStart = headerEnd + 4;
        if (status == 100)
        {
            EnsureNothingFollows(bodyStart, length);
            return status;
        }

        var contentLength = head.Split("\r\n").FirstOrDefault(l => l.StartsWith("Content-Length:", StringComparison.OrdinalIgnoreCase));
        if (contentLength is not null)
        {
            var total = bodyStart + int.Parse(contentLength.AsSpan(15).Trim(), CultureInfo.InvariantCulture);
            while (length < total)
            {
                length += await ReceiveAsync(length);
            }

            EnsureNothingFollows(total, length);
        }
        else
        {
            // Chunked: the response ends with the last-chunk marker.
            int end;
            while ((end = _buffer.AsSpan(bodyStart, length - bodyStart).IndexOf("\r\n0\r\n\r\n"u8)) < 0)
            {
                length += await ReceiveAsync(length);
            }

            EnsureNothingFollows(bodyStart + end + 7, length);
        }

        return status;
    }

    private async Task<int> ReceiveAsync(int offset)
    {
        var n = await _socket.ReceiveAsync(_buffer.AsMemory(offset));
        return n > 0 ? n : throw new IOException("connection closed by the server");
    }

    // One request at a time: nothing may follow the response on the wire.
    private static void EnsureNothingFollows(int used, int length)
    {
        if (length > used)
        {
            throw new InvalidOperationException("unexpected bytes after the response");
        }
    }

    public void Dispose() => _socket.Dispose();
}
