using System.Data.Common;
using System.Globalization;
using System.Net;
using System.Text.Json;
using Broker.Core.Audit;
using Broker.Portal.Activity;
using Broker.Portal.Data;
using Broker.Portal.Tests.Infrastructure;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace Broker.Portal.Tests.Flows;

/// <summary>The admin audit trail: filter, JSON-lines export, mail-side events, append-only storage.</summary>
public sealed class AuditTrailTests
{
    [Fact]
    public async Task AdminAudit_FiltersByUserKindAndDate()
    {
        await using var env = await PortalEnvironment.StartAsync();
        await FiltersByUserKindAndDateAsync(env);
    }

    /// <summary>The audit page filters by user, kind and UTC date range. Shared with <see cref="PostgresPortalTests"/>.</summary>
    internal static async Task FiltersByUserKindAndDateAsync(PortalEnvironment env)
    {
        var today = DateOnly.FromDateTime(env.Time.GetUtcNow().UtcDateTime);
        var admin = await env.EnrollWithTotpAsync("root", admin: true);
        var user = await env.EnrollWithTotpAsync("kate");
        await PortalEnvironment.CreateAppPasswordAsync(user.Client, "Tablet");

        var all = (await admin.Client.GetAsync("/Admin/Audit")).TextOf("audit-events");
        Assert.Contains("root", all, StringComparison.Ordinal);
        Assert.Contains("App password created", all, StringComparison.Ordinal);

        var byUser = (await admin.Client.GetAsync("/Admin/Audit?user=kat")).TextOf("audit-events");
        Assert.Contains("kate", byUser, StringComparison.Ordinal);
        Assert.DoesNotContain("root", byUser, StringComparison.Ordinal);

        var byKind = (await admin.Client.GetAsync("/Admin/Audit?kind=" + Uri.EscapeDataString("App password created"))).TextOf("audit-events");
        Assert.Contains("Tablet", byKind, StringComparison.Ordinal);
        Assert.DoesNotContain("Signed in", byKind, StringComparison.Ordinal);

        var inRange = (await admin.Client.GetAsync($"/Admin/Audit?from={Day(today)}&to={Day(today.AddDays(1))}")).TextOf("audit-events");
        Assert.Contains("kate", inRange, StringComparison.Ordinal);
        var before = (await admin.Client.GetAsync($"/Admin/Audit?to={Day(today.AddDays(-1))}")).TextOf("audit-events");
        Assert.DoesNotContain("kate", before, StringComparison.Ordinal);
        var after = (await admin.Client.GetAsync($"/Admin/Audit?from={Day(today.AddDays(2))}")).TextOf("audit-events");
        Assert.DoesNotContain("kate", after, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AdminAudit_ExportsFilteredJsonLines_IncludingMailSideEvents()
    {
        await using var env = await PortalEnvironment.StartAsync();
        await ExportsFilteredJsonLinesAsync(env);
    }

    /// <summary>The JSON-lines export, with an event from the mail side. Shared with <see cref="PostgresPortalTests"/>.</summary>
    internal static async Task ExportsFilteredJsonLinesAsync(PortalEnvironment env)
    {
        var admin = await env.EnrollWithTotpAsync("root", admin: true);
        await env.EnrollWithTotpAsync("liam");
        // A mail server may report its local time: the offset must not matter (PostgreSQL stores UTC only).
        await DeliverMailEventsAsync(env, new AuditEvent { At = env.Time.GetUtcNow().ToOffset(TimeSpan.FromHours(2)), Kind = AuditKinds.MailLoginDenied, Username = "liam", Detail = "reason WrongPassword, service imap", RemoteIp = "192.0.2.66", Client = "Thunderbird", Caller = "dovecot-1" });

        var page = await admin.Client.GetAsync("/Admin/Audit?user=liam");
        // The export form carries the filters shown.
        Assert.Equal("liam", page.HiddenValue("user"));
        var response = await admin.Client.PostAsync("/Admin/Audit/Export", null, ExportFields(page), page.AntiforgeryToken(), follow: false);
        Assert.Equal(HttpStatusCode.OK, response.Status);
        Assert.Equal("application/x-ndjson", response.Message.Content.Headers.ContentType!.MediaType);
        var lines = response.Html.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        var events = lines.Select(l => JsonDocument.Parse(l).RootElement).ToList();
        Assert.NotEmpty(events);
        Assert.All(events, e => Assert.Equal("liam", e.GetProperty("username").GetString()));
        var mail = Assert.Single(events, e => e.GetProperty("kind").GetString() == AuditKinds.MailLoginDenied);
        Assert.Equal("192.0.2.66", mail.GetProperty("remoteIp").GetString());
        Assert.Contains("client Thunderbird", mail.GetProperty("detail").GetString(), StringComparison.Ordinal);
        // Oldest first.
        var times = events.Select(e => e.GetProperty("at").GetDateTimeOffset()).ToList();
        Assert.Equal(times.Order(), times);

        // The export itself is an admin action in the trail.
        Assert.Contains(SecurityEventKinds.AuditExported, (await admin.Client.GetAsync("/Admin/Audit?user=root")).TextOf("audit-events"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task AdminAuditExport_WithoutFreshMfa_RequiresStepUp()
    {
        await using var env = await PortalEnvironment.StartAsync();
        var admin = await env.EnrollWithTotpAsync("root", admin: true);
        var page = await admin.Client.GetAsync("/Admin/Audit?kind=Signed+in");
        env.Time.Advance(TimeSpan.FromMinutes(6));
        var export = await admin.Client.PostAsync("/Admin/Audit/Export", null, ExportFields(page), page.AntiforgeryToken(), follow: false);
        Assert.Equal(HttpStatusCode.Redirect, export.Status);
        Assert.StartsWith("/Account/StepUp", export.Location, StringComparison.Ordinal);
        // Back to the page with its filters after the check, where the export is a form again.
        Assert.Contains("returnUrl=" + Uri.EscapeDataString("/Admin/Audit?kind=Signed%20in"), export.Location, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AdminAuditExport_CrossSiteGetOrPostWithoutAntiforgery_ExportsNothing()
    {
        await using var env = await PortalEnvironment.StartAsync();
        var admin = await env.EnrollWithTotpAsync("root", admin: true);

        // A link on another site, followed by the admin's browser with its (SameSite=Lax) session
        // cookie and a fresh MFA check: it only opens the page, with the filters of the link.
        var get = await admin.Client.GetRawAsync("/Admin/Audit/Export?user=liam&kind=Signed+in");
        Assert.Equal(HttpStatusCode.Redirect, get.Status);
        Assert.Equal("/Admin/Audit?user=liam&kind=Signed%20in", get.Location);
        Assert.Null(get.Message.Content.Headers.ContentDisposition);
        Assert.DoesNotContain("\"username\"", get.Html, StringComparison.Ordinal);

        // A form on another site can post, but has no antiforgery token (or a made-up one).
        var noToken = await admin.Client.PostAsync("/Admin/Audit/Export", null, [new("user", "liam")], token: null, follow: false);
        Assert.Equal(HttpStatusCode.BadRequest, noToken.Status);
        var forged = await admin.Client.PostAsync("/Admin/Audit/Export", null, [new("user", "liam")], token: "forged-token", follow: false);
        Assert.Equal(HttpStatusCode.BadRequest, forged.Status);
        Assert.DoesNotContain("\"username\"", noToken.Html + forged.Html, StringComparison.Ordinal);

        await using var scope = env.Portal.Services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<PortalDbContext>();
        Assert.Equal(0, await db.SecurityEvents.CountAsync(e => e.Kind == SecurityEventKinds.AuditExported));
    }

    private static readonly string[] FilterFields = ["user", "kind", "from", "to"];

    /// <summary>The filter fields of the page's export form.</summary>
    private static List<KeyValuePair<string, string>> ExportFields(PageResponse page) =>
        [.. FilterFields.Select(f => new KeyValuePair<string, string>(f, page.HiddenValue(f) ?? string.Empty))];

    [Fact]
    public async Task NonAdmin_CannotSeeOrExportTheAuditTrail()
    {
        await using var env = await PortalEnvironment.StartAsync();
        var user = await env.EnrollWithTotpAsync("mona");
        foreach (var path in new[] { "/Admin/Audit", "/Admin/Audit/Export" })
        {
            Assert.Equal("/Account/Denied", (await user.Client.GetAsync(path)).Url.Split('?')[0]);
        }
    }

    [Fact]
    public async Task MailAuditSink_StoresEventsForTheMatchingAccount()
    {
        await using var env = await PortalEnvironment.StartAsync();
        await MailAuditSinkStoresEventsAsync(env);
    }

    /// <summary>Mail-side events land on the matching account. Shared with <see cref="PostgresPortalTests"/>.</summary>
    internal static async Task MailAuditSinkStoresEventsAsync(PortalEnvironment env)
    {
        var user = await env.EnrollWithTotpAsync("nora");
        await DeliverMailEventsAsync(env,
            new AuditEvent { At = env.Time.GetUtcNow(), Kind = AuditKinds.ApprovalRequested, Username = "nora", Detail = "app password abc, service imap", RemoteIp = "198.51.100.9" },
            new AuditEvent { At = env.Time.GetUtcNow(), Kind = AuditKinds.MailLoginThrottled, Username = "nobody-here", RemoteIp = "198.51.100.10" });

        var activity = (await user.Client.GetAsync("/Security/Activity")).TextOf("activity");
        Assert.Contains(AuditKinds.ApprovalRequested, activity, StringComparison.Ordinal);
        Assert.Contains("198.51.100.9", activity, StringComparison.Ordinal);
        Assert.DoesNotContain("198.51.100.10", activity, StringComparison.Ordinal);

        await using var scope = env.Portal.Services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<PortalDbContext>();
        var unknown = await db.SecurityEvents.SingleAsync(e => e.Username == "nobody-here");
        Assert.Null(unknown.UserId);
    }

    [Fact]
    public async Task SecurityEvents_UpdateAndDelete_AreRefusedByTheDatabase()
    {
        await using var env = await PortalEnvironment.StartAsync();
        await UpdateAndDeleteAreRefusedAsync(env);
    }

    /// <summary>UPDATE and DELETE of security events fail in the database itself. Shared with <see cref="PostgresPortalTests"/>.</summary>
    internal static async Task UpdateAndDeleteAreRefusedAsync(PortalEnvironment env)
    {
        await env.EnrollWithTotpAsync("olive");
        await using var scope = env.Portal.Services.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<PortalDbContext>();
        var count = await db.SecurityEvents.CountAsync();
        Assert.True(count > 0);

        // SqliteException or PostgresException: both are what the database itself raised.
        var update = await Assert.ThrowsAnyAsync<DbException>(() => db.SecurityEvents.ExecuteUpdateAsync(s => s.SetProperty(e => e.Detail, "rewritten")));
        Assert.Contains("append-only", update.Message, StringComparison.Ordinal);
        var delete = await Assert.ThrowsAnyAsync<DbException>(() => db.SecurityEvents.ExecuteDeleteAsync());
        Assert.Contains("append-only", delete.Message, StringComparison.Ordinal);

        // Through the change tracker too.
        var one = await db.SecurityEvents.FirstAsync();
        db.SecurityEvents.Remove(one);
        await Assert.ThrowsAsync<DbUpdateException>(() => db.SaveChangesAsync());

        await using var fresh = env.Portal.Services.CreateAsyncScope();
        var check = fresh.ServiceProvider.GetRequiredService<PortalDbContext>();
        Assert.Equal(count, await check.SecurityEvents.CountAsync());
        Assert.DoesNotContain(await check.SecurityEvents.Select(e => e.Detail).ToListAsync(), d => d == "rewritten");
        // Appending still works.
        await env.EnrollWithTotpAsync("pete");
        Assert.True(await check.SecurityEvents.CountAsync() > count);
    }

    /// <summary>What the host's audit pump does with a batch from the mail side.</summary>
    private static Task DeliverMailEventsAsync(PortalEnvironment env, params AuditEvent[] events) =>
        new MailAuditSink(env.Portal.Services.GetRequiredService<IServiceScopeFactory>()).HandleAsync(events, CancellationToken.None);

    private static string Day(DateOnly d) => d.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture);

    [Fact]
    public async Task AdminAudit_LastRepresentableDate_IsAnOpenEnd_NotAnError()
    {
        await using var env = await PortalEnvironment.StartAsync();
        var admin = await env.EnrollWithTotpAsync("root", admin: true);

        var page = await admin.Client.GetRawAsync("/Admin/Audit?to=9999-12-31");
        var export = await admin.Client.PostAsync("/Admin/Audit/Export", null, ExportFields(page), page.AntiforgeryToken(), follow: false);

        Assert.Equal(HttpStatusCode.OK, page.Status);
        Assert.Contains("root", page.TextOf("audit-events"), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.OK, export.Status);
        Assert.Contains("\"username\":\"root\"", export.Html, StringComparison.Ordinal);
    }
}
