# shellcheck shell=bash
# The routed anycast lab, as sourced helpers (scripts/test-anycast, scripts/anycast-demo):
#
#   client ns                  router ns (BIRD, AS 65000, ECMP)          node1 ns (BIRD AS 65001, rampart)
#   c0 198.51.100.2/24 ─veth─ r0 198.51.100.1/24
#      2001:db8:100::2/64        2001:db8:100::1/64
#                             r1 203.0.113.1/30     ──veth──  u0 203.0.113.2/30, 2001:db8:1::2/64
#                                2001:db8:1::1/64
#                             r2 203.0.113.5/30     ──veth──  node2 ns: u0 203.0.113.6/30, 2001:db8:2::2/64
#                                2001:db8:2::1/64
#
# Each node serves the anycast service 192.0.2.53 and 2001:db8:53::53 (on its lo, so rampart's
# sockets bind them and replies leave from them) with rampart's XDP program native on u0. rampart
# announces by putting the prefixes on its own non-persistent TUN device (rampart0) while healthy;
# the node's BIRD exports that device's addresses (`protocol direct`) over eBGP (one IPv4 and one
# IPv6 session per node, 1 s keepalive, 3 s hold, no graceful restart), and the router's BIRD
# merges the equal routes into one ECMP route in its kernel table, hashed on the UDP ports
# (fib_multipath_hash_policy=1). The client reaches everything only through the router.
# r1 and r2 run an XDP_PASS program: veth delivers the nodes' XDP_TX frames only to a peer that
# runs XDP. Every veth has one queue; c0 and the router's veths have TX checksum offload off (see
# scripts/lib/lab.sh: an XDP_TX'd CHECKSUM_PARTIAL packet would be dropped as a bad checksum).
#
# AL_RESOLVER=1 (scripts/test-anycast-resolver) makes the nodes resolvers: a fifth namespace,
# rp-auth-<id>, behind the router (r3 203.0.113.9/30 ─ a0 203.0.113.10/30) holds the private
# root, TLD and leaf servers of tests/reslab.py (192.0.2.1-3, routed as 192.0.2.0/29), and each
# node's config gains [resolver] (root hint 192.0.2.1, the lab's trust anchor $AL_TRUST_ANCHOR)
# and the other node as its health peer.
#
# Usage:  . scripts/lib/anycast-lab.sh; alab_init [id]; trap alab_down EXIT; alab_up;
#         alab_node_start 1; alab_node_start 2; ...
# Namespaces are rp-{client,router,node1,node2}-<id>; everything started is recorded by pid in
# $RP_TMP/pids and ended by alab_down, which deletes only this lab's namespaces.

# shellcheck source=scripts/lib/lab.sh
. "$(dirname "${BASH_SOURCE[0]}")/lab.sh"

# alab_init [ID]: names and addresses, exported for tests/anycast_lab.py.
alab_init() {
  local id=${1:-$$}
  export RP_LAB_ID=$id
  export AL_NS_CLIENT=rp-client-$id AL_NS_ROUTER=rp-router-$id
  export AL_NS_NODE1=rp-node1-$id AL_NS_NODE2=rp-node2-$id
  export RP_NAMESPACES="$AL_NS_CLIENT $AL_NS_ROUTER $AL_NS_NODE1 $AL_NS_NODE2"   # lab_down deletes these
  export AL_RESOLVER=${AL_RESOLVER:-0} AL_NS_AUTH=rp-auth-$id
  export AL_R3_4=203.0.113.9 AL_AUTH4=203.0.113.10 AL_AUTH_NET=192.0.2.0/29
  if [ "$AL_RESOLVER" = 1 ]; then RP_NAMESPACES+=" $AL_NS_AUTH"; fi
  export AL_CLIENT4=198.51.100.2 AL_CLIENT6=2001:db8:100::2
  export AL_ROUTER4=198.51.100.1 AL_ROUTER6=2001:db8:100::1
  export AL_R1_4=203.0.113.1 AL_R1_6=2001:db8:1::1 AL_NODE1_4=203.0.113.2 AL_NODE1_6=2001:db8:1::2
  export AL_R2_4=203.0.113.5 AL_R2_6=2001:db8:2::1 AL_NODE2_4=203.0.113.6 AL_NODE2_6=2001:db8:2::2
  export AL_SERVICE4=192.0.2.53 AL_SERVICE6=2001:db8:53::53
  export AL_AS_ROUTER=65000 AL_AS_NODES=65001
  export AL_UPLINK=u0 AL_TUN=rampart0
  export AL_ZONE_DIR=${AL_ZONE_DIR:-$RP_REPO/tests/fixtures/zones}
  # node2's announcement carries this many extra copies of its AS (alab_node2_prepend)
  export AL_PREPEND=0
  # the hold-down before re-announcing (rampart's default; set it to try others); interval,
  # timeout, rise and fall stay rampart's defaults: the failover figures are theirs
  export AL_HOLD_DOWN_MS=${AL_HOLD_DOWN_MS:-2000}
  export RP_TMP=/tmp/rp-anycast-$id
  # each node's rampart runs in a cgroup (v2) of its own, so that a cgroup_skb program can wedge
  # its slow path (tests/cgroup_drop_dns.c, alab_wedge)
  local cg2
  cg2=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)
  export AL_CGROUP=${cg2:+$cg2/rp-anycast-$id}
  export RP_BPFFS=$RP_TMP/bpffs
  export RP_BIN=${RP_BIN:-$RP_REPO/target/release/rampart}
  export PY
}

