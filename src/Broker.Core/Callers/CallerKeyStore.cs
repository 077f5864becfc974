using System.Security.Cryptography;
using System.Text;
using Broker.Core.Redis;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace Broker.Core.Callers;

/// <summary>Thrown when a caller key cannot be created as asked; the message is for the admin.</summary>
public sealed class CallerKeyException(string message) : Exception(message);

/// <summary>
/// Keeps the hashes of caller API keys in memory (from configuration and from Redis) and checks
/// a presented key against all of them in constant time. The hot path never waits on Redis: a
/// background refresh keeps the Redis-held keys current and keeps the last good set when Redis
/// is down.
/// </summary>
public sealed partial class CallerKeyStore(
    IConnectionMultiplexer redis,
    RedisKeys keys,
    IOptions<CallerKeyOptions> options,
    ILogger<CallerKeyStore> logger)
{
    private const string KeyPrefix = "bk_";
    private volatile IReadOnlyList<(byte[] Hash, string Name)> _stored = [];
    private volatile bool _loaded;

    /// <summary>
    /// Whether the Redis-held keys have been read at least once. Until then an unknown key may be
    /// one that is simply not loaded yet (the store is still starting), so callers answer
    /// "temporary failure", not "unauthorized".
    /// </summary>
    public bool Loaded => _loaded;

    /// <summary>Returns the caller's name when <paramref name="presented"/> is a known key, else null.</summary>
    public string? Authenticate(string? presented)
    {
        if (string.IsNullOrEmpty(presented) || presented.Length > 256)
        {
            return null;
        }

        var hash = SHA256.HashData(Encoding.UTF8.GetBytes(presented));
        string? match = null;
        // Visit every key without early exit so timing does not reveal how many keys there are before a match.
        foreach (var (candidate, name) in AllKeys())
        {
            if (CryptographicOperations.FixedTimeEquals(hash, candidate))
            {
                match = name;
            }
        }

        return match;
    }

    /// <summary>Creates a key, stores its hash in Redis and returns the key: the only time it is shown.</summary>
    public async Task<string> CreateAsync(string name, CancellationToken ct = default)
    {
        name = name.Trim();
        // Printable only: the name is shown in the CLI, the admin pages and the logs.
        if (name.Length is 0 or > 64 || name.Any(char.IsControl))
        {
            throw new CallerKeyException("The caller name must be 1 to 64 printable characters.");
        }

        var key = KeyPrefix + Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)).TrimEnd('=').Replace('+', '-').Replace('/', '_');
        await redis.GetDatabase().HashSetAsync(keys.CallerKeys, HashHex(key), name).WaitAsync(ct);
        await RefreshAsync(ct);
        return key;
    }

    /// <summary>Names of the callers whose keys live in Redis.</summary>
    public async Task<IReadOnlyList<(string Name, string HashPrefix)>> ListAsync(CancellationToken ct = default)
    {
        var entries = await redis.GetDatabase().HashGetAllAsync(keys.CallerKeys).WaitAsync(ct);
        return [.. entries.Select(e => ((string)e.Value!, ((string)e.Name!)[..12]))];
    }

    /// <summary>Deletes every Redis-held key of a caller name. Returns how many were removed.</summary>
    public async Task<int> DeleteAsync(string name, CancellationToken ct = default)
    {
        var db = redis.GetDatabase();
        var entries = await db.HashGetAllAsync(keys.CallerKeys).WaitAsync(ct);
        var doomed = entries.Where(e => e.Value == name).Select(e => e.Name).ToArray();
        if (doomed.Length > 0)
        {
            await db.HashDeleteAsync(keys.CallerKeys, doomed).WaitAsync(ct);
        }

        await RefreshAsync(ct);
        return doomed.Length;
    }

    /// <summary>Re-reads the Redis-held keys; on failure keeps the previous set.</summary>
    public async Task RefreshAsync(CancellationToken ct = default)
    {
        try
        {
            var entries = await redis.GetDatabase().HashGetAllAsync(keys.CallerKeys).WaitAsync(TimeSpan.FromSeconds(2), ct);
            var list = new List<(byte[], string)>(entries.Length);
            foreach (var e in entries)
            {
                if (TryFromHex(e.Name!, out var bytes))
                {
                    list.Add((bytes, (string)e.Value!));
                }
            }

            _stored = list;
            _loaded = true;
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            Log.RefreshFailed(logger, ex.GetType().Name);
        }
    }

    /// <summary>Lower-case hex SHA-256 of a key, the form kept in configuration and Redis.</summary>
    public static string HashHex(string key) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(key)));

    private IEnumerable<(byte[] Hash, string Name)> AllKeys()
    {
        foreach (var (name, hex) in options.Value.Keys)
        {
            if (TryFromHex(hex, out var bytes))
            {
                yield return (bytes, name);
            }
        }

        foreach (var entry in _stored)
        {
            yield return entry;
        }
    }

    private static bool TryFromHex(string? hex, out byte[] bytes)
    {
        bytes = [];
        if (hex is null || hex.Length != 64)
        {
            return false;
        }

        try
        {
            bytes = Convert.FromHexString(hex);
            return true;
        }
        catch (FormatException)
        {
            return false;
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 1101, Level = LogLevel.Warning, Message = "Could not refresh caller API keys from Redis ({ErrorType}); keeping the previous set")]
        public static partial void RefreshFailed(ILogger logger, string errorType);
    }
}

/// <summary>Refreshes <see cref="CallerKeyStore"/> in the background.</summary>
internal sealed class CallerKeyRefresher(CallerKeyStore store, IOptions<CallerKeyOptions> options) : Microsoft.Extensions.Hosting.BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        // Until the first read succeeds (a store still recovering after a restart), try every second:
        // mail servers holding a Redis-held key get "temporary failure" until then.
        while (!store.Loaded)
        {
            await store.RefreshAsync(stoppingToken);
            if (!store.Loaded)
            {
                await Task.Delay(TimeSpan.FromSeconds(1), stoppingToken);
            }
        }

        using var timer = new PeriodicTimer(options.Value.RefreshInterval);
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            await store.RefreshAsync(stoppingToken);
        }
    }
}
