using System.ComponentModel.DataAnnotations;
using Broker.Core.AppPasswords;
using Broker.Core.Notifications;
using Broker.Portal.Accounts;
using Microsoft.Extensions.Options;

namespace Broker.Portal;

/// <summary>Portal settings, bound from <c>Broker:Portal</c>.</summary>
public sealed class PortalOptions
{
    public const string SectionName = "Broker:Portal";

    /// <summary>
    /// The origin people type into the browser (the gateway's public address). Passkeys are bound to
    /// its host (the WebAuthn relying party id) and only this origin is accepted in ceremonies;
    /// enrollment links are built from it.
    /// </summary>
    [Required]
    public string PublicOrigin { get; set; } = "http://localhost:5080";

    /// <summary>Shown in the page title, passkey prompts and authenticator apps.</summary>
    [Required, StringLength(64, MinimumLength = 1)]
    public string ProductName { get; set; } = "Broker";

    /// <summary>How recent a passkey or TOTP check must be before app passwords are issued or renewed.</summary>
    public TimeSpan StepUpWindow { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>How long an enrollment link stays valid.</summary>
    public TimeSpan EnrollmentLinkLifetime { get; set; } = TimeSpan.FromDays(3);

    /// <summary>Idle lifetime of a portal session (sliding).</summary>
    public TimeSpan SessionLifetime { get; set; } = TimeSpan.FromHours(8);

    /// <summary>Failed password or code attempts before the account is locked for <see cref="LockoutDuration"/>.</summary>
    [Range(3, 100)]
    public int MaxFailedAttempts { get; set; } = 5;

    public TimeSpan LockoutDuration { get; set; } = TimeSpan.FromMinutes(15);

    /// <summary>
    /// Sign-in form posts (password, code, recovery code, enrollment) one client address may send per
    /// minute; more get 429. Complements the per-account lockout against spraying many accounts.
    /// </summary>
    [Range(5, 10_000)]
    public int SignInPostsPerMinute { get; set; } = 30;

    /// <summary>
    /// A refused password sign-in is answered this long after the request arrived, or at the next
    /// multiple of it when the check took longer, so that the response time does not tell existing
    /// accounts from unknown names. Zero turns the pacing off. At most 10 seconds.
    /// </summary>
    public TimeSpan SignInRefusalPace { get; set; } = TimeSpan.FromMilliseconds(500);

    /// <summary>Minimum password length for portal accounts.</summary>
    [Range(8, 128)]
    public int MinimumPasswordLength { get; set; } = 12;

    /// <summary>
    /// Which second factor users must have: <c>any</c> (passkey or TOTP) or <c>passkey</c>
    /// (phishing-resistant only: TOTP cannot be the only factor).
    /// </summary>
    [RegularExpression("^(any|passkey)$")]
    public string RequiredFactor { get; set; } = "any";

    /// <summary>Scopes users may pick for app passwords; a subset of imap, pop3, submission, sieve.</summary>
    public List<string> AllowedScopes { get; set; } = [];

    /// <summary>Username of the administrator whose enrollment link is printed on the first run.</summary>
    public string FirstAdmin { get; set; } = "admin";

    /// <summary>Database: <c>Sqlite</c> (default, file in the data directory) or <c>Postgres</c>.</summary>
    [RegularExpression("^(Sqlite|Postgres)$")]
    public string DatabaseProvider { get; set; } = "Sqlite";

    /// <summary>Connection string; empty means <c>Data Source={data directory}/portal.db</c> for SQLite.</summary>
    public string? ConnectionString { get; set; }

    /// <summary>Where data-protection keys (cookies, antiforgery) are kept. Share it between portal instances.</summary>
    public string? KeysDirectory { get; set; }

    /// <summary>Mail client settings shown with a new app password and used for autoconfig files.</summary>
    public MailClientOptions Mail { get; set; } = new();

    /// <summary>People creating their own account from their mail address; off unless configured.</summary>
    public SelfRegistrationOptions SelfRegistration { get; set; } = new();

    public Uri PublicOriginUri => new(PublicOrigin);

    /// <summary>Scopes offered to users: the configured list, or every scope the core knows.</summary>
    public IReadOnlyList<string> EffectiveScopes => AllowedScopes.Count > 0 ? AllowedScopes : AppPasswordScopes.All;
}

/// <summary>Server names and ports a mail client needs; all taken from configuration.</summary>
public sealed class MailClientOptions
{
    /// <summary>The mail domain (for autoconfig); empty means the public origin's host.</summary>
    public string? Domain { get; set; }

    public string ImapHost { get; set; } = "mail.example.com";

    public int ImapPort { get; set; } = 993;

    public string Pop3Host { get; set; } = "mail.example.com";

    public int Pop3Port { get; set; } = 995;

    public string SmtpHost { get; set; } = "mail.example.com";

    /// <summary>Implicit TLS submission (RFC 8314).</summary>
    public int SmtpPort { get; set; } = 465;

    /// <summary>STARTTLS submission, for clients that prefer it.</summary>
    public int SubmissionPort { get; set; } = 587;
}

/// <summary>
/// Self-registration: someone types a mail address in an allowed domain and gets a one-time
/// enrollment link sent to that mailbox. Usernames are mailbox addresses and an app password for
/// an address opens that mailbox, so the link goes only to the mailbox, never to the browser.
/// </summary>
public sealed class SelfRegistrationOptions
{
    /// <summary>Off by default: accounts are created by administrators only.</summary>
    public bool Enabled { get; set; }

    /// <summary>Mail domains whose addresses may register (exact host names, no wildcards or subdomains).</summary>
    public List<string> AllowedDomains { get; set; } = [];

