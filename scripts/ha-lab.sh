#!/usr/bin/env bash
# A real two-node Corosync 3 + Pacemaker 2.1 cluster on one machine, for the
# failover test (scripts/ha-failover-test.sh) and for trying the shipped
# configuration (deploy/ha/) by hand. Needs root and Debian's corosync,
# pacemaker, crmsh, resource-agents and socat (.ci/install-ha.sh).
#
#   ha-lab.sh up [--delay D] [--no-fencing]
#                             bring a lab up; prints its directory (LAB).
#                             D: priority-fencing-delay (default: the
#                             shipped value in deploy/ha/edgecc.crm);
#                             --no-fencing: stonith-enabled=false (to
#                             see by hand what fencing prevents; never in
#                             production)
#   ha-lab.sh down LAB        stop every process of the lab, remove it
#   ha-lab.sh kill LAB NODE   box death of NODE (n1 or n2): every process
#                             of its namespaces killed, its link down
#   ha-lab.sh revive LAB NODE the dead NODE boots again: link up, corosync
#                             and pacemaker started on its kept state
#   ha-lab.sh split LAB       partition: n1 and n2 no longer reach each
#                             other (bridge ports isolated), both still
#                             reach the LAN side; `heal LAB` undoes it
#   ha-lab.sh pbx-cut LAB NODE on|off   NODE no longer reaches the PBX's
#                             address (an unreachable route); the cluster
#                             link and the LAN side stay
#   ha-lab.sh pbx-down LAB on|off       the PBX's address is gone for
#                             everybody (both nodes lose the PBX)
#   ha-lab.sh run LAB NODE CMD...   run CMD inside NODE (e.g. crm_mon -1)
#   ha-lab.sh lan LAB CMD...  run CMD on the LAN side (e.g. curl the VIP)
#
# Layout (names unique per lab, addresses only inside the namespaces, so
# several labs and other tests can run on the same machine):
#   - netns <id>-lan: a bridge with 10.77.0.1/24 (the LAN: desktops, the
#     CRM, where the test reaches the VIP from) and 10.77.0.2/24 (the
#     PBX: the ping target). It runs the PBX, `edgecc pbx-emulator` (agent
#     phones PJSIP/3101 and 3102, callers dialling 8000), and the CRM,
#     `edgecc crm-emulator`, both as processes of their own on the
#     namespace's loopback, published by socat on 10.77.0.2:8088 (ARI)
#     and 10.77.0.1:8090 (webhook, /_emulator/); the test reads the PBX's
#     ARI (/ari/channels, /ari/bridges) on 127.0.0.1:8088 there;
#   - netns <id>-n1, <id>-n2: the boxes, 10.77.0.11 and .12, each joined
#     to the bridge by a veth pair. Each box also has its own mount and UTS
#     namespace: /etc/corosync, /var/lib/corosync, /var/lib/pacemaker and
#     the log directories bind-mounted from LAB/nN, a tmpfs over /run and
#     /dev/shm (Pacemaker's IPC), the hostname nN; it runs `corosync -f`
#     and `pacemakerd`.
#   - LAB/shared: the data directory's backing store. The cluster's
#     Filesystem resource bind-mounts it at LAB/data inside the active
#     node's mount namespace only; a dead node's namespace (and mount)
#     dies with its processes. It stands in for DRBD protocol C + fencing:
#     what the standby sees is what the active fsynced.
#   - edgecc (LAB/edgecc.toml): `pbx.kind = "ari"` at the PBX, the webhook
#     CRM, queue `support` on 8000, agents a1 and a2 on those phones, users
#     a1, a2 (agents) and lab-admin (admin), password LAB/user-password.
#
# The cluster configuration is deploy/ha/edgecc.crm itself, with the
# substitutions listed under LAB-SUBST below (each must apply, so the lab
# cannot drift from the shipped file unnoticed).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VIP=10.77.0.100
LAN_ADDR=10.77.0.1
PBX_ADDR=10.77.0.2
ARI_PORT=8088
CRM_PORT=8090
NODES=(n1 n2)
# The PBX emulator's callers (environment overrides): calls per second,
# how long a caller talks once an agent answered, how long one waits.
CALL_RATE="${HA_LAB_CALL_RATE:-0.2}"
TALK_MS="${HA_LAB_TALK_MS:-900000}"
PATIENCE_MS="${HA_LAB_PATIENCE_MS:-20000}"
# Bounded waits, seconds.
WAIT_MEMBERS=60
WAIT_DAEMON=20

