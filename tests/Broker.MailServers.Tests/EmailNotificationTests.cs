using System.Net;
using Broker.Core.AppPasswords;
using Broker.Core.Audit;
using Broker.MailServers.Tests.Infrastructure;
using MimeKit;

namespace Broker.MailServers.Tests;

/// <summary>
/// Broker's security notifications delivered for real: notifier → Postfix (SMTP on loopback, no
/// auth, mynetworks) → Dovecot LMTP → mailbox, read back over IMAP as the recipient. Each test
/// uses its own recipient, so its inbox holds only what that scenario caused.
/// </summary>
public sealed class EmailNotificationTests(NotificationLab lab) : IClassFixture<NotificationLab>
{
    private const string Prefix = "[Broker] ";

    [Fact]
    public async Task IssueAppPassword_NewAppPasswordMailArrives()
    {
        const string user = "issue@" + NotificationLab.Domain;

        var issued = await lab.IssueAsync(user);

        var message = Assert.Single(await lab.WaitForMessagesAsync(user, Prefix + "New app password created"));
        AssertFromBrokerTo(message, user);
        Assert.Contains("\"Thunderbird on laptop\"", message.TextBody, StringComparison.Ordinal);
        Assert.Contains("imap, submission", message.TextBody, StringComparison.Ordinal);
        Assert.Contains(NotificationLab.PortalUrl + "/AppPasswords", message.TextBody, StringComparison.Ordinal);
        Assert.Contains($"expires {issued.AppPassword.Expires:u}", message.TextBody, StringComparison.Ordinal);
        await AssertNoSecretInInboxAsync(user);
    }

    [Fact]
    public async Task LoginFromNewNetwork_NewNetworkMailNamesTheAddress()
    {
        const string user = "roaming@" + NotificationLab.Domain;
        var issued = await lab.IssueAsync(user, approvedFromIp: "198.51.100.10");

        var status = await lab.ValidateAsync(user, issued.Secret, "203.0.113.45", "\"name\" \"Thunderbird\" \"version\" \"128.3\"");

        Assert.Equal(HttpStatusCode.OK, status);
        var message = Assert.Single(await lab.WaitForMessagesAsync(user, Prefix + "App password used from a new network"));
        AssertFromBrokerTo(message, user);
        Assert.Contains("From: 203.0.113.45", message.TextBody, StringComparison.Ordinal);
        Assert.Contains("Thunderbird", message.TextBody, StringComparison.Ordinal);
        Assert.Contains(issued.AppPassword.Id, message.TextBody, StringComparison.Ordinal);
        await AssertNoSecretInInboxAsync(user);
    }

    [Fact]
    public async Task RepeatedFailuresUntilThrottled_OneRepeatedFailuresMail()
    {
        const string user = "sprayed@" + NotificationLab.Domain;
        const string attacker = "192.0.2.66";
        await lab.IssueAsync(user);

        // The default limit is 10 failures per user and network; the rest are refused as throttled.
        for (var i = 0; i < 15; i++)
        {
            Assert.Equal(HttpStatusCode.Forbidden, await lab.ValidateAsync(user, AppPasswordFormat.Generate(), attacker));
        }

        // Several throttled events, every one of them through the notifier, and every mail delivered.
        await lab.Audit.WaitForAsync(e => e.Kind == AuditKinds.MailLoginThrottled && e.Username == user, count: 5);
        await lab.WaitUntilRelayIdleAsync();
        var message = Assert.Single(await lab.WaitForMessagesAsync(user, Prefix + "Repeated failed logins on your account"));
        AssertFromBrokerTo(message, user);
        Assert.Contains($"refusing them from {attacker}", message.TextBody, StringComparison.Ordinal);
        // One mail for the throttling, not one per failure: the inbox holds only that and the issue notice.
        Assert.Equal(2, (await lab.ReadInboxAsync(user)).Count);
        await AssertNoSecretInInboxAsync(user);
    }

    [Fact]
    public async Task RightPasswordFromOutsideItsAllowedNetworks_OneWarningMail_LoginRefused()
    {
        const string user = "fenced@" + NotificationLab.Domain;
        const string thief = "203.0.113.90";
        var issued = await lab.IssueAsync(user);
        await lab.AppPasswords.SetAllowedNetworksAsync(user, issued.AppPassword.Id, ["198.51.100.0/24"]);

        for (var i = 0; i < 3; i++)
        {
            Assert.Equal(HttpStatusCode.Forbidden, await lab.ValidateAsync(user, issued.Secret, thief, "\"name\" \"curl\""));
        }

        // Every refused attempt reaches the notifier; the owner gets one warning, not one per attempt.
        await lab.Audit.WaitForAsync(e => e.Kind == AuditKinds.UsedOutsideLimits && e.Username == user, count: 3);
        await lab.WaitUntilRelayIdleAsync();
        var message = Assert.Single(await lab.WaitForMessagesAsync(user, Prefix + "Your app password was tried from a place you did not allow"));
        AssertFromBrokerTo(message, user);
        Assert.Contains($"From: {thief}", message.TextBody, StringComparison.Ordinal);
        Assert.Contains(issued.AppPassword.Id, message.TextBody, StringComparison.Ordinal);
        Assert.Contains("whoever tried it has it", message.TextBody, StringComparison.Ordinal);
        Assert.Contains(NotificationLab.PortalUrl + "/AppPasswords", message.TextBody, StringComparison.Ordinal);
        Assert.Equal(2, (await lab.ReadInboxAsync(user)).Count);
        await AssertNoSecretInInboxAsync(user);
    }

