using Broker.Portal.Accounts;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.Options;

namespace Broker.Portal.Pages.Account;

/// <summary>The one-time enrollment link: the user picks a password, then must add a second factor.</summary>
public sealed class EnrollModel(AccountService accounts, IOptions<PortalOptions> options) : PortalPage
{
    public bool Invalid { get; private set; }

    public string? Token { get; private set; }

    public string? Username { get; private set; }

    public int MinimumLength => options.Value.MinimumPasswordLength;

    /// <summary>
    /// A link for an account that still has a passkey or authenticator app (a forgotten password):
    /// the page says that the password is replaced and that the factor is asked for next, not that
    /// one is to be added.
    /// </summary>
    public bool HasFactors { get; private set; }

    public List<string> Errors { get; } = [];

    public async Task OnGetAsync(string? token)
    {
        Token = token;
        var user = await accounts.FindByEnrollmentTokenAsync(token);
        Invalid = user is null;
        Username = user?.UserName;
        HasFactors = user is not null && await accounts.HasAnyFactorAsync(user);
    }

    public async Task<IActionResult> OnPostAsync(string? token, string? password, string? confirm)
    {
        Token = token;
        var user = await accounts.FindByEnrollmentTokenAsync(token);
        if (user is null)
        {
            Invalid = true;
            return Page();
        }

        Username = user.UserName;
        HasFactors = await accounts.HasAnyFactorAsync(user);
        if (string.IsNullOrEmpty(password) || password != confirm)
        {
            Errors.Add("The two passwords do not match.");
            return Page();
        }

        var result = await accounts.CompleteEnrollmentAsync(user, password);
        if (!result.Succeeded)
        {
            Errors.AddRange(result.Errors.Select(e => e.Description));
            return Page();
        }

        // Sign out whoever was signed in in this browser before: the link defines the account.
        await Sessions.SignOutAsync();
        if (await accounts.HasAnyFactorAsync(user))
        {
            // A password reset for someone who still has factors: they prove one as usual.
            await Sessions.BeginSecondFactorAsync(user);
            return RedirectToPage("/Account/SecondFactor");
        }

        await Sessions.SignInAsync(user, mfa: false, "pwd");
        return RedirectToPage("/Security/Index");
    }
}
