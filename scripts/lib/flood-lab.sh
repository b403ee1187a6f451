# shellcheck shell=bash
# The flood lab, as sourced helpers (scripts/bench-flood, tests/flood_lab.py). Flood and legit
# traffic compete for the node's one NIC and one service address:
#
#   attacker ns  a0 198.51.100.3, 2001:db8:100::3 ─┐
#     (flood-gen spoofs 2001:db8:8000::/33 and     │  switch ns: bridge br0      node ns
#      203.0.113.0/24; the node routes both back   ├── sa  sl  sn ────veth──── n0 198.51.100.1
#      via the attacker's address)                 │                              2001:db8:100::1
#   legit ns     l0 198.51.100.2, 2001:db8:100::2 ─┘                           (rampart | NSD | Knot)
#
# Namespaces rp-f{atk,legit,sw,node}-<id>. sn (n0's peer) runs tests/xdp_pass.c: veth delivers a
# node's XDP_TX frames only to a peer that runs XDP. l0 and a0 have TX checksum offload off (full
# checksums on the wire, as a real NIC delivers them; see lab.sh). Amplification is read from a0's
# counters: bytes received / bytes sent. Reuses lab.sh (lab_rampart_start, lab_stats, pids file).
#
# Usage: . scripts/lib/flood-lab.sh; flood_init [id]; trap flood_down EXIT; flood_up; ...

# shellcheck source=scripts/lib/lab.sh
. "$(dirname "${BASH_SOURCE[0]}")/lab.sh"

FLOOD_ORIGIN=flood.example
FLOOD_HOT=www.$FLOOD_ORIGIN

# flood_init [ID]: lab.sh's variables, re-pointed at the flood lab (the "client" is the legit ns).
flood_init() {
  local id=${1:-$$}
  lab_init "flood-$id"
  export RP_NS_CLIENT=rp-flegit-$id RP_NS_NODE=rp-fnode-$id RP_NS_ORACLE=""
  export RP_NS_ATTACKER=rp-fatk-$id RP_NS_SWITCH=rp-fsw-$id
  export RP_NAMESPACES="$RP_NS_ATTACKER $RP_NS_CLIENT $RP_NS_SWITCH $RP_NS_NODE"
  export RP_CLIENT_IF=l0 RP_ATTACKER_IF=a0 RP_NODE_IF=n0
  export RP_CLIENT4=198.51.100.2 RP_CLIENT6=2001:db8:100::2
  export RP_ATTACKER4=198.51.100.3 RP_ATTACKER6=2001:db8:100::3
  export RP_NODE4=198.51.100.1 RP_NODE6=2001:db8:100::1
  export RP_SPOOF6=2001:db8:8000::/33 RP_SPOOF4=203.0.113.0/24   # routed back to the attacker
  export RP_SPOOF6_ONE=2001:db8:8000::1 RP_SPOOF4_ONE=203.0.113.1
  export RP_TMP=/tmp/rp-flood-$id
  export RP_BPFFS=$RP_TMP/bpffs RP_PIN_DIR=$RP_TMP/bpffs/rampart
  export RP_FLOOD_GEN=$RP_TMP/flood-gen
  export RP_FLOOD_CLIENT_COOKIE=0123456789abcdef   # the legit client's, 8 bytes (RFC 7873)
}

