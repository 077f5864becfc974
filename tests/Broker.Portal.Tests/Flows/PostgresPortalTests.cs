using Broker.Portal.Data;
using Broker.Portal.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;

namespace Broker.Portal.Tests.Flows;

/// <summary>
/// The portal on a real PostgreSQL server (a private cluster from the Debian binaries on
/// 127.0.0.1, one per class, a fresh database per test): the main flows shared with the SQLite
/// tests, plus what only PostgreSQL has (start-up DDL, the append-only trigger function).
/// </summary>
public sealed class PostgresPortalTests(PostgresCluster postgres) : IClassFixture<PostgresCluster>
{
    [Fact]
    public async Task Enroll_WithTotp_IssuesAppPasswordThatValidates()
    {
        await using var env = await PortalEnvironment.StartAsync(postgres: postgres);
        await EnrollmentAndAppPasswordTests.EnrollWithTotpIssuesAppPasswordThatValidatesAsync(env);
    }

    [Fact]
    public async Task SignIn_ReplayedTotpCode_IsRejected()
    {
        await using var env = await PortalEnvironment.StartAsync(postgres: postgres);
        await SecondFactorTests.ReplayedTotpCodeIsRejectedAsync(env);
    }

    [Fact]
    public async Task SecondFactor_ParallelWrongCodes_AtMostTheLimitAreChecked_NoServerError()
    {
        await using var env = await PortalEnvironment.StartAsync(FactorLockoutTests.Config, postgres);
        await FactorLockoutTests.ParallelWrongSecondFactorCodesAsync(env);
    }

    [Fact]
    public async Task StepUp_ParallelWrongCodes_AtMostTheLimitAreChecked_NoServerError()
    {
        await using var env = await PortalEnvironment.StartAsync(FactorLockoutTests.Config, postgres);
        await FactorLockoutTests.ParallelWrongStepUpCodesAsync(env);
    }

    [Fact]
    public async Task ParallelRemovals_OfEveryFactor_LeaveOne_NoServerError()
    {
        await using var env = await PortalEnvironment.StartAsync(postgres: postgres);
        await FactorRemovalTests.ParallelRemovalsLeaveOneFactorAsync(env);
    }

    [Fact]
    public async Task DisableUser_AppPasswordsStopValidating_AndSignInIsRefused()
    {
        await using var env = await PortalEnvironment.StartAsync(postgres: postgres);
        await AdminTests.DisableUserRevokesAsync(env);
    }

    [Fact]
    public async Task AdminAudit_FiltersByUserKindAndDate()
    {
        await using var env = await PortalEnvironment.StartAsync(postgres: postgres);
        await AuditTrailTests.FiltersByUserKindAndDateAsync(env);
    }

    [Fact]
    public async Task AdminAudit_ExportsFilteredJsonLines_IncludingMailSideEvents()
    {
        await using var env = await PortalEnvironment.StartAsync(postgres: postgres);
        await AuditTrailTests.ExportsFilteredJsonLinesAsync(env);
        await AuditTrailTests.MailAuditSinkStoresEventsAsync(env);
    }

    [Fact]
    public async Task SelfRegistration_Repeated_OneMailPerInterval_ThenAFreshLinkReplacesTheOld()
    {
        await using var sink = SmtpSink.Start();
        await using var env = await SelfRegistrationTests.StartEnabledAsync(sink, postgres: postgres);
        await SelfRegistrationTests.RepeatedRequestsAsync(env, sink);
    }

    [Fact]
    public async Task SelfRegistration_UnfinishedAccounts_AreRemovedAfterRetention_OthersAreKept()
    {
        await using var sink = SmtpSink.Start();
        await using var env = await SelfRegistrationTests.StartEnabledAsync(sink, postgres: postgres);
        await SelfRegistrationTests.UnfinishedAccountsAreRemovedAsync(env, sink);
    }

