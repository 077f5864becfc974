using System.Globalization;
using System.Security.Claims;
using Broker.Portal.Data;
using Microsoft.AspNetCore.Identity;
using Microsoft.Extensions.Options;

namespace Broker.Portal.Accounts;

/// <summary>Claims the portal adds to the session cookie.</summary>
public static class PortalClaims
{
    /// <summary>"1" once the session passed a second factor (or a passkey, which is two factors in one).</summary>
    public const string Mfa = "broker:mfa";

    /// <summary>Unix seconds of the last passkey or TOTP check: the step-up clock.</summary>
    public const string MfaAt = "broker:mfa_at";

    /// <summary>
    /// Unix seconds of the last passkey check: the step-up clock under <c>RequiredFactor=passkey</c>,
    /// where a TOTP code (phishable) does not count as the fresh check.
    /// </summary>
    public const string PasskeyAt = "broker:hwk_at";

    /// <summary>
    /// Unix seconds of a sign-in with a recovery code: the start of the repair allowance (see
    /// <see cref="PortalSignIn.MayRepairFactors"/>). Never a step-up clock: it makes nothing fresh.
    /// </summary>
    public const string RepairAt = "broker:repair_at";

    /// <summary>Present on administrators.</summary>
    public const string Admin = "broker:admin";

    /// <summary>RFC 8176 authentication method references: pwd, otp, hwk (passkey), rec (recovery code).</summary>
    public const string Amr = "amr";

    public static bool HasMfa(this ClaimsPrincipal principal) => principal.FindFirstValue(Mfa) == "1";

    public static DateTimeOffset? MfaTime(this ClaimsPrincipal principal) => Time(principal, MfaAt);

    public static DateTimeOffset? PasskeyTime(this ClaimsPrincipal principal) => Time(principal, PasskeyAt);

    public static DateTimeOffset? RepairTime(this ClaimsPrincipal principal) => Time(principal, RepairAt);

    private static DateTimeOffset? Time(ClaimsPrincipal principal, string type) =>
        long.TryParse(principal.FindFirstValue(type), NumberStyles.None, CultureInfo.InvariantCulture, out var s)
            ? DateTimeOffset.FromUnixTimeSeconds(s)
            : null;

    /// <summary>Claims that must survive the periodic security-stamp refresh of the cookie.</summary>
    public static bool IsSessionClaim(Claim c) => c.Type is Mfa or MfaAt or PasskeyAt or RepairAt or Amr;
}

/// <summary>Adds the admin claim; rebuilt on every security-stamp refresh so a demotion takes effect.</summary>
public sealed class PortalClaimsFactory(UserManager<PortalUser> users, IOptions<IdentityOptions> options)
    : UserClaimsPrincipalFactory<PortalUser>(users, options)
{
    protected override async Task<ClaimsIdentity> GenerateClaimsAsync(PortalUser user)
    {
        var identity = await base.GenerateClaimsAsync(user);
        if (user.IsAdmin)
        {
            identity.AddClaim(new Claim(PortalClaims.Admin, "1"));
        }

        return identity;
    }
}
