using Microsoft.AspNetCore.Identity;
using Microsoft.AspNetCore.Identity.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Storage.ValueConversion;
using Microsoft.Extensions.DependencyInjection;

namespace Broker.Portal.Data;

/// <summary>Identity (schema version 3, with passkeys) plus recovery codes and security activity.</summary>
/// <remarks>
/// Abstract over the provider: SQLite and PostgreSQL need different migrations, and EF Core keys a
/// migration set by context type, so each provider has its own subclass
/// (<see cref="SqlitePortalDbContext"/>, <see cref="PostgresPortalDbContext"/>) and the one in use is
/// registered as this type. Everything else (Identity stores included) uses this type only.
/// </remarks>
public abstract class PortalDbContext : IdentityDbContext<PortalUser>
{
    protected PortalDbContext(DbContextOptions options)
        : base(options)
    {
    }

    /// <summary>Writes every DateTimeOffset as UTC (Npgsql accepts only offset zero for timestamptz).</summary>
    private static readonly ValueConverter<DateTimeOffset, DateTimeOffset> UtcConverter = new(v => v.ToUniversalTime(), v => v);

    /// <summary>ASP.NET Core Identity schema version 3: with passkeys (table AspNetUserPasskeys).</summary>
    internal static readonly Version IdentitySchema = IdentitySchemaVersions.Version3;

    /// <summary>
    /// Application services for a context made outside the portal's container (the dotnet-ef tool,
    /// tests). Identity reads its schema version from the application's IdentityOptions while
    /// building the model; without them it builds version 1 (no passkeys), and the migrations would
    /// not describe the model the portal runs.
    /// </summary>
    internal static readonly IServiceProvider StandaloneServices = new ServiceCollection()
        .Configure<IdentityOptions>(o => o.Stores.SchemaVersion = IdentitySchema)
        .BuildServiceProvider();

    public DbSet<RecoveryCode> RecoveryCodes => Set<RecoveryCode>();

    public DbSet<SecurityEvent> SecurityEvents => Set<SecurityEvent>();

    protected override void OnModelCreating(ModelBuilder builder)
    {
        base.OnModelCreating(builder);
        builder.Entity<PortalUser>(u =>
        {
            u.Property(x => x.EnrollmentTokenHash).HasMaxLength(64);
            u.HasIndex(x => x.EnrollmentTokenHash);
            u.Property(x => x.TotpName).HasMaxLength(100);
        });
        builder.Entity<RecoveryCode>(r =>
        {
            r.Property(x => x.Hash).HasMaxLength(64);
            r.HasIndex(x => x.UserId);
        });
        builder.Entity<SecurityEvent>(e =>
        {
            e.Property(x => x.Kind).HasMaxLength(SecurityEvent.KindLength);
            e.Property(x => x.Username).HasMaxLength(SecurityEvent.UsernameLength);
            e.Property(x => x.Detail).HasMaxLength(SecurityEvent.DetailLength);
            e.Property(x => x.RemoteIp).HasMaxLength(SecurityEvent.RemoteIpLength);
            e.Property(x => x.Actor).HasMaxLength(SecurityEvent.ActorLength);
            e.HasIndex(x => new { x.UserId, x.At });
        });

        var sqlite = Database.ProviderName == PortalProviders.Sqlite;
        foreach (var entity in builder.Model.GetEntityTypes())
        {
            foreach (var property in entity.GetProperties())
            {
                if (property.ClrType != typeof(DateTimeOffset) && property.ClrType != typeof(DateTimeOffset?))
                {
                    continue;
                }

                // SQLite cannot order or compare DateTimeOffset; store it as UTC ticks (sortable, exact).
                // PostgreSQL stores timestamptz, and Npgsql refuses offsets other than zero (an event
                // from a mail server may carry its local offset): write every value as UTC.
                property.SetValueConverter(sqlite ? new DateTimeOffsetToBinaryConverter() : UtcConverter);
            }
        }
    }
}