say() { echo "ha-lab: $*" >&2; }
die() { say "$*"; exit 1; }
now_ms() { date +%s%3N; }

node_addr() { case "$1" in n1) echo 10.77.0.11 ;; n2) echo 10.77.0.12 ;; *) die "no node $1" ;; esac; }

# The lab's network namespace names, from its directory's unique suffix.
lab_id() { local b; b="$(basename "$1")"; echo "eha${b##*.}"; }

# The fence agent: TEST-ONLY. It powers a lab node off: its link goes down
# (its addresses, the VIP among them, are flushed) and every process of its
# network namespace is killed, repeatedly until none is left. `ha-lab.sh
# kill` (box death) is the same code. Pacemaker's fencer finds it in
# /usr/sbin, where an overlay mount inside each node's mount namespace
# adds it (the machine's /usr/sbin is not touched).
write_fence_agent() {
    local lab="$1"
    mkdir -p "$lab/sbin"
    cat >"$lab/sbin/fence_edgecc_lab" <<'AGENT'
#!/bin/bash
# fence_edgecc_lab: TEST-ONLY fence agent of scripts/ha-lab.sh. Never use
# it outside the lab: it "powers off" a lab node by killing every process
# of the node's network namespace.
action=reboot port="" lab_dir="" from_args=0
if [ "$#" -gt 0 ]; then
    from_args=1
    while [ "$#" -gt 0 ]; do
        case "$1" in
            -o) action="$2"; shift 2 ;;
            -n) port="$2"; shift 2 ;;
            --lab-dir) lab_dir="$2"; shift 2 ;;
            *) shift ;;
        esac
    done
else
    while IFS='=' read -r k v; do
        case "$k" in
            action) action="$v" ;;
            port|plug|nodename) port="$v" ;;
            lab_dir) lab_dir="$v" ;;
        esac
    done
fi
netid() { cat "$lab_dir/$1.netid" 2>/dev/null; }
pids_of() {
    # One process for the whole scan (a readlink per pid takes seconds on
    # a busy machine).
    ID="$1" perl -e 'for (glob "/proc/[0-9]*") { my $l = readlink("$_/ns/net"); print substr($_, 6), "\n" if defined $l && $l eq $ENV{ID} }'
}
power_off() {
    local id first i pids
    id="$(netid "$port")" || return 1
    [ -n "$id" ] || return 1
    first="$(pids_of "$id" | head -1)"
    if [ -n "$first" ]; then
        nsenter --net="/proc/$first/ns/net" ip link set dev eth0 down 2>/dev/null
        nsenter --net="/proc/$first/ns/net" ip addr flush dev eth0 2>/dev/null
    fi
    for i in $(seq 1 100); do
        pids="$(pids_of "$id")"
        [ -z "$pids" ] && return 0
        kill -9 $pids 2>/dev/null
        sleep 0.05
    done
    return 1
}
case "$action" in
    metadata)
        cat <<'XML'
<?xml version="1.0" ?>
<resource-agent name="fence_edgecc_lab" shortdesc="TEST-ONLY: powers a node of scripts/ha-lab.sh off">
<longdesc>TEST-ONLY. Kills every process of a lab node's network namespace and takes its link down.</longdesc>
<parameters>
  <parameter name="action" unique="0" required="0">
    <getopt mixed="-o, --action=[action]"/>
    <content type="string" default="reboot"/>
    <shortdesc lang="en">Fencing action</shortdesc>
  </parameter>
  <parameter name="port" unique="0" required="0">
    <getopt mixed="-n, --plug=[name]"/>
    <content type="string"/>
    <shortdesc lang="en">The lab node (n1 or n2)</shortdesc>
  </parameter>
  <parameter name="lab_dir" unique="0" required="1">
    <getopt mixed="--lab-dir=[dir]"/>
    <content type="string"/>
    <shortdesc lang="en">The lab's directory</shortdesc>
  </parameter>
