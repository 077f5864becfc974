using System.Net;
using System.Text;

namespace Broker.Validation.MailServers;

/// <summary>
/// Small parsers for what mail servers put on the wire. Pure, bounded and total: they return
/// false (or null) for anything odd and never throw, so bad input becomes a 400 or a deny,
/// never a 500.
/// </summary>
public static class WireParsers
{
    /// <summary>Longest form body or header value any of the mail-server endpoints accept.</summary>
    public const int MaxFieldLength = 1024;

    /// <summary>
    /// Parses <c>ip:port</c>, <c>[v6]:port</c> or a bare address, as Dovecot sends in
    /// <c>X-Dovecot-Auth-Remote</c>/<c>-Local</c>. Port 0 when none was given.
    /// </summary>
    public static bool TryParseAddress(string? value, out IPAddress address, out int port)
    {
        address = IPAddress.None;
        port = 0;
        if (string.IsNullOrWhiteSpace(value) || value.Length > 64)
        {
            return false;
        }

        value = value.Trim();
        if (IPAddress.TryParse(value, out var bare) && !value.Contains("]:", StringComparison.Ordinal))
        {
            // A bare IPv6 address also contains colons; only bracketed v6 carries a port.
            if (bare.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork && value.Contains(':', StringComparison.Ordinal))
            {
                return false;
            }

            address = bare;
            return true;
        }

        if (IPEndPoint.TryParse(value, out var endpoint))
        {
            address = endpoint.Address;
            port = endpoint.Port;
            return true;
        }

        return false;
    }

    /// <summary>
    /// Parses an <c>application/x-www-form-urlencoded</c> body into a dictionary. False on a repeated
    /// key (ambiguous), an over-long value, more than <paramref name="maxFields"/> fields, or text
    /// that does not decode to valid UTF-8.
    /// </summary>
    public static bool TryParseForm(string? body, out Dictionary<string, string> fields, int maxFields = 16)
    {
        fields = new Dictionary<string, string>(StringComparer.Ordinal);
        if (string.IsNullOrEmpty(body))
        {
            return true;
        }

        foreach (var pair in body.Split('&'))
        {
            if (pair.Length == 0)
            {
                continue;
            }

            var eq = pair.IndexOf('=', StringComparison.Ordinal);
            var rawKey = eq < 0 ? pair : pair[..eq];
            var rawValue = eq < 0 ? string.Empty : pair[(eq + 1)..];
            if (!TryDecodeFormComponent(rawKey, out var key) || !TryDecodeFormComponent(rawValue, out var value))
            {
                return false;
            }

            if (key.Length == 0 || value.Length > MaxFieldLength || fields.Count >= maxFields || !fields.TryAdd(key, value))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>Decodes one form component: <c>+</c> is a space, <c>%XX</c> a byte; the bytes must be UTF-8.</summary>
    public static bool TryDecodeFormComponent(string? raw, out string decoded) => TryPercentDecode(raw, plusIsSpace: true, out decoded);

    /// <summary>Decodes <c>%XX</c> escapes (as nginx does to <c>Auth-User</c>/<c>Auth-Pass</c>); false on a broken escape or bad UTF-8.</summary>
    public static bool TryPercentDecode(string? raw, bool plusIsSpace, out string decoded)
    {
        decoded = string.Empty;
        if (raw is null)
        {
            return false;
        }

        if (raw.Length > MaxFieldLength * 3)
        {
            return false;
        }

        if (raw.AsSpan().IndexOfAny('%', '+') < 0)
        {
            decoded = raw;
            return true;
        }

        var bytes = new List<byte>(raw.Length);
        Span<byte> utf8 = stackalloc byte[4];
        for (var i = 0; i < raw.Length; i++)
        {
            var c = raw[i];
            if (c == '%')
            {
                if (i + 2 >= raw.Length || !Uri.IsHexDigit(raw[i + 1]) || !Uri.IsHexDigit(raw[i + 2]))
                {
                    return false;
                }

                bytes.Add((byte)((HexValue(raw[i + 1]) << 4) | HexValue(raw[i + 2])));
                i += 2;
            }
            else if (c == '+' && plusIsSpace)
            {
                bytes.Add((byte)' ');
            }
            else
            {
                var n = Encoding.UTF8.GetBytes(raw.AsSpan(i, char.IsHighSurrogate(c) && i + 1 < raw.Length ? 2 : 1), utf8);
                for (var k = 0; k < n; k++)
                {
                    bytes.Add(utf8[k]);
                }

                if (char.IsHighSurrogate(c) && i + 1 < raw.Length)
                {
                    i++;
                }
            }
        }

        var array = bytes.ToArray();
        if (!System.Text.Unicode.Utf8.IsValid(array))
        {
            return false;
        }

        decoded = Encoding.UTF8.GetString(array);
        return true;
    }

    /// <summary>
    /// Reads HTTP Basic credentials (<c>Authorization: Basic base64(user:secret)</c>), which Dovecot's
    /// HTTP client sends when the configured URL carries <c>user:secret@</c>.
    /// </summary>
    public static bool TryParseBasic(string? header, out string user, out string secret)
    {
        user = secret = string.Empty;
        const string scheme = "Basic ";
        if (header is null || header.Length > 1024 || !header.StartsWith(scheme, StringComparison.OrdinalIgnoreCase))
        {
            return false;
        }

        Span<byte> buffer = stackalloc byte[768];
        if (!Convert.TryFromBase64String(header[scheme.Length..].Trim(), buffer, out var written) || !System.Text.Unicode.Utf8.IsValid(buffer[..written]))
        {
            return false;
        }

        var text = Encoding.UTF8.GetString(buffer[..written]);
        var colon = text.IndexOf(':', StringComparison.Ordinal);
        if (colon < 0)
        {
            return false;
        }

        user = text[..colon];
        secret = text[(colon + 1)..];
        return true;
    }

    private static int HexValue(char c) => c switch
    {
        >= '0' and <= '9' => c - '0',
        >= 'a' and <= 'f' => c - 'a' + 10,
        _ => c - 'A' + 10,
    };
}
