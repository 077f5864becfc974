using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Broker.Gateway.Tests.Routing;

/// <summary>
/// A stand-in validation instance on a raw socket, for what Kestrel cannot be made to do on cue:
/// take in a request on a kept-alive connection and die before answering it, so that nothing
/// listens any more (a crash in the middle of a login).
/// </summary>
internal sealed class DyingInstance : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly ConcurrentBag<TcpClient> _connections = [];
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _accepting;
    private int _answered;
    private int _dieOnNext;

    public DyingInstance()
    {
        _listener.Start();
        Address = new Uri($"http://127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}/");
        _accepting = AcceptAsync();
    }

    public Uri Address { get; }

    /// <summary>Logins answered (readiness probes not counted).</summary>
    public int Answered => Volatile.Read(ref _answered);

    /// <summary>The <c>X-Test-Id</c> of the request it died on, once it has.</summary>
    public string? DiedOn { get; private set; }

    /// <summary>The next login is read, then the instance stops listening and drops every connection.</summary>
    public void DieOnNextLogin() => Volatile.Write(ref _dieOnNext, 1);

    private async Task AcceptAsync()
    {
        try
        {
            while (true)
            {
                var connection = await _listener.AcceptTcpClientAsync(_stop.Token);
                _connections.Add(connection);
                _ = ServeAsync(connection);
            }
        }
        catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
        {
        }
    }

    private async Task ServeAsync(TcpClient connection)
    {
        try
        {
            var stream = connection.GetStream();
            var buffer = new byte[8192];
            var pending = new StringBuilder();
            while (true)
            {
                var n = await stream.ReadAsync(buffer, _stop.Token);
                if (n == 0)
                {
                    return;
                }

                pending.Append(Encoding.ASCII.GetString(buffer, 0, n));
                int end;
                // Bodiless requests only (GET): a request is its head.
                while ((end = pending.ToString().IndexOf("\r\n\r\n", StringComparison.Ordinal)) >= 0)
                {
                    var head = pending.ToString(0, end);
                    pending.Remove(0, end + 4);
                    var isLogin = !head.StartsWith("GET /health/", StringComparison.Ordinal);
                    if (isLogin && Interlocked.Exchange(ref _dieOnNext, 0) == 1)
                    {
                        DiedOn = head.Split("\r\n").FirstOrDefault(l => l.StartsWith("X-Test-Id:", StringComparison.OrdinalIgnoreCase))?[10..].Trim() ?? "?";
                        Die();
                        return;
                    }

                    const string body = "OK";
                    await stream.WriteAsync(Encoding.ASCII.GetBytes($"HTTP/1.1 200 OK\r\nContent-Length: {body.Length}\r\nAuth-Status: OK\r\n\r\n{body}"), _stop.Token);
                    if (isLogin)
                    {
                        Interlocked.Increment(ref _answered);
                    }
                }
            }
        }
        catch (Exception e) when (e is OperationCanceledException or IOException or SocketException or ObjectDisposedException)
        {
        }
    }

    private void Die()
    {
        _listener.Stop();
        foreach (var c in _connections)
        {
            c.Client.Close();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        Die();
        await _accepting;
        _stop.Dispose();
    }
}
