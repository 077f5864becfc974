-- Broker passdb for Dovecot 2.3 and 2.4 (the same file: infra/dovecot/conf.d/90-broker.conf for 2.3,
-- infra/dovecot-2.4/conf.d/90-broker.conf for 2.4).
--
-- Sends every plaintext login (user, app password and the full context) to Broker's validation
-- API through the gateway and maps the answer:
--   allow (200)            -> PASSDB_RESULT_OK, logged in as Broker's canonical username
--   deny  (403 with the body {"result":"deny"})
--                          -> PASSDB_RESULT_PASSWORD_MISMATCH (client: "Authentication failed")
--   anything else          -> PASSDB_RESULT_INTERNAL_FAILURE (client: "[UNAVAILABLE] Temporary
--                             authentication failure"), so mail clients retry later instead of
--                             asking the user for a new password: unreachable, timeout (9008),
--                             refused or untrusted TLS (9003), 5xx, unexpected replies, 401 (Broker
--                             does not know BROKER_API_KEY, e.g. the placeholder was left in), and a
--                             403 without Broker's deny body (the gateway refusing this mail server's
--                             address: a configuration error, not a wrong password).
--
-- Install: copy to /etc/dovecot/broker.lua, owner root:dovecot, mode 0640 (it holds the API key; Dovecot's
-- auth processes run as user dovecot and must read it: a root-only file stops the auth service),
-- edit the three settings below, enable the 90-broker.conf for your Dovecot version. Needs
-- dovecot-auth-lua and lua-cjson.

-- ---- settings -------------------------------------------------------------------------------
-- Broker gateway URL. Use https:// in production; Dovecot checks the certificate against
-- ssl_client_ca_file (see docs/dovecot.md).
local BROKER_URL = "http://127.0.0.1:5080/v1/validate"
-- This mail server's caller key (`broker apikey create dovecot-1`).
local BROKER_API_KEY = "CHANGE-ME-broker-caller-key"
-- Absolute time limit of one check, in milliseconds. Dovecot's own login timeout is longer;
-- past this the login is a temporary failure, never a success.
local TIMEOUT_MSECS = 2500
-- ---------------------------------------------------------------------------------------------

local json = require("cjson")
local http_client = nil

