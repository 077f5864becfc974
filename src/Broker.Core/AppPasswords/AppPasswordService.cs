using System.Globalization;
using System.Security.Cryptography;
using Broker.Core.Redis;
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
    IOptions<RedisOptions> redisOptions,
    TimeProvider time,
    IEnumerable<IAppPasswordEvents> events,
    ILogger<AppPasswordService> logger)
{
    private const int MaxClientIdLength = 200;
    private const int MaxIpLength = 64;

    private AppPasswordPolicyOptions Policy => policy.Value;

    private IDatabase Db => redis.GetDatabase();

    /// <summary>Issues a new app password; the returned secret is never stored and cannot be shown again.</summary>
    public async Task<IssuedAppPassword> IssueAsync(string user, string name, IEnumerable<string> scopes, TimeSpan? lifetime, CancellationToken ct = default)
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

        var life = CheckLifetime(lifetime ?? Policy.DefaultLifetime);
        var now = Now();
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
            Expires = now + life,
        };

        var scopeList = string.Join(',', parsedScopes);
        var joinedScopes = "," + scopeList + ",";
        var result = (string?)await Run(db => db.ScriptEvaluateAsync(
            AppPasswordScripts.Issue,
            [keys.Credential(owner, hash), keys.CredentialIds(owner)],
            [record.Id, hash, owner, name, joinedScopes, ToMs(record.Created), ToMs(record.Expires), Policy.MaximumPerUser]), ct);
        if (result == "limit")
        {
            throw new AppPasswordException($"This account already has {Policy.MaximumPerUser} app passwords. Revoke unused ones first.");
        }

        if (result != "ok")
        {
            // A 110-bit collision is not a thing that happens; refuse rather than overwrite.
            throw new AppPasswordException("Could not issue an app password; try again.");
        }

        Log.Issued(logger, record.Id, owner, scopeList, record.Expires);
        await Notify(e => e.IssuedAsync(record, ct));
        return new IssuedAppPassword(record, secret);
    }

    /// <summary>All app passwords of a user, newest first, including recently revoked ones.</summary>
    public async Task<IReadOnlyList<AppPassword>> ListAsync(string user, CancellationToken ct = default)
    {
        var owner = NormalizeOwner(user);
        var idsKey = keys.CredentialIds(owner);
        var entries = await Run(db => db.HashGetAllAsync(idsKey), ct);
        if (entries.Length == 0)
        {
            return [];
        }

        var batch = Db.CreateBatch();
        var reads = entries.Select(e => batch.HashGetAllAsync(keys.Credential(owner, e.Value!))).ToArray();
        batch.Execute();
        var fields = await Run(_ => Task.WhenAll(reads), ct);

        var list = new List<AppPassword>(entries.Length);
        var stale = new List<RedisValue>();
        for (var i = 0; i < entries.Length; i++)
        {
            if (Parse(fields[i]) is { } ap && ap.Owner == owner)
            {
                list.Add(ap);
            }
            else
            {
                stale.Add(entries[i].Name);
            }
        }

        if (stale.Count > 0)
        {
            // Expired credentials vanish by TTL; their index entries are tidied here, lazily.
            _ = Db.HashDeleteAsync(idsKey, [.. stale], CommandFlags.FireAndForget);
        }

        return [.. list.OrderByDescending(a => a.Created)];
    }

    /// <summary>One app password of a user, or null.</summary>
    public async Task<AppPassword?> GetAsync(string user, string id, CancellationToken ct = default)
    {
        var owner = NormalizeOwner(user);
        var hash = await HashOf(owner, id, ct);
        if (hash is null)
        {
            return null;
        }

        var ap = Parse(await Run(db => db.HashGetAllAsync(keys.Credential(owner, hash)), ct));
        return ap?.Owner == owner ? ap : null;
    }

    /// <summary>Extends the expiry, keeping the secret. The new expiry is now + lifetime, within policy.</summary>
    public async Task<AppPassword> RenewAsync(string user, string id, TimeSpan? lifetime, CancellationToken ct = default)
    {
        var owner = NormalizeOwner(user);
        var life = CheckLifetime(lifetime ?? Policy.DefaultLifetime);
        var hash = await HashOf(owner, id, ct) ?? throw new AppPasswordException("No such app password.");
        var now = Now();
        var expires = now + life;
        var result = (string?)await Run(db => db.ScriptEvaluateAsync(
            AppPasswordScripts.Renew,
            [keys.Credential(owner, hash), keys.CredentialIds(owner), keys.UserMeta(owner)],
            [id, ToMs(expires), ToMs(now)]), ct);
        switch (result)
        {
            case "ok":
                Log.Renewed(logger, id, owner, expires);
                var renewed = (await GetAsync(owner, id, ct))!;
                await Notify(e => e.RenewedAsync(renewed, ct));
                return renewed;
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

        var result = (string?)await Run(db => db.ScriptEvaluateAsync(
            AppPasswordScripts.Revoke,
            [keys.Credential(owner, hash)],
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

    /// <summary>Disables or re-enables a user for mail login. Disabling also revokes every app password.</summary>
    public async Task SetDisabledAsync(string user, bool disabled, CancellationToken ct = default)
    {
        var owner = NormalizeOwner(user);
        if (disabled)
        {
            await Run(db => db.HashSetAsync(keys.UserMeta(owner), "disabled", "1"), ct);
            await RevokeAllAsync(owner, ct);
        }
        else
        {
            await Run(db => db.HashDeleteAsync(keys.UserMeta(owner), "disabled"), ct);
        }
    }

    /// <summary>
    /// Checks a username and app password for a service. One Redis round trip: look-up, owner,
    /// revocation, expiry and scope checks, and the last-use update happen in one script.
    /// Never throws for bad input or a dead store: the outcome says deny or unavailable.
    /// </summary>
    public async Task<ValidationOutcome> ValidateAsync(string? user, string? password, ValidationContext context, CancellationToken ct = default)
    {
        if (!Username.TryNormalize(user, out var owner))
        {
            return ValidationOutcome.Deny(DenyReason.Malformed);
        }

        if (password is null || !AppPasswordFormat.TryCanonicalize(password, out var canonical))
        {
            // Includes the account password: it never has the app-password shape, so it is refused here.
            return ValidationOutcome.Deny(DenyReason.Malformed, owner);
        }

        if (!AppPasswordScopes.TryFromService(context.Service, out var scope))
        {
            return ValidationOutcome.Deny(DenyReason.ScopeNotAllowed, owner);
        }

        var hash = hasher.Hash(owner, canonical);
        RedisResult result;
        try
        {
            result = await Run(db => db.ScriptEvaluateAsync(
                AppPasswordScripts.Validate,
                [keys.Credential(owner, hash), keys.UserMeta(owner)],
                [scope, ToMs(Now()), Clip(context.RemoteIp, MaxIpLength), Clip(context.Service, 32), Clip(context.ClientId, MaxClientIdLength)]), ct);
        }
        catch (StoreUnavailableException)
        {
            return ValidationOutcome.Unavailable;
        }

        var parts = (RedisResult[]?)result;
        if (parts is null || parts.Length < 2)
        {
            return ValidationOutcome.Unavailable;
        }

        var verdict = (string?)parts[0];
        var detail = (string?)parts[1];
        if (verdict == "allow" && detail is not null)
        {
            return ValidationOutcome.Allow(owner, detail);
        }

        var id = parts.Length > 2 ? (string?)parts[2] : null;
        return detail switch
        {
            // The lookup is by keyed hash, so "no such credential" covers a wrong password, an
            // unknown user and a credential that expired out of Redis alike.
            "unknown" => ValidationOutcome.Deny(DenyReason.WrongPassword, owner),
            "revoked" => ValidationOutcome.Deny(DenyReason.Revoked, owner, id),
            "disabled" => ValidationOutcome.Deny(DenyReason.Disabled, owner, id),
            "expired" => ValidationOutcome.Deny(DenyReason.Expired, owner, id),
            "scope" => ValidationOutcome.Deny(DenyReason.ScopeNotAllowed, owner, id),
            _ => ValidationOutcome.Unavailable,
        };
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
                foreach (var script in (string[])[AppPasswordScripts.Validate, AppPasswordScripts.Issue, AppPasswordScripts.Renew, AppPasswordScripts.Revoke])
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

    private TimeSpan CheckLifetime(TimeSpan life)
    {
        if (life < Policy.MinimumLifetime || life > Policy.MaximumLifetime)
        {
            throw new AppPasswordException(
                $"The lifetime must be between {Format(Policy.MinimumLifetime)} and {Format(Policy.MaximumLifetime)}.");
        }

        return life;
    }

    private static string Format(TimeSpan t) =>
        t.TotalDays >= 1 && t.TotalDays == Math.Floor(t.TotalDays)
            ? $"{t.TotalDays.ToString(CultureInfo.InvariantCulture)} days"
            : $"{t.TotalHours.ToString(CultureInfo.InvariantCulture)} hours";

    private static string NormalizeOwner(string user) =>
        Username.TryNormalize(user, out var owner) ? owner : throw new AppPasswordException("The username is empty, too long or contains control characters.");

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
        catch (Exception ex) when (ex is RedisException or TimeoutException or ObjectDisposedException)
        {
            Log.StoreFailed(logger, ex.GetType().Name, ex.Message);
            throw new StoreUnavailableException("The credential store is unavailable.", ex);
        }
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
            Revoked = f.TryGetValue("rev", out var rev) ? FromMs(rev) : null,
            LastUsed = lastUse,
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

        [LoggerMessage(EventId = 1006, Level = LogLevel.Error, Message = "App password event handler {Handler} failed")]
        public static partial void EventHandlerFailed(ILogger logger, string handler, Exception exception);

        [LoggerMessage(EventId = 1005, Level = LogLevel.Warning, Message = "Credential store call failed: {ErrorType}: {Error}")]
        public static partial void StoreFailed(ILogger logger, string errorType, string error);
    }
}
