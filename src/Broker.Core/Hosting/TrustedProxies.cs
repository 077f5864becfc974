using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.HttpOverrides;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;

namespace Broker.Core.Hosting;

/// <summary>
/// X-Forwarded-For is honoured only from the proxies listed in <c>Broker:TrustedProxies</c>
/// (addresses or CIDR; default loopback, where the embedded gateway runs). Anyone else could forge it.
/// </summary>
public static class TrustedProxies
{
    public const string SectionName = "Broker:TrustedProxies";

    public static IServiceCollection AddBrokerTrustedProxies(this IServiceCollection services)
    {
        services.AddOptions<ForwardedHeadersOptions>().Configure<IConfiguration>((o, config) =>
        {
            o.ForwardedHeaders = ForwardedHeaders.XForwardedFor | ForwardedHeaders.XForwardedProto;
            o.ForwardLimit = 1;
            var trusted = config.GetSection(SectionName).Get<string[]>();
            if (trusted is { Length: > 0 })
            {
                o.KnownIPNetworks.Clear();
                o.KnownProxies.Clear();
                foreach (var cidr in trusted)
                {
                    o.KnownIPNetworks.Add(ParseNetwork(cidr));
                }
            }
        });
        return services;
    }

    /// <summary>Parses <c>10.0.0.0/8</c>, <c>::1/128</c>, or a bare address as a single-host network.</summary>
    public static System.Net.IPNetwork ParseNetwork(string value)
    {
        value = value.Trim();
        if (!value.Contains('/', StringComparison.Ordinal))
        {
            var ip = IPAddress.Parse(value);
            return new System.Net.IPNetwork(ip, ip.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork ? 32 : 128);
        }

        return System.Net.IPNetwork.Parse(value);
    }
}
