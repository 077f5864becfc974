using Broker.Portal.Accounts;
using Microsoft.AspNetCore.Mvc;

namespace Broker.Portal.Pages;

public sealed class IndexModel : PortalPage
{
    public IActionResult OnGet() =>
        User.Identity?.IsAuthenticated != true ? RedirectToPage("/Account/Login")
        : User.HasMfa() ? RedirectToPage("/AppPasswords/Index")
        : RedirectToPage("/Security/Index");
}
