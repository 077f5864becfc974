using System.Security.Claims;
using Broker.Core;
using Broker.Core.Hosting;
using Broker.Core.Notifications;
using Broker.Portal.Accounts;
using Broker.Portal.Activity;
using Broker.Portal.Data;
using Broker.Portal.Health;
using Broker.Portal.MailClients;
using Broker.Portal.Security;
using Broker.Portal.Totp;
using Microsoft.AspNetCore.Authentication.Cookies;
using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Identity;
using Microsoft.AspNetCore.Mvc.ApplicationParts;
using Microsoft.AspNetCore.Routing;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.FileProviders;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Broker.Portal;

public static class BrokerPortalExtensions
{
    public const string SessionPolicy = "Broker.Session";
    public const string MfaPolicy = "Broker.Mfa";
    public const string AdminPolicy = "Broker.Admin";

    /// <summary>
    /// The identity portal: accounts (ASP.NET Core Identity on EF Core), passkeys, TOTP, recovery
    /// codes, app password management on top of <c>AddBrokerCore()</c>, and the admin pages.
    /// </summary>
    public static IServiceCollection AddBrokerPortal(this IServiceCollection services)
    {
        services.AddBrokerCore();
        services.AddBrokerTrustedProxies();
        services.AddHttpContextAccessor();
        services.AddHealthChecks().AddCheck<PortalDatabaseHealthCheck>("database", tags: [HealthEndpoints.ReadyTag]);
        // EF Core logs every SQL command at Information; that is noise in a server log and on the CLI.
        services.AddLogging(l => l.AddFilter("Microsoft.EntityFrameworkCore", LogLevel.Warning));
        services.AddOptions<PortalOptions>().BindConfiguration(PortalOptions.SectionName).ValidateDataAnnotations().ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<PortalOptions>, PortalOptionsValidator>());

        // One context type per provider, each with its own migrations; the configured one is the
        // PortalDbContext that Identity and everything else use.
        services.AddDbContext<SqlitePortalDbContext>((sp, db) =>
        {
            var o = sp.GetRequiredService<IOptions<PortalOptions>>().Value;
            db.UseSqlite(string.IsNullOrWhiteSpace(o.ConnectionString) ? $"Data Source={Path.Combine(DataDirectory(sp), "portal.db")}" : o.ConnectionString);
        });
        services.AddDbContext<PostgresPortalDbContext>((sp, db) => db.UseNpgsql(sp.GetRequiredService<IOptions<PortalOptions>>().Value.ConnectionString));
        services.AddScoped<PortalDbContext>(sp => sp.GetRequiredService<IOptions<PortalOptions>>().Value.DatabaseProvider == "Postgres"
            ? sp.GetRequiredService<PostgresPortalDbContext>()
            : sp.GetRequiredService<SqlitePortalDbContext>());

        services.AddIdentity<PortalUser, IdentityRole>(o =>
            {
                o.Stores.SchemaVersion = PortalDbContext.IdentitySchema;
                o.User.AllowedUserNameCharacters = string.Empty; // Usernames are normalised by Broker.Core's Username rule instead.
                o.User.RequireUniqueEmail = false;
                o.SignIn.RequireConfirmedAccount = false;
            })
            .AddEntityFrameworkStores<PortalDbContext>()
            .AddClaimsPrincipalFactory<PortalClaimsFactory>();
        services.TryAddScoped<IPasskeyHandler<PortalUser>, PasskeyHandler<PortalUser>>();

        services.AddOptions<IdentityOptions>().Configure<IOptions<PortalOptions>>((o, portal) =>
        {
            var p = portal.Value;
            // Length over composition rules (NIST SP 800-63B).
            o.Password.RequiredLength = p.MinimumPasswordLength;
            o.Password.RequireDigit = false;
            o.Password.RequireLowercase = false;
            o.Password.RequireUppercase = false;
            o.Password.RequireNonAlphanumeric = false;
            o.Password.RequiredUniqueChars = 4;
            o.Lockout.AllowedForNewUsers = true;
            o.Lockout.MaxFailedAccessAttempts = p.MaxFailedAttempts;
            o.Lockout.DefaultLockoutTimeSpan = p.LockoutDuration;
        });
        services.AddOptions<IdentityPasskeyOptions>().Configure<IOptions<PortalOptions>>((o, portal) =>
        {
            var origin = portal.Value.PublicOriginUri;
            var expected = origin.GetLeftPart(UriPartial.Authority);
            o.ServerDomain = origin.Host;
            o.UserVerificationRequirement = "required";
            o.ResidentKeyRequirement = "required";
            // The portal usually sits behind the gateway, so the request's own Host is not the origin the
            // browser used; only the configured public origin is accepted, never a cross-origin frame.
            o.ValidateOrigin = ctx => ValueTask.FromResult(!ctx.CrossOrigin && string.Equals(ctx.Origin, expected, StringComparison.Ordinal));
        });