flood_up() {
  mkdir -p "$RP_TMP" && : >"$RP_TMP/pids"
  local ns pair
  for ns in "$RP_NS_ATTACKER" "$RP_NS_CLIENT" "$RP_NS_SWITCH" "$RP_NS_NODE"; do
    ip netns add "$ns"
    ip -n "$ns" link set lo up
  done
  ip -n "$RP_NS_SWITCH" link add br0 type bridge stp_state 0 forward_delay 0
  for pair in "$RP_NS_ATTACKER:a0:sa" "$RP_NS_CLIENT:l0:sl" "$RP_NS_NODE:n0:sn"; do
    IFS=: read -r ns dev port <<<"$pair"
    ip link add "$dev" numtxqueues 1 numrxqueues 1 netns "$ns" type veth \
      peer name "$port" numtxqueues 1 numrxqueues 1 netns "$RP_NS_SWITCH"
    ip -n "$RP_NS_SWITCH" link set "$port" master br0 up
  done
  ip -n "$RP_NS_SWITCH" link set dev sn xdpdrv obj "$(lab_xdp_pass_obj)" sec xdp
  ip -n "$RP_NS_SWITCH" link set br0 up
  ip -n "$RP_NS_ATTACKER" addr add "$RP_ATTACKER4/24" dev a0
  ip -n "$RP_NS_ATTACKER" addr add "$RP_ATTACKER6/64" dev a0 nodad
  ip -n "$RP_NS_CLIENT" addr add "$RP_CLIENT4/24" dev l0
  ip -n "$RP_NS_CLIENT" addr add "$RP_CLIENT6/64" dev l0 nodad
  ip -n "$RP_NS_NODE" addr add "$RP_NODE4/24" dev n0
  ip -n "$RP_NS_NODE" addr add "$RP_NODE6/64" dev n0 nodad
  ip netns exec "$RP_NS_CLIENT" ethtool -K l0 tx off >/dev/null
  ip netns exec "$RP_NS_ATTACKER" ethtool -K a0 tx off >/dev/null
  ip -n "$RP_NS_ATTACKER" link set a0 up
  ip -n "$RP_NS_CLIENT" link set l0 up
  ip -n "$RP_NS_NODE" link set n0 up
  # the spoofed sources' replies (kernel-stack servers route; XDP answers swap MACs) reach a0
  ip -n "$RP_NS_NODE" route add "$RP_SPOOF4" via "$RP_ATTACKER4"
  ip -n "$RP_NS_NODE" -6 route add "$RP_SPOOF6" via "$RP_ATTACKER6"
  # the attacker drops the replies to its spoofed sources silently: without these routes its
  # stack answers them with ICMP "no route" errors, which would count as attack traffic
  ip -n "$RP_NS_ATTACKER" route add blackhole "$RP_SPOOF4"
  ip -n "$RP_NS_ATTACKER" -6 route add blackhole "$RP_SPOOF6"
  # a 1M-source flood must not be limited by the node's neighbour or ICMP machinery
  ip netns exec "$RP_NS_NODE" sysctl -qw net.ipv6.icmp.ratelimit=0 net.ipv4.icmp_ratelimit=0
  mkdir -p "$RP_BPFFS"
  mount -t bpf bpf "$RP_BPFFS"
  gcc -O2 -Wall -o "$RP_FLOOD_GEN" "$RP_REPO/scripts/flood-gen.c"
  lab_log "flood lab up: $RP_NS_ATTACKER, $RP_NS_CLIENT ─ $RP_NS_SWITCH (br0) ─ $RP_NS_NODE"
}

flood_down() {
  lab_down   # ends every recorded pid, deletes $RP_NAMESPACES, unmounts, removes $RP_TMP
}

# flood_zone DIR [NAMES]: the zone flood.example (www, hNNNNN A/AAAA, a wildcard *.w whose answers
# only the slow path synthesises) in DIR/zones and the legit query file DIR/legit.txt (existing
# names other than the hot one, A and AAAA).
flood_zone() {
  local d=$1 n=${2:-10000}
  mkdir -p "$d/zones"
  $PY - "$d" "$FLOOD_ORIGIN" "$n" <<'PY'
import random, sys
d, origin, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
with open(f"{d}/zones/{origin}.zone", "w") as f:
    f.write(f"$ORIGIN {origin}.\n$TTL 3600\n"
            f"@ IN SOA ns1.{origin}. hostmaster.{origin}. 1 7200 3600 1209600 300\n"
            f"@ IN NS ns1.{origin}.\nns1 IN A 192.0.2.1\nwww IN A 192.0.2.80\nwww IN AAAA 2001:db8::80\n"
            f"*.w IN A 192.0.2.99\n")
    for i in range(n):
        f.write(f"h{i:05d} IN A 192.0.2.{i % 254 + 1}\n"
                f"h{i:05d} IN AAAA 2001:db8:{i // 65536:x}:{i % 65536:x}::1\n")
rng = random.Random(5)
with open(f"{d}/legit.txt", "w") as f:
    for _ in range(50000):
        f.write(f"h{rng.randrange(n):05d}.{origin}. {rng.choice(('A', 'AAAA'))}\n")
PY
}