</parameters>
<actions>
  <action name="on"/>
  <action name="off"/>
  <action name="reboot"/>
  <action name="status"/>
  <action name="list"/>
  <action name="monitor"/>
  <action name="metadata"/>
</actions>
</resource-agent>
XML
        exit 0 ;;
    monitor) [ -d "$lab_dir" ]; exit $? ;;
    list) echo n1; echo n2; exit 0 ;;
    status)
        id="$(netid "$port")"
        [ -n "$id" ] && [ -n "$(pids_of "$id" | head -1)" ] && exit 0
        exit 2 ;;
    on) exit 1 ;;
    off|reboot)
        start=$(date +%s%3N)
        power_off; rc=$?
        # `ha-lab.sh kill` (arguments) logs its own line; the cluster's
        # fencer (stdin) is logged here.
        [ "$from_args" -eq 1 ] || echo "fence target=$port by=$(hostname) action=$action rc=$rc start_ms=$start done_ms=$(date +%s%3N)" >>"$lab_dir/events.log"
        exit $rc ;;
    *) exit 1 ;;
esac
AGENT
    chmod 0755 "$lab/sbin/fence_edgecc_lab"
}

# What runs inside a node's new mount+UTS namespace first: the mounts, then
# a holder process whose namespaces the other commands enter.
write_node_init() {
    local lab="$1"
    cat >"$lab/node-init.sh" <<'INIT'
#!/bin/bash
set -euo pipefail
node="$1" lab="$2"
hostname "$node"
mount -t tmpfs -o mode=0755 tmpfs /run
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount --bind "$lab/$node/etc-corosync" /etc/corosync
mount --bind "$lab/$node/var-lib-corosync" /var/lib/corosync
mount --bind "$lab/$node/var-lib-pacemaker" /var/lib/pacemaker
mount --bind "$lab/$node/log-pacemaker" /var/log/pacemaker
mount --bind "$lab/$node/log-corosync" /var/log/corosync
# The test-only fence agent joins /usr/sbin in this namespace only.
mount -t overlay overlay -o "lowerdir=$lab/sbin:/usr/sbin" /usr/sbin
mkdir -p /run/crm /run/resource-agents /run/corosync /run/edgecc
chown hacluster:haclient /run/crm
echo $$ >"$lab/$node/holder.pid"
exec sleep infinity
INIT
    chmod 0755 "$lab/node-init.sh"
}

# edgecc as the lab's cluster starts it (LAB-SUBST for systemd:edgecc and
# deploy/ha/edgecc-ha.conf): EDGECC_HA_ROLE=active, the data directory at
# the Filesystem resource's mount point, HTTP on the VIP. It notes its start
# in LAB/events.log, and in the data directory (which lands in LAB/shared
# only through the cluster's mount).
write_edgecc_wrapper() {
    local lab="$1" bin="$2"
    cat >"$lab/edgecc-run" <<WRAP
#!/bin/bash
export EDGECC_HA_ROLE=active
node=\$(hostname)
mounted=no
mountpoint -q "$lab/data" && mounted=yes
echo "start node=\$node at_ms=\$(date +%s%3N) data_mounted=\$mounted" >>"$lab/events.log"
echo "\$node \$(date +%s%3N)" >>"$lab/data/lab-starts"
exec "$bin" --config "$lab/edgecc.toml" --data-dir "$lab/data" --admin-socket /run/edgecc/admin.sock run
WRAP
    chmod 0755 "$lab/edgecc-run"
}

