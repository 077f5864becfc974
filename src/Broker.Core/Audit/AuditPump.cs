using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Broker.Core.Audit;

/// <summary>Receives audit events from the outbox in batches (the portal stores them; the notifier mails some).</summary>
public interface IAuditSink
{
    Task HandleAsync(IReadOnlyList<AuditEvent> events, CancellationToken ct);
}

/// <summary>
/// Drains the audit outbox in batches of up to 500 and hands each batch to every handler, at
/// least once. Runs in the role that owns the database (the portal); several instances may run,
/// each batch goes to exactly one of them while that one lives.
/// </summary>
/// <remarks>
/// A handler that fails on a batch (the database is down) keeps it, in order, and is offered it
/// again every <see cref="RetryDelay"/> until it takes it; the other handlers go on receiving new
/// batches, so a database outage does not hold back the security notices. Past
/// <see cref="MaxHeld"/> events held, the pump stops taking batches and the rest waits in the
/// outbox. Batches stay in this pump's claim in Redis until every handler has taken them
/// (<see cref="AuditOutbox.ClaimAsync"/>): on a clean stop the claim goes back to the outbox at
/// once; after a crash, or a stall longer than <see cref="Lease"/>, another pump (or this one
/// restarted) puts it back. Either way handlers that had already taken those events get them twice.
/// </remarks>
public sealed partial class AuditPump(AuditOutbox outbox, IEnumerable<IAuditSink> handlers, ILogger<AuditPump> logger) : BackgroundService
{
    public const int BatchSize = 500;

    /// <summary>Most events held in memory for failing handlers before the pump stops taking batches.</summary>
    public const int MaxHeld = 20 * BatchSize;

    /// <summary>Pause between polls when the outbox was empty.</summary>
    public static TimeSpan IdleDelay { get; set; } = TimeSpan.FromMilliseconds(500);

