using Broker.Portal.Accounts;
using Microsoft.AspNetCore.Mvc;

namespace Broker.Portal.Pages.Account;

public sealed class DeniedModel : PortalPage
{
    /// <summary>A password-only session is not an error: it is sent to enroll a second factor.</summary>
    public IActionResult OnGet() =>
        User.Identity?.IsAuthenticated == true && !User.HasMfa() ? RedirectToPage("/Security/Index") : Page();
}
