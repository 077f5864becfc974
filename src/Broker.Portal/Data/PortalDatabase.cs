using Broker.Portal.Accounts;
using Microsoft.AspNetCore.Identity;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Infrastructure;
using Microsoft.EntityFrameworkCore.Migrations;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Broker.Portal.Data;

/// <summary>
/// Brings the schema up to date (EF Core migrations, one set per provider) and, when there is no
/// account at all, creates the first administrator and prints its one-time enrollment link (to the
/// console, never to the log).
/// </summary>
internal sealed partial class PortalDatabaseInitializer(IServiceProvider services, IOptions<PortalOptions> options, ILogger<PortalDatabaseInitializer> logger) : IHostedService
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        await using var scope = services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<PortalDbContext>();
        await MigrateAsync(db, logger, cancellationToken);

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
    /// Applies the migrations this release has and the database lacks; returns their ids.
    /// A database created by a release before migrations (by <c>EnsureCreated</c>: the tables, no
    /// <c>__EFMigrationsHistory</c>) is first baselined: the history table is created and the
    /// <c>Initial</c> migration, which is exactly that schema, recorded as applied.
    /// </summary>
    /// <remarks>
    /// Nothing is written when nothing is pending, so a role without DDL rights (see the admin guide)
    /// runs an up-to-date database. On PostgreSQL the whole check runs under a session advisory lock:
    /// EF Core's own migration lock does not cover the baseline, and instances starting together
    /// would otherwise both try it.
    /// </remarks>
    internal static async Task<IReadOnlyList<string>> MigrateAsync(PortalDbContext db, ILogger logger, CancellationToken ct)
    {
        var postgres = db.Database.ProviderName == PortalProviders.Postgres;
        var provider = db.Database.ProviderName ?? "?";
        await db.Database.OpenConnectionAsync(ct);
        try
        {
            if (postgres)
            {
                await db.Database.ExecuteSqlRawAsync("SELECT pg_advisory_lock(hashtext('broker.portal.Migrate'))", ct);
            }
            else
            {
                await UseWriteAheadLogAsync(db, logger, ct);
            }

            try
            {
                var history = db.GetService<IHistoryRepository>();
                // Our own check: Npgsql's IHistoryRepository.Exists always answers true (it catches
                // "no such table" instead), and reading a missing history table logs an error.
                var fresh = false;
                if (!await TableExistsAsync(db, postgres, HistoryRepository.DefaultTableName, ct))
                {
                    if (await TableExistsAsync(db, postgres, "AspNetUsers", ct))
                    {
                        await BaselineAsync(db, postgres, history, ct);
                        Log.SchemaBaselined(logger, provider);
                    }
                    else
                    {
                        // Created here so that EF Core (Npgsql) does not first read a missing history
                        // table, which it survives but logs as an error on every first install.
                        await db.Database.ExecuteSqlRawAsync(history.GetCreateIfNotExistsScript(), ct);
                        fresh = true;
                    }
                }

                var pending = (await db.Database.GetPendingMigrationsAsync(ct)).ToList();
                if (pending.Count == 0)
                {
                    return [];
                }

                await db.Database.MigrateAsync(ct);
                if (fresh)
                {
                    Log.SchemaCreated(logger, provider);
                }

                Log.MigrationsApplied(logger, pending.Count, pending[^1], provider);
                return pending;
            }
            finally
            {
                if (postgres)
                {
                    await db.Database.ExecuteSqlRawAsync("SELECT pg_advisory_unlock(hashtext('broker.portal.Migrate'))", CancellationToken.None);
                }
            }
        }
        finally
        {
            await db.Database.CloseConnectionAsync();
        }
    }

    /// <summary>
    /// Records the first migration as applied on a database whose schema EnsureCreated made. Only the
    /// <c>Initial</c> migration: every release before migrations had exactly that schema.
    /// </summary>
    private static async Task BaselineAsync(PortalDbContext db, bool postgres, IHistoryRepository history, CancellationToken ct)
    {
        var initial = db.Database.GetMigrations().First();
        await using var transaction = await db.Database.BeginTransactionAsync(ct);
        // Checked again inside the transaction (a write lock on SQLite; PostgreSQL is under the
        // advisory lock already): another process may have done it meanwhile.
        if (await TableExistsAsync(db, postgres, HistoryRepository.DefaultTableName, ct))
        {
            return;
        }

        await db.Database.ExecuteSqlRawAsync(history.GetCreateIfNotExistsScript(), ct);
        await db.Database.ExecuteSqlRawAsync(history.GetInsertScript(new HistoryRow(initial, ProductInfo.GetVersion())), ct);
        // Those releases created the append-only guard on every start; a database only the CLI has
        // touched may lack it. The Initial migration contains it, so it must be there once recorded.
        await MakeSecurityEventsAppendOnlyAsync(db, ct);
        await transaction.CommitAsync(ct);
    }

    /// <summary>Whether a table exists (PostgreSQL: resolved through search_path, as EF Core's unqualified names are).</summary>
    private static async Task<bool> TableExistsAsync(PortalDbContext db, bool postgres, string table, CancellationToken ct)
    {
        // The table name is a constant of ours or EF Core's, passed as a parameter all the same.
        var result = postgres
            ? db.Database.SqlQuery<int>($"""SELECT CASE WHEN to_regclass(quote_ident({table})) IS NULL THEN 0 ELSE 1 END AS "Value" """)
            : db.Database.SqlQuery<int>($"""SELECT COUNT(*) AS "Value" FROM sqlite_master WHERE type = 'table' AND name = {table}""");
        return (await result.ToListAsync(ct)).Single() > 0;
    }

    /// <summary>
    /// The audit trail is append-only in the database itself, not only by convention in code: any
    /// UPDATE or DELETE of a security event (also from a SQL shell or a bug elsewhere) is aborted by
    /// triggers (SQLite) or a trigger function that raises an exception (PostgreSQL, which also
    /// refuses TRUNCATE). The Initial migrations create the same; this idempotent form is for
    /// databases baselined from a release before migrations.
    /// </summary>
    internal static async Task MakeSecurityEventsAppendOnlyAsync(PortalDbContext db, CancellationToken ct)
    {
        var statements = db.Database.ProviderName switch
        {
            PortalProviders.Sqlite => SecurityEventsAppendOnlySql.Sqlite,
            PortalProviders.Postgres => SecurityEventsAppendOnlySql.Postgres,
            _ => [],
        };
        foreach (var sql in statements)
        {
            await db.Database.ExecuteSqlRawAsync(sql, ct);
        }
    }

    /// <summary>
    /// SQLite: write-ahead logging, which EF Core sets on the databases it creates itself. Here the
    /// file is made by opening the connection, so EF Core never did, and in the default rollback
    /// journal a reader blocks a writer's commit. EF Core writes INSERT/UPDATE … RETURNING, whose
    /// commit fails only when the statement is finished, where Microsoft.Data.Sqlite cannot retry it
    /// (https://github.com/dotnet/efcore/pull/31013): parallel sign-in attempts answered 500 with
    /// "database is locked". The mode is kept in the file, so this changes a database once.
    /// </summary>
    private static async Task UseWriteAheadLogAsync(PortalDbContext db, ILogger logger, CancellationToken ct)
    {
        await using var command = db.Database.GetDbConnection().CreateCommand();
        command.CommandText = "PRAGMA journal_mode = WAL";
        var mode = Convert.ToString(await command.ExecuteScalarAsync(ct), System.Globalization.CultureInfo.InvariantCulture);
        if (!string.Equals(mode, "wal", StringComparison.OrdinalIgnoreCase))
        {
            // An in-memory database, or a file system without shared memory: it still works, with
            // the old contention.
            Log.NoWriteAheadLog(logger, mode ?? "?");
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 3005, Level = LogLevel.Warning, Message = "The portal's SQLite database stays in journal mode {Mode}, not WAL; parallel requests may fail with 'database is locked'")]
        public static partial void NoWriteAheadLog(ILogger logger, string mode);

        [LoggerMessage(EventId = 3001, Level = LogLevel.Information, Message = "Created the portal database schema ({Provider})")]
        public static partial void SchemaCreated(ILogger logger, string provider);

        [LoggerMessage(EventId = 3002, Level = LogLevel.Warning, Message = "No portal accounts: created administrator {Username}; its enrollment link was printed on the console")]
        public static partial void FirstAdminCreated(ILogger logger, string username);

        [LoggerMessage(EventId = 3003, Level = LogLevel.Information, Message = "Applied {Count} portal database migration(s), now at {Migration} ({Provider})")]
        public static partial void MigrationsApplied(ILogger logger, int count, string migration, string provider);

        [LoggerMessage(EventId = 3004, Level = LogLevel.Warning, Message = "The portal database was created before migrations; recorded its schema as the Initial migration ({Provider})")]
        public static partial void SchemaBaselined(ILogger logger, string provider);
    }
}