    /// <summary>Pause before a failing handler is offered the batches it failed on again.</summary>
    public TimeSpan RetryDelay { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>How long this pump's claim outlives its last poll; past it, another pump may put the claim back.</summary>
    public TimeSpan Lease { get; init; } = TimeSpan.FromMinutes(1);

    /// <summary>How often the pump looks for the claims of pumps that died.</summary>
    public TimeSpan ReclaimInterval { get; init; } = TimeSpan.FromSeconds(30);

    private readonly IAuditSink[] _handlers = [.. handlers];

    /// <summary>This process's claim; a restarted portal gets a new one and reclaims the old after its lease.</summary>
    private readonly string _id = Guid.NewGuid().ToString("N");

    /// <summary>Batches taken and not yet taken by every handler, oldest first: exactly this pump's claim.</summary>
    private readonly Queue<Batch> _unsettled = new();

    private long _reclaimAt;

    private long _renewedAt;

    /// <summary>Per failing handler, the batches it has not taken yet, oldest first.</summary>
    private readonly Dictionary<IAuditSink, Queue<Batch>> _held = [];

    private long _taken;

    private long _retryAt;

    /// <summary>Events taken off the outbox that some handler has not taken yet.</summary>
    public int Held => HeldBatches().Sum(b => b.Events.Count);

    /// <summary>Entries in this pump's claim in Redis, as far as it knows: what the scripts check the claim against.</summary>
    private int Claimed => _unsettled.Sum(b => b.Size);

    /// <summary>A third of the lease is gone since it was last renewed: renew it before it can run out.</summary>
    private bool LeaseRenewalDue => Environment.TickCount64 - _renewedAt >= (long)Lease.TotalMilliseconds / 3;

    /// <summary>
    /// Puts back the claims of dead pumps (every <see cref="ReclaimInterval"/>), offers held
    /// batches to the handlers that failed on them (once the retry delay is over), then takes one
    /// new batch and hands it to every handler. Returns how many events it took.
    /// </summary>
    public async Task<int> PumpOnceAsync(CancellationToken ct)
    {
        if (Environment.TickCount64 >= _reclaimAt)
        {
            _reclaimAt = Environment.TickCount64 + (long)ReclaimInterval.TotalMilliseconds;
            if (await outbox.ReclaimAsync(_id, ct) is > 0 and var reclaimed)
            {
                Log.Reclaimed(logger, reclaimed);
            }
        }

        await RetryHeldAsync(ct);
        // Backpressure: past MaxHeld, what is not taken stays in the outbox (capped), not in this process.
        var taken = Held < MaxHeld ? await TakeAsync(ct) : 0;
        await SettleAsync(ct);
        return taken;
    }

    private async Task<int> TakeAsync(CancellationToken ct)
    {
        var claim = await outbox.ClaimAsync(_id, Claimed, BatchSize, Lease, ct);
        if (claim is null)
        {
            await ResetAsync();
            return 0;
        }

        if (claim.Size == 0)
        {
            return 0;
        }

        _renewedAt = Environment.TickCount64;
        var batch = new Batch(++_taken, claim.Events, claim.Size);
        _unsettled.Enqueue(batch);
        foreach (var handler in _handlers)
        {
            if (batch.Events.Count == 0)
            {
                break;
            }

            if (_held.TryGetValue(handler, out var queue))
            {
                // Behind the batches it has not taken yet: each handler sees events in order.
                queue.Enqueue(batch);
            }
            else if (!await DeliverAsync(handler, batch, ct))
            {
                if (_held.Count == 0)
                {
                    _retryAt = Environment.TickCount64 + (long)RetryDelay.TotalMilliseconds;
                }

                _held[handler] = new Queue<Batch>([batch]);
            }
        }

        return claim.Events.Count;
    }

    /// <summary>
    /// Drops from the claim the oldest batches every handler has taken (handlers take batches in
    /// order, so those are always a prefix of <see cref="_unsettled"/>), and renews the lease while
    /// anything stays claimed.
    /// </summary>
    private async Task SettleAsync(CancellationToken ct)
    {
        var settled = 0;
        var count = 0;
        foreach (var batch in _unsettled)
        {
            if (_held.Values.Any(q => q.Peek().Sequence <= batch.Sequence))
            {
                break;
            }

            settled++;
            count += batch.Size;
        }

        // Renewed well before it runs out, not on every poll: each renewal is a write.
        if (count == 0 && (Claimed == 0 || !LeaseRenewalDue))
        {
            return;
        }

        if (!await outbox.SettleAsync(_id, Claimed, count, Lease, ct))
        {
            await ResetAsync();
            return;
        }

        for (var i = 0; i < settled; i++)
        {
            _unsettled.Dequeue();
        }

        _renewedAt = Environment.TickCount64;
    }

    /// <summary>
    /// The claim in Redis is not what this pump holds: another pump put it back after this one
    /// stalled past its lease, or a call timed out after Redis had run it. Whatever is left in the
    /// claim goes back too and everything is delivered again: twice rather than never.
    /// </summary>
    private async Task ResetAsync()
    {
        Log.ClaimLost(logger, Claimed);
        await ReleaseAsync();
    }

    private async Task RetryHeldAsync(CancellationToken ct)
    {
        if (_held.Count == 0 || Environment.TickCount64 < _retryAt)
        {
            return;
        }

        // After a stall past the lease another pump may have put these batches back and delivered
        // them already: check the claim is still this pump's before delivering them again.
        if (!await outbox.SettleAsync(_id, Claimed, 0, Lease, ct))
        {
            await ResetAsync();
            return;
        }

        _renewedAt = Environment.TickCount64;
        foreach (var (handler, queue) in _held.ToList())
        {
            while (queue.TryPeek(out var batch) && await DeliverAsync(handler, batch, ct))
            {
                queue.Dequeue();
            }

            if (queue.Count == 0)
            {
                _held.Remove(handler);
                Log.HandlerRecovered(logger, handler.GetType().Name);
            }
        }

        _retryAt = Environment.TickCount64 + (long)RetryDelay.TotalMilliseconds;
    }

    private async Task<bool> DeliverAsync(IAuditSink handler, Batch batch, CancellationToken ct)
    {
        await RenewLeaseIfDueAsync(ct);
        try
        {
            await handler.HandleAsync(batch.Events, ct);
            return true;
        }
        catch (Exception ex)
        {
            // Any failure, a database timeout as much as an error: the batch is held, not dropped.
            if (!ct.IsCancellationRequested)
            {
                Log.HandlerFailed(logger, handler.GetType().Name, batch.Events.Count, ex);
            }

            return false;
        }
    }

    /// <summary>
    /// Slow handlers one after another (a mail relay timing out) must not outlast the lease, or
    /// another instance takes the claim back and delivers it again. Best effort: a failure here
    /// leaves the lease to the next settle, and a claim found taken back is dealt with there.
    /// </summary>
    private async Task RenewLeaseIfDueAsync(CancellationToken ct)
    {
        if (Claimed == 0 || !LeaseRenewalDue)
        {
            return;
        }

        try
        {
            if (await outbox.SettleAsync(_id, Claimed, 0, Lease, ct))
            {
                _renewedAt = Environment.TickCount64;
            }
        }
        catch (Exception ex) when (!ct.IsCancellationRequested)
        {
            Log.OutboxUnavailable(logger, ex.GetType().Name);
        }
    }

    private IEnumerable<Batch> HeldBatches() => _held.Values.SelectMany(q => q).Distinct();

    /// <summary>Puts this pump's claim (what some handler has not taken yet) back into the outbox, oldest first.</summary>
    private async Task ReleaseAsync()
    {
        _held.Clear();
        _unsettled.Clear();
        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            if (await outbox.ReleaseAsync(_id, timeout.Token) is > 0 and var count)
            {
                Log.Returned(logger, count);
            }
        }
        catch (Exception ex)
        {
            Log.ReturnFailed(logger, ex.GetType().Name, Lease);
        }
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        try
        {
            while (!stoppingToken.IsCancellationRequested)
            {
                int taken;
                try
                {
                    taken = await PumpOnceAsync(stoppingToken);
                }
                catch (Exception ex) when (!stoppingToken.IsCancellationRequested)
                {
                    // Whatever fails (a stalled store times out as a TimeoutException, not a RedisException),
                    // the next poll tries again: an exception out of ExecuteAsync would stop the whole host.
                    Log.OutboxUnavailable(logger, ex.GetType().Name);
                    taken = 0;
                }

                if (taken < BatchSize)
                {
                    await Task.Delay(IdleDelay, stoppingToken);
                }
            }
        }
        finally
        {
            await ReleaseAsync();
        }
    }

