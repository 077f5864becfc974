using System.Net;
using Broker.Gateway.Security;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Broker.Gateway.Tests.Security;

public sealed class TrustedNetworksTests
{
    private static TrustedNetworksMiddleware Middleware(params string[] networks) =>
        new(Options.Create(new GatewayOptions { AllowedNetworks = [.. networks] }), NullLogger<TrustedNetworksMiddleware>.Instance);

    [Theory]
    [InlineData("127.0.0.1", true)]
    [InlineData("127.255.0.9", true)]
    [InlineData("::1", true)]
    [InlineData("::ffff:127.0.0.1", true)]
    [InlineData("10.0.0.1", false)]
    [InlineData("::2", false)]
    public void IsAllowed_DefaultsToLoopbackOnly(string address, bool allowed)
    {
        var middleware = new TrustedNetworksMiddleware(Options.Create(new GatewayOptions()), NullLogger<TrustedNetworksMiddleware>.Instance);

        Assert.Equal(allowed, middleware.IsAllowed(IPAddress.Parse(address)));
    }

    [Fact]
    public void IsAllowed_HonoursConfiguredCidrsAndSingleAddresses()
    {
        var middleware = Middleware("192.0.2.0/24", "2001:db8::/32", "198.51.100.7");

        Assert.True(middleware.IsAllowed(IPAddress.Parse("192.0.2.200")));
        Assert.True(middleware.IsAllowed(IPAddress.Parse("2001:db8:1::5")));
        Assert.True(middleware.IsAllowed(IPAddress.Parse("198.51.100.7")));
        Assert.False(middleware.IsAllowed(IPAddress.Parse("198.51.100.8")));
        Assert.False(middleware.IsAllowed(IPAddress.Parse("127.0.0.1")));
        Assert.False(middleware.IsAllowed(null));
    }

    [Theory]
    [InlineData("10.0.0.1", "10.0.0.1")]
    [InlineData("::ffff:10.0.0.1", "10.0.0.1")]
    [InlineData("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64")]
    public void RateLimitPartition_GroupsIpv6ByPrefix64(string address, string partition)
    {
        Assert.Equal(partition, Broker.Core.Throttling.SourceNetwork.RateLimitKey(IPAddress.Parse(address)));
    }

    [Fact]
    public void OptionsValidator_NamesTheBadSetting()
    {
        var result = new GatewayOptionsValidator().Validate(null, new GatewayOptions
        {
            ValidationDestinations = new() { ["a"] = "ftp://x" },
            AllowedNetworks = ["not-a-network"],
        });

        Assert.True(result.Failed);
        Assert.Contains("not an http(s) URL", result.FailureMessage, StringComparison.Ordinal);
        Assert.Contains("not-a-network", result.FailureMessage, StringComparison.Ordinal);
        Assert.Contains("ValidationDestinations is empty", new GatewayOptionsValidator().Validate(null, new GatewayOptions()).FailureMessage, StringComparison.Ordinal);
    }
}
