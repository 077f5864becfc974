using Broker.Core.AppPasswords;
using Broker.Core.Audit;
using Broker.Core.Notifications;
using Broker.Core.Callers;
using Broker.Core.GeoIp;
using Broker.Core.Redis;
using Broker.Core.Secrets;
using Broker.Core.Throttling;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace Broker.Core;

public static class BrokerCoreServiceCollectionExtensions
{
    /// <summary>
    /// The credential domain: Redis connection, pepper, app-password service and caller keys.
    /// The Redis connection is made lazily and without aborting, so a process whose Redis is down
    /// still starts and answers "temporary failure" instead of refusing to run.
    /// </summary>
    public static IServiceCollection AddBrokerCore(this IServiceCollection services)
    {
        services.TryAddSingleton(TimeProvider.System);

        services.AddOptions<RedisOptions>().BindConfiguration(RedisOptions.SectionName).ValidateDataAnnotations()
            .Validate(o => !string.IsNullOrWhiteSpace(o.Configuration), $"{RedisOptions.SectionName}:Configuration is empty: set it to a Redis connection string (host:port), or run the embedded host, which fills it in.")
            .Validate(o => string.IsNullOrWhiteSpace(o.Configuration) || IsConnectionString(o.Configuration), $"{RedisOptions.SectionName}:Configuration is not a Redis connection string: write host:port, then any options as ,name=value (e.g. 10.0.0.5:6379,password=…,ssl=true).")
            .ValidateOnStart();
        services.AddOptions<AppPasswordPolicyOptions>().BindConfiguration(AppPasswordPolicyOptions.SectionName).ValidateDataAnnotations().ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<AppPasswordPolicyOptions>, AppPasswordPolicyValidator>());
        services.AddOptions<ThrottlingOptions>().BindConfiguration(ThrottlingOptions.SectionName).ValidateDataAnnotations().ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<ThrottlingOptions>, ThrottlingOptionsValidator>());
        services.AddOptions<PepperOptions>().BindConfiguration(PepperOptions.SectionName).ValidateDataAnnotations().ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<PepperOptions>, PepperOptionsValidator>());
        services.AddOptions<CallerKeyOptions>().BindConfiguration(CallerKeyOptions.SectionName)
            .Validate(o => o.Keys.Values.All(v => v is { Length: 64 } && v.All(Uri.IsHexDigit)), $"{CallerKeyOptions.SectionName}:Keys values must be the 64-character hex SHA-256 of each key.")
            .Validate(o => o.RefreshInterval >= CallerKeyOptions.ShortestRefresh && o.RefreshInterval <= CallerKeyOptions.LongestRefresh, $"{CallerKeyOptions.SectionName}:RefreshInterval must be between {CallerKeyOptions.ShortestRefresh} and {CallerKeyOptions.LongestRefresh}.")
            .ValidateOnStart();

        services.TryAddSingleton<IConnectionMultiplexer>(sp =>
        {
            var o = sp.GetRequiredService<IOptions<RedisOptions>>().Value;
            var config = ConfigurationOptions.Parse(o.Configuration!);
            config.AbortOnConnectFail = false;
            config.ConnectTimeout = Math.Max(config.ConnectTimeout, 2000);
            config.AsyncTimeout = (int)Math.Max(o.OperationTimeout.TotalMilliseconds, 100);
            config.SyncTimeout = config.AsyncTimeout;
            config.ClientName ??= "broker";
            return ConnectionMultiplexer.Connect(config);
        });
        services.TryAddSingleton(sp => new RedisKeys(sp.GetRequiredService<IOptions<RedisOptions>>().Value.KeyPrefix));
        services.TryAddSingleton(sp => Pepper.Load(sp.GetRequiredService<IOptions<PepperOptions>>().Value));
        services.AddBrokerGeoIp();
        services.TryAddSingleton<AppPasswordHasher>();
        services.TryAddSingleton<PolicyStore>();
        services.TryAddSingleton<AppPasswordService>();
        services.TryAddSingleton<CallerKeyStore>();
        services.TryAddSingleton<AuditOutbox>();
        services.AddHostedService<CallerKeyRefresher>();
        services.AddHostedService<PolicyRefresher>();
        services.AddHostedService<StoreWarmUp>();
        return services;
    }

    /// <summary>Whether StackExchange.Redis accepts <paramref name="configuration"/> (an unknown option such as <c>foo=bar</c> is refused here, not at first use).</summary>
    private static bool IsConnectionString(string configuration)
    {
        try
        {
            return ConfigurationOptions.Parse(configuration).EndPoints.Count > 0;
        }
        catch (ArgumentException)
        {
            return false;
        }
    }
}

/// <summary>Registration of the country look-up behind per-app-password country limits.</summary>
public static class BrokerGeoIpServiceCollectionExtensions
{
    /// <summary>
    /// <see cref="CountryLookup"/> over <c>Broker:GeoIp:CountryDatabase</c> (optional). A configured
    /// file that is missing or not MMDB stops start-up with a message naming the setting.
    /// </summary>
    public static IServiceCollection AddBrokerGeoIp(this IServiceCollection services)
    {
        services.TryAddSingleton(TimeProvider.System);
        services.AddOptions<GeoIpOptions>().BindConfiguration(GeoIpOptions.SectionName).ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<GeoIpOptions>, GeoIpOptionsValidator>());
        services.TryAddSingleton<CountryLookup>();
        return services;
    }
}

/// <summary>Registration of the roles that own the database: audit pump and email notifications.</summary>
public static class BrokerNotificationServiceCollectionExtensions
{
    /// <summary>
    /// Drains the audit outbox into the registered <see cref="IAuditSink"/>s and mails users
    /// about security events when <c>Broker:Notifications:Enabled</c> is set.
    /// </summary>
    public static IServiceCollection AddBrokerAuditAndNotifications(this IServiceCollection services)
    {
        services.AddOptions<NotificationOptions>().BindConfiguration(NotificationOptions.SectionName).ValidateDataAnnotations()
            .Validate(o => !o.Enabled || (!string.IsNullOrWhiteSpace(o.SmtpHost) && MimeKit.MailboxAddress.TryParse(o.From, out _)), $"{NotificationOptions.SectionName}: with Enabled, SmtpHost and a valid From address are required.")
            .ValidateOnStart();
        services.TryAddSingleton<MailNotifier>();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IAppPasswordEvents, MailNotifier>(sp => sp.GetRequiredService<MailNotifier>()));
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IAuditSink, MailNotifier>(sp => sp.GetRequiredService<MailNotifier>()));
        services.TryAddSingleton<ExpiryReminder>();
        services.AddHostedService(sp => sp.GetRequiredService<ExpiryReminder>());
        services.TryAddSingleton<AuditPump>();
        services.AddHostedService(sp => sp.GetRequiredService<AuditPump>());
        return services;
    }
}

/// <summary>Warms the Redis connection and scripts at start-up (see <see cref="AppPasswordService.WarmUpAsync"/>).</summary>
internal sealed class StoreWarmUp(AppPasswordService store) : Microsoft.Extensions.Hosting.IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken) => store.WarmUpAsync(TimeSpan.FromSeconds(5), cancellationToken);

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
