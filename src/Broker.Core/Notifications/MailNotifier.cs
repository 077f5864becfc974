using Broker.Core.AppPasswords;
using Broker.Core.Audit;
using MailKit.Net.Smtp;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using MimeKit;

namespace Broker.Core.Notifications;

/// <summary>
/// Tells users by email what happened to their account: a new app password, first use of one
/// from a new network, repeated failed logins. Messages carry what, when, where — never a secret.
/// </summary>
public sealed partial class MailNotifier(IOptions<NotificationOptions> options, TimeProvider time, ILogger<MailNotifier> logger)
    : IAppPasswordEvents, IAuditSink
{
    private readonly Dictionary<string, DateTimeOffset> _lastFailureNotice = new(StringComparer.Ordinal);
    private readonly Lock _gate = new();

    private NotificationOptions O => options.Value;

    public Task IssuedAsync(AppPassword appPassword, CancellationToken ct) =>
        SendAsync(appPassword.Owner, "New app password created",
            $"""
            A new app password "{appPassword.Name}" was created for your account at {appPassword.Created:u}.
            It may be used for: {string.Join(", ", appPassword.Scopes)}. It expires {appPassword.Expires:u}.

            If this was not you, revoke it and all others now{PortalLink("/AppPasswords")} and tell your administrator.
            """, ct);

    public Task HandleAsync(IReadOnlyList<AuditEvent> events, CancellationToken ct) => Task.WhenAll(events.Select(e => e.Kind switch
    {
        AuditKinds.FirstUseFromNetwork when e.Username is not null => SendAsync(e.Username, "App password used from a new network",
            $"""
            One of your app passwords was used from a network it had not been used from before.
            When: {e.At:u}
            From: {e.RemoteIp}
            Client: {e.Client ?? "unknown"}
            Details: {e.Detail}

            If this was not you, revoke the app password now{PortalLink("/AppPasswords")}.
            """, ct),
        AuditKinds.ApprovalRequested when e.Username is not null => SendAsync(e.Username, "Approve a new network for your app password?",
            $"""
            One of your app passwords was just used from a network it has not been approved for, so the login was held.
            When: {e.At:u}
            From: {e.RemoteIp}
            Client: {e.Client ?? "unknown"}
            Details: {e.Detail}

            If this was you, approve it{PortalLink("/AppPasswords")} (you will be asked for your passkey or authenticator code); the next login then succeeds.
            If it was not you, deny it there: the app password is revoked at once.
            """, ct),
        AuditKinds.MailLoginThrottled when e.Username is not null && FirstFailureNoticeIn(e.Username) => SendAsync(e.Username, "Repeated failed logins on your account",
            $"""
            Mail logins to your account failed repeatedly and Broker is now refusing them from {e.RemoteIp} (at {e.At:u}).
            Your own devices on networks they used before keep working. Nobody can log in without one of your app passwords.

            If you see this often, check your app passwords{PortalLink("/AppPasswords")}.
            """, ct),
        _ => Task.CompletedTask,
    }));

    /// <summary>Sends one message; failures are logged, never thrown: a notification must not fail the action.</summary>
    public async Task SendAsync(string username, string subject, string body, CancellationToken ct)
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

            await smtp.SendAsync(message, ct);
            await smtp.DisconnectAsync(true, ct);
            Log.Sent(logger, subject, recipient);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            Log.Failed(logger, subject, recipient, ex.GetType().Name, ex.Message);
        }
    }

    private bool FirstFailureNoticeIn(string username)
    {
        var now = time.GetUtcNow();
        lock (_gate)
        {
            if (_lastFailureNotice.TryGetValue(username, out var last) && now - last < O.FailureNoticeInterval)
            {
                return false;
            }

            _lastFailureNotice[username] = now;
            return true;
        }
    }

    private string PortalLink(string path) => O.PortalUrl is { Length: > 0 } url ? $" at {url.TrimEnd('/')}{path}" : " in the portal";

    private static partial class Log
    {
        [LoggerMessage(EventId = 1301, Level = LogLevel.Information, Message = "Notification '{Subject}' sent to {Recipient}")]
        public static partial void Sent(ILogger logger, string subject, string recipient);

        [LoggerMessage(EventId = 1302, Level = LogLevel.Warning, Message = "Notification '{Subject}' to {Recipient} failed: {ErrorType}: {Error}")]
        public static partial void Failed(ILogger logger, string subject, string recipient, string errorType, string error);

        [LoggerMessage(EventId = 1303, Level = LogLevel.Information, Message = "No email address for {Username}; set Broker:Notifications:RecipientDomain")]
        public static partial void NoAddress(ILogger logger, string username);
    }
}