    /// <summary>Events taken off the outbox together, in order of <see cref="Sequence"/>; <see cref="Size"/> entries of the claim.</summary>
    private sealed record Batch(long Sequence, IReadOnlyList<AuditEvent> Events, int Size);

    private static partial class Log
    {
        [LoggerMessage(EventId = 1202, Level = LogLevel.Error, Message = "Audit handler {Handler} failed on a batch of {Count} events; holding it for a retry")]
        public static partial void HandlerFailed(ILogger logger, string handler, int count, Exception exception);

        [LoggerMessage(EventId = 1203, Level = LogLevel.Warning, Message = "Audit outbox unavailable ({ErrorType}); retrying")]
        public static partial void OutboxUnavailable(ILogger logger, string errorType);

        [LoggerMessage(EventId = 1205, Level = LogLevel.Information, Message = "Audit handler {Handler} took the batches it had failed on")]
        public static partial void HandlerRecovered(ILogger logger, string handler);

        [LoggerMessage(EventId = 1206, Level = LogLevel.Information, Message = "Returned {Count} audit events not yet taken by every handler to the outbox")]
        public static partial void Returned(ILogger logger, int count);

        [LoggerMessage(EventId = 1207, Level = LogLevel.Warning, Message = "Could not return the audit events not yet taken by every handler to the outbox ({ErrorType}); another instance puts them back once this one's lease of {Lease} has run out")]
        public static partial void ReturnFailed(ILogger logger, string errorType, TimeSpan lease);

        [LoggerMessage(EventId = 1208, Level = LogLevel.Warning, Message = "Put {Count} audit events claimed by a portal instance that stopped answering back into the outbox; handlers may see some twice")]
        public static partial void Reclaimed(ILogger logger, int count);

        [LoggerMessage(EventId = 1209, Level = LogLevel.Warning, Message = "The audit claim in the store does not match the {Count} events this instance holds (it stalled past its lease, or a store call timed out); starting over, handlers may see some events twice")]
        public static partial void ClaimLost(ILogger logger, int count);
    }
}
