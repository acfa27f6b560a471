#!/usr/bin/env bash
# Installs Debian packages for the .ci/install-*.sh scripts, the one place
# that knows how: as root, or through passwordless sudo, with apt-get
# (update, then install without recommends, quietly). Fails loudly, naming
# the caller and the packages, when it cannot or when apt-get fails.
#
#   bash .ci/apt-install.sh [--no-daemons] CALLER PACKAGE...
#
# CALLER prefixes every message (e.g. `install-ha`). --no-daemons puts a
# policy-rc.d that answers 101 in place for the install (unless one is
# already there), so the packages' postinst scripts start no services.
# The callers check for their tools first and call this only for what is
# missing; run with no package it does nothing.
set -euo pipefail

no_daemons=0
if [ "${1:-}" = "--no-daemons" ]; then
    no_daemons=1
    shift
fi
if [ "$#" -lt 1 ]; then
    echo "usage: apt-install.sh [--no-daemons] CALLER PACKAGE..." >&2
    exit 2
fi
caller=$1
shift
[ "$#" -gt 0 ] || exit 0
packages=("$@")

have() { command -v "$1" >/dev/null 2>&1; }

if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif have sudo && sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
else
    echo "$caller: ${packages[*]} missing and not root (no passwordless sudo)." >&2
    echo "$caller: run as root: apt-get install ${packages[*]}" >&2
    exit 1
fi
if ! have apt-get; then
    echo "$caller: apt-get not found; install ${packages[*]} by hand." >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
if ! $SUDO apt-get update -qq >/dev/null; then
    echo "$caller: apt-get update failed." >&2
    exit 1
fi

policy=/usr/sbin/policy-rc.d
created_policy=0
if [ "$no_daemons" -eq 1 ] && [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
    $SUDO chmod +x "$policy"
    created_policy=1
fi
# --no-install-recommends: the tools the tests call, not what a full
# installation would pull in (a running init system, hardware drivers).
rc=0
$SUDO apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null || rc=$?
if [ "$created_policy" -eq 1 ]; then
    $SUDO rm -f "$policy"
fi
if [ "$rc" -ne 0 ]; then
    echo "$caller: apt-get install ${packages[*]} failed." >&2
    exit 1
fi
echo "$caller: installed ${packages[*]}."
