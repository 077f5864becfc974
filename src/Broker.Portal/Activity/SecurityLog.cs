using Broker.Portal.Data;
using Microsoft.AspNetCore.Http;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace Broker.Portal.Activity;

/// <summary>Event kinds shown to users in their security activity and to admins in the audit trail.</summary>
public static class SecurityEventKinds
{
    public const string SignIn = "Signed in";
    public const string SignInFailed = "Sign-in failed";
    public const string StepUp = "Re-verified identity";
    public const string Enrolled = "Set password from enrollment link";
    public const string PasskeyAdded = "Passkey added";
    public const string PasskeyRemoved = "Passkey removed";
    public const string TotpAdded = "Authenticator app added";
    public const string TotpRemoved = "Authenticator app removed";
    public const string RecoveryCodesGenerated = "Recovery codes generated";
    public const string RecoveryCodeUsed = "Recovery code used";
    public const string FactorRepairAllowed = "Factor repair allowed after recovery code";
    public const string AppPasswordIssued = "App password created";
    public const string AppPasswordRenewed = "App password renewed";
    public const string AppPasswordRevoked = "App password revoked";
    public const string AppPasswordsRevokedAll = "All app passwords revoked";
    public const string SignedOutEverywhere = "Signed out everywhere";
    public const string UserCreated = "Account created";
    public const string UserDisabled = "Account disabled";
    public const string UserEnabled = "Account enabled";
    public const string FactorsReset = "Sign-in factors reset by administrator";
    public const string EnrollmentLinkIssued = "Enrollment link issued";
    public const string RegistrationRequested = "Self-registration requested";
    public const string EnrollmentLinkMailed = "Enrollment link sent by email";
    public const string UnfinishedAccountRemoved = "Unfinished self-registered account removed";
    public const string Admin = "Admin rights changed";
    public const string NetworkApproved = "New network approved";
    public const string NetworkDenied = "New network denied, app password revoked";
    public const string AllowedNetworksChanged = "Allowed networks changed";
    public const string AllowedCountriesChanged = "Allowed countries changed";
    public const string NetworkApprovalSetting = "New-network approval setting changed";
    public const string AuditExported = "Audit trail exported";
    public const string PolicyChanged = "Policy changed by administrator";
}

/// <summary>Writes security activity. Never records secrets: only what happened, to whom, from where.</summary>
public sealed class SecurityLog(PortalDbContext db, IServiceScopeFactory scopes, IHttpContextAccessor http, TimeProvider time)
{
    /// <summary>Records an event; <paramref name="remoteIp"/> is for events recorded outside their request (self-registration's worker).</summary>
    /// <remarks>
    /// Written through a context of its own, so that the event is saved alone: with the request's
    /// context, a change that failed earlier in the request (an account update that lost a race to
    /// a parallel request) would be saved again here, throw, lose the event and answer 500.
    /// </remarks>
    public async Task RecordAsync(PortalUser user, string kind, string detail = "", string? actor = null, string? remoteIp = null)
    {
        ArgumentNullException.ThrowIfNull(user);
        await using var scope = scopes.CreateAsyncScope();
        var own = scope.ServiceProvider.GetRequiredService<PortalDbContext>();
        own.SecurityEvents.Add(new SecurityEvent
        {
            UserId = user.Id,
            Username = user.UserName ?? string.Empty,
            At = time.GetUtcNow(),
            Kind = kind,
            Detail = Columns.Clip(detail, SecurityEvent.DetailLength),
            RemoteIp = remoteIp ?? http.HttpContext?.Connection.RemoteIpAddress?.ToString(),
            Actor = actor,
        });
        await own.SaveChangesAsync();
    }

    public Task<List<SecurityEvent>> ForUserAsync(string userId, int take = 100) =>
        db.SecurityEvents.Where(e => e.UserId == userId).OrderByDescending(e => e.At).Take(take).ToListAsync();

    public Task<List<SecurityEvent>> AuditTrailAsync(int take = 200) =>
        db.SecurityEvents.Where(e => e.Actor != null).OrderByDescending(e => e.At).Take(take).ToListAsync();

    /// <summary>All events matching an admin's filter, oldest first (read only: events are never changed).</summary>
    public IQueryable<SecurityEvent> Search(AuditFilter filter)
    {
        var q = db.SecurityEvents.AsNoTracking();
        if (!string.IsNullOrWhiteSpace(filter.User))
        {
            var user = filter.User.Trim().ToLowerInvariant();
            q = q.Where(e => e.Username.Contains(user));
        }

        if (!string.IsNullOrWhiteSpace(filter.Kind))
        {
            q = q.Where(e => e.Kind == filter.Kind);
        }

        if (filter.From is { } from)
        {
            var start = new DateTimeOffset(from.ToDateTime(TimeOnly.MinValue), TimeSpan.Zero);
            q = q.Where(e => e.At >= start);
        }

        // The last representable day has no next day to end before; it bounds nothing, so it is left out.
        if (filter.To is { } to && to < DateOnly.MaxValue)
        {
            // Inclusive: the whole "to" day (UTC).
            var end = new DateTimeOffset(to.AddDays(1).ToDateTime(TimeOnly.MinValue), TimeSpan.Zero);
            q = q.Where(e => e.At < end);
        }

        return q;
    }

    /// <summary>The kinds that occur, for the admin filter.</summary>
    public Task<List<string>> KindsAsync() => db.SecurityEvents.Select(e => e.Kind).Distinct().OrderBy(k => k).ToListAsync();
}

/// <summary>An admin's audit filter: part of a username, an event kind, a UTC date range (inclusive).</summary>
public sealed record AuditFilter(string? User, string? Kind, DateOnly? From, DateOnly? To);
