using System.Globalization;
using Broker.Core.AppPasswords;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Broker.Core.Notifications;

/// <summary>Once a day, mails owners whose app passwords expire within the warning period, once per app password and expiry (renewing re-arms it).</summary>
public sealed partial class ExpiryReminder(AppPasswordService store, MailNotifier notifier, IOptions<NotificationOptions> options, TimeProvider time, ILogger<ExpiryReminder> logger) : BackgroundService
{
    /// <summary>Sends the reminders due now. Returns the app passwords it reminded about.</summary>
    public async Task<IReadOnlyList<AppPassword>> RemindAsync(CancellationToken ct)
    {
        if (!options.Value.Enabled)
        {
            // Marking without sending would use the reminders up for when notifications are turned on.
            return [];
        }

        var now = time.GetUtcNow();
        var horizon = now + options.Value.ExpiryWarning;
        var reminded = new List<AppPassword>();
        await foreach (var owner in store.OwnersAsync(ct))
        {
            foreach (var ap in await store.ListAsync(owner, ct))
            {
                if (ap.IsActive(now) && ap.Expires <= horizon && await store.MarkExpiryReminderSentAsync(owner, ap.Id, ct))
                {
                    reminded.Add(ap);
                    await notifier.SendAsync(owner, string.Create(CultureInfo.InvariantCulture, $"App password \"{ap.Name}\" expires {ap.Expires.UtcDateTime:yyyy-MM-dd}"),
                        $"""
                        Your app password "{ap.Name}" ({string.Join(", ", ap.Scopes)}) expires {ap.Expires:u}.
                        After that, the mail client using it will ask for a password again.

                        Renew it in the portal to keep it working (you will be asked for your passkey or authenticator code).
                        """, ct);
                }
            }
        }

        return reminded;
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromHours(24), time);
        do
        {
            try
            {
                var reminded = await RemindAsync(stoppingToken);
                Log.Reminded(logger, reminded.Count);
            }
            catch (StoreUnavailableException ex)
            {
                Log.Failed(logger, ex.InnerException?.GetType().Name ?? ex.GetType().Name);
            }
            catch (Exception ex) when (!stoppingToken.IsCancellationRequested)
            {
                // Whatever goes wrong, the next run tries again: an exception out of ExecuteAsync stops
                // the whole host (BackgroundServiceExceptionBehavior.StopHost), and with it the portal.
                Log.Crashed(logger, ex);
            }
        }
        while (await timer.WaitForNextTickAsync(stoppingToken));
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 1304, Level = LogLevel.Information, Message = "Expiry reminders sent: {Count}")]
        public static partial void Reminded(ILogger logger, int count);

        [LoggerMessage(EventId = 1305, Level = LogLevel.Warning, Message = "Expiry reminders skipped: store unavailable ({ErrorType})")]
        public static partial void Failed(ILogger logger, string errorType);

        [LoggerMessage(EventId = 1307, Level = LogLevel.Error, Message = "Expiry reminders failed; retrying at the next run")]
        public static partial void Crashed(ILogger logger, Exception exception);
    }
}
