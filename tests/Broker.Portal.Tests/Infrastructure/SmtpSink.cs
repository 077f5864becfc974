using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;
using MimeKit;

namespace Broker.Portal.Tests.Infrastructure;

/// <summary>A message the sink accepted: the SMTP envelope and the parsed message.</summary>
public sealed record ReceivedMail(string EnvelopeFrom, IReadOnlyList<string> EnvelopeTo, MimeMessage Message)
{
    public string Body => Message.TextBody ?? string.Empty;
}

/// <summary>
/// A minimal SMTP server on 127.0.0.1 (free port) that keeps every message it accepts: the portal's
/// real notifier (MailKit) talks real SMTP to it, and nothing leaves the machine. A message is stored
/// before its <c>250</c>, so once the notifier has returned, the message is here. Delivery through a
/// real Postfix into a real Dovecot is covered by <c>Broker.MailServers.Tests.EmailNotificationTests</c>.
/// </summary>
public sealed class SmtpSink : IAsyncDisposable
{
    private readonly TcpListener _listener;
    private readonly CancellationTokenSource _stop = new();
    private readonly ConcurrentQueue<ReceivedMail> _messages = new();
    private readonly Task _accepting;

    private SmtpSink()
    {
        _listener = new TcpListener(IPAddress.Loopback, 0);
        _listener.Start();
        Port = ((IPEndPoint)_listener.LocalEndpoint).Port;
        _accepting = AcceptAsync();
    }

    public int Port { get; }

    public IReadOnlyCollection<ReceivedMail> Messages => _messages;

    public static SmtpSink Start() => new();

    /// <summary>The <c>Broker:Notifications</c> settings that send the portal's mail here.</summary>
    public Dictionary<string, string?> NotificationSettings(string from = "Broker <security@example.org>") => new()
    {
        ["Broker:Notifications:Enabled"] = "true",
        ["Broker:Notifications:SmtpHost"] = "127.0.0.1",
        ["Broker:Notifications:SmtpPort"] = Port.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["Broker:Notifications:Security"] = "None",
        ["Broker:Notifications:From"] = from,
    };

    /// <summary>Every accepted message whose envelope names <paramref name="recipient"/>.</summary>
    public IReadOnlyList<ReceivedMail> To(string recipient) =>
        [.. _messages.Where(m => m.EnvelopeTo.Contains(recipient, StringComparer.OrdinalIgnoreCase))];

    private async Task AcceptAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient client;
            try
            {
                client = await _listener.AcceptTcpClientAsync(_stop.Token);
            }
            catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                return;
            }

            _ = Task.Run(() => ServeAsync(client));
        }
    }

    private async Task ServeAsync(TcpClient client)
    {
        using var _ = client;
        var ct = _stop.Token;
        try
        {
            var stream = client.GetStream();
            using var reader = new StreamReader(stream, Encoding.UTF8, false, 4096, leaveOpen: true);
            await using var writer = new StreamWriter(stream, new UTF8Encoding(false), 4096, leaveOpen: true) { NewLine = "\r\n", AutoFlush = true };
            await writer.WriteLineAsync("220 sink.test ESMTP");
            string? from = null;
            var to = new List<string>();
            while (await reader.ReadLineAsync(ct) is { } line)
            {
                var verb = line.Split(' ', 2)[0].ToUpperInvariant();
                switch (verb)
                {
                    case "EHLO":
                    case "HELO":
                        await writer.WriteLineAsync("250 sink.test");
                        break;
                    case "MAIL":
                        (from, to) = (Path(line), []);
                        await writer.WriteLineAsync("250 2.1.0 OK");
                        break;
                    case "RCPT" when from is not null:
                        to.Add(Path(line));
                        await writer.WriteLineAsync("250 2.1.5 OK");
                        break;
                    case "DATA" when from is not null && to.Count > 0:
                        await writer.WriteLineAsync("354 End data with <CR><LF>.<CR><LF>");
                        var data = new StringBuilder();
                        while (await reader.ReadLineAsync(ct) is { } dataLine && dataLine != ".")
                        {
                            // RFC 5321 4.5.2: a leading dot was doubled by the client.
                            data.Append(dataLine.StartsWith("..", StringComparison.Ordinal) ? dataLine[1..] : dataLine).Append("\r\n");
                        }

                        using (var raw = new MemoryStream(Encoding.UTF8.GetBytes(data.ToString())))
                        {
                            _messages.Enqueue(new ReceivedMail(from, [.. to], await MimeMessage.LoadAsync(raw, ct)));
                        }

                        (from, to) = (null, []);
                        await writer.WriteLineAsync("250 2.0.0 OK");
                        break;
                    case "RSET":
                        (from, to) = (null, []);
                        await writer.WriteLineAsync("250 2.0.0 OK");
                        break;
                    case "NOOP":
                        await writer.WriteLineAsync("250 2.0.0 OK");
                        break;
                    case "QUIT":
                        await writer.WriteLineAsync("221 2.0.0 Bye");
                        return;
                    default:
                        await writer.WriteLineAsync("502 5.5.1 Not implemented");
                        break;
                }
            }
        }
        catch (Exception ex) when (ex is IOException or OperationCanceledException or ObjectDisposedException)
        {
        }
    }

    /// <summary>The address in <c>MAIL FROM:&lt;a@b&gt; …</c> or <c>RCPT TO:&lt;a@b&gt;</c>.</summary>
    private static string Path(string line)
    {
        var start = line.IndexOf('<', StringComparison.Ordinal);
        var end = line.IndexOf('>', start + 1);
        return start >= 0 && end > start ? line[(start + 1)..end] : string.Empty;
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        await _accepting;
        _stop.Dispose();
    }
}
