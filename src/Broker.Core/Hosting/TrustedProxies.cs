using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.HttpOverrides;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;

namespace Broker.Core.Hosting;

/// <summary>
/// X-Forwarded-For is honoured only from the proxies listed in configuration (addresses or
/// CIDR); anyone else could forge it. Behind the gateway (validation, portal) the default is
/// loopback, where the embedded gateway runs; the gateway itself, the front door, trusts no one
/// unless told (<c>Broker:Gateway:TrustedProxies</c>).
/// </summary>
public static class TrustedProxies
{
    public const string SectionName = "Broker:TrustedProxies";

    public static IServiceCollection AddBrokerTrustedProxies(this IServiceCollection services, string sectionName = SectionName, bool trustLoopbackByDefault = true)
    {
        services.AddOptions<ForwardedHeadersOptions>().Configure<IConfiguration>((o, config) =>
        {
            o.ForwardedHeaders = ForwardedHeaders.XForwardedFor | ForwardedHeaders.XForwardedProto;
            o.ForwardLimit = 1;
            var trusted = config.GetSection(sectionName).Get<string[]>();
            if (trusted is not { Length: > 0 } && !trustLoopbackByDefault)
            {
                // Empty known lists do not mean "trust no one" to the middleware: it then trusts
                // every sender. Switching the headers off is the only way to ignore them.
                o.ForwardedHeaders = ForwardedHeaders.None;
                return;
            }

            if (trusted is { Length: > 0 })
            {
                o.KnownIPNetworks.Clear();
#pragma warning disable ASPDEPR005 // The obsolete list is still consulted by the middleware and pre-filled with loopback.
                o.KnownNetworks.Clear();
#pragma warning restore ASPDEPR005
                o.KnownProxies.Clear();
                foreach (var cidr in trusted ?? [])
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
