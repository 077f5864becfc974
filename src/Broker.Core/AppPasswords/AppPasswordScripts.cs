namespace Broker.Core.AppPasswords;

/// <summary>
/// Lua run inside Redis so that each operation is one atomic round trip. Every key a script
/// touches is passed in KEYS (Garnet locks declared keys; Redis Cluster routes by them), and all
/// of them share the user's hash tag.
/// </summary>
internal static class AppPasswordScripts
{
    // KEYS: 1 cred, 2 meta, 3 user+network failures (current window), 4 (previous window),
    //       5 user failures (current), 6 (previous), 7 user's known-good networks.
    // ARGV: 1 scope ('' = count a failure only), 2 now(ms), 3 ip, 4 protocol, 5 client, 6 network ('' = unknown),
    //       7 weight of previous window, 8 limit user+network, 9 limit user, 10 window(ms),
    //       11 known-network lifetime(ms), 12 throttling on ('1'), 13 most networks remembered per credential,
    //       14 new-network approval required by default ('1'), 15 every network containing the client (',a/n,…,'),
    //       16 the client's country ('' = unknown: matches no allowed country),
    //       17 '1' = the source network's throttle is not checked yet (see 'check' below),
    //       18 the hash under the current pepper, 19 the current pepper's id,
    //       20 the hash under the rotation's other pepper ('' = no rotation).
    // While a pepper rotation is under way, also KEYS 8 the credential under the rotation's other
    // pepper and 9 the user's id index: a credential found only there is re-keyed under the current
    // pepper (renamed, with its TTL, and its index entry changed) at its next allowed login. It
    // counts only if the index names it: Issue writes both at once, so one missing from the index
    // was put into Redis by other means, and must not be carried over to the new pepper.
    // Returns {verdict, reason-or-id, id-or-new-network-flag, known-network-flag}; verdict 'pending' when
    // the credential is right but its use from this network awaits the owner's approval.
    // Allowed networks ('allow') and allowed countries ('ctry') are one limit: a login passes when
    // either matches; denied, the detail is 'country' when a country list exists, else 'network'.
    // With new-network approval required, a login without a client address is denied ('noaddress').
    // Throttle checks come before the credential is looked at; last use, known networks and
    // the networks a credential was seen on are updated only when every check passed.
    // Verdict 'check' (only with ARGV[17] = '1'): every check here passed, but the network is not
    // known-good for the user, so the source network's throttle (its counter lives in another
    // slot; the caller reads it) still applies. Nothing has been written: the caller refuses the
    // login as throttled, or runs the script again with ARGV[17] = '0' to record it.
    public const string Validate = """
        local now = tonumber(ARGV[2])
        local net = ARGV[6]
        local on = ARGV[12] == '1'
        local seen = nil
        local known = false
        if net ~= '' then
          local mark = redis.call('HGET', KEYS[7], net)
          if mark then seen = tonumber(mark) end
          known = seen ~= nil and seen + tonumber(ARGV[11]) > now
        end
        local kf = known and '1' or '0'
        local function fail(reason, id)
          if on then
            for _, k in ipairs({KEYS[3], KEYS[5]}) do
              redis.call('INCR', k)
              redis.call('PEXPIRE', k, 2 * tonumber(ARGV[10]))
            end
          end
          return {'deny', reason, id or '', kf}
        end
        -- Failures of this user from this network, read once: for the throttle, and to know
        -- whether a success has any counter to clear.
        local ncur, nprev = nil, nil
        if net ~= '' then
          ncur = redis.call('GET', KEYS[3])
          nprev = redis.call('GET', KEYS[4])
        end
        if on then
          if net ~= '' and tonumber(ncur or '0') + tonumber(nprev or '0') * tonumber(ARGV[7]) >= tonumber(ARGV[8]) then return {'deny', 'throttled', '', kf} end
          if not known and tonumber(redis.call('GET', KEYS[5]) or '0') + tonumber(redis.call('GET', KEYS[6]) or '0') * tonumber(ARGV[7]) >= tonumber(ARGV[9]) then return {'deny', 'throttled', '', kf} end
        end
        if ARGV[1] == '' then return fail('malformed') end
        local ck = KEYS[1]
        local c = redis.call('HMGET', ck, 'id', 'scopes', 'exp', 'rev', 'created', 'nets', 'allow', 'cls', 'ctry', 'pk')
        if not c[1] and KEYS[8] then
          local o = redis.call('HMGET', KEYS[8], 'id', 'scopes', 'exp', 'rev', 'created', 'nets', 'allow', 'cls', 'ctry', 'pk')
          if o[1] and redis.call('HGET', KEYS[9], o[1]) == ARGV[20] then ck, c = KEYS[8], o end
        end
        if not c[1] then return fail('unknown') end
        local m = redis.call('HMGET', KEYS[2], 'nbf', 'disabled', 'approve')
        if c[4] or (m[1] and tonumber(c[5]) < tonumber(m[1])) then return fail('revoked', c[1]) end
        if m[2] == '1' then return fail('disabled', c[1]) end
        if tonumber(c[3]) <= now then return fail('expired', c[1]) end
        if not string.find(c[2], ',' .. ARGV[1] .. ',', 1, true) then return {'deny', 'scope', c[1], kf} end
        local allow, ctry = c[7] or '', c[9] or ''
        if allow ~= '' or ctry ~= '' then
          local inside = false
          for cidr in string.gmatch(allow, '[^,]+') do
            if string.find(ARGV[15], ',' .. cidr .. ',', 1, true) then inside = true break end
          end
          if not inside and ARGV[16] ~= '' and string.find(',' .. ctry .. ',', ',' .. ARGV[16] .. ',', 1, true) then inside = true end
          if not inside then return {'deny', ctry ~= '' and 'country' or 'network', c[1], kf} end
        end
        -- Approval is per network: with no client address there is nothing to approve or to
        -- remember, and letting it through would bypass approval altogether. Fail closed.
        if net == '' and (m[3] or ARGV[14]) == '1' then return {'deny', 'noaddress', c[1], kf} end
        local fresh = '0'
        if net ~= '' then
          -- Recording success first and refusing afterwards would make the network known-good
          -- (the next attempt passes) and hide its first use from the owner.
          if not known and ARGV[17] == '1' then return {'check', c[1], '', kf} end
          local nets = c[6] or ''
          if not string.find(',' .. nets .. ',', ',' .. net .. ',', 1, true) then
            if (m[3] or ARGV[14]) == '1' and nets ~= '' then
              local pend = redis.call('HGET', ck, 'pend') or ''
              if string.find(',' .. pend .. ',', ',' .. net .. ',', 1, true) then return {'pending', c[1], '0', kf} end
              local _, pc = string.gsub(pend, ',', ',')
              if pend == '' then pend = net elseif pc + 1 < tonumber(ARGV[13]) then pend = pend .. ',' .. net end
              redis.call('HSET', ck, 'pend', pend)
              return {'pending', c[1], '1', kf}
            end
            fresh = '1'
            local _, count = string.gsub(nets, ',', ',')
            if nets == '' then nets = net elseif count + 1 < tonumber(ARGV[13]) then nets = nets .. ',' .. net end
            redis.call('HSET', ck, 'nets', nets)
          end
          -- Known-good mark refreshed at most once a minute: a client polling every few seconds
          -- would otherwise rewrite (and append to the AOF) the same hash on every login.
          if seen == nil or now - seen >= 60000 then
            redis.call('HSET', KEYS[7], net, ARGV[2])
            redis.call('PEXPIRE', KEYS[7], ARGV[11])
          end
          if ncur or nprev then redis.call('DEL', KEYS[3], KEYS[4]) end
        end
        if ck ~= KEYS[1] then
          redis.call('RENAME', ck, KEYS[1])
          redis.call('HSET', KEYS[1], 'h', ARGV[18])
          redis.call('HSET', KEYS[9], c[1], ARGV[18])
        end
        local lcl = ARGV[5]
        if lcl ~= '' then
          local sep = '\30'
          local cls = c[8] or ''
          if not string.find(sep .. cls .. sep, sep .. lcl .. sep, 1, true) then
            local _, n = string.gsub(cls, sep, sep)
            if cls == '' then redis.call('HSET', KEYS[1], 'cls', lcl) elseif n + 1 < 10 then redis.call('HSET', KEYS[1], 'cls', cls .. sep .. lcl) end
          end
        end
        -- The pepper id is written only when it changes (a moved credential, one from before pepper
        -- ids were stored): rewriting it on every login would grow the AOF for nothing.
        if c[10] == ARGV[19] then
          redis.call('HSET', KEYS[1], 'lu', ARGV[2], 'lip', ARGV[3], 'lpr', ARGV[4], 'lcl', lcl)
        else
          redis.call('HSET', KEYS[1], 'lu', ARGV[2], 'lip', ARGV[3], 'lpr', ARGV[4], 'lcl', lcl, 'pk', ARGV[19])
        end
        return {'allow', c[1], fresh, kf}
        """;

