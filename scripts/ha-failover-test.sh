#!/usr/bin/env bash
# The failover test (.ci/run calls it): box death of the active node of a
# real Corosync + Pacemaker pair (scripts/ha-lab.sh, loaded with
# deploy/ha/edgecc.crm), then checks, on the evidence the lab records:
#   - the survivor fenced the dead node (the test-only fence agent ran,
#     by the survivor, successfully) BEFORE edgecc started on it;
#   - edgecc started on the survivor from the shared data directory (the
#     cluster's mount was there at start, and the start note written into
#     the data directory by each start is in the one backing store, after
#     the first node's);
#   - it answers /readyz on the VIP, from the LAN side, with
#     "ha_role":"active", and the VIP is on the survivor only.
# It prints the time from the death to each step. Before the death,
# edgecc is killed once on the active: Pacemaker restarts it there (no
# fencing, no move); then a planned switchover (`crm resource move`, then
# `clear`) moves it to the other node, where it stays (no fail-back), and
# that node is the one that dies. Then, in a fresh lab, a
# partition with both boxes alive (the cluster link cut, both still on the
# LAN): exactly one side is fenced, the one without edgecc (the
# priority-fencing-delay at work), edgecc never starts on the other side,
# and the VIP (looked at every 0.1 s on both nodes) is never on both.
# edgecc runs with the simulated PBX (pbx.kind = "sim", the packaged
# example configuration): there is no stand-alone ARI emulator process to
# point it at.
#
#   ha-failover-test.sh [DELAY]
# DELAY overrides priority-fencing-delay (e.g. 0s); default: as shipped.
# HA_SCENARIOS picks the scenarios (default "death partition"); the
# partition's checks hold only with a priority-fencing-delay (without
# one, both sides may fence each other: run it with 0s to see that).
# Bounded: every wait has a limit; the whole run takes about two minutes.
# Needs root. Under CI=true a missing tool or privilege is a failure;
# otherwise the test says why it skips.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
LABSH="$ROOT/scripts/ha-lab.sh"
VIP=10.77.0.100
DELAY="${1:-}"
WAIT_READY=120   # cluster start to edgecc ready, s
WAIT_FAILOVER=90 # death to ready on the survivor, s

say() { echo "ha-failover-test: $*" >&2; }
now_ms() { date +%s%3N; }

LAB=""
cleanup() {
    if [ -n "$LAB" ]; then
        bash "$LABSH" down "$LAB" || say "cleanup of $LAB failed"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

dump() {
    [ -n "$LAB" ] && [ -d "$LAB" ] || return 0
    say "events:"; cat "$LAB/events.log" >&2 || true
    local node
    for node in n1 n2; do
        if [ -s "$LAB/$node/holder.pid" ] && kill -0 "$(cat "$LAB/$node/holder.pid")" 2>/dev/null; then
            say "crm_mon on $node:"
            bash "$LABSH" run "$LAB" "$node" crm_mon -1 >&2 2>&1 || true
        fi
        tail -n 8 "$LAB/$node/log-pacemaker/pacemaker.log" >&2 2>/dev/null || true
    done
    say "edgecc log:"; tail -n 20 "$LAB/edgecc.log" >&2 2>/dev/null || true
}
fail() { say "FAIL: $*"; dump; exit 1; }

missing() {
    if [ "${CI:-}" = "true" ]; then
        fail "$* (CI=true: run .ci/install-ha.sh as root)"
    fi
    say "SKIP: $* (run .ci/install-ha.sh as root; under CI=true this fails)"
    trap - EXIT
    exit 0
}

[ "$(id -u)" -eq 0 ] || missing "needs root (network and mount namespaces)"
for tool in corosync pacemakerd crm crm_mon ip nsenter unshare perl curl; do
    command -v "$tool" >/dev/null 2>&1 || missing "$tool not installed"
done
[ -x /usr/lib/ocf/resource.d/heartbeat/IPaddr2 ] || missing "resource-agents not installed"
command -v modprobe >/dev/null 2>&1 || missing "kmod not installed (the Filesystem agent needs it)"

if [ -z "${EDGECC_BIN:-}" ]; then
    (cd "$ROOT" && cargo build --locked --quiet --bin edgecc) || fail "cargo build of edgecc failed"
    export EDGECC_BIN="$ROOT/target/debug/edgecc"
fi

readyz() { ip netns exec "$ID-lan" curl -s -m 2 -o "$LAB/readyz.json" -w '%{http_code}' "http://$VIP:8080/readyz" 2>/dev/null || true; }
wait_ready() { # SECONDS -> 0 once /readyz on the VIP answers 200
    local deadline=$(($(date +%s) + $1))
    while [ "$(date +%s)" -lt "$deadline" ]; do
        [ "$(readyz)" = "200" ] && return 0
        sleep 0.1
    done
    return 1
}
has_vip() { ip -n "$ID-$1" -4 addr show dev eth0 2>/dev/null | grep -q "inet $VIP/"; }
field() { # LINE KEY -> value of key=value
    tr ' ' '\n' <<<"$1" | sed -n "s/^$2=//p"
}

lab_up() {
    local up_out up_rc
    up_out="$(mktemp /tmp/edgecc-ha-up.XXXXXX)"
    up_rc=0
    bash "$LABSH" up $DELAY >"$up_out" 2>"$up_out.err" || up_rc=$?
    LAB="$(head -n 1 "$up_out")"
    cat "$up_out.err" >&2
    rm -f "$up_out" "$up_out.err"
    [ "$up_rc" -eq 0 ] || fail "the lab did not come up"
    ID="eha${LAB##*.}"
}

# Waits for edgecc on the VIP; sets active and standby.
find_roles() {
    wait_ready "$WAIT_READY" || fail "edgecc never answered /readyz on the VIP"
    grep -q '"ha_role":"active"' "$LAB/readyz.json" || fail "/readyz does not say ha_role active: $(cat "$LAB/readyz.json")"
    local node
    active="" standby=""
    for node in n1 n2; do
        if has_vip "$node"; then active="$active$node"; else standby="$standby$node"; fi
    done
    case "$active" in n1|n2) ;; *) fail "the VIP is on [$active], not on exactly one node" ;; esac
    if grep -q "^start node=$standby " "$LAB/events.log"; then
        fail "edgecc already started on the standby $standby"
    fi
}

