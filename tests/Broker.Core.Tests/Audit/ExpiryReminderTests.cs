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
        var options = Options.Create(new NotificationOptions { Enabled = false });
        var reminder = new ExpiryReminder(Store, new MailNotifier(options, Time, NullLogger<MailNotifier>.Instance), options, Time, NullLogger<ExpiryReminder>.Instance);

        var first = await reminder.RemindAsync(CancellationToken.None);
        var second = await reminder.RemindAsync(CancellationToken.None);

        Assert.Equal([soon.AppPassword.Id], first.Where(a => a.Owner == User).Select(a => a.Id));
        Assert.DoesNotContain(second, a => a.Owner == User);
    }
}
