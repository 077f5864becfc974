using System.Security.Cryptography;
using Broker.Core.AppPasswords;
using Broker.Core.Callers;
using Broker.Gateway;
using Broker.Validation;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Broker.Testing;

/// <summary>
/// Starts Broker roles as real Kestrel servers on 127.0.0.1 port 0, the way the host composes
/// them, so functional tests go through real HTTP.
/// </summary>
public static class BrokerApps
{
    /// <summary>A fixed test caller key; its SHA-256 is put into configuration.</summary>
    public const string CallerKey = "bk_test-caller-key-0123456789abcdef0123456789";

    public static Dictionary<string, string?> BaseConfig(string redisConfiguration, string? pepper = null) => new()
    {
        ["Redis:Configuration"] = redisConfiguration,
        // Generous: CI machines are slow and shared; tests of the timeout itself set their own.
        ["Redis:OperationTimeout"] = "00:00:05",
        ["Broker:Pepper:Value"] = pepper ?? Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)),
        ["Broker:Callers:Keys:test"] = CallerKeyStore.HashHex(CallerKey),
        ["Logging:LogLevel:Default"] = "Warning",
    };

    public static Task<RunningApp> StartValidationAsync(IDictionary<string, string?> config, Action<IServiceCollection>? services = null, ILoggerProvider? logs = null) =>
        StartAsync(config, s =>
        {
            s.AddBrokerValidation();
            services?.Invoke(s);
        }, app => app.MapBrokerValidation(), logs);

    public static Task<RunningApp> StartGatewayAsync(IDictionary<string, string?> config, ILoggerProvider? logs = null) =>
        StartAsync(config, s => s.AddBrokerGateway(), app => app.MapBrokerGateway(), logs);

    public static async Task<RunningApp> StartAsync(IDictionary<string, string?> config, Action<IServiceCollection> services, Action<WebApplication> map, ILoggerProvider? logs = null)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Configuration.AddInMemoryCollection(config);
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        if (logs is not null)
        {
            builder.Logging.AddProvider(logs);
        }

        services(builder.Services);
        var app = builder.Build();
        map(app);
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.GetRequiredFeature<IServerAddressesFeature>().Addresses.First();
        return new RunningApp(app, new Uri(address));
    }
}

/// <summary>A started app and its base address; disposing stops it.</summary>
public sealed class RunningApp(WebApplication app, Uri address) : IAsyncDisposable
{
    public WebApplication App { get; } = app;

    public Uri Address { get; } = address;

    public IServiceProvider Services => App.Services;

    public AppPasswordService AppPasswords => Services.GetRequiredService<AppPasswordService>();

    public HttpClient CreateClient(bool withCallerKey = true)
    {
        var client = new HttpClient { BaseAddress = Address, Timeout = TimeSpan.FromSeconds(30) };
        if (withCallerKey)
        {
            client.DefaultRequestHeaders.Add(CallerKeyOptions.HeaderName, BrokerApps.CallerKey);
        }

        return client;
    }

    public async ValueTask DisposeAsync()
    {
        await App.StopAsync();
        await App.DisposeAsync();
    }
}
