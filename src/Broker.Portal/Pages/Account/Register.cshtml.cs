using Broker.Portal.Accounts;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Broker.Portal.Pages.Account;

/// <summary>
/// Self-registration (<c>Broker:Portal:SelfRegistration</c>, off by default: 404). The person types
/// their mail address; an enrollment link is mailed to it in the background, never shown here.
/// </summary>
public sealed class RegisterModel(IOptions<PortalOptions> options, SelfRegistrationRequests queue, ILogger<RegisterModel> logger) : PortalPage
{
    /// <summary>
    /// The one answer for every well-formed address: new, pending, enrolled, disabled, administrator
    /// or outside the allowed domains alike, so the page does not tell anyone which accounts exist
    /// or which domains may register. Whoever owns the mailbox learns the rest from the mail.
    /// </summary>
    public const string Answer = "If this address may register, we sent a link to it.";

    public bool Sent { get; private set; }

    public string? Error { get; private set; }

    public string? Email { get; private set; }

    private bool Enabled => options.Value.SelfRegistration.Enabled;

    public IActionResult OnGet() => Enabled ? Page() : NotFound();

    public IActionResult OnPost(string? email)
    {
        if (!Enabled)
        {
            return NotFound();
        }

        if (!SelfRegistrationAddress.TryNormalize(email, out var address))
        {
            // Only the shape of what was typed: says nothing about accounts or domains.
            Email = email?.Length > Broker.Core.Users.Username.MaxLength ? null : email;
            Error = Broker.Core.Users.Username.FindInvisibleCharacter(email) is null
                ? "Enter your email address, for example name@example.com."
                : "The address contains an invisible character (such as a zero width space): type it instead of pasting it.";
            return Page();
        }

        // Nothing about the account is looked up here: the worker does it after this answer, so the
        // response time does not depend on whether an account exists or a mail is sent.
        if (!SelfRegistrationAddress.IsAllowed(address, options.Value.SelfRegistration))
        {
            PortalLog.SelfRegistrationRefused(logger, "domain not allowed");
        }
        else if (!queue.TryEnqueue(new SelfRegistrationRequest(address, HttpContext.Connection.RemoteIpAddress?.ToString())))
        {
            PortalLog.SelfRegistrationQueueFull(logger);
        }

        Sent = true;
        return Page();
    }
}