        services.AddAuthentication().AddCookie(PortalSignIn.PendingScheme, o =>
        {
            o.Cookie.Name = "broker.pending";
            o.ExpireTimeSpan = TimeSpan.FromMinutes(5);
            o.SlidingExpiration = false;
        });
        services.ConfigureApplicationCookie(o =>
        {
            o.Cookie.Name = "broker.session";
            o.LoginPath = "/Account/Login";
            o.LogoutPath = "/Account/Logout";
            o.AccessDeniedPath = "/Account/Denied";
            o.SlidingExpiration = true;
        });
        services.AddOptions<CookieAuthenticationOptions>(IdentityConstants.ApplicationScheme)
            .Configure<IOptions<PortalOptions>>((o, portal) => o.ExpireTimeSpan = portal.Value.SessionLifetime);
        services.ConfigureAll<CookieAuthenticationOptions>(o => o.Cookie.HttpOnly = true);
        services.AddSingleton<IPostConfigureOptions<CookieAuthenticationOptions>, SecureCookiePostConfigure>();
        services.Configure<SecurityStampValidatorOptions>(o =>
        {
            // Short, so that "sign out everywhere", disable and factor reset end other sessions quickly.
            o.ValidationInterval = TimeSpan.FromMinutes(1);
            o.OnRefreshingPrincipal = ctx =>
            {
                var keep = ctx.CurrentPrincipal?.Claims.Where(PortalClaims.IsSessionClaim).ToList() ?? [];
                ctx.NewPrincipal?.Identities.First().AddClaims(keep.Select(c => new Claim(c.Type, c.Value)));
                return Task.CompletedTask;
            };
        });
        services.AddAntiforgery(o =>
        {
            o.Cookie.Name = "broker.af";
            o.HeaderName = "X-CSRF-TOKEN";
        });
        services.AddSingleton<IPostConfigureOptions<Microsoft.AspNetCore.Antiforgery.AntiforgeryOptions>, SecureCookiePostConfigure>();

        services.AddAuthorizationBuilder()
            .AddPolicy(SessionPolicy, p => p.RequireAuthenticatedUser())
            .AddPolicy(MfaPolicy, p => p.RequireAuthenticatedUser().RequireClaim(PortalClaims.Mfa, "1"))
            .AddPolicy(AdminPolicy, p => p.RequireAuthenticatedUser().RequireClaim(PortalClaims.Mfa, "1").RequireClaim(PortalClaims.Admin, "1"));

        services.AddRazorPages(o =>
        {
            o.Conventions.AuthorizeFolder("/AppPasswords", MfaPolicy);
            o.Conventions.AuthorizeFolder("/Security", SessionPolicy);
            o.Conventions.AuthorizeFolder("/Admin", AdminPolicy);
            o.Conventions.AllowAnonymousToFolder("/Account");
        }).ConfigureApplicationPartManager(m =>
        {
            // The host's entry assembly may or may not pull this assembly in by discovery; add it once.
            var assembly = typeof(BrokerPortalExtensions).Assembly;
            if (!m.ApplicationParts.OfType<AssemblyPart>().Any(p => p.Assembly == assembly))
            {
                m.ApplicationParts.Add(new CompiledRazorAssemblyPart(assembly));
            }
        });

