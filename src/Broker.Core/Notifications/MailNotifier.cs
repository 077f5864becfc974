using System.Globalization;
using Broker.Core.AppPasswords;
using Broker.Core.Audit;
using Broker.Core.Redis;
using MailKit.Net.Smtp;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using MimeKit;
using StackExchange.Redis;

namespace Broker.Core.Notifications;

/// <summary>
/// Tells users by email what happened to their account: a new app password, first use of one
/// from a new network, repeated failed logins, an app password tried from outside its limits.
/// Messages carry what, when, where — never a secret.
/// </summary>
public sealed partial class MailNotifier(IOptions<NotificationOptions> options, TimeProvider time, IConnectionMultiplexer? redis, RedisKeys? keys, ILogger<MailNotifier> logger)
    : IAppPasswordEvents, IAuditSink
{
    /// <summary>The null reverse path (<c>MAIL FROM:&lt;&gt;</c>) of messages that must not bounce.</summary>
    private static readonly MailboxAddress NullSender = new(string.Empty, string.Empty);

    /// <summary>Without the store: every username counts as an account (unit tests of other parts).</summary>
    public MailNotifier(IOptions<NotificationOptions> options, TimeProvider time, ILogger<MailNotifier> logger)
        : this(options, time, null, null, logger)
    {
    }

    private readonly Dictionary<string, DateTimeOffset> _lastFailureNotice = new(StringComparer.Ordinal);
    private readonly Dictionary<string, DateTimeOffset> _lastOutsideLimitsNotice = new(StringComparer.Ordinal);
    private readonly Lock _gate = new();

    private NotificationOptions O => options.Value;

    public Task IssuedAsync(AppPassword appPassword, CancellationToken ct) =>
        SendAsync(appPassword.Owner, "New app password created",
            $"""
            A new app password "{appPassword.Name}" was created for your account at {appPassword.Created:u}.
            It may be used for: {string.Join(", ", appPassword.Scopes)}. It expires {appPassword.Expires:u}.

            If this was not you, revoke it and all others now{PortalLink("/AppPasswords")} and tell your administrator.
            """, ct);

    /// <summary>One message at a time: a batch can hold hundreds of events, and the relay should not see hundreds of connections at once.</summary>
    public async Task HandleAsync(IReadOnlyList<AuditEvent> events, CancellationToken ct)
    {
        foreach (var e in events)
        {
            await HandleOneAsync(e, ct);
        }
    }

    private Task HandleOneAsync(AuditEvent e, CancellationToken ct) => e.Kind switch
    {
        AuditKinds.FirstUseFromNetwork when e.Username is not null => SendAsync(e.Username, "App password used from a new network",
            $"""
            One of your app passwords was used from a network it had not been used from before.
            When: {e.At:u}
            From: {OneLine(e.RemoteIp)}
            Client: {OneLine(e.Client)}
            Details: {OneLine(e.Detail, string.Empty)}

            If this was not you, revoke the app password now{PortalLink("/AppPasswords")}.
            """, ct),
        AuditKinds.ApprovalRequested when e.Username is not null => SendAsync(e.Username, "Approve a new network for your app password?",
            $"""
            One of your app passwords was just used from a network it has not been approved for, so the login was held.
            When: {e.At:u}
            From: {OneLine(e.RemoteIp)}
            Client: {OneLine(e.Client)}
            Details: {OneLine(e.Detail, string.Empty)}

            If this was you, approve it{PortalLink("/AppPasswords")} (you will be asked for your passkey or authenticator code); the next login then succeeds.
            If it was not you, deny it there: the app password is revoked at once.
            """, ct),
        AuditKinds.MailLoginThrottled when e.Username is not null => RepeatedFailuresAsync(e.Username, e, ct),
        AuditKinds.UsedOutsideLimits when e.Username is not null => UsedOutsideLimitsAsync(e.Username, e, ct),
        _ => Task.CompletedTask,
    };

    /// <summary>
    /// Only the right app password gets this far, so this is the clearest sign Broker has that one
    /// has leaked. At most one notice per user per interval: an attacker retrying must not flood the owner.
    /// </summary>
    private async Task UsedOutsideLimitsAsync(string username, AuditEvent e, CancellationToken ct)
    {
        if (!await FirstNoticeAsync(username, keys?.OutsideLimitsNotice(username), _lastOutsideLimitsNotice))
        {
            return;
        }

        await SendAsync(username, "Your app password was tried from a place you did not allow",
            $"""
            One of your app passwords was used from outside the networks or countries you allowed for it. The login was refused.
            When: {e.At:u}
            From: {OneLine(e.RemoteIp)}
            Client: {OneLine(e.Client)}
            Details: {OneLine(e.Detail, string.Empty)}

            The password itself was right, so whoever tried it has it. Unless this was you (travelling, a new
            internet connection), revoke that app password now{PortalLink("/AppPasswords")} and create a new one for your device.
            """, ct);
    }

    private async Task RepeatedFailuresAsync(string username, AuditEvent e, CancellationToken ct)
    {
        // Anyone can make logins fail under any name, including strangers' addresses: only accounts
        // that hold app passwords are mailed, so Broker cannot be used to send mail to arbitrary people
        // (and the de-duplication map only grows with real accounts).
        if (!await IsAccountAsync(username) || !await FirstNoticeAsync(username, keys?.FailureNotice(username), _lastFailureNotice))
        {
            return;
        }

        await SendAsync(username, "Repeated failed logins on your account",
            $"""
            Mail logins to your account failed repeatedly and Broker is now refusing them from {OneLine(e.RemoteIp)} (at {e.At:u}).
            Your own devices on networks they used before keep working. Nobody can log in without one of your app passwords.

            If you see this often, check your app passwords{PortalLink("/AppPasswords")}.
            """, ct);
    }

    /// <summary>Whether the username has been issued app passwords (the owners set the expiry reminder walks too).</summary>
    private async Task<bool> IsAccountAsync(string username)
    {
        if (redis is null || keys is null)
        {
            return true;
        }

        try
        {
            return await redis.GetDatabase().SetContainsAsync(keys.Owners, username);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            Log.AccountCheckFailed(logger, ex.GetType().Name);
            return false;
        }
    }

    /// <summary>
    /// Sends one message; failures are logged, never thrown: a notification must not fail the action.
    /// With <paramref name="withoutBounces"/> the envelope sender is null (<c>MAIL FROM:&lt;&gt;</c>): an
    /// undeliverable message is then dropped instead of returned, with its content, to the From
    /// address. For messages that carry a secret link, which must reach the addressed mailbox or no one.
    /// </summary>
    public async Task SendAsync(string username, string subject, string body, CancellationToken ct, bool withoutBounces = false)
    {
        var o = O;
        if (!o.Enabled)
        {
            return;
        }

        var recipient = username.Contains('@', StringComparison.Ordinal) ? username : o.RecipientDomain is { Length: > 0 } d ? $"{username}@{d}" : null;
        if (recipient is null || !MailboxAddress.TryParse(recipient, out var to))
        {
            Log.NoAddress(logger, username);
            return;
        }

        var message = new MimeMessage();
        message.From.Add(MailboxAddress.Parse(o.From));
        message.To.Add(to);
        message.Subject = $"[Broker] {subject}";
        message.Date = time.GetUtcNow();
        message.Body = new TextPart("plain") { Text = body };
        try
        {
            using var smtp = new SmtpClient { Timeout = 10_000 };
            await smtp.ConnectAsync(o.SmtpHost, o.SmtpPort, o.Security, ct);
            if (!string.IsNullOrEmpty(o.Username))
            {
                await smtp.AuthenticateAsync(o.Username, o.Password ?? string.Empty, ct);
            }

            if (withoutBounces)
            {
                await smtp.SendAsync(message, NullSender, [to], ct);
            }
            else
            {
                await smtp.SendAsync(message, ct);
            }

            await smtp.DisconnectAsync(true, ct);
            Log.Sent(logger, subject, recipient);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            Log.Failed(logger, subject, recipient, ex.GetType().Name, ex.Message);
        }
    }

    /// <summary>
    /// At most one notice of a kind per user per <see cref="NotificationOptions.FailureNoticeInterval"/>,
    /// across every portal instance: a SET NX with the interval as TTL in the user's slot
    /// (<paramref name="key"/>). Without a store, per process (<paramref name="sent"/>).
    /// </summary>
    private async Task<bool> FirstNoticeAsync(string username, string? key, Dictionary<string, DateTimeOffset> sent)
    {
        if (redis is not null && key is not null)
        {
            try
            {
                return await redis.GetDatabase().StringSetAsync(key, time.GetUtcNow().ToUnixTimeMilliseconds(), O.FailureNoticeInterval, When.NotExists);
            }
            catch (Exception ex) when (ex is RedisException or TimeoutException)
            {
                // A stalled store times out (RedisTimeoutException is a TimeoutException, not a
                // RedisException): skip this notice, never the rest of the batch.
                Log.NoticeCheckFailed(logger, ex.GetType().Name);
                return false;
            }
        }

        var now = time.GetUtcNow();
        lock (_gate)
        {
            if (sent.TryGetValue(username, out var last) && now - last < O.FailureNoticeInterval)
            {
                return false;
            }

            sent[username] = now;
            return true;
        }
    }

    /// <summary>
    /// Text from the mail side on one line: the IMAP ID is whatever the client sends, so control,
    /// line-separator and format (bidi) characters become spaces. Whoever holds a stolen app
    /// password cannot add lines of their own ("approve it, this is safe") to a security notice.
    /// </summary>
    private static string OneLine(string? value, string fallback = "unknown") =>
        string.IsNullOrEmpty(value)
            ? fallback
            : string.Create(value.Length, value, static (span, v) =>
            {
                for (var i = 0; i < v.Length; i++)
                {
                    var c = v[i];
                    span[i] = char.IsControl(c) || char.GetUnicodeCategory(c) is UnicodeCategory.LineSeparator or UnicodeCategory.ParagraphSeparator or UnicodeCategory.Format ? ' ' : c;
                }
            });

    private string PortalLink(string path) => O.PortalUrl is { Length: > 0 } url ? $" at {url.TrimEnd('/')}{path}" : " in the portal";

    private static partial class Log
    {
        [LoggerMessage(EventId = 1301, Level = LogLevel.Information, Message = "Notification '{Subject}' sent to {Recipient}")]
        public static partial void Sent(ILogger logger, string subject, string recipient);

        [LoggerMessage(EventId = 1302, Level = LogLevel.Warning, Message = "Notification '{Subject}' to {Recipient} failed: {ErrorType}: {Error}")]
        public static partial void Failed(ILogger logger, string subject, string recipient, string errorType, string error);

        [LoggerMessage(EventId = 1303, Level = LogLevel.Information, Message = "No email address for {Username}; set Broker:Notifications:RecipientDomain")]
        public static partial void NoAddress(ILogger logger, string username);

        [LoggerMessage(EventId = 1306, Level = LogLevel.Warning, Message = "Repeated-failure notice skipped: store unavailable ({ErrorType})")]
        public static partial void AccountCheckFailed(ILogger logger, string errorType);

        [LoggerMessage(EventId = 1308, Level = LogLevel.Warning, Message = "Notice skipped: could not check when the last one was sent, store unavailable ({ErrorType})")]
        public static partial void NoticeCheckFailed(ILogger logger, string errorType);
    }
}