-- Dovecot 2.3 takes these keys with *_msecs numbers and silently ignores unknown keys (a plain
-- "timeout" does nothing: a hung Broker then holds the login for Dovecot's 60 s default). With one
-- attempt, request_timeout_msecs bounds the whole wait; connect_timeout defaults to it.
local HTTP_CLIENT_23 = {
  request_timeout_msecs = TIMEOUT_MSECS,
  request_absolute_timeout_msecs = TIMEOUT_MSECS,
  -- One attempt: a retry would double the time a login can hang, and Broker is load-balanced anyway.
  max_attempts = 1,
  -- The connection to Broker is kept between logins. The default (0) keeps it idle forever; 30 s
  -- is shorter than the gateway's keep-alive timeout (Kestrel: 130 s), so Dovecot, not the
  -- server, closes an idle connection and never sends a login down one the server just closed.
  max_idle_time_msecs = 30000,
  user_agent = "dovecot-broker-passdb/1",
}
-- Dovecot 2.4 maps each key to its http_client_<key> setting (values with units) and refuses
-- unknown keys, so the 2.3 table fails there and this one is used. The other order would not
-- work: 2.3 would accept this table and ignore every timeout in it.
local HTTP_CLIENT_24 = {
  request_timeout = TIMEOUT_MSECS .. "ms",
  request_absolute_timeout = TIMEOUT_MSECS .. "ms",
  request_max_attempts = "1",
  max_idle_time = "30s",
  user_agent = "dovecot-broker-passdb/1",
}

function script_init()
  local ok, client = pcall(dovecot.http.client, HTTP_CLIENT_23)
  if not ok then
    client = dovecot.http.client(HTTP_CLIENT_24)
  end
  http_client = client
  return 0
end

function script_deinit()
end

-- A context value, or nil when Dovecot has none (e.g. Postfix SASL lookups carry no session).
local function ctx(req, name)
  local v = req:var_expand("%{" .. name .. "}")
  if v == nil or v == "" then
    return nil
  end
  return v
end

local function port(req, name)
  local v = tonumber(req:var_expand("%{" .. name .. "}"))
  if v == nil or v <= 0 then
    return nil
  end
  return v
end

-- True when s is valid UTF-8 without surrogates: what Broker's JSON parser accepts. lua-cjson copies
-- other bytes into the JSON unchanged, and Broker answers such a body with 400.
local function is_utf8(s)
  if utf8.len(s) == nil then
    return false
  end
  -- Lua 5.4's utf8.len already refuses surrogates (U+D800..U+DFFF); Lua 5.3's accepts them.
  for _, c in utf8.codes(s) do
    if c >= 0xD800 and c <= 0xDFFF then
      return false
    end
  end
  return true
end

function auth_password_verify(req, pass)
  -- Broker would deny these too; answering here spares a round trip and keeps absurd input off the wire.
  if pass == nil or pass == "" or #pass > 512 or req.user == nil or #req.user > 512 then
    return dovecot.auth.PASSDB_RESULT_PASSWORD_MISMATCH, "broker: empty or oversized credentials"
  end
  -- A password typed in Latin-1 (or any non-UTF-8 name or password) can never match: app passwords
  -- and usernames are UTF-8. Sent on, Broker would answer 400, a temporary failure here, and the
  -- client would retry the same bytes forever without the user being asked again.
  if not is_utf8(pass) or not is_utf8(req.user) then
    return dovecot.auth.PASSDB_RESULT_PASSWORD_MISMATCH, "broker: credentials are not UTF-8"
  end

  -- The variable names below are the ones Dovecot 2.3 and 2.4 both know (2.4 dropped rip, lip,
  -- mech, …, and fails the request on an unknown name). Only the service has no common name:
  -- 2.3's "service" is 2.4's "protocol"; the request object carries whichever this version has.
  local service = req.protocol or req.service
  if service == "" then
    service = nil
  end
  local body = json.encode({
    username = req.user,
    password = pass,
    service = service,
    remoteIp = ctx(req, "remote_ip"),
    remotePort = port(req, "remote_port"),
    localIp = ctx(req, "local_ip"),
    localPort = port(req, "local_port"),
    session = ctx(req, "session"),
    secured = ctx(req, "secured"),
    mech = ctx(req, "mechanism"),
    -- Raw IMAP ID list; needs imap_id_retain = yes.
    clientId = ctx(req, "client_id"),
  })

  local hreq = http_client:request({ url = BROKER_URL, method = "POST" })
  hreq:add_header("Content-Type", "application/json")
  hreq:add_header("X-Broker-Api-Key", BROKER_API_KEY)
  hreq:set_payload(body)
  local resp = hreq:submit()
  local status = resp:status()

  if status == 200 then
    local ok, reply = pcall(json.decode, resp:payload())
    if ok and type(reply) == "table" and reply.result == "allow" and type(reply.username) == "string" and reply.username ~= "" then
      -- Log in as Broker's canonical name, so doveadm kick on revocation finds the session.
      return dovecot.auth.PASSDB_RESULT_OK, { user = reply.username }
    end
    return dovecot.auth.PASSDB_RESULT_INTERNAL_FAILURE, "broker: unexpected reply to an allow"
  elseif status == 403 then
    -- Only Broker's own deny is a wrong password. The gateway also answers 403 (a ProblemDetails
    -- body) when this server's address is not in Broker:Gateway:AllowedNetworks; calling that a
    -- wrong password would tell every user "Authentication failed" until someone notices.
    local ok, reply = pcall(json.decode, resp:payload())
    if ok and type(reply) == "table" and reply.result == "deny" then
      return dovecot.auth.PASSDB_RESULT_PASSWORD_MISMATCH, "broker: denied"
    end
    return dovecot.auth.PASSDB_RESULT_INTERNAL_FAILURE, "broker: HTTP 403 without Broker's deny (is this server in Broker:Gateway:AllowedNetworks?)"
  elseif status == 401 then
    -- Broker does not know BROKER_API_KEY (still the CHANGE-ME placeholder, or a deleted key): a
    -- configuration error, so no one logs in and no one is told the password is wrong.
    return dovecot.auth.PASSDB_RESULT_INTERNAL_FAILURE, "broker: HTTP 401, Broker refused BROKER_API_KEY (still the placeholder?)"
  end
  -- 9003 = connect/TLS failure, 9008 = timeout, 5xx = Broker could not decide: never a success.
  return dovecot.auth.PASSDB_RESULT_INTERNAL_FAILURE, "broker: HTTP status " .. tostring(status)
end