# ---- the servers under test, all on $RP_NODE4/$RP_NODE6 port 53 in the node ns ----------------

# flood_nsd_start ZONEDIR [COOKIE_SECRET]: NSD with its RRL on at Debian's defaults
# (rrl-ratelimit 200, slip 2, /24 and /56), one server per CPU. With COOKIE_SECRET (32 hex
# digits) it answers DNS cookies (RFC 7873, RFC 9018 server cookies) made with that secret; NSD
# skips RRL for a query with a valid server cookie.
flood_nsd_start() {
  local conf secret=${2:-}
  conf=$(RP_NSD_SERVERS=$(nproc) lab_nsd_conf nsd-flood "$1" 53 "$RP_NODE4" "$RP_NODE6")
  sed -i '/rrl-ratelimit: 0/d; /rrl-whitelist-ratelimit: 0/d' "$conf"
  if [ -n "$secret" ]; then
    # cookie-secret-file names a file that doesn't exist: when that file exists (by default
    # /etc/nsd/nsd_cookiesecrets.txt), its secrets replace cookie-secret
    sed -i "/^server:/a\\  answer-cookie: yes\n  cookie-secret: \"$secret\"\n  cookie-secret-file: \"$RP_TMP/nsd-flood/none.txt\"" "$conf"
  fi
  nsd-checkconf "$conf" || { lab_die "bad nsd config $conf"; return 1; }
  lab_bg nsd-flood "$RP_TMP/nsd-flood/stderr" ip netns exec "$RP_NS_NODE" nsd -d -c "$conf" >/dev/null
  lab_wait_dns "$RP_NS_CLIENT" "$RP_NODE6" 53 "$FLOOD_ORIGIN" 15
}

# flood_knot_start ZONEDIR [udp|xdp [COOKIE_SECRET]]: knotd with mod-rrl (rate-limit 200, slip 2,
# as NSD), one UDP worker per CPU; with "xdp" it also listens through AF_XDP on n0 (Knot's XDP
# mode), where its modules apply too. With COOKIE_SECRET (32 hex digits): mod-cookies with that
# fixed secret, listed before mod-rrl, as Knot's docs ask (mod-rrl skips a response whose query
# carried a valid server cookie, which mod-cookies flags). Over UDP mod-cookies answers a query
# without a valid server cookie (a client cookie alone, or a wrong one) with BADCOOKIE and a
# fresh cookie (badcookie-slip 1, its default). knotd leaves its XDP program on n0 when it
# exits: flood_knot_stop.
flood_knot_start() {
  local zdir=$1 mode=${2:-udp} secret=${3:-} d=$RP_TMP/knot-flood xdp_if="" mods=mod-rrl/flood
  local modules=$'mod-rrl:\n  - id: flood\n    rate-limit: 200\n    slip: 2\n'
  if [ -n "$secret" ]; then
    modules+=$'mod-cookies:\n  - id: flood\n    secret: 0x'"$secret"$'\n'
    mods="mod-cookies/flood, mod-rrl/flood"
  fi
  [ "$mode" = xdp ] && xdp_if=$RP_NODE_IF
  KNOT_UDP_WORKERS=$(nproc) KNOT_XDP_IF=$xdp_if KNOT_MODULES=$modules KNOT_GLOBAL_MODULES=$mods \
    lab_knot_conf knot-flood "$zdir" 53 "$RP_NODE4" "$RP_NODE6" >/dev/null
  lab_in "$RP_NS_NODE" knotc -c "$d/knot.conf" conf-check >/dev/null || { lab_die "bad knot config $d/knot.conf"; return 1; }
  lab_bg knot-flood "$d/stderr" ip netns exec "$RP_NS_NODE" knotd -c "$d/knot.conf" >/dev/null
  lab_wait_dns "$RP_NS_CLIENT" "$RP_NODE6" 53 "$FLOOD_ORIGIN" 15 ||
    { cat "$d/stderr" "$d/knot.log" >&2 2>/dev/null; return 1; }
}

