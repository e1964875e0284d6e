#!/usr/bin/env bash
# Installs the Debian packages Slate's build, tests and demo need. Idempotent and quick when
# everything is present: apt is only touched for what is missing.
set -euo pipefail
missing=()
for p in "$@"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "make deps: missing packages: ${missing[*]} — run as root (or: sudo apt-get install ${missing[*]})" >&2
  exit 1
fi
echo "make deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# A fresh machine has no package lists; an old list may lack a package: update once, then install.
if ! apt-get install -y --no-install-recommends "${missing[@]}" >/tmp/slate-apt.log 2>&1; then
  apt-get update >/dev/null
  apt-get install -y --no-install-recommends "${missing[@]}"
fi
