using System.Data.Common;
using System.Security.Cryptography;
using System.Text;
using Broker.Core.AppPasswords;
using Broker.Core.Users;
using Broker.Portal.Activity;
using Broker.Portal.Data;
using Broker.Portal.Totp;
using Microsoft.AspNetCore.Identity;
using Microsoft.EntityFrameworkCore;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Broker.Portal.Accounts;

/// <summary>What a user has enrolled, for the security page and the forced-enrollment rule.</summary>
public sealed record FactorSummary(IReadOnlyList<UserPasskeyInfo> Passkeys, string? TotpName, DateTimeOffset? TotpAddedAt, int RecoveryCodesLeft)
{
    public bool HasAny => Passkeys.Count > 0 || TotpName is not null;
}

/// <summary>What became of a request to remove a second factor (<see cref="AccountService.RemoveFactorAsync"/>).</summary>
public enum FactorRemoval
{
    /// <summary>Removed.</summary>
    Removed,

    /// <summary>No such passkey, or no authenticator app: nothing to remove.</summary>
    NotFound,

    /// <summary>Refused: no factor that meets the policy would be left.</summary>
    LastFactor,

    /// <summary>Not decided: the database refused a write (SQLite busy past its timeout, a concurrent change); nothing was removed.</summary>
    Conflict,
}

