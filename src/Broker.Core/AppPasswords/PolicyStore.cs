using System.Globalization;
using Broker.Core.Redis;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace Broker.Core.AppPasswords;

/// <summary>Second-factor kinds a policy may require.</summary>
public static class FactorKinds
{
    /// <summary>A passkey or a TOTP authenticator.</summary>
    public const string Any = "any";

    /// <summary>Phishing-resistant only: a passkey or security key.</summary>
    public const string Passkey = "passkey";
}

/// <summary>The policy an administrator sets at run time; every field is written together.</summary>
public sealed record PolicySettings(
    TimeSpan DefaultLifetime,
    TimeSpan MinimumLifetime,
    TimeSpan MaximumLifetime,
    IReadOnlyList<string> AllowedScopes,
    bool RequireApprovalForNewNetworks,
    string RequiredFactor);

/// <summary>
/// The policy in force: configuration (<see cref="AppPasswordPolicyOptions"/>) overlaid with the
/// admin overrides kept in Redis. <see cref="RequiredFactor"/> is null when no admin set one: the
/// portal's own configuration decides then.
/// </summary>
public sealed record EffectivePolicy(
    TimeSpan DefaultLifetime,
    TimeSpan MinimumLifetime,
    TimeSpan MaximumLifetime,
    IReadOnlyList<string> AllowedScopes,
    bool RequireApprovalForNewNetworks,
    string? RequiredFactor,
    bool Overridden,
    string? ChangedBy,
    DateTimeOffset? ChangedAt)
{
    /// <summary>Whether app passwords may carry <paramref name="scope"/> (canonical name).</summary>
    public bool Allows(string scope) => AllowedScopes.Contains(scope, StringComparer.Ordinal);
}

