# shellcheck shell=bash
# The single-node lab, as sourced helpers (demo, test, bench):
#
#   oracle ns (NSD, Knot)          client ns                       node ns (rampart)
#   o0 203.0.113.1/24  ──veth──  c1 203.0.113.2/24
#      2001:db8:203::1/64           2001:db8:203::2/64
#      203.0.113.3/24, 2001:db8:203::3/64 (Knot, the second oracle: lab_knot_start)
#                                 c0 198.51.100.2/24  ──veth──  n0 198.51.100.1/24
#                                    2001:db8:100::2/64             2001:db8:100::1/64
#
# Documentation addresses only; namespaces are named rp-<role>-<id> so parallel labs don't
# collide. Every veth has one queue (RP_LAB_QUEUES=N before lab_up: N RX/TX queues on c0 and n0,
# for the several-queues bench). c0 runs an XDP_PASS program (veth delivers the node's XDP_TX
# frames only to a peer that runs XDP) and has TX checksum offload off (see lab_up). The node's
# maps are pinned on a bpffs of the lab's own, mounted in the host's mount namespace under the
# lab's temp dir, so `ip netns exec` (which hides /sys/fs/bpf) still sees it.
#
# Usage:  . scripts/lib/lab.sh; lab_init [id]; trap lab_down EXIT; lab_up; ...
# Everything lab_up starts is recorded by pid in $RP_TMP/pids and ended by lab_down.

RP_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PY=/usr/bin/python3   # Debian's python: it has dnspython (a pyenv python may come first on PATH)

lab_log() { echo "lab: $*" >&2; }
lab_die() { echo "lab: error: $*" >&2; return 1; }

# lab_init [ID]: names and addresses, exported for the python tests.
lab_init() {
  local id=${1:-$$}
  export RP_LAB_ID=$id
  export RP_NS_CLIENT=rp-client-$id RP_NS_NODE=rp-node-$id RP_NS_ORACLE=rp-oracle-$id
  export RP_NAMESPACES="$RP_NS_CLIENT $RP_NS_NODE $RP_NS_ORACLE"   # what lab_down deletes
  export RP_CLIENT_IF=c0 RP_NODE_IF=n0 RP_CLIENT_OIF=c1 RP_ORACLE_IF=o0
  export RP_CLIENT4=198.51.100.2 RP_CLIENT6=2001:db8:100::2
  export RP_NODE4=198.51.100.1 RP_NODE6=2001:db8:100::1
  export RP_CLIENT_O4=203.0.113.2 RP_CLIENT_O6=2001:db8:203::2
  export RP_ORACLE4=203.0.113.1 RP_ORACLE6=2001:db8:203::1
  export RP_KNOT4=203.0.113.3 RP_KNOT6=2001:db8:203::3   # second oracle (Knot), also on o0
  export RP_TMP=/tmp/rp-lab-$id
  export RP_BPFFS=$RP_TMP/bpffs RP_PIN_DIR=$RP_TMP/bpffs/rampart
  export RP_BIN=${RP_BIN:-$RP_REPO/target/release/rampart}
  export RP_SLOW_PORT=${RP_SLOW_PORT:-5353}
  export RP_METRICS_PORT=${RP_METRICS_PORT:-9153}   # rampart's Prometheus endpoint, node loopback   # rampart also listens here: port != 53 → slow path
  export PY
}

# lab_setup: scripts/setup, which is idempotent and quick when everything is there, so a fresh
# machine and one missing a single piece (bpf-linker, the toolchain link) both end up complete.
lab_setup() {
  "$RP_REPO/scripts/setup"
  export PATH="$HOME/.cargo/bin:$PATH"
}

lab_bg() { # lab_bg NAME LOGFILE CMD... : start in background, record the pid
  local name=$1 log=$2; shift 2
  "$@" >"$log" 2>&1 &
  echo "$! $name" >>"$RP_TMP/pids"
  echo $!
}

