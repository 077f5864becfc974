using Broker.Portal.Accounts;
using Broker.Portal.Activity;
using Broker.Portal.Data;
using Broker.Portal.Totp;
using Microsoft.AspNetCore.Identity;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Broker.Portal.Pages.Account;

/// <summary>
/// Fresh-MFA check inside a signed-in session: passkey or TOTP (recovery codes do not count); under
/// RequiredFactor=passkey a passkey, with TOTP left only to users who have none yet, to add one.
/// </summary>
public sealed class StepUpModel(
    SignInManager<PortalUser> identitySignIn,
    AccountService accounts,
    TotpService totp,
    SignInAttempts attempts,
    SecurityLog log,
    IOptions<PortalOptions> options,
    PortalPolicy policy,
    ILogger<StepUpModel> logger) : PortalPage
{
    public string? Error { get; private set; }

    public string? ReturnUrl { get; private set; }

    public bool HasPasskey { get; private set; }

    /// <summary>Whether a TOTP code is offered: not under RequiredFactor=passkey to a user who has a passkey.</summary>
    public bool HasTotp { get; private set; }

    /// <summary>Under RequiredFactor=passkey only a passkey check counts; the page says so.</summary>
    public bool PasskeyRequired => policy.PasskeyRequired;

    public int WindowMinutes => (int)Math.Ceiling(options.Value.StepUpWindow.TotalMinutes);

    public async Task<IActionResult> OnGetAsync(string? returnUrl)
    {
        ReturnUrl = SafeReturnUrl(returnUrl);
        return await CurrentOrNullAsync() is { } user ? await ShowAsync(user, null) : RedirectToPage("/Account/Login", new { returnUrl });
    }

    public async Task<IActionResult> OnPostPasskeyOptionsAsync() =>
        await CurrentOrNullAsync() is { } user ? Content(await identitySignIn.MakePasskeyRequestOptionsAsync(user), "application/json") : BadRequest();

    public async Task<IActionResult> OnPostPasskeyAsync(string? credential, string? returnUrl)
    {
        ReturnUrl = SafeReturnUrl(returnUrl);
        if (await CurrentOrNullAsync() is not { } user)
        {
            return RedirectToPage("/Account/Login");
        }

        if (await PasskeyCeremony.AssertAsync(identitySignIn, credential, user, logger) is null)
        {
            return await ShowAsync(user, "That passkey did not work. Try again.");
        }

        return await DoneAsync(user, "hwk", "passkey");
    }

    public async Task<IActionResult> OnPostTotpAsync(string? code, string? returnUrl)
    {
        ReturnUrl = SafeReturnUrl(returnUrl);
        if (await CurrentOrNullAsync() is not { } user)
        {
            return RedirectToPage("/Account/Login");
        }

        if (!await TotpCountsAsync(user))
        {
            // Refused before the code is looked at: it is neither used up nor counted as a failure.
            return await ShowAsync(user, "Your organisation requires a passkey for this check.");
        }

        switch (await attempts.CheckAsync(user, () => totp.VerifyAsync(user, code)))
        {
            case AttemptResult.Wrong:
                await log.RecordAsync(user, SecurityEventKinds.SignInFailed, "step-up: wrong or reused authenticator code");
                return await ShowAsync(user, "That code is not valid. Codes work once and only for about 30 seconds; wait for the next one.");
            case AttemptResult.LockedOut:
                await log.RecordAsync(user, SecurityEventKinds.SignInFailed, "step-up: code not checked: account locked after repeated failures");
                return await ShowAsync(user, "Too many wrong codes: checks with the authenticator app are paused for a while. Try again later.");
            case AttemptResult.Conflict:
                return await ShowAsync(user, SecondFactorModel.ConflictMessage);
        }

        return await DoneAsync(user, "otp", "authenticator app");
    }

    private async Task<IActionResult> DoneAsync(PortalUser user, string method, string description)
    {
        await Sessions.StepUpAsync(user, method);
        await log.RecordAsync(user, SecurityEventKinds.StepUp, description);
        // Under RequiredFactor=passkey a TOTP check (offered only to users without a passkey) is good
        // for one thing, adding a passkey; anywhere else it would send the user straight back here.
        return policy.PasskeyRequired && method != "hwk" ? RedirectToPage("/Security/Index") : LocalRedirect(ReturnUrl!);
    }

    /// <summary>Step-up is for sessions that already passed MFA; anything else starts at sign-in.</summary>
    private async Task<PortalUser?> CurrentOrNullAsync() =>
        User.Identity?.IsAuthenticated == true && User.HasMfa() ? await Users.GetUserAsync(User) : null;

    private async Task<PageResult> ShowAsync(PortalUser user, string? error)
    {
        Error = error;
        var factors = await accounts.FactorsAsync(user);
        HasPasskey = factors.Passkeys.Count > 0;
        HasTotp = TotpCounts(factors);
        return Page();
    }

    private async Task<bool> TotpCountsAsync(PortalUser user) => TotpCounts(await accounts.FactorsAsync(user));

    private bool TotpCounts(FactorSummary factors) =>
        factors.TotpName is not null && !(policy.PasskeyRequired && factors.Passkeys.Count > 0);
}
