using System.Threading.RateLimiting;
using Broker.Core.Hosting;
using Broker.Core.Throttling;
using Broker.Gateway.Routing;
using Broker.Gateway.Security;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.AspNetCore.RateLimiting;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Yarp.ReverseProxy.Configuration;
using Yarp.ReverseProxy.Health;

namespace Broker.Gateway;

public static class BrokerGatewayExtensions
{
    /// <summary>Services of the gateway role: YARP with routes from options, allow-list, per-source rate limit.</summary>
    public static IServiceCollection AddBrokerGateway(this IServiceCollection services)
    {
        services.AddOptions<GatewayOptions>().BindConfiguration(GatewayOptions.SectionName).ValidateDataAnnotations().ValidateOnStart();
        services.AddSingleton<IValidateOptions<GatewayOptions>, GatewayOptionsValidator>();
        services.AddSingleton<IProxyConfigProvider, OptionsProxyConfigProvider>();
        services.AddSingleton<TrustedNetworksMiddleware>();
        services.AddSingleton<ConnectRetry>();
        services.AddSingleton<ForwardingErrorLog>();
        services.AddHealthChecks();
        services.AddReverseProxy();
        services.AddSingleton<IActiveHealthCheckPolicy, QuietProbePolicy>();
        // YARP keeps an instance that the passive check took out for at least this window (60 s by
        // default), whatever the cluster's ReactivationPeriod says: a restarted validation instance
        // passed its readiness probe ("back in service", event 5003) and still got no login for a minute.
        services.AddOptions<TransportFailureRateHealthPolicyOptions>()
            .Configure<IOptions<GatewayOptions>>((o, gateway) => o.DetectionWindowSize = GatewayRoutes.PassiveReactivation(gateway.Value));
        // YARP's warnings for a failed probe and a request it could not forward carry a stack trace,
        // repeated for as long as an instance is down: QuietProbePolicy and ForwardingErrorLog write
        // each in one line instead. Errors of these components still show.
        services.AddLogging(l => l
            .AddFilter("Yarp.ReverseProxy.Health.ActiveHealthCheckMonitor", LogLevel.Error)
            .AddFilter("Yarp.ReverseProxy.Forwarder.HttpForwarder", LogLevel.Error));
        services.AddBrokerTrustedProxies(GatewayOptions.SectionName + ":TrustedProxies", trustLoopbackByDefault: false);
        services.AddBrokerProblemReplies();
        services.AddProblemDetails();
        services.AddRateLimiter(o =>
        {
            o.RejectionStatusCode = StatusCodes.Status429TooManyRequests;
            o.AddPolicy(GatewayRoutes.RateLimitPolicy, context =>
            {
                var gateway = context.RequestServices.GetRequiredService<IOptions<GatewayOptions>>().Value;
                var source = SourceNetwork.RateLimitKey(context.Connection.RemoteIpAddress);
                return RateLimitPartition.GetSlidingWindowLimiter(source, _ => new SlidingWindowRateLimiterOptions
                {
                    PermitLimit = gateway.RateLimitPermits,
                    Window = gateway.RateLimitWindow,
                    SegmentsPerWindow = 4,
                    QueueLimit = 0,
                    AutoReplenishment = true,
                });
            });
        });
        return services;
    }

    /// <summary>Pipeline of the gateway role.</summary>
    public static WebApplication MapBrokerGateway(this WebApplication app)
    {
        app.UseForwardedHeaders();
        app.UseRouting();
        app.UseRateLimiter();
        // Only live: every other path that is not /v1 belongs to the portal, its /health/ready included.
        app.MapHealthChecks("/health/live", new HealthCheckOptions { Predicate = _ => false });
        var trusted = app.Services.GetRequiredService<TrustedNetworksMiddleware>();
        var errors = app.Services.GetRequiredService<ForwardingErrorLog>();
        var retry = app.Services.GetRequiredService<ConnectRetry>();
        app.MapReverseProxy(proxy =>
        {
            proxy.Use(errors.InvokeAsync);
            proxy.Use(trusted.InvokeAsync);
            proxy.Use(MachineApiBody.InvokeAsync);
            proxy.UseSessionAffinity();
            // Around load balancing, so that a retry picks again among the instances left.
            proxy.Use(retry.InvokeAsync);
            proxy.UseLoadBalancing();
            proxy.UsePassiveHealthChecks();
        });
        return app;
    }
}
