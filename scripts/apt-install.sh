#!/usr/bin/env bash
# Installs those of the given Debian/Ubuntu packages that are not installed yet (dpkg -s),
# with sudo when not root; does nothing when all are there. Used by install-deps.sh and by the
# test scripts for what only one path needs (python3-venv, a Java runtime).
#
#   bash scripts/apt-install.sh PACKAGE...
set -euo pipefail

missing=()
for p in "$@"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
[ ${#missing[@]} -gt 0 ] || exit 0
if ! command -v apt-get >/dev/null 2>&1; then
  echo "apt-install: missing ${missing[*]}, and no apt-get here to install them; install them by hand" >&2
  exit 1
fi
echo "apt-install: installing ${missing[*]}" >&2
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
