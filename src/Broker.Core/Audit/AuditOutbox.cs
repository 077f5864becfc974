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

/// <summary>Events a pump claimed; <see cref="Size"/> is how many entries its claim grew by, unreadable ones included.</summary>
public sealed record ClaimedEvents(IReadOnlyList<AuditEvent> Events, int Size);

[JsonSourceGenerationOptions(JsonSerializerDefaults.Web, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(AuditEvent))]
internal sealed partial class AuditJsonContext : JsonSerializerContext;

/// <summary>
/// Hands audit events from the validation hot path to the portal, which writes them to the
/// database in batches. Enqueueing is fire-and-forget (no await on the login's path); the queue
/// is a capped Redis list, so a portal that is down for long loses the oldest events, never
/// blocks a login.
/// </summary>
/// <remarks>
/// A pump takes events with <see cref="ClaimAsync"/>, which moves them, atomically, into a claim
/// list of its own instead of out of Redis; they leave it only once every handler has taken them
/// (<see cref="SettleAsync"/>). A claim lives as long as its lease: a pump that crashes or stalls
/// past it has its claim put back into the outbox by any other pump (<see cref="ReclaimAsync"/>),
/// so no event is lost with the process that held it; some handlers may see those events twice.
/// </remarks>
public sealed partial class AuditOutbox(IConnectionMultiplexer redis, RedisKeys keys, ILogger<AuditOutbox> logger)
{
    /// <summary>Most events kept waiting for the portal.</summary>
    public const int Capacity = 100_000;

    // Every script checks the claim list has the length its pump believes: a pump whose claim
    // was reclaimed while it stalled must not trim (and lose) events it never took.
    // KEYS: outbox, claim, lease, claims. ARGV: most to take, pump id, lease(ms), expected claim length.
    // An idle poll writes nothing (no lease renewal, no AOF entry twice a second).
    // LRANGE + LTRIM rather than RPOP with a count: Garnet's RPOP inside Lua answers garbage when
    // the list holds fewer entries than asked for.
    private const string ClaimScript = """
        if redis.call('LLEN', KEYS[2]) ~= tonumber(ARGV[4]) then return false end
        local n = tonumber(ARGV[1])
        local newest = redis.call('LRANGE', KEYS[1], -n, -1)
        if #newest == 0 then return {} end
        redis.call('SADD', KEYS[4], ARGV[2])
        redis.call('SET', KEYS[3], '1', 'PX', ARGV[3])
        redis.call('LTRIM', KEYS[1], 0, -n - 1)
        local items = {}
        for i = #newest, 1, -1 do items[#items + 1] = newest[i] end
        local unpack = unpack or table.unpack
        redis.call('RPUSH', KEYS[2], unpack(items))
        return items
        """;

    // KEYS: claim, lease, claims. ARGV: events settled (oldest of the claim), lease(ms), expected claim length, pump id.
    private const string SettleScript = """
        if redis.call('LLEN', KEYS[1]) ~= tonumber(ARGV[3]) or redis.call('SISMEMBER', KEYS[3], ARGV[4]) == 0 then return -1 end
        if tonumber(ARGV[1]) > 0 then redis.call('LTRIM', KEYS[1], ARGV[1], -1) end
        redis.call('SET', KEYS[2], '1', 'PX', ARGV[2])
        return redis.call('LLEN', KEYS[1])
        """;

    // KEYS: outbox, claim, lease, claims. ARGV: pump id, capacity, '1' = even while its lease lasts (the pump's own, on stop).
    // The claim goes back to the oldest end of the outbox in its order, so it is taken next.
    private const string ReleaseScript = """
        if ARGV[3] ~= '1' and redis.call('EXISTS', KEYS[3]) == 1 then return 0 end
        local items = redis.call('LRANGE', KEYS[2], 0, -1)
        for i = #items, 1, -1 do redis.call('RPUSH', KEYS[1], items[i]) end
        if #items > 0 then redis.call('LTRIM', KEYS[1], 0, tonumber(ARGV[2]) - 1) end
        redis.call('DEL', KEYS[2], KEYS[3])
        redis.call('SREM', KEYS[4], ARGV[1])
        return #items
        """;

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

