using Microsoft.AspNetCore.Identity.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore;
using Microsoft.EntityFrameworkCore.Storage.ValueConversion;

namespace Broker.Portal.Data;

/// <summary>Identity (schema version 3, with passkeys) plus recovery codes and security activity.</summary>
public sealed class PortalDbContext(DbContextOptions<PortalDbContext> options) : IdentityDbContext<PortalUser>(options)
{
    /// <summary>Writes every DateTimeOffset as UTC (Npgsql accepts only offset zero for timestamptz).</summary>
    private static readonly ValueConverter<DateTimeOffset, DateTimeOffset> UtcConverter = new(v => v.ToUniversalTime(), v => v);

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
            e.Property(x => x.Kind).HasMaxLength(64);
            e.Property(x => x.Username).HasMaxLength(256);
            e.Property(x => x.Detail).HasMaxLength(1000);
            e.Property(x => x.RemoteIp).HasMaxLength(64);
            e.Property(x => x.Actor).HasMaxLength(256);
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
