#!/usr/bin/env bash
# Installs what tests/queue_metrics.rs needs and cargo does not bring:
# `promtool` (Debian package `prometheus`), which checks that `/metrics`
# is clean Prometheus text. Idempotent and quiet: does nothing when it is
# present.
set -euo pipefail

have() { command -v "$1" >/dev/null 2>&1; }

if ! have promtool; then
    if [ "$(id -u)" -eq 0 ]; then
        SUDO=""
    elif have sudo && sudo -n true 2>/dev/null; then
        SUDO="sudo -n"
    else
        echo "install-metrics-tools: promtool missing and not root (no passwordless sudo)." >&2
        echo "install-metrics-tools: run as root: apt-get install prometheus" >&2
        exit 1
    fi
    if ! have apt-get; then
        echo "install-metrics-tools: apt-get not found; install promtool by hand." >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    if ! $SUDO apt-get update -qq >/dev/null; then
        echo "install-metrics-tools: apt-get update failed." >&2
        exit 1
    fi
    # --no-install-recommends: the tool, not a Prometheus server's extras.
    if ! $SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null; then
        echo "install-metrics-tools: apt-get install prometheus failed." >&2
        exit 1
    fi
    echo "install-metrics-tools: installed prometheus (promtool)."
fi

if ! have promtool; then
    echo "install-metrics-tools: promtool still missing after install." >&2
    exit 1
fi
