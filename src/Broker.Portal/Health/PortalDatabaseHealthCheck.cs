using Broker.Portal.Data;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Broker.Portal.Health;

/// <summary>
/// Ready when the account database answers. The credential store is deliberately not part of it:
/// when Redis is down the pages still work and say so, instead of the gateway answering 503 for all.
/// </summary>
internal sealed class PortalDatabaseHealthCheck(PortalDbContext db) : IHealthCheck
{
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
        await db.Database.CanConnectAsync(cancellationToken)
            ? HealthCheckResult.Healthy("Account database reachable.")
            : HealthCheckResult.Unhealthy("Account database unreachable.");
}
