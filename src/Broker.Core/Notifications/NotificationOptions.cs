using System.ComponentModel.DataAnnotations;
using MailKit.Security;

namespace Broker.Core.Notifications;

/// <summary>Email to users about security events, through an SMTP relay.</summary>
public sealed class NotificationOptions
{
    public const string SectionName = "Broker:Notifications";

    public bool Enabled { get; set; }

    /// <summary>SMTP relay host (your MTA).</summary>
    public string SmtpHost { get; set; } = "localhost";

    [Range(1, 65535)]
    public int SmtpPort { get; set; } = 25;

    /// <summary><c>None</c>, <c>StartTls</c>, <c>StartTlsWhenAvailable</c>, <c>SslOnConnect</c>.</summary>
    public SecureSocketOptions Security { get; set; } = SecureSocketOptions.StartTlsWhenAvailable;

    /// <summary>Relay login, if the relay wants one.</summary>
    public string? Username { get; set; }

    public string? Password { get; set; }

    /// <summary>Sender, e.g. <c>Broker &lt;security@example.com&gt;</c>.</summary>
    public string From { get; set; } = "Broker <broker@localhost>";

    /// <summary>Appended to usernames without an <c>@</c> to make the recipient address.</summary>
    public string? RecipientDomain { get; set; }

    /// <summary>Public address of the portal, for links in messages.</summary>
    public string? PortalUrl { get; set; }

    /// <summary>How long before expiry an app password's owner is reminded.</summary>
    public TimeSpan ExpiryWarning { get; set; } = TimeSpan.FromDays(7);

    /// <summary>
    /// Repeated failures on an account, and the right app password tried from outside its allowed
    /// networks or countries: at most one message of each kind per user per this interval.
    /// </summary>
    public TimeSpan FailureNoticeInterval { get; set; } = TimeSpan.FromHours(6);
}
