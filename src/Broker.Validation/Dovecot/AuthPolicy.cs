using Broker.Core.AppPasswords;
using System.Net;
using System.Text.Json;
using System.Text.Json.Serialization;
using Broker.Core.Redis;
using Broker.Core.Throttling;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace Broker.Validation.Dovecot;

/// <summary>
/// What Dovecot's auth-policy client posts (<c>auth_policy_request_attributes</c>). The password is
/// never sent (only a 12-bit hash), so a policy can throttle and refuse, never verify.
/// </summary>
public sealed record AuthPolicyRequest
{
    public string? Login { get; init; }

    /// <summary>The client's address, already parsed; null when Dovecot sent none or garbage.</summary>
    public IPAddress? Remote { get; init; }

    public string? Protocol { get; init; }

    public string? Mech { get; init; }

    public string? SessionId { get; init; }

    /// <summary>Report only: whether the login succeeded.</summary>
    public bool? Success { get; init; }

    /// <summary>Report only: whether the policy itself refused the attempt.</summary>
    public bool? PolicyReject { get; init; }

    /// <summary>
    /// Parses the JSON body. False for anything that is not a JSON object; unknown fields and
    /// fields of the wrong type are ignored (Dovecot's attribute list is admin-configurable).
    /// </summary>
    public static bool TryParse(ReadOnlySpan<byte> json, out AuthPolicyRequest request)
    {
        request = new AuthPolicyRequest();
        if (json.Length == 0 || json.Length > 16 * 1024)
        {
            return false;
        }

        try
        {
            var reader = new Utf8JsonReader(json, new JsonReaderOptions { MaxDepth = 4 });
            using var doc = JsonDocument.ParseValue(ref reader);
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
            {
                return false;
            }

            var root = doc.RootElement;
            request = new AuthPolicyRequest
            {
                Login = Text(root, "login"),
                Remote = IPAddress.TryParse(Text(root, "remote"), out var ip) ? ip : null,
                Protocol = Text(root, "protocol"),
                Mech = Text(root, "mech"),
                SessionId = Text(root, "session_id"),
                Success = Bool(root, "success"),
                PolicyReject = Bool(root, "policy_reject"),
            };
            return true;
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException)
        {
            // InvalidOperationException: a string escapes a lone surrogate ("\udfff"), which is
            // valid JSON syntax but not text (found by MailServerApiFuzzTests).
            request = new AuthPolicyRequest();
            return false;
        }
    }

    private static string? Text(JsonElement root, string name) =>
        root.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String && v.GetString() is { Length: <= 512 } s ? s : null;

    private static bool? Bool(JsonElement root, string name) =>
        root.TryGetProperty(name, out var v) ? v.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => null,
        } : null;
}

/// <summary>The decision for <c>command=allow</c>: status 0 lets the login proceed, -1 refuses it with <see cref="Message"/>, a positive status delays that many seconds.</summary>
public readonly record struct AuthPolicyVerdict(int Status, string? Message)
{
    public static AuthPolicyVerdict Allow { get; } = new(0, null);
}

/// <summary>
/// The decision logic behind the auth-policy endpoint, replaceable (register another implementation
/// before <c>AddBrokerMailServers()</c>; it uses <c>TryAdd</c>). Store failures surface as
/// Redis or timeout exceptions; the endpoint turns them into 503.
/// </summary>
public interface IAuthPolicy
{
    Task<AuthPolicyVerdict> CheckAsync(AuthPolicyRequest request, CancellationToken ct);

    Task ReportAsync(AuthPolicyRequest request, CancellationToken ct);
}

/// <summary>
/// Refuses a source before the password check when Broker's own throttling has cut off its
/// network (the same sliding-window counters every validation updates, see docs/security.md;
/// not for a user whose known-good network it is),
/// or when the failures Dovecot reported for that address reach <see cref="AuthPolicyOptions.FailureThreshold"/>
/// (one counter per address, TTL = window; IPv6 per /64) — the latter also catches failures of
/// other passdbs that never reach Broker. Neither refuses a user whose known-good network it is.
/// </summary>
public sealed partial class SourceFailurePolicy(IConnectionMultiplexer redis, RedisKeys keys, AppPasswordService store, IOptions<AuthPolicyOptions> options, IOptions<RedisOptions> redisOptions, ILogger<SourceFailurePolicy> logger) : IAuthPolicy
{
    private const string IncrementScript = """
        local n = redis.call('INCR', KEYS[1])
        if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
        return n
        """;

    public async Task<AuthPolicyVerdict> CheckAsync(AuthPolicyRequest request, CancellationToken ct)
    {
        if (request.Remote is null)
        {
            return AuthPolicyVerdict.Allow;
        }

        var o = options.Value;
        // With the login: where the network is known-good for that user, a sprayer on it does not
        // lock them out (the same exemption /v1/validate makes).
        if (await store.IsNetworkThrottledAsync(request.Remote.ToString(), request.Login, ct))
        {
            Log.Throttled(logger, request.Remote.ToString());
            return new AuthPolicyVerdict(-1, o.RejectMessage);
        }

        var stored = await redis.GetDatabase().StringGetAsync(Key(request.Remote)).WaitAsync(redisOptions.Value.OperationTimeout, ct);
        // Only INCR writes this key; anything else means the store is not what Broker wrote: no
        // decision (the endpoint answers 503), not an unhandled cast.
        var failures = stored.IsNull ? 0 : stored.TryParse(out long n) ? n : throw new RedisException("An auth-policy failure counter is not a number.");
        // The same exemption for the address counter: one bad actor behind an office NAT must not lock
        // everyone there out. Guessing at that user from there still meets Broker's user × network limit.
        if (failures < o.FailureThreshold || await store.IsKnownNetworkAsync(request.Remote.ToString(), request.Login, ct))
        {
            return AuthPolicyVerdict.Allow;
        }

        Log.Refused(logger, SourceNetwork.Host(request.Remote), failures);
        return new AuthPolicyVerdict(-1, o.RejectMessage);
    }

    public async Task ReportAsync(AuthPolicyRequest request, CancellationToken ct)
    {
        // Attempts the policy itself refused are not counted again, so a refused source's window ends on time.
        if (request.Remote is null || request.Success != false || request.PolicyReject == true)
        {
            return;
        }

        var window = (long)options.Value.Window.TotalMilliseconds;
        await redis.GetDatabase().ScriptEvaluateAsync(IncrementScript, [Key(request.Remote)], [window]).WaitAsync(redisOptions.Value.OperationTimeout, ct);
    }

    // Not in RedisKeys (owned by the core): a global per-source key, deliberately outside any user's hash slot.
    private RedisKey Key(IPAddress remote) => $"{keys.Prefix}:policy:fail:{SourceNetwork.Host(remote)}";

    private static partial class Log
    {
        [LoggerMessage(EventId = 4102, Level = LogLevel.Warning, Message = "Auth policy refused {Source}: its network is throttled by Broker")]
        public static partial void Throttled(ILogger logger, string source);

        [LoggerMessage(EventId = 4101, Level = LogLevel.Warning, Message = "Auth policy refused source {Source} after {Failures} failed logins")]
        public static partial void Refused(ILogger logger, string source, long failures);
    }
}

public sealed record AuthPolicyReply
{
    [JsonPropertyName("status")]
    public int Status { get; init; }

    [JsonPropertyName("msg")]
    public string? Msg { get; init; }
}
