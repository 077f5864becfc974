using Microsoft.AspNetCore.Mvc;

namespace Broker.Portal.Pages.Account;

public sealed class LogoutModel : PortalPage
{
    public async Task<IActionResult> OnPostAsync()
    {
        await Sessions.SignOutAsync();
        return RedirectToPage();
    }
}
