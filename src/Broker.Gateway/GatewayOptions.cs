using System.ComponentModel.DataAnnotations;
using System.Net;
using Broker.Core.Hosting;
using Microsoft.Extensions.Options;

namespace Broker.Gateway;

/// <summary>The YARP front door: where each role runs, who may reach the machine API, how fast.</summary>
public sealed class GatewayOptions
{
    public const string SectionName = "Broker:Gateway";

    /// <summary>Validation instances (name → base URL). Logins are balanced over the healthy ones.</summary>
    public Dictionary<string, string> ValidationDestinations { get; set; } = [];

    /// <summary>Portal instances (name → base URL). Empty: no portal route.</summary>
    public Dictionary<string, string> PortalDestinations { get; set; } = [];

    /// <summary>
    /// Networks (CIDR or single addresses) allowed to call the machine API under <c>/v1</c>: your
    /// mail servers. Empty means loopback only. Everyone else gets 403 before any password is looked at.
    /// </summary>
    /// <remarks>Empty by default rather than pre-filled: the configuration binder appends to a pre-filled list, which would keep loopback allowed after an admin narrowed it.</remarks>
    public List<string> AllowedNetworks { get; set; } = [];

    /// <summary>Proxies in front of the gateway whose X-Forwarded-For is believed. Empty: none.</summary>
    public List<string> TrustedProxies { get; set; } = [];

    internal static IReadOnlyList<string> LoopbackOnly { get; } = ["127.0.0.0/8", "::1/128"];

    /// <summary>Requests per <see cref="RateLimitWindow"/> one source address may send to <c>/v1</c>.</summary>
    [Range(1, 1_000_000)]
    public int RateLimitPermits { get; set; } = 2000;

    public TimeSpan RateLimitWindow { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>How often destinations are probed on <c>/health/ready</c>.</summary>
    public TimeSpan HealthCheckInterval { get; set; } = TimeSpan.FromSeconds(2);

    public TimeSpan HealthCheckTimeout { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Time limit for one proxied request; a hung instance must not hold a mail server's auth worker.</summary>
    public TimeSpan ActivityTimeout { get; set; } = TimeSpan.FromSeconds(5);

    internal IReadOnlyList<IPNetwork> ParsedAllowedNetworks() => [.. (AllowedNetworks.Count == 0 ? LoopbackOnly : AllowedNetworks).Select(Broker.Core.Hosting.TrustedProxies.ParseNetwork)];
}

internal sealed class GatewayOptionsValidator : IValidateOptions<GatewayOptions>
{
    public ValidateOptionsResult Validate(string? name, GatewayOptions o)
    {
        var errors = new List<string>();
        var p = GatewayOptions.SectionName;
        if (o.ValidationDestinations.Count == 0)
        {
            errors.Add($"{p}:ValidationDestinations is empty: name at least one validation instance URL.");
        }

        foreach (var (key, url) in o.ValidationDestinations.Concat(o.PortalDestinations))
        {
            if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps))
            {
                errors.Add($"{p}: destination '{key}' has '{url}', which is not an http(s) URL.");
            }
        }

        foreach (var cidr in o.AllowedNetworks.Concat(o.TrustedProxies))
        {
            try
            {
                Broker.Core.Hosting.TrustedProxies.ParseNetwork(cidr);
            }
            catch (FormatException)
            {
                errors.Add($"{p}: AllowedNetworks/TrustedProxies has '{cidr}', which is not an address or CIDR network.");
            }
        }

        if (o.RateLimitWindow <= TimeSpan.Zero || o.HealthCheckInterval <= TimeSpan.Zero || o.HealthCheckTimeout <= TimeSpan.Zero || o.ActivityTimeout <= TimeSpan.Zero)
        {
            errors.Add($"{p}: RateLimitWindow, HealthCheckInterval, HealthCheckTimeout and ActivityTimeout must be positive.");
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}
