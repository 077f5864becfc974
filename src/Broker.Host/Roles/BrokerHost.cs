using Microsoft.Extensions.DependencyInjection.Extensions;
using Broker.Core;
using Broker.Gateway;
using Broker.Host.Embedded;
using Broker.Portal;
using Broker.Validation;
using Broker.Validation.MailServers;

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

        // A gateway alone holds no credentials; every other role needs the store.
        var needsStore = roles.Any(r => r != "gateway");
        var overrides = new Dictionary<string, string?>();
        using var embedded = needsStore ? StartEmbeddedStoreIfNeeded(config, options, overrides) : null;
        if (roles.Contains("gateway") && roles.Contains("validation") && config.GetSection("Broker:Gateway:ValidationDestinations").GetChildren().Any() == false)
        {
            overrides["Broker:Gateway:ValidationDestinations:local"] = options.Urls["validation"];
        }

        if (roles.Contains("gateway") && roles.Contains("portal") && !config.GetSection("Broker:Gateway:PortalDestinations").GetChildren().Any())
        {
            overrides["Broker:Gateway:PortalDestinations:local"] = options.Urls["portal"];
        }

        if (roles.Contains("gateway") && roles.Contains("portal") && DefaultPortalOrigin(config, options) is { } origin)
        {
            overrides["Broker:Portal:PublicOrigin"] = origin;
        }

        var apps = new List<WebApplication>();
        try
        {
            // The gateway last, and built last too: YARP starts its active health probes as soon as
            // its routes are mapped, and they should find the other roles already listening.
            foreach (var role in BrokerHostOptions.KnownRoles.Where(roles.Contains).OrderBy(r => r == "gateway"))
            {
                var app = Build(role, roles, args, options, overrides);
                apps.Add(app);
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
    internal static EmbeddedGarnet? StartEmbeddedStoreIfNeeded(IConfiguration config, BrokerHostOptions options, Dictionary<string, string?> overrides)
    {
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

    /// <summary>
    /// When Broker:Portal:PublicOrigin is not set: the gateway's URL, since browsers reach the portal
    /// through it. Passkeys need a host name, so a loopback address becomes localhost.
    /// </summary>
    internal static string? DefaultPortalOrigin(IConfiguration config, BrokerHostOptions options) =>
        string.IsNullOrWhiteSpace(config["Broker:Portal:PublicOrigin"])
        && options.Urls.TryGetValue("gateway", out var url) && Uri.TryCreate(url, UriKind.Absolute, out var gateway)
            ? $"{gateway.Scheme}://{(gateway.IsLoopback ? "localhost" : gateway.Host)}:{gateway.Port}"
            : null;

    /// <summary>In embedded mode the pepper is generated into the data directory unless one is configured.</summary>
    internal static void AddEmbeddedSecrets(IConfiguration config, BrokerHostOptions options, Dictionary<string, string?> overrides)
    {
        if (string.IsNullOrWhiteSpace(config["Broker:Pepper:Value"]) && string.IsNullOrWhiteSpace(config["Broker:Pepper:File"]))
        {
            overrides["Broker:Pepper:GenerateFile"] = options.EmbeddedPepperFile;
        }
    }

    private static WebApplication Build(string role, IReadOnlySet<string> roles, string[] args, BrokerHostOptions options, Dictionary<string, string?> overrides)
    {
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = args, ApplicationName = typeof(BrokerHost).Assembly.GetName().Name, ContentRootPath = AppContext.BaseDirectory });
        builder.Configuration.AddInMemoryCollection(overrides);
        builder.Configuration.AddInMemoryCollection([new("Broker:Role", role)]);
        // The slim builder leaves out HTTPS configuration from Kestrel:Endpoints; TLS between Dovecot and Broker needs it.
        builder.WebHost.UseKestrelHttpsConfiguration();
        builder.WebHost.UseUrls(options.Urls.TryGetValue(role, out var url) ? url : throw new InvalidOperationException($"Broker:Urls:{role} is not set."));
        builder.Services.Configure<Microsoft.AspNetCore.Server.Kestrel.Core.KestrelServerOptions>(k =>
        {
            k.AddServerHeader = false;
            k.Limits.MaxRequestHeadersTotalSize = 16 * 1024;
        });
        if (role != "gateway" && roles.Contains("gateway"))
        {
            // Kestrel's own settings (Kestrel:Endpoints, e.g. HTTPS for Dovecot) are the front door's,
            // the gateway's: the roles behind it keep their Broker:Urls instead of all trying to bind
            // the same endpoint.
            builder.WebHost.ConfigureKestrel(k => k.Configure(new ConfigurationBuilder().Build(), reloadOnChange: false));
        }

        switch (role)
        {
            case "gateway":
                builder.Services.AddBrokerGateway();
                break;
            case "validation":
                builder.Services.AddBrokerValidation();
                break;
            case "portal":
                builder.Services.AddBrokerPortal();
                // The portal owns the database: it stores the mail side's audit events and sends notifications.
                builder.Services.AddBrokerAuditAndNotifications();
                // Revocations in the portal end open IMAP sessions too.
                builder.Services.AddBrokerDoveadmKick();
                builder.Services.TryAddEnumerable(ServiceDescriptor.Singleton<Broker.Core.Audit.IAuditSink, Broker.Portal.Activity.MailAuditSink>());
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
            case "portal":
                app.MapBrokerPortal();
                break;
        }

        return app;
    }
}
