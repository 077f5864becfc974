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
/// each batch goes to exactly one of them (RPOP is atomic).
/// </summary>
/// <remarks>
/// A handler that fails on a batch (the database is down) keeps it, in order, and is offered it
/// again every <see cref="RetryDelay"/> until it takes it; the other handlers go on receiving new
/// batches, so a database outage does not hold back the security notices. Past
/// <see cref="MaxHeld"/> events held, the pump stops taking batches and the rest waits in the
/// outbox. When the pump stops with events still held, they go back to the outbox for the next
/// instance (handlers that had already taken them then get them twice). A crash while held loses them.
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

    private readonly IAuditSink[] _handlers = [.. handlers];

    /// <summary>Per failing handler, the batches it has not taken yet, oldest first.</summary>
    private readonly Dictionary<IAuditSink, Queue<Batch>> _held = [];

    private long _taken;

    private long _retryAt;

    /// <summary>Events taken off the outbox that some handler has not taken yet.</summary>
    public int Held => HeldBatches().Sum(b => b.Events.Count);

    /// <summary>
    /// Offers held batches to the handlers that failed on them (once the retry delay is over),
    /// then takes one new batch and hands it to every handler. Returns how many events it took.
    /// </summary>
    public async Task<int> PumpOnceAsync(CancellationToken ct)
    {
        await RetryHeldAsync(ct);
        if (Held >= MaxHeld)
        {
            // Backpressure: what is not taken stays in the outbox (capped), not in this process.
            return 0;
        }

        var events = await outbox.DequeueAsync(BatchSize, ct);
        if (events.Count == 0)
        {
            return 0;
        }

        var batch = new Batch(++_taken, events);
        foreach (var handler in _handlers)
        {
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

        return events.Count;
    }

    private async Task RetryHeldAsync(CancellationToken ct)
    {
        if (_held.Count == 0 || Environment.TickCount64 < _retryAt)
        {
            return;
        }

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

    private IEnumerable<Batch> HeldBatches() => _held.Values.SelectMany(q => q).Distinct().OrderBy(b => b.Sequence);

    /// <summary>Puts what failing handlers have not taken back into the outbox, oldest first.</summary>
    private async Task ReturnHeldAsync()
    {
        var events = HeldBatches().SelectMany(b => b.Events).ToList();
        _held.Clear();
        if (events.Count == 0)
        {
            return;
        }

        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            await outbox.RequeueAsync(events, timeout.Token);
            Log.Returned(logger, events.Count);
        }
        catch (Exception ex)
        {
            Log.ReturnFailed(logger, events.Count, ex.GetType().Name);
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
            await ReturnHeldAsync();
        }
    }

    /// <summary>Events taken off the outbox together; <see cref="Sequence"/> orders them for putting back.</summary>
    private sealed record Batch(long Sequence, IReadOnlyList<AuditEvent> Events);

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

        [LoggerMessage(EventId = 1207, Level = LogLevel.Error, Message = "Could not return {Count} audit events to the outbox ({ErrorType}); they are lost")]
        public static partial void ReturnFailed(ILogger logger, int count, string errorType);
    }
}
