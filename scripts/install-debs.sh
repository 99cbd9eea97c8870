#!/usr/bin/env bash
# Install the Debian packages gameday runs against (Prometheus, Pushgateway, redis-server and
# PostgreSQL; nginx, HAProxy and wrk for the proxy benchmarks). A policy-rc.d stops package
# scripts from starting daemons on fixed ports: gameday starts its own, on ports it picks.
set -euo pipefail
packages=("$@")
[ ${#packages[@]} -gt 0 ] || packages=(prometheus prometheus-pushgateway)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then sudo=sudo; else sudo=; fi
policy=/usr/sbin/policy-rc.d
created=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
  $sudo chmod +x "$policy"
  created=1
fi
trap '[ $created -eq 1 ] && $sudo rm -f "$policy"' EXIT
echo "installing: ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