/// <summary>
/// Keeps the admin overrides of the app-password policy in one Redis HASH and the effective policy
/// in memory. Reads never wait on Redis: a background refresh keeps <see cref="Current"/> up to
/// date on every instance and keeps the last good value when Redis is down.
/// </summary>
public sealed partial class PolicyStore(
    IConnectionMultiplexer redis,
    RedisKeys keys,
    IOptions<AppPasswordPolicyOptions> options,
    TimeProvider time,
    ILogger<PolicyStore> logger)
{
    private const string DefaultField = "default";
    private const string MinimumField = "min";
    private const string MaximumField = "max";
    private const string ScopesField = "scopes";
    private const string ApprovalField = "approval";
    private const string FactorField = "factor";
    private const string ByField = "by";
    private const string AtField = "at";

    /// <summary>The most milliseconds a <see cref="TimeSpan"/> holds.</summary>
    private static readonly long MaxMs = (long)TimeSpan.MaxValue.TotalMilliseconds;

    private volatile EffectivePolicy? _current;

    private volatile bool _read;

    /// <summary>The policy in force (configuration until the first successful read of the overrides).</summary>
    public EffectivePolicy Current => _current ?? FromConfiguration();

    /// <summary>Whether the overrides have been read at least once; until then <see cref="Current"/> may not be the admin's policy.</summary>
    public bool Loaded => _read;

    /// <summary>
    /// Validates and stores new policy values, then refreshes <see cref="Current"/>. Throws
    /// <see cref="AppPasswordException"/> with a message for a person when a value is refused and
    /// <see cref="StoreUnavailableException"/> when Redis cannot be reached.
    /// </summary>
    public async Task<EffectivePolicy> SetAsync(PolicySettings settings, string actor, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(settings);
        var scopes = Validate(settings);
        HashEntry[] entries =
        [
            new(DefaultField, Ms(settings.DefaultLifetime)),
            new(MinimumField, Ms(settings.MinimumLifetime)),
            new(MaximumField, Ms(settings.MaximumLifetime)),
            new(ScopesField, string.Join(',', scopes)),
            new(ApprovalField, settings.RequireApprovalForNewNetworks ? "1" : "0"),
            new(FactorField, settings.RequiredFactor),
            new(ByField, actor),
            new(AtField, time.GetUtcNow().ToUnixTimeMilliseconds()),
        ];
        try
        {
            await redis.GetDatabase().HashSetAsync(keys.Policy, entries).WaitAsync(TimeSpan.FromSeconds(5), ct);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            throw new StoreUnavailableException("The policy could not be stored.", ex);
        }

        Log.Changed(logger, actor);
        await RefreshAsync(ct);
        return Current;
    }

    /// <summary>Removes every admin override: configuration alone applies again.</summary>
    public async Task<EffectivePolicy> ResetAsync(string actor, CancellationToken ct = default)
    {
        try
        {
            await redis.GetDatabase().KeyDeleteAsync(keys.Policy).WaitAsync(TimeSpan.FromSeconds(5), ct);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            throw new StoreUnavailableException("The policy could not be reset.", ex);
        }

        Log.Reset(logger, actor);
        await RefreshAsync(ct);
        return Current;
    }

    /// <summary>
    /// Reads the overrides once when this process has not read them yet: short-lived processes
    /// (the CLI) run no background refresh and must still apply the admin's policy.
    /// </summary>
    public Task EnsureLoadedAsync(CancellationToken ct = default) => _read ? Task.CompletedTask : RefreshAsync(ct);

    /// <summary>Re-reads the overrides; on failure (or an unusable stored value) keeps the previous policy.</summary>
    public async Task RefreshAsync(CancellationToken ct = default)
    {
        HashEntry[] entries;
        try
        {
            entries = await redis.GetDatabase().HashGetAllAsync(keys.Policy).WaitAsync(TimeSpan.FromSeconds(2), ct);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            Log.RefreshFailed(logger, ex.GetType().Name);
            return;
        }

        var next = Overlay(entries.ToDictionary(e => (string)e.Name!, e => (string?)e.Value));
        // Read, usable or not: an unusable override is logged and keeps the previous policy (at
        // first, the configuration) rather than leaving validation undecided for good.
        _read = true;
        if (next is null)
        {
            Log.Unusable(logger);
            return;
        }

        _current = next;
    }

    /// <summary>The scopes of <paramref name="s"/> in canonical form, or an exception naming every refused value.</summary>
    private static IReadOnlyList<string> Validate(PolicySettings s)
    {
        var errors = Check(s.DefaultLifetime, s.MinimumLifetime, s.MaximumLifetime);
        IReadOnlyList<string> scopes = [];
        if (!AppPasswordScopes.TryParseList(s.AllowedScopes, out scopes, out var scopeError))
        {
            errors.Add(scopeError == "At least one scope is required." ? "Allow at least one protocol." : scopeError!);
        }

        if (s.RequiredFactor is not (FactorKinds.Any or FactorKinds.Passkey))
        {
            errors.Add($"The required factor must be '{FactorKinds.Any}' or '{FactorKinds.Passkey}'.");
        }

        return errors.Count == 0 ? scopes : throw new AppPasswordException(string.Join(" ", errors));
    }

    /// <summary>The same lifetime rules as the configuration validator, <see cref="AppPasswordPolicyOptions.LongestLifetime"/> included.</summary>
    private static List<string> Check(TimeSpan def, TimeSpan min, TimeSpan max)
    {
        var errors = new List<string>();
        if (min < TimeSpan.FromMinutes(1))
        {
            errors.Add("The minimum lifetime must be at least 1 minute.");
        }

        if (max < min)
        {
            errors.Add("The maximum lifetime must not be shorter than the minimum lifetime.");
        }

        if (def < min || def > max)
        {
            errors.Add("The default lifetime must lie between the minimum and maximum lifetimes.");
        }

        // One message for all three, the portal form's: the maximum bounds the other two, but a
        // value beyond the limit is refused whichever field it was written in.
        if (def > AppPasswordPolicyOptions.LongestLifetime || min > AppPasswordPolicyOptions.LongestLifetime || max > AppPasswordPolicyOptions.LongestLifetime)
        {
            errors.Add($"A lifetime can be at most {AppPasswordPolicyOptions.LongestLifetimeText}.");
        }

        return errors;
    }

    private EffectivePolicy FromConfiguration()
    {
        var o = options.Value;
        return new(o.DefaultLifetime, o.MinimumLifetime, o.MaximumLifetime, AppPasswordScopes.All, o.RequireApprovalForNewNetworks, null, false, null, null);
    }

    private EffectivePolicy? Overlay(Dictionary<string, string?> f)
    {
        var config = FromConfiguration();
        if (f.Count == 0)
        {
            return config;
        }

        var def = Duration(f, DefaultField) ?? config.DefaultLifetime;
        var min = Duration(f, MinimumField) ?? config.MinimumLifetime;
        var max = Duration(f, MaximumField) ?? config.MaximumLifetime;
        if (Check(def, min, max).Count > 0)
        {
            return null;
        }

        var scopes = config.AllowedScopes;
        if (f.GetValueOrDefault(ScopesField) is { } list && !AppPasswordScopes.TryParseList(list.Split(','), out scopes, out _))
        {
            return null;
        }

        var approval = f.GetValueOrDefault(ApprovalField) is { } a ? a == "1" : config.RequireApprovalForNewNetworks;
        var factor = f.GetValueOrDefault(FactorField) is FactorKinds.Any or FactorKinds.Passkey ? f[FactorField] : null;
        DateTimeOffset? at = long.TryParse(f.GetValueOrDefault(AtField), NumberStyles.None, CultureInfo.InvariantCulture, out var ms) ? DateTimeOffset.FromUnixTimeMilliseconds(ms) : null;
        return new(def, min, max, scopes, approval, factor, true, f.GetValueOrDefault(ByField), at);
    }

    /// <summary>
    /// A stored duration. A value written by hand can exceed what a <see cref="TimeSpan"/> holds;
    /// it is read as the longest one, so <see cref="Check"/> refuses it like any over-long value
    /// instead of the background refresh throwing.
    /// </summary>
    private static TimeSpan? Duration(Dictionary<string, string?> f, string field) =>
        !long.TryParse(f.GetValueOrDefault(field), NumberStyles.None, CultureInfo.InvariantCulture, out var ms) ? null
        : ms > MaxMs ? TimeSpan.MaxValue
        : TimeSpan.FromMilliseconds(ms);

    private static long Ms(TimeSpan t) => (long)t.TotalMilliseconds;

    private static partial class Log
    {
        [LoggerMessage(EventId = 1401, Level = LogLevel.Warning, Message = "Could not refresh the app-password policy from Redis ({ErrorType}); keeping the previous policy")]
        public static partial void RefreshFailed(ILogger logger, string errorType);

        [LoggerMessage(EventId = 1402, Level = LogLevel.Warning, Message = "The app-password policy overrides in Redis are not usable with this configuration; keeping the previous policy")]
        public static partial void Unusable(ILogger logger);

        [LoggerMessage(EventId = 1403, Level = LogLevel.Information, Message = "App-password policy changed by {Actor}")]
        public static partial void Changed(ILogger logger, string actor);

        [LoggerMessage(EventId = 1404, Level = LogLevel.Information, Message = "App-password policy overrides removed by {Actor}")]
        public static partial void Reset(ILogger logger, string actor);
    }
}

/// <summary>Refreshes <see cref="PolicyStore"/> in the background.</summary>
internal sealed class PolicyRefresher(PolicyStore store, IOptions<AppPasswordPolicyOptions> options) : Microsoft.Extensions.Hosting.BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(options.Value.OverrideRefreshInterval);
        do
        {
            await store.RefreshAsync(stoppingToken);
        }
        while (await timer.WaitForNextTickAsync(stoppingToken));
    }
}
