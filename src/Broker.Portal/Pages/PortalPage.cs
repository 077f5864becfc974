using Broker.Portal.Accounts;
using Broker.Portal.Data;
using Microsoft.AspNetCore.Identity;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.RazorPages;
using Microsoft.Extensions.DependencyInjection;

namespace Broker.Portal.Pages;

/// <summary>Helpers every portal page shares.</summary>
public abstract class PortalPage : PageModel
{
    protected UserManager<PortalUser> Users => HttpContext.RequestServices.GetRequiredService<UserManager<PortalUser>>();

    protected PortalSignIn Sessions => HttpContext.RequestServices.GetRequiredService<PortalSignIn>();

    protected async Task<PortalUser> CurrentUserAsync() =>
        await Users.GetUserAsync(User) ?? throw new InvalidOperationException("The signed-in account no longer exists.");

    /// <summary>Sends the user to re-verify with a passkey or TOTP and come back here.</summary>
    protected IActionResult StepUp(string? returnUrl = null) =>
        RedirectToPage("/Account/StepUp", new { returnUrl = returnUrl ?? (Request.Path + Request.QueryString) });

    protected void Flash(string message) => TempData["Flash"] = message;

    protected static string SafeReturnUrl(string? returnUrl, string fallback = "/AppPasswords") =>
        !string.IsNullOrEmpty(returnUrl) && returnUrl.StartsWith('/') && !returnUrl.StartsWith("//", StringComparison.Ordinal) && !returnUrl.StartsWith("/\\", StringComparison.Ordinal)
            ? returnUrl
            : fallback;
}
