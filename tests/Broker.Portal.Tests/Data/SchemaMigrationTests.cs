using Broker.Portal.Data;
using Broker.Portal.Tests.Flows;
using Broker.Portal.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;

namespace Broker.Portal.Tests.Data;

/// <summary>
/// The portal schema is EF Core migrations, one set per provider: the same scenarios run on a real
/// SQLite file (<see cref="SqliteSchemaMigrationTests"/>) and a real PostgreSQL server
/// (<see cref="PostgresSchemaMigrationTests"/>).
/// </summary>
public abstract class SchemaMigrationTests
{
    /// <summary>A new, empty database: the portal settings that select it, and a way to open it outside the portal.</summary>
    protected abstract Task<TestDatabase> NewDatabaseAsync();

    [Fact]
    public async Task Model_HasNoChangesWithoutAMigration()
    {
        var database = await NewDatabaseAsync();
        await using var db = database.Open();
        // Fails when the model changed and nobody ran `dotnet ef migrations add` for this provider.
        Assert.False(db.Database.HasPendingModelChanges());
    }

    [Fact]
    public async Task FreshDatabase_GetsAllMigrations_AndASecondStartAppliesNothing()
    {
        var database = await NewDatabaseAsync();
        await using var env = await PortalEnvironment.StartAsync(database.Config);
        await env.EnrollWithTotpAsync("rowan");

        // The context the portal itself uses (Identity options from its container) has the same model.
        await using (var scope = env.Portal.Services.CreateAsyncScope())
        {
            Assert.False(scope.ServiceProvider.GetRequiredService<PortalDbContext>().Database.HasPendingModelChanges());
        }

        await using var db = database.Open();
        var applied = (await db.Database.GetAppliedMigrationsAsync()).ToList();
        Assert.Equal(db.Database.GetMigrations(), applied);
        Assert.EndsWith("_Initial", applied[0], StringComparison.Ordinal);
        Assert.Empty(await db.Database.GetPendingMigrationsAsync());
        Assert.Empty(await PortalDatabaseInitializer.MigrateAsync(db, NullLogger.Instance, CancellationToken.None));
        Assert.Contains(env.Logs.Lines, l => l.Contains("Created the portal database schema", StringComparison.Ordinal));
        // A first start on an empty database is not an error (nothing read a missing history table).
        Assert.DoesNotContain(env.Logs.Lines, l => l.StartsWith("Error", StringComparison.Ordinal));
    }

    [Fact]
    public async Task DatabaseFromBeforeMigrations_IsBaselined_KeepsItsRows_AndWorks()
    {
        var database = await NewDatabaseAsync();
        await using (var old = database.Open())
        {
            // What releases before migrations did on their first start.
            Assert.True(await old.Database.EnsureCreatedAsync());
            await PortalDatabaseInitializer.MakeSecurityEventsAppendOnlyAsync(old, CancellationToken.None);
            old.Users.Add(new PortalUser { UserName = "existing", NormalizedUserName = "EXISTING", IsAdmin = true, CreatedAt = DateTimeOffset.UtcNow, SecurityStamp = Guid.NewGuid().ToString() });
            old.SecurityEvents.Add(new SecurityEvent { Username = "existing", Kind = "test.before-upgrade", At = DateTimeOffset.UtcNow });
            await old.SaveChangesAsync();
        }

        await using var env = await PortalEnvironment.StartAsync(database.Config);
        Assert.Contains(env.Logs.Lines, l => l.Contains("was created before migrations", StringComparison.Ordinal));
        Assert.DoesNotContain(env.Logs.Lines, l => l.Contains("Created the portal database schema", StringComparison.Ordinal));

        await using (var db = database.Open())
        {
            Assert.Equal(db.Database.GetMigrations(), await db.Database.GetAppliedMigrationsAsync());
            var existing = await db.Users.SingleAsync(u => u.UserName == "existing");
            Assert.True(existing.IsAdmin);
            Assert.Equal(1, await db.SecurityEvents.CountAsync(e => e.Kind == "test.before-upgrade"));
            // An account existed, so no first administrator was made.
            Assert.Equal(1, await db.Users.CountAsync());
        }

        // The portal works on it, append-only guard included.
        await AuditTrailTests.UpdateAndDeleteAreRefusedAsync(env);
    }

