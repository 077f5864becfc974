using System.Text;
using System.Threading.Channels;
using Broker.Core.Notifications;
using Broker.Core.Users;
using Broker.Portal.Activity;
using Broker.Portal.Data;
using Microsoft.AspNetCore.Identity;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Broker.Portal.Accounts;

/// <summary>The address rules of self-registration (<c>Broker:Portal:SelfRegistration</c>).</summary>
public static class SelfRegistrationAddress
{
    private static readonly System.Buffers.SearchValues<char> NotInDotAtoms = System.Buffers.SearchValues.Create("\"\\()<>,;:[]");

    /// <summary>
    /// Normalises with the one username rule (<see cref="Username"/>) and accepts only a plain
    /// <c>local@domain</c> mailbox: the mail goes to exactly the string that becomes the username,
    /// so receiving it proves control of the mailbox that username's app passwords open.
    /// </summary>
    public static bool TryNormalize(string? raw, out string address)
    {
        address = string.Empty;
        if (!Username.TryNormalize(raw, out var normalized))
        {
            return false;
        }

        var at = normalized.IndexOf('@', StringComparison.Ordinal);
        if (at <= 0 || at == normalized.Length - 1 || at != normalized.LastIndexOf('@'))
        {
            return false;
        }

        // Quoted local parts and address literals are legal mail syntax, but give the same mailbox a
        // second spelling (a second username): plain dot-atoms only.
        if (normalized.AsSpan().IndexOfAny(NotInDotAtoms) >= 0)
        {
            return false;
        }

        // No display names, comments, routes or quoting tricks: the parsed address must be the whole input.
        if (!MimeKit.MailboxAddress.TryParse(normalized, out var parsed) || !string.Equals(parsed.Address, normalized, StringComparison.Ordinal))
        {
            return false;
        }

        address = normalized;
        return true;
    }

    /// <summary>Whether the domain of a normalised address is one of the allowed domains, exactly (no subdomains).</summary>
    public static bool IsAllowed(string address, SelfRegistrationOptions options)
    {
        var domain = address[(address.LastIndexOf('@') + 1)..];
        return options.AllowedDomains.Any(d => string.Equals(NormalizeDomain(d), domain, StringComparison.Ordinal));
    }

    /// <summary>A host name such as <c>example.com</c>: no <c>@</c>, wildcard, spaces or port.</summary>
    public static bool IsValidDomain(string? domain) =>
        !string.IsNullOrWhiteSpace(domain) && Uri.CheckHostName(NormalizeDomain(domain)) == UriHostNameType.Dns;

    private static string NormalizeDomain(string domain) => domain.Normalize(NormalizationForm.FormKC).Trim().ToLowerInvariant();
}

/// <summary>A well-formed address in an allowed domain, and the client address that asked for it.</summary>
public sealed record SelfRegistrationRequest(string Address, string? RemoteIp);

/// <summary>
/// Requests from the register page wait here and are handled one at a time by
/// <see cref="SelfRegistrationWorker"/>. The page answers before anything about the account is
/// looked up or mailed, so its response time is the same whether the account is new, pending,
/// enrolled or disabled (an SMTP round trip for some answers and not others would tell them apart).
/// </summary>
public sealed class SelfRegistrationRequests
{
    /// <summary>Beyond this many waiting requests new ones are dropped (and logged): a flood must not grow memory.</summary>
    public const int Capacity = 200;

    private readonly Channel<SelfRegistrationRequest> _channel = Channel.CreateBounded<SelfRegistrationRequest>(
        new BoundedChannelOptions(Capacity) { SingleReader = true, FullMode = BoundedChannelFullMode.Wait });

    /// <summary>False when the queue is full.</summary>
    public bool TryEnqueue(SelfRegistrationRequest request) => _channel.Writer.TryWrite(request);

    internal ChannelReader<SelfRegistrationRequest> Reader => _channel.Reader;
}

/// <summary>Handles queued self-registration requests, each in its own scope; a failure is logged and the next one goes on.</summary>
internal sealed class SelfRegistrationWorker(SelfRegistrationRequests queue, IServiceScopeFactory scopes, IOptions<PortalOptions> options, ILogger<SelfRegistrationWorker> logger)
    : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (!options.Value.SelfRegistration.Enabled)
        {
            return;
        }

        await foreach (var request in queue.Reader.ReadAllAsync(stoppingToken))
        {
            try
            {
                await using var scope = scopes.CreateAsyncScope();
                await scope.ServiceProvider.GetRequiredService<SelfRegistrationService>().HandleAsync(request, stoppingToken);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                // E.g. the database is unreachable: nothing was mailed, the person can ask again.
                PortalLog.SelfRegistrationFailed(logger, ex);
            }
        }
    }
}

