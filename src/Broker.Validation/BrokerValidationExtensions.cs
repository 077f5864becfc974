using Broker.Core;
using Broker.Core.Hosting;
using Broker.Validation.Health;
using Broker.Validation.MailServers;
using Broker.Validation.Telemetry;
using Broker.Validation.Validation;
using Microsoft.Extensions.DependencyInjection.Extensions;
using OpenTelemetry.Metrics;

namespace Broker.Validation;

public static class BrokerValidationExtensions
{
    /// <summary>Services of the validation role: credential core, validator, health, metrics.</summary>
    public static IServiceCollection AddBrokerValidation(this IServiceCollection services)
    {
        services.AddBrokerCore();
        services.AddOptions<ValidationOptions>().BindConfiguration(ValidationOptions.SectionName).ValidateDataAnnotations().ValidateOnStart();
        services.TryAddSingleton<ValidationMetrics>();
        services.TryAddSingleton<LoginValidator>();
        services.AddBrokerProblemReplies();
        services.AddProblemDetails();
        services.AddHealthChecks().AddCheck<StoreHealthCheck>("store", tags: [HealthEndpoints.ReadyTag]);
        services.AddBrokerTelemetry();
        services.AddBrokerTrustedProxies();
        services.AddBrokerMailServers();
        return services;
    }

    /// <summary>Prometheus metrics for every role (ASP.NET Core, Kestrel and Broker meters).</summary>
    public static IServiceCollection AddBrokerTelemetry(this IServiceCollection services)
    {
        services.AddOpenTelemetry().WithMetrics(m => m
            .AddMeter(ValidationMetrics.MeterName, "Microsoft.AspNetCore.Hosting", "Microsoft.AspNetCore.Server.Kestrel", "Microsoft.AspNetCore.RateLimiting", "Broker.*")
            .AddPrometheusExporter());
        return services;
    }

    /// <summary>Endpoints of the validation role.</summary>
    public static WebApplication MapBrokerValidation(this WebApplication app)
    {
        app.UseForwardedHeaders();
        app.MapValidationApi();
        app.MapMailServerApis();
        app.MapBrokerHealth();
        app.MapPrometheusScrapingEndpoint("/metrics");
        return app;
    }
}
