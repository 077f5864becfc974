using System.Security.Claims;
using Broker.Portal.Accounts;
using Broker.Portal.Data;
using Microsoft.AspNetCore.Identity;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.Filters;
using Microsoft.AspNetCore.Mvc.RazorPages;
using Microsoft.Extensions.DependencyInjection;

namespace Broker.Portal.Pages;

/// <summary>Helpers every portal page shares.</summary>
public abstract class PortalPage : PageModel
{
    protected UserManager<PortalUser> Users => HttpContext.RequestServices.GetRequiredService<UserManager<PortalUser>>();

    protected PortalSignIn Sessions => HttpContext.RequestServices.GetRequiredService<PortalSignIn>();

    /// <summary>Whether a signed-in request is checked against the account first; the error page opts out.</summary>
    protected virtual bool ChecksAccount => true;

    /// <summary>
    /// Ends the session of a disabled or deleted account, or one whose security stamp changed since
    /// the cookie was issued, at its next request. Disable, factor reset, sign out everywhere and a
    /// new password all change the stamp, but the cookie is compared with it only once a minute;
    /// within that minute the old session could otherwise still issue, renew or approve app
    /// passwords, step up (which re-issues the cookie with the new stamp, so it would never end), or,
    /// after a factor reset, enroll a factor of its own without any check, since the account then
    /// has none. The account is loaded here anyway for most pages, and the handler's own look-up
    /// reuses it.
    /// </summary>
    public override async Task OnPageHandlerExecutionAsync(PageHandlerExecutingContext context, PageHandlerExecutionDelegate next)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(next);
        if (ChecksAccount && User.Identity?.IsAuthenticated == true && !await IsCurrentSessionAsync())
        {
            await Sessions.SignOutAsync();
            context.Result = RedirectToPage("/Account/Login");
            return;
        }

        await base.OnPageHandlerExecutionAsync(context, next);
    }

    private async Task<bool> IsCurrentSessionAsync() =>
        await Users.GetUserAsync(User) is { DisabledAt: null } user
        && string.Equals(User.FindFirstValue(Users.Options.ClaimsIdentity.SecurityStampClaimType), await Users.GetSecurityStampAsync(user), StringComparison.Ordinal);

    protected async Task<PortalUser> CurrentUserAsync() =>
        await Users.GetUserAsync(User) ?? throw new InvalidOperationException("The signed-in account no longer exists.");

    /// <summary>Sends the user to re-verify with a passkey or TOTP and come back here.</summary>
    protected IActionResult StepUp(string? returnUrl = null) =>
        RedirectToPage("/Account/StepUp", new { returnUrl = returnUrl ?? (Request.Path + Request.QueryString) });

    protected void Flash(string message) => TempData["Flash"] = message;

    /// <summary>
    /// Marks in the security activity a factor change that only the repair allowance of a
    /// recovery-code sign-in permitted (no fresh check), so the user and the admins can tell it from
    /// one made after a passkey or TOTP check. Empty otherwise.
    /// </summary>
    protected string RepairNote() => !Sessions.IsFresh(User) && Sessions.MayRepairFactors(User) ? " (after a recovery-code sign-in)" : string.Empty;

    /// <summary>
    /// The one gate for everything that gives app passwords more reach: issuing, renewing, approving
    /// a network, widening or lifting where one may be used, turning new-network approval off. Every
    /// such write checks the same rules, so a handler cannot forget the factor policy and keep only
    /// the freshness check. Returns null when the write may go ahead, else where to send the user.
    /// </summary>
    protected async Task<IActionResult?> RefuseAppPasswordWriteAsync(PortalUser user, string returnUrl)
    {
        var accounts = HttpContext.RequestServices.GetRequiredService<AccountService>();
        // The factor policy first: under RequiredFactor=passkey a TOTP-only user is sent to add a
        // passkey, not to a step-up that could never satisfy the policy.
        if (!accounts.MeetsFactorPolicy(await accounts.FactorsAsync(user)))
        {
            return RedirectToPage("/Security/Index");
        }

        return Sessions.IsFresh(User) ? null : StepUp(returnUrl);
    }

    /// <summary>
    /// <paramref name="returnUrl"/> when it is a path on this site, else <paramref name="fallback"/>.
    /// The rules are those of <c>Url.IsLocalUrl</c>, which <c>LocalRedirect</c> enforces by throwing:
    /// besides "//host" and "/\\host" (another site), a control character anywhere is refused, since
    /// browsers drop tabs and newlines ("/\t/host" is "//host") and LocalRedirect would answer 500.
    /// </summary>
    protected static string SafeReturnUrl(string? returnUrl, string fallback = "/AppPasswords") =>
        IsLocalPath(returnUrl) ? returnUrl! : fallback;

    private static bool IsLocalPath(string? url) =>
        !string.IsNullOrEmpty(url)
        && url[0] == '/'
        && (url.Length == 1 || (url[1] is not ('/' or '\\') && !url.Any(char.IsControl)));
}
