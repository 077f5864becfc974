#!/usr/bin/env bash
# Builds the Debian 13 (trixie) root whose Dovecot 2.4 the mail-server tests run with chroot
# (this machine's own Dovecot is Debian 12's 2.3). Usage: tests/build-dovecot24-root.sh [DIR]
# DIR defaults to /var/cache/broker-tests/trixie-dovecot, outside the repository so that it
# survives clean checkouts. A root without the completion marker (an interrupted build) is
# removed and built again; a complete one is left alone. Needs root, mmdebstrap (installed
# with apt-get when missing) and deb.debian.org. Takes about 30 s and 180 MB.
set -euo pipefail
dir="${1:-/var/cache/broker-tests/trixie-dovecot}"
case "$dir" in /?*) ;; *) echo "usage: $0 [ABSOLUTE-DIR]" >&2; exit 2 ;; esac
marker="$dir/.broker-complete"
# The packages the tests use: IMAP, the Lua passdb with lua-cjson for broker.lua. Only Dovecot
# and its dependencies, so the build stays fast (variant "essential": no apt inside the root).
packages=dovecot-imapd,dovecot-auth-lua,lua-cjson

if [ -e "$marker" ] && [ -x "$dir/usr/sbin/dovecot" ]; then
  exit 0
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
chroot "$dir.tmp" dovecot --version > "$dir.tmp/.broker-complete"
mv "$dir.tmp" "$dir"
echo "Dovecot $(cat "$marker") in $dir"