# xdp_pass_obj: compile tests/xdp_pass.c once per lab.
lab_xdp_pass_obj() {
  local obj=$RP_TMP/xdp_pass.o
  [ -f "$obj" ] || clang-14 -O2 -target bpf -c "$RP_REPO/tests/xdp_pass.c" -o "$obj"
  echo "$obj"
}

lab_up() {
  [ -n "${RP_TMP:-}" ] || lab_init
  mkdir -p "$RP_TMP" && : >"$RP_TMP/pids"
  local ns
  for ns in "$RP_NS_CLIENT" "$RP_NS_NODE" "$RP_NS_ORACLE"; do
    ip netns add "$ns"
    ip -n "$ns" link set lo up
  done
  local q=${RP_LAB_QUEUES:-1}
  ip link add "$RP_CLIENT_IF" numtxqueues "$q" numrxqueues "$q" netns "$RP_NS_CLIENT" type veth \
     peer name "$RP_NODE_IF" numtxqueues "$q" numrxqueues "$q" netns "$RP_NS_NODE"
  ip link add "$RP_CLIENT_OIF" numtxqueues 1 numrxqueues 1 netns "$RP_NS_CLIENT" type veth \
     peer name "$RP_ORACLE_IF" numtxqueues 1 numrxqueues 1 netns "$RP_NS_ORACLE"
  ip -n "$RP_NS_CLIENT" addr add "$RP_CLIENT4/24" dev "$RP_CLIENT_IF"
  ip -n "$RP_NS_CLIENT" addr add "$RP_CLIENT6/64" dev "$RP_CLIENT_IF" nodad
  ip -n "$RP_NS_NODE" addr add "$RP_NODE4/24" dev "$RP_NODE_IF"
  ip -n "$RP_NS_NODE" addr add "$RP_NODE6/64" dev "$RP_NODE_IF" nodad
  ip -n "$RP_NS_CLIENT" addr add "$RP_CLIENT_O4/24" dev "$RP_CLIENT_OIF"
  ip -n "$RP_NS_CLIENT" addr add "$RP_CLIENT_O6/64" dev "$RP_CLIENT_OIF" nodad
  ip -n "$RP_NS_ORACLE" addr add "$RP_ORACLE4/24" dev "$RP_ORACLE_IF"
  ip -n "$RP_NS_ORACLE" addr add "$RP_ORACLE6/64" dev "$RP_ORACLE_IF" nodad
  # The client's stack hands veth CHECKSUM_PARTIAL packets (UDP checksum field = pseudo-header
  # sum only). An XDP program on n0 sees those bytes; when it XDP_TXes them, the skb's offload
  # state is gone and c0 drops the reply as a bad checksum (UdpInCsumErrors), even when the
  # program updated the checksum incrementally, correctly. Real NICs deliver full checksums;
  # so does c0 with TX offload off.
  ip netns exec "$RP_NS_CLIENT" ethtool -K "$RP_CLIENT_IF" tx off >/dev/null
  ip -n "$RP_NS_CLIENT" link set dev "$RP_CLIENT_IF" xdpdrv obj "$(lab_xdp_pass_obj)" sec xdp
  ip -n "$RP_NS_CLIENT" link set "$RP_CLIENT_IF" up
  ip -n "$RP_NS_CLIENT" link set "$RP_CLIENT_OIF" up
  ip -n "$RP_NS_NODE" link set "$RP_NODE_IF" up
  ip -n "$RP_NS_ORACLE" link set "$RP_ORACLE_IF" up
  mkdir -p "$RP_BPFFS"
  mount -t bpf bpf "$RP_BPFFS"
  lab_log "up: $RP_NS_CLIENT ($RP_CLIENT4) ─ $RP_NS_NODE ($RP_NODE4), oracle $RP_NS_ORACLE ($RP_ORACLE4)"
}