        services.AddDataProtection().SetApplicationName("broker-portal");
        services.AddOptions<Microsoft.AspNetCore.DataProtection.KeyManagement.KeyManagementOptions>().Configure<IServiceProvider>((o, sp) =>
        {
            // Read from configuration, not IOptions<PortalOptions>: MapRazorPages already builds data protection,
            // and resolving the options there would throw their validation errors before the host's start-up
            // check, which reports them as "error: <setting> …" and exit code 3.
            var dir = sp.GetRequiredService<IConfiguration>()[$"{PortalOptions.SectionName}:KeysDirectory"] ?? Path.Combine(DataDirectory(sp), "portal-keys");
            Directory.CreateDirectory(dir);
            o.XmlRepository = new Microsoft.AspNetCore.DataProtection.Repositories.FileSystemXmlRepository(new DirectoryInfo(dir), Microsoft.Extensions.Logging.Abstractions.NullLoggerFactory.Instance);
        });

        services.AddRateLimiter(o =>
        {
            o.RejectionStatusCode = StatusCodes.Status429TooManyRequests;
            o.GlobalLimiter = System.Threading.RateLimiting.PartitionedRateLimiter.Create<HttpContext, string>(ctx =>
            {
                if (!HttpMethods.IsPost(ctx.Request.Method) || !ctx.Request.Path.StartsWithSegments("/Account", StringComparison.OrdinalIgnoreCase))
                {
                    return System.Threading.RateLimiting.RateLimitPartition.GetNoLimiter(string.Empty);
                }

                var permits = ctx.RequestServices.GetRequiredService<IOptions<PortalOptions>>().Value.SignInPostsPerMinute;
                // The client address after X-Forwarded-For from trusted proxies (the gateway), not the
                // gateway's; an IPv6 client as its /64, as the gateway counts, since one host usually
                // owns a whole /64 and would otherwise get a fresh allowance from each address in it.
                return System.Threading.RateLimiting.RateLimitPartition.GetFixedWindowLimiter(
                    Broker.Core.Throttling.SourceNetwork.RateLimitKey(ctx.Connection.RemoteIpAddress),
                    _ => new System.Threading.RateLimiting.FixedWindowRateLimiterOptions { PermitLimit = permits, Window = TimeSpan.FromMinutes(1), QueueLimit = 0 });
            });
        });

        services.TryAddScoped<PortalSignIn>();
        services.TryAddScoped<SignInAttempts>();
        services.TryAddScoped<TotpService>();
        services.TryAddScoped<RecoveryCodeService>();
        services.TryAddScoped<SecurityLog>();
        services.TryAddScoped<AccountService>();
        services.TryAddSingleton<PortalPolicy>();
        services.TryAddSingleton<MailClientProfiles>();
        // Self-registration mails enrollment links through the notifier; the host's portal role adds
        // the rest of notifications (audit pump, expiry reminders, validation of Broker:Notifications).
        services.AddOptions<NotificationOptions>().BindConfiguration(NotificationOptions.SectionName);
        services.TryAddSingleton<MailNotifier>();
        services.TryAddSingleton<SelfRegistrationRequests>();
        services.TryAddScoped<SelfRegistrationService>();
        services.TryAddScoped<UnfinishedAccountSweep>();
        services.AddHostedService<PortalDatabaseInitializer>();
        services.AddHostedService<SelfRegistrationWorker>();
        services.AddHostedService<UnfinishedAccountSweeper>();
        return services;
    }

    /// <summary>Maps the portal pages, assets, autoconfig files and health endpoints.</summary>
    public static WebApplication MapBrokerPortal(this WebApplication app)
    {
        app.UseForwardedHeaders();
        app.UseBrokerSecurityHeaders();
        app.UseExceptionHandler("/Error");
        app.UseStatusCodePagesWithReExecute("/Error", "?code={0}");
        app.UseStaticFiles(new StaticFileOptions
        {
            FileProvider = new EmbeddedFileProvider(typeof(BrokerPortalExtensions).Assembly, "Broker.Portal.Assets"),
            RequestPath = "/assets",
        });
        app.UseRouting();
        app.UseRateLimiter();
        app.UseAuthentication();
        app.UseAuthorization();
        app.MapRazorPages();
        app.MapMailClientEndpoints();
        app.MapBrokerHealth();
        return app;
    }

    /// <summary>The data directory the host uses (<c>Broker:DataDirectory</c>, default <c>data</c>).</summary>
    private static string DataDirectory(IServiceProvider sp)
    {
        var dir = Path.GetFullPath(sp.GetRequiredService<IConfiguration>()["Broker:DataDirectory"] ?? "data");
        Directory.CreateDirectory(dir);
        return dir;
    }
}
