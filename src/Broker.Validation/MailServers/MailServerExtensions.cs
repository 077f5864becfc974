using Broker.Core.AppPasswords;
using Broker.Validation.Callers;
using Broker.Validation.Dovecot;
using Broker.Validation.Nginx;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace Broker.Validation.MailServers;

public static class MailServerExtensions
{
    /// <summary>Services of the mail-server integrations: Dovecot oauth2/policy/doveadm and nginx auth_http.</summary>
    public static IServiceCollection AddBrokerMailServers(this IServiceCollection services)
    {
        services.AddBrokerDoveadmKick();
        services.AddOptions<AuthPolicyOptions>().BindConfiguration(AuthPolicyOptions.SectionName).ValidateDataAnnotations().ValidateOnStart();
        services.AddOptions<NginxAuthOptions>().BindConfiguration(NginxAuthOptions.SectionName).ValidateDataAnnotations().ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<NginxAuthOptions>, NginxAuthOptionsValidator>());
        services.TryAddSingleton<IAuthPolicy, SourceFailurePolicy>();
        return services;
    }

    /// <summary>
    /// Ends a user's open Dovecot sessions when an app password is revoked or the user is disabled
    /// (doveadm HTTP API, <c>Broker:Dovecot:Doveadm</c>). Every process that revokes (validation role,
    /// portal, CLI) should register it; it does nothing while <c>Broker:Dovecot:Doveadm:Url</c> is empty.
    /// </summary>
    public static IServiceCollection AddBrokerDoveadmKick(this IServiceCollection services)
    {
        services.AddOptions<DoveadmOptions>().BindConfiguration(DoveadmOptions.SectionName).ValidateDataAnnotations().ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<DoveadmOptions>, DoveadmOptionsValidator>());
        services.AddHttpClient(DoveadmSessionKicker.HttpClientName);
        services.TryAddSingleton<DoveadmSessionKicker>();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IAppPasswordEvents, DoveadmSessionKicker>(sp => sp.GetRequiredService<DoveadmSessionKicker>()));
        return services;
    }

    /// <summary>
    /// Endpoints mail servers call, all under <c>/v1</c> so they pass the gateway's allow-list and rate
    /// limit. The oauth2 endpoints authenticate the caller themselves (Dovecot's oauth2 client cannot
    /// send a custom header); the others require the caller key header.
    /// </summary>
    public static IEndpointRouteBuilder MapMailServerApis(this IEndpointRouteBuilder app)
    {
        app.MapGroup("/v1").MapDovecotOAuth2Api();
        var keyed = app.MapGroup("/v1").RequireCallerKey();
        keyed.MapDovecotPolicyApi();
        keyed.MapNginxAuthApi();
        return app;
    }
}

/// <summary>Body limit of the Dovecot endpoints (introspection, password grant, auth policy): a few hundred bytes in practice.</summary>
internal static class MailServerBody
{
    public const int MaxBytes = 8 * 1024;
}

/// <summary>The <c>CHANGE-ME-…</c> placeholders in infra/: a secret that still contains one was never set.</summary>
internal static class ShippedPlaceholder
{
    public const string Marker = "CHANGE-ME";

    public static bool IsIn(string value) => value.Contains(Marker, StringComparison.OrdinalIgnoreCase);
}
