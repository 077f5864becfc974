using System.Security.Cryptography;
using System.Text;

namespace Broker.Core.AppPasswords;

/// <summary>
/// The typed form of an app password: 24 symbols of Crockford-style base32 shown as six
/// groups of four (<c>abcd-efgh-jkmn-pqrs-tvwx-yz01</c>). 22 symbols are random (110 bits),
/// the last two are a check value so that a mistyped or random string is refused before
/// Redis is asked.
/// </summary>
public static class AppPasswordFormat
{
    /// <summary>No i, l, o, u: nothing that reads as another symbol on a phone screen.</summary>
    internal const string Alphabet = "0123456789abcdefghjkmnpqrstvwxyz";

    public const int RandomSymbols = 22;
    public const int CheckSymbols = 2;
    public const int Symbols = RandomSymbols + CheckSymbols;
    public const int GroupSize = 4;

    /// <summary>Upper bound on what is worth parsing at all; anything longer is not an app password.</summary>
    public const int MaxInputLength = 64;

    private static readonly byte[] CheckDomain = "broker-app-password-v1:"u8.ToArray();

    /// <summary>Generates a new app password in display form from the OS CSPRNG.</summary>
    public static string Generate()
    {
        Span<char> symbols = stackalloc char[Symbols];
        for (var i = 0; i < RandomSymbols; i++)
        {
            // GetInt32 is unbiased: no modulo bias over the 32-symbol alphabet.
            symbols[i] = Alphabet[RandomNumberGenerator.GetInt32(Alphabet.Length)];
        }

        WriteCheck(symbols[..RandomSymbols], symbols[RandomSymbols..]);
        return Display(symbols);
    }

    /// <summary>
    /// Turns user input into the 24-symbol canonical form: separators (dash, space) dropped,
    /// case folded, the look-alikes o→0 and i/l→1 mapped. Returns false when the result is not
    /// 24 alphabet symbols or its check symbols do not match.
    /// </summary>
    public static bool TryCanonicalize(ReadOnlySpan<char> input, out string canonical)
    {
        canonical = string.Empty;
        if (input.IsEmpty || input.Length > MaxInputLength)
        {
            return false;
        }

        Span<char> symbols = stackalloc char[Symbols];
        var count = 0;
        foreach (var raw in input)
        {
            if (raw is '-' or ' ')
            {
                continue;
            }

            var c = Fold(raw);
            if (c == '\0' || count == Symbols)
            {
                return false;
            }

            symbols[count++] = c;
        }

        if (count != Symbols)
        {
            return false;
        }

        Span<char> expected = stackalloc char[CheckSymbols];
        WriteCheck(symbols[..RandomSymbols], expected);
        if (!expected.SequenceEqual(symbols[RandomSymbols..]))
        {
            return false;
        }

        canonical = new string(symbols);
        return true;
    }

    /// <summary>Groups a canonical value for display.</summary>
    public static string Display(ReadOnlySpan<char> canonical)
    {
        var sb = new StringBuilder(canonical.Length + (canonical.Length / GroupSize));
        for (var i = 0; i < canonical.Length; i++)
        {
            if (i > 0 && i % GroupSize == 0)
            {
                sb.Append('-');
            }

            sb.Append(canonical[i]);
        }

        return sb.ToString();
    }

    private static char Fold(char c)
    {
        c = char.ToLowerInvariant(c);
        return c switch
        {
            'o' => '0',
            'i' or 'l' => '1',
            _ when c < 128 && Alphabet.Contains(c, StringComparison.Ordinal) => c,
            _ => '\0',
        };
    }

    private static void WriteCheck(ReadOnlySpan<char> random, Span<char> check)
    {
        // 10 bits of SHA-256 over a domain-separated prefix: a random or mistyped string passes
        // with probability 1/1024. This is an error check, not a secret.
        Span<byte> input = stackalloc byte[CheckDomain.Length + RandomSymbols];
        CheckDomain.CopyTo(input);
        for (var i = 0; i < RandomSymbols; i++)
        {
            input[CheckDomain.Length + i] = (byte)random[i];
        }

        Span<byte> digest = stackalloc byte[SHA256.HashSizeInBytes];
        SHA256.HashData(input, digest);
        var bits = (digest[0] << 2) | (digest[1] >> 6);
        check[0] = Alphabet[(bits >> 5) & 31];
        check[1] = Alphabet[bits & 31];
    }
}
