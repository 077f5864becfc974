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
