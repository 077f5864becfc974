using Broker.Gateway;
using Broker.Host.Embedded;
using Broker.Validation;

namespace Broker.Host.Roles;

/// <summary>
/// Runs the configured roles, each as its own Kestrel application, in this process. With no
/// Redis configured it first starts the embedded Garnet and points every role at it, so the
/// all-in-one default has the same shape as a scaled-out deployment.
/// </summary>
internal static class BrokerHost
{
    public static async Task<int> RunAsync(string[] args, IConfiguration config, CancellationToken ct)
    {
        var options = config.GetSection(BrokerHostOptions.SectionName).Get<BrokerHostOptions>() ?? new BrokerHostOptions();
        var roles = options.RoleSet();
        var unknown = roles.Except(BrokerHostOptions.KnownRoles, StringComparer.OrdinalIgnoreCase).ToList();
        if (roles.Count == 0 || unknown.Count > 0)
        {
            await Console.Error.WriteLineAsync($"error: Broker:Roles must name {string.Join(", ", BrokerHostOptions.KnownRoles)} or all; got '{options.Roles}'.");
            return 2;
        }

        using var embedded = StartEmbeddedStoreIfNeeded(config, options, out var overrides);
        if (roles.Contains("gateway") && roles.Contains("validation") && config.GetSection("Broker:Gateway:ValidationDestinations").GetChildren().Any() == false)
        {
            overrides["Broker:Gateway:ValidationDestinations:local"] = options.Urls["validation"];
        }

        var apps = new List<WebApplication>();
        foreach (var role in BrokerHostOptions.KnownRoles.Where(roles.Contains))
        {
            apps.Add(Build(role, args, options, overrides));
        }

        try
        {
            foreach (var app in apps)
            {
                await app.StartAsync(ct);
            }
        }
        catch (Microsoft.Extensions.Options.OptionsValidationException ex)
        {
            foreach (var failure in ex.Failures)
            {
                await Console.Error.WriteLineAsync($"error: {failure}");
            }

            return 3;
        }

        if (embedded is not null)
        {
            await FirstRun.EnsureCallerKeyAsync(apps.Select(a => a.Services), options.DataDirectory, ct);
        }

        foreach (var app in apps)
        {
            foreach (var url in app.Urls)
            {
                Console.WriteLine($"broker {app.Configuration["Broker:Role"]} listening on {url}");
            }
        }

        Console.WriteLine(embedded is null
            ? "credential store: external Redis (Redis:Configuration)"
            : $"credential store: embedded Garnet on {embedded.Endpoint}, data in {Path.GetFullPath(options.DataDirectory)}");

        await Task.WhenAll(apps.Select(a => a.WaitForShutdownAsync(ct)));
        foreach (var app in apps)
        {
            await app.DisposeAsync();
        }

        return 0;
    }

    /// <summary>Starts Garnet when no Redis is configured and returns the settings every role needs to use it.</summary>
    internal static EmbeddedGarnet? StartEmbeddedStoreIfNeeded(IConfiguration config, BrokerHostOptions options, out Dictionary<string, string?> overrides)
    {
        overrides = [];
        if (!string.IsNullOrWhiteSpace(config["Redis:Configuration"]))
        {
            return null;
        }

        Directory.CreateDirectory(options.DataDirectory);
        var garnet = EmbeddedGarnet.Start(options.DataDirectory, options.EmbeddedRedisPort);
        overrides["Redis:Configuration"] = garnet.Endpoint;
        AddEmbeddedSecrets(config, options, overrides);
        return garnet;
    }

    /// <summary>In embedded mode the pepper is generated into the data directory unless one is configured.</summary>
    internal static void AddEmbeddedSecrets(IConfiguration config, BrokerHostOptions options, Dictionary<string, string?> overrides)
    {
        if (string.IsNullOrWhiteSpace(config["Broker:Pepper:Value"]) && string.IsNullOrWhiteSpace(config["Broker:Pepper:File"]))
        {
            overrides["Broker:Pepper:GenerateFile"] = Path.Combine(Path.GetFullPath(options.DataDirectory), "pepper.key");
        }
    }

    private static WebApplication Build(string role, string[] args, BrokerHostOptions options, Dictionary<string, string?> overrides)
    {
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = args, ApplicationName = typeof(BrokerHost).Assembly.GetName().Name, ContentRootPath = AppContext.BaseDirectory });
        builder.Configuration.AddInMemoryCollection(overrides);
        builder.Configuration.AddInMemoryCollection([new("Broker:Role", role)]);
        builder.WebHost.UseUrls(options.Urls.TryGetValue(role, out var url) ? url : throw new InvalidOperationException($"Broker:Urls:{role} is not set."));
        builder.Services.Configure<Microsoft.AspNetCore.Server.Kestrel.Core.KestrelServerOptions>(k =>
        {
            k.AddServerHeader = false;
            k.Limits.MaxRequestHeadersTotalSize = 16 * 1024;
        });

        switch (role)
        {
            case "gateway":
                builder.Services.AddBrokerGateway();
                break;
            case "validation":
                builder.Services.AddBrokerValidation();
                break;
        }

        var app = builder.Build();
        switch (role)
        {
            case "gateway":
                app.MapBrokerGateway();
                break;
            case "validation":
                app.MapBrokerValidation();
                break;
        }

        return app;
    }
}