alab_ns() { # alab_ns N: namespace of node N
  case $1 in 1) echo "$AL_NS_NODE1" ;; 2) echo "$AL_NS_NODE2" ;; *) lab_die "no node $1" ;; esac
}

alab_node_addr() { # alab_node_addr N 4|6: node N's unicast uplink address
  local v="AL_NODE$1_$2"
  echo "${!v}"
}

alab_up() {
  [ -n "${RP_TMP:-}" ] || alab_init
  mkdir -p "$RP_TMP" && : >"$RP_TMP/pids"
  local ns n pass
  for ns in $RP_NAMESPACES; do
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    ip netns exec "$ns" sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
  done
  pass=$(lab_xdp_pass_obj)

  # client ─ router
  ip link add c0 numtxqueues 1 numrxqueues 1 netns "$AL_NS_CLIENT" type veth \
     peer name r0 numtxqueues 1 numrxqueues 1 netns "$AL_NS_ROUTER"
  ip -n "$AL_NS_CLIENT" addr add "$AL_CLIENT4/24" dev c0
  ip -n "$AL_NS_CLIENT" addr add "$AL_CLIENT6/64" dev c0 nodad
  ip -n "$AL_NS_ROUTER" addr add "$AL_ROUTER4/24" dev r0
  ip -n "$AL_NS_ROUTER" addr add "$AL_ROUTER6/64" dev r0 nodad
  ip netns exec "$AL_NS_CLIENT" ethtool -K c0 tx off >/dev/null
  ip -n "$AL_NS_CLIENT" link set c0 up
  ip -n "$AL_NS_ROUTER" link set r0 up
  ip -n "$AL_NS_CLIENT" route add default via "$AL_ROUTER4"
  ip -n "$AL_NS_CLIENT" -6 route add default via "$AL_ROUTER6"

  # router ─ nodes
  for n in 1 2; do
    ns=$(alab_ns "$n")
    local r4=AL_R${n}_4 r6=AL_R${n}_6
    ip link add "r$n" numtxqueues 1 numrxqueues 1 netns "$AL_NS_ROUTER" type veth \
       peer name "$AL_UPLINK" numtxqueues 1 numrxqueues 1 netns "$ns"
    ip -n "$AL_NS_ROUTER" addr add "${!r4}/30" dev "r$n"
    ip -n "$AL_NS_ROUTER" addr add "${!r6}/64" dev "r$n" nodad
    ip -n "$ns" addr add "$(alab_node_addr "$n" 4)/30" dev "$AL_UPLINK"
    ip -n "$ns" addr add "$(alab_node_addr "$n" 6)/64" dev "$AL_UPLINK" nodad
    ip netns exec "$AL_NS_ROUTER" ethtool -K "r$n" tx off >/dev/null
    ip -n "$AL_NS_ROUTER" link set dev "r$n" xdpdrv obj "$pass" sec xdp
    ip -n "$AL_NS_ROUTER" link set "r$n" up
    ip -n "$ns" link set "$AL_UPLINK" up
    ip -n "$ns" route add default via "${!r4}"
    ip -n "$ns" -6 route add default via "${!r6}"
    # the service address: rampart's sockets bind it and its replies leave from it
    ip -n "$ns" addr add "$AL_SERVICE4/32" dev lo
    ip -n "$ns" addr add "$AL_SERVICE6/128" dev lo nodad
  done
  if [ "$AL_RESOLVER" = 1 ]; then
    # router ─ the authoritative servers the resolvers iterate from
    ip link add r3 netns "$AL_NS_ROUTER" type veth peer name a0 netns "$AL_NS_AUTH"
    ip -n "$AL_NS_ROUTER" addr add "$AL_R3_4/30" dev r3
    ip -n "$AL_NS_AUTH" addr add "$AL_AUTH4/30" dev a0
    ip -n "$AL_NS_ROUTER" link set r3 up
    ip -n "$AL_NS_AUTH" link set a0 up
    ip -n "$AL_NS_AUTH" route add default via "$AL_R3_4"
    ip -n "$AL_NS_ROUTER" route add "$AL_AUTH_NET" via "$AL_AUTH4"
  fi
  ip netns exec "$AL_NS_ROUTER" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 \
    net.ipv4.fib_multipath_hash_policy=1 net.ipv6.fib_multipath_hash_policy=1

  mkdir -p "$RP_BPFFS"
  mount -t bpf bpf "$RP_BPFFS"
  # without a writable cgroup2 the nodes run where they are and the wedge tests fail, saying why
  { [ -n "$AL_CGROUP" ] && mkdir -p "$AL_CGROUP/node1" "$AL_CGROUP/node2"; } ||
    { lab_log "no cgroup2 to create $AL_CGROUP: the wedged slow path can't be simulated"; AL_CGROUP=""; }
  clang-14 -O2 -target bpf -c "$RP_REPO/tests/cgroup_drop_dns.c" -o "$RP_TMP/cgroup_drop_dns.o"
  bpftool prog load "$RP_TMP/cgroup_drop_dns.o" "$RP_BPFFS/cgroup_drop_dns" type cgroup/skb
  alab_bird_router || return 1
  alab_bird_node 1 || return 1
  alab_bird_node 2 || return 1
  lab_log "anycast lab up: $AL_NS_CLIENT ─ $AL_NS_ROUTER ─ $AL_NS_NODE1, $AL_NS_NODE2"
}

