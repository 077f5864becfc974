using Broker.Core.Throttling;

namespace Broker.Core.Tests.Throttling;

public sealed class SourceNetworkTests
{
    [Theory]
    [InlineData("203.0.113.77", "203.0.113.0/24")]
    [InlineData("::ffff:203.0.113.77", "203.0.113.0/24")]
    [InlineData("2001:db8:1234:5678::1", "2001:db8:1234::/48")]
    [InlineData(null, null)]
    [InlineData("", null)]
    [InlineData("not an ip", null)]
    public void Of_MasksToTheConfiguredPrefix(string? address, string? network)
    {
        Assert.Equal(network, SourceNetwork.Of(address, 24, 48));
    }

    [Fact]
    public void Of_HonoursOtherPrefixes()
    {
        Assert.Equal("203.0.113.77/32", SourceNetwork.Of("203.0.113.77", 32, 64));
        Assert.Equal("203.0.112.0/20", SourceNetwork.Of("203.0.113.77", 20, 64));
        Assert.Equal("2001:db8:1234:5678::/64", SourceNetwork.Of("2001:db8:1234:5678::1", 24, 64));
    }
}

public sealed class AllowListNetworkTests
{
    [Theory]
    [InlineData("10.1.2.3/8", "10.0.0.0/8")]
    [InlineData("192.0.2.7", "192.0.2.7/32")]
    [InlineData("2001:db8::1/32", "2001:db8::/32")]
    [InlineData("2001:db8::1", "2001:db8::1/128")]
    public void NormalizeCidr_MasksTheAddress(string input, string normalized)
    {
        Assert.Equal(normalized, SourceNetwork.NormalizeCidr(input));
    }

    [Theory]
    [InlineData("10.0.0.0/33")]
    [InlineData("2001:db8::/33")]
    [InlineData("example.com")]
    [InlineData("10.0.0.0/-1")]
    [InlineData("")]
    public void NormalizeCidr_RejectsInvalid(string input)
    {
        Assert.Null(SourceNetwork.NormalizeCidr(input));
    }

    [Fact]
    public void Containing_ListsEveryNetworkAroundTheAddress()
    {
        var v4 = SourceNetwork.Containing("10.1.2.3")!;
        Assert.Contains(",10.0.0.0/8,", v4, StringComparison.Ordinal);
        Assert.Contains(",10.1.2.3/32,", v4, StringComparison.Ordinal);
        Assert.Contains(",0.0.0.0/0,", v4, StringComparison.Ordinal);
        Assert.DoesNotContain(",10.2.0.0/16,", v4, StringComparison.Ordinal);
        Assert.Contains(",2001:db8::/32,", SourceNetwork.Containing("2001:db8:1::5"), StringComparison.Ordinal);
        Assert.Null(SourceNetwork.Containing("nope"));
    }
}
