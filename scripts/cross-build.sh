#!/usr/bin/env bash
# Cross builds for the ARM edge boxes with cross 0.2.5 (docker or podman).
#
#   scripts/cross-build.sh                              # both targets
#   scripts/cross-build.sh aarch64-unknown-linux-gnu    # one target
#   scripts/cross-build.sh armv7-unknown-linux-gnueabihf -- --features x
#   scripts/cross-build.sh --check                      # check the tools, build nothing
#
# Runs `cross +TOOLCHAIN build --release --locked --target TARGET` for each
# target, with the workspace's `cross.toml`. Three things stand between a bare
# `cross build` and a correct one, and this script handles them:
#
# 1. cross 0.2.5 reads only `Cross.toml` or the file named by $CROSS_CONFIG
#    (src/lib.rs, fn toml). The product's layout names the file `cross.toml`,
#    so we set CROSS_CONFIG to its absolute path. cross silently ignores a
#    CROSS_CONFIG that does not exist, so we check the file first.
# 2. cross 0.2.5 only warns about keys it does not know ("found unused key(s)
#    in Cross configuration") and builds without them; we fail on that
#    warning. tests/cross_config.rs checks the file against cross 0.2.5's
#    schema with unknown keys denied, so a misspelt key fails `cargo test`
#    before anyone runs this.
# 3. cross 0.2.5 decides whether the toolchain is installed by parsing
#    `rustup toolchain list` and stripping only " (default)" and
#    " (override)" (src/rustup.rs, fn installed_toolchains). rustup 1.28 and
#    later print "(active, default)", so cross thinks the default toolchain
#    is missing and runs `rustup toolchain add` on it, which updates the
#    machine's toolchain. We pass an explicit `+TOOLCHAIN` and refuse to run
#    unless cross's own parsing would find that toolchain installed.
#
# Environment: EDGECC_CROSS_TOOLCHAIN (default: the version of the `rustc` on
# PATH, e.g. 1.95.0; it must be installed as such:
# `rustup toolchain install 1.95.0 --profile minimal`).
set -euo pipefail

# The cross release this script, cross.toml's image tags and the schema in
# tests/cross_config.rs were checked against. Change all three together.
CROSS_VERSION="0.2.5"
TARGETS_DEFAULT=(aarch64-unknown-linux-gnu armv7-unknown-linux-gnueabihf)

die() {
    echo "cross-build: $*" >&2
    exit 1
}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CONFIG="$ROOT/cross.toml"

check_only=false
targets=()
cargo_args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --check) check_only=true ;;
        --) shift; cargo_args=("$@"); break ;;
        -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
        -*) die "unknown option $1 (targets first, then -- and cargo's arguments)" ;;
        *) targets+=("$1") ;;
    esac
    shift
done
[ ${#targets[@]} -gt 0 ] || targets=("${TARGETS_DEFAULT[@]}")

[ -f "$CONFIG" ] || die "$CONFIG is missing (cross would silently build with its defaults)"
export CROSS_CONFIG="$CONFIG"

command -v rustup >/dev/null || die "rustup not found: cross needs it"
command -v rustc >/dev/null || die "rustc not found"
toolchain=${EDGECC_CROSS_TOOLCHAIN:-$(rustc --version | awk '{print $2}')}
host=$(rustc -vV | sed -n 's/^host: //p')
[ -n "$toolchain" ] && [ -n "$host" ] || die "cannot tell the toolchain or the host from rustc"
full="$toolchain-$host"

# Exactly what cross 0.2.5 does with `rustup toolchain list` (see 3. above).
if ! rustup toolchain list | sed -e 's/ (default)//' -e 's/ (override)//' -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//' \
        | grep -qxF "$full"; then
    die "cross $CROSS_VERSION would not see toolchain $full as installed and would run 'rustup toolchain add' on it (updating this machine's toolchain). Install it under that exact name first ('rustup toolchain install $toolchain --profile minimal') or set EDGECC_CROSS_TOOLCHAIN to one that 'rustup toolchain list' prints without '(active...)'."
fi

command -v cross >/dev/null || die "cross not found; install cross $CROSS_VERSION: cargo install cross --locked --version $CROSS_VERSION"
# A cargo-installed cross tells its version without being run.
listed=$(cargo install --list 2>/dev/null | sed -n 's/^cross v\([^ :]*\).*/\1/p' | head -n1 || true)
if [ -n "$listed" ] && [ "$listed" != "$CROSS_VERSION" ]; then
    die "cross $listed is installed; this script is checked against cross $CROSS_VERSION only"
fi
# Even `cross --version` runs cross's toolchain logic, so it gets +TOOLCHAIN too.
version_out=$(cross "+$toolchain" --version 2>&1) || die "'cross +$toolchain --version' failed: $version_out"
first=$(printf '%s\n' "$version_out" | head -n1)
case "$first" in
    "cross $CROSS_VERSION"|"cross $CROSS_VERSION "*) ;;
    *) die "expected 'cross $CROSS_VERSION', got '$first'" ;;
esac
if printf '%s\n' "$version_out" | grep -q "unused key"; then
    die "cross does not understand a key of $CONFIG: $version_out"
fi
echo "cross-build: $first, toolchain $full, CROSS_CONFIG=$CROSS_CONFIG"
$check_only && exit 0

cd "$ROOT"
for target in "${targets[@]}"; do
    log=$(mktemp)
    echo "cross-build: cross +$toolchain build --release --locked --target $target ${cargo_args[*]}"
    status=0
    # stderr goes to the terminal and to $log (stdout stays stdout); with
    # pipefail the group fails with cross's status.
    { cross "+$toolchain" build --release --locked --target "$target" "${cargo_args[@]}" 2>&1 1>&3 3>&- \
        | tee "$log" >&2; } 3>&1 || status=$?
    if grep -q "unused key" "$log"; then
        rm -f "$log"
        die "cross ignored a key of $CONFIG (see above)"
    fi
    rm -f "$log"
    [ "$status" -eq 0 ] || die "build for $target failed ($status)"
    echo "cross-build: built target/$target/release/edgecc"
done
