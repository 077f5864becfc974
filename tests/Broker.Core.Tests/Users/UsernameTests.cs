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
