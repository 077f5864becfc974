using System.Text;

namespace Broker.Core.Redis;

/// <summary>
/// The only place that builds Redis key names. Every key of one user carries the same
/// <c>{u:…}</c> hash tag, so a user's keys share one cluster slot and one Lua script may touch
/// them all (Redis Cluster, Garnet and a single Redis alike).
/// </summary>
/// <remarks>
/// <c>{prefix}:{u:alice@example.com}:c:&lt;hmac&gt;</c> — one credential (HASH), TTL = expiry.
/// <c>{prefix}:{u:…}:ids</c> — id → hmac (HASH) for listing and revoking without SCAN.
/// <c>{prefix}:{u:…}:meta</c> — per-user flags: <c>nbf</c> (revoke-all watermark), <c>disabled</c>.
/// <c>{prefix}:{u:…}:good</c>, <c>:f:…</c> — known-good networks and failure counters of the user.
/// <c>{prefix}:{n:203.0.113.0/24}:f:&lt;bucket&gt;</c> — failures of a source network across users.
/// <c>{prefix}:{audit}:…</c> — the audit outbox and the pumps' claims, in one slot for their scripts.
/// </remarks>
public sealed class RedisKeys(string prefix)
{
    public string Prefix { get; } = prefix;

    public string Credential(string user, string hash) => $"{UserPrefix(user)}:c:{hash}";

    public string CredentialIds(string user) => $"{UserPrefix(user)}:ids";

    public string UserMeta(string user) => $"{UserPrefix(user)}:meta";

    /// <summary>The user's networks where an app password recently succeeded (HASH network → ms).</summary>
    public string KnownNetworks(string user) => $"{UserPrefix(user)}:good";

    /// <summary>Marker that a repeated-failure notice went to the user recently (TTL = notice interval).</summary>
    public string FailureNotice(string user) => $"{UserPrefix(user)}:notice:fail";

    public string OutsideLimitsNotice(string user) => $"{UserPrefix(user)}:notice:outside";

    /// <summary>Failure counter of one user from one network in one window bucket.</summary>
    public string UserNetworkFailures(string user, string network, long bucket) => $"{UserPrefix(user)}:f:n:{network}:{bucket}";

    /// <summary>Failure counter of one user from any network in one window bucket.</summary>
    public string UserFailures(string user, long bucket) => $"{UserPrefix(user)}:f:{bucket}";

    /// <summary>Failure counter of one source network across users; its own slot, never in a script with user keys.</summary>
    public string NetworkFailures(string network, long bucket) => $"{Prefix}:{{n:{network}}}:f:{bucket}";

    /// <summary>Every owner that has been issued an app password (SET), for periodic jobs that must not SCAN.</summary>
    public string Owners => $"{Prefix}:owners";

    /// <summary>Audit events waiting for the portal to store them (LIST, newest on the left).</summary>
    public string AuditOutbox => $"{Prefix}:{{audit}}:outbox";

    /// <summary>Ids of the audit pumps that hold a claim (SET).</summary>
    public string AuditClaims => $"{Prefix}:{{audit}}:claims";

    /// <summary>Events one pump took off the outbox that not every handler has taken yet (LIST, oldest first).</summary>
    public string AuditClaim(string pump) => $"{Prefix}:{{audit}}:claim:{pump}";

    /// <summary>Present while the pump that owns the claim is alive (TTL = lease).</summary>
    public string AuditLease(string pump) => $"{Prefix}:{{audit}}:lease:{pump}";

    /// <summary>Caller API keys (sha256 → name); global, not per user.</summary>
    public string CallerKeys => $"{Prefix}:callers";

    /// <summary>Admin overrides of the app-password policy (HASH field → value); global, not per user.</summary>
    public string Policy => $"{Prefix}:policy";

    public string UserPrefix(string user) => $"{Prefix}:{{u:{EscapeTag(user)}}}";

    /// <summary>
    /// A brace inside the tag would end it early and scatter a user's keys over slots, so
    /// braces (and the escape character itself) are percent-encoded.
    /// </summary>
    internal static string EscapeTag(string user)
    {
        if (user.AsSpan().IndexOfAny('{', '}', '%') < 0)
        {
            return user;
        }

        var sb = new StringBuilder(user.Length + 8);
        foreach (var c in user)
        {
            sb.Append(c switch
            {
                '{' => "%7B",
                '}' => "%7D",
                '%' => "%25",
                _ => c.ToString(),
            });
        }

        return sb.ToString();
    }
}
