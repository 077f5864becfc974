using System.Globalization;
using System.Security.Cryptography;
using Broker.Core.GeoIp;
using Broker.Core.Redis;
using Broker.Core.Throttling;
using Broker.Core.Users;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace Broker.Core.AppPasswords;

/// <summary>Thrown when an operation is refused for a reason the caller should show to a person.</summary>
public sealed class AppPasswordException(string message) : Exception(message);

/// <summary>Thrown when the store cannot be reached or does not answer in time.</summary>
public sealed class StoreUnavailableException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>
/// Issues, lists, renews, revokes and validates app passwords against Redis. Validation is one
/// round trip; management operations are at most two and never scan the keyspace.
/// </summary>
public sealed partial class AppPasswordService(
    IConnectionMultiplexer redis,
    RedisKeys keys,
    AppPasswordHasher hasher,
    IOptions<AppPasswordPolicyOptions> policy,
    PolicyStore policyStore,
    IOptions<RedisOptions> redisOptions,
    IOptions<ThrottlingOptions> throttling,
    TimeProvider time,
    CountryLookup countries,
    IEnumerable<IAppPasswordEvents> events,
    ILogger<AppPasswordService> logger)
{
    private const int MaxClientIdLength = 200;
    private const int MaxIpLength = 64;
    private const int MaxNetworksPerCredential = 20;

    /// <summary>Index in the validation script's arguments of "the source network's throttle is not checked yet" (ARGV[17]).</summary>
    private const int CheckNetworkThrottleArg = 16;

    /// <summary>Why issuing or renewing is refused for a disabled user; shown in the portal and the CLI.</summary>
    private const string DisabledMessage = "This account is disabled: no app password can be issued or renewed for it until it is enabled again.";

    private AppPasswordPolicyOptions Policy => policy.Value;

    /// <summary>Lifetimes, scopes and approval default in force: configuration overlaid with admin overrides.</summary>
    private EffectivePolicy Effective => policyStore.Current;

    private IDatabase Db => redis.GetDatabase();

    /// <summary>Issues a new app password; the returned secret is never stored and cannot be shown again.</summary>
    public Task<IssuedAppPassword> IssueAsync(string user, string name, IEnumerable<string> scopes, TimeSpan? lifetime, CancellationToken ct = default) =>
        IssueAsync(user, name, scopes, lifetime, approvedFromIp: null, ct);

    /// <summary>
    /// Issues a new app password. <paramref name="approvedFromIp"/> is the address the owner
    /// created it from (the portal request): that network counts as approved, so new-network
    /// approval does not stop the first login from the same place.
    /// </summary>
    public async Task<IssuedAppPassword> IssueAsync(string user, string name, IEnumerable<string> scopes, TimeSpan? lifetime, string? approvedFromIp, CancellationToken ct = default)
    {
        var owner = NormalizeOwner(user);
        name = (name ?? string.Empty).Trim();
        if (name.Length == 0 || name.Length > Policy.MaximumNameLength || name.Any(char.IsControl))
        {
            throw new AppPasswordException($"The name must be 1 to {Policy.MaximumNameLength} printable characters.");
        }

        if (!AppPasswordScopes.TryParseList(scopes, out var parsedScopes, out var scopeError))
        {
            throw new AppPasswordException(scopeError!);
        }

        await policyStore.EnsureLoadedAsync(ct);
        var effective = Effective;
        if (parsedScopes.FirstOrDefault(s => !effective.Allows(s)) is { } refused)
        {
            throw new AppPasswordException($"The policy does not allow app passwords for '{refused}'. Allowed: {string.Join(", ", effective.AllowedScopes)}.");
        }

        var now = Now();
        var expires = ExpiryOf(now, lifetime, effective);
        var secret = AppPasswordFormat.Generate();
        AppPasswordFormat.TryCanonicalize(secret, out var canonical);
        var hash = hasher.Hash(owner, canonical);
        var record = new AppPassword
        {
            Id = NewId(),
            Owner = owner,
            Name = name,
            Scopes = parsedScopes,
            Created = now,
            Expires = expires,
            Lifetime = expires - now,
        };

        var scopeList = string.Join(',', parsedScopes);
        var joinedScopes = "," + scopeList + ",";
        var result = await IssueScriptAsync();
        // The limit counts index entries, and those of expired app passwords stay until a listing
        // tidies them: tidy now and try once more before refusing (a CLI issue lists nothing first).
        if (result == "limit" && await TidyIndexAsync(owner, ct) > 0)
        {
            result = await IssueScriptAsync();
        }

        if (result == "disabled")
        {
            throw new AppPasswordException(DisabledMessage);
        }

        if (result == "limit")
        {
            throw new AppPasswordException($"This account already has {Policy.MaximumPerUser} app passwords. Revoke unused ones first.");
        }

        if (result != "ok")
        {
            // A 110-bit collision is not a thing that happens; refuse rather than overwrite.
            throw new AppPasswordException("Could not issue an app password; try again.");
        }

        // Another slot than the user's keys: a separate command, not part of the atomic issue.
        _ = Db.SetAddAsync(keys.Owners, owner, CommandFlags.FireAndForget);
        Log.Issued(logger, record.Id, owner, scopeList, record.Expires);
        await Notify(e => e.IssuedAsync(record, ct));
        return new IssuedAppPassword(record, secret);

        async Task<string?> IssueScriptAsync() => (string?)await Run(db => db.ScriptEvaluateAsync(
            AppPasswordScripts.Issue,
            [keys.Credential(owner, hash), keys.CredentialIds(owner), keys.UserMeta(owner)],
            [record.Id, hash, owner, name, joinedScopes, ToMs(record.Created), ToMs(record.Expires), Policy.MaximumPerUser, NetworkOf(approvedFromIp) ?? string.Empty, hasher.PepperId]), ct);
    }

    /// <summary>All app passwords of a user, newest first, including recently revoked ones.</summary>
    public async Task<IReadOnlyList<AppPassword>> ListAsync(string user, CancellationToken ct = default)
    {
        var owner = NormalizeOwner(user);
        var (list, stale) = await ReadIndexAsync(owner, ct);
        if (stale.Length > 0)
        {
            // Expired credentials vanish by TTL; their index entries are tidied here, lazily.
            _ = Db.ScriptEvaluateAsync(AppPasswordScripts.ForgetStale, [keys.CredentialIds(owner)], stale, CommandFlags.FireAndForget);
        }

        return [.. list.OrderByDescending(a => a.Created)];
    }

    /// <summary>Removes the index entries of app passwords that have expired; returns how many it removed.</summary>
    private async Task<long> TidyIndexAsync(string owner, CancellationToken ct)
    {
        var (_, stale) = await ReadIndexAsync(owner, ct);
        return stale.Length == 0 ? 0 : (long)await Run(db => db.ScriptEvaluateAsync(AppPasswordScripts.ForgetStale, [keys.CredentialIds(owner)], stale), ct);
    }

    /// <summary>The user's app passwords, and the index entries (id, hash, id, hash, …) whose credential is gone.</summary>
    private async Task<(List<AppPassword> Live, RedisValue[] Stale)> ReadIndexAsync(string owner, CancellationToken ct)
    {
        var entries = await Run(db => db.HashGetAllAsync(keys.CredentialIds(owner)), ct);
        if (entries.Length == 0)
        {
            return ([], []);
        }

        var batch = Db.CreateBatch();
        var reads = entries.Select(e => batch.HashGetAllAsync(keys.Credential(owner, e.Value!))).ToArray();
        batch.Execute();
        var fields = await Run(_ => Task.WhenAll(reads), ct);

        var live = new List<AppPassword>(entries.Length);
        var stale = new List<RedisValue>();
        for (var i = 0; i < entries.Length; i++)
        {
            if (Parse(fields[i]) is { } ap && ap.Owner == owner)
            {
                live.Add(ap);
            }
            else
            {
                stale.Add(entries[i].Name);
                stale.Add(entries[i].Value);
            }
        }

        return (live, [.. stale]);
    }

    /// <summary>One app password of a user, or null.</summary>
    public async Task<AppPassword?> GetAsync(string user, string id, CancellationToken ct = default)
    {
        var owner = NormalizeOwner(user);
        return await HashOf(owner, id, ct) is { } hash ? await ReadAsync(owner, hash, ct) : null;
    }

    /// <summary>The app password stored under <paramref name="hash"/>, or null when it is gone.</summary>
    private async Task<AppPassword?> ReadAsync(string owner, string hash, CancellationToken ct) =>
        Parse(await Run(db => db.HashGetAllAsync(keys.Credential(owner, hash)), ct)) is { } ap && ap.Owner == owner ? ap : null;

    /// <summary>
    /// Extends the expiry, keeping the secret. The new expiry is now + <paramref name="lifetime"/>,
    /// or, when that is null, now + the app password's own <see cref="AppPassword.Lifetime"/>
    /// brought within today's policy: renewing a one-year app password must not cut it to the
    /// default month, nor turn a one-hour one into a month.
    /// </summary>
    public async Task<AppPassword> RenewAsync(string user, string id, TimeSpan? lifetime, CancellationToken ct = default)
    {
        var owner = NormalizeOwner(user);
        await policyStore.EnsureLoadedAsync(ct);
        var effective = Effective;
        var now = Now();
        var found = await HashOf(owner, id, ct) ?? throw new AppPasswordException("No such app password.");
        var current = await ReadAsync(owner, found, ct) ?? throw new AppPasswordException("No such app password.");
        // Renewing is choosing to keep the access: a protocol the policy no longer allows would
        // otherwise live on for another full lifetime. Creating a new one applies today's policy.
        if (current.Scopes.FirstOrDefault(s => !effective.Allows(s)) is { } dropped)
        {
            throw new AppPasswordException($"This app password includes '{dropped}', which the policy no longer allows, so it cannot be renewed; create a new one for {string.Join(", ", effective.AllowedScopes)}.");
        }

        var life = lifetime ?? RenewalLifetime(current, effective);
        var expires = ExpiryOf(now, life, effective);
        var (hash, result) = await OnCredentialAsync(owner, id, found, h => db => db.ScriptEvaluateAsync(
            AppPasswordScripts.Renew,
            [keys.Credential(owner, h), keys.CredentialIds(owner), keys.UserMeta(owner)],
            [id, ToMs(expires), ToMs(now), (long)life.TotalMilliseconds]), ct);
        switch (result)
        {
            case "ok":
                Log.Renewed(logger, id, owner, expires);
                var renewed = (await ReadAsync(owner, hash, ct))!;
                await Notify(e => e.RenewedAsync(renewed, ct));
                return renewed;
            case "disabled":
                throw new AppPasswordException(DisabledMessage);
            case "revoked":
                throw new AppPasswordException("A revoked app password cannot be renewed.");
            case "expired":
                throw new AppPasswordException("An expired app password cannot be renewed; create a new one.");
            default:
                throw new AppPasswordException("No such app password.");
        }
    }

    /// <summary>Revokes one app password. Returns false when the user has no app password with that id.</summary>
    public async Task<bool> RevokeAsync(string user, string id, CancellationToken ct = default)
    {
        var owner = NormalizeOwner(user);
        if (!await RevokeOneAsync(owner, id, ct))
        {
            return false;
        }

        await Notify(e => e.RevokedAsync(owner, id, ct));
        return true;
    }

    private async Task<bool> RevokeOneAsync(string owner, string id, CancellationToken ct)
    {
        var hash = await HashOf(owner, id, ct);
        if (hash is null)
        {
            return false;
        }

        var (_, result) = await OnCredentialAsync(owner, id, hash, h => db => db.ScriptEvaluateAsync(
            AppPasswordScripts.Revoke,
            [keys.Credential(owner, h)],
            [id, ToMs(Now()), (long)Policy.RevokedRetention.TotalMilliseconds]), ct);
        if (result == "ok")
        {
            Log.Revoked(logger, id, owner);
            return true;
        }

        return false;
    }

    /// <summary>
    /// Revokes every app password of a user at once. A watermark in the user's meta key makes
    /// this atomic even against an issue racing with it: anything created before it is revoked.
    /// </summary>
    public async Task<int> RevokeAllAsync(string user, CancellationToken ct = default)
    {
        var owner = NormalizeOwner(user);
        var now = Now();
        await Run(db => db.HashSetAsync(keys.UserMeta(owner), "nbf", ToMs(now) + 1), ct);

        var count = 0;
        foreach (var ap in await ListAsync(owner, ct))
        {
            if (ap.Revoked is null && await RevokeOneAsync(owner, ap.Id, ct))
            {
                count++;
            }
        }

        Log.RevokedAll(logger, owner, count);
        await Notify(e => e.AllRevokedAsync(owner, ct));
        return count;
    }

    /// <summary>
    /// Disables or re-enables a user for mail login. Disabling also revokes every app password;
    /// while the user is disabled, none can be issued or renewed and no network approved, so
    /// nothing issued meanwhile starts working when the user is enabled again. Returns how many
    /// app passwords disabling revoked (0 when enabling).
    /// </summary>
    public async Task<int> SetDisabledAsync(string user, bool disabled, CancellationToken ct = default)
    {
        var owner = NormalizeOwner(user);
        if (disabled)
        {
            await Run(db => db.HashSetAsync(keys.UserMeta(owner), "disabled", "1"), ct);
            return await RevokeAllAsync(owner, ct);
        }

        await Run(db => db.HashDeleteAsync(keys.UserMeta(owner), "disabled"), ct);
        return 0;
    }

    /// <summary>
    /// Checks a username and app password for a service. One Redis round trip: look-up, owner,
    /// revocation, expiry and scope checks, and the last-use update happen in one script. The
    /// right secret from a network that is not known-good for the user takes a second one, so
    /// that nothing is recorded for a login the source network's throttle then refuses.
    /// Never throws for bad input or a dead store: the outcome says deny or unavailable.
    /// </summary>
    public async Task<ValidationOutcome> ValidateAsync(string? user, string? password, ValidationContext context, CancellationToken ct = default)
    {
        var t = throttling.Value;
        var network = NetworkOf(context.RemoteIp);
        var now = Now();
        var window = new Window(now, t.Window);
        if (!Username.TryNormalize(user, out var owner))
        {
            CountNetworkFailure(network, window);
            return ValidationOutcome.Deny(DenyReason.Malformed);
        }

        if (!AppPasswordScopes.TryFromService(context.Service, out var scope))
        {
            return ValidationOutcome.Deny(DenyReason.ScopeNotAllowed, owner);
        }

        string? hash = null;
        string? otherHash = null;
        if (password is not null && AppPasswordFormat.TryCanonicalize(password, out var canonical))
        {
            hash = hasher.Hash(owner, canonical);
            otherHash = hasher.HashUnderOther(owner, canonical);
        }
        else if (!t.Enabled)
        {
            // The account password and typos never have the app-password shape: refused without Redis.
            return ValidationOutcome.Deny(DenyReason.Malformed, owner);
        }

        if (hash is not null && !policyStore.Loaded)
        {
            // The organisation's new-network approval default may be an admin override kept in
            // Redis. A validator that started while the store was down has not read it yet, and
            // deciding on the configured default would let (and remember) networks the owner was
            // meant to approve: undecided until it is read, like unknown caller keys.
            try
            {
                await Run(async _ =>
                {
                    await policyStore.EnsureLoadedAsync(ct);
                    return policyStore.Loaded;
                }, ct);
            }
            catch (StoreUnavailableException)
            {
            }

            if (!policyStore.Loaded)
            {
                return ValidationOutcome.Unavailable;
            }
        }

        RedisKey[] userKeys =
        [
            keys.Credential(owner, hash ?? "-"), keys.UserMeta(owner),
            keys.UserNetworkFailures(owner, network ?? "-", window.Current), keys.UserNetworkFailures(owner, network ?? "-", window.Current - 1),
            keys.UserFailures(owner, window.Current), keys.UserFailures(owner, window.Current - 1), keys.KnownNetworks(owner),
        ];
        if (otherHash is not null)
        {
            // A rotation is under way: the credential may still be named by the other pepper's hash.
            userKeys = [.. userKeys, keys.Credential(owner, otherHash), keys.CredentialIds(owner)];
        }

        RedisValue[] userArgs =
        [
            hash is null ? string.Empty : scope, ToMs(now), Clip(context.RemoteIp, MaxIpLength), Clip(context.Service, 32), Clip(context.ClientId, MaxClientIdLength),
            network ?? string.Empty, window.PreviousWeight, t.PerUserAndNetwork, t.PerUser, (long)t.Window.TotalMilliseconds,
            (long)t.KnownNetworkLifetime.TotalMilliseconds, t.Enabled ? "1" : "0", MaxNetworksPerCredential,
            Effective.RequireApprovalForNewNetworks ? "1" : "0", SourceNetwork.Containing(context.RemoteIp) ?? ",",
            // Looked up here, not in Lua, so the script stays one round trip; not at all for input
            // that never reaches a credential.
            hash is null ? string.Empty : countries.CountryOf(context.RemoteIp) ?? string.Empty,
            t.Enabled && network is not null ? "1" : "0",
            hash ?? string.Empty, hasher.PepperId, otherHash ?? string.Empty,
        ];
        RedisResult[] parts;
        double networkFailures = 0;
        try
        {
            // The per-network counter lives in another slot, so it is read by its own command,
            // pipelined with the user's script: both travel in the same round trip.
            Task<double>? networkCall = null;
            parts = (RedisResult[]?)await Run(db =>
            {
                // Started inside Run, so that a synchronous client error is a store failure too.
                var userCall = db.ScriptEvaluateAsync(AppPasswordScripts.Validate, userKeys, userArgs);
                networkCall = t.Enabled && network is not null ? NetworkFailuresAsync(db, network, window) : null;
                return userCall;
            }, ct) ?? [];
            if (networkCall is not null)
            {
                networkFailures = await Run(_ => networkCall, ct);
            }
        }
        catch (StoreUnavailableException)
        {
            // Not having the shape of an app password is a decided "no", store or not.
            return hash is null ? ValidationOutcome.Deny(DenyReason.Malformed, owner) : ValidationOutcome.Unavailable;
        }

        if (parts.Length < 4)
        {
            return ValidationOutcome.Unavailable;
        }

        // A source spraying many users is refused on every account except where that network is
        // already known-good for the user: an attacker cannot lock real users out.
        var networkThrottled = t.Enabled && network is not null && (string?)parts[3] != "1" && networkFailures >= t.PerNetwork;
        if ((string?)parts[0] == "check" && (string?)parts[1] is { } checkedId)
        {
            // The right secret from a network that is not known-good: the script stopped before
            // recording anything, so a throttled source leaves no success behind (no known-good
            // mark that would let the next attempt through, no first use the owner is never told of).
            // It never answers allow or pending in that case, so only here can a right secret meet the throttle.
            if (networkThrottled)
            {
                CountNetworkFailure(network, window);
                return ValidationOutcome.Deny(DenyReason.Throttled, owner, checkedId);
            }

            // Not throttled: run again, recording this time. Every check is made again, atomically.
            userArgs[CheckNetworkThrottleArg] = "0";
            try
            {
                parts = (RedisResult[]?)await Run(db => db.ScriptEvaluateAsync(AppPasswordScripts.Validate, userKeys, userArgs), ct) ?? [];
            }
            catch (StoreUnavailableException)
            {
                return ValidationOutcome.Unavailable;
            }

            if (parts.Length < 4)
            {
                return ValidationOutcome.Unavailable;
            }
        }

        var verdict = (string?)parts[0];
        var detail = (string?)parts[1];
        var third = (string?)parts[2];
        if (verdict == "allow" && detail is not null)
        {
            return ValidationOutcome.Allow(owner, detail, third == "1");
        }

        if (verdict == "pending" && detail is not null)
        {
            return ValidationOutcome.Pending(owner, detail, third == "1");
        }

        var id = string.IsNullOrEmpty(third) ? null : third;
        // The right secret used for the wrong protocol, from outside its allowed networks or
        // countries, or without an address where approval needs one, is not guessing.
        if (detail is not "scope" and not "network" and not "country" and not "noaddress")
        {
            CountNetworkFailure(network, window);
        }

        return detail switch
        {
            _ when networkThrottled => ValidationOutcome.Deny(DenyReason.Throttled, owner),
            // The lookup is by keyed hash, so "no such credential" covers a wrong password, an
            // unknown user and a credential that expired out of Redis alike.
            "unknown" => ValidationOutcome.Deny(DenyReason.WrongPassword, owner),
            "throttled" => ValidationOutcome.Deny(DenyReason.Throttled, owner),
            // Not an app password at all (the account password, a sprayed "Summer2024!"): never
            // looked up, but counted as a failure like any other.
            "malformed" => ValidationOutcome.Deny(DenyReason.Malformed, owner),
            "revoked" => ValidationOutcome.Deny(DenyReason.Revoked, owner, id),
            "disabled" => ValidationOutcome.Deny(DenyReason.Disabled, owner, id),
            "expired" => ValidationOutcome.Deny(DenyReason.Expired, owner, id),
            "scope" => ValidationOutcome.Deny(DenyReason.ScopeNotAllowed, owner, id),
            "network" => ValidationOutcome.Deny(DenyReason.NetworkNotAllowed, owner, id),
            "country" => ValidationOutcome.Deny(DenyReason.CountryNotAllowed, owner, id),
            "noaddress" => ValidationOutcome.Deny(DenyReason.NoClientAddress, owner, id),
            _ => ValidationOutcome.Unavailable,
        };
    }

    /// <summary>
    /// Approves use of an app password from a network it was tried from, and says why nothing
    /// changed when it did not: no such pending network, or the user is disabled.
    /// </summary>
    public async Task<NetworkApproval> ApproveNetworkAsync(string user, string id, string network, CancellationToken ct = default)
    {
        var owner = NormalizeOwner(user);
        var hash = await HashOf(owner, id, ct);
        if (hash is null || network.Length > MaxIpLength)
        {
            return NetworkApproval.NotPending;
        }

        var (_, result) = await OnCredentialAsync(owner, id, hash, h => db => db.ScriptEvaluateAsync(AppPasswordScripts.Approve, [keys.Credential(owner, h), keys.UserMeta(owner)], [id, network, MaxNetworksPerCredential]), ct);
        switch (result)
        {
            case "ok":
                Log.NetworkApproved(logger, id, owner, network);
                return NetworkApproval.Approved;
            case "disabled":
                return NetworkApproval.UserDisabled;
            default:
                return NetworkApproval.NotPending;
        }
    }

    /// <summary>
    /// Limits where an app password may be used from (CIDRs or addresses; IPv6 prefixes in steps of
    /// 4). An empty list removes the limit. Throws <see cref="AppPasswordException"/> for a bad entry.
    /// </summary>
    public async Task<AppPassword> SetAllowedNetworksAsync(string user, string id, IEnumerable<string> cidrs, CancellationToken ct = default)
    {
        var owner = NormalizeOwner(user);
        var normalized = new List<string>();
        foreach (var cidr in cidrs.Where(c => !string.IsNullOrWhiteSpace(c)))
        {
            normalized.Add(SourceNetwork.NormalizeCidr(cidr) ?? throw new AppPasswordException($"'{cidr}' is not an address or network (IPv6 prefixes must be a multiple of {SourceNetwork.IPv6PrefixStep})."));
        }

        if (normalized.Count > MaxNetworksPerCredential)
        {
            throw new AppPasswordException($"At most {MaxNetworksPerCredential} allowed networks.");
        }

        return await SetListFieldAsync(owner, id, "allow", [.. normalized.Distinct()], ct);
    }

    /// <summary>
    /// Limits the countries an app password may be used from (ISO 3166-1 alpha-2 codes, any case).
    /// Together with allowed networks, either one lets a login in. An empty list removes the limit,
    /// which works without a country database too. Throws <see cref="AppPasswordException"/> for a
    /// bad code, too many codes, or when no country database is configured.
    /// </summary>
    public async Task<AppPassword> SetAllowedCountriesAsync(string user, string id, IEnumerable<string> codes, CancellationToken ct = default)
    {
        var owner = NormalizeOwner(user);
        var entries = codes.Where(c => !string.IsNullOrWhiteSpace(c)).ToList();
        if (entries.Count > 0 && !countries.IsEnabled)
        {
            // Refused rather than stored: with no database every login would match no country.
            throw new AppPasswordException($"Country limits are not available: no GeoIP country database is configured ({GeoIpOptions.SectionName}:CountryDatabase).");
        }

        var normalized = new List<string>();
        foreach (var code in entries)
        {
            var c = CountryCodes.Normalize(code) ?? throw new AppPasswordException(
                code.Trim().Equals("UK", StringComparison.OrdinalIgnoreCase)
                    ? "'UK' is not an ISO 3166 country code: the United Kingdom is GB."
                    : $"'{Clip(code.Trim(), 20)}' is not a two-letter country code (ISO 3166-1 alpha-2, such as DE, FR or GB).");
            if (!normalized.Contains(c))
            {
                normalized.Add(c);
            }
        }

        if (normalized.Count > MaxNetworksPerCredential)
        {
            throw new AppPasswordException($"At most {MaxNetworksPerCredential} allowed countries.");
        }

        var updated = await SetListFieldAsync(owner, id, "ctry", normalized, ct);
        Log.AllowedCountriesSet(logger, id, owner, normalized.Count == 0 ? "(any)" : string.Join(',', normalized));
        return updated;
    }

    /// <summary>Stores a comma-separated limit on one credential (an empty list removes the field) and returns it as it is now.</summary>
    private async Task<AppPassword> SetListFieldAsync(string owner, string id, string field, List<string> values, CancellationToken ct)
    {
        var found = await HashOf(owner, id, ct) ?? throw new AppPasswordException("No such app password.");
        var (hash, result) = await OnCredentialAsync(owner, id, found, h => db => db.ScriptEvaluateAsync(
            AppPasswordScripts.SetField, [keys.Credential(owner, h)], [id, field, string.Join(',', values)]), ct);
        return result == "ok" && await ReadAsync(owner, hash, ct) is { } updated ? updated : throw new AppPasswordException("No such app password.");
    }

    /// <summary>
    /// Sets whether new networks need approval for this user: true or false overrides the
    /// organisation default (<see cref="AppPasswordPolicyOptions.RequireApprovalForNewNetworks"/>), null follows it.
    /// </summary>
    public Task SetNewNetworkApprovalAsync(string user, bool? required, CancellationToken ct = default)
    {
        var owner = NormalizeOwner(user);
        return required is { } r
            ? Run(db => db.HashSetAsync(keys.UserMeta(owner), "approve", r ? "1" : "0"), ct)
            : Run(db => db.HashDeleteAsync(keys.UserMeta(owner), "approve"), ct);
    }

    /// <summary>Whether new networks need approval for this user (their own setting, else the organisation default).</summary>
    public async Task<bool> RequiresNewNetworkApprovalAsync(string user, CancellationToken ct = default)
    {
        var owner = NormalizeOwner(user);
        var value = await Run(db => db.HashGetAsync(keys.UserMeta(owner), "approve"), ct);
        return value.IsNull ? Effective.RequireApprovalForNewNetworks : value == "1";
    }

    /// <summary>
    /// Marks an app password as reminded about its expiry. Returns false when it already was, so
    /// that several portal instances running the reminder send one message.
    /// </summary>
    public async Task<bool> MarkExpiryReminderSentAsync(string owner, string id, CancellationToken ct = default)
    {
        var hash = await HashOf(owner, id, ct);
        return hash is not null
            && (await OnCredentialAsync(owner, id, hash, h => db => db.ScriptEvaluateAsync(AppPasswordScripts.MarkReminded, [keys.Credential(owner, h)], [id, ToMs(Now())]), ct)).Result == "1";
    }

    /// <summary>
    /// Counts the live, unrevoked app passwords by the pepper they are keyed under, owner by owner (the
    /// owners set and each owner's index, never a keyspace scan).
    /// </summary>
    public async Task<PepperStatus> PepperStatusAsync(CancellationToken ct = default)
    {
        long current = 0, other = 0, unmarked = 0;
        await foreach (var owner in OwnersAsync(ct))
        {
            // Revoked ones are kept a while for the listing, but work under no pepper.
            foreach (var ap in (await ReadIndexAsync(owner, ct)).Live.Where(a => a.Revoked is null))
            {
                if (ap.PepperId is null)
                {
                    unmarked++;
                }
                else if (ap.PepperId == hasher.PepperId)
                {
                    current++;
                }
                else
                {
                    other++;
                }
            }
        }

        return new PepperStatus(hasher.PepperId, current, other, unmarked);
    }

    /// <summary>
    /// Owners that have been issued app passwords, in pages (SSCAN of one set, not a keyspace scan).
    /// A store failure while paging is a <see cref="StoreUnavailableException"/>, as for every other call.
    /// </summary>
    public async IAsyncEnumerable<string> OwnersAsync([System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken ct = default)
    {
        var pages = Db.SetScanAsync(keys.Owners, pageSize: 500).WithCancellation(ct).GetAsyncEnumerator();
        await using (pages)
        {
            while (true)
            {
                bool more;
                try
                {
                    // Each page is a round trip of its own, outside Run.
                    more = await pages.MoveNextAsync();
                }
                catch (Exception ex) when (IsStoreFailure(ex))
                {
                    throw StoreUnavailable(ex);
                }

                if (!more)
                {
                    yield break;
                }

                yield return pages.Current!;
            }
        }
    }

    /// <summary>Whether a source network is over its failure limit (for Dovecot's auth-policy hook, before any password is checked).</summary>
    public async Task<bool> IsNetworkThrottledAsync(string? remoteIp, CancellationToken ct = default)
    {
        var t = throttling.Value;
        var network = NetworkOf(remoteIp);
        if (!t.Enabled || network is null)
        {
            return false;
        }

        var window = new Window(Now(), t.Window);
        return await Run(db => NetworkFailuresAsync(db, network, window), ct) >= t.PerNetwork;
    }

    /// <summary>
    /// Whether a source network is over its failure limit for a login as <paramref name="user"/>
    /// (Dovecot's auth-policy hook, before any password is checked). As in <see cref="ValidateAsync"/>,
    /// a network that is known-good for the user does not count as throttled for them: a source
    /// spraying many accounts must not lock real users on the same network (a shared NAT) out.
    /// </summary>
    public async Task<bool> IsNetworkThrottledAsync(string? remoteIp, string? user, CancellationToken ct = default)
    {
        return await IsNetworkThrottledAsync(remoteIp, ct) && !await IsKnownNetworkAsync(remoteIp, user, ct);
    }

    /// <summary>
    /// Whether the network of <paramref name="remoteIp"/> is known-good for <paramref name="user"/>:
    /// an app password of theirs was let in from it within <see cref="ThrottlingOptions.KnownNetworkLifetime"/>.
    /// </summary>
    public async Task<bool> IsKnownNetworkAsync(string? remoteIp, string? user, CancellationToken ct = default)
    {
        // Normalised as ValidateAsync does, so "Alice@Example.com " finds alice's known networks.
        if (NetworkOf(remoteIp) is not { } network || !Username.TryNormalize(user, out var owner))
        {
            return false;
        }

        var seen = await Run(db => db.HashGetAsync(keys.KnownNetworks(owner), network), ct);
        return seen.TryParse(out long at) && at + (long)throttling.Value.KnownNetworkLifetime.TotalMilliseconds > ToMs(Now());
    }

    private string? NetworkOf(string? ip) => SourceNetwork.Of(ip, throttling.Value.IPv4Prefix, throttling.Value.IPv6Prefix);

    /// <summary>Counts a failure against the source network, off the answer's path.</summary>
    private void CountNetworkFailure(string? network, Window window)
    {
        var t = throttling.Value;
        if (!t.Enabled || network is null)
        {
            return;
        }

        try
        {
            _ = Db.ScriptEvaluateAsync(
                AppPasswordScripts.NetworkFailure,
                [keys.NetworkFailures(network, window.Current)],
                [(long)t.Window.TotalMilliseconds],
                CommandFlags.FireAndForget);
        }
        catch (RedisException)
        {
            // Counting is best effort; the answer already decided must not turn into an error.
        }
    }

    /// <summary>
    /// Failures counted against a source network in the sliding window. A plain MGET (both buckets
    /// share the network's slot), not a script: it is on every validation's path, and Redis runs it
    /// for a fraction of a script call's cost.
    /// </summary>
    private async Task<double> NetworkFailuresAsync(IDatabase db, string network, Window window)
    {
        var counts = await db.StringGetAsync([keys.NetworkFailures(network, window.Current), keys.NetworkFailures(network, window.Current - 1)]);
        return Count(counts[0]) + (Count(counts[1]) * window.Weight);

        // Only INCR writes these keys; anything else means the store is not what Broker wrote: no decision.
        static long Count(RedisValue v) =>
            v.IsNull ? 0 : v.TryParse(out long n) ? n : throw new RedisException("A network failure counter is not a number.");
    }

    /// <summary>
    /// Sliding window approximated by two fixed buckets: the current count plus the previous
    /// bucket's count weighted by how much of it still overlaps the window.
    /// </summary>
    private readonly record struct Window
    {
        public Window(DateTimeOffset now, TimeSpan length)
        {
            var ms = now.ToUnixTimeMilliseconds();
            var len = (long)length.TotalMilliseconds;
            Current = ms / len;
            Weight = Math.Round(1 - ((double)(ms % len) / len), 4);
            PreviousWeight = Weight.ToString(CultureInfo.InvariantCulture);
        }

        public long Current { get; }

        /// <summary>How much of the previous bucket still overlaps the window, 0..1.</summary>
        public double Weight { get; }

        /// <summary><see cref="Weight"/> as a script argument.</summary>
        public string PreviousWeight { get; }
    }

    /// <summary>
    /// Connects and loads the Lua scripts before the first login arrives, so that a cold
    /// connection or a first script compile does not turn the first validations into temporary
    /// failures. Uses its own, longer timeout; failure is only logged (readiness reports it).
    /// </summary>
    public async Task WarmUpAsync(TimeSpan timeout, CancellationToken ct = default)
    {
        try
        {
            var db = Db;
            await db.PingAsync().WaitAsync(timeout, ct);
            foreach (var server in redis.GetServers())
            {
                foreach (var script in (string[])[AppPasswordScripts.Validate, AppPasswordScripts.NetworkFailure, AppPasswordScripts.Issue, AppPasswordScripts.Renew, AppPasswordScripts.Revoke])
                {
                    await server.ScriptLoadAsync(script).WaitAsync(timeout, ct);
                }
            }
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            Log.StoreFailed(logger, ex.GetType().Name, ex.Message);
        }
    }

    /// <summary>Whether the store answers within the operation timeout (readiness).</summary>
    public async Task<bool> PingAsync(CancellationToken ct = default)
    {
        try
        {
            await Run(db => db.PingAsync(), ct);
            return true;
        }
        catch (StoreUnavailableException)
        {
            return false;
        }
    }

    /// <summary>What a renewal that names no lifetime gives: the app password's own, within today's limits.</summary>
    public static TimeSpan RenewalLifetime(AppPassword current, EffectivePolicy p)
    {
        ArgumentNullException.ThrowIfNull(current);
        ArgumentNullException.ThrowIfNull(p);
        var life = current.Lifetime > TimeSpan.Zero ? current.Lifetime : p.DefaultLifetime;
        return life < p.MinimumLifetime ? p.MinimumLifetime : life > LongestOf(p) ? LongestOf(p) : life;
    }

    private static TimeSpan LongestOf(EffectivePolicy p) =>
        p.MaximumLifetime < AppPasswordPolicyOptions.LongestLifetime ? p.MaximumLifetime : AppPasswordPolicyOptions.LongestLifetime;

    /// <summary>
    /// When an app password of <paramref name="lifetime"/> (the policy's default when null) from
    /// <paramref name="now"/> expires, or an <see cref="AppPasswordException"/> when the policy
    /// does not allow that lifetime. <see cref="AppPasswordPolicyOptions.LongestLifetime"/> bounds
    /// it even under a policy nobody validated (options built by hand), and an expiry past the
    /// last representable date is refused: "now + lifetime" must never throw an overflow.
    /// </summary>
    private static DateTimeOffset ExpiryOf(DateTimeOffset now, TimeSpan? lifetime, EffectivePolicy p)
    {
        var life = lifetime ?? p.DefaultLifetime;
        var max = LongestOf(p);
        if (life <= TimeSpan.Zero || life < p.MinimumLifetime || life > max)
        {
            throw new AppPasswordException(
                $"The lifetime must be between {LifetimeText.Describe(p.MinimumLifetime)} and {LifetimeText.Describe(max)}.");
        }

        if (life > DateTimeOffset.MaxValue - now)
        {
            throw new AppPasswordException("The lifetime would end after the last date the store can hold; choose a shorter one.");
        }

        return now + life;
    }

    private static string NormalizeOwner(string user) =>
        Username.TryNormalize(user, out var owner) ? owner
        : throw new AppPasswordException(Username.InvisibleCharacterProblem(user) ?? "The username is empty, too long or contains control characters.");

    /// <summary>
    /// Runs a script on one credential, named by the hash its id had in the user's index. During a
    /// pepper rotation a login can re-key that credential (a new hash, the index changed with it)
    /// between the index read and the script, which then finds nothing ("missing", or 0): the index
    /// is read again and the script run once more under the new name. Returns the hash the script
    /// ran on and its result as text.
    /// </summary>
    private async Task<(string Hash, string? Result)> OnCredentialAsync(
        string owner, string id, string hash, Func<string, Func<IDatabase, Task<RedisResult>>> script, CancellationToken ct)
    {
        var result = (string?)await Run(script(hash), ct);
        if (result is "missing" or "0" && await HashOf(owner, id, ct) is { } moved && moved != hash)
        {
            return (moved, (string?)await Run(script(moved), ct));
        }

        return (hash, result);
    }

    private async Task<string?> HashOf(string owner, string id, CancellationToken ct)
    {
        if (string.IsNullOrEmpty(id) || id.Length > 64)
        {
            return null;
        }

        return (string?)await Run(db => db.HashGetAsync(keys.CredentialIds(owner), id), ct);
    }

    /// <summary>Runs one store call under the configured timeout and turns every store failure into one exception type.</summary>
    private async Task<T> Run<T>(Func<IDatabase, Task<T>> call, CancellationToken ct)
    {
        try
        {
            return await call(Db).WaitAsync(redisOptions.Value.OperationTimeout, ct);
        }
        catch (Exception ex) when (IsStoreFailure(ex))
        {
            throw StoreUnavailable(ex);
        }
    }

    /// <summary>What a dead, stalled or closed store throws (a stalled one times out as a TimeoutException, not a RedisException).</summary>
    private static bool IsStoreFailure(Exception ex) => ex is RedisException or TimeoutException or ObjectDisposedException;

    private StoreUnavailableException StoreUnavailable(Exception ex)
    {
        Log.StoreFailed(logger, ex.GetType().Name, ex.Message);
        return new StoreUnavailableException("The credential store is unavailable.", ex);
    }

    private async Task Notify(Func<IAppPasswordEvents, Task> call)
    {
        foreach (var handler in events)
        {
            try
            {
                await call(handler);
            }
            catch (Exception ex)
            {
                // The store change is committed; a failing listener must not turn it into an error.
                Log.EventHandlerFailed(logger, handler.GetType().Name, ex);
            }
        }
    }

    private DateTimeOffset Now() => time.GetUtcNow();

    private static long ToMs(DateTimeOffset t) => t.ToUnixTimeMilliseconds();

    private static DateTimeOffset FromMs(RedisValue v) => DateTimeOffset.FromUnixTimeMilliseconds((long)v);

    private static string Clip(string? value, int max) =>
        string.IsNullOrEmpty(value) ? string.Empty : value.Length <= max ? value : value[..max];

    private static string NewId()
    {
        // 96 random bits, hex: unguessable so an id alone is no handle for another user's credential.
        Span<byte> bytes = stackalloc byte[12];
        RandomNumberGenerator.Fill(bytes);
        return Convert.ToHexStringLower(bytes);
    }

    private static AppPassword? Parse(HashEntry[] entries)
    {
        if (entries.Length == 0)
        {
            return null;
        }

        var f = entries.ToDictionary(e => (string)e.Name!, e => e.Value);
        if (!f.TryGetValue("id", out var id) || !f.TryGetValue("owner", out var owner) || !f.TryGetValue("exp", out var exp))
        {
            return null;
        }

        LastUse? lastUse = f.TryGetValue("lu", out var lu)
            ? new LastUse(FromMs(lu), NullIfEmpty(f.GetValueOrDefault("lip")), NullIfEmpty(f.GetValueOrDefault("lpr")), NullIfEmpty(f.GetValueOrDefault("lcl")))
            : null;
        return new AppPassword
        {
            Id = id!,
            Owner = owner!,
            Name = f.GetValueOrDefault("name").ToString(),
            Scopes = f.GetValueOrDefault("scopes").ToString().Split(',', StringSplitOptions.RemoveEmptyEntries),
            Created = FromMs(f.GetValueOrDefault("created")),
            Expires = FromMs(exp),
            // Not stored at issue, where it is the span from creation to expiry; a renewal stores it.
            Lifetime = f.TryGetValue("life", out var life) ? TimeSpan.FromMilliseconds((long)life) : FromMs(exp) - FromMs(f.GetValueOrDefault("created")),
            Revoked = f.TryGetValue("rev", out var rev) ? FromMs(rev) : null,
            LastUsed = lastUse,
            Networks = f.GetValueOrDefault("nets").ToString().Split(',', StringSplitOptions.RemoveEmptyEntries),
            PendingNetworks = f.GetValueOrDefault("pend").ToString().Split(',', StringSplitOptions.RemoveEmptyEntries),
            AllowedNetworks = f.GetValueOrDefault("allow").ToString().Split(',', StringSplitOptions.RemoveEmptyEntries),
            AllowedCountries = f.GetValueOrDefault("ctry").ToString().Split(',', StringSplitOptions.RemoveEmptyEntries),
            Clients = f.GetValueOrDefault("cls").ToString().Split('\x1e', StringSplitOptions.RemoveEmptyEntries),
            PepperId = NullIfEmpty(f.GetValueOrDefault("pk")),
        };
    }

    private static string? NullIfEmpty(RedisValue v) => v.IsNullOrEmpty ? null : v.ToString();

    private static partial class Log
    {
        [LoggerMessage(EventId = 1001, Level = LogLevel.Information, Message = "Issued app password {Id} for {Owner} (scopes {Scopes}, expires {Expires:o})")]
        public static partial void Issued(ILogger logger, string id, string owner, string scopes, DateTimeOffset expires);

        [LoggerMessage(EventId = 1002, Level = LogLevel.Information, Message = "Renewed app password {Id} of {Owner} until {Expires:o}")]
        public static partial void Renewed(ILogger logger, string id, string owner, DateTimeOffset expires);

        [LoggerMessage(EventId = 1003, Level = LogLevel.Information, Message = "Revoked app password {Id} of {Owner}")]
        public static partial void Revoked(ILogger logger, string id, string owner);

        [LoggerMessage(EventId = 1004, Level = LogLevel.Information, Message = "Revoked all ({Count}) app passwords of {Owner}")]
        public static partial void RevokedAll(ILogger logger, string owner, int count);

        [LoggerMessage(EventId = 1007, Level = LogLevel.Information, Message = "Approved network {Network} for app password {Id} of {Owner}")]
        public static partial void NetworkApproved(ILogger logger, string id, string owner, string network);

        [LoggerMessage(EventId = 1008, Level = LogLevel.Information, Message = "Allowed countries of app password {Id} of {Owner}: {Countries}")]
        public static partial void AllowedCountriesSet(ILogger logger, string id, string owner, string countries);

        [LoggerMessage(EventId = 1006, Level = LogLevel.Error, Message = "App password event handler {Handler} failed")]
        public static partial void EventHandlerFailed(ILogger logger, string handler, Exception exception);

        [LoggerMessage(EventId = 1005, Level = LogLevel.Warning, Message = "Credential store call failed: {ErrorType}: {Error}")]
        public static partial void StoreFailed(ILogger logger, string errorType, string error);
    }
}