# The lab's edgecc configuration: the same on both nodes, as on a real
# pair (same site id: the standby re-sends the active's records with their
# own idempotency keys). Retries and reconnects are short so a test sees
# deliveries and re-adoption within seconds.
write_edgecc_config() {
    local lab="$1" bin="$2" hash
    printf 'lab-%s\n' "$(basename "$lab")" >"$lab/user-password"
    printf 'edgecc-secret\n' >"$lab/ari-password"
    hash="$(tr -d '\n' <"$lab/user-password" | "$bin" passwd)" || die "edgecc passwd failed"
    cat >"$lab/edgecc.toml" <<CONF
[site]
id = "edge-lab"

[pbx]
kind = "ari"

[pbx.ari]
url = "http://$PBX_ADDR:$ARI_PORT/ari"
user = "edgecc"
password_file = "$lab/ari-password"
reconnect_backoff_base_ms = 100
reconnect_backoff_cap_ms = 1000

[crm]
kind = "webhook"
breaker_probe_interval_ms = 1000
backoff_cap_ms = 2000

[crm.webhook]
url = "http://$LAN_ADDR:$CRM_PORT/webhook"
connect_timeout_ms = 1000
request_timeout_ms = 3000

[[queues]]
id = "support"
name = "Support"
dnis = ["8000"]
strategy = "longest-idle"
max_wait_ms = 60000
wrap_up_ms = 0
final_destination = { kind = "announcement", prompt = "callback-offered" }

[[agents]]
id = "a1"
name = "Agent One"
extension = "3101"
endpoint = "PJSIP/3101"
queues = ["support"]

[[agents]]
id = "a2"
name = "Agent Two"
extension = "3102"
endpoint = "PJSIP/3102"
queues = ["support"]

[http]
listen = "$VIP:8080"

[[users]]
id = "a1"
role = "agent"
password_hash = "$hash"

[[users]]
id = "a2"
role = "agent"
password_hash = "$hash"

[[users]]
id = "lab-admin"
role = "admin"
password_hash = "$hash"
CONF
    "$bin" check-config "$lab/edgecc.toml" >"$lab/check-config.out" 2>&1 \
        || { cat "$lab/check-config.out" >&2; die "the lab's edgecc.toml does not check"; }
}

# The LAN side's services, each a process of its own in <id>-lan: the PBX
# (ARI emulator with two agent phones and callers) and the CRM (webhook
# emulator), on the namespace's loopback, published on the LAN addresses
# by socat (the emulators listen on 127.0.0.1 only).
start_lan_services() {
    local lab="$1" id="$2" bin="$3"
    ip netns exec "$id-lan" setsid "$bin" pbx-emulator --port "$ARI_PORT" \
        --phones PJSIP/3101,PJSIP/3102 --answer-ms 300 --rate "$CALL_RATE" --dnis 8000 \
        --talk-ms "$TALK_MS" --patience-ms "$PATIENCE_MS" \
        </dev/null >"$lab/pbx.out" 2>"$lab/pbx.log" &
    ip netns exec "$id-lan" setsid "$bin" crm-emulator --port "$CRM_PORT" \
        </dev/null >"$lab/crm.out" 2>"$lab/crm.log" &
    ip netns exec "$id-lan" setsid socat "TCP-LISTEN:$ARI_PORT,bind=$PBX_ADDR,reuseaddr,fork" \
        "TCP:127.0.0.1:$ARI_PORT" </dev/null >"$lab/socat-ari.log" 2>&1 &
    ip netns exec "$id-lan" setsid socat "TCP-LISTEN:$CRM_PORT,bind=$LAN_ADDR,reuseaddr,fork" \
        "TCP:127.0.0.1:$CRM_PORT" </dev/null >"$lab/socat-crm.log" 2>&1 &
    wait_for "$WAIT_DAEMON" "the PBX emulator on $PBX_ADDR:$ARI_PORT" \
        ip netns exec "$id-lan" curl -sf -m 2 -u edgecc:edgecc-secret "http://$PBX_ADDR:$ARI_PORT/ari/asterisk/info" \
        || { cat "$lab/pbx.log" >&2; return 1; }
    wait_for "$WAIT_DAEMON" "the CRM emulator on $LAN_ADDR:$CRM_PORT" \
        ip netns exec "$id-lan" curl -sf -m 2 "http://$LAN_ADDR:$CRM_PORT/_emulator/stats" \
        || { cat "$lab/crm.log" >&2; return 1; }
}

# The lab's corosync.conf: deploy/ha/corosync.conf with LAB-SUBST: the lab's
# node names and addresses (one ring), no crypto (no authkey to share).
write_corosync_conf() {
    local out="$1"
    perl -0pe '
        my $n = 0;
        $n += s/crypto_cipher: aes256/crypto_cipher: none/;
        $n += s/crypto_hash: sha256/crypto_hash: none/;
        $n += s/name: edge-a/name: n1/;
        $n += s/name: edge-b/name: n2/;
        $n += s/ring0_addr: 192\.168\.77\.21/ring0_addr: 10.77.0.11/;
        $n += s/ring0_addr: 192\.168\.77\.22/ring0_addr: 10.77.0.12/;
        $n += s/\n\s*ring1_addr: 192\.0\.2\.21//;
        $n += s/\n\s*ring1_addr: 192\.0\.2\.22//;
        $n += s/to_syslog: yes/to_syslog: no/;
        die "ha-lab: deploy/ha/corosync.conf changed: $n of 9 LAB-SUBST applied\n" unless $n == 9;
    ' "$ROOT/deploy/ha/corosync.conf" >"$out"
}

