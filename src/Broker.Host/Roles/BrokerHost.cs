using System.Runtime.InteropServices;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting.Systemd;
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
            return 3;
        }

        // Checked before anything starts: Kestrel would take an empty URL for its default
        // (localhost:5000) and stop on a bad one with a stack trace.
        foreach (var role in roles)
        {
            if (ListenUrlProblem(options, role) is { } problem)
            {
                await Console.Error.WriteLineAsync($"error: {problem}");
                return 3;
            }
        }

        // A gateway alone holds no credentials; every other role needs the store.
        var needsStore = roles.Any(r => r != "gateway");
        var embeddedStore = needsStore && string.IsNullOrWhiteSpace(config["Redis:Configuration"]);
        if (embeddedStore && options.EmbeddedRedisPort is < 1 or > 65535)
        {
            await Console.Error.WriteLineAsync($"error: Broker:EmbeddedRedisPort must be a port from 1 to 65535; got {options.EmbeddedRedisPort}.");
            return 3;
        }

        // The embedded store's AOF and pepper, and the portal's SQLite database and keys, default to
        // the data directory: made private here, before Garnet or the portal make it with the umask's mode.
        // A portal given its database and keys elsewhere (production) leaves no empty directory behind.
        if (embeddedStore || (roles.Contains("portal") && PortalUsesDataDirectory(config)))
        {
            try
            {
                var was = options.CreateDataDirectory();
                if (was is { } mode)
                {
                    Console.WriteLine($"data directory {Path.GetFullPath(options.DataDirectory)} (Broker:DataDirectory) was open to other users (mode {BrokerHostOptions.Octal(mode)}): made it private (0700)");
                }
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                await Console.Error.WriteLineAsync($"error: {DataDirectoryProblem(options, ex)}");
                return 3;
            }
        }

        var overrides = new Dictionary<string, string?>();
        EmbeddedGarnet? started;
        try
        {
            started = embeddedStore ? StartEmbeddedStore(config, options, overrides) : null;
        }
        catch (Exception ex) when (EmbeddedStoreFailure(ex, options) is { } message)
        {
            await Console.Error.WriteLineAsync($"error: {message}");
            return 3;
        }

        using var embedded = started;
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
        var starting = string.Empty;
        try
        {
            // The gateway last, and built last too: YARP starts its active health probes as soon as
            // its routes are mapped, and they should find the other roles already listening.
            foreach (var role in BrokerHostOptions.KnownRoles.Where(roles.Contains).OrderBy(r => r == "gateway"))
            {
                starting = role;
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
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            return 130;
        }
        catch (Exception ex)
        {
            // Never an unhandled exception (exit 134 and a stack trace): what failed, and the setting to look at.
            var (message, code) = StartFailure(ex, starting);
            await Console.Error.WriteLineAsync($"error: {message}");
            if (code == 70)
            {
                // Not foreseen: the stack trace, which the host no longer logs (StartFailureLogFilter), belongs in the bug report.
                await Console.Error.WriteLineAsync(ex.ToString());
            }

            return code;
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

        // A gateway alone uses no store: naming one would send an operator looking for a Redis
        // setting it does not read.
        Console.WriteLine(embedded is not null
            ? $"credential store: embedded Garnet on {embedded.Endpoint}, data in {Path.GetFullPath(options.DataDirectory)}"
            : needsStore ? "credential store: external Redis (Redis:Configuration)" : "credential store: none (the gateway role needs none)");

        // Under a Type=notify unit (infra/systemd) systemd counts the service as started only now that
        // every role listens: a unit ordered after it (the gateway after the roles behind it) starts
        // against roles that answer. Outside systemd (no NOTIFY_SOCKET) this does nothing.
        var systemd = new SystemdNotifier();
        if (systemd.IsEnabled)
        {
            systemd.Notify(ServiceState.Ready);
        }

        // Each role's console lifetime hears SIGTERM; the first role told to stop (or Ctrl+C) stops them all.
        // A role may also stop by itself (a background service that failed stops its host): that is
        // a crash, and the exit code must say so, or a supervisor restarting on failure would not.
        var signalled = false;
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, _ => signalled = true);
        using var sigquit = PosixSignalRegistration.Create(PosixSignal.SIGQUIT, _ => signalled = true);
        var stopping = new TaskCompletionSource<string?>(TaskCreationOptions.RunContinuationsAsynchronously);
        string? stoppedBy;
        await using (ct.Register(() => stopping.TrySetResult(null)))
        {
            foreach (var app in apps)
            {
                var role = app.Configuration["Broker:Role"];
                app.Lifetime.ApplicationStopping.Register(() => stopping.TrySetResult(role));
            }

            stoppedBy = await stopping.Task;
        }

        if (systemd.IsEnabled)
        {
            systemd.Notify(ServiceState.Stopping);
        }

        // In the reverse of the start order, so the gateway first: it stops taking connections and
        // finishes the requests it holds while the roles behind it still answer them. Stopped all at
        // once, a request or health probe the gateway sent in that moment failed (a 502 to the mail
        // server, a warning with a stack trace in the log).
        for (var i = apps.Count - 1; i >= 0; i--)
        {
            await apps[i].StopAsync(CancellationToken.None);
            await apps[i].DisposeAsync();
        }

        var (exitCode, error) = AfterStop(stoppedBy, signalled, ct.IsCancellationRequested);
        if (error is not null)
        {
            await Console.Error.WriteLineAsync($"error: {error}");
        }

        return exitCode;
    }

    /// <summary>
    /// The exit code once every role has stopped: 0 when the process was told to stop (a signal,
    /// Ctrl+C), 70 with a message when a role stopped by itself, which is a crash.
    /// </summary>
    internal static (int Code, string? Error) AfterStop(string? stoppedBy, bool signalled, bool interrupted) =>
        signalled || interrupted || stoppedBy is null
            ? (0, null)
            : (70, $"the {stoppedBy} role stopped by itself (see the log above); the other roles were stopped too");

    /// <summary>Starts Garnet (no Redis is configured) and puts the settings every role needs to use it into <paramref name="overrides"/>.</summary>
    private static EmbeddedGarnet StartEmbeddedStore(IConfiguration config, BrokerHostOptions options, Dictionary<string, string?> overrides)
    {
        var garnet = EmbeddedGarnet.Start(options.DataDirectory, options.EmbeddedRedisPort);
        overrides["Redis:Configuration"] = garnet.Endpoint;
        AddEmbeddedSecrets(config, options, overrides);
        return garnet;
    }

    private static bool PortalUsesDataDirectory(IConfiguration config)
    {
        var portal = config.GetSection("Broker:Portal");
        var defaultDatabase = portal["DatabaseProvider"] != "Postgres" && string.IsNullOrWhiteSpace(portal["ConnectionString"]);
        return defaultDatabase || string.IsNullOrWhiteSpace(portal["KeysDirectory"]);
    }

    private static string DataDirectoryProblem(BrokerHostOptions options, Exception ex) =>
        $"cannot use the data directory {Path.GetFullPath(options.DataDirectory)} (Broker:DataDirectory): {ex.Message}";

    /// <summary>Why a role's listen URL cannot be used, naming the setting; null when it can.</summary>
    internal static string? ListenUrlProblem(BrokerHostOptions options, string role)
    {
        if (!options.Urls.TryGetValue(role, out var url) || string.IsNullOrWhiteSpace(url))
        {
            return $"Broker:Urls:{role} is not set (e.g. http://127.0.0.1:5080).";
        }

        try
        {
            // Kestrel's own parser, so that whatever Kestrel accepts (http://*:5080, http://unix:/run/broker.sock) is accepted here.
            var address = BindingAddress.Parse(url);
            if (address.IsUnixPipe || address.Port is >= 0 and <= 65535)
            {
                return null;
            }
        }
        catch (FormatException)
        {
        }

        return $"Broker:Urls:{role} is not a listen URL such as http://127.0.0.1:5080; got '{url}'.";
    }

    /// <summary>What to tell the operator when the embedded store cannot start; null for a failure not foreseen.</summary>
    private static string? EmbeddedStoreFailure(Exception ex, BrokerHostOptions options) => ex switch
    {
        IOException or UnauthorizedAccessException => DataDirectoryProblem(options, ex),
        Garnet.common.GarnetException { InnerException: System.Net.Sockets.SocketException socket } =>
            $"the embedded Garnet cannot listen on 127.0.0.1:{options.EmbeddedRedisPort} (Broker:EmbeddedRedisPort): {socket.SocketErrorCode}. "
            + "Is another broker using this port? Stop it, or choose another port (the CLI needs the same setting), or set Redis:Configuration.",
        _ => null,
    };

    /// <summary>A role that did not start: the message, naming the setting when it is known, and the exit code.</summary>
    internal static (string Message, int ExitCode) StartFailure(Exception ex, string role) => ex switch
    {
        // Kestrel: the port is taken, or not ours to bind (below 1024 without the capability).
        IOException { InnerException: not null } when ex.Message.StartsWith("Failed to bind to address", StringComparison.Ordinal) =>
            ($"the {role} role cannot listen: {ex.Message.TrimEnd('.')} (Broker:Urls:{role}{(role == "gateway" ? " or Kestrel:Endpoints" : string.Empty)}). Is another broker running with the same settings?", 3),
        _ when Cli.CliCommands.IsDatabaseFailure(ex) =>
            ($"the {role} role cannot use the portal database (Broker:Portal:DatabaseProvider, Broker:Portal:ConnectionString, Broker:DataDirectory): {Cli.CliCommands.DatabaseMessage(ex)}", 4),
        IOException or UnauthorizedAccessException =>
            ($"the {role} role cannot start: {ex.Message} (check Broker:DataDirectory and the paths under Broker:Portal and Broker:Pepper)", 3),
        _ => ($"the {role} role cannot start: unexpected {ex.GetType().Name}: {ex.Message} (this is a bug in broker; please report it)", 70),
    };

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
        StartFailureLogFilter.Install(builder.Services);
        if (!string.IsNullOrEmpty(Environment.GetEnvironmentVariable("JOURNAL_STREAM")))
        {
            // Output to the journal (systemd sets JOURNAL_STREAM then): one line per entry, led by its
            // syslog level (<6>, <4>, <3>), which journald turns into the entry's priority. The default
            // format's "warn:" on a line of its own reached the journal as two lines, both at info level,
            // so journalctl -p warning found nothing.
            builder.Logging.AddSystemdConsole();
        }

        // The slim builder leaves out HTTPS configuration from Kestrel:Endpoints; TLS between Dovecot and Broker needs it.
        builder.WebHost.UseKestrelHttpsConfiguration();
        builder.WebHost.UseUrls(options.Urls[role]);
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