/// <summary>Account life cycle: creation by an admin, enrollment links, disable, factor reset.</summary>
public sealed class AccountService(
    UserManager<PortalUser> users,
    PortalDbContext db,
    AppPasswordService appPasswords,
    RecoveryCodeService recoveryCodes,
    TotpService totp,
    SecurityLog log,
    TimeProvider time,
    IOptions<PortalOptions> options,
    PortalPolicy policy,
    ILogger<AccountService> logger)
{
    /// <summary>
    /// The longest password the sign-in page checks (longer ones are refused before any hashing);
    /// enrollment refuses the same, or it would set a password that can never be used.
    /// </summary>
    public const int MaximumPasswordLength = 1024;

    /// <summary>Creates an account without a password and returns its one-time enrollment link.</summary>
    public async Task<(PortalUser User, string Link)> CreateAsync(string username, bool isAdmin, string? actor)
    {
        if (!Username.TryNormalize(username, out var normalized))
        {
            throw new AccountException(Username.InvisibleCharacterProblem(username) ?? "The username is empty, too long or contains spaces or control characters.");
        }

        if (await users.FindByNameAsync(normalized) is not null)
        {
            throw new AccountException($"An account named '{normalized}' already exists.");
        }

        var user = new PortalUser
        {
            UserName = normalized,
            Email = normalized.Contains('@', StringComparison.Ordinal) ? normalized : null,
            IsAdmin = isAdmin,
            CreatedAt = time.GetUtcNow(),
            LockoutEnabled = true,
        };
        var result = await users.CreateAsync(user);
        if (!result.Succeeded)
        {
            throw new AccountException(string.Join(" ", result.Errors.Select(e => e.Description)));
        }

        await log.RecordAsync(user, SecurityEventKinds.UserCreated, isAdmin ? "administrator" : string.Empty, actor ?? "cli");
        return (user, await NewEnrollmentLinkAsync(user, actor));
    }

    /// <summary>Replaces any earlier link: only the newest link works, once, until it expires.</summary>
    public async Task<string> NewEnrollmentLinkAsync(PortalUser user, string? actor)
    {
        var token = Base64Url(RandomNumberGenerator.GetBytes(32));
        user.EnrollmentTokenHash = HashToken(token);
        user.EnrollmentExpires = time.GetUtcNow() + options.Value.EnrollmentLinkLifetime;
        await users.UpdateAsync(user);
        await log.RecordAsync(user, SecurityEventKinds.EnrollmentLinkIssued, $"valid until {user.EnrollmentExpires:u}", actor ?? "cli");
        return $"{options.Value.PublicOrigin.TrimEnd('/')}/Account/Enroll?token={token}";
    }

    /// <summary>The account an enrollment token belongs to, when the token is current.</summary>
    public async Task<PortalUser?> FindByEnrollmentTokenAsync(string? token)
    {
        if (string.IsNullOrEmpty(token) || token.Length > 100)
        {
            return null;
        }

        var hash = HashToken(token);
        var user = await db.Users.FirstOrDefaultAsync(u => u.EnrollmentTokenHash == hash);
        return user is not null && user.DisabledAt is null && user.EnrollmentExpires > time.GetUtcNow() ? user : null;
    }

    /// <summary>Sets the password chosen on the enrollment page and burns the token.</summary>
    public async Task<IdentityResult> CompleteEnrollmentAsync(PortalUser user, string password)
    {
        if (password.Length > MaximumPasswordLength)
        {
            return IdentityResult.Failed(new IdentityError { Code = "PasswordTooLong", Description = $"The password must be at most {MaximumPasswordLength} characters." });
        }

        if (await users.HasPasswordAsync(user))
        {
            var removed = await users.RemovePasswordAsync(user);
            if (!removed.Succeeded)
            {
                return removed;
            }
        }

        var result = await users.AddPasswordAsync(user, password);
        if (result.Succeeded)
        {
            user.EnrollmentTokenHash = null;
            user.EnrollmentExpires = null;
            await users.UpdateAsync(user);
            await users.UpdateSecurityStampAsync(user);
            await log.RecordAsync(user, SecurityEventKinds.Enrolled);
        }

        return result;
    }

    public async Task<FactorSummary> FactorsAsync(PortalUser user) =>
        new([.. await users.GetPasskeysAsync(user)], user.TotpName, user.TotpAddedAt, await recoveryCodes.RemainingAsync(user));

    /// <summary>
    /// Whether the account has a passkey or an authenticator app: <see cref="FactorSummary.HasAny"/>
    /// without counting the recovery codes, for the decisions that need nothing else (the sign-in's
    /// lockout counting runs it for every password tried, before the password check).
    /// </summary>
    public async Task<bool> HasAnyFactorAsync(PortalUser user) =>
        user.TotpName is not null || (await users.GetPasskeysAsync(user)).Count > 0;

    /// <summary>
    /// Removes one passkey (<paramref name="passkeyId"/>) or, when it is null, the authenticator app,
    /// unless that would leave no factor that meets the policy. Returns the outcome and the name of
    /// the removed passkey.
    /// </summary>
    /// <remarks>
    /// The check and the removal must be one step: checked first and removed afterwards, two removals
    /// at once (the last two passkeys, or a passkey and the app) each saw the other's factor still
    /// there and left the account with none. So the account row is claimed first, with an UPDATE of
    /// its concurrency stamp inside a transaction (a row lock until the commit on PostgreSQL, the
    /// database's write lock on SQLite): a parallel removal waits there, and then reads the factors
    /// this one left. The account is reloaded after the claim, as the factors are counted from it too
    /// (the app's name) and Identity's own updates compare the stamp just written.
    /// </remarks>
    public async Task<(FactorRemoval Result, string? PasskeyName)> RemoveFactorAsync(PortalUser user, byte[]? passkeyId)
    {
        ArgumentNullException.ThrowIfNull(user);
        FactorRemoval result;
        try
        {
            await using var transaction = await db.Database.BeginTransactionAsync();
            var stamp = Guid.NewGuid().ToString();
            await db.Users.Where(u => u.Id == user.Id).ExecuteUpdateAsync(s => s.SetProperty(u => u.ConcurrencyStamp, stamp));
            await db.Entry(user).ReloadAsync();

            var factors = await FactorsAsync(user);
            var passkey = passkeyId is null ? null : factors.Passkeys.FirstOrDefault(p => p.CredentialId.AsSpan().SequenceEqual(passkeyId));
            if (passkeyId is null ? factors.TotpName is null : passkey is null)
            {
                result = FactorRemoval.NotFound;
            }
            else if (!LeavesEnough(factors, removingPasskey: passkey is not null, policy.PasskeyRequired))
            {
                result = FactorRemoval.LastFactor;
            }
            else if (!(passkey is not null ? (await users.RemovePasskeyAsync(user, passkey.CredentialId)).Succeeded : await totp.RemoveAsync(user))
                || !await SyncTwoFactorFlagAsync(user))
            {
                result = FactorRemoval.Conflict;
            }
            else
            {
                await transaction.CommitAsync();
                return (FactorRemoval.Removed, passkey?.Name);
            }
        }
        catch (Exception ex) when (ex is DbUpdateException or DbException)
        {
            PortalLog.FactorRemovalConflict(logger, ex);
            result = FactorRemoval.Conflict;
        }

        // Rolled back: the context must forget what it wrote (a later SaveChanges in this request
        // would write it again) and hold the account as stored.
        db.ChangeTracker.Clear();
        db.Attach(user);
        await db.Entry(user).ReloadAsync();
        return (result, null);
    }

    /// <summary>Whether removing one passkey (or else the authenticator app) leaves a factor that meets the policy.</summary>
    public static bool LeavesEnough(FactorSummary factors, bool removingPasskey, bool passkeyRequired)
    {
        ArgumentNullException.ThrowIfNull(factors);
        var passkeys = factors.Passkeys.Count - (removingPasskey ? 1 : 0);
        var hasTotp = factors.TotpName is not null && removingPasskey;
        return passkeyRequired ? passkeys > 0 : passkeys > 0 || hasTotp;
    }

    /// <summary>Whether the user's factors satisfy the policy in force (any second factor, or a passkey).</summary>
    public bool MeetsFactorPolicy(FactorSummary factors) =>
        policy.PasskeyRequired ? factors.Passkeys.Count > 0 : factors.HasAny;

    /// <summary>
    /// Disables the account: no portal sign-in (lockout, new security stamp ends sessions) and every
    /// app password revoked in the credential store at once. The store is told first so that a
    /// failure there leaves the account visibly enabled for the admin to retry.
    /// </summary>
    public async Task DisableAsync(PortalUser user, string actor)
    {
        await appPasswords.SetDisabledAsync(user.UserName!, true);
        user.DisabledAt = time.GetUtcNow();
        user.LockoutEnd = DateTimeOffset.MaxValue;
        await users.UpdateAsync(user);
        await users.UpdateSecurityStampAsync(user);
        await log.RecordAsync(user, SecurityEventKinds.UserDisabled, "all app passwords revoked", actor);
    }

    public async Task EnableAsync(PortalUser user, string actor)
    {
        await appPasswords.SetDisabledAsync(user.UserName!, false);
        user.DisabledAt = null;
        user.LockoutEnd = null;
        await users.UpdateAsync(user);
        await log.RecordAsync(user, SecurityEventKinds.UserEnabled, string.Empty, actor);
    }

    /// <summary>Removes every passkey, the authenticator app and the recovery codes; the user must enroll again.</summary>
    public async Task ResetFactorsAsync(PortalUser user, string actor, string reason)
    {
        foreach (var passkey in await users.GetPasskeysAsync(user))
        {
            await users.RemovePasskeyAsync(user, passkey.CredentialId);
        }

        await totp.RemoveAsync(user);
        await recoveryCodes.DeleteAllAsync(user);
        user.TwoFactorEnabled = false;
        await users.UpdateAsync(user);
        await users.UpdateSecurityStampAsync(user);
        await log.RecordAsync(user, SecurityEventKinds.FactorsReset, reason, actor);
    }

    public async Task SetAdminAsync(PortalUser user, bool isAdmin, string actor)
    {
        user.IsAdmin = isAdmin;
        await users.UpdateAsync(user);
        await users.UpdateSecurityStampAsync(user);
        await log.RecordAsync(user, SecurityEventKinds.Admin, isAdmin ? "granted" : "revoked", actor);
    }

    /// <summary>
    /// After a factor is added or removed: keeps Identity's flag in step with the factors. The
    /// portal's own lockout counting looks at the factors, not the flag, so a flag left behind
    /// cannot weaken it. False when the account could not be updated (a concurrent change).
    /// </summary>
    public async Task<bool> SyncTwoFactorFlagAsync(PortalUser user)
    {
        var any = await HasAnyFactorAsync(user);
        if (user.TwoFactorEnabled == any)
        {
            return true;
        }

        user.TwoFactorEnabled = any;
        return (await users.UpdateAsync(user)).Succeeded;
    }

    private static string HashToken(string token) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(token)));

    private static string Base64Url(byte[] bytes) => Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');
}

/// <summary>A refusal whose message is safe to show to an administrator.</summary>
public sealed class AccountException(string message) : Exception(message);
