using System.Collections.Concurrent;
using System.Globalization;
using System.Net.Http.Json;
using Broker.Core;
using Broker.Core.AppPasswords;
using Broker.Core.Audit;
using Broker.Core.Notifications;
using Broker.Testing;
using MailKit;
using MailKit.Net.Imap;
using MailKit.Security;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using MimeKit;

namespace Broker.MailServers.Tests.Infrastructure;

/// <summary>
/// Email notifications end to end: Broker's notifier hands its messages to a real Postfix relay
/// (plain SMTP on loopback, relaying for mynetworks), which delivers them over LMTP into a real
/// Dovecot; tests read them back over IMAP. Broker runs as the validation role plus a "portal"
/// composed the way the host composes that role for mail: <c>AddBrokerCore()</c> +
/// <c>AddBrokerAuditAndNotifications()</c> (audit pump, notifier, expiry reminder), on a real redis-server.
/// </summary>
public sealed class NotificationLab : IAsyncLifetime
{
    /// <summary>The virtual mailbox domain Postfix delivers to Dovecot.</summary>
    public const string Domain = "example.test";

    /// <summary>The mail store's static passdb password: that Dovecot is where mail lands, not the thing under test.</summary>
    public const string MailboxPassword = "mail-store-only-5b2e";

    public const string PortalUrl = "https://broker.example.test";

    public const string From = "security@broker.example.test";

    private readonly ConcurrentQueue<string> _secrets = new();

    public RedisServer Redis { get; private set; } = null!;

    /// <summary>Dovecot with IMAP and LMTP, a static passdb, mail under its own directory.</summary>
    public DovecotServer MailStore { get; private set; } = null!;

    public RelayPostfixServer Relay { get; private set; } = null!;

    public RunningApp Validation { get; private set; } = null!;

    /// <summary>The role that owns the database: audit pump, notifier, expiry reminder.</summary>
    public RunningApp Portal { get; private set; } = null!;

    /// <summary>Sees every audit batch after the notifier handled it.</summary>
    public AuditRecorder Audit { get; } = new();

    /// <summary>The portal's store: issuing there notifies like the portal's app-password page does.</summary>
    public AppPasswordService AppPasswords => Portal.AppPasswords;

    public ExpiryReminder Reminder => Portal.Services.GetRequiredService<ExpiryReminder>();

    /// <summary>Every app password secret issued here, as shown to the user.</summary>
    public IReadOnlyCollection<string> Secrets => _secrets;

    public async Task InitializeAsync()
    {
        var lmtpPort = FreePort.Get();
        var port = lmtpPort.ToString(CultureInfo.InvariantCulture);
        MailStore = await DovecotServer.StartAsync("mailstore", [("50-mail-store.conf", $$"""
            protocols = imap lmtp
            passdb {
              driver = static
              args = password={{MailboxPassword}}
            }
            service lmtp {
              inet_listener lmtp {
                address = 127.0.0.1
                port = {{port}}
              }
            }
            """)]);
        await FreePort.WaitListeningAsync(lmtpPort, TimeSpan.FromSeconds(15));
        Relay = await RelayPostfixServer.StartAsync(Domain, lmtpPort);

        Redis = await RedisServer.StartAsync();
        // One configuration (and so one pepper) for both roles, as in a deployment.
        var config = BrokerApps.BaseConfig(Redis.Configuration);
        config["Broker:Notifications:Enabled"] = "true";
        config["Broker:Notifications:SmtpHost"] = "127.0.0.1";
        config["Broker:Notifications:SmtpPort"] = Relay.SmtpPort.ToString(CultureInfo.InvariantCulture);
        config["Broker:Notifications:Security"] = "None";
        config["Broker:Notifications:From"] = $"Broker <{From}>";
        config["Broker:Notifications:PortalUrl"] = PortalUrl;
        Validation = await BrokerApps.StartValidationAsync(config);
        Portal = await BrokerApps.StartAsync(config, s =>
        {
            s.AddBrokerCore();
            s.AddBrokerAuditAndNotifications();
            // After the notifier: handlers run in order, so a recorded batch has been mailed.
            s.TryAddEnumerable(ServiceDescriptor.Singleton<IAuditSink, AuditRecorder>(_ => Audit));
        }, _ => { });
    }

