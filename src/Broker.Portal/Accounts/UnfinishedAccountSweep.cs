using Broker.Portal.Activity;
using Broker.Portal.Data;
using Microsoft.AspNetCore.Identity;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Broker.Portal.Accounts;

/// <summary>
/// Removes accounts that self-registration created and nobody ever set up, once their last
/// enrollment link has been expired for <see cref="SelfRegistrationOptions.UnfinishedAccountRetention"/>.
/// Anyone can request an account for any address in an allowed domain, including mailboxes that
/// do not exist, so without this the user list fills with addresses nobody owns. Accounts an
/// administrator created or handed a link to are theirs to manage and are never removed here.
/// </summary>
internal sealed class UnfinishedAccountSweep(
    UserManager<PortalUser> users,
    PortalDbContext db,
    SecurityLog log,
    TimeProvider time,
    IOptions<PortalOptions> options,
    ILogger<UnfinishedAccountSweep> logger)
{
    /// <summary>Actor recorded on the removal (shown in the admin audit).</summary>
    public const string Actor = "unfinished-account-sweep";

    /// <summary>At most this many removals per run, so one run never holds the database for long.</summary>
    private const int BatchSize = 200;

    /// <summary>Removes what is due; returns how many accounts were removed.</summary>
    public async Task<int> RunOnceAsync(CancellationToken ct)
    {
        var cutoff = time.GetUtcNow() - options.Value.SelfRegistration.UnfinishedAccountRetention;
        var candidates = await db.Users
            .Where(u => u.PasswordHash == null && u.DisabledAt == null && !u.IsAdmin && u.EnrollmentExpires != null && u.EnrollmentExpires < cutoff)
            // Created by self-registration, and no link since from anyone else (an admin or the CLI).
            .Where(u => db.SecurityEvents.Any(e => e.UserId == u.Id && e.Kind == SecurityEventKinds.UserCreated && e.Actor == SelfRegistrationService.Actor))
            .Where(u => !db.SecurityEvents.Any(e => e.UserId == u.Id && e.Kind == SecurityEventKinds.EnrollmentLinkIssued && e.Actor != SelfRegistrationService.Actor))
            .OrderBy(u => u.EnrollmentExpires)
            .Take(BatchSize)
            .ToListAsync(ct);
        var removed = 0;
        foreach (var user in candidates)
        {
            ct.ThrowIfCancellationRequested();
            // The concurrency stamp makes this a no-op if the account changed since it was read
            // (a new link was requested, another portal instance removed it first).
            var result = await users.DeleteAsync(user);
            if (!result.Succeeded)
            {
                var errors = string.Join(" ", result.Errors.Select(e => e.Code));
                PortalLog.UnfinishedAccountKept(logger, user.UserName!, errors);
                continue;
            }

            // Events have no foreign key to the account: the history stays, this line explains the end of it.
            await log.RecordAsync(user, SecurityEventKinds.UnfinishedAccountRemoved,
                $"never set up; enrollment link expired {user.EnrollmentExpires:u}", Actor);
            PortalLog.UnfinishedAccountRemoved(logger, user.UserName!);
            removed++;
        }

        return removed;
    }
}

/// <summary>Runs <see cref="UnfinishedAccountSweep"/> every hour (and once at start-up), each run in its own scope.</summary>
internal sealed class UnfinishedAccountSweeper(IServiceScopeFactory scopes, TimeProvider time, ILogger<UnfinishedAccountSweeper> logger) : BackgroundService
{
    internal static readonly TimeSpan Interval = TimeSpan.FromHours(1);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        // Runs even with self-registration switched off: accounts it made earlier still need removing.
        using var timer = new PeriodicTimer(Interval, time);
        do
        {
            try
            {
                await using var scope = scopes.CreateAsyncScope();
                await scope.ServiceProvider.GetRequiredService<UnfinishedAccountSweep>().RunOnceAsync(stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex)
            {
                // The database may be starting or briefly away; the next run tries again.
                PortalLog.UnfinishedAccountSweepFailed(logger, ex);
            }
        }
        while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false));
    }
}
