using Broker.Core.AppPasswords;
using Broker.Core.Secrets;

namespace Broker.Core.Tests.AppPasswords;

public sealed class AppPasswordHasherTests
{
    private static readonly Pepper PepperA = new([.. Enumerable.Range(0, 32).Select(i => (byte)i)]);
    private static readonly Pepper PepperB = new([.. Enumerable.Range(1, 32).Select(i => (byte)i)]);

    [Fact]
    public void Hash_IsDeterministicHexOf32Bytes()
    {
        var hasher = new AppPasswordHasher(PepperA);

        var a = hasher.Hash("alice", "abcd");
        Assert.Equal(a, hasher.Hash("alice", "abcd"));
        Assert.Equal(64, a.Length);
        Assert.Matches("^[0-9a-f]{64}$", a);
    }

    [Fact]
    public void Hash_MatchesHmacSha256OfOwnerNulPassword()
    {
        // Known-answer test: the stored form must not change silently, or every app password breaks.
        var key = Enumerable.Range(0, 32).Select(i => (byte)i).ToArray();
        var expected = Convert.ToHexStringLower(System.Security.Cryptography.HMACSHA256.HashData(key, "alice\0abcd"u8));

        Assert.Equal(expected, new AppPasswordHasher(PepperA).Hash("alice", "abcd"));
    }

    [Fact]
    public void Hash_DependsOnPepperOwnerAndSecret()
    {
        var a = new AppPasswordHasher(PepperA);
        var b = new AppPasswordHasher(PepperB);

        Assert.NotEqual(a.Hash("alice", "abcd"), b.Hash("alice", "abcd"));
        Assert.NotEqual(a.Hash("alice", "abcd"), a.Hash("bob", "abcd"));
        Assert.NotEqual(a.Hash("alice", "abcd"), a.Hash("alice", "abce"));
        // The separator keeps owner/secret boundaries unambiguous.
        Assert.NotEqual(a.Hash("alic", "eabcd"), a.Hash("alice", "abcd"));
    }

    [Fact]
    public void FixedTimeEquals_ComparesContent()
    {
        Assert.True(AppPasswordHasher.FixedTimeEquals("00ff", "00ff"));
        Assert.False(AppPasswordHasher.FixedTimeEquals("00ff", "00fe"));
        Assert.False(AppPasswordHasher.FixedTimeEquals("00ff", "00ff00"));
    }

    [Fact]
    public void HashUnderOther_IsTheOtherPeppersHash_OnlyDuringARotation()
    {
        var rotating = new AppPasswordHasher(new Pepper([.. Enumerable.Range(1, 32).Select(i => (byte)i)], [.. Enumerable.Range(0, 32).Select(i => (byte)i)]));

        Assert.Equal(new AppPasswordHasher(PepperA).Hash("alice", "abcd"), rotating.HashUnderOther("alice", "abcd"));
        Assert.Equal(new AppPasswordHasher(PepperB).Hash("alice", "abcd"), rotating.Hash("alice", "abcd"));
        Assert.True(rotating.Rotating);
        Assert.Null(new AppPasswordHasher(PepperA).HashUnderOther("alice", "abcd"));
        Assert.Equal(PepperB.Id, rotating.PepperId);
    }
}
