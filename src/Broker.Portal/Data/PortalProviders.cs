namespace Broker.Portal.Data;

/// <summary>EF Core provider names the portal tells apart.</summary>
internal static class PortalProviders
{
    public const string Sqlite = "Microsoft.EntityFrameworkCore.Sqlite";
    public const string Postgres = "Npgsql.EntityFrameworkCore.PostgreSQL";
}
