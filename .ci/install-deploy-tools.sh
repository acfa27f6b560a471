#!/usr/bin/env bash
# Installs what tests/systemd_unit.rs and tests/deb_package.rs need and
# cargo does not bring: `systemd-analyze` (Debian package `systemd`),
# `dpkg-deb` (package `dpkg`, present on every Debian) and cargo-deb,
# pinned. Idempotent and quiet: does nothing when all are present.
set -euo pipefail

# cargo-deb: the packaging tool the README's `cargo deb` runs; pinned so
# the package layout does not change under us.
CARGO_DEB_VERSION=3.8.0

have() { command -v "$1" >/dev/null 2>&1; }

missing_apt=()
have systemd-analyze || missing_apt+=(systemd)
have dpkg-deb || missing_apt+=(dpkg)

if [ "${#missing_apt[@]}" -gt 0 ]; then
    if [ "$(id -u)" -eq 0 ]; then
        SUDO=""
    elif have sudo && sudo -n true 2>/dev/null; then
        SUDO="sudo -n"
    else
        echo "install-deploy-tools: ${missing_apt[*]} missing and not root (no passwordless sudo)." >&2
        echo "install-deploy-tools: run as root: apt-get install ${missing_apt[*]}" >&2
        exit 1
    fi
    if ! have apt-get; then
        echo "install-deploy-tools: apt-get not found; install ${missing_apt[*]} by hand." >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    if ! $SUDO apt-get update -qq >/dev/null; then
        echo "install-deploy-tools: apt-get update failed." >&2
        exit 1
    fi
    # --no-install-recommends: the tool, not a running init system.
    if ! $SUDO apt-get install -y -qq --no-install-recommends "${missing_apt[@]}" >/dev/null; then
        echo "install-deploy-tools: apt-get install ${missing_apt[*]} failed." >&2
        exit 1
    fi
    echo "install-deploy-tools: installed ${missing_apt[*]}."
fi

if ! cargo deb --version 2>/dev/null | grep -qx "cargo-deb ${CARGO_DEB_VERSION}"; then
    # About two minutes on two cores, once per machine.
    if ! cargo install --locked cargo-deb --version "${CARGO_DEB_VERSION}" --quiet; then
        echo "install-deploy-tools: cargo install cargo-deb ${CARGO_DEB_VERSION} failed." >&2
        exit 1
    fi
    echo "install-deploy-tools: installed cargo-deb ${CARGO_DEB_VERSION}."
fi

for tool in systemd-analyze dpkg-deb; do
    if ! have "$tool"; then
        echo "install-deploy-tools: $tool still missing after install." >&2
        exit 1
    fi
done