    // KEYS: failures of one source network in the current window. ARGV: window(ms).
    // Counts one failure; the key outlives its window so the next window can weigh it.
    // (Reading the sliding-window count is a plain MGET of this bucket and the previous one.)
    public const string NetworkFailure = """
        redis.call('INCR', KEYS[1])
        redis.call('PEXPIRE', KEYS[1], 2 * tonumber(ARGV[1]))
        return 1
        """;

    // KEYS: cred, ids, meta. ARGV: id, hash, owner, name, scopes, created(ms), exp(ms), max-per-user, approved networks, pepper id.
    // Refuses ('disabled') while the user is disabled: disabling revokes only what exists, so an
    // app password issued meanwhile (the CLI, a portal session in its last minute) would
    // otherwise start working when the user is enabled again. Checked here, atomically with the
    // write, not by the caller beforehand.
    public const string Issue = """
        if redis.call('HGET', KEYS[3], 'disabled') == '1' then return 'disabled' end
        if redis.call('HLEN', KEYS[2]) >= tonumber(ARGV[8]) then return 'limit' end
        if redis.call('EXISTS', KEYS[1]) == 1 then return 'exists' end
        redis.call('HSET', KEYS[1], 'id', ARGV[1], 'h', ARGV[2], 'owner', ARGV[3], 'name', ARGV[4], 'scopes', ARGV[5], 'created', ARGV[6], 'exp', ARGV[7], 'nets', ARGV[9], 'pk', ARGV[10])
        redis.call('PEXPIREAT', KEYS[1], ARGV[7])
        redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
        local ttl = redis.call('PTTL', KEYS[2])
        if ttl >= 0 and ttl < tonumber(ARGV[7]) - tonumber(ARGV[6]) then redis.call('PEXPIREAT', KEYS[2], ARGV[7]) end
        if ttl == -1 then redis.call('PEXPIREAT', KEYS[2], ARGV[7]) end
        return 'ok'
        """;

