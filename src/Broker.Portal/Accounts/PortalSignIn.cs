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
    IOptions<PortalOptions> options)
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
    public async Task SignInAsync(PortalUser user, bool mfa, params string[] methods)
    {
        await Context.SignOutAsync(PendingScheme);
        var claims = new List<Claim> { new(PortalClaims.Mfa, mfa ? "1" : "0") };
        claims.AddRange(methods.Distinct().Select(m => new Claim(PortalClaims.Amr, m)));
        if (methods.Contains("hwk") || methods.Contains("otp"))
        {
            claims.Add(new Claim(PortalClaims.MfaAt, time.GetUtcNow().ToUnixTimeSeconds().ToString(CultureInfo.InvariantCulture)));
        }

        if (mfa)
        {
            await users.ResetAccessFailedCountAsync(user);
        }

        await signIn.SignInWithClaimsAsync(user, isPersistent: false, claims);
    }

    /// <summary>Re-issues the session cookie with a fresh step-up time after a passkey or TOTP check.</summary>
    public async Task StepUpAsync(PortalUser user, string method)
    {
        var current = Context.User;
        var methods = current.FindAll(PortalClaims.Amr).Select(c => c.Value).Append(method).ToArray();
        await SignInAsync(user, mfa: true, methods);
    }

    /// <summary>Whether the session's last passkey/TOTP check lies within the step-up window.</summary>
    public bool IsFresh(ClaimsPrincipal principal)
    {
        var at = principal.MfaTime();
        return principal.HasMfa() && at is not null && time.GetUtcNow() - at.Value <= options.Value.StepUpWindow;
    }

    public async Task SignOutAsync()
    {
        await signIn.SignOutAsync();
        await Context.SignOutAsync(PendingScheme);
    }
}
