using Broker.Portal.Accounts;
using Broker.Portal.Activity;
using Broker.Portal.Data;
using Microsoft.AspNetCore.Mvc;

namespace Broker.Portal.Pages.Security;

public sealed class ActivityModel(SecurityLog log) : PortalPage
{
    public IReadOnlyList<SecurityEvent> Events { get; private set; } = [];

    public async Task<IActionResult> OnGetAsync()
    {
        if (!User.HasMfa())
        {
            return RedirectToPage("/Security/Index");
        }

        Events = await log.ForUserAsync((await CurrentUserAsync()).Id);
        return Page();
    }
}
