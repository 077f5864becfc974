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
    /// The audit trail is append-only in the database itself, not only by convention in code: any
    /// UPDATE or DELETE of a security event (also from a SQL shell or a bug elsewhere) is aborted by
    /// triggers (SQLite) or a trigger function that raises an exception (PostgreSQL, which also
    /// refuses TRUNCATE). Idempotent, so databases created before the triggers existed get them too.
    /// </summary>
    internal static async Task MakeSecurityEventsAppendOnlyAsync(PortalDbContext db, CancellationToken ct)
    {
        switch (db.Database.ProviderName)
        {
            case PortalProviders.Sqlite:
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
                break;
            case PortalProviders.Postgres:
                // One DO block (one transaction) under an advisory lock, so portal instances starting
                // together do not race. Only what is missing is created: a portal that runs as a role
                // without DDL rights (see the admin guide) starts fine once the owner has created them.
                await db.Database.ExecuteSqlRawAsync(
                    """
                    DO $do$
                    BEGIN
                        PERFORM pg_advisory_xact_lock(hashtext('broker.portal.SecurityEvents_AppendOnly'));
                        IF to_regprocedure('"SecurityEvents_AppendOnly"()') IS NULL THEN
                            CREATE FUNCTION "SecurityEvents_AppendOnly"() RETURNS trigger LANGUAGE plpgsql AS $fn$
                            BEGIN
                                RAISE EXCEPTION 'security events are append-only' USING ERRCODE = 'insufficient_privilege';
                            END
                            $fn$;
                        END IF;
                        IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = '"SecurityEvents"'::regclass AND tgname = 'SecurityEvents_NoUpdateOrDelete') THEN
                            CREATE TRIGGER "SecurityEvents_NoUpdateOrDelete" BEFORE UPDATE OR DELETE ON "SecurityEvents"
                                FOR EACH ROW EXECUTE FUNCTION "SecurityEvents_AppendOnly"();
                        END IF;
                        IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = '"SecurityEvents"'::regclass AND tgname = 'SecurityEvents_NoTruncate') THEN
                            CREATE TRIGGER "SecurityEvents_NoTruncate" BEFORE TRUNCATE ON "SecurityEvents"
                                FOR EACH STATEMENT EXECUTE FUNCTION "SecurityEvents_AppendOnly"();
                        END IF;
                    END
                    $do$;
                    """,
                    ct);
                break;
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 3001, Level = LogLevel.Information, Message = "Created the portal database schema ({Provider})")]
        public static partial void SchemaCreated(ILogger logger, string provider);

        [LoggerMessage(EventId = 3002, Level = LogLevel.Warning, Message = "No portal accounts: created administrator {Username}; its enrollment link was printed on the console")]
        public static partial void FirstAdminCreated(ILogger logger, string username);
    }
}