# BIRD settings every session shares: fast detection of a dead peer and fast reconnects (BIRD's
# defaults are minutes), no graceful restart (it would keep a dead node's route as stale for 120 s).
alab_bgp_timers() {
  cat <<EOF
  hold time 3;
  keepalive time 1;
  connect delay time 1;
  connect retry time 1;
  error wait time 1, 4;
  graceful restart off;
EOF
}

alab_bird_start() { # alab_bird_start NAME NS: bird in the foreground, control socket $RP_TMP/NAME/bird.ctl
  local name=$1 ns=$2 d=$RP_TMP/$1 i
  bird -p -c "$d/bird.conf" || { lab_die "bad BIRD config $d/bird.conf"; return 1; }
  lab_bg "bird-$name" "$d/stderr" ip netns exec "$ns" bird -f -c "$d/bird.conf" -s "$d/bird.ctl" \
    -P "$d/bird.pid" >/dev/null
  for i in $(seq 50); do
    [ -S "$d/bird.ctl" ] && birdc -s "$d/bird.ctl" show status >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  cat "$d/stderr" >&2
  lab_die "BIRD $name did not start"
}

alab_birdc() { # alab_birdc NAME ARGS...: birdc against router|node1|node2
  local name=$1; shift
  birdc -s "$RP_TMP/$name/bird.ctl" "$@"
}

alab_bird_router() {
  local d=$RP_TMP/router n
  mkdir -p "$d"
  {
    cat <<EOF
# The lab's router: eBGP to both nodes, ECMP into the kernel.
router id $AL_ROUTER4;
log "$d/bird.log" all;
protocol device { scan time 10; }
# merge paths: equal BGP routes from both nodes become one multipath kernel route
protocol kernel kernel4 { ipv4 { import none; export all; }; merge paths on; }
protocol kernel kernel6 { ipv6 { import none; export all; }; merge paths on; }
template bgp node {
  local as $AL_AS_ROUTER;
$(alab_bgp_timers)
}
EOF
    for n in 1 2; do
      local r4=AL_R${n}_4 r6=AL_R${n}_6
      cat <<EOF
protocol bgp node${n}_4 from node {
  local ${!r4} as $AL_AS_ROUTER;
  neighbor $(alab_node_addr "$n" 4) as $AL_AS_NODES;
  ipv4 { import all; export none; };
}
protocol bgp node${n}_6 from node {
  local ${!r6} as $AL_AS_ROUTER;
  neighbor $(alab_node_addr "$n" 6) as $AL_AS_NODES;
  ipv6 { import all; export none; };
}
EOF
    done
  } >"$d/bird.conf"
  alab_bird_start router "$AL_NS_ROUTER"
}

