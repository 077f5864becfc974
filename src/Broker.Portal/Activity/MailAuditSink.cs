using Broker.Core.Audit;
using Broker.Portal.Data;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;

namespace Broker.Portal.Activity;

/// <summary>
/// Stores the mail side's audit events (denied and throttled logins, first use from a new
/// network) as security events of the matching portal account, one database round trip per
/// batch. Append-only: nothing here updates or deletes.
/// </summary>
public sealed class MailAuditSink(IServiceScopeFactory scopes) : IAuditSink
{
    public async Task HandleAsync(IReadOnlyList<AuditEvent> events, CancellationToken ct)
    {
        await using var scope = scopes.CreateAsyncScope();
        var db = scope.ServiceProvider.GetRequiredService<PortalDbContext>();
        var names = events.Select(e => e.Username).OfType<string>().Distinct().ToList();
        var ids = await db.Users.Where(u => names.Contains(u.UserName!)).Select(u => new { u.Id, u.UserName }).ToDictionaryAsync(u => u.UserName!, u => u.Id, ct);
        // Events come from Redis: clipped to the columns and without a kind dropped, so that one
        // malformed event cannot make every later batch fail (the pump would hold them forever).
        foreach (var e in events.Where(e => !string.IsNullOrWhiteSpace(e.Kind)))
        {
            var detail = string.Join(", ", new[] { e.Detail, e.Client is null ? null : $"client {e.Client}", e.Caller is null ? null : $"via {e.Caller}" }.Where(s => !string.IsNullOrEmpty(s)));
            db.SecurityEvents.Add(new SecurityEvent
            {
                UserId = e.Username is not null && ids.TryGetValue(e.Username, out var id) ? id : null,
                Username = Columns.Clip(e.Username ?? string.Empty, SecurityEvent.UsernameLength),
                At = e.At,
                Kind = Columns.Clip(e.Kind, SecurityEvent.KindLength),
                Detail = Columns.Clip(detail, SecurityEvent.DetailLength),
                RemoteIp = e.RemoteIp is null ? null : Columns.Clip(e.RemoteIp, SecurityEvent.RemoteIpLength),
            });
        }

        await db.SaveChangesAsync(ct);
    }
}
