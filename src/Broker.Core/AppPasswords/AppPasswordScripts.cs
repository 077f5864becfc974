namespace Broker.Core.AppPasswords;

/// <summary>
/// Lua run inside Redis so that each operation is one atomic round trip. Every key a script
/// touches is passed in KEYS (Garnet locks declared keys; Redis Cluster routes by them), and all
/// of them share the user's hash tag.
/// </summary>
internal static class AppPasswordScripts
{
    // KEYS: cred, meta. ARGV: scope, now(ms), ip, protocol, client.
    // Returns {result, reason-or-id}. Updates last use only when every check passed.
    public const string Validate = """
        local c = redis.call('HMGET', KEYS[1], 'id', 'scopes', 'exp', 'rev', 'created')
        if not c[1] then return {'deny', 'unknown'} end
        local m = redis.call('HMGET', KEYS[2], 'nbf', 'disabled')
        if c[4] or (m[1] and tonumber(c[5]) < tonumber(m[1])) then return {'deny', 'revoked', c[1]} end
        if m[2] == '1' then return {'deny', 'disabled', c[1]} end
        if tonumber(c[3]) <= tonumber(ARGV[2]) then return {'deny', 'expired', c[1]} end
        if not string.find(c[2], ',' .. ARGV[1] .. ',', 1, true) then return {'deny', 'scope', c[1]} end
        redis.call('HSET', KEYS[1], 'lu', ARGV[2], 'lip', ARGV[3], 'lpr', ARGV[4], 'lcl', ARGV[5])
        return {'allow', c[1]}
        """;

    // KEYS: cred, ids. ARGV: id, hash, owner, name, scopes, created(ms), exp(ms), max-per-user.
    public const string Issue = """
        if redis.call('HLEN', KEYS[2]) >= tonumber(ARGV[8]) then return 'limit' end
        if redis.call('EXISTS', KEYS[1]) == 1 then return 'exists' end
        redis.call('HSET', KEYS[1], 'id', ARGV[1], 'h', ARGV[2], 'owner', ARGV[3], 'name', ARGV[4], 'scopes', ARGV[5], 'created', ARGV[6], 'exp', ARGV[7])
        redis.call('PEXPIREAT', KEYS[1], ARGV[7])
        redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
        local ttl = redis.call('PTTL', KEYS[2])
        if ttl >= 0 and ttl < tonumber(ARGV[7]) - tonumber(ARGV[6]) then redis.call('PEXPIREAT', KEYS[2], ARGV[7]) end
        if ttl == -1 then redis.call('PEXPIREAT', KEYS[2], ARGV[7]) end
        return 'ok'
        """;

    // KEYS: cred, ids, meta. ARGV: id, new exp(ms), now(ms).
    public const string Renew = """
        local c = redis.call('HMGET', KEYS[1], 'id', 'exp', 'rev', 'created')
        if c[1] ~= ARGV[1] then return 'missing' end
        local nbf = redis.call('HGET', KEYS[3], 'nbf')
        if c[3] or (nbf and tonumber(c[4]) < tonumber(nbf)) then return 'revoked' end
        if tonumber(c[2]) <= tonumber(ARGV[3]) then return 'expired' end
        redis.call('HSET', KEYS[1], 'exp', ARGV[2])
        redis.call('PEXPIREAT', KEYS[1], ARGV[2])
        local ttl = redis.call('PTTL', KEYS[2])
        if ttl >= 0 and ttl < tonumber(ARGV[2]) - tonumber(ARGV[3]) then redis.call('PEXPIREAT', KEYS[2], ARGV[2]) end
        return 'ok'
        """;

    // KEYS: cred. ARGV: id, now(ms), retention(ms).
    public const string Revoke = """
        local c = redis.call('HMGET', KEYS[1], 'id', 'rev')
        if c[1] ~= ARGV[1] then return 'missing' end
        if c[2] then return 'ok' end
        redis.call('HSET', KEYS[1], 'rev', ARGV[2])
        local ttl = redis.call('PTTL', KEYS[1])
        if ttl < 0 or ttl > tonumber(ARGV[3]) then redis.call('PEXPIRE', KEYS[1], math.max(1, tonumber(ARGV[3]))) end
        return 'ok'
        """;
}