# The lab's crm configuration: deploy/ha/edgecc.crm, statement by
# statement, with these LAB-SUBST (every one must find its statement):
#   - fence-edge-a/-b: fence_edgecc_lab instead of IPMI;
#   - drbd-edgecc, ms-drbd-edgecc and their colocation and order: removed
#     (no DRBD in this kernel; LAB/shared stands in);
#   - fs-edgecc: a bind mount of LAB/shared at LAB/data;
#   - edgecc: ocf:heartbeat:anything running LAB/edgecc-run (no systemd
#     here), same operations and priority;
#   - names and addresses: edge-a/b -> n1/n2, the VIP and the PBX's
#     address -> the lab's; priority-fencing-delay -> DELAY if given;
#   - with FENCING=off (the control run only): stonith-enabled=false.
write_crm() {
    local lab="$1" delay="$2" fencing="$3" out="$4"
    LAB="$lab" DELAY="$delay" FENCING="$fencing" VIP="$VIP" PBX="$PBX_ADDR" perl -e '
        my ($lab, $delay) = ($ENV{LAB}, $ENV{DELAY});
        local $/; my $text = <STDIN>;
        $text =~ s/\\\n\s*/ /g;                      # join continued lines
        my @out; my %used;
        my %subst = (
            "primitive fence-edge-a" => "primitive fence-edge-a stonith:fence_edgecc_lab params pcmk_host_list=edge-a lab_dir=$lab op monitor interval=60s",
            "primitive fence-edge-b" => "primitive fence-edge-b stonith:fence_edgecc_lab params pcmk_host_list=edge-b lab_dir=$lab op monitor interval=60s",
            "primitive drbd-edgecc" => "",
            "clone ms-drbd-edgecc" => "",
            "colocation c-edgecc-with-drbd-primary" => "",
            "order o-drbd-promote-before-edgecc" => "",
            "primitive fs-edgecc" => "primitive fs-edgecc ocf:heartbeat:Filesystem params device=$lab/shared directory=$lab/data fstype=none options=bind op monitor interval=20s timeout=40s",
            "primitive edgecc" => "primitive edgecc ocf:heartbeat:anything params binfile=$lab/edgecc-run logfile=$lab/edgecc.log errlogfile=$lab/edgecc.log op start timeout=100s interval=0 op stop timeout=45s interval=0 op monitor interval=10s timeout=30s meta priority=10",
        );
        for my $line (split /\n/, $text) {
            next if $line =~ /^\s*(#|$)/;
            my ($kind, $name) = split " ", $line;
            my $key = "$kind $name";
            if (exists $subst{$key}) {
                $used{$key} = 1;
                push @out, $subst{$key} if length $subst{$key};
            } else {
                push @out, $line;
            }
        }
        for my $key (sort keys %subst) {
            die "ha-lab: LAB-SUBST \"$key\" found nothing in deploy/ha/edgecc.crm\n" unless $used{$key};
        }
        my $all = join("\n", @out) . "\n";
        my $n = 0;
        $n += ($all =~ s/\bedge-a\b/n1/g) ? 1 : 0;
        $n += ($all =~ s/\bedge-b\b/n2/g) ? 1 : 0;
        $n += ($all =~ s/\bip=192\.0\.2\.10\b/ip=$ENV{VIP}/) ? 1 : 0;
        $n += ($all =~ s/\bhost_list=192\.0\.2\.50\b/host_list=$ENV{PBX}/) ? 1 : 0;
        if (length $delay) {
            $n += ($all =~ s/priority-fencing-delay=\S+/priority-fencing-delay=$delay/) ? 1 : 0;
        } else { $n += 1; }
        if ($ENV{FENCING} eq "off") {
            $n += ($all =~ s/stonith-enabled=true/stonith-enabled=false/) ? 1 : 0;
        } else { $n += 1; }
        die "ha-lab: deploy/ha/edgecc.crm changed: $n of 6 name/address LAB-SUBST applied\n" unless $n == 6;
        print $all;
    ' <"$ROOT/deploy/ha/edgecc.crm" >"$out"
}

holder() { cat "$1/$2/holder.pid"; }

# Runs a command inside a node (its network, mount and UTS namespaces).
in_node() {
    local lab="$1" node="$2"; shift 2
    nsenter -t "$(holder "$lab" "$node")" -m -n -u -- "$@"
}

# Every pid whose network namespace is NETID.
pids_in_net() {
    ID="$1" perl -e 'for (glob "/proc/[0-9]*") { my $l = readlink("$_/ns/net"); print substr($_, 6), "\n" if defined $l && $l eq $ENV{ID} }'
}

wait_for() { # SECONDS DESCRIPTION CMD...
    local secs="$1" what="$2" deadline; shift 2
    deadline=$(($(date +%s) + secs))
    until "$@" >/dev/null 2>&1; do
        [ "$(date +%s)" -lt "$deadline" ] || { say "timed out after ${secs}s waiting for $what"; return 1; }
        sleep 0.2
    done
}

# Starts NODE in its network namespace NS: a new mount+UTS namespace,
# corosync, pacemakerd. FRESH=fresh: a new node (configuration copied, no
# CIB); keep: a node booting again on what it had on disk (its CIB, its
# logs), as a box that was powered off.
start_node() {
    local lab="$1" node="$2" ns="$3" fresh="${4:-fresh}"
    local d="$lab/$node"
    if [ "$fresh" = fresh ]; then
        mkdir -p "$d/etc-corosync" "$d/var-lib-corosync" "$d/var-lib-pacemaker" "$d/log-pacemaker" "$d/log-corosync"
        cp -a /etc/corosync/. "$d/etc-corosync/"
        write_corosync_conf "$d/etc-corosync/corosync.conf"
        cp -a /var/lib/pacemaker/. "$d/var-lib-pacemaker/"
        rm -rf "$d/var-lib-pacemaker/cib/"* "$d/var-lib-pacemaker/pengine/"*
        chown hacluster:haclient "$d/log-pacemaker"
    fi
    rm -f "$d/holder.pid"
    setsid ip netns exec "$ns" unshare --mount --uts --propagation private \
        bash "$lab/node-init.sh" "$node" "$lab" </dev/null >"$d/init.log" 2>&1 &
    wait_for "$WAIT_DAEMON" "$node's namespaces" test -s "$d/holder.pid" || { cat "$d/init.log" >&2; return 1; }
    readlink "/proc/$(holder "$lab" "$node")/ns/net" >"$lab/$node.netid"
    in_node "$lab" "$node" setsid corosync -f </dev/null >>"$d/corosync.out" 2>&1 &
    wait_for "$WAIT_DAEMON" "corosync on $node" in_node "$lab" "$node" corosync-cfgtool -s
    in_node "$lab" "$node" setsid pacemakerd </dev/null >>"$d/pacemakerd.out" 2>&1 &
}

both_online() {
    local lab="$1" node="$2"
    in_node "$lab" "$node" crm_mon -1 2>/dev/null | grep -q 'Online: \[ n1 n2 \]'
}

cmd_up() {
    local delay="" fencing=on
    while [ "$#" -gt 0 ]; do
        case "$1" in
            --delay) [ "$#" -ge 2 ] || die "--delay needs a value"; delay="$2"; shift 2 ;;
            --no-fencing) fencing=off; shift ;;
            *) die "up: unknown argument $1" ;;
        esac
    done
    [ "$(id -u)" -eq 0 ] || die "needs root (namespaces, mounts)."
    for tool in corosync pacemakerd crm crm_mon crm_resource ip nsenter unshare perl curl socat ping; do
        command -v "$tool" >/dev/null 2>&1 || die "$tool missing: run .ci/install-ha.sh"
    done
    [ -x /usr/lib/ocf/resource.d/heartbeat/IPaddr2 ] || die "resource-agents missing: run .ci/install-ha.sh"
    local bin="${EDGECC_BIN:-$ROOT/target/debug/edgecc}"
    [ -x "$bin" ] || die "no edgecc binary at $bin (cargo build --locked --bin edgecc, or set EDGECC_BIN)"
    local lab id
    lab="$(mktemp -d /tmp/edgecc-ha.XXXXXX)"
    chmod 0755 "$lab"
    id="$(lab_id "$lab")"
    echo "$lab"
    # From here on, a failure leaves a lab that `down` removes: the caller
    # has the directory (printed above) and must call it.
    mkdir -p "$lab/shared" "$lab/data"
    : >"$lab/events.log"
    write_fence_agent "$lab"
    write_node_init "$lab"
    write_edgecc_wrapper "$lab" "$bin"
    write_edgecc_config "$lab" "$bin"
    write_crm "$lab" "$delay" "$fencing" "$lab/edgecc-lab.crm"

    ip netns add "$id-lan"
    echo "$id-lan" >>"$lab/netns"
    ip -n "$id-lan" link set lo up
    ip -n "$id-lan" link add br0 type bridge
    ip -n "$id-lan" addr add "$LAN_ADDR/24" dev br0
    ip -n "$id-lan" addr add "$PBX_ADDR/24" dev br0
    ip -n "$id-lan" link set br0 up
    # The LAN side's processes are found (and killed by `down`) by this.
    ip netns exec "$id-lan" readlink /proc/self/ns/net >"$lab/lan.netid"
    local node i=0
    for node in "${NODES[@]}"; do
        i=$((i + 1))
        ip netns add "$id-$node"
        echo "$id-$node" >>"$lab/netns"
        ip link add name eth0 netns "$id-$node" type veth peer name "p$i" netns "$id-lan"
        ip -n "$id-lan" link set "p$i" master br0 up
        ip -n "$id-$node" link set lo up
        ip -n "$id-$node" addr add "$(node_addr "$node")/24" dev eth0
        ip -n "$id-$node" link set eth0 up
    done
    start_lan_services "$lab" "$id" "$bin" || die "the LAN side's PBX and CRM did not start"
    for node in "${NODES[@]}"; do
        start_node "$lab" "$node" "$id-$node"
    done
    wait_for "$WAIT_MEMBERS" "both nodes online in Pacemaker" both_online "$lab" n1
    in_node "$lab" n1 crm configure load update "$lab/edgecc-lab.crm" >"$lab/crm-load.out" 2>&1 \
        || { cat "$lab/crm-load.out" >&2; die "crm configure load failed"; }
    say "up: $lab (priority-fencing-delay ${delay:-as shipped}, fencing $fencing)"
}

