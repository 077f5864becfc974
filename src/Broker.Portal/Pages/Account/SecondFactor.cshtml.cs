using Broker.Portal.Accounts;
using Broker.Portal.Activity;
using Broker.Portal.Data;
using Broker.Portal.Totp;
using Microsoft.AspNetCore.Identity;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Broker.Portal.Pages.Account;

/// <summary>The second step of a password sign-in: passkey, TOTP or a recovery code.</summary>
public sealed class SecondFactorModel(
    SignInManager<PortalUser> identitySignIn,
    AccountService accounts,
    TotpService totp,
    RecoveryCodeService recoveryCodes,
    SignInAttempts attempts,
    SecurityLog log,
    IOptions<PortalOptions> options,
    ILogger<SecondFactorModel> logger) : PortalPage
{
    /// <summary>For a code refused because of a concurrent change of the account (<see cref="AttemptResult.Conflict"/>); step-up shows it too.</summary>
    internal const string ConflictMessage = "Your account was changed at the same moment by another request, so the code could not be checked. Please try again.";

    private const string LockedOutMessage = "Too many wrong codes: sign-in is paused for this account for a while. Try again later.";

    public string? Error { get; private set; }

    public string? ReturnUrl { get; private set; }

    public bool HasPasskey { get; private set; }

    public bool HasTotp { get; private set; }

    public async Task<IActionResult> OnGetAsync(string? returnUrl)
    {
        ReturnUrl = returnUrl;
        var user = await Sessions.GetPendingUserAsync();
        return user is null ? RedirectToPage("/Account/Login") : await ShowAsync(user, null);
    }

    public async Task<IActionResult> OnPostPasskeyOptionsAsync()
    {
        var user = await Sessions.GetPendingUserAsync();
        return user is null ? BadRequest() : Content(await identitySignIn.MakePasskeyRequestOptionsAsync(user), "application/json");
    }

    public async Task<IActionResult> OnPostPasskeyAsync(string? credential, string? returnUrl)
    {
        ReturnUrl = returnUrl;
        var user = await Sessions.GetPendingUserAsync();
        if (user is null)
        {
            return RedirectToPage("/Account/Login");
        }

        if (await PasskeyCeremony.AssertAsync(identitySignIn, credential, user, logger) is null)
        {
            return await ShowAsync(user, "That passkey did not work. Try again or use another method.");
        }

        return await CompleteAsync(user, "hwk", "passkey");
    }

    public async Task<IActionResult> OnPostTotpAsync(string? code, string? returnUrl)
    {
        ReturnUrl = returnUrl;
        var user = await Sessions.GetPendingUserAsync();
        if (user is null)
        {
            return RedirectToPage("/Account/Login");
        }

        // Wrong codes count towards the same lockout as wrong passwords.
        var result = await attempts.CheckAsync(user, () => totp.VerifyAsync(user, code));
        if (result != AttemptResult.Accepted)
        {
            return await RefusedAsync(user, result, "wrong or reused authenticator code", "That code is not valid. Codes work once and only for about 30 seconds; wait for the next one.");
        }

        return await CompleteAsync(user, "otp", "password + authenticator app");
    }

    public async Task<IActionResult> OnPostRecoveryAsync(string? recoveryCode, string? returnUrl)
    {
        ReturnUrl = returnUrl;
        var user = await Sessions.GetPendingUserAsync();
        if (user is null)
        {
            return RedirectToPage("/Account/Login");
        }

        var result = await attempts.CheckAsync(user, () => recoveryCodes.RedeemAsync(user, recoveryCode));
        if (result != AttemptResult.Accepted)
        {
            return await RefusedAsync(user, result, "wrong or used recovery code", "That recovery code is not valid or was already used.");
        }

        await log.RecordAsync(user, SecurityEventKinds.RecoveryCodeUsed, $"{await recoveryCodes.RemainingAsync(user)} left");
        // A recovery code completes sign-in but does not start the step-up clock: issuing app passwords
        // still needs a passkey or TOTP. It opens a short repair allowance instead, recorded as such,
        // and the user is sent to use it.
        await Sessions.SignInWithRecoveryCodeAsync(user);
        await log.RecordAsync(user, SecurityEventKinds.SignIn, "password + recovery code");
        await log.RecordAsync(user, SecurityEventKinds.FactorRepairAllowed, $"for {RepairMinutes} minutes: add a passkey or authenticator app, new recovery codes");
        PortalLog.SignedIn(logger, user.UserName!, "pwd+rec");
        // The Security page shows what the allowance permits and how long it lasts (#repair-notice).
        return RedirectToPage("/Security/Index");
    }

    private int RepairMinutes => (int)Math.Ceiling(options.Value.StepUpWindow.TotalMinutes);

    private async Task<IActionResult> CompleteAsync(PortalUser user, string method, string description)
    {
        await Sessions.SignInAsync(user, mfa: true, "pwd", method);
        await log.RecordAsync(user, SecurityEventKinds.SignIn, description);
        PortalLog.SignedIn(logger, user.UserName!, "pwd+" + method);
        var factors = await accounts.FactorsAsync(user);
        return accounts.MeetsFactorPolicy(factors) ? LocalRedirect(SafeReturnUrl(ReturnUrl)) : RedirectToPage("/Security/Index");
    }

    /// <summary>A code that was not accepted: wrong (counted), not checked (locked out), or not decided (try again).</summary>
    private async Task<PageResult> RefusedAsync(PortalUser user, AttemptResult result, string wrong, string wrongMessage)
    {
        switch (result)
        {
            case AttemptResult.Wrong:
                await log.RecordAsync(user, SecurityEventKinds.SignInFailed, wrong);
                return await ShowAsync(user, wrongMessage);
            case AttemptResult.LockedOut:
                // The password was right, so saying that the account is paused tells nobody more than
                // they know; the code was not looked at.
                await log.RecordAsync(user, SecurityEventKinds.SignInFailed, "code not checked: account locked after repeated failures");
                return await ShowAsync(user, LockedOutMessage);
            default:
                return await ShowAsync(user, ConflictMessage);
        }
    }

    private async Task<PageResult> ShowAsync(PortalUser user, string? error)
    {
        Error = error;
        var factors = await accounts.FactorsAsync(user);
        HasPasskey = factors.Passkeys.Count > 0;
        HasTotp = factors.TotpName is not null;
        return Page();
    }
}