flood_knot_stop() {
  lab_stop knot-flood
  ip -n "$RP_NS_NODE" link set dev "$RP_NODE_IF" xdp off 2>/dev/null || true
}

# flood_rampart_start ZONEDIR [ARGS...]: native XDP on n0, slow path on the service address;
# extra ARGS (and $RP_FLOOD_RAMPART_ARGS) carry the flood defenses' flags.
flood_rampart_start() {
  local zdir=$1; shift
  # shellcheck disable=SC2086
  lab_rampart_start --iface "$RP_NODE_IF" --xdp-mode native --zone-dir "$zdir" \
    --listen "$RP_NODE4:53" --listen "[$RP_NODE6]:53" ${RP_FLOOD_RAMPART_ARGS:-} "$@" &&
    lab_wait_dns "$RP_NS_CLIENT" "$RP_NODE6" 53 "$FLOOD_ORIGIN" 15
}

# flood_legit_cookie [FAMILY]: the legit client learns a server cookie from the server under test,
# as a cookie-capable resolver does on first contact: a SOA query with its client cookie to the
# service address, from the legit namespace (a server cookie is bound to the client's address,
# so it is learnt from the address dnsperf sends from), then the same query with client + server
# cookie, which must not be refused with BADCOOKIE. Writes $RP_TMP/legit-cookie, which
# flood_round's dnsperf sends: "server HEX" (client + server cookie) or, when the server returns
# no usable server cookie, "client HEX" (the client cookie alone). Prints server|client. Run it
# with no flood going (before a round): a limited or lost reply would leave the client without
# a cookie for the round. RFC 9018 server cookies are good for an hour; a round takes seconds.
flood_legit_cookie() {
  local fam=${1:-6} dst kind
  [ "$fam" = 6 ] && dst=$RP_NODE6 || dst=$RP_NODE4
  ip netns exec "$RP_NS_CLIENT" $PY - "$dst" "$RP_FLOOD_CLIENT_COOKIE" "$FLOOD_ORIGIN" \
    >"$RP_TMP/legit-cookie" <<'PY' || echo "client $RP_FLOOD_CLIENT_COOKIE" >"$RP_TMP/legit-cookie"
import sys
import dns.edns, dns.message, dns.query, dns.rcode
dst, cc, origin = sys.argv[1], bytes.fromhex(sys.argv[2]), sys.argv[3]
def ask(cookie):
    q = dns.message.make_query(origin, "SOA", use_edns=0, options=[dns.edns.GenericOption(10, cookie)])
    q.flags = 0   # RD off: an authoritative query, like dnsperf's
    for _ in range(3):   # UDP: a lost reply is retried, not taken for "no cookie"
        try:
            r = dns.query.udp(q, dst, port=53, timeout=1)
        except Exception:  # noqa: BLE001: timeouts and malformed replies alike
            continue
        opt = next((o.to_wire() for o in r.options if o.otype == 10), b"")
        return r.rcode(), opt
    return None, b""
_, opt = ask(cc)
# RFC 7873: the echoed client cookie, then a server cookie of 8 to 32 bytes (RFC 9018: 16)
if opt[:8] == cc and 16 <= len(opt) <= 40:
    rcode, _ = ask(opt)
    if rcode is not None and rcode != dns.rcode.BADCOOKIE:
        print("server", opt.hex())
        sys.exit()
print("client", cc.hex())
PY
  read -r kind _ <"$RP_TMP/legit-cookie"
  echo "$kind"
}

