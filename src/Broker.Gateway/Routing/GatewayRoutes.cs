using Microsoft.Extensions.Options;
using Yarp.ReverseProxy.Configuration;
using Yarp.ReverseProxy.Health;

namespace Broker.Gateway.Routing;

/// <summary>Builds the YARP routes and clusters from <see cref="GatewayOptions"/>.</summary>
internal static class GatewayRoutes
{
    public const string MachineApiRoute = "machine-api";
    public const string PortalRoute = "portal";
    public const string TrustedNetworksOnly = "Broker.TrustedNetworksOnly";
    public const string RateLimitPolicy = "per-source";

    public static (IReadOnlyList<RouteConfig> Routes, IReadOnlyList<ClusterConfig> Clusters) Build(GatewayOptions o)
    {
        var routes = new List<RouteConfig>
        {
            new()
            {
                RouteId = MachineApiRoute,
                ClusterId = "validation",
                Match = new RouteMatch { Path = "/v1/{**rest}" },
                RateLimiterPolicy = RateLimitPolicy,
                Metadata = new Dictionary<string, string> { [TrustedNetworksOnly] = "true" },
            },
        };
        var clusters = new List<ClusterConfig> { Cluster("validation", o.ValidationDestinations, o) };

        if (o.PortalDestinations.Count > 0)
        {
            routes.Add(new RouteConfig
            {
                RouteId = PortalRoute,
                ClusterId = "portal",
                // Lowest priority: everything that is not the machine API is the portal.
                Order = 1000,
                Match = new RouteMatch { Path = "/{**rest}" },
            });
            clusters.Add(Cluster("portal", o.PortalDestinations, o) with
            {
                // Antiforgery and passkey state live in cookies bound to one instance's data-protection keys
                // unless keys are shared; stickiness keeps a browser on one portal instance.
                SessionAffinity = new SessionAffinityConfig
                {
                    Enabled = true,
                    AffinityKeyName = ".Broker.Affinity",
                    // YARP's default leaves Secure off even over HTTPS; the portal's own cookies are
                    // Secure, HttpOnly and SameSite=Lax, and this one follows them.
                    Cookie = new SessionAffinityCookieConfig { SecurePolicy = CookieSecurePolicy.SameAsRequest, HttpOnly = true, SameSite = SameSiteMode.Lax },
                },
            });
        }

        return (routes, clusters);
    }

    /// <summary>How long an instance that failed too many forwarded requests stays out: two probe intervals.</summary>
    internal static TimeSpan PassiveReactivation(GatewayOptions o) => o.HealthCheckInterval * 2;

    private static ClusterConfig Cluster(string id, Dictionary<string, string> destinations, GatewayOptions o) => new()
    {
        ClusterId = id,
        LoadBalancingPolicy = "PowerOfTwoChoices",
        HttpRequest = new Yarp.ReverseProxy.Forwarder.ForwarderRequestConfig { ActivityTimeout = o.ActivityTimeout },
        // Kestrel reads request header bytes as UTF-8, and nginx's auth_http sends a non-ASCII login
        // (Auth-User: jürgen@…) as raw UTF-8. HttpClient's default (ASCII only) throws on such a
        // value, a 502 that nginx shows as "internal server error": forward the bytes as they came.
        HttpClient = new HttpClientConfig { RequestHeaderEncoding = "utf-8" },
        Destinations = destinations.ToDictionary(d => d.Key, d => new DestinationConfig { Address = d.Value }),
        HealthCheck = new HealthCheckConfig
        {
            // When no instance is ready (every one reports its Redis down), requests still go to
            // them: a validation instance then answers "temporary failure" in the caller's own
            // protocol (nginx's Auth-Status with Auth-Wait, the JSON tempfail), which says more
            // than the gateway's empty 503. Fail closed either way; a dead instance gets a 502.
            AvailableDestinationsPolicy = HealthCheckConstants.AvailableDestinations.HealthyOrPanic,
            Active = new ActiveHealthCheckConfig
            {
                Enabled = true,
                Interval = o.HealthCheckInterval,
                Timeout = o.HealthCheckTimeout,
                Policy = QuietProbePolicy.PolicyName,
                Path = "/health/ready",
            },
            Passive = new PassiveHealthCheckConfig
            {
                Enabled = true,
                Policy = HealthCheckConstants.PassivePolicy.TransportFailureRate,
                ReactivationPeriod = PassiveReactivation(o),
            },
        },
    };
}

/// <summary>Feeds the option-built config to YARP once at start.</summary>
internal sealed class OptionsProxyConfigProvider(IOptions<GatewayOptions> options) : IProxyConfigProvider
{
    private readonly Lazy<IProxyConfig> _config = new(() =>
    {
        var (routes, clusters) = GatewayRoutes.Build(options.Value);
        return new Yarp.ReverseProxy.Configuration.InMemoryConfigProvider(routes, clusters).GetConfig();
    });

    public IProxyConfig GetConfig() => _config.Value;
}
