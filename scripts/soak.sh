#!/usr/bin/env bash
# The soak (issue 15): calls flowing for minutes while the daemon is
# SIGKILLed and started again on the same data directory, the PBX link is
# cut and the CRM goes down, answers 429 and answers 500, in turn. It is
# `edgecc demo` in its restart mode: the daemon runs as a child process in
# front of the simulated PBX (the ARI emulator as a process of its own,
# `edgecc pbx-emulator`, read through its status API) and the CRM emulator,
# which lives on in the demo's process; the demo's check is made at the PBX and
# the CRM: every call edgecc took has exactly one terminal record set
# (answered: one interaction, one phone log, its updates in order ending in
# exactly one `ended`; not answered: one interaction and one work item), no
# agent phone ever held two calls at once (looked at every 50 ms), no
# record pending, dead or dropped, nothing left at the PBX. Exits non-zero
# when a check fails. Everything is on 127.0.0.1. RELIABILITY.md has the
# counts of the runs we did.
#
#   bash scripts/soak.sh                           # 5 min: a SIGKILL every 20 s, a link cut every 35 s
#   SOAK_DURATION=900 bash scripts/soak.sh         # 15 min
#   SOAK_RATE=6 SOAK_AGENTS=30 bash scripts/soak.sh
#   SOAK_RESTART_EVERY=10 SOAK_CUT_EVERY=25 ...
#   EDGECC_BIN=target/debug/edgecc ...             # an existing binary (default: a release build)
#   SOAK_DIR=/tmp/soak ...                         # keep the data, the daemon's log and the summary there
set -euo pipefail
cd "$(dirname "$0")/.."
duration="${SOAK_DURATION:-300}"
rate="${SOAK_RATE:-4}"
agents="${SOAK_AGENTS:-20}"
restart_every="${SOAK_RESTART_EVERY:-20}"
cut_every="${SOAK_CUT_EVERY:-35}"
seed="${SOAK_SEED:-7}"
for v in "$duration" "$rate" "$agents" "$restart_every" "$cut_every" "$seed"; do
    [[ "$v" =~ ^[0-9]+$ ]] || { echo "soak: $v is not a whole number" >&2; exit 2; }
done
if (( duration < 10 || duration > 86400 || restart_every < 3 || cut_every < 3 )); then
    echo "soak: SOAK_DURATION 10..86400, SOAK_RESTART_EVERY and SOAK_CUT_EVERY at least 3" >&2
    exit 2
fi
# SECS,SECS,... from the first interval to the end of the run.
every() { seq -s, "$1" "$1" "$((duration - 1))"; }
restarts="$(every "$restart_every")"
# Link cuts on their own beat, starting half an interval in.
cuts="$(seq -s, "$((cut_every / 2))" "$cut_every" "$((duration - 1))")"

bin="${EDGECC_BIN:-}"
if [[ -z "$bin" ]]; then
    cargo build --release --locked
    bin=target/release/edgecc
fi
dir="${SOAK_DIR:-$(mktemp -d -t edgecc-soak.XXXXXX)}"
mkdir -p "$dir"
echo "soak: ${duration} s at ${rate} calls/s, ${agents} agents; SIGKILL at ${restarts}; link cuts at ${cuts:-none}; CRM faults in turn; in ${dir}"
args=(--data-dir "$dir/demo" demo
    --duration "$duration" --rate "$rate" --agents "$agents" --seed "$seed"
    --restart-at "$restarts" --crm-faults
    --drain-wait 300 --summary-json "$dir/summary.json")
[[ -n "$cuts" ]] && args+=(--link-cut-at "$cuts")
# Bounded: the run, its drain and its checks, or it is stopped.
status=0
timeout --signal=TERM --kill-after=30 "$((duration + 600))" "$bin" "${args[@]}" | tee "$dir/out.txt" || status=$?
echo "soak: exit ${status}; summary ${dir}/summary.json; daemon log ${dir}/demo/daemon.log"
exit "$status"
