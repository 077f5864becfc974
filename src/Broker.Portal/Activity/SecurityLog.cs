using Broker.Portal.Data;
using Microsoft.AspNetCore.Http;
using Microsoft.EntityFrameworkCore;

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
    public const string Admin = "Admin rights changed";
}

/// <summary>Writes security activity. Never records secrets: only what happened, to whom, from where.</summary>
public sealed class SecurityLog(PortalDbContext db, IHttpContextAccessor http, TimeProvider time)
{
    public async Task RecordAsync(PortalUser user, string kind, string detail = "", string? actor = null)
    {
        db.SecurityEvents.Add(new SecurityEvent
        {
            UserId = user.Id,
            Username = user.UserName ?? string.Empty,
            At = time.GetUtcNow(),
            Kind = kind,
            Detail = detail.Length > 1000 ? detail[..1000] : detail,
            RemoteIp = http.HttpContext?.Connection.RemoteIpAddress?.ToString(),
            Actor = actor,
        });
        await db.SaveChangesAsync();
    }

    public Task<List<SecurityEvent>> ForUserAsync(string userId, int take = 100) =>
        db.SecurityEvents.Where(e => e.UserId == userId).OrderByDescending(e => e.At).Take(take).ToListAsync();

    public Task<List<SecurityEvent>> AuditTrailAsync(int take = 200) =>
        db.SecurityEvents.Where(e => e.Actor != null).OrderByDescending(e => e.At).Take(take).ToListAsync();
}
