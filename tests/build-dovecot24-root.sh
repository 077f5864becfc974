#!/usr/bin/env bash
# Builds the Debian 13 (trixie) root whose Dovecot 2.4 the mail-server tests run with chroot
# (this machine's own Dovecot is Debian 12's 2.3). Usage: tests/build-dovecot24-root.sh [DIR]
# DIR defaults to /var/cache/broker-tests/trixie-dovecot, outside the repository so that it
# survives clean checkouts. A root without the completion marker (an interrupted build), or whose
# marker names another package list (built before the tests needed more), is removed and built
# again; a complete, current one is left alone. Needs root, mmdebstrap (installed with apt-get
# when missing) and deb.debian.org. Takes about 30 s and 200 MB.
set -euo pipefail
dir="${1:-/var/cache/broker-tests/trixie-dovecot}"
case "$dir" in /?*) ;; *) echo "usage: $0 [ABSOLUTE-DIR]" >&2; exit 2 ;; esac
marker="$dir/.broker-complete"
# The packages the tests use: IMAP, POP3, Dovecot's submission service, LMTP (the test relay
# delivers submitted mail back over it), the Lua passdb with lua-cjson for broker.lua. Only Dovecot
# and its dependencies, so the build stays fast (variant "essential": no apt inside the root).
# The marker's first line holds this list: change it and every existing root is rebuilt.
packages=dovecot-imapd,dovecot-pop3d,dovecot-submissiond,dovecot-lmtpd,dovecot-auth-lua,lua-cjson

if [ -x "$dir/usr/sbin/dovecot" ] && [ "$(head -n 1 "$marker" 2>/dev/null)" = "packages=$packages" ]; then
  exit 0
fi
if [ -e "$marker" ]; then
  echo "the Dovecot 2.4 root in $dir was built for another package list: rebuilding it"
fi
if ! command -v mmdebstrap >/dev/null 2>&1; then
  echo "installing: mmdebstrap"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends mmdebstrap >/dev/null
fi
echo "building the Dovecot 2.4 root in $dir"
rm -rf "$dir" "$dir.tmp"
mkdir -p "$(dirname "$dir")"
mmdebstrap --quiet --variant=essential --include="$packages" trixie "$dir.tmp" http://deb.debian.org/debian
# Written last and moved into place whole: a root that has the marker is complete.
{ echo "packages=$packages"; chroot "$dir.tmp" dovecot --version; } > "$dir.tmp/.broker-complete"
mv "$dir.tmp" "$dir"
echo "Dovecot $(tail -n 1 "$marker") in $dir"
