using System.Text;

namespace Broker.Validation.MailServers;

/// <summary>Reads a small request body with a hard cap, so an oversized or endless body costs nothing.</summary>
internal static class BoundedBody
{
    public const int MaxBytes = 8 * 1024;

    /// <summary>The body as UTF-8 text, or null when it is larger than <see cref="MaxBytes"/> or not UTF-8.</summary>
    public static async Task<byte[]?> ReadBytesAsync(HttpRequest request, CancellationToken ct)
    {
        if (request.ContentLength > MaxBytes)
        {
            return null;
        }

        var buffer = new byte[MaxBytes + 1];
        var length = 0;
        int read;
        while ((read = await request.Body.ReadAsync(buffer.AsMemory(length, buffer.Length - length), ct)) > 0)
        {
            length += read;
            if (length > MaxBytes)
            {
                return null;
            }
        }

        return buffer.AsSpan(0, length).ToArray();
    }

    public static async Task<string?> ReadTextAsync(HttpRequest request, CancellationToken ct)
    {
        var bytes = await ReadBytesAsync(request, ct);
        return bytes is null || !System.Text.Unicode.Utf8.IsValid(bytes) ? null : Encoding.UTF8.GetString(bytes);
    }
}
