using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Broker.Core.Audit;

/// <summary>Receives audit events from the outbox in batches (the portal stores them; the notifier mails some).</summary>
public interface IAuditSink
{
    Task HandleAsync(IReadOnlyList<AuditEvent> events, CancellationToken ct);
}

/// <summary>
/// Drains the audit outbox in batches of up to 500 and hands each batch to every handler.
/// Runs in the role that owns the database (the portal); several instances may run, each
/// batch goes to exactly one of them (RPOP is atomic).
/// </summary>
public sealed partial class AuditPump(AuditOutbox outbox, IEnumerable<IAuditSink> handlers, ILogger<AuditPump> logger) : BackgroundService
{
    public const int BatchSize = 500;

    /// <summary>Pause between polls when the outbox was empty.</summary>
    public static TimeSpan IdleDelay { get; set; } = TimeSpan.FromMilliseconds(500);

    /// <summary>Takes one batch and hands it to every handler. Returns how many events it took.</summary>
    public async Task<int> PumpOnceAsync(CancellationToken ct)
    {
        var batch = await outbox.DequeueAsync(BatchSize, ct);
        if (batch.Count == 0)
        {
            return 0;
        }

        foreach (var handler in handlers)
        {
            try
            {
                await handler.HandleAsync(batch, ct);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                Log.HandlerFailed(logger, handler.GetType().Name, batch.Count, ex);
            }
        }

        return batch.Count;
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
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

    private static partial class Log
    {
        [LoggerMessage(EventId = 1202, Level = LogLevel.Error, Message = "Audit handler {Handler} failed on a batch of {Count} events")]
        public static partial void HandlerFailed(ILogger logger, string handler, int count, Exception exception);

        [LoggerMessage(EventId = 1203, Level = LogLevel.Warning, Message = "Audit outbox unavailable ({ErrorType}); retrying")]
        public static partial void OutboxUnavailable(ILogger logger, string errorType);
    }
}
