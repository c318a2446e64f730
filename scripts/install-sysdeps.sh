#!/usr/bin/env bash
# Installs the Debian packages `make test` needs (pcsc.md §Install). Runs apt only as root and
# only when something is missing; otherwise says what to install and carries on.
set -euo pipefail
pkgs=(pcscd libpcsclite-dev vsmartcard-vpcd pcsc-tools opensc socat)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  echo "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
else
  echo "warning: missing Debian packages (${missing[*]}); run as root or: sudo apt-get install ${pkgs[*]}" >&2
fi