# alab_bird_node_conf N: the node's BIRD config (the README's example is this one). It exports
# exactly the addresses on rampart's TUN device: rampart adds them while healthy and the device
# vanishes with the process. node2 prepends its AS $AL_PREPEND extra times (test 2).
alab_bird_node_conf() {
  local n=$1 r4=AL_R${1}_4 r6=AL_R${1}_6 i prepend=""
  [ "$n" = 2 ] && for ((i = 0; i < AL_PREPEND; i++)); do prepend+="bgp_path.prepend($AL_AS_NODES); "; done
  cat <<EOF
router id $(alab_node_addr "$n" 4);
log "$RP_TMP/node$n/bird.log" all;
protocol device { scan time 10; }
# the anycast prefixes: whatever rampart has put on its TUN device
protocol direct anycast {
  ipv4; ipv6;
  interface "$AL_TUN";
}
filter to_router {
  if proto = "anycast" then { $prepend accept; }
  reject;
}
template bgp uplink {
  local as $AL_AS_NODES;
$(alab_bgp_timers)
}
protocol bgp uplink4 from uplink {
  local $(alab_node_addr "$n" 4) as $AL_AS_NODES;
  neighbor ${!r4} as $AL_AS_ROUTER;
  ipv4 { import none; export filter to_router; };
}
protocol bgp uplink6 from uplink {
  local $(alab_node_addr "$n" 6) as $AL_AS_NODES;
  neighbor ${!r6} as $AL_AS_ROUTER;
  ipv6 { import none; export filter to_router; };
}
EOF
}

alab_bird_node() {
  local n=$1 d=$RP_TMP/node$1
  mkdir -p "$d"
  alab_bird_node_conf "$n" >"$d/bird.conf"
  alab_bird_start "node$n" "$(alab_ns "$n")"
}

# alab_node2_prepend K: node2 announces with K extra copies of its AS (0: equal to node1),
# applied with `birdc configure` (BIRD re-evaluates the export filter and re-announces).
alab_node2_prepend() {
  AL_PREPEND=$1
  alab_bird_node_conf 2 >"$RP_TMP/node2/bird.conf"
  alab_birdc node2 configure >/dev/null
}

# alab_wait_bgp [SECONDS]: until the router has all four sessions Established.
alab_wait_bgp() {
  local t=${1:-30} i
  for i in $(seq $((t * 5))); do
    [ "$(alab_birdc router show protocols | grep -c 'Established')" = 4 ] && return 0
    sleep 0.2
  done
  alab_birdc router show protocols >&2
  lab_die "BGP sessions not established after ${t}s"
}

# alab_node_config N: rampart's config for node N (keys: rampart.example.toml). Health interval,
# timeout, rise and fall are rampart's defaults; only the hold-down is the lab's.
alab_node_config() {
  local n=$1 d=$RP_TMP/node$1
  cat <<EOF
# rampart on node$n of the anycast lab (scripts/lib/anycast-lab.sh)
[server]
listen = ["$AL_SERVICE4:53", "[$AL_SERVICE6]:53", "$(alab_node_addr "$n" 4):53", "[$(alab_node_addr "$n" 6)]:53"]
identity = "node$n"
metrics = "127.0.0.1:9153"

[zones]
dir = "$AL_ZONE_DIR"

[xdp]
interfaces = ["$AL_UPLINK"]
mode = "native"
pin_dir = "$RP_BPFFS/node$n"

[anycast]
prefixes = ["$AL_SERVICE4/32", "$AL_SERVICE6/128"]
method = "device"
device = "$AL_TUN"
control_socket = "$d/control.sock"

[health]
hold_down_ms = $AL_HOLD_DOWN_MS
probe_address = "$AL_SERVICE4:53"
$([ "$AL_RESOLVER" = 1 ] && alab_resolver_peers "$n")

[rrl]
# The prober is one trusted client at 500 q/s: this lab measures failover, not rate limits
# (which would slip and drop its queries past 200/s per name, as they should for a stranger).
whitelist = ["$AL_CLIENT4/32", "$AL_CLIENT6/128"]
EOF
  [ "$AL_RESOLVER" = 1 ] || return 0
  cat <<EOF

# AL_RESOLVER=1: a resolver iterating from the lab's root (tests/reslab.py in $AL_NS_AUTH)
[resolver]
enabled = true
root_hints = ["192.0.2.1"]
trust_anchor = "$AL_TRUST_ANCHOR"
# the clients, the health probe's source (the service address), the peer's unicast address
allow = ["198.51.100.0/24", "2001:db8:100::/64", "$AL_SERVICE4/32", "$AL_SERVICE6/128", "203.0.113.0/24", "2001:db8::/32"]
EOF
}

