using System.Text.Json;
using System.Text.Json.Serialization;
using Broker.Portal.Activity;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.EntityFrameworkCore;

namespace Broker.Portal.Pages.Admin;

/// <summary>
/// Every security event — portal and mail side — filtered by user, kind and UTC date range, and
/// exported as JSON lines. Read only: events are append-only, in code and in the database.
/// </summary>
public sealed class AdminAuditModel(SecurityLog log) : PortalPage
{
    public const int PageSize = 500;

    public IReadOnlyList<Data.SecurityEvent> Events { get; private set; } = [];

    public IReadOnlyList<string> Kinds { get; private set; } = [];

    public AuditFilter Filter { get; private set; } = new(null, null, null, null);

    public async Task<IActionResult> OnGetAsync(string? user, string? kind, DateOnly? from, DateOnly? to)
    {
        Filter = new AuditFilter(user, kind, from, to);
        Kinds = await log.KindsAsync();
        Events = await log.Search(Filter).OrderByDescending(e => e.At).ThenByDescending(e => e.Id).Take(PageSize).ToListAsync();
        return Page();
    }

    /// <summary>
    /// The export used to be a GET: a link on any other site could make a signed-in admin's browser
    /// run it (the session cookie is SameSite=Lax, sent on top-level navigation), recording an export
    /// and downloading the file. It is a POST with antiforgery now; an old link or bookmark only
    /// opens the page with its filters.
    /// </summary>
    public IActionResult OnGetExport(string? user, string? kind, DateOnly? from, DateOnly? to) =>
        Redirect(PageUrl(new AuditFilter(user, kind, from, to)));

    /// <summary>The matching events as JSON lines, oldest first; a bulk copy of the trail needs a fresh MFA check.</summary>
    public async Task<IActionResult> OnPostExportAsync(string? user, string? kind, DateOnly? from, DateOnly? to)
    {
        var filter = new AuditFilter(user, kind, from, to);
        if (!Sessions.IsFresh(User))
        {
            // Back to the page with its filters after the check: the export is a form there.
            return StepUp(PageUrl(filter));
        }

        var admin = await CurrentUserAsync();
        await log.RecordAsync(admin, SecurityEventKinds.AuditExported, Describe(filter), admin.UserName);

        Response.ContentType = "application/x-ndjson; charset=utf-8";
        Response.Headers.ContentDisposition = $"attachment; filename=\"broker-audit-{DateTime.UtcNow:yyyyMMdd-HHmmss}.jsonl\"";
        var ct = HttpContext.RequestAborted;
        await foreach (var e in log.Search(filter).OrderBy(e => e.At).ThenBy(e => e.Id).AsAsyncEnumerable().WithCancellation(ct))
        {
            var line = new AuditLine(e.Id, e.At, e.Username, e.Kind, e.Detail, e.RemoteIp, e.Actor);
            await JsonSerializer.SerializeAsync(Response.Body, line, AuditJsonContext.Default.AuditLine, ct);
            await Response.Body.WriteAsync("\n"u8.ToArray(), ct);
        }

        return new EmptyResult();
    }

    private static string PageUrl(AuditFilter f) => QueryHelpers.AddQueryString("/Admin/Audit", Query(f));

    private static Dictionary<string, string?> Query(AuditFilter f) => new Dictionary<string, string?>
    {
        ["user"] = string.IsNullOrWhiteSpace(f.User) ? null : f.User,
        ["kind"] = string.IsNullOrWhiteSpace(f.Kind) ? null : f.Kind,
        ["from"] = f.From?.ToString("yyyy-MM-dd", System.Globalization.CultureInfo.InvariantCulture),
        ["to"] = f.To?.ToString("yyyy-MM-dd", System.Globalization.CultureInfo.InvariantCulture),
    }.Where(p => p.Value is not null).ToDictionary();

    private static string Describe(AuditFilter f)
    {
        var parts = Query(f).Select(p => $"{p.Key}={p.Value}").ToList();
        return parts.Count == 0 ? "all events" : string.Join(", ", parts);
    }
}

/// <summary>One exported audit event (one JSON line). Nothing secret is ever in an event.</summary>
public sealed record AuditLine(long Id, DateTimeOffset At, string Username, string Kind, string Detail, string? RemoteIp, string? Actor);

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(AuditLine))]
internal sealed partial class AuditJsonContext : JsonSerializerContext;
