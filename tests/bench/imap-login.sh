#!/usr/bin/env bash
# IMAP login latency: Dovecot passwd-file vs Dovecot + Broker (shipped Lua and oauth2 passdbs) and
# the same passdbs against a do-nothing service, same run, auth cache off; plus the auth step alone
# over Dovecot's auth socket. Starts its own redis-server, Broker and Dovecots on loopback (as root,
# like the tests), and rewrites the generated part of docs/benchmarks.md's "Mail-server integration"
# section. Usage: tests/bench/imap-login.sh [--logins N]
set -euo pipefail
cd "$(dirname "$0")/../.."
dotnet build tests/Broker.MailServers.Bench -c Release -warnaserror -v q -nologo
dotnet tests/Broker.MailServers.Bench/bin/Release/net10.0/Broker.MailServers.Bench.dll --write docs/benchmarks.md "$@"