    /// <summary>At most one new enrollment link per address within this interval (from self-registration or an admin).</summary>
    public TimeSpan ResendInterval { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>
    /// An account self-registration created and nobody set up is removed this long after its last
    /// enrollment link expired (checked hourly; also after self-registration is switched off).
    /// Accounts created by, or given a link by, an administrator are never removed.
    /// </summary>
    public TimeSpan UnfinishedAccountRetention { get; set; } = TimeSpan.FromDays(7);
}

/// <summary>Cross-field rules; self-registration also needs <c>Broker:Notifications</c> to be able to send mail.</summary>
internal sealed class PortalOptionsValidator(IOptions<NotificationOptions> notifications) : IValidateOptions<PortalOptions>
{
    public ValidateOptionsResult Validate(string? name, PortalOptions o)
    {
        var p = PortalOptions.SectionName;
        var errors = new List<string>();
        if (!Uri.TryCreate(o.PublicOrigin, UriKind.Absolute, out var origin) || origin.Scheme is not ("http" or "https") || origin.AbsolutePath != "/")
        {
            errors.Add($"{p}:PublicOrigin must be an absolute http(s) origin without a path, e.g. https://mail-portal.example.com; got '{o.PublicOrigin}'.");
        }
        else if (origin.Scheme == "http" && !origin.IsLoopback)
        {
            errors.Add($"{p}:PublicOrigin must use https unless it is localhost (passkeys and secure cookies need a secure context); got '{o.PublicOrigin}'.");
        }
        else if (System.Net.IPAddress.TryParse(origin.Host, out _))
        {
            errors.Add($"{p}:PublicOrigin must use a host name (e.g. localhost), not an IP address: WebAuthn does not accept IP addresses as relying party ids.");
        }

        if (o.StepUpWindow < TimeSpan.FromSeconds(30) || o.StepUpWindow > TimeSpan.FromHours(1))
        {
            errors.Add($"{p}:StepUpWindow must be between 30 seconds and 1 hour; got {o.StepUpWindow}.");
        }

        if (o.SignInRefusalPace < TimeSpan.Zero || o.SignInRefusalPace > TimeSpan.FromSeconds(10))
        {
            errors.Add($"{p}:SignInRefusalPace must be between 0 (off) and 10 seconds; got {o.SignInRefusalPace}.");
        }

        // Zero or less locks an account until "now": the count starts again at once and guessing never pauses.
        if (o.LockoutDuration <= TimeSpan.Zero || o.LockoutDuration > TimeSpan.FromDays(30))
        {
            errors.Add($"{p}:LockoutDuration must be more than zero and at most 30 days; got {o.LockoutDuration}.");
        }

        if (o.SessionLifetime < TimeSpan.FromMinutes(1) || o.SessionLifetime > TimeSpan.FromDays(30))
        {
            errors.Add($"{p}:SessionLifetime must be between 1 minute and 30 days; got {o.SessionLifetime}.");
        }

        if (o.EnrollmentLinkLifetime < TimeSpan.FromMinutes(5) || o.EnrollmentLinkLifetime > TimeSpan.FromDays(30))
        {
            errors.Add($"{p}:EnrollmentLinkLifetime must be between 5 minutes and 30 days.");
        }

        foreach (var scope in o.AllowedScopes)
        {
            if (!AppPasswordScopes.TryParse(scope, out _))
            {
                errors.Add($"{p}:AllowedScopes contains unknown scope '{scope}'. Known: {string.Join(", ", AppPasswordScopes.All)}.");
            }
        }

        if (o.DatabaseProvider == "Postgres" && string.IsNullOrWhiteSpace(o.ConnectionString))
        {
            errors.Add($"{p}:ConnectionString is required when {p}:DatabaseProvider is Postgres.");
        }

        if (o.SelfRegistration.Enabled)
        {
            ValidateSelfRegistration(o.SelfRegistration, $"{p}:SelfRegistration", errors);
        }

        // Checked whether or not self-registration is on: the sweep that uses it always runs
        // (a negative value would remove accounts whose link still works).
        var retention = o.SelfRegistration.UnfinishedAccountRetention;
        if (retention < TimeSpan.Zero || retention > TimeSpan.FromDays(365))
        {
            errors.Add($"{p}:SelfRegistration:UnfinishedAccountRetention must be between 0 and 365 days; got {retention}.");
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }

    private void ValidateSelfRegistration(SelfRegistrationOptions o, string p, List<string> errors)
    {
        if (o.AllowedDomains.Count == 0)
        {
            errors.Add($"{p}:AllowedDomains must list at least one mail domain (e.g. example.com) when {p}:Enabled is true.");
        }

        foreach (var domain in o.AllowedDomains)
        {
            if (!SelfRegistrationAddress.IsValidDomain(domain))
            {
                errors.Add($"{p}:AllowedDomains contains '{domain}', which is not a host name such as example.com (no '@', wildcards or spaces).");
            }
        }

        if (o.ResendInterval < TimeSpan.FromMinutes(1) || o.ResendInterval > TimeSpan.FromDays(1))
        {
            errors.Add($"{p}:ResendInterval must be between 1 minute and 1 day; got {o.ResendInterval}.");
        }

        // The enrollment link is the proof that the person controls the mailbox: without mail there is no proof.
        var n = notifications.Value;
        var s = NotificationOptions.SectionName;
        if (!n.Enabled || string.IsNullOrWhiteSpace(n.SmtpHost) || !MimeKit.MailboxAddress.TryParse(n.From, out var from) || !from.Address.Contains('@', StringComparison.Ordinal))
        {
            errors.Add($"{p}:Enabled needs mail: set {s}:Enabled to true with {s}:SmtpHost and a {s}:From address (name@domain), because enrollment links are only ever sent to the mailbox.");
        }
    }
}