/// <summary>
/// Decides what one self-registration request does. A new address gets a pending account, exactly
/// like one an admin creates, and its enrollment link by mail; an account that never set a
/// password gets a fresh link (earlier ones stop working); enrolled, disabled and administrator
/// accounts get nothing. At most one link per address per <see cref="SelfRegistrationOptions.ResendInterval"/>.
/// The link goes only to the mailbox; it is never shown, logged or recorded.
/// </summary>
internal sealed class SelfRegistrationService(
    UserManager<PortalUser> users,
    PortalDbContext db,
    AccountService accounts,
    MailNotifier mail,
    SecurityLog log,
    TimeProvider time,
    IOptions<PortalOptions> options,
    ILogger<SelfRegistrationService> logger)
{
    /// <summary>The actor recorded for accounts and links made by self-registration (shown in the admin audit).</summary>
    public const string Actor = "self-registration";

    public async Task HandleAsync(SelfRegistrationRequest request, CancellationToken ct)
    {
        var user = await users.FindByNameAsync(request.Address);
        if (user is null)
        {
            await CreateAsync(request, ct);
            return;
        }

        var interval = options.Value.SelfRegistration.ResendInterval;
        var refusal = user switch
        {
            { DisabledAt: not null } => "account disabled: nothing sent",
            { PasswordHash: not null } => "account already set up: nothing sent",
            // An admin account is only ever handed out by another admin or the CLI, never to whoever reads a mailbox.
            { IsAdmin: true } => "administrator account: nothing sent",
            _ => null,
        };
        if (refusal is null && await LinkIssuedSinceAsync(user, time.GetUtcNow() - interval, ct))
        {
            refusal = $"a link was issued less than {interval.TotalMinutes:0} minutes ago: nothing sent";
        }

        if (refusal is not null)
        {
            await log.RecordAsync(user, SecurityEventKinds.RegistrationRequested, refusal, remoteIp: request.RemoteIp);
            PortalLog.SelfRegistrationHandled(logger, user.UserName!, refusal);
            return;
        }

        var link = await accounts.NewEnrollmentLinkAsync(user, Actor);
        const string outcome = "account not set up yet: new enrollment link, earlier links no longer work";
        await log.RecordAsync(user, SecurityEventKinds.RegistrationRequested, outcome, remoteIp: request.RemoteIp);
        await MailLinkAsync(user, link, ct);
        PortalLog.SelfRegistrationHandled(logger, user.UserName!, outcome);
    }

    private async Task CreateAsync(SelfRegistrationRequest request, CancellationToken ct)
    {
        PortalUser user;
        string link;
        try
        {
            (user, link) = await accounts.CreateAsync(request.Address, isAdmin: false, Actor);
        }
        catch (AccountException)
        {
            // Another portal instance created it between the look-up and here; that one sends the mail.
            PortalLog.SelfRegistrationHandled(logger, request.Address, "account created meanwhile: nothing sent");
            return;
        }

        const string outcome = "new account: enrollment link sent";
        await log.RecordAsync(user, SecurityEventKinds.RegistrationRequested, outcome, remoteIp: request.RemoteIp);
        await MailLinkAsync(user, link, ct);
        PortalLog.SelfRegistrationHandled(logger, user.UserName!, outcome);
    }

    /// <summary>Any link counts (an admin's too): a new one would replace it, so the interval also protects a link just handed over.</summary>
    private Task<bool> LinkIssuedSinceAsync(PortalUser user, DateTimeOffset since, CancellationToken ct) =>
        db.SecurityEvents.AnyAsync(e => e.UserId == user.Id && e.Kind == SecurityEventKinds.EnrollmentLinkIssued && e.At > since, ct);

    private async Task MailLinkAsync(PortalUser user, string link, CancellationToken ct)
    {
        var o = options.Value;
        await mail.SendAsync(user.UserName!, "Set up your account",
            $"""
            Someone, hopefully you, asked to set up a {o.ProductName} account for {user.UserName}.
            To choose your portal password, open this link. It works once, until {user.EnrollmentExpires:u}:

            {link}

            Next you add a passkey or an authenticator app: you need it every time you sign in.

            If you did not ask for this, ignore this message. Nothing happens without the link.
            """, ct, withoutBounces: true);
        await log.RecordAsync(user, SecurityEventKinds.EnrollmentLinkMailed, $"valid until {user.EnrollmentExpires:u}");
    }
}