# The dead NODE boots again: its link comes back with its address, and
# corosync and pacemakerd start on the state it kept (LAB/NODE); it joins
# the survivor. Returns once both nodes are online.
cmd_revive() {
    local lab="$1" node="$2" id
    id="$(lab_id "$lab")"
    [ -f "$lab/$node.netid" ] || die "no node $node in $lab"
    [ -z "$(pids_in_net "$(cat "$lab/$node.netid")")" ] || die "$node is not dead"
    ip -n "$id-$node" addr flush dev eth0
    ip -n "$id-$node" addr add "$(node_addr "$node")/24" dev eth0
    ip -n "$id-$node" link set eth0 up
    echo "revive target=$node at_ms=$(now_ms)" >>"$lab/events.log"
    start_node "$lab" "$node" "$id-$node" keep
    wait_for "$WAIT_MEMBERS" "$node back online in Pacemaker" both_online "$lab" "$node"
    echo "rejoined target=$node at_ms=$(now_ms)" >>"$lab/events.log"
}

# NODE loses the PBX (an unreachable route to its address): its ARI link
# and its pings fail; the cluster link and the LAN side stay.
cmd_pbx_cut() {
    local lab="$1" node="$2" how="$3" id
    id="$(lab_id "$lab")"
    case "$how" in
        on) ip -n "$id-$node" route add unreachable "$PBX_ADDR/32" ;;
        off) ip -n "$id-$node" route del unreachable "$PBX_ADDR/32" ;;
        *) die "pbx-cut: on or off" ;;
    esac
    echo "pbxcut target=$node $how at_ms=$(now_ms)" >>"$lab/events.log"
}

