using Broker.Portal.Accounts;
using Broker.Portal.Activity;
using Broker.Portal.Data;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Identity;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.Extensions.Logging;

namespace Broker.Portal.Pages.Security;

/// <summary>
/// Factor management. A password-only session (no factor yet) may only add a first factor here;
/// once a user has factors, every change needs a fresh passkey/TOTP check (a stolen session
/// cookie must not be enough to plant the attacker's own passkey). The one exception is the repair
/// allowance of a recovery-code sign-in (<see cref="PortalSignIn.MayRepairFactors"/>): for a few
/// minutes it may add a passkey or authenticator app and generate new recovery codes, never remove.
/// </summary>
public sealed class SecurityModel(
    SignInManager<PortalUser> identitySignIn,
    AccountService accounts,
    RecoveryCodeService recoveryCodes,
    SecurityLog log,
    Broker.Core.AppPasswords.AppPasswordService store,
    PortalPolicy policy,
    ILogger<SecurityModel> logger) : PortalPage
{
    private const string ConflictMessage = "Nothing was removed: the account was being changed at the same time. Try again.";

    public FactorSummary Factors { get; private set; } = new([], null, null, 0);

    public bool MeetsPolicy { get; private set; }

    public bool PasskeyRequired => policy.PasskeyRequired;

    public IReadOnlyList<string>? NewRecoveryCodes { get; private set; }

    public string? Error { get; private set; }

    /// <summary>Whole minutes left of the repair allowance of a recovery-code sign-in; null when there is none.</summary>
    public int? RepairMinutesLeft { get; private set; }

    /// <summary>Whether logins from a new network wait for this user's approval; null when the store is unreachable.</summary>
    public bool? AsksForNewNetworks { get; private set; }

    public static string PasskeyId(UserPasskeyInfo pk) => WebEncoders.Base64UrlEncode(pk.CredentialId);

    public async Task<IActionResult> OnGetAsync() => await ShowAsync(await CurrentUserAsync());

    public async Task<IActionResult> OnPostPasskeyCreationOptionsAsync()
    {
        var user = await CurrentUserAsync();
        if (!await MayChangeFactorsAsync(user))
        {
            // The page script fetches this and cannot make sense of a redirect (Forbid() leads to the
            // "Not allowed" page): it goes to this location, and the step-up brings the user back here.
            return new JsonResult(new { location = Url.Page("/Account/StepUp", new { returnUrl = "/Security" }) }) { StatusCode = StatusCodes.Status403Forbidden };
        }

        var entity = new PasskeyUserEntity { Id = user.Id, Name = user.UserName!, DisplayName = user.UserName! };
        return Content(await identitySignIn.MakePasskeyCreationOptionsAsync(entity), "application/json");
    }

    public async Task<IActionResult> OnPostAddPasskeyAsync(string? credential, string? name)
    {
        var user = await CurrentUserAsync();
        if (!await MayChangeFactorsAsync(user))
        {
            return StepUp("/Security");
        }

        var result = await PasskeyCeremony.AttestAsync(identitySignIn, credential, logger);
        if (result is not { } created || created.UserEntity.Id != user.Id)
        {
            Error = "The passkey could not be registered. Try again.";
            return await ShowAsync(user);
        }

        var passkey = created.Passkey;
        passkey.Name = Clean(name, "Passkey");
        var saved = await Users.AddOrUpdatePasskeyAsync(user, passkey);
        if (!saved.Succeeded)
        {
            Error = "The passkey could not be saved: " + string.Join(" ", saved.Errors.Select(e => e.Description));
            return await ShowAsync(user);
        }

        await log.RecordAsync(user, SecurityEventKinds.PasskeyAdded, passkey.Name + RepairNote());
        return await AfterFactorAddedAsync(user, "hwk", $"Passkey \"{passkey.Name}\" added.");
    }

    public async Task<IActionResult> OnPostRemovePasskeyAsync(string? id)
    {
        var user = await CurrentUserAsync();
        if (!IsFreshMfa())
        {
            return StepUp("/Security");
        }

        byte[] credentialId;
        try
        {
            credentialId = WebEncoders.Base64UrlDecode(id ?? string.Empty);
        }
        catch (FormatException)
        {
            return BadRequest();
        }

        var (result, name) = await accounts.RemoveFactorAsync(user, credentialId);
        switch (result)
        {
            case FactorRemoval.NotFound:
                return NotFound();
            case FactorRemoval.LastFactor:
                Error = "This is your last sign-in factor that meets the policy. Add another one before removing it.";
                return await ShowAsync(user);
            case FactorRemoval.Conflict:
                Error = ConflictMessage;
                return await ShowAsync(user);
        }

        await log.RecordAsync(user, SecurityEventKinds.PasskeyRemoved, name ?? string.Empty);
        Flash("Passkey removed.");
        return RedirectToPage();
    }

    public async Task<IActionResult> OnPostRemoveTotpAsync()
    {
        var user = await CurrentUserAsync();
        if (!IsFreshMfa())
        {
            return StepUp("/Security");
        }

        switch ((await accounts.RemoveFactorAsync(user, passkeyId: null)).Result)
        {
            case FactorRemoval.NotFound:
                // Already gone (a removal from another tab): nothing to do, nothing to record.
                return RedirectToPage();
            case FactorRemoval.LastFactor:
                Error = "This is your last sign-in factor. Add a passkey before removing it.";
                return await ShowAsync(user);
            case FactorRemoval.Conflict:
                Error = ConflictMessage;
                return await ShowAsync(user);
        }

        await log.RecordAsync(user, SecurityEventKinds.TotpRemoved);
        Flash("Authenticator app removed.");
        return RedirectToPage();
    }

    public async Task<IActionResult> OnPostRecoveryCodesAsync()
    {
        var user = await CurrentUserAsync();
        // Part of the repair: the code just used, and maybe the sheet it came from, are spent.
        if (!IsFreshMfa() && !Sessions.MayRepairFactors(User))
        {
            return StepUp("/Security");
        }

        NewRecoveryCodes = await recoveryCodes.RegenerateAsync(user);
        await log.RecordAsync(user, SecurityEventKinds.RecoveryCodesGenerated, RepairNote().TrimStart());
        return await ShowAsync(user);
    }

    public async Task<IActionResult> OnPostSignOutEverywhereAsync()
    {
        var user = await CurrentUserAsync();
        // A new security stamp invalidates every session cookie at its next validation.
        await Users.UpdateSecurityStampAsync(user);
        await log.RecordAsync(user, SecurityEventKinds.SignedOutEverywhere);
        await Sessions.SignOutAsync();
        return RedirectToPage("/Account/Login");
    }

    /// <summary>
    /// "Ask me before an app password is used from a new network". Turning it on is always
    /// allowed; turning it off weakens protection, so it is an app-password write like any other
    /// (fresh passkey/TOTP check, required factor kind).
    /// </summary>
    public async Task<IActionResult> OnPostNewNetworkApprovalAsync(bool enabled)
    {
        var user = await CurrentUserAsync();
        if (!enabled && await RefuseAppPasswordWriteAsync(user, "/Security") is { } refused)
        {
            return refused;
        }

        try
        {
            await store.SetNewNetworkApprovalAsync(user.UserName!, enabled);
        }
        catch (Broker.Core.AppPasswords.StoreUnavailableException ex)
        {
            PortalLog.StoreUnavailable(logger, ex);
            Error = "The credential store is not reachable right now. Nothing was changed; try again in a moment.";
            return await ShowAsync(user);
        }

        await log.RecordAsync(user, SecurityEventKinds.NetworkApprovalSetting, enabled ? "on" : "off");
        Flash(enabled
            ? "From now on, an app password used from a new network waits until you approve it on the App passwords page."
            : "App passwords work from any network again (unless you limited them).");
        return RedirectToPage();
    }

    /// <summary>
    /// After a factor is added: the first factor turns a password-only session into a full one (the
    /// user has just proved the new factor) and produces the recovery codes.
    /// </summary>
    internal async Task<IActionResult> AfterFactorAddedAsync(PortalUser user, string method, string message)
    {
        await accounts.SyncTwoFactorFlagAsync(user);
        if (!User.HasMfa())
        {
            await Sessions.SignInAsync(user, mfa: true, "pwd", method);
            await log.RecordAsync(user, SecurityEventKinds.SignIn, "completed by enrolling a second factor");
        }

        if (await recoveryCodes.RemainingAsync(user) == 0)
        {
            NewRecoveryCodes = await recoveryCodes.RegenerateAsync(user);
            await log.RecordAsync(user, SecurityEventKinds.RecoveryCodesGenerated);
        }

        if (NewRecoveryCodes is null)
        {
            Flash(message);
            return RedirectToPage();
        }

        TempData["Flash"] = message;
        return await ShowAsync(user);
    }

    /// <summary>
    /// Adding a passkey: a fresh check that counts under the policy, or no factor yet, or, under
    /// RequiredFactor=passkey, a fresh TOTP check from a user who has no passkey yet (the way to comply),
    /// or the repair allowance of a recovery-code sign-in (the way back for a user who lost their devices).
    /// </summary>
    private async Task<bool> MayChangeFactorsAsync(PortalUser user)
    {
        if (IsFreshMfa() || Sessions.MayRepairFactors(User))
        {
            return true;
        }

        var factors = await accounts.FactorsAsync(user);
        return !factors.HasAny || (PasskeyRequired && factors.Passkeys.Count == 0 && Sessions.IsFreshWithAnyFactor(User));
    }

    private bool IsFreshMfa() => Sessions.IsFresh(User);

    private async Task<PageResult> ShowAsync(PortalUser user)
    {
        Factors = await accounts.FactorsAsync(user);
        MeetsPolicy = accounts.MeetsFactorPolicy(Factors);
        RepairMinutesLeft = Sessions.RepairTimeLeft(User) is { } left ? (int)Math.Ceiling(left.TotalMinutes) : null;
        try
        {
            AsksForNewNetworks = await store.RequiresNewNetworkApprovalAsync(user.UserName!);
        }
        catch (Broker.Core.AppPasswords.StoreUnavailableException ex)
        {
            PortalLog.StoreUnavailable(logger, ex);
        }

        return Page();
    }

    private static string Clean(string? name, string fallback)
    {
        var s = new string((name ?? string.Empty).Where(c => !char.IsControl(c)).ToArray()).Trim();
        return s.Length == 0 ? fallback : Columns.Clip(s, 100);
    }
}
