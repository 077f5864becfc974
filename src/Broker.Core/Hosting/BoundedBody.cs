using System.Buffers;
using System.Text;
using System.Text.Unicode;
using Microsoft.AspNetCore.Http;

namespace Broker.Core.Hosting;

/// <summary>
/// A small request body read whole with a hard cap, so an oversized or endless body costs nothing.
/// The bytes sit in a pooled buffer that is cleared when disposed: these bodies carry passwords.
/// </summary>
public sealed class BoundedBody : IDisposable
{
    private byte[]? _buffer;

    private BoundedBody(byte[] buffer, int length)
    {
        _buffer = buffer;
        Length = length;
    }

    public int Length { get; }

    public ReadOnlySpan<byte> Span => Buffer.AsSpan(0, Length);

    private byte[] Buffer => _buffer ?? throw new ObjectDisposedException(nameof(BoundedBody));

    /// <summary>The body, or null when it is larger than <paramref name="maxBytes"/> (declared or sent).</summary>
    public static async Task<BoundedBody?> ReadAsync(HttpRequest request, int maxBytes, CancellationToken ct)
    {
        if (request.ContentLength > maxBytes)
        {
            return null;
        }

        var buffer = ArrayPool<byte>.Shared.Rent(maxBytes + 1);
        try
        {
            var length = 0;
            int read;
            while ((read = await request.Body.ReadAsync(buffer.AsMemory(length, maxBytes + 1 - length), ct)) > 0)
            {
                length += read;
                if (length > maxBytes)
                {
                    ArrayPool<byte>.Shared.Return(buffer, clearArray: true);
                    return null;
                }
            }

            return new BoundedBody(buffer, length);
        }
        catch
        {
            ArrayPool<byte>.Shared.Return(buffer, clearArray: true);
            throw;
        }
    }

    /// <summary>The body as UTF-8 text, or null when it is too large or not UTF-8.</summary>
    public static async Task<string?> ReadTextAsync(HttpRequest request, int maxBytes, CancellationToken ct)
    {
        using var body = await ReadAsync(request, maxBytes, ct);
        return body is null || !Utf8.IsValid(body.Span) ? null : Encoding.UTF8.GetString(body.Span);
    }

    /// <summary>A read-only stream over the bytes, valid until this body is disposed.</summary>
    public Stream AsStream() => new MemoryStream(Buffer, 0, Length, writable: false);

    public void Dispose()
    {
        if (_buffer is { } buffer)
        {
            _buffer = null;
            ArrayPool<byte>.Shared.Return(buffer, clearArray: true);
        }
    }
}
