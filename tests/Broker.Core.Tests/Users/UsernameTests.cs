using System.Globalization;
using System.Text;
using Broker.Core.Users;

namespace Broker.Core.Tests.Users;

public sealed class UsernameTests
{
    [Theory]
    [InlineData("alice@example.com", "alice@example.com")]
    [InlineData("  Alice@Example.COM ", "alice@example.com")]
    [InlineData("ＡＬＩＣＥ", "alice")]
    [InlineData("ﬁona@example.com", "fiona@example.com")]
    public void TryNormalize_AppliesNfkcTrimAndInvariantLowerCase(string raw, string expected)
    {
        Assert.True(Username.TryNormalize(raw, out var normalized));
        Assert.Equal(expected, normalized);
    }

    [Fact]
    public void TryNormalize_ComposedAndDecomposedSpellings_AreOneOwner()
    {
        Assert.True(Username.TryNormalize("J\u030Cohn@example.com", out var decomposed));
        Assert.True(Username.TryNormalize("\u01F0ohn@example.com", out var composed));
        Assert.Equal(composed, decomposed);
    }

    [Fact]
    public void TryNormalize_IsIdempotent_ForEveryLetterWithEveryCombiningMark()
    {
        // What the portal stores is normalised again by every mail login: f(f(x)) must be f(x).
        var failures = new List<string>();
        for (var letter = 0x41; letter < 0x2000; letter++)
        {
            if (!char.IsLetter((char)letter))
            {
                continue;
            }

            for (var mark = 0x300; mark < 0x370; mark++)
            {
                var raw = $"{(char)letter}{(char)mark}x";
                if (Username.TryNormalize(raw, out var once) && (!Username.TryNormalize(once, out var twice) || twice != once))
                {
                    failures.Add($"U+{letter:X4} U+{mark:X4}");
                }
            }
        }

        Assert.Empty(failures);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("   ")]
    [InlineData("al ice")]
    [InlineData("ali\nce")]
    [InlineData("ali\0ce")]
    public void TryNormalize_RejectsEmptyControlOrBrokenInput(string? raw)
    {
        Assert.False(Username.TryNormalize(raw, out _));
    }

    [Theory]
    [InlineData("ali\u200Bce@example.com", "U+200B")] // zero width space
    [InlineData("\u00ADalice@example.com", "U+00AD")] // soft hyphen
    [InlineData("alice@\u202Emoc.elpmaxe", "U+202E")] // right-to-left override
    [InlineData("\u2066alice\u2069@example.com", "U+2066")] // left-to-right isolate
    [InlineData("\uFEFFalice@example.com", "U+FEFF")] // byte order mark
    [InlineData("alice\u2060@example.com", "U+2060")] // word joiner
    [InlineData("alice\U000E0041@example.com", "U+E0041")] // tag character, outside the BMP
    public void TryNormalize_RejectsInvisibleFormatCharacters_AndNamesThem(string raw, string named)
    {
        Assert.False(Username.TryNormalize(raw, out _));
        Assert.Equal(named, Username.FindInvisibleCharacter(raw));
    }

    [Fact]
    public void TryNormalize_RejectsEveryFormatCharacter_BetweenLatinLetters()
    {
        // Every code point of category Cf, whatever the Unicode version of the runtime: NFKC must
        // not be relied on to drop any of them.
        var accepted = new List<string>();
        var formats = 0;
        for (var cp = 0; cp <= 0x10FFFF; cp++)
        {
            if (cp is >= 0xD800 and <= 0xDFFF || Rune.GetUnicodeCategory(new Rune(cp)) != UnicodeCategory.Format)
            {
                continue;
            }

            formats++;
            // ZWNJ and ZWJ too: between Latin letters they join nothing and only hide.
            if (Username.TryNormalize($"al{char.ConvertFromUtf32(cp)}ice@example.com", out _))
            {
                accepted.Add($"U+{cp:X4}");
            }
        }

        Assert.True(formats > 100, $"only {formats} format characters found");
        Assert.Empty(accepted);
    }

    [Theory]
    [InlineData("\u0645\u06CC\u200C\u062E\u0648\u0627\u0647\u0645@example.ir")] // Persian, ZWNJ
    [InlineData("\u0915\u094D\u200D\u0937@example.in")] // Devanagari, ZWJ
    public void TryNormalize_KeepsZwnjAndZwj(string raw)
    {
        Assert.True(Username.TryNormalize(raw, out var normalized));
        Assert.Equal(raw, normalized);
        Assert.Null(Username.FindInvisibleCharacter(raw));
    }

    [Theory]
    [InlineData("alice\u200D@example.com", "U+200D")] // after a Latin letter: looks like alice
    [InlineData("\u200Calice@example.com", "U+200C")] // at the start
    [InlineData("\u0645\u06CC\u200C", "U+200C")] // at the end, after Persian letters
    [InlineData("\u0645\u200Ca@example.ir", "U+200C")] // Persian letter, then ASCII
    [InlineData("a\U0001F468\u200D\U0001F469@example.com", "U+200D")] // an emoji sequence
    public void TryNormalize_RejectsZwnjAndZwj_WhereTheyJoinNoLetters(string raw, string named)
    {
        Assert.False(Username.TryNormalize(raw, out _));
        Assert.Equal(named, Username.FindInvisibleCharacter(raw));
    }

    [Fact]
    public void TryNormalize_RejectsLoneSurrogates()
    {
        // A Fact, not InlineData: theory serialisation would replace the lone surrogate.
        Assert.False(Username.TryNormalize("\ud800alice", out _));
        Assert.False(Username.TryNormalize("alice\udc00", out _));
        Assert.True(Username.TryNormalize("alice\ud83d\ude00", out _));
    }

    [Fact]
    public void TryNormalize_RejectsOverlongNames()
    {
        Assert.True(Username.TryNormalize(new string('a', Username.MaxLength), out _));
        Assert.False(Username.TryNormalize(new string('a', Username.MaxLength + 1), out _));
        Assert.False(Username.TryNormalize(new string('a', 10_000_000), out _));
    }
}
