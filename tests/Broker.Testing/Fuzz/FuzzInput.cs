using System.Text;

namespace Broker.Testing.Fuzz;

/// <summary>
/// Generates hostile inputs for parsers that face the network: random bytes, broken UTF-8,
/// control characters, huge and empty values, injection-looking strings, and structure-aware
/// mutations of valid requests. Seeded, so a failure can be replayed.
/// </summary>
public sealed class FuzzInput(int seed)
{
    private static readonly string[] Nasty =
    [
        string.Empty, " ", "\0", "\r\n", "null", "true", "-1", "1e309", "NaN", "{}", "[]", "\"", "\\", "%00", "%", "%ZZ", "+",
        "' OR '1'='1", "<script>", "${jndi:ldap://x}", "../../etc/passwd", "*", "{u:x}", "}", "{", "a}b", "é", "\u0130", "\uFEFF",
        "\ud800", "\udfff", "🙂", new string('a', 300), new string('x', 5000), "imap", "IMAP", "smtp", "pop3", "submission",
        "XOAUTH2", "OAUTHBEARER", "PLAIN", "127.0.0.1", "::1", "::ffff:1.2.3.4", "999.1.1.1", "0", "65536", "abcd-efgh-jkmn-pqrs-tvwx-yz01",
    ];

    private readonly Random _random = new(seed);

    public Random Random => _random;

    public int Next(int max) => _random.Next(max);

    public bool Chance(int percent) => _random.Next(100) < percent;

    /// <summary>A string from the nasty list, random Unicode, or random ASCII.</summary>
    public string Text()
    {
        switch (_random.Next(4))
        {
            case 0:
                return Nasty[_random.Next(Nasty.Length)];
            case 1:
                return new string([.. Enumerable.Range(0, _random.Next(40)).Select(_ => (char)_random.Next(0x20, 0x7f))]);
            case 2:
                return _random.Next(3) == 0
                    ? new string([.. Enumerable.Range(0, _random.Next(40)).Select(_ => (char)_random.Next(0, 0xFFFF))])
                    : new string([.. Enumerable.Range(0, 4 + _random.Next(30)).Select(_ => "0123456789abcdefghjkmnpqrstvwxyz-ABC@."[_random.Next(38)])]);
            default:
                return Nasty[_random.Next(Nasty.Length)] + new string([.. Enumerable.Range(0, _random.Next(10)).Select(_ => (char)_random.Next(0, 0x80))]);
        }
    }

    public byte[] Bytes(int max)
    {
        var bytes = new byte[_random.Next(max)];
        _random.NextBytes(bytes);
        return bytes;
    }

    /// <summary>A JSON value of a random type, sometimes nested, sometimes invalid.</summary>
    public string JsonValue(int depth = 0) => _random.Next(depth > 3 ? 5 : 8) switch
    {
        0 => "null",
        1 => _random.Next(2) == 0 ? "true" : "false",
        2 => _random.Next(-100000, 100000).ToString(System.Globalization.CultureInfo.InvariantCulture),
        3 or 4 => JsonString(Text()),
        5 => "[" + string.Join(',', Enumerable.Range(0, _random.Next(4)).Select(_ => JsonValue(depth + 1))) + "]",
        6 => "{" + string.Join(',', Enumerable.Range(0, _random.Next(4)).Select(_ => JsonString(Text()) + ":" + JsonValue(depth + 1))) + "}",
        _ => Text(),
    };

    /// <summary>
    /// A JSON object whose keys are mostly the given field names. Well-formed in about half the
    /// cases (so inputs reach the deeper checks), with wrong types, unknown keys and byte-level
    /// corruption in the rest. <paramref name="required"/> fields are almost always present.
    /// </summary>
    public byte[] JsonObject(IReadOnlyList<string> fields, int required = 0)
    {
        var wellFormed = Chance(50);
        var members = new List<string>();
        for (var i = 0; i < fields.Count; i++)
        {
            if (Chance(i < required ? 97 : 50))
            {
                var name = wellFormed || Chance(95) ? fields[i] : Text();
                var value = wellFormed || Chance(80) ? JsonString(Text()) : JsonValue();
                members.Add(JsonString(name) + ":" + value);
            }
        }

        var text = "{" + string.Join(wellFormed || Chance(95) ? "," : ";", members) + (wellFormed || Chance(95) ? "}" : string.Empty);
        var bytes = Encoding.UTF8.GetBytes(text);
        if (!wellFormed && Chance(20))
        {
            // Corrupt a few bytes: broken UTF-8, stray quotes, NULs.
            for (var i = 0; i < 1 + _random.Next(3) && bytes.Length > 0; i++)
            {
                bytes[_random.Next(bytes.Length)] = (byte)_random.Next(256);
            }
        }

        return bytes;
    }

    public static string JsonString(string s)
    {
        var sb = new StringBuilder("\"");
        foreach (var c in s)
        {
            sb.Append(c switch
            {
                '"' => "\\\"",
                '\\' => "\\\\",
                < ' ' => $"\\u{(int)c:x4}",
                _ when char.IsSurrogate(c) => $"\\u{(int)c:x4}",
                _ => c.ToString(),
            });
        }

        return sb.Append('"').ToString();
    }
}
