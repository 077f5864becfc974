using Broker.Core.Notifications;
using Broker.Testing;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Broker.Core.Tests.Audit;

/// <summary>Expiry reminders select the right app passwords once, against a real redis-server.</summary>
public sealed class ExpiryReminderTests(RedisFixture redis) : AppPasswordStoreBase, IClassFixture<RedisFixture>
{
    protected override string RedisConfiguration => redis.Server.Configuration;

    [Fact]
    public async Task Remind_PicksThoseExpiringWithinTheWarning_OnlyOnce()
    {
        var soon = await Store.IssueAsync(User, "Soon", ["imap"], TimeSpan.FromDays(3));
        await Store.IssueAsync(User, "Later", ["imap"], TimeSpan.FromDays(30));
        var revoked = await Store.IssueAsync(User, "Gone", ["imap"], TimeSpan.FromDays(2));
        await Store.RevokeAsync(User, revoked.AppPassword.Id);
        // Nothing listens on the relay port: sending fails and is logged; what is chosen is the point here
        // (delivery through a real Postfix is covered by EmailNotificationTests).
        var options = Options.Create(new NotificationOptions { Enabled = true, SmtpHost = "127.0.0.1", SmtpPort = FreePort.Get(), Security = MailKit.Security.SecureSocketOptions.None });
        var reminder = new ExpiryReminder(Store, new MailNotifier(options, Time, NullLogger<MailNotifier>.Instance), options, Time, NullLogger<ExpiryReminder>.Instance);

        var first = await reminder.RemindAsync(CancellationToken.None);
        var second = await reminder.RemindAsync(CancellationToken.None);

        Assert.Equal([soon.AppPassword.Id], first.Where(a => a.Owner == User).Select(a => a.Id));
        Assert.DoesNotContain(second, a => a.Owner == User);
    }

    [Fact]
    public async Task Remind_AfterRenew_RemindsAgainBeforeTheNewExpiry()
    {
        var soon = await Store.IssueAsync(User, "Soon", ["imap"], TimeSpan.FromDays(3));
        var options = Options.Create(new NotificationOptions { Enabled = true, SmtpHost = "127.0.0.1", SmtpPort = FreePort.Get(), Security = MailKit.Security.SecureSocketOptions.None });
        var reminder = new ExpiryReminder(Store, new MailNotifier(options, Time, NullLogger<MailNotifier>.Instance), options, Time, NullLogger<ExpiryReminder>.Instance);
        Assert.Contains(await reminder.RemindAsync(CancellationToken.None), a => a.Id == soon.AppPassword.Id);

        await Store.RenewAsync(User, soon.AppPassword.Id, TimeSpan.FromDays(10));
        Assert.DoesNotContain(await reminder.RemindAsync(CancellationToken.None), a => a.Owner == User);
        Time.Advance(TimeSpan.FromDays(5));

        Assert.Equal([soon.AppPassword.Id], (await reminder.RemindAsync(CancellationToken.None)).Where(a => a.Owner == User).Select(a => a.Id));
    }

    [Fact]
    public async Task Remind_WithNotificationsOff_UsesNothingUp()
    {
        var soon = await Store.IssueAsync(User, "Soon", ["imap"], TimeSpan.FromDays(3));
        var off = Options.Create(new NotificationOptions { Enabled = false });
        var reminder = new ExpiryReminder(Store, new MailNotifier(off, Time, NullLogger<MailNotifier>.Instance), off, Time, NullLogger<ExpiryReminder>.Instance);

        Assert.Empty(await reminder.RemindAsync(CancellationToken.None));
        Assert.True(await Store.MarkExpiryReminderSentAsync(User, soon.AppPassword.Id));
    }
}
