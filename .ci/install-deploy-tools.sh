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

bash "$(dirname "$0")/apt-install.sh" install-deploy-tools "${missing_apt[@]}"

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
