using System.Net;
using Broker.Gateway.Routing;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Yarp.ReverseProxy.Model;

namespace Broker.Gateway.Security;

/// <summary>
/// Admits a request to a route marked trusted-networks-only only when its source address is in
/// the allow-list. Runs inside YARP's pipeline, so it sees the route's metadata.
/// </summary>
internal sealed partial class TrustedNetworksMiddleware(IOptions<GatewayOptions> options, ILogger<TrustedNetworksMiddleware> logger)
{
    private readonly IReadOnlyList<IPNetwork> _allowed = options.Value.ParsedAllowedNetworks();

    public async Task InvokeAsync(HttpContext context, Func<Task> next)
    {
        var route = context.GetReverseProxyFeature().Route.Config;
        if (route.Metadata?.ContainsKey(GatewayRoutes.TrustedNetworksOnly) == true && !IsAllowed(context.Connection.RemoteIpAddress))
        {
            Log.Refused(logger, context.Connection.RemoteIpAddress?.ToString() ?? "unknown", route.RouteId);
            context.Response.StatusCode = StatusCodes.Status403Forbidden;
            await Results.Problem(statusCode: 403, title: "Forbidden", detail: "This source address is not an allowed mail server.").ExecuteAsync(context);
            return;
        }

        await next();
    }

    internal bool IsAllowed(IPAddress? address)
    {
        if (address is null)
        {
            return false;
        }

        if (address.IsIPv4MappedToIPv6)
        {
            address = address.MapToIPv4();
        }

        foreach (var network in _allowed)
        {
            if (network.Contains(address))
            {
                return true;
            }
        }

        return false;
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 5001, Level = LogLevel.Warning, Message = "Refused {RemoteIp} on route {Route}: not in Broker:Gateway:AllowedNetworks")]
        public static partial void Refused(ILogger logger, string remoteIp, string route);
    }
}
