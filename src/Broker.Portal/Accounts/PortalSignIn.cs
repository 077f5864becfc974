using System.Globalization;
using System.Security.Claims;
using Broker.Portal.Data;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Identity;
using Microsoft.Extensions.Options;

namespace Broker.Portal.Accounts;

/// <summary>
/// The portal's sign-in state machine on top of Identity: password → pending cookie → second
/// factor → session, and the step-up clock. Identity's own two-factor cookie is not used for the
/// pending state because Identity keeps passkey ceremony state in that same cookie.
/// </summary>
public sealed class PortalSignIn(
    SignInManager<PortalUser> signIn,
    UserManager<PortalUser> users,
    IHttpContextAccessor http,
    TimeProvider time,
    IOptions<PortalOptions> options,
    PortalPolicy policy)
{
    /// <summary>Short-lived cookie holding "password checked, second factor pending" for one user.</summary>
    public const string PendingScheme = "Broker.Pending";

    private HttpContext Context => http.HttpContext ?? throw new InvalidOperationException("No HTTP context.");

    /// <summary>Remembers that the password was right; the second factor page reads this.</summary>
    public async Task BeginSecondFactorAsync(PortalUser user)
    {
        var identity = new ClaimsIdentity(PendingScheme);
        identity.AddClaim(new Claim(ClaimTypes.NameIdentifier, user.Id));
        identity.AddClaim(new Claim("stamp", await users.GetSecurityStampAsync(user)));
        await Context.SignInAsync(PendingScheme, new ClaimsPrincipal(identity));
    }

    /// <summary>The user whose password was checked in this browser in the last few minutes, or null.</summary>
    public async Task<PortalUser?> GetPendingUserAsync()
    {
        var result = await Context.AuthenticateAsync(PendingScheme);
        var id = result.Principal?.FindFirstValue(ClaimTypes.NameIdentifier);
        if (id is null)
        {
            return null;
        }

        var user = await users.FindByIdAsync(id);
        // A password change, disable or factor reset since the password step voids the pending state.
        return user is not null && user.DisabledAt is null && result.Principal!.FindFirstValue("stamp") == await users.GetSecurityStampAsync(user) ? user : null;
    }

    /// <summary>Starts the session. <paramref name="methods"/> are amr values; passkey or TOTP also start the step-up clock.</summary>
    public Task SignInAsync(PortalUser user, bool mfa, params string[] methods) =>
        StartSessionAsync(user, mfa, methods, verifiedNow: methods, passkeyAt: null, repairAt: null);

    /// <summary>
    /// Starts the session after password + recovery code. It has passed MFA but is not fresh: a
    /// recovery code is what is left after the devices are lost, so it must not stand in for them
    /// when app passwords are issued. It only opens the repair allowance (<see cref="MayRepairFactors"/>),
    /// without which the user could never replace the lost devices: every factor change needs a
    /// fresh check, and step-up offers only the devices that are gone.
    /// </summary>
    public Task SignInWithRecoveryCodeAsync(PortalUser user) =>
        StartSessionAsync(user, mfa: true, ["pwd", "rec"], verifiedNow: ["rec"], passkeyAt: null, repairAt: time.GetUtcNow());

    /// <summary>Re-issues the session cookie with a fresh step-up time after a passkey or TOTP check.</summary>
    public async Task StepUpAsync(PortalUser user, string method)
    {
        var current = Context.User;
        var methods = current.FindAll(PortalClaims.Amr).Select(c => c.Value).Append(method).ToArray();
        // Only the method just used is fresh: a session that began with a passkey and now steps up
        // with TOTP keeps its old passkey time rather than getting a new one.
        // The repair allowance keeps its own start: a step-up neither extends nor ends it.
        await StartSessionAsync(user, mfa: true, methods, verifiedNow: [method], passkeyAt: method == "hwk" ? null : current.PasskeyTime(), repairAt: current.RepairTime());
    }

    /// <summary>
    /// Whether the session's last check that counts under the policy lies within the step-up window:
    /// a passkey or TOTP check, or only a passkey check under <c>RequiredFactor=passkey</c> (that
    /// policy means phishing-resistant only, and a TOTP code can be phished along with the password).
    /// </summary>
    public bool IsFresh(ClaimsPrincipal principal) =>
        principal.HasMfa() && Within(policy.PasskeyRequired ? principal.PasskeyTime() : principal.MfaTime());

    /// <summary>
    /// Whether any passkey or TOTP check lies within the window, whatever the policy. Only for a user
    /// without a passkey adding one under <c>RequiredFactor=passkey</c>: otherwise nobody who enrolled
    /// with TOTP before the policy could ever comply.
    /// </summary>
    public bool IsFreshWithAnyFactor(ClaimsPrincipal principal) => principal.HasMfa() && Within(principal.MfaTime());

    /// <summary>
    /// Whether the session began with a recovery code within the step-up window. Such a session may
    /// add a passkey, set up (or replace) the authenticator app and generate new recovery codes, the
    /// repairs a user who lost their devices needs, and nothing else: it never counts as fresh MFA
    /// (<see cref="IsFresh"/>), so app-password writes, factor removal and admin pages still need a
    /// real passkey or TOTP check, under <c>RequiredFactor=passkey</c> a passkey check.
    /// </summary>
    public bool MayRepairFactors(ClaimsPrincipal principal) => principal.HasMfa() && Within(principal.RepairTime());

    /// <summary>What is left of the repair allowance of <paramref name="principal"/>, or null when it has none (left).</summary>
    public TimeSpan? RepairTimeLeft(ClaimsPrincipal principal) =>
        MayRepairFactors(principal) ? principal.RepairTime()!.Value + options.Value.StepUpWindow - time.GetUtcNow() : null;

    private bool Within(DateTimeOffset? at) => at is not null && time.GetUtcNow() - at.Value <= options.Value.StepUpWindow;

    private async Task StartSessionAsync(PortalUser user, bool mfa, string[] methods, string[] verifiedNow, DateTimeOffset? passkeyAt, DateTimeOffset? repairAt)
    {
        await Context.SignOutAsync(PendingScheme);
        var now = time.GetUtcNow();
        var claims = new List<Claim> { new(PortalClaims.Mfa, mfa ? "1" : "0") };
        claims.AddRange(methods.Distinct().Select(m => new Claim(PortalClaims.Amr, m)));
        if (verifiedNow.Contains("hwk") || verifiedNow.Contains("otp"))
        {
            claims.Add(new Claim(PortalClaims.MfaAt, Seconds(now)));
        }

        if (verifiedNow.Contains("hwk"))
        {
            passkeyAt = now;
        }

        if (passkeyAt is { } p)
        {
            claims.Add(new Claim(PortalClaims.PasskeyAt, Seconds(p)));
        }

        if (repairAt is { } r)
        {
            claims.Add(new Claim(PortalClaims.RepairAt, Seconds(r)));
        }

        if (mfa)
        {
            await users.ResetAccessFailedCountAsync(user);
        }

        await signIn.SignInWithClaimsAsync(user, isPersistent: false, claims);
    }

    private static string Seconds(DateTimeOffset t) => t.ToUnixTimeSeconds().ToString(CultureInfo.InvariantCulture);

    public async Task SignOutAsync()
    {
        await signIn.SignOutAsync();
        await Context.SignOutAsync(PendingScheme);
    }
}
