using Broker.Core.AppPasswords;

namespace Broker.Core.Tests.AppPasswords;

public sealed class AppPasswordFormatTests
{
    [Fact]
    public void Generate_ProducesSixGroupsOfFourFromTheAlphabet()
    {
        var secret = AppPasswordFormat.Generate();

        var groups = secret.Split('-');
        Assert.Equal(6, groups.Length);
        Assert.All(groups, g => Assert.Equal(4, g.Length));
        Assert.All(secret.Replace("-", string.Empty, StringComparison.Ordinal), c => Assert.Contains(c, AppPasswordFormat.Alphabet));
    }

    [Fact]
    public void Generate_CarriesAtLeast100BitsOfEntropy()
    {
        // 22 random symbols from a 32-symbol alphabet.
        Assert.True(AppPasswordFormat.RandomSymbols * Math.Log2(AppPasswordFormat.Alphabet.Length) >= 100);
    }

    [Fact]
    public void Generate_NeverRepeatsAcrossManyDraws()
    {
        var seen = new HashSet<string>();
        for (var i = 0; i < 10_000; i++)
        {
            Assert.True(seen.Add(AppPasswordFormat.Generate()));
        }
    }

    [Fact]
    public void Alphabet_HasNoLookAlikes()
    {
        foreach (var c in "ilou")
        {
            Assert.DoesNotContain(c, AppPasswordFormat.Alphabet);
        }
    }

    [Fact]
    public void TryCanonicalize_AcceptsWithoutSeparatorsAndInAnyCase()
    {
        var secret = AppPasswordFormat.Generate();
        Assert.True(AppPasswordFormat.TryCanonicalize(secret, out var canonical));

        Assert.True(AppPasswordFormat.TryCanonicalize(secret.Replace("-", string.Empty, StringComparison.Ordinal).ToUpperInvariant(), out var upper));
        Assert.True(AppPasswordFormat.TryCanonicalize(secret.Replace('-', ' '), out var spaced));
        Assert.Equal(canonical, upper);
        Assert.Equal(canonical, spaced);
        Assert.Equal(secret, AppPasswordFormat.Display(canonical));
    }

    [Fact]
    public void TryCanonicalize_MapsLookAlikesTypedByAPerson()
    {
        string secret;
        do
        {
            secret = AppPasswordFormat.Generate();
        }
        while (!secret.Contains('0', StringComparison.Ordinal) || !secret.Contains('1', StringComparison.Ordinal));

        var typed = secret.Replace('0', 'O').Replace('1', 'l');

        Assert.True(AppPasswordFormat.TryCanonicalize(typed, out var canonical));
        Assert.True(AppPasswordFormat.TryCanonicalize(secret, out var expected));
        Assert.Equal(expected, canonical);
    }

    [Fact]
    public void TryCanonicalize_RejectsEverySingleSymbolTypo()
    {
        var secret = AppPasswordFormat.Generate().Replace("-", string.Empty, StringComparison.Ordinal);
        var accepted = 0;
        var tried = 0;
        for (var i = 0; i < secret.Length; i++)
        {
            foreach (var c in AppPasswordFormat.Alphabet.Where(c => c != secret[i]))
            {
                tried++;
                var typo = string.Concat(secret.AsSpan(0, i), c.ToString(), secret.AsSpan(i + 1));
                if (AppPasswordFormat.TryCanonicalize(typo, out _))
                {
                    accepted++;
                }
            }
        }

        // A 10-bit check lets about 1 in 1024 of all typos through; 744 typos → expect < 10.
        Assert.True(accepted < 10, $"{accepted} of {tried} typos accepted");
    }

    [Fact]
    public void TryCanonicalize_RejectsRandomStringsAlmostAlways()
    {
        var random = new Random(42);
        var accepted = 0;
        for (var i = 0; i < 20_000; i++)
        {
            var s = new string([.. Enumerable.Range(0, 24).Select(_ => AppPasswordFormat.Alphabet[random.Next(32)])]);
            if (AppPasswordFormat.TryCanonicalize(s, out _))
            {
                accepted++;
            }
        }

        Assert.InRange(accepted, 0, 60);
    }

    [Theory]
    [InlineData("")]
    [InlineData("correct horse battery staple")]
    [InlineData("Summer2024!")]
    [InlineData("abcd-efgh-jkmn-pqrs-tvwx-yz0")]
    [InlineData("abcd-efgh-jkmn-pqrs-tvwx-yz012")]
    [InlineData("abcd-efgh-jkmn-pqrs-tvwx-yzü1")]
    [InlineData("abcd\0efgh-jkmn-pqrs-tvwx-yz01")]
    public void TryCanonicalize_RejectsWhatIsNotAnAppPassword(string input)
    {
        Assert.False(AppPasswordFormat.TryCanonicalize(input, out var canonical));
        Assert.Empty(canonical);
    }

    [Fact]
    public void TryCanonicalize_RejectsAbsurdLengthWithoutWork()
    {
        Assert.False(AppPasswordFormat.TryCanonicalize(new string('a', 1_000_000), out _));
    }
}
