using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.AspNetCore.Routing;

namespace Broker.Core.Hosting;

/// <summary>
/// The health endpoints every role answers the same way, so that one probe configuration fits all:
/// <c>text/plain</c> <c>Healthy</c> with 200, or <c>Unhealthy</c> with 503, never cached.
/// </summary>
public static class HealthEndpoints
{
    /// <summary>The tag of the checks <c>/health/ready</c> runs.</summary>
    public const string ReadyTag = "ready";

    /// <summary>
    /// <c>/health/live</c> (the process answers; runs no check) and <c>/health/ready</c> (the checks
    /// tagged <see cref="ReadyTag"/>; none means ready).
    /// </summary>
    public static IEndpointRouteBuilder MapBrokerHealth(this IEndpointRouteBuilder app)
    {
        app.MapHealthChecks("/health/live", new HealthCheckOptions { Predicate = _ => false });
        app.MapHealthChecks("/health/ready", new HealthCheckOptions { Predicate = c => c.Tags.Contains(ReadyTag) });
        return app;
    }
}