# The PBX is unreachable for everybody: its address leaves the bridge
# (the emulator keeps running: its calls stay up, as on an Asterisk
# behind a dead switch).
cmd_pbx_down() {
    local lab="$1" how="$2" id
    id="$(lab_id "$lab")"
    case "$how" in
        on) ip -n "$id-lan" addr del "$PBX_ADDR/24" dev br0 ;;
        off) ip -n "$id-lan" addr add "$PBX_ADDR/24" dev br0 ;;
        *) die "pbx-down: on or off" ;;
    esac
    echo "pbxdown $how at_ms=$(now_ms)" >>"$lab/events.log"
}

cmd_kill() {
    local lab="$1" node="$2"
    [ -f "$lab/$node.netid" ] || die "no node $node in $lab"
    echo "boxdeath target=$node at_ms=$(now_ms)" >>"$lab/events.log"
    "$lab/sbin/fence_edgecc_lab" -o off -n "$node" --lab-dir "$lab" >/dev/null 2>&1 \
        || die "could not kill every process of $node"
    echo "boxdead target=$node at_ms=$(now_ms)" >>"$lab/events.log"
}

# Partition: the two boxes' bridge ports become isolated (they cannot
# talk to each other) while both keep talking to the LAN side (the PBX,
# the desktops): the cluster link breaks with both boxes alive.
cmd_split() {
    local lab="$1" id i
    id="$(lab_id "$lab")"
    for i in 1 2; do
        ip -n "$id-lan" link set dev "p$i" type bridge_slave isolated "${2:-on}"
    done
    echo "split ${2:-on} at_ms=$(now_ms)" >>"$lab/events.log"
}

