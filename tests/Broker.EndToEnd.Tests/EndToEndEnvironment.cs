using System.Net.Http.Json;
using Broker.Core;
using Broker.Gateway;
using Broker.Portal;
using Broker.Portal.Accounts;
using Broker.Testing;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Playwright;

namespace Broker.EndToEnd.Tests;

/// <summary>
/// The whole system as a person meets it: real redis-server, validation, portal and the YARP gateway
/// in front, each on real Kestrel; Debian chromium driven by Playwright with a CDP virtual
/// authenticator. The browser talks to http://localhost:PORT (the gateway), the origin passkeys are bound to.
/// A test country database (<see cref="TestMmdbWriter.Standard"/>) is configured, so country limits can be set.
/// </summary>
public sealed class EndToEndEnvironment : IAsyncDisposable
{
    // Flags verified on this machine (shared/notes/dotnet-stack.md): no sandbox in containers, no network besides loopback.
    private static readonly string[] ChromiumArgs = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"];

    private readonly List<IAsyncDisposable> _owned = [];

    public required string Origin { get; init; }

    public required RunningApp Portal { get; init; }

    public required CapturingLoggerProvider PortalLogs { get; init; }

    public required IBrowser Browser { get; init; }

    public required IPlaywright Playwright { get; init; }

    /// <summary>The address <see cref="ValidateThroughGatewayAsync"/> logs in from unless told otherwise; the test country database places it in no country.</summary>
    public const string DefaultRemoteIp = "203.0.113.5";

