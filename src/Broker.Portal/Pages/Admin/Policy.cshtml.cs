using System.Globalization;
using Broker.Core.AppPasswords;
using Broker.Portal.Accounts;
using Broker.Portal.Activity;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Broker.Portal.Pages.Admin;

/// <summary>
/// The effective policy, editable at run time: lifetimes, allowed scopes, new-network approval
/// default and required factor kind. Changes need a fresh MFA check and land in the audit trail;
/// they are kept in Redis, so every instance applies them within seconds.
/// </summary>
public sealed class AdminPolicyModel(
    IOptions<PortalOptions> portal,
    IOptions<AppPasswordPolicyOptions> appPasswords,
    PolicyStore store,
    PortalPolicy policy,
    SecurityLog log,
    ILogger<AdminPolicyModel> logger) : PortalPage
{
    public PortalOptions Portal => portal.Value;

    public EffectivePolicy Effective => store.Current;

    public int MaximumPerUser => appPasswords.Value.MaximumPerUser;

    public string RequiredFactor => policy.RequiredFactor;

    public IReadOnlyList<string> Scopes => policy.Scopes;

    public string? Error { get; private set; }

    /// <summary>Form values, echoed back when a change is refused.</summary>
    public string DefaultLifetime { get; private set; } = string.Empty;

    public string MinimumLifetime { get; private set; } = string.Empty;

    public string MaximumLifetime { get; private set; } = string.Empty;

    public IReadOnlyList<string> FormScopes { get; private set; } = [];

    public bool FormApproval { get; private set; }

    public string FormFactor { get; private set; } = FactorKinds.Any;

    public void OnGet() => Fill();

    public async Task<IActionResult> OnPostSaveAsync(string? defaultLifetime, string? minimumLifetime, string? maximumLifetime, string[]? scopes, bool requireApproval, string? requiredFactor)
    {
        if (!Sessions.IsFresh(User))
        {
            return StepUp("/Admin/Policy");
        }

        (DefaultLifetime, MinimumLifetime, MaximumLifetime) = (defaultLifetime ?? string.Empty, minimumLifetime ?? string.Empty, maximumLifetime ?? string.Empty);
        (FormScopes, FormApproval, FormFactor) = (scopes ?? [], requireApproval, requiredFactor ?? string.Empty);
        if (!LifetimeText.TryParse(DefaultLifetime, out var def, out var error) || !LifetimeText.TryParse(MinimumLifetime, out var min, out error) || !LifetimeText.TryParse(MaximumLifetime, out var max, out error))
        {
            Error = $"{error} Write each lifetime as a number and a unit: 90m, 12h or 30d.";
            return Page();
        }

        var admin = await CurrentUserAsync();
        try
        {
            var now = await store.SetAsync(new PolicySettings(def, min, max, FormScopes, requireApproval, FormFactor), admin.UserName!, HttpContext.RequestAborted);
            await log.RecordAsync(admin, SecurityEventKinds.PolicyChanged, Describe(now), admin.UserName);
        }
        catch (AppPasswordException ex)
        {
            Error = ex.Message;
            return Page();
        }
        catch (StoreUnavailableException ex)
        {
            PortalLog.StoreUnavailable(logger, ex);
            Error = "The credential store is not reachable right now. Nothing was changed; try again in a moment.";
            return Page();
        }

        Flash("Policy saved. It applies to new app passwords and sign-ins from now on.");
        return RedirectToPage();
    }

    public async Task<IActionResult> OnPostResetAsync()
    {
        if (!Sessions.IsFresh(User))
        {
            return StepUp("/Admin/Policy");
        }

        var admin = await CurrentUserAsync();
        try
        {
            await store.ResetAsync(admin.UserName!, HttpContext.RequestAborted);
            await log.RecordAsync(admin, SecurityEventKinds.PolicyChanged, "overrides removed; configuration applies", admin.UserName);
        }
        catch (StoreUnavailableException ex)
        {
            PortalLog.StoreUnavailable(logger, ex);
            Fill();
            Error = "The credential store is not reachable right now. Nothing was changed; try again in a moment.";
            return Page();
        }

        Flash("Policy overrides removed: the configuration applies again.");
        return RedirectToPage();
    }

    /// <summary>A lifetime as the form shows it: whole days, hours or minutes.</summary>
    public static string Format(TimeSpan t) => LifetimeText.Format(t);

    private static string Describe(EffectivePolicy p) =>
        $"lifetimes {Format(p.MinimumLifetime)}–{Format(p.MaximumLifetime)} (default {Format(p.DefaultLifetime)}), protocols {string.Join(", ", p.AllowedScopes)}, new-network approval {(p.RequireApprovalForNewNetworks ? "on" : "off")}, required factor {p.RequiredFactor}";

    private void Fill()
    {
        var p = store.Current;
        (DefaultLifetime, MinimumLifetime, MaximumLifetime) = (Format(p.DefaultLifetime), Format(p.MinimumLifetime), Format(p.MaximumLifetime));
        (FormScopes, FormApproval, FormFactor) = (policy.Scopes, p.RequireApprovalForNewNetworks, policy.RequiredFactor);
    }
}