# lab_reattach_pass: after kxdpgun (which leaves its own XDP program on c0).
lab_reattach_pass() {
  ip -n "$RP_NS_CLIENT" link set dev "$RP_CLIENT_IF" xdp off 2>/dev/null || true
  ip -n "$RP_NS_CLIENT" link set dev "$RP_CLIENT_IF" xdpdrv obj "$(lab_xdp_pass_obj)" sec xdp
}

lab_stop_pid() { # lab_stop_pid PID: TERM, wait up to 5 s, then KILL
  local pid=$1 i
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  lab_log "pid $pid ignored SIGTERM for 5 s: SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# lab_stop NAME: end the recorded processes named NAME (e.g. rampart, nsd-oracle).
lab_stop() {
  local name=$1 pid n
  [ -f "$RP_TMP/pids" ] || return 0
  while read -r pid n; do
    [ "$n" = "$name" ] && lab_stop_pid "$pid"
  done <"$RP_TMP/pids"
  return 0
}

lab_down() {
  local rc=$? pid n ns
  [ -n "${RP_TMP:-}" ] || return $rc
  if [ -f "$RP_TMP/pids" ]; then
    while read -r pid n; do lab_stop_pid "$pid"; done <"$RP_TMP/pids"
  fi
  for ns in $RP_NAMESPACES; do
    ip netns del "$ns" 2>/dev/null || true
    rm -rf "/etc/netns/$ns"   # a test's resolv.conf for `ip netns exec`
  done
  mountpoint -q "$RP_BPFFS" 2>/dev/null && umount "$RP_BPFFS"
  if [ "${RP_KEEP_TMP:-0}" != 1 ]; then rm -rf "$RP_TMP"; else lab_log "kept $RP_TMP"; fi
  lab_log "down"
  return $rc
}

# lab_nsd_conf NAME ZONEDIR PORT ADDR... : write an NSD config for the given addresses serving
# every *.zone file in ZONEDIR (origin = file name without .zone). Prints the config path.
lab_nsd_conf() {
  local name=$1 zdir=$2 port=$3; shift 3
  local d=$RP_TMP/$name a f z
  mkdir -p "$d"
  {
    echo "server:"
    for a in "$@"; do echo "  ip-address: $a"; done
    cat <<EOF
  port: $port
  server-count: ${RP_NSD_SERVERS:-1}
  username: ""
  chroot: ""
  zonesdir: "$zdir"
  database: ""
  zonelistfile: "$d/zone.list"
  xfrdfile: "$d/xfrd.state"
  xfrdir: "$d"
  pidfile: "$d/nsd.pid"
  logfile: "$d/nsd.log"
  verbosity: 1
  hide-version: yes
  minimal-responses: yes
  refuse-any: yes
  rrl-ratelimit: 0
  rrl-whitelist-ratelimit: 0
  tcp-count: 200
  reuseport: $([ "${RP_NSD_SERVERS:-1}" -gt 1 ] && echo yes || echo no)
remote-control:
  control-enable: no
EOF
    for f in "$zdir"/*.zone; do
      z=$(basename "$f" .zone)
      printf 'zone:\n  name: "%s"\n  zonefile: "%s"\n' "$z" "$f"
    done
  } >"$d/nsd.conf"
  echo "$d/nsd.conf"
}

# lab_wait_dns NS ADDR PORT NAME [SECONDS]: until ADDR answers a SOA query for NAME.
lab_wait_dns() {
  local ns=$1 addr=$2 port=$3 name=$4 t=${5:-10} i
  for i in $(seq $((t * 5))); do
    ip netns exec "$ns" dig +norec +tries=1 +time=1 -p "$port" "@$addr" "$name" SOA 2>/dev/null |
      grep -q 'status: NOERROR' && return 0
    sleep 0.2
  done
  lab_die "no DNS answer from $addr#$port in $ns after ${t}s"
}

# lab_nsd_start NAME NS ZONEDIR PORT ADDR... : NSD in namespace NS.
lab_nsd_start() {
  local name=$1 ns=$2 zdir=$3 port=$4; shift 4
  local conf
  conf=$(lab_nsd_conf "$name" "$zdir" "$port" "$@")
  nsd-checkconf "$conf" || lab_die "bad nsd config $conf"
  lab_bg "$name" "$RP_TMP/$name/stderr" ip netns exec "$ns" nsd -d -c "$conf" >/dev/null
  local zone; zone=$(basename "$(ls "$zdir"/*.zone | head -1)" .zone)
  lab_wait_dns "$RP_NS_CLIENT" "$1" "$port" "$zone" 15 ||
    { cat "$RP_TMP/$name/stderr" "$RP_TMP/$name/nsd.log" >&2 2>/dev/null; return 1; }
  lab_log "$name: NSD on $* port $port in $ns"
}

# lab_oracle_start ZONEDIR: NSD serving ZONEDIR as the oracle, in its own namespace.
lab_oracle_start() {
  lab_nsd_start nsd-oracle "$RP_NS_ORACLE" "$1" 53 "$RP_ORACLE4" "$RP_ORACLE6"
}

# lab_knot_conf NAME ZONEDIR PORT ADDR... : a knotd config serving every *.zone file in ZONEDIR
# (origin = file name without .zone) on the given addresses, with its rundir, storage, journal,
# KASP and timer databases under $RP_TMP/NAME. Plain authoritative: no DNSSEC signing, no journal
# contents, never writes the zone files back. By default one UDP worker, no XDP (an XDP-mode
# knotd leaves its program attached), no modules (so no RRL/NSID/cookies: Knot 3.2 enables none
# unless configured); the flood bench sets these through the environment: KNOT_UDP_WORKERS,
# KNOT_XDP_IF (also listen through AF_XDP there), KNOT_MODULES (module sections, YAML) and
# KNOT_GLOBAL_MODULES (their ids, in order). Prints the path.
lab_knot_conf() {
  local name=$1 zdir=$2 port=$3; shift 3
  local d=$RP_TMP/$name a f z listen=""
  mkdir -p "$d/storage"
  for a in "$@"; do listen+="${listen:+, }$a@$port"; done
  {
    cat <<EOF
server:
    rundir: "$d"
    pidfile: "$d/knot.pid"
    listen: [ $listen ]
    udp-workers: ${KNOT_UDP_WORKERS:-1}
    tcp-workers: 1
    background-workers: 1
    identity: ""
    version: ""
EOF
    if [ -n "${KNOT_XDP_IF:-}" ]; then
      printf 'xdp:\n    listen: [ %s@%s ]\n    udp: on\n' "$KNOT_XDP_IF" "$port"
    fi
    printf '%s' "${KNOT_MODULES:-}"
    cat <<EOF
control:
    listen: "$d/knot.sock"
log:
  - target: "$d/knot.log"
    any: info
database:
    storage: "$d/storage"
    journal-db: "$d/storage/journal"
    journal-db-max-size: 64M
    kasp-db: "$d/storage/keys"
    kasp-db-max-size: 16M
    timer-db: "$d/storage/timers"
    timer-db-max-size: 16M
    catalog-db: "$d/storage/catalog"
    catalog-db-max-size: 16M
template:
  - id: default
    storage: "$zdir"
    dnssec-signing: off
    zonefile-sync: -1
    zonefile-load: whole
    journal-content: none
    semantic-checks: off
EOF
    if [ -n "${KNOT_GLOBAL_MODULES:-}" ]; then
      printf '    global-module: [ %s ]\n' "$KNOT_GLOBAL_MODULES"
    fi
    echo "zone:"
    for f in "$zdir"/*.zone; do
      z=$(basename "$f" .zone)
      printf '  - domain: "%s."\n    file: "%s"\n' "$z" "$f"
    done
  } >"$d/knot.conf"
  echo "$d/knot.conf"
}

# lab_knot_start ZONEDIR: knotd as the second oracle in the oracle namespace, on $RP_KNOT4 and
# $RP_KNOT6 (added to o0; the client reaches them over c1 like NSD). Recorded as knot-oracle.
lab_knot_start() {
  local zdir=$1 name=knot-oracle conf zone
  ip -n "$RP_NS_ORACLE" addr add "$RP_KNOT4/24" dev "$RP_ORACLE_IF" 2>/dev/null || true
  ip -n "$RP_NS_ORACLE" addr add "$RP_KNOT6/64" dev "$RP_ORACLE_IF" nodad 2>/dev/null || true
  conf=$(lab_knot_conf "$name" "$zdir" 53 "$RP_KNOT4" "$RP_KNOT6")
  knotc -c "$conf" conf-check >/dev/null || { lab_die "bad knot config $conf"; return 1; }
  lab_bg "$name" "$RP_TMP/$name/stderr" ip netns exec "$RP_NS_ORACLE" knotd -c "$conf" >/dev/null
  zone=$(basename "$(ls "$zdir"/*.zone | head -1)" .zone)
  if ! { lab_wait_dns "$RP_NS_CLIENT" "$RP_KNOT4" 53 "$zone" 15 &&
         lab_wait_dns "$RP_NS_CLIENT" "$RP_KNOT6" 53 "$zone" 5; }; then
    cat "$RP_TMP/$name/stderr" "$RP_TMP/$name/knot.log" >&2 2>/dev/null
    return 1
  fi
  lab_log "$name: knotd on $RP_KNOT4 $RP_KNOT6 port 53 in $RP_NS_ORACLE"
}

# lab_rampart_start ARGS... : `rampart run --pin-dir $RP_PIN_DIR ARGS` in the node namespace;
# waits for "rampart: ready" on stderr (30 s). Log: $RP_TMP/rampart.log
lab_rampart_start() {
  [ -x "$RP_BIN" ] || lab_die "no binary at $RP_BIN (scripts/build)"
  local log=$RP_TMP/rampart.log pid i
  pid=$(lab_bg rampart "$log" ip netns exec "$RP_NS_NODE" "$RP_BIN" run --pin-dir "$RP_PIN_DIR" \
    --control-socket "$RP_TMP/control.sock" "$@")
  for i in $(seq 300); do
    grep -q 'rampart: ready' "$log" 2>/dev/null && { lab_log "rampart ready (pid $pid)"; return 0; }
    kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; lab_die "rampart exited before ready"; return 1; }
    sleep 0.1
  done
  cat "$log" >&2
  lab_die "rampart not ready after 30 s"
}

# lab_rampart_default ZONEDIR [ARGS...]: native XDP on n0; slow path on :53 and :$RP_SLOW_PORT.
# Rate limits: the client's own addresses are whitelisted (the e2e tests send bursts from them),
# and the limits are low (RP_LIMIT_ARGS) so e2e_limits sees them apply to spoofed sources
# (192.0.2.0/24, 2001:db8:5xx::/56) at a rate scapy reaches.
RP_LIMIT_ARGS=${RP_LIMIT_ARGS:---rrl-rate 10 --rrl-slip 2 --class-rate 200 --class-slip 2 --miss-rate 10 --miss-total-rate 1000}
lab_rampart_default() {
  local zdir=$1; shift
  # shellcheck disable=SC2086 # RP_LIMIT_ARGS is a list of flags
  lab_rampart_start --iface "$RP_NODE_IF" --xdp-mode native --zone-dir "$zdir" \
    --listen "$RP_NODE4:53" --listen "[$RP_NODE6]:53" \
    --listen "$RP_NODE4:$RP_SLOW_PORT" --listen "[$RP_NODE6]:$RP_SLOW_PORT" \
    --metrics "127.0.0.1:$RP_METRICS_PORT" \
    --rrl-whitelist "$RP_CLIENT4/32" --rrl-whitelist "$RP_CLIENT6/128" $RP_LIMIT_ARGS "$@"
}

lab_stats() { # lab_stats [--json]
  ip netns exec "$RP_NS_NODE" "$RP_BIN" stats --pin-dir "$RP_PIN_DIR" "$@"
}

lab_mac() { # lab_mac NS DEV
  ip -n "$1" -j link show "$2" | $PY -c 'import json,sys; print(json.load(sys.stdin)[0]["address"])'
}

# lab_kxdpgun_loads QUERYFILE: whether this kernel loads kxdpgun's XDP program (a 1 s run at the
# node; some kernels refuse its bpf_xdp_adjust_meta, libknot's XDP mode with it). The client's
# pass program goes back after it.
lab_kxdpgun_loads() {
  local out
  out=$(timeout 20 ip netns exec "$RP_NS_CLIENT" kxdpgun -t 1 -Q 10 -i "$1" -I "$RP_CLIENT_IF" \
        -L "$(lab_mac "$RP_NS_CLIENT" "$RP_CLIENT_IF")" -R "$(lab_mac "$RP_NS_NODE" "$RP_NODE_IF")" \
        "$RP_NODE4" 2>&1) || true
  lab_reattach_pass
  ! echo "$out" | grep -q 'failed to initialize'
}

# lab_flood QUERYFILE SECS DIR: scripts/flood-gen sends QUERYFILE's queries from the client to
# the node for SECS (where kxdpgun can't load), the replies dropped and counted at the client
# veth by scripts/bench-sink.c (both built into DIR once); prints flood-gen's line, then
# "replies=N". The client's pass program goes back after it.
lab_flood() {
  local qf=$1 secs=$2 dir=$3 r0 r1 out
  [ -x "$dir/flood-gen" ] || gcc -O2 -Wall -o "$dir/flood-gen" "$RP_REPO/scripts/flood-gen.c"
  [ -f "$dir/sink.o" ] || clang-14 -O2 -target bpf -c "$RP_REPO/scripts/bench-sink.c" -o "$dir/sink.o"
  ip -n "$RP_NS_CLIENT" link set dev "$RP_CLIENT_IF" xdp off
  ip -n "$RP_NS_CLIENT" link set dev "$RP_CLIENT_IF" xdpdrv obj "$dir/sink.o" sec xdp
  r0=$(lab_sink_drops)
  out=$(timeout $((secs + 30)) ip netns exec "$RP_NS_CLIENT" "$dir/flood-gen" -i "$RP_CLIENT_IF" \
        -D "$(lab_mac "$RP_NS_NODE" "$RP_NODE_IF")" -d "$RP_NODE4" -s "$RP_CLIENT4" -f "$qf" -t "$secs" 2>&1) || true
  sleep 0.2   # the last replies
  r1=$(lab_sink_drops)
  lab_reattach_pass
  echo "$out"
  echo "replies=$((r1 - r0))"
}

lab_sink_drops() { # frames the client veth's XDP program dropped, every queue
  ip netns exec "$RP_NS_CLIENT" ethtool -S "$RP_CLIENT_IF" |
    awk '$1 ~ /^rx_queue_[0-9]+_xdp_drops:$/ {s += $2} END {print s + 0}'
}

# lab_xdp_prog_id NS DEV: id of the XDP program attached to DEV (empty if none)
lab_xdp_prog_id() {
  ip -n "$1" -d -j link show "$2" | $PY -c '
import json, sys
x = json.load(sys.stdin)[0].get("xdp") or {}
p = x.get("prog") or (x.get("attached") or [{}])[0].get("prog") or {}
print(p.get("id", ""))'
}

lab_in() { # lab_in NS CMD...
  local ns=$1; shift
  ip netns exec "$ns" "$@"
}

# ---- CPU accounting (benches) ------------------------------------------------------------------

lab_ns_cpu_ticks() { # lab_ns_cpu_ticks NS: CPU ticks (utime + stime, all threads) of NS's processes
  local pid t=0 v
  for pid in $(ip netns pids "$1" 2>/dev/null); do
    # fields after "pid (comm) ": comm may hold spaces ("nsd: server 1")
    v=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | awk '{print $12 + $13}') && t=$((t + ${v:-0}))
  done
  echo "$t"
}

lab_softirq_ticks() { awk '/^cpu /{print $8}' /proc/stat; }   # the whole machine's softirq ticks

lab_xdp_run_ns() { # lab_xdp_run_ns NS DEV: run_time_ns of DEV's XDP program (0: none, or no bpf_stats)
  local id
  id=$(lab_xdp_prog_id "$1" "$2")
  [ -n "$id" ] || { echo 0; return; }
  bpftool prog show id "$id" -j | $PY -c 'import json,sys; print(json.load(sys.stdin).get("run_time_ns", 0))'
}

lab_percpu_softirq() { awk '/^cpu[0-9]/{printf "%s ", $8} END{print ""}' /proc/stat; }   # ticks per CPU

# lab_rampart_percpu_answers: rampart's STATS map (per-CPU array), its answer slots (the Tx* variants of
# common's Counter enum, indexed in declaration order) summed per CPU: how many answers each CPU's
# XDP runs sent.
lab_rampart_percpu_answers() {
  [ -e "$RP_PIN_DIR/STATS" ] || { echo; return; }
  bpftool map dump pinned "$RP_PIN_DIR/STATS" -j | $PY -c '
import json, re, sys
enum = re.search(r"pub enum Counter \{(.*?)\n\}", open(sys.argv[1]).read(), re.S).group(1)
names = re.findall(r"^\s*([A-Z]\w*)\s*(?:=\s*\d+\s*)?,", enum, re.M)
tx = {i for i, n in enumerate(names) if n.startswith("Tx")}
def num(x):   # with BTF a number, without it a list of hex bytes (little-endian)
    return int.from_bytes(bytes(int(b, 16) for b in x), "little") if isinstance(x, list) else int(x)
tot = {}
for e in json.load(sys.stdin):
    if num(e.get("key", 0)) not in tx:
        continue
    for v in e.get("values", []):
        tot[v["cpu"]] = tot.get(v["cpu"], 0) + num(v["value"])
print(" ".join(str(tot[c]) for c in sorted(tot)))' "$RP_REPO/common/src/lib.rs"
}

lab_delta() { # lab_delta "A1 A2 ..." "B1 B2 ...": "B1-A1,B2-A2,..."
  $PY -c 'import sys; a, b = sys.argv[1].split(), sys.argv[2].split(); print(",".join(str(int(y) - int(x)) for x, y in zip(a, b)))' "$1" "$2"
}

lab_bpf_stats_on() { # lab_bpf_stats_on: BPF run-time statistics on until lab_bpf_stats_off
  lab_bpf_stats_off
  local out i
  out=$(mktemp /tmp/rp-bpf-stats.XXXXXX)
  "$PY" "$RP_REPO/scripts/lib/bpf_stats_hold.py" 3600 >"$out" 2>&1 &
  RP_BPF_STATS_PID=$!
  for i in $(seq 1 50); do
    if grep -qx on "$out"; then rm -f "$out"; return 0; fi
    kill -0 "$RP_BPF_STATS_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "lab: could not turn the BPF run-time statistics on: $(cat "$out")" >&2
  rm -f "$out"
  return 1
}

lab_bpf_stats_off() { # lab_bpf_stats_off: let go of this script's hold (the kernel counts holders)
  if [ -n "${RP_BPF_STATS_PID:-}" ]; then
    kill "$RP_BPF_STATS_PID" 2>/dev/null || true
    wait "$RP_BPF_STATS_PID" 2>/dev/null || true
    RP_BPF_STATS_PID=""
  fi
}