# edgecc crashes on the active: Pacemaker's monitor notices and restarts
# it on the same node; no fencing, no move.
crash_check() {
    local t0 pid p t_down t_ready starts_active
    for p in $(ip netns pids "$ID-$active"); do
        [ "$(cat "/proc/$p/comm" 2>/dev/null)" = "edgecc" ] && pid="$p"
    done
    [ -n "${pid:-}" ] || fail "no edgecc process on $active"
    t0="$(now_ms)"
    kill -9 "$pid"
    t_down=$(($(date +%s) + 5))
    while [ "$(readyz)" = "200" ]; do
        [ "$(date +%s)" -lt "$t_down" ] || fail "/readyz still answers 5 s after edgecc was killed"
        sleep 0.1
    done
    wait_ready "$WAIT_FAILOVER" || fail "edgecc not restarted within ${WAIT_FAILOVER}s of its crash"
    t_ready="$(now_ms)"
    has_vip "$active" || fail "the VIP left $active after an edgecc crash"
    starts_active="$(grep -c "^start node=$active " "$LAB/events.log" || true)"
    [ "$starts_active" -eq 2 ] || fail "edgecc started $starts_active times on $active, not twice"
    if grep -q "^start node=$standby \|^fence " "$LAB/events.log"; then
        fail "an edgecc crash moved it or fenced a node: $(cat "$LAB/events.log")"
    fi
    say "PASS: edgecc crash on $active -> restarted there, /readyz 200 again +$((t_ready - t0)) ms, no fencing, no move"
}

# Planned switchover: `crm resource move` to the standby, then `crm
# resource clear`; edgecc serves from the other node, and stays there once
# the constraint is gone (stickiness: no fail-back). The roles swap.
switchover_check() {
    local t0 t_ready deadline
    t0="$(now_ms)"
    bash "$LABSH" run "$LAB" "$active" crm resource move g-edgecc "$standby" >/dev/null 2>&1 \
        || fail "crm resource move failed"
    deadline=$(($(date +%s) + WAIT_FAILOVER))
    until has_vip "$standby" && [ "$(readyz)" = "200" ]; do
        [ "$(date +%s)" -lt "$deadline" ] || fail "no switchover to $standby within ${WAIT_FAILOVER}s"
        sleep 0.1
    done
    t_ready="$(now_ms)"
    has_vip "$active" && fail "the VIP is on both nodes after the switchover"
    bash "$LABSH" run "$LAB" "$active" crm resource clear g-edgecc >/dev/null 2>&1 \
        || fail "crm resource clear failed"
    sleep 5
    has_vip "$standby" || fail "edgecc went back to $active once the move constraint was cleared"
    [ "$(readyz)" = "200" ] || fail "/readyz not 200 on $standby after the switchover"
    if grep -q "^fence " "$LAB/events.log"; then
        fail "a planned switchover fenced a node: $(cat "$LAB/events.log")"
    fi
    say "PASS: planned switchover $active -> $standby, /readyz 200 there +$((t_ready - t0)) ms, no fail-back after the clear"
    local was="$active"
    active="$standby"
    standby="$was"
}

