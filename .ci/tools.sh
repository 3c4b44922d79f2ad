#!/usr/bin/env bash
# Fetch the real servers the integration tests run against, cached outside the clone:
# Prometheus and promtool from Debian's package (unpacked, not installed as a service).
set -euo pipefail
CACHE="${SYNLEARNER_TOOLS:-$HOME/.cache/synlearner/tools}"
mkdir -p "$CACHE"
if [ ! -x "$CACHE/prometheus/usr/bin/prometheus" ]; then
  cd "$CACHE"
  apt-get download prometheus >/dev/null 2>&1 || { apt-get update -qq && apt-get download prometheus; }
  rm -rf prometheus && mkdir prometheus
  dpkg-deb -x prometheus_*.deb prometheus
  rm -f prometheus_*.deb
fi
"$CACHE/prometheus/usr/bin/promtool" --version | head -1
