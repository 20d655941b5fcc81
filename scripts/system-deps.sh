#!/usr/bin/env bash
# Debian packages the test suite uses when present: debootstrap (offline docker
# images), prometheus + promtool and prometheus-alertmanager (observability),
# chromium (renders the load report headlessly). Installed only when run as
# root on a Debian-like machine; elsewhere it prints what is missing and the
# tests that need it skip with that reason. Packaged daemons are not started.
set -euo pipefail
PACKAGES=(debootstrap chromium prometheus prometheus-alertmanager)
missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
  echo "system-deps: not installing ${missing[*]} (needs root and apt-get); tests that need them will skip" >&2
  exit 0
fi
echo "system-deps: installing ${missing[*]}" >&2
# Keep package post-install scripts from starting daemons (prometheus would take :9090).
policy=/usr/sbin/policy-rc.d
had_policy=0; [ -e "$policy" ] && had_policy=1
[ $had_policy -eq 1 ] || { printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod +x "$policy"; }
trap '[ $had_policy -eq 1 ] || rm -f "$policy"' EXIT
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
