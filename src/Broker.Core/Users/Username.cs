using System.Text;

namespace Broker.Core.Users;

/// <summary>
/// The one rule that turns what a person or a mail server typed into the owner key of
/// app passwords: Unicode NFKC, trimmed, lower-cased with the invariant culture, NFKC again.
/// </summary>
/// <remarks>
/// NFKC first so that full-width or composed forms of the same name cannot create a
/// second, separately throttled identity; invariant lower-casing so that the result does not
/// depend on the server's locale (Turkish dotless i).
/// </remarks>
public static class Username
{
    /// <summary>Longest accepted username, in characters, after normalisation (RFC 5321 local part + domain).</summary>
    public const int MaxLength = 254;

    /// <summary>Normalises <paramref name="raw"/>, or returns false when it is empty, too long or has control characters.</summary>
    public static bool TryNormalize(string? raw, out string normalized)
    {
        normalized = string.Empty;
        if (string.IsNullOrWhiteSpace(raw) || raw.Length > MaxLength * 4)
        {
            return false;
        }

        if (HasLoneSurrogate(raw))
        {
            return false;
        }

        string candidate;
        try
        {
            // NFKC again after lower-casing: an upper-case letter with a combining mark (J + caron)
            // has no precomposed form, its lower-case one does (ǰ). Without it the rule would not be
            // idempotent, and the composed and decomposed spellings would be two owners.
            candidate = raw.Normalize(NormalizationForm.FormKC).Trim().ToLowerInvariant().Normalize(NormalizationForm.FormKC);
        }
        catch (ArgumentException)
        {
            // Lone surrogates cannot be normalised.
            return false;
        }

        if (candidate.Length is 0 or > MaxLength)
        {
            return false;
        }

        foreach (var c in candidate)
        {
            if (char.IsControl(c) || char.IsWhiteSpace(c))
            {
                return false;
            }
        }

        normalized = candidate;
        return true;
    }

    private static bool HasLoneSurrogate(string s)
    {
        for (var i = 0; i < s.Length; i++)
        {
            if (char.IsHighSurrogate(s[i]) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1]))
            {
                i++;
            }
            else if (char.IsSurrogate(s[i]))
            {
                return true;
            }
        }

        return false;
    }
}
