#!/usr/bin/env bash
# The whole test suite: installs what the tests need (real redis-server, Dovecot, Postfix,
# nginx, PostgreSQL, Chromium, a Debian 13 root with Dovecot 2.4) when missing, then runs every
# test project. Used by README and .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }
have redis-server || need+=(redis-server)
have dovecot || need+=(dovecot-core)
[ -e /usr/lib/dovecot/imap ] || need+=(dovecot-imapd)
[ -e /usr/lib/dovecot/pop3 ] || need+=(dovecot-pop3d)
[ -e /usr/lib/dovecot/modules/auth/libauthdb_lua.so ] || need+=(dovecot-auth-lua)
[ -e /usr/lib/dovecot/submission ] || need+=(dovecot-submissiond)
[ -e /usr/lib/dovecot/lmtp ] || need+=(dovecot-lmtpd)
[ -e /usr/share/lua/5.3/cjson ] || [ -e /usr/lib/x86_64-linux-gnu/lua/5.3/cjson.so ] || need+=(lua-cjson)
have postfix || need+=(postfix)
have nginx || need+=(nginx-light)
[ -e /usr/lib/nginx/modules/ngx_mail_module.so ] || need+=(libnginx-mod-mail)
have chromium || need+=(chromium)
have openssl || need+=(openssl)   # throwaway TLS certificate for the Postfix submission tests
have systemd-analyze || need+=(systemd)   # offline checks of the unit files in infra/systemd (systemd need not run)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || need+=(postgresql)   # private clusters for the portal's PostgreSQL tests

if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  # Packages must not start their system services (ports 25, 80, 143 on every interface):
  # the tests start their own instances on loopback.
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# Dovecot 2.4 (Debian 13), which Debian 12 does not ship: a trixie root that the mail-server tests
# run with chroot, built once (about 30 s) in a cache outside the repository and rebuilt only when
# incomplete. The tests fail, never skip, when it is missing.
export BROKER_DOVECOT24_ROOT="${BROKER_DOVECOT24_ROOT:-/var/cache/broker-tests/trixie-dovecot}"
tests/build-dovecot24-root.sh "$BROKER_DOVECOT24_ROOT"

dotnet build Broker.sln -c Release
dotnet test Broker.sln -c Release --no-build --logger "console;verbosity=normal" --results-directory artifacts/test-results "$@"