    [Fact]
    public async Task MailAuditSink_OversizedOrKindlessEvents_AreClippedOrDropped_NotAPoisonBatch()
    {
        await using var env = await PortalEnvironment.StartAsync(postgres: postgres);
        var sink = new Broker.Portal.Activity.MailAuditSink(env.Portal.Services.GetRequiredService<IServiceScopeFactory>());
        var at = DateTimeOffset.UtcNow;

        // PostgreSQL enforces the column lengths (SQLite does not): one such event used to fail its
        // whole batch on every retry.
        await sink.HandleAsync(
        [
            new() { At = at, Kind = new string('k', 100), Username = new string('u', 300), RemoteIp = new string('1', 80), Detail = new string('d', 2000) },
            new() { At = at, Kind = null!, Username = "nobody" },
            new() { At = at, Kind = Broker.Core.Audit.AuditKinds.MailLoginDenied, Username = "eve", Detail = "reason WrongPassword" },
        ], CancellationToken.None);

        await using var scope = env.Portal.Services.CreateAsyncScope();
        var stored = await scope.ServiceProvider.GetRequiredService<PortalDbContext>().SecurityEvents.Where(e => e.At == at).ToListAsync();
        Assert.Equal(2, stored.Count);
        var clipped = Assert.Single(stored, e => e.Kind.StartsWith('k'));
        Assert.Equal((64, 256, 64, 1000), (clipped.Kind.Length, clipped.Username.Length, clipped.RemoteIp!.Length, clipped.Detail.Length));
        Assert.Contains(stored, e => e.Username == "eve");
    }

    [Fact]
    public async Task NamesAndDetailsClippedWithAnEmojiAtTheCut_AreStored_NotAServerErrorOrAPoisonBatch()
    {
        await using var env = await PortalEnvironment.StartAsync(postgres: postgres);
        // 101 UTF-16 units, the last two one emoji: cut at 100, a lone half of it would be left,
        // which PostgreSQL's driver refuses (the enrollment answered 500).
        await env.EnrollWithTotpAsync("ines", totpName: new string('n', 99) + "\U0001F4F1");
        var sink = new Broker.Portal.Activity.MailAuditSink(env.Portal.Services.GetRequiredService<IServiceScopeFactory>());
        var at = DateTimeOffset.UtcNow;
        await sink.HandleAsync(
            [new() { At = at, Kind = Broker.Core.Audit.AuditKinds.MailLoginDenied, Username = new string('u', 255) + "\U0001F600", Detail = new string('d', 999) + "\U0001F600" }],
            CancellationToken.None);

        await using var scope = env.Portal.Services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<PortalDbContext>();
        Assert.Equal(new string('n', 99), (await db.Users.SingleAsync(u => u.UserName == "ines")).TotpName);
        var stored = await db.SecurityEvents.SingleAsync(e => e.At == at);
        Assert.Equal((new string('u', 255), new string('d', 999)), (stored.Username, stored.Detail));
    }

