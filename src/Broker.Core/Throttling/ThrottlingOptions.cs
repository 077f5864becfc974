using System.ComponentModel.DataAnnotations;
using Microsoft.Extensions.Options;

namespace Broker.Core.Throttling;

/// <summary>
/// Failure limits per sliding window. Defaults stay well inside NIST SP 800-63B §5.2.2 (no
/// more than 100 consecutive failed attempts per account): a guessing attacker gets at most
/// <see cref="PerUser"/> tries per <see cref="Window"/> from unknown networks, against a
/// 110-bit secret.
/// </summary>
public sealed class ThrottlingOptions
{
    public const string SectionName = "Broker:Throttling";

    public bool Enabled { get; set; } = true;

    /// <summary>Length of the sliding window.</summary>
    public TimeSpan Window { get; set; } = TimeSpan.FromMinutes(15);

    /// <summary>Failures of one user from one source network per window. Applies even on the user's known networks.</summary>
    [Range(1, 100_000)]
    public int PerUserAndNetwork { get; set; } = 10;

    /// <summary>Failures of one user from all networks except the user's known-good ones (distributed guessing).</summary>
    [Range(1, 100)]
    public int PerUser { get; set; } = 30;

    /// <summary>Failures from one source network across all users (spraying: one source, many users).</summary>
    [Range(1, 1_000_000)]
    public int PerNetwork { get; set; } = 50;

    /// <summary>How long a network where the user's app password succeeded stays "known-good" for that user.</summary>
    public TimeSpan KnownNetworkLifetime { get; set; } = TimeSpan.FromDays(30);

    /// <summary>Prefix length that makes an IPv4 address a "network".</summary>
    [Range(8, 32)]
    public int IPv4Prefix { get; set; } = 24;

    /// <summary>Prefix length that makes an IPv6 address a "network".</summary>
    [Range(16, 128)]
    public int IPv6Prefix { get; set; } = 48;
}

internal sealed class ThrottlingOptionsValidator : IValidateOptions<ThrottlingOptions>
{
    public ValidateOptionsResult Validate(string? name, ThrottlingOptions o) =>
        o.Window < TimeSpan.FromSeconds(1) || o.KnownNetworkLifetime < o.Window
            ? ValidateOptionsResult.Fail($"{ThrottlingOptions.SectionName}: Window must be at least 1 second and KnownNetworkLifetime at least one Window.")
            : ValidateOptionsResult.Success;
}
