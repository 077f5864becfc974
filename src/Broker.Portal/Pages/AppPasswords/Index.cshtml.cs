using Broker.Core.AppPasswords;
using Broker.Portal.Accounts;
using Broker.Portal.Activity;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Broker.Portal.Pages.AppPasswords;

/// <summary>List, renew (fresh MFA), revoke and revoke all. Taking access away never needs step-up.</summary>
public sealed class AppPasswordsModel(
    AppPasswordService store,
    AccountService accounts,
    SecurityLog log,
    TimeProvider time,
    IOptions<AppPasswordPolicyOptions> policy,
    ILogger<AppPasswordsModel> logger) : PortalPage
{
    public IReadOnlyList<AppPassword> Items { get; private set; } = [];

    public DateTimeOffset Now { get; private set; }

    public const int WarnDays = 7;

    public string? Error { get; private set; }

    public string DefaultLifetimeText => Describe(policy.Value.DefaultLifetime);

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
        if (!Sessions.IsFresh(User))
        {
            return StepUp("/AppPasswords");
        }

        var user = await CurrentUserAsync();
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
