namespace Broker.Core.AppPasswords;

/// <summary>An app password as stored: everything but the secret, which exists only as a keyed hash.</summary>
public sealed record AppPassword
{
    public required string Id { get; init; }
    public required string Owner { get; init; }
    public required string Name { get; init; }
    public required IReadOnlyList<string> Scopes { get; init; }
    public required DateTimeOffset Created { get; init; }
    public required DateTimeOffset Expires { get; init; }

    /// <summary>
    /// The lifetime it was given when issued or last renewed; a renewal that names no lifetime
    /// gives it this much again from then (within the policy), never the default instead.
    /// </summary>
    public TimeSpan Lifetime { get; init; }
    public DateTimeOffset? Revoked { get; init; }
    public LastUse? LastUsed { get; init; }

    /// <summary>Source networks this app password has been used from (or approved for).</summary>
    public IReadOnlyList<string> Networks { get; init; } = [];

    /// <summary>Client identifications (IMAP ID) it has been used with, first ten distinct.</summary>
    public IReadOnlyList<string> Clients { get; init; } = [];

    /// <summary>Where it may be used from at all (empty: anywhere; with <see cref="AllowedCountries"/>, either may match).</summary>
    public IReadOnlyList<string> AllowedNetworks { get; init; } = [];

    /// <summary>
    /// Countries (ISO 3166-1 alpha-2) it may be used from (empty: any). With
    /// <see cref="AllowedNetworks"/>, a login from an allowed network or an allowed country passes.
    /// </summary>
    public IReadOnlyList<string> AllowedCountries { get; init; } = [];

    /// <summary>Networks it was tried from that await the owner's approval.</summary>
    public IReadOnlyList<string> PendingNetworks { get; init; } = [];

    /// <summary>
    /// <see cref="Secrets.Pepper.Id"/> of the pepper it is keyed under; null when it was issued
    /// before pepper ids were stored and has not been used since.
    /// </summary>
    public string? PepperId { get; init; }

    public bool IsActive(DateTimeOffset now) => Revoked is null && Expires > now;
}

/// <summary>Where and how an app password was last accepted.</summary>
public sealed record LastUse(DateTimeOffset At, string? RemoteIp, string? Protocol, string? ClientId);

/// <summary>The result of issuing: the only moment the secret exists outside the user's client.</summary>
public sealed record IssuedAppPassword(AppPassword AppPassword, string Secret);

/// <summary>What a mail server reports about one login attempt.</summary>
public sealed record ValidationContext(string Service, string? RemoteIp, string? ClientId);

/// <summary>Why a validation was denied. Recorded internally; never returned to the caller.</summary>
public enum DenyReason
{
    Malformed,
    UnknownUser,
    WrongPassword,
    Expired,
    Revoked,
    Disabled,
    ScopeNotAllowed,
    Throttled,
    UnsupportedMechanism,
    NetworkNotAllowed,

    /// <summary>The right app password from outside its allowed countries (and networks), or from an address with no known country.</summary>
    CountryNotAllowed,

    /// <summary>
    /// The right app password, but new networks need the owner's approval and the mail server
    /// sent no client address: with no network to check, the login is refused (fail closed).
    /// </summary>
    NoClientAddress,
}

/// <summary>Allow, deny (with an internal reason) or "could not decide" — never allow by default.</summary>
public readonly record struct ValidationOutcome(ValidationResult Result, DenyReason? Reason, string? Username, string? CredentialId)
{
    /// <summary>The app password had never been used from this source network before.</summary>
    public bool FirstUseFromNetwork { get; init; }

    public static ValidationOutcome Allow(string username, string id, bool firstUseFromNetwork = false) =>
        new(ValidationResult.Allowed, null, username, id) { FirstUseFromNetwork = firstUseFromNetwork };

    public static ValidationOutcome Deny(DenyReason reason, string? username = null, string? id = null) =>
        new(ValidationResult.Denied, reason, username, id);

    public static ValidationOutcome Unavailable { get; } = new(ValidationResult.Unavailable, null, null, null);

    /// <summary>The right app password from a network its owner has not approved yet: a temporary failure until they do.</summary>
    public static ValidationOutcome Pending(string username, string id, bool newlyPending) =>
        new(ValidationResult.ApprovalRequired, null, username, id) { FirstUseFromNetwork = newlyPending };
}

/// <summary>What approving a network for an app password did.</summary>
public enum NetworkApproval
{
    /// <summary>The network was pending and is approved now.</summary>
    Approved,

    /// <summary>Nothing changed: no such active app password, or the network was not pending for it.</summary>
    NotPending,

    /// <summary>Nothing changed: the user is disabled, and a disabled user's app passwords take no approvals.</summary>
    UserDisabled,
}

public enum ValidationResult
{
    Allowed,
    Denied,
    Unavailable,
    ApprovalRequired,
}

/// <summary>
/// How many live app passwords are keyed under which pepper (<c>broker pepper status</c>): during a
/// rotation, the other pepper may be removed once <see cref="Other"/> and <see cref="Unmarked"/> are 0.
/// </summary>
/// <param name="PepperId">The current pepper's id.</param>
/// <param name="Current">Keyed under the current pepper.</param>
/// <param name="Other">Keyed under another pepper (the rotation's old one): re-keyed at their next login.</param>
/// <param name="Unmarked">Issued before pepper ids were stored and not used since: under whichever pepper was current then.</param>
public sealed record PepperStatus(string PepperId, long Current, long Other, long Unmarked);
