using Broker.Core.AppPasswords;
using Broker.Core.GeoIp;
using Broker.Portal.Accounts;
using Broker.Portal.Activity;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.Logging;

namespace Broker.Portal.Pages.AppPasswords;

/// <summary>List, renew (fresh MFA), revoke and revoke all. Taking access away never needs step-up.</summary>
public sealed class AppPasswordsModel(
    AppPasswordService store,
    AccountService accounts,
    SecurityLog log,
    TimeProvider time,
    PolicyStore policy,
    CountryLookup countryLookup,
    ILogger<AppPasswordsModel> logger) : PortalPage
{
    public IReadOnlyList<AppPassword> Items { get; private set; } = [];

    public DateTimeOffset Now { get; private set; }

    public const int WarnDays = 7;

    public string? Error { get; private set; }

    /// <summary>What Renew gives <paramref name="ap"/>: its own lifetime again, within today's policy.</summary>
    public string RenewalText(AppPassword ap) => LifetimeText.Describe(AppPasswordService.RenewalLifetime(ap, policy.Current));

    /// <summary>Whether a country database is configured; without one, country limits cannot be set.</summary>
    public bool CountryLimitsAvailable => countryLookup.IsEnabled;

    public async Task<IActionResult> OnGetAsync()
    {
        var user = await CurrentUserAsync();
        if (!accounts.MeetsFactorPolicy(await accounts.FactorsAsync(user)))
        {
            return RedirectToPage("/Security/Index");
        }

        return await ShowAsync();
    }

    public async Task<IActionResult> OnPostRenewAsync(string? id)
    {
        var user = await CurrentUserAsync();
        if (await RefuseAppPasswordWriteAsync(user, "/AppPasswords") is { } refused)
        {
            return refused;
        }

        try
        {
            var renewed = await store.RenewAsync(user.UserName!, id ?? string.Empty, null);
            await log.RecordAsync(user, SecurityEventKinds.AppPasswordRenewed, $"{renewed.Name}, until {renewed.Expires:u}");
            Flash($"“{renewed.Name}” renewed until {renewed.Expires.UtcDateTime:yyyy-MM-dd HH:mm} UTC. The password is unchanged.");
            return RedirectToPage();
        }
        catch (AppPasswordException ex)
        {
            Error = ex.Message;
        }
        catch (StoreUnavailableException ex)
        {
            PortalLog.StoreUnavailable(logger, ex);
            Error = StoreDown;
        }

        return await ShowAsync();
    }

    public async Task<IActionResult> OnPostRevokeAsync(string? id)
    {
        var user = await CurrentUserAsync();
        try
        {
            var ap = await store.GetAsync(user.UserName!, id ?? string.Empty);
            if (ap is not null && await store.RevokeAsync(user.UserName!, ap.Id))
            {
                await log.RecordAsync(user, SecurityEventKinds.AppPasswordRevoked, ap.Name);
                Flash($"“{ap.Name}” revoked.");
            }

            return RedirectToPage();
        }
        catch (StoreUnavailableException ex)
        {
            PortalLog.StoreUnavailable(logger, ex);
            Error = StoreDown;
            return await ShowAsync();
        }
    }

    public async Task<IActionResult> OnPostRevokeAllAsync()
    {
        var user = await CurrentUserAsync();
        try
        {
            var count = await store.RevokeAllAsync(user.UserName!);
            await log.RecordAsync(user, SecurityEventKinds.AppPasswordsRevokedAll, $"{count} revoked");
            Flash($"All app passwords revoked ({count}).");
            return RedirectToPage();
        }
        catch (StoreUnavailableException ex)
        {
            PortalLog.StoreUnavailable(logger, ex);
            Error = StoreDown;
            return await ShowAsync();
        }
    }

    /// <summary>
    /// Lets a pending network use the app password. Like issuing, it needs a fresh passkey/TOTP
    /// check and the required factor kind: a stolen session cookie must not be enough to let a
    /// stolen app password in.
    /// </summary>
    public async Task<IActionResult> OnPostApproveAsync(string? id, string? network)
    {
        var user = await CurrentUserAsync();
        if (await RefuseAppPasswordWriteAsync(user, "/AppPasswords") is { } refused)
        {
            return refused;
        }

        try
        {
            // Only the caller's own app passwords and only a network that is actually pending: another
            // user's id or a made-up network finds nothing and changes nothing.
            var ap = await store.GetAsync(user.UserName!, id ?? string.Empty);
            if (ap is null || network is null || !ap.PendingNetworks.Contains(network, StringComparer.Ordinal))
            {
                return RedirectToPage();
            }

            switch (await store.ApproveNetworkAsync(user.UserName!, ap.Id, network))
            {
                case NetworkApproval.Approved:
                    await log.RecordAsync(user, SecurityEventKinds.NetworkApproved, $"{ap.Name}: {network}");
                    Flash($"“{ap.Name}” may now be used from {network}. The mail app succeeds at its next try.");
                    break;
                case NetworkApproval.UserDisabled:
                    // Only in the moment between an admin's disable and this session's end.
                    Flash("Your account has been disabled: nothing was approved.");
                    break;
            }

            return RedirectToPage();
        }
        catch (StoreUnavailableException ex)
        {
            PortalLog.StoreUnavailable(logger, ex);
            Error = StoreDown;
            return await ShowAsync();
        }
    }

    /// <summary>
    /// "That was not me": revokes the app password, since whoever tried it from there has it. Taking
    /// access away needs no step-up.
    /// </summary>
    public async Task<IActionResult> OnPostDenyAsync(string? id, string? network)
    {
        var user = await CurrentUserAsync();
        try
        {
            var ap = await store.GetAsync(user.UserName!, id ?? string.Empty);
            if (ap is not null && await store.RevokeAsync(user.UserName!, ap.Id))
            {
                var from = network is not null && ap.PendingNetworks.Contains(network, StringComparer.Ordinal) ? network : "a new network";
                await log.RecordAsync(user, SecurityEventKinds.NetworkDenied, $"{ap.Name}: {from}");
                Flash($"“{ap.Name}” revoked: it was tried from {from}. Create a new app password for your own mail app.");
            }

            return RedirectToPage();
        }
        catch (StoreUnavailableException ex)
        {
            PortalLog.StoreUnavailable(logger, ex);
            Error = StoreDown;
            return await ShowAsync();
        }
    }

    /// <summary>Sets or clears where an app password may be used from (fresh MFA: it can widen access).</summary>
    public Task<IActionResult> OnPostAllowedNetworksAsync(string? id, string? networks) =>
        SetLimitAsync(id, networks, store.SetAllowedNetworksAsync, SecurityEventKinds.AllowedNetworksChanged,
            a => a.AllowedNetworks.Count == 0 ? "anywhere" : string.Join(", ", a.AllowedNetworks),
            "may be used from anywhere",
            () => (NetworksInput, NetworksFor) = (networks, id));

    /// <summary>Sets or clears the countries an app password may be used from; same rules as networks.</summary>
    public Task<IActionResult> OnPostAllowedCountriesAsync(string? id, string? countries) =>
        SetLimitAsync(id, countries, store.SetAllowedCountriesAsync, SecurityEventKinds.AllowedCountriesChanged,
            a => a.AllowedCountries.Count == 0 ? "any" : string.Join(", ", a.AllowedCountries),
            "is no longer limited by country",
            () => (CountriesInput, CountriesFor) = (countries, id));

    /// <summary>
    /// One of the "limit where it works" forms. Fresh MFA first: clearing or widening a list lets
    /// the app password work from more places. A refused entry shows the form again with what was typed.
    /// </summary>
    private async Task<IActionResult> SetLimitAsync(
        string? id,
        string? input,
        Func<string, string, IEnumerable<string>, CancellationToken, Task<AppPassword>> set,
        string eventKind,
        Func<AppPassword, string> describe,
        string lifted,
        Action keepInput)
    {
        var user = await CurrentUserAsync();
        if (await RefuseAppPasswordWriteAsync(user, "/AppPasswords") is { } refused)
        {
            return refused;
        }

        try
        {
            var ap = await store.GetAsync(user.UserName!, id ?? string.Empty);
            if (ap is null)
            {
                return RedirectToPage();
            }

            var entries = (input ?? string.Empty).Split([',', ' ', '\n', '\r', '\t', ';'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            var updated = await set(user.UserName!, ap.Id, entries, HttpContext.RequestAborted);
            await log.RecordAsync(user, eventKind, $"{updated.Name}: {describe(updated)}");
            var where = Where(updated);
            Flash($"“{updated.Name}” {(where.Length == 0 ? lifted : $"may be used only from {where}")}.");
            return RedirectToPage();
        }
        catch (AppPasswordException ex)
        {
            Error = ex.Message;
            keepInput();
        }
        catch (StoreUnavailableException ex)
        {
            PortalLog.StoreUnavailable(logger, ex);
            Error = StoreDown;
        }

        return await ShowAsync();
    }

    /// <summary>The whole limit in words (either part lets a login in); empty when there is none.</summary>
    private static string Where(AppPassword a) =>
        string.Join(" or from ", new[] { string.Join(", ", a.AllowedCountries), string.Join(", ", a.AllowedNetworks) }.Where(p => p.Length > 0));

    /// <summary>What was typed into a refused allowed-countries form, shown again to be corrected.</summary>
    public string? CountriesInput { get; private set; }

    public string? CountriesFor { get; private set; }

    /// <summary>What was typed into a refused allowed-networks form, shown again to be corrected.</summary>
    public string? NetworksInput { get; private set; }

    public string? NetworksFor { get; private set; }

    /// <summary>Time left, roughly (for "expires in"); lifetimes, which are exact, use <see cref="LifetimeText.Describe"/>.</summary>
    public static string Describe(TimeSpan t) =>
        t.TotalDays >= 2 ? $"{(int)t.TotalDays} days" : t.TotalHours >= 2 ? $"{(int)t.TotalHours} hours" : $"{Math.Max(1, (int)t.TotalMinutes)} minutes";

    private const string StoreDown = "The credential store is not reachable right now. Nothing was changed; try again in a moment.";

    private async Task<PageResult> ShowAsync()
    {
        Now = time.GetUtcNow();
        try
        {
            Items = await store.ListAsync((await CurrentUserAsync()).UserName!);
        }
        catch (StoreUnavailableException ex)
        {
            PortalLog.StoreUnavailable(logger, ex);
            Error ??= StoreDown;
        }

        return Page();
    }
}
