using Broker.Core.AppPasswords;
using Broker.Core.Audit;
using Broker.Core.Notifications;
using Broker.Core.Redis;
using Broker.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Broker.Core.Tests.Audit;

/// <summary>
/// The portal's background work against a redis-server that is frozen (SIGSTOP): connected, never
/// answering. Calls then end in timeouts, not connection errors, and must not stop the host.
/// </summary>
public sealed class StalledStoreTests(RedisFixture redis) : AppPasswordStoreBase, IClassFixture<RedisFixture>
{
    protected override string RedisConfiguration => redis.Server.Configuration;

    protected override void Configure(IDictionary<string, string?> settings) => settings["Redis:OperationTimeout"] = "00:00:00.500";

    // Nothing listens on the relay port: a send fails and is logged, which shows it was attempted.
    private static IOptions<NotificationOptions> Notifications { get; } =
        Options.Create(new NotificationOptions { Enabled = true, SmtpHost = "127.0.0.1", SmtpPort = FreePort.Get(), Security = MailKit.Security.SecureSocketOptions.None });

    [Fact]
    public async Task OwnersAsync_StoreStalled_ThrowsStoreUnavailable()
    {
        await Store.IssueAsync(User, "Soon", ["imap"], TimeSpan.FromDays(3));

        await redis.Server.PauseAsync();
        try
        {
            await Assert.ThrowsAsync<StoreUnavailableException>(async () =>
            {
                await foreach (var _ in Store.OwnersAsync())
                {
                }
            });
        }
        finally
        {
            await redis.Server.ResumeAsync();
        }
    }

    [Fact]
    public async Task ExpiryReminder_StoreStalled_KeepsRunningAndRemindsAtTheNextRun()
    {
        var soon = await Store.IssueAsync(User, "Soon", ["imap"], TimeSpan.FromDays(3));
        var logs = new CapturingLoggerProvider();
        using var factory = new LoggerFactory([logs]);
        using var reminder = new ExpiryReminder(Store, new MailNotifier(Notifications, Time, NullLogger<MailNotifier>.Instance), Notifications, Time, factory.CreateLogger<ExpiryReminder>());

        await redis.Server.PauseAsync();
        try
        {
            await reminder.StartAsync(CancellationToken.None);
            await UntilLoggedAsync(logs, 1305);
        }
        finally
        {
            await redis.Server.ResumeAsync();
        }

        Assert.False(reminder.ExecuteTask!.IsCompleted);
        Time.Advance(TimeSpan.FromHours(24));
        await UntilLoggedAsync(logs, 1304);
        await reminder.StopAsync(CancellationToken.None);

        Assert.False(await Store.MarkExpiryReminderSentAsync(User, soon.AppPassword.Id));
    }

    [Fact]
    public async Task MailNotifier_StoreStalled_SkipsThatNoticeButHandlesTheRestOfTheBatch()
    {
        var logs = new CapturingLoggerProvider();
        using var factory = new LoggerFactory([logs]);
        var notifier = new MailNotifier(Notifications, Time, Redis, Services.GetRequiredService<RedisKeys>(), factory.CreateLogger<MailNotifier>());
        AuditEvent[] batch =
        [
            new() { At = Time.GetUtcNow(), Kind = AuditKinds.UsedOutsideLimits, Username = User },
            new() { At = Time.GetUtcNow(), Kind = AuditKinds.FirstUseFromNetwork, Username = User },
        ];

        await redis.Server.PauseAsync();
        try
        {
            await notifier.HandleAsync(batch, CancellationToken.None);
        }
        finally
        {
            await redis.Server.ResumeAsync();
        }

        Assert.Contains(logs.Lines, l => l.Contains("[1308]", StringComparison.Ordinal));
        Assert.Contains(logs.Lines, l => l.Contains("[1302]", StringComparison.Ordinal) && l.Contains("new network", StringComparison.Ordinal));
    }

    private static async Task UntilLoggedAsync(CapturingLoggerProvider logs, int eventId)
    {
        var tag = $"[{eventId}]";
        for (var i = 0; i < 200 && !logs.Lines.Any(l => l.Contains(tag, StringComparison.Ordinal)); i++)
        {
            await Task.Delay(50);
        }

        Assert.Contains(logs.Lines, l => l.Contains(tag, StringComparison.Ordinal));
    }
}