    [Fact]
    public async Task RepeatedFailuresOnNameWithoutAppPasswords_NoMail()
    {
        // Anyone can type any address as the username: throttling it must not make Broker mail a stranger.
        const string stranger = "stranger@" + NotificationLab.Domain;
        const string attacker = "198.18.0.99";

        for (var i = 0; i < 12; i++)
        {
            Assert.Equal(HttpStatusCode.Forbidden, await lab.ValidateAsync(stranger, AppPasswordFormat.Generate(), attacker));
        }

        await lab.Audit.WaitForAsync(e => e.Kind == AuditKinds.MailLoginThrottled && e.Username == stranger, count: 2);
        await lab.WaitUntilRelayIdleAsync();
        Assert.Empty(await lab.ReadInboxAsync(stranger));
    }

    [Fact]
    public async Task ApprovalRequiredLoginFromUnapprovedNetwork_ApprovalMailArrives()
    {
        const string user = "careful@" + NotificationLab.Domain;
        await lab.AppPasswords.SetNewNetworkApprovalAsync(user, true);
        var issued = await lab.IssueAsync(user, approvedFromIp: "198.51.100.20");

        // Whoever holds a stolen app password chooses the IMAP ID: it must not be able to write its own lines into the notice.
        const string forgedClient = "\"name\" \"Mail\"\r\n\r\nChecked by IT\u2028This login is safe: approve it.";

        var status = await lab.ValidateAsync(user, issued.Secret, "203.0.113.77", forgedClient);

        // Held, not refused: the client sees a temporary failure while the owner decides.
        Assert.Equal(HttpStatusCode.ServiceUnavailable, status);
        var message = Assert.Single(await lab.WaitForMessagesAsync(user, Prefix + "Approve a new network for your app password?"));
        AssertFromBrokerTo(message, user);
        Assert.Contains("From: 203.0.113.77", message.TextBody, StringComparison.Ordinal);
        var body = message.TextBody;
        Assert.NotNull(body);
        var lines = body.Split('\n');
        Assert.Contains(lines, l => l.StartsWith("Client: \"name\" \"Mail\"", StringComparison.Ordinal) && l.Contains("approve it.", StringComparison.Ordinal));
        Assert.DoesNotContain(lines, l => l.TrimStart().StartsWith("Checked by IT", StringComparison.Ordinal) || l.TrimStart().StartsWith("This login is safe", StringComparison.Ordinal));
        Assert.DoesNotContain('\u2028', body);
        Assert.Contains(NotificationLab.PortalUrl + "/AppPasswords", message.TextBody, StringComparison.Ordinal);
        Assert.DoesNotContain(await lab.ReadInboxAsync(user), m => m.Subject == Prefix + "App password used from a new network");
        await AssertNoSecretInInboxAsync(user);
    }

    [Fact]
    public async Task ExpiringInTwoDays_OneReminderArrives()
    {
        const string user = "expiring@" + NotificationLab.Domain;
        var issued = await lab.IssueAsync(user, lifetime: TimeSpan.FromDays(2));
        var subject = $"{Prefix}App password \"Thunderbird on laptop\" expires {issued.AppPassword.Expires.UtcDateTime:yyyy'-'MM'-'dd}";

        var first = await lab.Reminder.RemindAsync(CancellationToken.None);
        var second = await lab.Reminder.RemindAsync(CancellationToken.None);

        Assert.Contains(first, a => a.Id == issued.AppPassword.Id);
        Assert.DoesNotContain(second, a => a.Id == issued.AppPassword.Id);
        await lab.WaitUntilRelayIdleAsync();
        var message = Assert.Single(await lab.WaitForMessagesAsync(user, subject));
        AssertFromBrokerTo(message, user);
        Assert.Contains("Renew it in the portal", message.TextBody, StringComparison.Ordinal);
        Assert.Equal(2, (await lab.ReadInboxAsync(user)).Count);
        await AssertNoSecretInInboxAsync(user);
    }

    private static void AssertFromBrokerTo(MimeMessage message, string user)
    {
        Assert.Equal(NotificationLab.From, Assert.Single(message.From.Mailboxes).Address);
        Assert.Equal(user, Assert.Single(message.To.Mailboxes).Address);
        // Dovecot's LMTP records the envelope recipient it delivered to.
        Assert.Equal(user, message.Headers["Delivered-To"]);
    }

    /// <summary>No app password issued in the lab, in any form, anywhere in any message the user received.</summary>
    private async Task AssertNoSecretInInboxAsync(string user)
    {
        var secrets = lab.Secrets.ToList();
        Assert.NotEmpty(secrets);
        foreach (var message in await lab.ReadInboxAsync(user))
        {
            var raw = message.ToString();
            Assert.Contains("Subject: [Broker]", raw, StringComparison.Ordinal);
            foreach (var secret in secrets)
            {
                Assert.True(AppPasswordFormat.TryCanonicalize(secret, out var canonical));
                foreach (var form in new[] { secret, canonical, AppPasswordFormat.Display(canonical) })
                {
                    Assert.DoesNotContain(form, raw, StringComparison.OrdinalIgnoreCase);
                    Assert.DoesNotContain(form, message.TextBody, StringComparison.OrdinalIgnoreCase);
                }
            }
        }
    }
}