# ---- one measured round ------------------------------------------------------------------------

flood_ifstats() { # flood_ifstats NS DEV -> "rx_packets rx_bytes tx_packets tx_bytes tx_dropped"
  ip -n "$1" -s -j link show "$2" | $PY -c '
import json, sys
s = json.load(sys.stdin)[0]["stats64"]
print(s["rx"]["packets"], s["rx"]["bytes"], s["tx"]["packets"], s["tx"]["bytes"], s["tx"]["dropped"])'
}

# flood_round OUT MIX SPREAD SECS [RATE [LEGIT_QPS [FAMILY]]]: one attack while the legit client
# runs dnsperf; appends key=value lines to OUT.
#   MIX: none (no attack), hot (one name), random (random names under the zone), cookie (the hot name with a wrong
#   server cookie), wild (random names under the wildcard *.w: what only the slow path answers,
#   the miss budget's case); SPREAD: one (one spoofed source) or spread (a distinct /56 per packet, 2^23
#   available; IPv4: the 256 addresses of 203.0.113.0/24); RATE 0 = the generator's maximum.
#   The legit client's queries carry a DNS cookie (EDNS option 10, dnsperf -E sends one fixed
#   option): the client + server cookie of $RP_TMP/legit-cookie when flood_legit_cookie wrote it,
#   else the client cookie alone (a first contact). Recorded as legit_cookie=server|client.
flood_round() {
  local out=$1 mix=$2 spread=$3 secs=$4 rate=${5:-0} lqps=${6:-5000} fam=${7:-6}
  local dst src name flags="" nmac a0 a1 c0 c1 s0 s1 x0 x1 gen dp t0 t1
  local ckind=client chex=$RP_FLOOD_CLIENT_COOKIE
  [ -s "$RP_TMP/legit-cookie" ] && read -r ckind chex <"$RP_TMP/legit-cookie"
  [ "$fam" = 6 ] && dst=$RP_NODE6 || dst=$RP_NODE4
  case $spread in
    one) [ "$fam" = 6 ] && src=$RP_SPOOF6_ONE || src=$RP_SPOOF4_ONE ;;
    spread) [ "$fam" = 6 ] && src=$RP_SPOOF6 || src=$RP_SPOOF4 ;;
    *) lab_die "spread: one|spread"; return 1 ;;
  esac
  case $mix in
    none) name="" ;;   # the legit client alone: the baseline
    hot) name=$FLOOD_HOT ;;
    random) name=$FLOOD_ORIGIN flags=-R ;;
    cookie) name=$FLOOD_HOT flags=-C ;;
    wild) name=w.$FLOOD_ORIGIN flags=-R ;;   # random names under the wildcard: slow path only
    *) lab_die "mix: none|hot|random|cookie|wild"; return 1 ;;
  esac
  nmac=$(lab_mac "$RP_NS_NODE" "$RP_NODE_IF")
  a0=$(flood_ifstats "$RP_NS_ATTACKER" a0); c0=$(lab_ns_cpu_ticks "$RP_NS_NODE")
  s0=$(lab_softirq_ticks); x0=$(lab_xdp_run_ns "$RP_NS_NODE" "$RP_NODE_IF"); t0=$(date +%s.%N)
  # the attack outlasts the legit run by a second on each side
  : >"$RP_TMP/gen.out"
  if [ -n "$name" ]; then
    # shellcheck disable=SC2086
    # Pinned to one CPU: on veth the node's XDP program runs on the sender's CPU, and its
    # aggregate limits are per CPU, so a generator wandering between CPUs would meet one or
    # two shares of them from round to round (and the amplification with it).
    timeout $((secs + 20)) taskset -c 0 ip netns exec "$RP_NS_ATTACKER" "$RP_FLOOD_GEN" -i a0 -D "$nmac" \
      -d "$dst" -s "$src" -n "$name" $flags -t $((secs + 2)) -r "$rate" -x "$RANDOM$RANDOM" \
      >"$RP_TMP/gen.out" 2>&1 &
    gen=$!
  else
    sleep $((secs + 2)) &   # same timing without an attacker
    gen=$!
  fi
  sleep 1
  dp=$(timeout $((secs + 20)) ip netns exec "$RP_NS_CLIENT" dnsperf -s "$dst" -d "$RP_TMP/legit.txt" \
       -l "$secs" -Q "$lqps" -q 20000 -t 2 -E "10:$chex" 2>&1 | grep -v '^\[Timeout\]') || true
  wait "$gen" || true
  sleep 0.5   # replies in flight
  a1=$(flood_ifstats "$RP_NS_ATTACKER" a0); c1=$(lab_ns_cpu_ticks "$RP_NS_NODE")
  s1=$(lab_softirq_ticks); x1=$(lab_xdp_run_ns "$RP_NS_NODE" "$RP_NODE_IF"); t1=$(date +%s.%N)
  echo "$dp" >"$RP_TMP/dnsperf.out"
  $PY - "$a0" "$a1" "$c0" "$c1" "$s0" "$s1" "$x0" "$x1" "$t0" "$t1" "$(cat "$RP_TMP/gen.out")" "$dp" \
    "$mix" "$spread" "$ckind" >>"$out" <<'PY'