scenario_death() {
    lab_up
    find_roles
    say "active $active, standby $standby; edgecc crash, planned switchover, then box death of the new active"
    crash_check
    local first="$active"
    switchover_check

    local t0 t_ready fence start fence_done started starts
    t0="$(now_ms)"
    bash "$LABSH" kill "$LAB" "$active" || fail "could not kill $active"
    wait_ready "$WAIT_FAILOVER" || fail "edgecc not ready on the VIP within ${WAIT_FAILOVER}s of the death"
    t_ready="$(now_ms)"

    grep -q '"ha_role":"active"' "$LAB/readyz.json" || fail "/readyz after the failover does not say ha_role active"
    has_vip "$standby" || fail "the VIP is not on the survivor $standby"
    fence="$(grep "^fence target=$active by=$standby " "$LAB/events.log" | head -n 1 || true)"
    [ -n "$fence" ] || fail "the survivor never fenced $active"
    [ "$(field "$fence" rc)" = "0" ] || fail "fencing failed: $fence"
    start="$(grep "^start node=$standby " "$LAB/events.log" | tail -n 1 || true)"
    [ -n "$start" ] || fail "no edgecc start on $standby"
    fence_done="$(field "$fence" done_ms)"
    started="$(field "$start" at_ms)"
    [ "$fence_done" -lt "$started" ] || fail "edgecc started on $standby at $started, before the fence completed at $fence_done"
    [ "$(field "$fence" start_ms)" -ge "$t0" ] || fail "the fence predates the death"
    [ "$(field "$start" data_mounted)" = "yes" ] || fail "edgecc started on $standby without the data directory mounted"
    # Both starts wrote into the data directory: both notes are in the one
    # backing store, the survivor's last.
    starts="$(cut -d' ' -f1 "$LAB/shared/lab-starts" | tr '\n' ' ')"
    [ "$starts" = "$first $first $active $standby " ] \
        || fail "the shared data directory saw starts [$starts], not [$first $first $active $standby]"

    say "PASS: death of $active -> fenced by $standby +$(($(field "$fence" start_ms) - t0)) ms (done +$((fence_done - t0)) ms)," \
        "edgecc started on $standby +$((started - t0)) ms, /readyz 200 on the VIP +$((t_ready - t0)) ms" \
        "(priority-fencing-delay ${DELAY:-as shipped})"
    bash "$LABSH" down "$LAB"
    LAB=""
}

scenario_partition() {
    lab_up
    find_roles
    say "active $active, standby $standby; partition (both alive)"
    local t0 deadline fence both=0 fenced_active start
    t0="$(now_ms)"
    bash "$LABSH" split "$LAB" || fail "could not split the lab"
    # Until the standby was fenced, then 15 s more (past the delay the
    # standby's own fencing waits for), the VIP every 0.1 s on both nodes.
    deadline=$(($(date +%s) + WAIT_FAILOVER))
    local settle=""
    while [ "$(date +%s)" -lt "$deadline" ]; do
        if has_vip n1 && has_vip n2; then both=$((both + 1)); fi
        if [ -z "$settle" ] && grep -q "^fence target=" "$LAB/events.log"; then
            settle=$(($(date +%s) + 15))
        fi
        [ -n "$settle" ] && [ "$(date +%s)" -ge "$settle" ] && break
        sleep 0.1
    done
    [ -n "$settle" ] || fail "nobody was fenced within ${WAIT_FAILOVER}s of the partition"
    [ "$both" -eq 0 ] || fail "the VIP was on both nodes ($both looks)"
    fence="$(grep "^fence target=$standby by=$active " "$LAB/events.log" | head -n 1 || true)"
    [ -n "$fence" ] || fail "the active $active did not fence the standby $standby"
    [ "$(field "$fence" rc)" = "0" ] || fail "fencing failed: $fence"
    fenced_active="$(grep "^fence target=$active " "$LAB/events.log" || true)"
    [ -z "$fenced_active" ] || fail "the active was fenced too: $fenced_active"
    start="$(grep "^start node=$standby " "$LAB/events.log" || true)"
    [ -z "$start" ] || fail "edgecc started on the standby during the partition: $start"
    has_vip "$active" || fail "the VIP left the active $active"
    wait_ready 30 || fail "edgecc on $active no longer ready on the VIP after the partition"
    say "PASS: partition -> $standby fenced by $active +$(($(field "$fence" start_ms) - t0)) ms," \
        "$active kept edgecc and the VIP, never on both (priority-fencing-delay ${DELAY:-as shipped})"
    bash "$LABSH" down "$LAB"
    LAB=""
}

for scenario in ${HA_SCENARIOS:-death partition}; do
    case "$scenario" in
        death) scenario_death ;;
        partition) scenario_partition ;;
        *) fail "no scenario $scenario" ;;
    esac
done
