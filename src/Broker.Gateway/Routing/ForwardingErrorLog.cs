using Microsoft.Extensions.Logging;
using Yarp.ReverseProxy.Forwarder;
using Yarp.ReverseProxy.Model;

namespace Broker.Gateway.Routing;

/// <summary>
/// One log line for a request the gateway could not forward (the client gets 502 or 504), with the
/// instance and the reason. YARP logs each such request as a warning with the exception's stack
/// trace, which <see cref="BrokerGatewayExtensions.AddBrokerGateway"/> turns down; a request that
/// <see cref="ConnectRetry"/> sent to another instance is not a failure and is not logged here.
/// </summary>
internal sealed partial class ForwardingErrorLog(ILogger<ForwardingErrorLog> logger)
{
    public async Task InvokeAsync(HttpContext context, Func<Task> next)
    {
        await next();
        if (context.Features.Get<IForwarderErrorFeature>() is not { } error
            || error.Error is ForwarderError.RequestCanceled or ForwarderError.RequestBodyCanceled or ForwarderError.UpgradeRequestCanceled)
        {
            // Nothing failed, or the client went away (YARP logs that at debug level only).
            return;
        }

        var proxy = context.GetReverseProxyFeature();
        // The path only: a portal query string can carry a one-time enrollment token.
        Failed(
            logger,
            context.Request.Method,
            context.Request.Path.Value ?? "/",
            proxy.Route.Cluster?.ClusterId ?? "?",
            proxy.ProxiedDestination?.DestinationId ?? "(none)",
            error.Error,
            error.Exception is { } ex ? OneLine.Reasons(ex) : "no detail");
    }

    [LoggerMessage(EventId = 5004, Level = LogLevel.Warning, Message = "Could not forward {Method} {Path} to {Cluster} instance {Destination}: {Error}, {Reason}")]
    private static partial void Failed(ILogger logger, string method, string path, string cluster, string destination, ForwarderError error, string reason);
}