    public async Task<IssuedAppPassword> IssueAsync(string user, TimeSpan? lifetime = null, string? approvedFromIp = null)
    {
        var issued = await AppPasswords.IssueAsync(user, "Thunderbird on laptop", ["imap", "submission"], lifetime, approvedFromIp);
        _secrets.Enqueue(issued.Secret);
        return issued;
    }

    /// <summary>What a mail server does: <c>POST /v1/validate</c> with its caller key.</summary>
    public async Task<System.Net.HttpStatusCode> ValidateAsync(string user, string password, string remoteIp, string? clientId = null)
    {
        using var http = Validation.CreateClient();
        using var response = await http.PostAsJsonAsync("/v1/validate", new { username = user, password, service = "imap", remoteIp, clientId });
        return response.StatusCode;
    }

    /// <summary>Waits until <paramref name="count"/> messages with the subject are in the user's inbox, and returns all of those.</summary>
    public async Task<IReadOnlyList<MimeMessage>> WaitForMessagesAsync(string user, string subject, int count = 1, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(20));
        while (true)
        {
            var found = (await ReadInboxAsync(user)).Where(m => m.Subject == subject).ToList();
            if (found.Count >= count)
            {
                return found;
            }

            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"{count} message(s) '{subject}' for {user} did not arrive; found {found.Count}.\nPostfix:\n{Relay.Log}\nDovecot:\n{MailStore.Log}");
            }

            await Task.Delay(200);
        }
    }

    /// <summary>Every message in the user's inbox, read over IMAP as that user.</summary>
    public async Task<IReadOnlyList<MimeMessage>> ReadInboxAsync(string user)
    {
        using var imap = new ImapClient { Timeout = 10_000 };
        await imap.ConnectAsync("127.0.0.1", MailStore.ImapPort, SecureSocketOptions.None);
        await imap.AuthenticateAsync(user, MailboxPassword);
        await imap.Inbox.OpenAsync(FolderAccess.ReadOnly);
        var messages = new List<MimeMessage>();
        for (var i = 0; i < imap.Inbox.Count; i++)
        {
            messages.Add(await imap.Inbox.GetMessageAsync(i));
        }

        await imap.DisconnectAsync(true);
        return messages;
    }

    /// <summary>Waits until the relay has delivered everything it accepted.</summary>
    public async Task WaitUntilRelayIdleAsync()
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        while (!await Relay.QueueIsEmptyAsync())
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"Postfix did not empty its queue.\n{Relay.Log}");
            }

            await Task.Delay(200);
        }
    }

    public async Task DisposeAsync()
    {
        foreach (var d in new IAsyncDisposable?[] { Portal, Validation, Redis, Relay, MailStore })
        {
            if (d is not null)
            {
                await d.DisposeAsync();
            }
        }
    }
}

/// <summary>An audit sink that only records what the pump handed out.</summary>
public sealed class AuditRecorder : IAuditSink
{
    private readonly ConcurrentQueue<AuditEvent> _events = new();

    public IReadOnlyCollection<AuditEvent> Events => _events;

    public Task HandleAsync(IReadOnlyList<AuditEvent> events, CancellationToken ct)
    {
        foreach (var e in events)
        {
            _events.Enqueue(e);
        }

        return Task.CompletedTask;
    }

    /// <summary>Waits until at least <paramref name="count"/> matching events have been handled.</summary>
    public async Task WaitForAsync(Func<AuditEvent, bool> match, int count = 1, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(20));
        while (_events.Count(match) < count)
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"Expected {count} matching audit events; handled: {string.Join("; ", _events.Select(e => $"{e.Kind} {e.Username}"))}");
            }

            await Task.Delay(100);
        }
    }
}