    public static async Task<EndToEndEnvironment> StartAsync(IDictionary<string, string?>? extra = null)
    {
        var redis = await RedisServer.StartAsync();
        // The validation and portal apps share this configuration: the portal offers the
        // allowed-countries field, and the validation API judges logins by the same file.
        var countries = TestCountryDatabase.Create();
        var dataDir = Path.Combine(Path.GetTempPath(), "broker-e2e-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(dataDir);
        var gatewayPort = FreePort.Get();
        var origin = $"http://localhost:{gatewayPort}";
        var config = BrokerApps.BaseConfig(redis.Configuration);
        config["Broker:DataDirectory"] = dataDir;
        config["Broker:Portal:PublicOrigin"] = origin;
        config["Broker:Portal:Mail:ImapHost"] = "imap.example.org";
        config["Broker:Portal:Mail:SmtpHost"] = "smtp.example.org";
        config["Broker:Portal:Mail:Domain"] = "example.org";
        config["Logging:LogLevel:Broker"] = "Information";
        config["Broker:GeoIp:CountryDatabase"] = countries.Path;
        foreach (var (k, v) in extra ?? new Dictionary<string, string?>())
        {
            config[k] = v;
        }


        var validation = await BrokerApps.StartValidationAsync(config);
        var logs = new CapturingLoggerProvider();
        // As Broker.Host composes the portal role: it also stores the mail side's audit events, so
        // refused mail logins show on the activity pages.
        var portal = await BrokerApps.StartAsync(config, s =>
        {
            s.AddBrokerPortal();
            s.AddBrokerAuditAndNotifications();
            s.TryAddEnumerable(ServiceDescriptor.Singleton<Broker.Core.Audit.IAuditSink, Broker.Portal.Activity.MailAuditSink>());
        }, app => app.MapBrokerPortal(), logs);
        var gatewayConfig = new Dictionary<string, string?>(config)
        {
            ["Broker:Gateway:ValidationDestinations:local"] = validation.Address.ToString(),
            ["Broker:Gateway:PortalDestinations:local"] = portal.Address.ToString(),
        };
        var gateway = await StartOnAsync($"http://localhost:{gatewayPort}", gatewayConfig, s => s.AddBrokerGateway(), app => app.MapBrokerGateway());

        var playwright = await Microsoft.Playwright.Playwright.CreateAsync();
        var browser = await playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = File.Exists("/usr/bin/chromium") ? "/usr/bin/chromium" : Tool.Find("chromium"),
            Headless = true,
            Args = ChromiumArgs,
        });
        var env = new EndToEndEnvironment { Origin = origin, Portal = portal, Browser = browser, Playwright = playwright, PortalLogs = logs };
        env._owned.AddRange([gateway, portal, validation, redis]);
        env._dataDir = dataDir;
        env._countries = countries;
        return env;
    }

    private string? _dataDir;

    private TestCountryDatabase? _countries;

    /// <summary>A fresh browser context with a virtual platform authenticator (resident keys, user verification).</summary>
    public async Task<IPage> NewPageWithAuthenticatorAsync()
    {
        var context = await Browser.NewContextAsync(new BrowserNewContextOptions { ViewportSize = new ViewportSize { Width = 1100, Height = 800 } });
        var page = await context.NewPageAsync();
        var cdp = await context.NewCDPSessionAsync(page);
        await cdp.SendAsync("WebAuthn.enable");
        await cdp.SendAsync("WebAuthn.addVirtualAuthenticator", new Dictionary<string, object>
        {
            ["options"] = new Dictionary<string, object>
            {
                ["protocol"] = "ctap2",
                ["transport"] = "internal",
                ["hasResidentKey"] = true,
                ["hasUserVerification"] = true,
                ["isUserVerified"] = true,
                ["automaticPresenceSimulation"] = true,
            },
        });
        return page;
    }

    /// <summary>The CLI path: a new account and its one-time enrollment link.</summary>
    public async Task<string> CreateUserAsync(string username, bool admin = false)
    {
        var (_, link, _) = await PortalCommands.CreateUserAsync(Portal.Services, username, admin, CancellationToken.None);
        Assert.StartsWith(Origin, link, StringComparison.Ordinal);
        return link;
    }

    /// <summary>
    /// What a mail server does: POST /v1/validate on the gateway with its API key, for a client at
    /// <paramref name="remoteIp"/>. In the test country database 81.2.69.0/24 is GB, 5.9.0.0/16 DE
    /// (5.9.100.0/24 FR), 89.160.20.0/24 SE and 216.160.83.0/24 US; private ranges are never in a country.
    /// </summary>
    public async Task<(int Status, string Body)> ValidateThroughGatewayAsync(string username, string password, string service, string remoteIp = DefaultRemoteIp)
    {
        using var http = new HttpClient { BaseAddress = new Uri(Origin) };
        http.DefaultRequestHeaders.Add(Broker.Core.Callers.CallerKeyOptions.HeaderName, BrokerApps.CallerKey);
        using var response = await http.PostAsJsonAsync("/v1/validate", new { username, password, service, remoteIp });
        return ((int)response.StatusCode, await response.Content.ReadAsStringAsync());
    }

    /// <summary>
    /// Waits until the page shows a URL matching the glob (<c>**</c> = anything). Polls the URL rather
    /// than waiting for navigation lifecycle events: after a script-driven form.submit() and a
    /// redirect, Playwright's WaitForURL sometimes missed the load event on this shared machine
    /// although the page was there. The Locator/Expect calls that follow wait for their elements.
    /// </summary>
    public static Task ArrivedAsync(IPage page, string urlGlob)
    {
        var pattern = "^" + System.Text.RegularExpressions.Regex.Escape(urlGlob).Replace(@"\*\*", ".*", StringComparison.Ordinal) + "$";
        return Assertions.Expect(page).ToHaveURLAsync(new System.Text.RegularExpressions.Regex(pattern), new PageAssertionsToHaveURLOptions { Timeout = 60_000 });
    }

    /// <summary>The authenticator the TOTP setup page offers, read from its displayed key as a user's app would.</summary>
    public static async Task<OtpNet.Totp> TotpFromSetupPageAsync(IPage page)
    {
        var key = (await page.Locator("#totp-key").TextContentAsync())!.Replace(" ", string.Empty, StringComparison.Ordinal);
        return new OtpNet.Totp(OtpNet.Base32Encoding.ToBytes(key));
    }

    /// <summary>Set to 1 to refresh the user guide's images in docs/images from this run.</summary>
    public const string UpdateDocImagesVariable = "BROKER_UPDATE_DOC_IMAGES";

    /// <summary>
    /// Saves a full-page screenshot under artifacts/screenshots (ignored by git). It is copied to
    /// docs/images only when BROKER_UPDATE_DOC_IMAGES=1, so that an ordinary run (CI) leaves the tree clean.
    /// </summary>
    public static async Task ScreenshotAsync(IPage page, string name)
    {
        var root = RepoRoot();
        var artifact = Path.Combine(root, "artifacts", "screenshots", name + ".png");
        Directory.CreateDirectory(Path.GetDirectoryName(artifact)!);
        await page.ScreenshotAsync(new PageScreenshotOptions { Path = artifact, FullPage = true });
        if (Environment.GetEnvironmentVariable(UpdateDocImagesVariable) != "1")
        {
            return;
        }

        var docs = Path.Combine(root, "docs", "images");
        Directory.CreateDirectory(docs);
        File.Copy(artifact, Path.Combine(docs, name + ".png"), overwrite: true);
    }

    private static string RepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Broker.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException("Broker.sln not found above " + AppContext.BaseDirectory);
    }

    private static async Task<RunningApp> StartOnAsync(string url, IDictionary<string, string?> config, Action<IServiceCollection> services, Action<WebApplication> map)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Configuration.AddInMemoryCollection(config);
        builder.WebHost.UseUrls(url);
        services(builder.Services);
        var app = builder.Build();
        map(app);
        await app.StartAsync();
        return new RunningApp(app, new Uri(url));
    }

    public async ValueTask DisposeAsync()
    {
        await Browser.DisposeAsync();
        Playwright.Dispose();
        foreach (var owned in _owned)
        {
            await owned.DisposeAsync();
        }

        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        _countries?.Dispose();
        if (_dataDir is not null)
        {
            try
            {
                Directory.Delete(_dataDir, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }
}
