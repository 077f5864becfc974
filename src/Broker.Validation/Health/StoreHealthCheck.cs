using Broker.Core.AppPasswords;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace Broker.Validation.Health;

/// <summary>Ready only when the credential store answers: a gateway then stops sending logins to an instance that could only say "temporary failure".</summary>
internal sealed class StoreHealthCheck(AppPasswordService store) : IHealthCheck
{
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
        await store.PingAsync(cancellationToken)
            ? HealthCheckResult.Healthy("Credential store reachable.")
            : HealthCheckResult.Unhealthy("Credential store unreachable or slow.");
}
