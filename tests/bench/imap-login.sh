#!/usr/bin/env bash
# IMAP login latency: Dovecot passwd-file vs Dovecot + Broker (shipped Lua and oauth2 passdbs) and
# the same passdbs against a do-nothing service, same run, auth cache off; plus the auth step alone
# over Dovecot's auth socket. Once with Debian 12's Dovecot 2.3 (this machine's) and once with
# Debian 13's 2.4 (chroot into the root tests/build-dovecot24-root.sh builds). Starts its own
# redis-server, Broker and Dovecots on loopback (as root, like the tests), and rewrites the generated
# parts of docs/benchmarks.md's "Mail-server integration" section. Usage: tests/bench/imap-login.sh [--logins N]
set -euo pipefail
cd "$(dirname "$0")/../.."
export BROKER_DOVECOT24_ROOT="${BROKER_DOVECOT24_ROOT:-/var/cache/broker-tests/trixie-dovecot}"
tests/build-dovecot24-root.sh "$BROKER_DOVECOT24_ROOT"
dotnet build tests/Broker.MailServers.Bench -c Release -warnaserror -v q -nologo
bench=tests/Broker.MailServers.Bench/bin/Release/net10.0/Broker.MailServers.Bench.dll
dotnet "$bench" --dovecot 2.3 --write docs/benchmarks.md "$@"
dotnet "$bench" --dovecot 2.4 --write docs/benchmarks.md "$@"
