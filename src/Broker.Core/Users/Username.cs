using System.Globalization;
using System.Text;

namespace Broker.Core.Users;

/// <summary>
/// The one rule that turns what a person or a mail server typed into the owner key of
/// app passwords: Unicode NFKC, trimmed, lower-cased with the invariant culture, NFKC again.
/// </summary>
/// <remarks>
/// NFKC first so that full-width or composed forms of the same name cannot create a
/// second, separately throttled identity; invariant lower-casing so that the result does not
/// depend on the server's locale (Turkish dotless i). Invisible formatting characters are refused
/// (see <see cref="FindInvisibleCharacter"/>); look-alike letters from other scripts are not.
/// </remarks>
public static class Username
{
    /// <summary>Longest accepted username, in characters, after normalisation (RFC 5321 local part + domain).</summary>
    public const int MaxLength = 254;

    /// <summary>Normalises <paramref name="raw"/>, or returns false when it is empty, too long or has control, space or invisible formatting characters.</summary>
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

        // NFKC keeps format characters (none has a compatibility mapping), so they are checked on the result.
        if (FindInvisibleCharacter(candidate) is not null)
        {
            return false;
        }

        normalized = candidate;
        return true;
    }

    /// <summary>
    /// The first invisible formatting character in <paramref name="raw"/> as <c>U+XXXX</c>, for an
    /// error message that names it; null when there is none.
    /// </summary>
    /// <remarks>
    /// Format characters (Unicode category Cf: zero width space, soft hyphen, bidi overrides and
    /// isolates, byte order mark, tag characters…) do not show, or reorder what does, so a name with
    /// one looks like another account's in the audit trail and the admin pages. ZWNJ and ZWJ are
    /// kept where Persian and Indic names need them, between two letters or marks of a non-Latin
    /// script; anywhere else (at an end, next to ASCII, in an emoji sequence) they only hide.
    /// </remarks>
    public static string? FindInvisibleCharacter(string? raw)
    {
        if (raw is null)
        {
            return null;
        }

        Rune? previous = null;
        for (var i = 0; i < raw.Length;)
        {
            // A lone surrogate decodes as invalid and is skipped: TryNormalize refuses it on its own.
            var status = Rune.DecodeFromUtf16(raw.AsSpan(i), out var rune, out var used);
            used = Math.Max(used, 1);
            if (status == System.Buffers.OperationStatus.Done && Rune.GetUnicodeCategory(rune) == UnicodeCategory.Format)
            {
                var joins = rune.Value is 0x200C or 0x200D
                    && IsJoinable(previous)
                    && i + used < raw.Length
                    && Rune.DecodeFromUtf16(raw.AsSpan(i + used), out var next, out _) == System.Buffers.OperationStatus.Done
                    && IsJoinable(next);
                if (!joins)
                {
                    return $"U+{rune.Value:X4}";
                }
            }

            previous = status == System.Buffers.OperationStatus.Done ? rune : null;
            i += used;
        }

        return null;
    }

    /// <summary>
    /// What to tell a person whose name <see cref="TryNormalize"/> refused because of an invisible
    /// character, naming it; null when the name has none (then it is empty, too long or has control
    /// characters or spaces).
    /// </summary>
    public static string? InvisibleCharacterProblem(string? raw) => FindInvisibleCharacter(raw) is { } hidden
        ? $"The username contains the invisible character {hidden} (a zero width space, soft hyphen, direction mark or the like), which would let it pass for another name."
        : null;

    private static bool IsJoinable(Rune? rune) =>
        rune is { IsAscii: false } r && (Rune.IsLetter(r) || Rune.GetUnicodeCategory(r) is UnicodeCategory.NonSpacingMark or UnicodeCategory.SpacingCombiningMark);

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