    [Fact]
    public async Task SecurityEvents_UpdateDeleteAndTruncate_AreRefusedByTheDatabase()
    {
        await using var env = await PortalEnvironment.StartAsync(postgres: postgres);
        await AuditTrailTests.UpdateAndDeleteAreRefusedAsync(env);

        // Also from a plain SQL session (a shell, a script), and TRUNCATE, which skips row triggers.
        await using var connection = new NpgsqlConnection(env.PostgresConnectionString);
        await connection.OpenAsync();
        foreach (var sql in new[] { """UPDATE "SecurityEvents" SET "Detail" = 'x'""", """DELETE FROM "SecurityEvents" """, """TRUNCATE "SecurityEvents" """ })
        {
            await using var command = new NpgsqlCommand(sql, connection);
            var refused = await Assert.ThrowsAsync<PostgresException>(() => command.ExecuteNonQueryAsync());
            Assert.Contains("append-only", refused.MessageText, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task StartUp_MigratesOnce_TriggersAreIdempotent_AndNoLogHasThePassword()
    {
        await using var env = await PortalEnvironment.StartAsync(postgres: postgres);
        await env.EnrollWithTotpAsync("quinn");

        await using (var scope = env.Portal.Services.CreateAsyncScope())
        {
            var db = scope.ServiceProvider.GetRequiredService<PortalDbContext>();
            Assert.Equal("Npgsql.EntityFrameworkCore.PostgreSQL", db.Database.ProviderName);
            // A second start on the same database: nothing to migrate, nothing fails, nothing duplicated.
            Assert.Empty(await PortalDatabaseInitializer.MigrateAsync(db, Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance, CancellationToken.None));
            await PortalDatabaseInitializer.MakeSecurityEventsAppendOnlyAsync(db, CancellationToken.None);
            await PortalDatabaseInitializer.MakeSecurityEventsAppendOnlyAsync(db, CancellationToken.None);
            var triggers = await db.Database.SqlQueryRaw<string>(
                """SELECT tgname::text AS "Value" FROM pg_trigger WHERE tgrelid = '"SecurityEvents"'::regclass AND NOT tgisinternal ORDER BY 1""").ToListAsync();
            Assert.Equal(["SecurityEvents_NoTruncate", "SecurityEvents_NoUpdateOrDelete"], triggers);
            // The TOTP factor's timestamp went in and came back as UTC.
            var user = await db.Users.SingleAsync(u => u.UserName == "quinn");
            Assert.Equal(TimeSpan.Zero, user.TotpAddedAt!.Value.Offset);
        }

        Assert.Contains(env.Logs.Lines, l => l.Contains("Created the portal database schema (Npgsql.EntityFrameworkCore.PostgreSQL)", StringComparison.Ordinal));
        Assert.DoesNotContain(env.Logs.Lines, l => l.Contains(postgres.Password, StringComparison.Ordinal));
    }

    [Fact]
    public async Task RestrictedRole_AsInTheAdminGuide_RunsThePortal_ButCannotRewriteOrUnprotectTheTrail()
    {
        // The owner role creates schema and triggers on the first start.
        await using var owner = await PortalEnvironment.StartAsync(postgres: postgres);
        var role = "portal_" + Guid.NewGuid().ToString("N")[..8];
        var password = Guid.NewGuid().ToString("N");
        var database = new NpgsqlConnectionStringBuilder(owner.PostgresConnectionString).Database!;
        await using (var connection = new NpgsqlConnection(owner.PostgresConnectionString))
        {
            await connection.OpenAsync();
            // The grants from docs/admin-guide.md ("PostgreSQL"); role and database names are generated here.
            foreach (var sql in new[]
                     {
                         $"CREATE ROLE {role} LOGIN PASSWORD '{password}'",
                         $"GRANT CONNECT ON DATABASE {database} TO {role}",
                         $"GRANT USAGE ON SCHEMA public TO {role}",
                         $"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}",
                         $"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}",
                         $"""REVOKE UPDATE, DELETE, TRUNCATE ON "SecurityEvents" FROM {role}""",
                     })
            {
#pragma warning disable CA2100
                await using var command = new NpgsqlCommand(sql, connection);
#pragma warning restore CA2100
                await command.ExecuteNonQueryAsync();
            }
        }

        var restricted = new NpgsqlConnectionStringBuilder(owner.PostgresConnectionString) { Username = role, Password = password }.ConnectionString;
        await using var env = await PortalEnvironment.StartAsync(new Dictionary<string, string?>
        {
            ["Broker:Portal:DatabaseProvider"] = "Postgres",
            ["Broker:Portal:ConnectionString"] = restricted,
        });
        await EnrollmentAndAppPasswordTests.EnrollWithTotpIssuesAppPasswordThatValidatesAsync(env);

        await using var session = new NpgsqlConnection(restricted);
        await session.OpenAsync();
        foreach (var sql in new[] { """UPDATE "SecurityEvents" SET "Detail" = 'x'""", """ALTER TABLE "SecurityEvents" DISABLE TRIGGER ALL""", """DROP TRIGGER "SecurityEvents_NoUpdateOrDelete" ON "SecurityEvents" """ })
        {
            await using var command = new NpgsqlCommand(sql, session);
            var refused = await Assert.ThrowsAsync<PostgresException>(() => command.ExecuteNonQueryAsync());
            Assert.Equal(PostgresErrorCodes.InsufficientPrivilege, refused.SqlState);
        }

        Assert.DoesNotContain(env.Logs.Lines, l => l.Contains(password, StringComparison.Ordinal));
    }
}