import re, sys
a0, a1 = ([int(x) for x in s.split()] for s in sys.argv[1:3])
c0, c1, s0, s1, x0, x1 = (int(x) for x in sys.argv[3:9])
el = float(sys.argv[10]) - float(sys.argv[9])
gen, dp, mix, spread, ckind = sys.argv[11:16]
g = dict(re.findall(r"(\w+)=([\d.]+)", gen))
def num(pat, default="0"):
    m = re.search(pat, dp)
    return m.group(1) if m else default
sent, done = int(num(r"Queries sent:\s+(\d+)")), int(num(r"Queries completed:\s+(\d+)"))
d = [y - x for x, y in zip(a0, a1)]   # rx_packets rx_bytes tx_packets tx_bytes tx_dropped
hz = 100
kv = {
    "mix": mix, "spread": spread, "legit_cookie": ckind,
    "gen_packets": g.get("packets", "0"), "gen_bytes": g.get("bytes", "0"),
    "gen_pps": g.get("pps", "0"), "gen_sources": g.get("sources", "0"), "gen_seconds": g.get("seconds", "0"),
    "atk_tx_packets": d[2], "atk_tx_bytes": d[3], "atk_tx_dropped": d[4],
    "atk_rx_packets": d[0], "atk_rx_bytes": d[1],
    "legit_sent": sent, "legit_completed": done,
    "legit_noerror": num(r"NOERROR (\d+)"),
    "legit_lat_avg_ms": "%.3f" % (float(num(r"Average Latency \(s\):\s+([\d.]+)")) * 1000),
    "legit_lat_max_ms": "%.3f" % (float(num(r"Average Latency.*max ([\d.]+)")) * 1000),
    "node_proc_cpu_s": "%.2f" % ((c1 - c0) / hz), "softirq_cpu_s": "%.2f" % ((s1 - s0) / hz),
    "xdp_cpu_s": "%.3f" % ((x1 - x0) / 1e9), "elapsed_s": "%.2f" % el,
}
print(" ".join(f"{k}={v}" for k, v in kv.items()))
PY
}