cmd_down() {
    local lab="$1" node id i pids
    [ -d "$lab" ] || return 0
    case "$lab" in /tmp/edgecc-ha.*) ;; *) die "not a lab directory: $lab" ;; esac
    for node in "${NODES[@]}" lan; do
        [ -f "$lab/$node.netid" ] || continue
        id="$(cat "$lab/$node.netid")"
        for i in $(seq 1 100); do
            pids="$(pids_in_net "$id")"
            [ -z "$pids" ] && break
            # shellcheck disable=SC2086
            kill -9 $pids 2>/dev/null || true
            sleep 0.05
        done
        [ -z "$(pids_in_net "$id")" ] || say "processes of $node survive: $(pids_in_net "$id" | tr '\n' ' ')"
    done
    if [ -f "$lab/netns" ]; then
        while read -r ns; do
            ip netns del "$ns" 2>/dev/null || true
        done <"$lab/netns"
    fi
    rm -rf "$lab"
}

case "${1:-}" in
    up) shift; cmd_up "$@" ;;
    revive) [ "$#" -eq 3 ] || die "usage: ha-lab.sh revive LAB NODE"; cmd_revive "$2" "$3" ;;
    pbx-cut) [ "$#" -eq 4 ] || die "usage: ha-lab.sh pbx-cut LAB NODE on|off"; cmd_pbx_cut "$2" "$3" "$4" ;;
    pbx-down) [ "$#" -eq 3 ] || die "usage: ha-lab.sh pbx-down LAB on|off"; cmd_pbx_down "$2" "$3" ;;
    lan) [ "$#" -ge 3 ] || die "usage: ha-lab.sh lan LAB CMD..."; lab="$2"; shift 2; ip netns exec "$(lab_id "$lab")-lan" "$@" ;;
    down) [ "$#" -eq 2 ] || die "usage: ha-lab.sh down LAB"; cmd_down "$2" ;;
    kill) [ "$#" -eq 3 ] || die "usage: ha-lab.sh kill LAB NODE"; cmd_kill "$2" "$3" ;;
    split) [ "$#" -eq 2 ] || die "usage: ha-lab.sh split LAB"; cmd_split "$2" on ;;
    heal) [ "$#" -eq 2 ] || die "usage: ha-lab.sh heal LAB"; cmd_split "$2" off ;;
    run) [ "$#" -ge 4 ] || die "usage: ha-lab.sh run LAB NODE CMD..."; lab="$2" node="$3"; shift 3; in_node "$lab" "$node" "$@" ;;
    *) sed -n '2,29p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
