#!/usr/bin/env bash
# Fetch the real servers the integration tests run against, cached outside the clone:
# Prometheus and promtool from Debian's package (unpacked, not installed as a service).
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
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

# Apache Kafka's broker from Maven Central (single-node KRaft in the tests), with Java 17.
KAFKA="$CACHE/kafka-3.9.1"
if [ ! -f "$KAFKA/lib/kafka_2.13-3.9.1.jar" ]; then
  rm -rf "$KAFKA" && mkdir -p "$KAFKA"
  mvn -B -q -f "$REPO/tests/kafka_broker/pom.xml" \
    org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies \
    -DoutputDirectory="$KAFKA/lib" -DincludeScope=runtime
fi
echo "kafka broker jars: $(ls "$KAFKA/lib" | wc -l) in $KAFKA/lib"
