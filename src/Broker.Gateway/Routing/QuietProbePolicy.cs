using Microsoft.Extensions.Logging;
using Yarp.ReverseProxy.Health;
using Yarp.ReverseProxy.Model;

namespace Broker.Gateway.Routing;

/// <summary>
/// YARP's consecutive-failures policy for active health checks, logging each instance's failed
/// readiness probes in one line, and only until the instance is marked unhealthy.
/// </summary>
/// <remarks>
/// YARP itself logs every failed probe as a warning with the exception's stack trace: about 80
/// lines every <see cref="GatewayOptions.HealthCheckInterval"/> for as long as an instance is down.
/// Its category is turned down to errors in <see cref="BrokerGatewayExtensions.AddBrokerGateway"/>;
/// the change of state is still logged once by YARP, and the way back by this policy.
/// </remarks>
internal sealed partial class QuietProbePolicy(IServiceProvider services, ILogger<QuietProbePolicy> logger) : IActiveHealthCheckPolicy
{
    public const string PolicyName = "BrokerConsecutiveFailures";

    private IActiveHealthCheckPolicy? _inner;

    public string Name => PolicyName;

    public void ProbingCompleted(ClusterState cluster, IReadOnlyList<DestinationProbingResult> probingResults)
    {
        foreach (var result in probingResults)
        {
            var wasDown = result.Destination.Health.Active == DestinationHealth.Unhealthy;
            var problem = Problem(result);
            if (problem is not null && !wasDown)
            {
                ProbeFailed(logger, cluster.ClusterId, result.Destination.DestinationId, result.Destination.Model.Config.Address, problem);
            }
            else if (problem is null && wasDown)
            {
                BackInService(logger, cluster.ClusterId, result.Destination.DestinationId, result.Destination.Model.Config.Address);
            }
        }

        // Resolved here, not in the constructor: this class is one of the policies YARP enumerates.
        _inner ??= services.GetServices<IActiveHealthCheckPolicy>().Single(p => p.Name == HealthCheckConstants.ActivePolicy.ConsecutiveFailures);
        _inner.ProbingCompleted(cluster, probingResults);
    }

    /// <summary>Why a probe failed, in one line; null when it succeeded.</summary>
    internal static string? Problem(DestinationProbingResult result) => result switch
    {
        { Exception: OperationCanceledException } => "no answer within Broker:Gateway:HealthCheckTimeout",
        { Exception: { } ex } => OneLine.Reasons(ex),
        { Response: null } => "no answer",
        { Response.IsSuccessStatusCode: true } => null,
        { Response: { } response } => $"answered {(int)response.StatusCode} (not ready)",
    };

    [LoggerMessage(EventId = 5002, Level = LogLevel.Warning, Message = "Readiness probe of {Cluster} instance {Destination} ({Address}) failed: {Problem}")]
    private static partial void ProbeFailed(ILogger logger, string cluster, string destination, string address, string problem);

    [LoggerMessage(EventId = 5003, Level = LogLevel.Information, Message = "{Cluster} instance {Destination} ({Address}) is ready again and back in service")]
    private static partial void BackInService(ILogger logger, string cluster, string destination, string address);
}