# alab_resolver_peers N: the [health] line naming node N's peer (AL_RESOLVER=1).
alab_resolver_peers() {
  local peer=2
  [ "$1" = 2 ] && peer=1
  echo "peers = [\"$(alab_node_addr "$peer" 4):53\"]"
}

# alab_node_start N: rampart on node N; waits for "rampart: ready" (30 s). Its pid is in
# $RP_TMP/node$N/rampart.pid, its log in $RP_TMP/node$N/rampart.log (appended across restarts).
alab_node_start() {
  local n=$1 d=$RP_TMP/node$1 ns pid i log
  ns=$(alab_ns "$n")
  log=$d/rampart.log
  [ -x "$RP_BIN" ] || { lab_die "no binary at $RP_BIN (scripts/build)"; return 1; }
  mkdir -p "$d"
  alab_node_config "$n" >"$d/rampart.toml"
  echo "=== start $(date +%T.%N)" >>"$log"
  # in its cgroup from the start (a socket belongs to the cgroup it was made in), entered before
  # `ip netns exec` (whose fresh /sys hides the cgroup mount); the subshell and `ip netns exec`
  # both exec: $! is rampart itself (SIGKILL reaches it)
  (
    [ -z "$AL_CGROUP" ] || echo "$BASHPID" >"$AL_CGROUP/node$n/cgroup.procs"
    # AL_SUPERVISE_MS=N: under `rampart supervise --watchdog-ms N` (the pid is the supervisor's)
    if [ -n "${AL_SUPERVISE_MS:-}" ]; then
      exec ip netns exec "$ns" "$RP_BIN" supervise --watchdog-ms "$AL_SUPERVISE_MS" -- \
        --config "$d/rampart.toml" >>"$log" 2>&1 </dev/null
    fi
    exec ip netns exec "$ns" "$RP_BIN" run --config "$d/rampart.toml" >>"$log" 2>&1 </dev/null
  ) &
  pid=$!
  disown "$pid" 2>/dev/null || true   # no "Killed" notice from the shell when a test SIGKILLs it
  echo "$pid rampart-node$n" >>"$RP_TMP/pids"
  echo "$pid" >"$d/rampart.pid"
  for i in $(seq 300); do
    awk '/^=== start/ { r = 0 } /rampart: ready/ { r = 1 } END { exit !r }' "$log" &&
      { lab_log "node$n: rampart ready (pid $pid)"; return 0; }
    kill -0 "$pid" 2>/dev/null || { tail -20 "$log" >&2; lab_die "node$n: rampart exited before ready"; return 1; }
    sleep 0.1
  done
  tail -20 "$log" >&2
  lab_die "node$n: rampart not ready after 30 s"
}


# alab_wedge N on|off: node N's slow path receives no DNS query (neither clients' nor its health
# probe's: timeouts, no ICMP) while its sockets stay open and the XDP program and everything else
# keep running, as with a wedged slow path. (`rampart debug stop-slow-path` closes the sockets.)
alab_wedge() {
  local verb=detach
  [ "$2" = on ] && verb=attach
  bpftool cgroup "$verb" "$AL_CGROUP/node$1" ingress pinned "$RP_BPFFS/cgroup_drop_dns"
}

alab_down() {
  lab_down   # ends every recorded pid, deletes $RP_NAMESPACES, unmounts, removes $RP_TMP
  local rc=$? i
  [ -n "$AL_CGROUP" ] || return $rc
  for i in $(seq 100); do   # busy for a few seconds after its processes died (their sockets)
    rmdir "$AL_CGROUP"/node[12] "$AL_CGROUP" 2>/dev/null
    [ -d "$AL_CGROUP" ] || break
    sleep 0.1
  done
  [ ! -d "$AL_CGROUP" ] || lab_log "could not remove $AL_CGROUP (still busy)"
  return $rc
}
