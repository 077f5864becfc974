using Broker.Portal.Accounts;
using Microsoft.AspNetCore.Identity;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Broker.Portal.Data;

/// <summary>
/// Creates the schema on a fresh database and, when there is no account at all, creates the first
/// administrator and prints its one-time enrollment link (to the console, never to the log).
/// </summary>
internal sealed partial class PortalDatabaseInitializer(IServiceProvider services, IOptions<PortalOptions> options, ILogger<PortalDatabaseInitializer> logger) : IHostedService
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        await using var scope = services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<PortalDbContext>();
        // EnsureCreated rather than migrations: the schema is created whole on a fresh database
        // (SQLite or PostgreSQL) and nothing needs the migrations toolchain at run time.
        if (await db.Database.EnsureCreatedAsync(cancellationToken))
        {
            Log.SchemaCreated(logger, db.Database.ProviderName ?? "?");
        }

        await MakeSecurityEventsAppendOnlyAsync(db, cancellationToken);

        var users = scope.ServiceProvider.GetRequiredService<UserManager<PortalUser>>();
        if (await users.Users.AnyAsync(cancellationToken))
        {
            return;
        }

        var accounts = scope.ServiceProvider.GetRequiredService<AccountService>();
        var (_, link) = await accounts.CreateAsync(options.Value.FirstAdmin, isAdmin: true, actor: "first run");
        Console.WriteLine($"first run: create the first administrator ('{options.Value.FirstAdmin}') with this one-time link: {link}");
        Log.FirstAdminCreated(logger, options.Value.FirstAdmin);
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>
    /// The audit trail is append-only in the database itself, not only by convention in code: on
    /// SQLite, triggers abort any UPDATE or DELETE of a security event (also from a SQL shell or a
    /// bug elsewhere). Idempotent, so databases created before the triggers existed get them too.
    /// </summary>
    internal static async Task MakeSecurityEventsAppendOnlyAsync(PortalDbContext db, CancellationToken ct)
    {
        if (db.Database.ProviderName != "Microsoft.EntityFrameworkCore.Sqlite")
        {
            return;
        }

        await db.Database.ExecuteSqlRawAsync(
            """
            CREATE TRIGGER IF NOT EXISTS "SecurityEvents_NoUpdate" BEFORE UPDATE ON "SecurityEvents"
            BEGIN SELECT RAISE(ABORT, 'security events are append-only'); END;
            """,
            ct);
        await db.Database.ExecuteSqlRawAsync(
            """
            CREATE TRIGGER IF NOT EXISTS "SecurityEvents_NoDelete" BEFORE DELETE ON "SecurityEvents"
            BEGIN SELECT RAISE(ABORT, 'security events are append-only'); END;
            """,
            ct);
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 3001, Level = LogLevel.Information, Message = "Created the portal database schema ({Provider})")]
        public static partial void SchemaCreated(ILogger logger, string provider);

        [LoggerMessage(EventId = 3002, Level = LogLevel.Warning, Message = "No portal accounts: created administrator {Username}; its enrollment link was printed on the console")]
        public static partial void FirstAdminCreated(ILogger logger, string username);
    }
}
