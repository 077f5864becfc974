using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Design;

namespace Broker.Portal.Data;

/// <summary>The portal database on SQLite; its migrations are in <c>Data/Migrations/Sqlite</c>.</summary>
public sealed class SqlitePortalDbContext(DbContextOptions<SqlitePortalDbContext> options) : PortalDbContext(options);

/// <summary>The portal database on PostgreSQL; its migrations are in <c>Data/Migrations/Postgres</c>.</summary>
public sealed class PostgresPortalDbContext(DbContextOptions<PostgresPortalDbContext> options) : PortalDbContext(options);

/// <summary>
/// A SQLite portal context outside the portal's container: for <c>dotnet ef migrations add …
/// --context SqlitePortalDbContext</c> (which does not connect, so the connection string is a
/// placeholder) and for tests. Not used by the portal at run time.
/// </summary>
internal sealed class SqlitePortalDbContextFactory : IDesignTimeDbContextFactory<SqlitePortalDbContext>
{
    public SqlitePortalDbContext CreateDbContext(string[] args) => Create("Data Source=design-time.db");

    public static SqlitePortalDbContext Create(string connectionString) => new(new DbContextOptionsBuilder<SqlitePortalDbContext>()
        .UseSqlite(connectionString)
        .UseApplicationServiceProvider(PortalDbContext.StandaloneServices)
        .Options);
}

/// <summary>A PostgreSQL portal context outside the portal's container (dotnet-ef, tests); see <see cref="SqlitePortalDbContextFactory"/>.</summary>
internal sealed class PostgresPortalDbContextFactory : IDesignTimeDbContextFactory<PostgresPortalDbContext>
{
    public PostgresPortalDbContext CreateDbContext(string[] args) => Create("Host=localhost;Database=broker_design_time");

    public static PostgresPortalDbContext Create(string connectionString) => new(new DbContextOptionsBuilder<PostgresPortalDbContext>()
        .UseNpgsql(connectionString)
        .UseApplicationServiceProvider(PortalDbContext.StandaloneServices)
        .Options);
}
