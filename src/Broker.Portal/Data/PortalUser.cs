using Microsoft.AspNetCore.Identity;

namespace Broker.Portal.Data;

/// <summary>
/// A portal account. <c>UserName</c> is always the normalised username
/// (<see cref="Broker.Core.Users.Username"/>), so it equals the owner of the user's app passwords.
/// </summary>
public sealed class PortalUser : IdentityUser
{
    public bool IsAdmin { get; set; }

    public DateTimeOffset CreatedAt { get; set; }

    public DateTimeOffset? DisabledAt { get; set; }

    /// <summary>SHA-256 (hex) of the one-time enrollment token; the token itself is only in the link.</summary>
    public string? EnrollmentTokenHash { get; set; }

    public DateTimeOffset? EnrollmentExpires { get; set; }

    /// <summary>Name of the enrolled authenticator app; null when no TOTP factor is enrolled.</summary>
    public string? TotpName { get; set; }

    public DateTimeOffset? TotpAddedAt { get; set; }

    /// <summary>The last accepted TOTP time step: a code for this step or an earlier one is a replay.</summary>
    public long TotpLastStep { get; set; }
}

/// <summary>A recovery code, stored as a SHA-256 hash; single use.</summary>
public sealed class RecoveryCode
{
    public long Id { get; set; }

    public required string UserId { get; set; }

    public required string Hash { get; set; }

    public DateTimeOffset CreatedAt { get; set; }

    public DateTimeOffset? UsedAt { get; set; }
}

/// <summary>One line of a user's security activity (and the admin audit trail).</summary>
public sealed class SecurityEvent
{
    /// <summary>Column lengths: the model declares them, and what writes events clips to them.</summary>
    public const int KindLength = 64, UsernameLength = 256, DetailLength = 1000, RemoteIpLength = 64, ActorLength = 256;

    public long Id { get; set; }

    /// <summary>The account the event is about.</summary>
    public string? UserId { get; set; }

    public required string Username { get; set; }

    public DateTimeOffset At { get; set; }

    public required string Kind { get; set; }

    public string Detail { get; set; } = string.Empty;

    public string? RemoteIp { get; set; }

    /// <summary>Who did it, when not the user (an administrator's username).</summary>
    public string? Actor { get; set; }
}
