using System.Text.Json;
using System.Text.Json.Serialization;
using Broker.Core.Redis;
using Microsoft.Extensions.Logging;
using StackExchange.Redis;

namespace Broker.Core.Audit;

/// <summary>A security event seen by a role that has no database (validation): who, what, when, from where. Never a secret.</summary>
public sealed record AuditEvent
{
    public required DateTimeOffset At { get; init; }

    public required string Kind { get; init; }

    public string? Username { get; init; }

    public string Detail { get; init; } = string.Empty;

    public string? RemoteIp { get; init; }

    public string? Client { get; init; }

    /// <summary>The mail server (caller) that asked.</summary>
    public string? Caller { get; init; }
}

/// <summary>Kinds of events recorded from the mail side.</summary>
public static class AuditKinds
{
    public const string MailLoginDenied = "Mail login denied";
    public const string MailLoginThrottled = "Mail login throttled";
    public const string FirstUseFromNetwork = "App password used from a new network";
    public const string ApprovalRequested = "New network awaiting approval";

    /// <summary>The right app password, refused because of where it came from: whoever tried it has it.</summary>
    public const string UsedOutsideLimits = "App password used outside its allowed networks or countries";
}

[JsonSourceGenerationOptions(JsonSerializerDefaults.Web, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(AuditEvent))]
internal sealed partial class AuditJsonContext : JsonSerializerContext;

/// <summary>
/// Hands audit events from the validation hot path to the portal, which writes them to the
/// database in batches. Enqueueing is fire-and-forget (no await on the login's path); the queue
/// is a capped Redis list, so a portal that is down for long loses the oldest events, never
/// blocks a login. Events a handler could not take are put back (<see cref="RequeueAsync"/>).
/// </summary>
public sealed partial class AuditOutbox(IConnectionMultiplexer redis, RedisKeys keys, ILogger<AuditOutbox> logger)
{
    /// <summary>Most events kept waiting for the portal.</summary>
    public const int Capacity = 100_000;

    public void Enqueue(AuditEvent e)
    {
        var json = JsonSerializer.Serialize(e, AuditJsonContext.Default.AuditEvent);
        try
        {
            var db = redis.GetDatabase();
            _ = db.ListLeftPushAsync(keys.AuditOutbox, json, flags: CommandFlags.FireAndForget);
            _ = db.ListTrimAsync(keys.AuditOutbox, 0, Capacity - 1, CommandFlags.FireAndForget);
        }
        catch (RedisException)
        {
            // Never fail a login over its audit record; the log line for the event was already written.
            Log.Dropped(logger);
        }
    }

    /// <summary>Takes up to <paramref name="max"/> of the oldest events off the queue.</summary>
    public async Task<IReadOnlyList<AuditEvent>> DequeueAsync(int max, CancellationToken ct = default)
    {
        ct.ThrowIfCancellationRequested();
        // Not abandoned on cancellation: once popped, the events exist only in this answer.
        var values = await redis.GetDatabase().ListRightPopAsync(keys.AuditOutbox, max);
        var events = new List<AuditEvent>(values.Length);
        foreach (var v in values)
        {
            try
            {
                if (JsonSerializer.Deserialize((string)v!, AuditJsonContext.Default.AuditEvent) is { } e)
                {
                    events.Add(e);
                }
            }
            catch (JsonException)
            {
                Log.Unreadable(logger);
            }
        }

        return events;
    }

    /// <summary>
    /// Puts events taken off the queue back at its oldest end, so they are the next taken, in
    /// their order (<paramref name="oldestFirst"/>). The cap still holds: when the queue is full,
    /// the oldest events are the ones dropped, as for any other.
    /// </summary>
    public async Task RequeueAsync(IReadOnlyList<AuditEvent> oldestFirst, CancellationToken ct = default)
    {
        if (oldestFirst.Count == 0)
        {
            return;
        }

        // RPUSH appends on the right, where RPOP takes from: the oldest must be pushed last.
        var values = new RedisValue[oldestFirst.Count];
        for (var i = 0; i < values.Length; i++)
        {
            values[i] = JsonSerializer.Serialize(oldestFirst[values.Length - 1 - i], AuditJsonContext.Default.AuditEvent);
        }

        var db = redis.GetDatabase();
        await db.ListRightPushAsync(keys.AuditOutbox, values).WaitAsync(ct);
        await db.ListTrimAsync(keys.AuditOutbox, 0, Capacity - 1).WaitAsync(ct);
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 1204, Level = LogLevel.Warning, Message = "Audit event dropped: the store is unavailable")]
        public static partial void Dropped(ILogger logger);

        [LoggerMessage(EventId = 1201, Level = LogLevel.Warning, Message = "Dropped an unreadable audit event from the queue")]
        public static partial void Unreadable(ILogger logger);
    }
}
