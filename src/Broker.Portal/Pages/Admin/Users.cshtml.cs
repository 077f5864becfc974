using Broker.Core.AppPasswords;
using Broker.Portal.Accounts;
using Broker.Portal.Activity;
using Broker.Portal.Data;
using Microsoft.AspNetCore.Mvc;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging;

namespace Broker.Portal.Pages.Admin;

/// <summary>User administration. Every change needs a fresh MFA check and lands in the audit trail.</summary>
public sealed class AdminUsersModel(AccountService accounts, SecurityLog log, PortalDbContext db, AppPasswordService store, ILogger<AdminUsersModel> logger) : PortalPage
{
    /// <summary>One user; <c>AsksForNewNetworks</c> is null when the credential store is unreachable.</summary>
    public sealed record Row(PortalUser User, int Passkeys, bool? AsksForNewNetworks);

    public IReadOnlyList<Row> Rows { get; private set; } = [];

    public IReadOnlyList<SecurityEvent> Audit { get; private set; } = [];

    public string? Link { get; private set; }

    public string? LinkUser { get; private set; }

    public DateTimeOffset? LinkExpires { get; private set; }

    public string? Error { get; private set; }

    public async Task<IActionResult> OnGetAsync() => await ShowAsync();

    public async Task<IActionResult> OnPostCreateAsync(string? username, bool isAdmin)
    {
        if (!Sessions.IsFresh(User))
        {
            return StepUp("/Admin/Users");
        }

        try
        {
            var (user, link) = await accounts.CreateAsync(username ?? string.Empty, isAdmin, User.Identity!.Name);
            PortalLog.AccountChanged(logger, user.UserName!, "created by " + User.Identity!.Name);
            (Link, LinkUser, LinkExpires) = (link, user.UserName, user.EnrollmentExpires);
        }
        catch (AccountException ex)
        {
            Error = ex.Message;
        }

        return await ShowAsync();
    }

    public Task<IActionResult> OnPostLinkAsync(string? id) => ChangeAsync(id, async u =>
    {
        Link = await accounts.NewEnrollmentLinkAsync(u, User.Identity!.Name);
        (LinkUser, LinkExpires) = (u.UserName, u.EnrollmentExpires);
        return null;
    });

    public Task<IActionResult> OnPostDisableAsync(string? id) => ChangeAsync(id, async u =>
    {
        if (u.Id == (await CurrentUserAsync()).Id)
        {
            return "You cannot disable your own account.";
        }

        await accounts.DisableAsync(u, User.Identity!.Name!);
        Flash($"{u.UserName} disabled; their app passwords no longer work.");
        return null;
    });

    public Task<IActionResult> OnPostEnableAsync(string? id) => ChangeAsync(id, async u =>
    {
        await accounts.EnableAsync(u, User.Identity!.Name!);
        Flash($"{u.UserName} enabled. Their old app passwords stay revoked.");
        return null;
    });

    public Task<IActionResult> OnPostResetFactorsAsync(string? id, string? reason) => ChangeAsync(id, async u =>
    {
        if (string.IsNullOrWhiteSpace(reason))
        {
            return "Give a reason: it is recorded in the audit trail.";
        }

        await accounts.ResetFactorsAsync(u, User.Identity!.Name!, reason.Trim());
        Flash($"Factors of {u.UserName} removed. At their next sign-in they must enroll a new one.");
        return null;
    });

    /// <summary>New-network approval for one user: "on", "off", or "default" (follow the organisation policy).</summary>
    public Task<IActionResult> OnPostNetworkApprovalAsync(string? id, string? approval) => ChangeAsync(id, async u =>
    {
        bool? value = approval switch
        {
            "on" => true,
            "off" => false,
            _ => null,
        };
        await store.SetNewNetworkApprovalAsync(u.UserName!, value);
        var text = value switch { true => "on", false => "off", null => "organisation default" };
        await log.RecordAsync(u, SecurityEventKinds.NetworkApprovalSetting, text, User.Identity!.Name);
        Flash($"New-network approval for {u.UserName}: {text}.");
        return null;
    });

    private async Task<IActionResult> ChangeAsync(string? id, Func<PortalUser, Task<string?>> change)
    {
        if (!Sessions.IsFresh(User))
        {
            return StepUp("/Admin/Users");
        }

        var user = id is null ? null : await Users.FindByIdAsync(id);
        if (user is null)
        {
            return NotFound();
        }

        try
        {
            Error = await change(user);
            PortalLog.AccountChanged(logger, user.UserName!, "changed by " + User.Identity!.Name);
        }
        catch (StoreUnavailableException ex)
        {
            PortalLog.StoreUnavailable(logger, ex);
            Error = "The credential store is not reachable, so app passwords could not be revoked. Nothing was changed; try again.";
        }

        return Link is null && Error is null ? RedirectToPage() : await ShowAsync();
    }

    private async Task<PageResult> ShowAsync()
    {
        var users = await db.Users.OrderBy(u => u.UserName).Take(500).ToListAsync();
        var passkeyCounts = await db.UserPasskeys.GroupBy(p => p.UserId).Select(g => new { g.Key, Count = g.Count() }).ToDictionaryAsync(x => x.Key, x => x.Count);
        var approvals = await Task.WhenAll(users.Select(async u =>
        {
            try
            {
                return await store.RequiresNewNetworkApprovalAsync(u.UserName!);
            }
            catch (StoreUnavailableException)
            {
                return (bool?)null;
            }
        }));
        Rows = [.. users.Select((u, i) => new Row(u, passkeyCounts.GetValueOrDefault(u.Id), approvals[i]))];
        Audit = await log.AuditTrailAsync(100);
        return Page();
    }
}