    /// <summary>A database for one test: portal configuration and a context on it outside the portal.</summary>
    protected sealed record TestDatabase(Dictionary<string, string?> Config, Func<PortalDbContext> Open);
}

public sealed class SqliteSchemaMigrationTests : SchemaMigrationTests, IDisposable
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), "broker-schema-" + Guid.NewGuid().ToString("N")[..12]);

    protected override Task<TestDatabase> NewDatabaseAsync()
    {
        Directory.CreateDirectory(_directory);
        var connectionString = $"Data Source={Path.Combine(_directory, Guid.NewGuid().ToString("N")[..8] + ".db")}";
        return Task.FromResult(new TestDatabase(
            new Dictionary<string, string?> { ["Broker:Portal:ConnectionString"] = connectionString },
            () => SqlitePortalDbContextFactory.Create(connectionString)));
    }

    [Fact]
    public async Task StartUp_SwitchesARollbackJournalDatabaseToWriteAheadLog()
    {
        var database = await NewDatabaseAsync();
        var connectionString = database.Config["Broker:Portal:ConnectionString"]!;
        // As every database of earlier releases: the file made by opening it, so in the default journal mode.
        Assert.Equal("delete", await JournalModeAsync(connectionString, "PRAGMA journal_mode = DELETE"));

        await using (var env = await PortalEnvironment.StartAsync(database.Config))
        {
            await env.EnrollWithTotpAsync("wally");
        }

        Assert.Equal("wal", await JournalModeAsync(connectionString, "PRAGMA journal_mode"));
    }

    private static async Task<string?> JournalModeAsync(string connectionString, string pragma)
    {
        await using var connection = new Microsoft.Data.Sqlite.SqliteConnection(connectionString);
        await connection.OpenAsync();
        await using var command = connection.CreateCommand();
        command.CommandText = pragma;
        return (string?)await command.ExecuteScalarAsync();
    }

    public void Dispose()
    {
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

public sealed class PostgresSchemaMigrationTests(PostgresCluster postgres) : SchemaMigrationTests, IClassFixture<PostgresCluster>
{
    protected override async Task<TestDatabase> NewDatabaseAsync()
    {
        var connectionString = await postgres.CreateDatabaseAsync();
        return new TestDatabase(
            new Dictionary<string, string?> { ["Broker:Portal:DatabaseProvider"] = "Postgres", ["Broker:Portal:ConnectionString"] = connectionString },
            () => Open(connectionString));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task ConcurrentStarts_MigrateOrBaselineOnce(bool fromBeforeMigrations)
    {
        var connectionString = await postgres.CreateDatabaseAsync();
        if (fromBeforeMigrations)
        {
            await using var old = Open(connectionString);
            await old.Database.EnsureCreatedAsync();
        }

        // Several instances starting at the same moment: all succeed, one of them does the work.
        var starts = Enumerable.Range(0, 4).Select(async _ =>
        {
            await using var db = Open(connectionString);
            return await PortalDatabaseInitializer.MigrateAsync(db, NullLogger.Instance, CancellationToken.None);
        }).ToList();
        var results = await Task.WhenAll(starts);

        Assert.Equal(fromBeforeMigrations ? 0 : 1, results.Count(r => r.Count > 0));
        await using var check = Open(connectionString);
        Assert.Equal(check.Database.GetMigrations(), await check.Database.GetAppliedMigrationsAsync());
        var triggers = await check.Database.SqlQueryRaw<string>(
            """SELECT tgname::text AS "Value" FROM pg_trigger WHERE tgrelid = '"SecurityEvents"'::regclass AND NOT tgisinternal ORDER BY 1""").ToListAsync();
        Assert.Equal(["SecurityEvents_NoTruncate", "SecurityEvents_NoUpdateOrDelete"], triggers);
    }

    private static PostgresPortalDbContext Open(string connectionString) => PostgresPortalDbContextFactory.Create(connectionString);
}
