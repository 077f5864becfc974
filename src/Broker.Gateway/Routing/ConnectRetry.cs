using System.Net.Http;
using Microsoft.Extensions.Logging;
using Yarp.ReverseProxy.Forwarder;
using Yarp.ReverseProxy.Model;

namespace Broker.Gateway.Routing;

/// <summary>
/// Sends a machine-API request to another validation instance when the one picked could not be
/// connected to. An instance that crashed or was stopped stays in the rotation until its readiness
/// probe has failed twice (up to two <see cref="GatewayOptions.HealthCheckInterval"/>s), and the
/// passive check needs many failures at mail-login rates: without this, every request balanced onto
/// it in that time got a 502 while the other instances were fine. A request whose connection was
/// never made was not received, so sending it elsewhere cannot validate a login twice; a failure
/// after connecting (a reset, a timeout) is left alone, since the instance may have acted on it.
/// </summary>
/// <remarks>
/// Only a request with a body is sent again. HttpClient itself sends a bodiless one (nginx's
/// <c>GET /v1/nginx/auth</c>) a second time, on a new connection, when a kept-alive connection
/// closes before any answer; if the instance read it and then died, that new connection is
/// refused, and the error says "could not connect" although the instance had the login. Once
/// it has begun sending a body, HttpClient never sends the request again by itself, so for a
/// request with one the error does mean that it was never sent.
/// </remarks>
internal sealed partial class ConnectRetry(ILogger<ConnectRetry> logger)
{
    public async Task InvokeAsync(HttpContext context, Func<Task> next)
    {
        var proxy = context.GetReverseProxyFeature();
        // Only the machine API: its body is held whole by MachineApiBody and can be sent again.
        if (proxy.Route.Config.RouteId != GatewayRoutes.MachineApiRoute)
        {
            await next();
            return;
        }

        var candidates = proxy.AvailableDestinations;
        await next();
        while (!context.Response.HasStarted
            && context.Features.Get<IForwarderErrorFeature>() is { } error
            && NotConnected(error)
            && proxy.ProxiedDestination is { } failed
            && context.Request is { ContentLength: > 0, Body.CanSeek: true })
        {
            candidates = candidates.Where(d => !ReferenceEquals(d, failed)).ToList();
            if (candidates.Count == 0)
            {
                return;
            }

            SentElsewhere(logger, proxy.Route.Cluster?.ClusterId ?? "?", failed.DestinationId, OneLine.Reasons(error.Exception!));

            context.Features.Set<IForwarderErrorFeature>(null);
            context.Response.Clear();
            context.Request.Body.Position = 0;

            proxy.AvailableDestinations = candidates;
            proxy.ProxiedDestination = null;
            await next();
        }
    }

    [LoggerMessage(EventId = 5005, Level = LogLevel.Warning, Message = "{Cluster} instance {Destination} could not be connected to ({Reason}); the request went to another instance")]
    private static partial void SentElsewhere(ILogger logger, string cluster, string destination, string reason);

    /// <summary>The request never reached the instance: no connection could be made to it.</summary>
    internal static bool NotConnected(IForwarderErrorFeature error) =>
        error.Error == ForwarderError.Request
        && error.Exception is HttpRequestException { HttpRequestError: HttpRequestError.ConnectionError };
}