    // KEYS: cred, ids, meta. ARGV: id, new exp(ms), now(ms), lifetime(ms).
    // Refuses ('disabled') while the user is disabled, as Issue does.
    // Clears the expiry-reminder mark: the reminder was about the old expiry, and the new one
    // deserves its own.
    public const string Renew = """
        local c = redis.call('HMGET', KEYS[1], 'id', 'exp', 'rev', 'created')
        if c[1] ~= ARGV[1] then return 'missing' end
        local m = redis.call('HMGET', KEYS[3], 'nbf', 'disabled')
        if m[2] == '1' then return 'disabled' end
        local nbf = m[1]
        if c[3] or (nbf and tonumber(c[4]) < tonumber(nbf)) then return 'revoked' end
        if tonumber(c[2]) <= tonumber(ARGV[3]) then return 'expired' end
        redis.call('HSET', KEYS[1], 'exp', ARGV[2], 'life', ARGV[4])
        redis.call('HDEL', KEYS[1], 'warned')
        redis.call('PEXPIREAT', KEYS[1], ARGV[2])
        local ttl = redis.call('PTTL', KEYS[2])
        if ttl >= 0 and ttl < tonumber(ARGV[2]) - tonumber(ARGV[3]) then redis.call('PEXPIREAT', KEYS[2], ARGV[2]) end
        return 'ok'
        """;

    // KEYS: cred, meta. ARGV: id, network, most networks per credential.
    // Moves a network from the pending list to the approved list. Refuses ('disabled') while the
    // user is disabled, as Issue does: nothing that lets a login in may change for a disabled user.
    public const string Approve = """
        local c = redis.call('HMGET', KEYS[1], 'id', 'pend', 'nets', 'rev')
        if c[1] ~= ARGV[1] then return 'missing' end
        if redis.call('HGET', KEYS[2], 'disabled') == '1' then return 'disabled' end
        if c[4] then return 'missing' end
        local pend = ',' .. (c[2] or '') .. ','
        local needle = ',' .. ARGV[2] .. ','
        local from = string.find(pend, needle, 1, true)
        if not from then return 'notpending' end
        pend = string.sub(pend, 1, from) .. string.sub(pend, from + string.len(needle))
        redis.call('HSET', KEYS[1], 'pend', string.sub(pend, 2, -2))
        local nets = c[3] or ''
        local _, count = string.gsub(nets, ',', ',')
        if nets == '' then nets = ARGV[2] elseif count + 1 < tonumber(ARGV[3]) then nets = nets .. ',' .. ARGV[2] end
        redis.call('HSET', KEYS[1], 'nets', nets)
        return 'ok'
        """;

    // KEYS: cred. ARGV: id, field, value ('' = remove the field).
    // Checks the credential first: a plain HSET on one that expired meanwhile would create a
    // hash without a TTL, kept forever.
    public const string SetField = """
        if redis.call('HGET', KEYS[1], 'id') ~= ARGV[1] then return 'missing' end
        if ARGV[3] == '' then redis.call('HDEL', KEYS[1], ARGV[2]) else redis.call('HSET', KEYS[1], ARGV[2], ARGV[3]) end
        return 'ok'
        """;

    // KEYS: cred. ARGV: id, now(ms).
    // Marks the expiry reminder as sent; 1 when this call set the mark, 0 when it was set already
    // or the credential is gone (checked first, as in SetField).
    public const string MarkReminded = """
        if redis.call('HGET', KEYS[1], 'id') ~= ARGV[1] then return 0 end
        return redis.call('HSETNX', KEYS[1], 'warned', ARGV[2])
        """;

    // KEYS: ids. ARGV: pairs of id and the hash it was read with.
    // Removes index entries whose credential was found gone, unless the entry has changed since
    // it was read: a login may have re-keyed that credential under a new pepper meanwhile.
    public const string ForgetStale = """
        local n = 0
        for i = 1, #ARGV, 2 do
          if redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[i + 1] then n = n + redis.call('HDEL', KEYS[1], ARGV[i]) end
        end
        return n
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
