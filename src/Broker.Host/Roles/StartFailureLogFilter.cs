using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace Broker.Host.Roles;

/// <summary>
/// Drops the generic host's own "Hosting failed to start" entry. It carries the whole stack trace
/// and came before Broker's one-line <c>error:</c> message, which names the setting to look at;
/// <see cref="BrokerHost"/> reports every start failure itself (with the stack trace only for an
/// unforeseen one). Every other entry, the host's included, passes unchanged.
/// </summary>
internal sealed class StartFailureLogFilter(ILoggerFactory inner) : ILoggerFactory
{
    private const string HostCategory = "Microsoft.Extensions.Hosting.Internal.Host";

    /// <summary>The host's HostedServiceStartupFaulted event, logged only when start-up fails.</summary>
    private const int StartupFaulted = 11;

    /// <summary>Replaces the logger factory of <paramref name="services"/> with one wrapped in this filter.</summary>
    public static void Install(IServiceCollection services) =>
        services.Replace(ServiceDescriptor.Singleton<ILoggerFactory>(sp => new StartFailureLogFilter(new LoggerFactory(
            sp.GetServices<ILoggerProvider>(),
            sp.GetRequiredService<IOptionsMonitor<LoggerFilterOptions>>(),
            sp.GetService<IOptions<LoggerFactoryOptions>>(),
            sp.GetService<IExternalScopeProvider>()))));

    public ILogger CreateLogger(string categoryName) =>
        categoryName == HostCategory ? new Filtered(inner.CreateLogger(categoryName)) : inner.CreateLogger(categoryName);

    public void AddProvider(ILoggerProvider provider) => inner.AddProvider(provider);

    public void Dispose() => inner.Dispose();

    private sealed class Filtered(ILogger host) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => host.BeginScope(state);

        public bool IsEnabled(LogLevel logLevel) => host.IsEnabled(logLevel);

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (eventId.Id != StartupFaulted)
            {
                host.Log(logLevel, eventId, state, exception, formatter);
            }
        }
    }
}
