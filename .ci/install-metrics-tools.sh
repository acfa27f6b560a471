#!/usr/bin/env bash
# Installs what tests/queue_metrics.rs needs and cargo does not bring:
# `promtool` (Debian package `prometheus`), which checks that `/metrics`
# is clean Prometheus text. Idempotent and quiet: does nothing when it is
# present.
set -euo pipefail

have() { command -v "$1" >/dev/null 2>&1; }

# Debian package `prometheus` carries promtool.
have promtool || bash "$(dirname "$0")/apt-install.sh" install-metrics-tools prometheus

if ! have promtool; then
    echo "install-metrics-tools: promtool still missing after install." >&2
    exit 1
fi
