namespace Broker.Core.AppPasswords;

/// <summary>
/// Told after a credential change has been committed to the store, so that other systems can act
/// on it (kick open IMAP sessions through doveadm, write audit records, notify the user).
/// Implementations must not throw; a failure here never undoes the revocation.
/// </summary>
public interface IAppPasswordEvents
{
    Task IssuedAsync(AppPassword appPassword, CancellationToken ct) => Task.CompletedTask;

    Task RenewedAsync(AppPassword appPassword, CancellationToken ct) => Task.CompletedTask;

    /// <summary>One app password was revoked.</summary>
    Task RevokedAsync(string owner, string id, CancellationToken ct) => Task.CompletedTask;

    /// <summary>All app passwords of a user were revoked, or the user was disabled.</summary>
    Task AllRevokedAsync(string owner, CancellationToken ct) => Task.CompletedTask;
}
