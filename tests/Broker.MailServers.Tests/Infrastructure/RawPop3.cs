using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Broker.MailServers.Tests.Infrastructure;

/// <summary>A minimal POP3 client for asserting the exact reply line (e.g. <c>-ERR [AUTH] …</c>), which MailKit folds into exceptions.</summary>
public sealed class RawPop3 : IAsyncDisposable
{
    private readonly TcpClient _tcp;
    private readonly Stream _stream;
    private readonly StreamReader _reader;

    private RawPop3(TcpClient tcp)
    {
        _tcp = tcp;
        _stream = tcp.GetStream();
        _reader = new StreamReader(_stream, Encoding.ASCII);
    }

    public static async Task<RawPop3> ConnectAsync(int port)
    {
        var tcp = new TcpClient(AddressFamily.InterNetwork);
        await tcp.ConnectAsync(IPAddress.Loopback, port);
        var pop3 = new RawPop3(tcp);
        var greeting = await pop3.ReadLineAsync();
        if (!greeting.StartsWith("+OK", StringComparison.Ordinal))
        {
            throw new IOException("POP3 greeting: " + greeting);
        }

        return pop3;
    }

    /// <summary>USER then PASS; returns the reply to PASS (or to USER when that already failed).</summary>
    public async Task<string> UserPassAsync(string user, string password)
    {
        var reply = await CommandAsync("USER " + user);
        return reply.StartsWith("+OK", StringComparison.Ordinal) ? await CommandAsync("PASS " + password) : reply;
    }

    /// <summary>AUTH PLAIN with an initial response (RFC 5034).</summary>
    public Task<string> AuthPlainAsync(string user, string password) =>
        CommandAsync("AUTH PLAIN " + Convert.ToBase64String(Encoding.UTF8.GetBytes($"\0{user}\0{password}")));

    /// <summary>Sends a line and returns the one-line reply.</summary>
    public async Task<string> CommandAsync(string line)
    {
        await _stream.WriteAsync(Encoding.ASCII.GetBytes(line + "\r\n"));
        await _stream.FlushAsync();
        return await ReadLineAsync();
    }

    private async Task<string> ReadLineAsync()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        return await _reader.ReadLineAsync(cts.Token) ?? throw new IOException("The server closed the connection.");
    }

    public async ValueTask DisposeAsync()
    {
        await _stream.DisposeAsync();
        _tcp.Dispose();
    }
}
