using System.Globalization;
using System.Text.Json;
using Broker.Core.AppPasswords;
using Broker.Portal.Accounts;
using Broker.Portal.Activity;
using Broker.Portal.MailClients;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.Logging;

namespace Broker.Portal.Pages.AppPasswords;

/// <summary>Issues an app password: only to a session whose last passkey/TOTP check is fresh.</summary>
public sealed class NewAppPasswordModel(
    AppPasswordService store,
    SecurityLog log,
    MailClientProfiles profiles,
    IDataProtectionProvider protection,
    PortalPolicy policy,
    TimeProvider time,
    ILogger<NewAppPasswordModel> logger) : PortalPage
{
    public static readonly string[] Suggestions = ["Thunderbird", "Outlook", "iOS Mail", "Android", "macOS Mail", "Phone", "Laptop"];

    public string Name { get; private set; } = string.Empty;

    public IReadOnlyList<string> Scopes { get; private set; } = [];

    public string Lifetime { get; private set; } = string.Empty;

    /// <summary>The form field <see cref="Error"/> is about (its input points to the message), or null for the form as a whole.</summary>
    public string? ErrorField { get; private set; }

    public string? Error { get; private set; }

    public IssuedAppPassword? Created { get; private set; }

    public string? Username { get; private set; }

    public string? ProfileBlob { get; private set; }

    public MailClientOptions Mail => profiles.Settings;

    public IReadOnlyList<string> AllowedScopes => policy.Scopes;

    public IReadOnlyList<(string Value, string Label)> Lifetimes
    {
        get
        {
            var p = policy.Current;
            var candidates = new[] { TimeSpan.FromHours(1), TimeSpan.FromDays(1), TimeSpan.FromDays(7), TimeSpan.FromDays(30), TimeSpan.FromDays(90), TimeSpan.FromDays(180), TimeSpan.FromDays(365), p.DefaultLifetime, p.MinimumLifetime, p.MaximumLifetime };
            return [.. candidates.Where(c => c >= p.MinimumLifetime && c <= p.MaximumLifetime).Distinct().Order()
                .Select(c => (c.ToString("c", CultureInfo.InvariantCulture), LifetimeText.Describe(c)))];
        }
    }

    public static string ScopeLabel(string scope) => scope switch
    {
        AppPasswordScopes.Imap => "IMAP (read mail)",
        AppPasswordScopes.Pop3 => "POP3 (download mail)",
        AppPasswordScopes.Submission => "SMTP (send mail)",
        AppPasswordScopes.Sieve => "Sieve (filters)",
        _ => scope,
    };

    public async Task<IActionResult> OnGetAsync()
    {
        if (await RefuseAppPasswordWriteAsync(await CurrentUserAsync(), "/AppPasswords/New") is { } refused)
        {
            return refused;
        }

        Scopes = [.. AllowedScopes.Where(s => s is AppPasswordScopes.Imap or AppPasswordScopes.Submission)];
        Lifetime = policy.Current.DefaultLifetime.ToString("c", CultureInfo.InvariantCulture);
        return Page();
    }

    public async Task<IActionResult> OnPostAsync(string? name, string[]? scopes, string? lifetime)
    {
        Name = name ?? string.Empty;
        Scopes = scopes ?? [];
        Lifetime = lifetime ?? string.Empty;
        // Checked again on the post itself: the form may have been open for longer than the window,
        // or the policy may have changed meanwhile.
        var user = await CurrentUserAsync();
        if (await RefuseAppPasswordWriteAsync(user, "/AppPasswords/New") is { } refused)
        {
            return refused;
        }

        if (Scopes.Count == 0 || Scopes.Any(s => !AllowedScopes.Contains(s, StringComparer.Ordinal)))
        {
            Error = "Choose at least one of the allowed protocols.";
            ErrorField = nameof(Scopes);
            return Page();
        }

        if (!TimeSpan.TryParseExact(Lifetime, "c", CultureInfo.InvariantCulture, out var life))
        {
            Error = "Choose how long the app password is valid.";
            ErrorField = nameof(Lifetime);
            return Page();
        }

        try
        {
            // The network the owner creates it from counts as approved: the first login from the same place is not held.
            Created = await store.IssueAsync(user.UserName!, Name, Scopes, life, HttpContext.Connection.RemoteIpAddress?.ToString(), HttpContext.RequestAborted);
        }
        catch (AppPasswordException ex)
        {
            Error = ex.Message;
            return Page();
        }
        catch (StoreUnavailableException ex)
        {
            PortalLog.StoreUnavailable(logger, ex);
            Error = "The credential store is not reachable right now. Nothing was created; try again in a moment.";
            return Page();
        }

        Username = user.UserName;
        await log.RecordAsync(user, SecurityEventKinds.AppPasswordIssued, $"{Created.AppPassword.Name} ({string.Join(", ", Created.AppPassword.Scopes)}), until {Created.AppPassword.Expires:u}");
        // The profile download needs the secret once more; it travels encrypted and expiring in the page, never stored.
        var payload = JsonSerializer.Serialize(new ProfilePayload(user.UserName!, Created.AppPassword.Id, Created.AppPassword.Name, Created.Secret));
        ProfileBlob = Protector().Protect(payload, TimeSpan.FromMinutes(15));
        return Page();
    }

    public async Task<IActionResult> OnPostMobileConfigAsync(string? blob)
    {
        var user = await CurrentUserAsync();
        ProfilePayload? payload;
        try
        {
            payload = JsonSerializer.Deserialize<ProfilePayload>(Protector().Unprotect(blob ?? string.Empty));
        }
        catch (Exception ex) when (ex is System.Security.Cryptography.CryptographicException or JsonException or FormatException)
        {
            return BadRequest();
        }

        if (payload is null || payload.Owner != user.UserName)
        {
            return BadRequest();
        }

        // Within its 15 minutes the page may outlive the app password (revoked meanwhile, or a
        // lifetime shorter than that): the profile would install an account that can never sign in.
        AppPassword? current;
        try
        {
            current = await store.GetAsync(payload.Owner, payload.Id, HttpContext.RequestAborted);
        }
        catch (StoreUnavailableException ex)
        {
            PortalLog.StoreUnavailable(logger, ex);
            return StatusCode(StatusCodes.Status503ServiceUnavailable, "The credential store is not reachable right now; try the download again in a moment.");
        }

        if (current is null || !current.IsActive(time.GetUtcNow()))
        {
            return BadRequest("This app password has been revoked or has expired, so no profile is made for it. Create a new app password for this device.");
        }

        var xml = profiles.AppleMobileConfig(payload.Owner, payload.Name, payload.Secret, payload.Id);
        return File(MailClientProfiles.Utf8(xml), "application/x-apple-aspen-config", "mail.mobileconfig");
    }

    private ITimeLimitedDataProtector Protector() => protection.CreateProtector("Broker.Portal.MobileConfig").ToTimeLimitedDataProtector();

    private sealed record ProfilePayload(string Owner, string Id, string Name, string Secret);
}