    /// <summary>Takes up to <paramref name="max"/> of the oldest events off the queue for good (tools and tests; the pump claims).</summary>
    public async Task<IReadOnlyList<AuditEvent>> DequeueAsync(int max, CancellationToken ct = default)
    {
        ct.ThrowIfCancellationRequested();
        // Not abandoned on cancellation: once popped, the events exist only in this answer.
        var values = await redis.GetDatabase().ListRightPopAsync(keys.AuditOutbox, max);
        return Parse(values);
    }

    /// <summary>
    /// Moves up to <paramref name="max"/> of the oldest events into the claim of pump
    /// <paramref name="pump"/> and, when there were any, renews its lease. <paramref name="claimed"/> is how many events
    /// the pump believes its claim holds. Returns null when that is not so (the claim was put back
    /// by another pump): nothing is taken then. <see cref="ClaimedEvents.Size"/> counts unreadable
    /// events too, which are dropped from <see cref="ClaimedEvents.Events"/> but are in the claim.
    /// </summary>
    public async Task<ClaimedEvents?> ClaimAsync(string pump, int claimed, int max, TimeSpan lease, CancellationToken ct = default)
    {
        ct.ThrowIfCancellationRequested();
        var result = await redis.GetDatabase().ScriptEvaluateAsync(
            ClaimScript,
            [keys.AuditOutbox, keys.AuditClaim(pump), keys.AuditLease(pump), keys.AuditClaims],
            [max, pump, (long)lease.TotalMilliseconds, claimed]);
        if (result.IsNull)
        {
            return null;
        }

        var values = (RedisValue[])result!;
        return new ClaimedEvents(Parse(values), values.Length);
    }

    /// <summary>
    /// Drops the <paramref name="count"/> oldest events of a pump's claim (every handler has taken
    /// them) and renews its lease. False when the claim is not what the pump believes
    /// (<paramref name="claimed"/> events): it was put back by another pump, and nothing changed.
    /// </summary>
    public async Task<bool> SettleAsync(string pump, int claimed, int count, TimeSpan lease, CancellationToken ct = default)
    {
        ct.ThrowIfCancellationRequested();
        var left = (long)await redis.GetDatabase().ScriptEvaluateAsync(
            SettleScript,
            [keys.AuditClaim(pump), keys.AuditLease(pump), keys.AuditClaims],
            [count, (long)lease.TotalMilliseconds, claimed, pump]);
        return left >= 0;
    }

    /// <summary>Puts a pump's whole claim back at the oldest end of the outbox, in order, and ends its lease. Returns how many events.</summary>
    public async Task<int> ReleaseAsync(string pump, CancellationToken ct = default) =>
        (int)(long)await redis.GetDatabase().ScriptEvaluateAsync(
            ReleaseScript,
            [keys.AuditOutbox, keys.AuditClaim(pump), keys.AuditLease(pump), keys.AuditClaims],
            [pump, Capacity, "1"]).WaitAsync(ct);

    /// <summary>
    /// Puts back into the outbox the claims of pumps whose lease has run out (crashed or stalled),
    /// except <paramref name="self"/>'s. Returns how many events went back.
    /// </summary>
    public async Task<int> ReclaimAsync(string self, CancellationToken ct = default)
    {
        var db = redis.GetDatabase();
        var moved = 0;
        foreach (var member in await db.SetMembersAsync(keys.AuditClaims).WaitAsync(ct))
        {
            var pump = (string)member!;
            if (pump == self)
            {
                continue;
            }

            moved += (int)(long)await db.ScriptEvaluateAsync(
                ReleaseScript,
                [keys.AuditOutbox, keys.AuditClaim(pump), keys.AuditLease(pump), keys.AuditClaims],
                [pump, Capacity, "0"]).WaitAsync(ct);
        }

        return moved;
    }

    private List<AuditEvent> Parse(RedisValue[] values)
    {
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

    private static partial class Log
    {
        [LoggerMessage(EventId = 1204, Level = LogLevel.Warning, Message = "Audit event dropped: the store is unavailable")]
        public static partial void Dropped(ILogger logger);

        [LoggerMessage(EventId = 1201, Level = LogLevel.Warning, Message = "Dropped an unreadable audit event from the queue")]
        public static partial void Unreadable(ILogger logger);
    }
}
