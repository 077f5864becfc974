using Broker.Core.Users;
using Broker.Portal.Accounts;
using Broker.Portal.Activity;
using Broker.Portal.Data;
using Microsoft.AspNetCore.Identity;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.Logging;

namespace Broker.Portal.Pages.Account;

public sealed class LoginModel(
    SignInManager<PortalUser> identitySignIn,
    AccountService accounts,
    SecurityLog log,
    ILogger<LoginModel> logger) : PortalPage
{
    // One message for unknown user, wrong password, disabled and locked-out accounts alike, so the
    // page does not tell anyone which usernames exist.
    public const string GenericFailure = "Wrong username or password, or sign-in is paused for this account. Try again later.";

    public string? Error { get; private set; }

    public string? Username { get; private set; }

    public string? ReturnUrl { get; private set; }

    public void OnGet(string? returnUrl) => ReturnUrl = returnUrl;

    public async Task<IActionResult> OnPostPasswordAsync(string? username, string? password, string? returnUrl)
    {
        ReturnUrl = returnUrl;
        Username = username;
        if (!Broker.Core.Users.Username.TryNormalize(username, out var normalized) || string.IsNullOrEmpty(password) || password.Length > 1024)
        {
            return Fail("input");
        }

        var user = await Users.FindByNameAsync(normalized);
        if (user is null)
        {
            // Spend the time a real check would, so response time does not reveal unknown usernames.
            Users.PasswordHasher.VerifyHashedPassword(new PortalUser(), DummyHash, password);
            return Fail("password");
        }

        var result = await identitySignIn.CheckPasswordSignInAsync(user, password, lockoutOnFailure: true);
        if (!result.Succeeded || user.DisabledAt is not null)
        {
            await log.RecordAsync(user, SecurityEventKinds.SignInFailed, result.IsLockedOut ? "account locked after repeated failures" : "wrong password");
            return Fail("password");
        }

        var factors = await accounts.FactorsAsync(user);
        if (!factors.HasAny)
        {
            // Password-only session: it can reach nothing but second-factor enrollment.
            await Sessions.SignInAsync(user, mfa: false, "pwd");
            await log.RecordAsync(user, SecurityEventKinds.SignIn, "password only: second factor enrollment required");
            return RedirectToPage("/Security/Index");
        }

        await Sessions.BeginSecondFactorAsync(user);
        return RedirectToPage("/Account/SecondFactor", new { returnUrl });
    }

    public async Task<IActionResult> OnPostPasskeyOptionsAsync() =>
        Content(await identitySignIn.MakePasskeyRequestOptionsAsync(null), "application/json");

    public async Task<IActionResult> OnPostPasskeyAsync(string? credential, string? returnUrl)
    {
        ReturnUrl = returnUrl;
        var user = await PasskeyCeremony.AssertAsync(identitySignIn, credential, expectedUser: null, logger);
        if (user is null || user.DisabledAt is not null || await Users.IsLockedOutAsync(user))
        {
            Error = "That passkey did not work. Try again, or sign in with your password.";
            return Page();
        }

        // A passkey with user verification is possession plus PIN or biometric: two factors at once.
        await Sessions.SignInAsync(user, mfa: true, "hwk");
        await log.RecordAsync(user, SecurityEventKinds.SignIn, "passkey");
        PortalLog.SignedIn(logger, user.UserName!, "hwk");
        return LocalRedirect(SafeReturnUrl(returnUrl));
    }

    private PageResult Fail(string step)
    {
        PortalLog.SignInRefused(logger, step);
        Error = GenericFailure;
        return Page();
    }

    private static readonly string DummyHash = new PasswordHasher<PortalUser>().HashPassword(new PortalUser(), "not-a-real-password-0123456789");
}
