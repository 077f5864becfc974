using System.ComponentModel.DataAnnotations;
using Microsoft.Extensions.Options;

namespace Broker.Core.AppPasswords;

/// <summary>Lifetime and quantity rules for app passwords. Short-lived by design.</summary>
public sealed class AppPasswordPolicyOptions
{
    public const string SectionName = "Broker:AppPasswords";

    /// <summary>
    /// The longest lifetime any policy may allow, from configuration or an admin override. Without
    /// a bound, a maximum near <see cref="TimeSpan.MaxValue"/> was accepted and every later issue
    /// or renewal failed computing "now + lifetime"; ten years is far beyond any sensible app
    /// password and far from overflowing.
    /// </summary>
    public static readonly TimeSpan LongestLifetime = TimeSpan.FromDays(3650);

    /// <summary><see cref="LongestLifetime"/> as people read it, for messages.</summary>
    public const string LongestLifetimeText = "3650 days (10 years)";

    /// <summary>Lifetime when the user does not choose one. Default 30 days.</summary>
    public TimeSpan DefaultLifetime { get; set; } = TimeSpan.FromDays(30);

    /// <summary>Shortest lifetime a user may choose. Default 1 hour.</summary>
    public TimeSpan MinimumLifetime { get; set; } = TimeSpan.FromHours(1);

    /// <summary>
    /// Longest lifetime a user may choose, also the cap on a renewal. Default 365 days, at most
    /// <see cref="LongestLifetime"/>.
    /// </summary>
    public TimeSpan MaximumLifetime { get; set; } = TimeSpan.FromDays(365);

    /// <summary>How long a revoked app password stays listed (and denied as "revoked" rather than unknown).</summary>
    public TimeSpan RevokedRetention { get; set; } = TimeSpan.FromDays(7);

    /// <summary>Most app passwords (active or recently revoked) one user may hold.</summary>
    [Range(1, 1000)]
    public int MaximumPerUser { get; set; } = 50;

    /// <summary>
    /// Organisation default for new-network approval: when an app password is used from a network
    /// it was never used from (or approved for), the login gets a temporary failure and the owner
    /// is asked to approve in the portal. Users or admins can override it per user.
    /// </summary>
    public bool RequireApprovalForNewNetworks { get; set; }

    /// <summary>
    /// How often admin overrides of this policy (kept in Redis, see <see cref="PolicyStore"/>) are
    /// re-read. Default 5 seconds.
    /// </summary>
    public TimeSpan OverrideRefreshInterval { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Longest display name.</summary>
    [Range(1, 200)]
    public int MaximumNameLength { get; set; } = 100;
}

internal sealed class AppPasswordPolicyValidator : IValidateOptions<AppPasswordPolicyOptions>
{
    public ValidateOptionsResult Validate(string? name, AppPasswordPolicyOptions o)
    {
        var errors = new List<string>();
        var p = AppPasswordPolicyOptions.SectionName;
        if (o.MinimumLifetime < TimeSpan.FromMinutes(1))
        {
            errors.Add($"{p}:MinimumLifetime must be at least 1 minute.");
        }

        if (o.MaximumLifetime < o.MinimumLifetime)
        {
            errors.Add($"{p}:MaximumLifetime ({o.MaximumLifetime}) must not be shorter than MinimumLifetime ({o.MinimumLifetime}).");
        }

        if (o.MaximumLifetime > AppPasswordPolicyOptions.LongestLifetime)
        {
            errors.Add($"{p}:MaximumLifetime ({o.MaximumLifetime}) can be at most {AppPasswordPolicyOptions.LongestLifetimeText}.");
        }

        if (o.DefaultLifetime < o.MinimumLifetime || o.DefaultLifetime > o.MaximumLifetime)
        {
            errors.Add($"{p}:DefaultLifetime ({o.DefaultLifetime}) must lie between MinimumLifetime and MaximumLifetime.");
        }

        if (o.OverrideRefreshInterval < TimeSpan.FromMilliseconds(100) || o.OverrideRefreshInterval > TimeSpan.FromMinutes(10))
        {
            errors.Add($"{p}:OverrideRefreshInterval must be between 100 milliseconds and 10 minutes.");
        }

        if (o.RevokedRetention < TimeSpan.Zero)
        {
            errors.Add($"{p}:RevokedRetention must not be negative.");
        }

        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }
}
