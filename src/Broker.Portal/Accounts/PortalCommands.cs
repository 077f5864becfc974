using Broker.Portal.Data;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Broker.Portal.Accounts;

/// <summary>Portal administration for the <c>broker</c> command line (outside any web request).</summary>
public static class PortalCommands
{
    /// <summary>Creates a portal account (migrating the schema first, as the portal does) and returns its enrollment link.</summary>
    public static async Task<(string Username, string Link, DateTimeOffset Expires)> CreateUserAsync(IServiceProvider services, string username, bool isAdmin, CancellationToken ct)
    {
        await using var scope = services.CreateAsyncScope();
        await PrepareAsync(scope.ServiceProvider, ct);
        var (user, link) = await scope.ServiceProvider.GetRequiredService<AccountService>().CreateAsync(username, isAdmin, actor: "cli");
        return (user.UserName!, link, user.EnrollmentExpires!.Value);
    }

    /// <summary>Issues a fresh enrollment link for an existing account (e.g. a forgotten password).</summary>
    public static async Task<string?> NewEnrollmentLinkAsync(IServiceProvider services, string username, CancellationToken ct)
    {
        await using var scope = services.CreateAsyncScope();
        var db = await PrepareAsync(scope.ServiceProvider, ct);
        Broker.Core.Users.Username.TryNormalize(username, out var normalized);
        var user = await db.Users.FirstOrDefaultAsync(u => u.UserName == normalized, ct);
        return user is null ? null : await scope.ServiceProvider.GetRequiredService<AccountService>().NewEnrollmentLinkAsync(user, "cli");
    }

    /// <summary>
    /// Disables or enables the portal account of <paramref name="username"/>, if there is one (the
    /// credential store side is done by the caller). Returns false when there is no portal account.
    /// </summary>
    public static async Task<bool> SetPortalDisabledAsync(IServiceProvider services, string username, bool disabled, CancellationToken ct)
    {
        await using var scope = services.CreateAsyncScope();
        var db = await PrepareAsync(scope.ServiceProvider, ct);
        Broker.Core.Users.Username.TryNormalize(username, out var normalized);
        var user = await db.Users.FirstOrDefaultAsync(u => u.UserName == normalized, ct);
        if (user is null)
        {
            return false;
        }

        var accounts = scope.ServiceProvider.GetRequiredService<AccountService>();
        if (disabled)
        {
            await accounts.DisableAsync(user, "cli");
        }
        else
        {
            await accounts.EnableAsync(user, "cli");
        }

        return true;
    }

    /// <summary>
    /// The same schema step as the portal's start-up (migrations, or the baseline of a database
    /// from before them), so the command line works on a database the portal never opened.
    /// </summary>
    private static async Task<PortalDbContext> PrepareAsync(IServiceProvider services, CancellationToken ct)
    {
        var db = services.GetRequiredService<PortalDbContext>();
        await PortalDatabaseInitializer.MigrateAsync(db, services.GetRequiredService<ILoggerFactory>().CreateLogger("Broker.Portal.Commands"), ct);
        return db;
    }
}
