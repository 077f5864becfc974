using System.Diagnostics;
using Broker.Core.Users;
using Broker.Portal.Accounts;
using Broker.Portal.Activity;
using Broker.Portal.Data;
using Microsoft.AspNetCore.Identity;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Broker.Portal.Pages.Account;

public sealed class LoginModel(
    SignInManager<PortalUser> identitySignIn,
    AccountService accounts,
    SignInAttempts attempts,
    SecurityLog log,
    IOptions<PortalOptions> options,
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
        var started = Stopwatch.GetTimestamp();
        ReturnUrl = returnUrl;
        Username = username;
        if (!Broker.Core.Users.Username.TryNormalize(username, out var normalized) || string.IsNullOrEmpty(password) || password.Length > AccountService.MaximumPasswordLength)
        {
            return await FailAsync("input", started);
        }

        var user = await Users.FindByNameAsync(normalized);
        // Every refusal costs exactly one password-hash verification, like a real check, so the
        // hashing does not tell unknown, disabled, locked-out and not yet enrolled (no password)
        // accounts from an existing account with a wrong password. The database writes for an
        // existing account (attempt count, activity entry) add a few milliseconds that an unknown
        // name, for which nothing is stored, does not; FailAsync paces the answer to hide them.
        var refusal = user is null ? null : await RefusedWithoutHashingAsync(user);
        if (user is null || refusal is not null)
        {
            Users.PasswordHasher.VerifyHashedPassword(new PortalUser(), DummyHash, password);
            if (user is not null)
            {
                await log.RecordAsync(user, SecurityEventKinds.SignInFailed, refusal!);
            }

            return await FailAsync("password", started);
        }

        // Counted through the same atomic reservation as the codes of the second step, not Identity's
        // CheckPasswordSignInAsync, which checks the lockout first and counts afterwards (parallel
        // guesses went past the limit) and reset the count on every right password (it counts an
        // account as two-factor only with one of its own token providers, which the portal does not
        // use), so whoever knew the password could guess codes without end. A right password
        // completes the sign-in only for an account without a second factor; for the others it must
        // not reset the wrong codes counted before. The factors themselves decide, not Identity's
        // TwoFactorEnabled flag, which a failed update can leave behind.
        var hasFactor = await accounts.HasAnyFactorAsync(user);
        var hashed = false;
        var result = await attempts.CheckAsync(
            user,
            () =>
            {
                hashed = true;
                return Users.CheckPasswordAsync(user, password);
            },
            completesSignIn: !hasFactor);
        if (result != AttemptResult.Accepted)
        {
            if (!hashed)
            {
                // Locked out meanwhile, or the check did not get that far: the same hashing work as any refusal.
                Users.PasswordHasher.VerifyHashedPassword(new PortalUser(), DummyHash, password);
            }

            await log.RecordAsync(user, SecurityEventKinds.SignInFailed, result switch
            {
                AttemptResult.Wrong => "wrong password",
                AttemptResult.LockedOut => "account locked after repeated failures",
                _ => "not checked: concurrent change of the account",
            });
            return await FailAsync("password", started);
        }

        if (!hasFactor)
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
        // The lockout is not checked: it stops guessing of passwords and codes, and a passkey cannot
        // be guessed. Checking it would let anyone who knows a username keep its owner out of the
        // portal with a few wrong passwords every LockoutDuration. Disabled accounts stay out.
        if (user is null || user.DisabledAt is not null)
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

    /// <summary>
    /// Why Identity's password check would refuse <paramref name="user"/> before hashing anything
    /// (disabled accounts are locked out for good), or null when it would verify the password.
    /// </summary>
    private async Task<string?> RefusedWithoutHashingAsync(PortalUser user) =>
        user.DisabledAt is not null ? "account disabled"
        : await Users.IsLockedOutAsync(user) ? "account locked after repeated failures"
        : user.PasswordHash is null ? "no password set yet"
        : null;

    private async Task<PageResult> FailAsync(string step, long started)
    {
        PortalLog.SignInRefused(logger, step);
        var wait = RefusalPacing.Remaining(Stopwatch.GetElapsedTime(started), options.Value.SignInRefusalPace);
        if (wait > TimeSpan.Zero)
        {
            // Wall-clock time on purpose: what is hidden is what a client can measure.
            await Task.Delay(wait, HttpContext.RequestAborted);
        }

        Error = GenericFailure;
        return Page();
    }

    private static readonly string DummyHash = new PasswordHasher<PortalUser>().HashPassword(new PortalUser(), "not-a-real-password-0123456789");
}
