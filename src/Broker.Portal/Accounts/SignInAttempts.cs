using System.Data.Common;
using Broker.Portal.Data;
using Microsoft.AspNetCore.Identity;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Broker.Portal.Accounts;

/// <summary>What became of one password or code checked through <see cref="SignInAttempts"/>.</summary>
public enum AttemptResult
{
    /// <summary>Right.</summary>
    Accepted,

    /// <summary>Wrong, and counted.</summary>
    Wrong,

    /// <summary>Not checked: the account is locked out, or every allowed attempt is already being checked.</summary>
    LockedOut,

    /// <summary>
    /// Not decided: the database refused a write because of a concurrent one (SQLite busy past its
    /// timeout, an unexpected concurrency failure). The user is asked to try again.
    /// </summary>
    Conflict,
}

/// <summary>
/// Counts passwords and second-factor codes towards Identity's account lockout (the same
/// <c>AccessFailedCount</c> and <c>LockoutEnd</c>, the same <c>MaxFailedAttempts</c> and
/// <c>LockoutDuration</c>) so that parallel requests cannot check more than the limit.
/// </summary>
/// <remarks>
/// Identity checks the lockout first and counts the failure afterwards, with an update of the whole
/// account that fails when another request changed it meanwhile: 25 wrong codes sent at once got
/// about ten checked against a limit of five, and the losers of that race answered 500. Here each
/// attempt first reserves its place with one conditional UPDATE (only while the account is not
/// locked and fewer than the limit are counted), so at most the limit are ever checked; a wrong
/// one then locks the account once the limit is reached, a right one resets the count. These
/// updates leave the account's concurrency stamp alone: a right code racing with wrong ones still
/// records its TOTP step (a write conditional on the stamp), which still stops two uses of one code.
/// </remarks>
public sealed class SignInAttempts(PortalDbContext db, IOptions<IdentityOptions> identity, ILogger<SignInAttempts> logger)
{
    /// <summary>
    /// Identity compares <c>LockoutEnd</c> with the system clock (its UserManager takes no
    /// TimeProvider), and the password step, the disabled-account lockout and these checks must
    /// agree on whether an account is locked, so this clock is the system clock too.
    /// </summary>
    private static readonly TimeProvider IdentityClock = TimeProvider.System;

    /// <summary>Reserves an attempt, runs the check when the account is not locked out, and records the outcome.</summary>
    /// <param name="user">Tracked by the request's context; reloaded, so the caller goes on with the stored account.</param>
    /// <param name="verify">The password or code check; it runs at most once.</param>
    /// <param name="completesSignIn">
    /// True when a right answer completes the sign-in (a second factor, or the password of an account
    /// that has none): the count is reset, as Identity does. False for the password of an account with
    /// a second factor: the attempt only gives its own place back, so a known password cannot wipe
    /// out the wrong codes counted before it (Identity does not reset there either).
    /// </param>
    public async Task<AttemptResult> CheckAsync(PortalUser user, Func<Task<bool>> verify, bool completesSignIn = true)
    {
        ArgumentNullException.ThrowIfNull(user);
        ArgumentNullException.ThrowIfNull(verify);
        bool right;
        try
        {
            if (!await ReserveAsync(user))
            {
                // Also locks an account whose count reached the limit without a lockout (a request
                // that died between its check and its bookkeeping), so it cannot stay stuck there.
                if (await LockIfSpentAsync(user))
                {
                    PortalLog.LockedOut(logger, user.UserName!);
                }

                await db.Entry(user).ReloadAsync();
                return AttemptResult.LockedOut;
            }

            // The check may write the whole account (a TOTP step via UserManager.UpdateAsync); it
            // must not write back the count from before the reservation. The reload also brings a
            // TOTP step another request accepted meanwhile.
            await db.Entry(user).ReloadAsync();
            right = await verify();
        }
        catch (Exception ex) when (ex is DbUpdateException or DbException)
        {
            // Whatever the failed write left in the context (a modified account) must not be
            // retried by a later SaveChanges in this request; the reservation, if made, stays
            // counted (fail closed).
            db.ChangeTracker.Clear();
            PortalLog.SignInAttemptConflict(logger, ex);
            return AttemptResult.Conflict;
        }

        try
        {
            if (right)
            {
                await (completesSignIn ? ResetAsync(user) : GiveBackAsync(user));
            }
            else if (await LockIfSpentAsync(user))
            {
                PortalLog.LockedOut(logger, user.UserName!);
            }

            await db.Entry(user).ReloadAsync();
        }
        catch (Exception ex) when (ex is DbUpdateException or DbException)
        {
            // The answer stands (a right code may already be used up); a count left behind is
            // reset by the next success or turned into a lockout by the next refused reservation.
            db.ChangeTracker.Clear();
            PortalLog.SignInAttemptConflict(logger, ex);
        }

        return right ? AttemptResult.Accepted : AttemptResult.Wrong;
    }

    /// <summary>One conditional UPDATE: counts the attempt only while the account is open and under the limit.</summary>
    private async Task<bool> ReserveAsync(PortalUser user)
    {
        if (!user.LockoutEnabled)
        {
            // Identity ignores LockoutEnd for such an account; so does this (the portal creates none).
            return true;
        }

        var now = IdentityClock.GetUtcNow();
        var limit = identity.Value.Lockout.MaxFailedAccessAttempts;
        return await db.Users
            .Where(u => u.Id == user.Id && (u.LockoutEnd == null || u.LockoutEnd <= now) && u.AccessFailedCount < limit)
            .ExecuteUpdateAsync(s => s.SetProperty(u => u.AccessFailedCount, u => u.AccessFailedCount + 1)) == 1;
    }

    /// <summary>Locks the account for the lockout duration once the limit is counted; true when this call locked it.</summary>
    private async Task<bool> LockIfSpentAsync(PortalUser user)
    {
        if (!user.LockoutEnabled)
        {
            return false;
        }

        var now = IdentityClock.GetUtcNow();
        DateTimeOffset? until = now + identity.Value.Lockout.DefaultLockoutTimeSpan;
        var limit = identity.Value.Lockout.MaxFailedAccessAttempts;
        // As Identity: the count starts again from zero when the lockout ends.
        return await db.Users
            .Where(u => u.Id == user.Id && u.AccessFailedCount >= limit && (u.LockoutEnd == null || u.LockoutEnd <= now))
            .ExecuteUpdateAsync(s => s.SetProperty(u => u.LockoutEnd, until).SetProperty(u => u.AccessFailedCount, 0)) == 1;
    }

    private Task<int> ResetAsync(PortalUser user) =>
        db.Users.Where(u => u.Id == user.Id && u.AccessFailedCount != 0).ExecuteUpdateAsync(s => s.SetProperty(u => u.AccessFailedCount, 0));

    private Task<int> GiveBackAsync(PortalUser user) => user.LockoutEnabled
        ? db.Users.Where(u => u.Id == user.Id && u.AccessFailedCount > 0).ExecuteUpdateAsync(s => s.SetProperty(u => u.AccessFailedCount, u => u.AccessFailedCount - 1))
        : Task.FromResult(0);
}
