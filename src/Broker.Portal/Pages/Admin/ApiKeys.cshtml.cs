using Broker.Core.Callers;
using Microsoft.AspNetCore.Mvc;
using StackExchange.Redis;

namespace Broker.Portal.Pages.Admin;

/// <summary>Caller API keys for mail servers (the keys live hashed in Redis; see <see cref="CallerKeyStore"/>).</summary>
public sealed class AdminApiKeysModel(CallerKeyStore keys) : PortalPage
{
    public IReadOnlyList<(string Name, string HashPrefix)> Keys { get; private set; } = [];

    public string? NewKey { get; private set; }

    public string? NewKeyName { get; private set; }

    public string? Error { get; private set; }

    public async Task<IActionResult> OnGetAsync() => await ShowAsync();

    public async Task<IActionResult> OnPostCreateAsync(string? name)
    {
        if (!Sessions.IsFresh(User))
        {
            return StepUp("/Admin/ApiKeys");
        }

        try
        {
            NewKey = await keys.CreateAsync(name ?? string.Empty, HttpContext.RequestAborted);
            NewKeyName = name?.Trim();
        }
        catch (CallerKeyException ex)
        {
            Error = ex.Message;
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            Error = "The credential store is not reachable; try again.";
        }

        return await ShowAsync();
    }

    public async Task<IActionResult> OnPostDeleteAsync(string? name)
    {
        if (!Sessions.IsFresh(User))
        {
            return StepUp("/Admin/ApiKeys");
        }

        try
        {
            var removed = await keys.DeleteAsync(name ?? string.Empty, HttpContext.RequestAborted);
            Flash($"Deleted {removed} key(s) of {name}.");
            return RedirectToPage();
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            Error = "The credential store is not reachable; try again.";
            return await ShowAsync();
        }
    }

    private async Task<PageResult> ShowAsync()
    {
        try
        {
            Keys = await keys.ListAsync(HttpContext.RequestAborted);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            Error ??= "The credential store is not reachable.";
        }

        return Page();
    }
}
