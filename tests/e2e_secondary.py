"""Secondary zones (issue 12 item 1): Knot as the hidden primary in a namespace of its own,
rampart as the secondary with XDP attached (native, on a veth of its own), clients in a third.

- The first AXFR fills an empty secondary; the XDP program answers the zone.
- An incremental change on the primary (one record, `knotc zone-reload`, NOTIFY) while a
  querier asks at a fixed rate and dnsperf runs at a fixed rate: the time from the change to the
  first new answer (from XDP: tx_answer moves by every answer), no answer that is neither the old
  nor the new version, none old again after the first new one, none lost; IXFR used.
- A large change (every host's address) the same way.
- A zone without NOTIFY from the primary follows by the SOA refresh timer alone.
- A zone whose key's secret is wrong is never served (the primary refuses, rampart logs BADSIG
  or NOTAUTH); a NOTIFY signed with a wrong key or sent from an address that is not a primary is
  refused and triggers nothing.
- A restart with the primary down serves the on-disk copy at once; the zone expires (SERVFAIL,
  from the slow path: the fast path holds none of it) at the SOA expire after the last refresh,
  and comes back when the primary does.

Own namespaces rpx{p,n,c}-PID: primary 198.51.100.1 -- 198.51.100.2 node 192.0.2.1 -- 192.0.2.2
client. Figures are printed as `xfr latency ...` lines."""

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.tsig
import dns.tsigkeyring

import rplab
from e2e_operations import stop, wait_ready

PID = os.getpid()
NS_P, NS_N, NS_C = f"rpxp-{PID}", f"rpxn-{PID}", f"rpxc-{PID}"
PRIMARY, NODE_P, NODE_C, CLIENT = "198.51.100.1", "198.51.100.2", "192.0.2.1", "192.0.2.2"
METRICS_PORT = 9473
HOSTS = 2000
SECRET = base64.b64encode(b"rampart-e2e-secondary-tsig-key!!").decode()
WRONG = base64.b64encode(b"not-the-secret-the-primary-knows").decode()
REFRESH, RETRY, EXPIRE = 2, 1, 12
QPS = 400          # the querier's fixed rate
PERF_QPS = 3000    # dnsperf's
SLOW_PORT = 5353   # the XDP program answers UDP port 53 only: this port is the slow path's
FLIP_INTERVAL = 0.0004  # both_paths: a query every 0.4 ms, alternating the paths
# Both paths switch in one step: the first new answer of each within this of the other's
# (measured: 120 ms apart while the slow path swapped before the maps were filled; 0.1-0.5 ms,
# the querier's resolution, once it reads the program's generation word).
FLIP_GAP = 0.003
# A file zone served beside the secondaries, large enough that filling the maps takes a while
# (every install writes the whole table): the time a path could run ahead of the other.
BULK = 50000
NSD_PORT, REFUSER_PORT = 5300, 5301  # the other primaries, on the primary's address
# Their zones are small: the maps' room for secondary zones (xdp.secondary_records) is sized at
# start, and xfr.test and timer.test take most of it.
FALLBACK_HOSTS = 20


def sh(*cmd, ns=None, check=True, timeout=30):
    full = (["ip", "netns", "exec", ns] if ns else []) + list(cmd)
    return subprocess.run(full, capture_output=True, text=True, timeout=timeout, check=check)


def zone(origin, serial, www, host_net, hosts=HOSTS):
    lines = [f"$ORIGIN {origin}.", "$TTL 300",
             f"@ SOA ns.{origin}. hostmaster.{origin}. {serial} {REFRESH} {RETRY} {EXPIRE} 60",
             "@ NS ns", "ns A 192.0.2.53", f"www A {www}"]
    lines += [f"h{i} A {host_net}.{i % 250 + 1}" for i in range(hosts)]
    return "\n".join(lines) + "\n"


def knot_conf(d, zdir):
    return f"""server:
    rundir: "{d}"
    pidfile: "{d}/knot.pid"
    listen: [ {PRIMARY}@53 ]
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
control:
    listen: "{d}/knot.sock"
log:
  - target: "{d}/knot.log"
    any: info
database:
    storage: "{d}/storage"
key:
  - id: xfr-key
    algorithm: hmac-sha256
    secret: {SECRET}
remote:
  - id: node
    address: {NODE_P}@53
    key: xfr-key
acl:
  - id: to-node
    address: {NODE_P}
    key: xfr-key
    action: transfer
template:
  - id: default
    storage: "{zdir}"
    dnssec-signing: off
    zonefile-sync: -1
    zonefile-load: difference
    journal-content: changes
    semantic-checks: off
    acl: to-node
zone:
  - domain: xfr.test.
    notify: node
  # No NOTIFY, and no journal: an IXFR is answered with the whole zone.
  - domain: timer.test.
    zonefile-load: whole
    journal-content: none
  - domain: badkey.test.
"""


def nsd_conf(d):
    return f"""server:
    ip-address: {PRIMARY}@{NSD_PORT}
    username: ""
    zonesdir: "{d}"
    database: ""
    pidfile: "{d}/nsd.pid"
    xfrdfile: "{d}/xfrd.state"
    xfrdir: "{d}"
    zonelistfile: "{d}/zone.list"
    logfile: "{d}/nsd.log"
    server-count: 1
remote-control:
    control-enable: no
zone:
    name: nsd.test
    zonefile: nsd.test.zone
    provide-xfr: {NODE_P} NOKEY
"""


def rampart_conf(tmp, pins):
    sec = os.path.join(tmp, "secondary")
    return f"""[server]
listen = ["0.0.0.0:53", "0.0.0.0:{SLOW_PORT}"]
run_dir = "{tmp}/run"
user = "root"
metrics = "127.0.0.1:{METRICS_PORT}"

[zones]
files = ["{tmp}/bulk.test.zone"]

# The querier of both_paths asks one name 2,500 times a second from one address: the rate
# limits are not what this module tests.
[rrl]
rate = 0

[xdp]
interfaces = ["xn0"]
mode = "native"
pin_dir = "{pins}"

[[key]]
name = "xfr-key"
algorithm = "hmac-sha256"
secret = "{SECRET}"

[[key]]
name = "wrong-key"
algorithm = "hmac-sha256"
secret = "{WRONG}"

[[zones.secondary]]
origin = "xfr.test"
primaries = ["{PRIMARY}"]
key = "xfr-key"
file = "{sec}/xfr.test.zone"

[[zones.secondary]]
origin = "timer.test"
primaries = ["{PRIMARY}"]
key = "xfr-key"
file = "{sec}/timer.test.zone"

# IXFR falls back to AXFR: NSD 4.6 answers IXFR with the whole zone, the refuser with an error.
[[zones.secondary]]
origin = "nsd.test"
primaries = ["{PRIMARY}:{NSD_PORT}"]
file = "{sec}/nsd.test.zone"

[[zones.secondary]]
origin = "refuse.test"
primaries = ["{PRIMARY}:{REFUSER_PORT}"]
file = "{sec}/refuse.test.zone"

[[zones.secondary]]
origin = "badkey.test"
primaries = ["{PRIMARY}:53"]
key = "wrong-key"
file = "{sec}/badkey.test.zone"
"""


class Net:
    """The three namespaces and their veths; removed whatever happens."""

    def __init__(self, tmp):
        self.tmp = tmp

    def __enter__(self):
        try:
            return self._make()
        except BaseException:
            self.__exit__()
            raise

    def _make(self):
        for ns in (NS_P, NS_N, NS_C):
            sh("ip", "netns", "add", ns)
        sh("ip", "-n", NS_N, "link", "add", "xn0", "numtxqueues", "1", "numrxqueues", "1", "type", "veth",
           "peer", "name", "xc0", "netns", NS_C, "numtxqueues", "1", "numrxqueues", "1")
        sh("ip", "-n", NS_N, "link", "add", "xn1", "type", "veth", "peer", "name", "xp0", "netns", NS_P)
        for ns, dev, addr in ((NS_N, "xn0", NODE_C), (NS_C, "xc0", CLIENT), (NS_N, "xn1", NODE_P),
                              (NS_P, "xp0", PRIMARY)):
            sh("ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
            sh("ip", "-n", ns, "link", "set", dev, "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        # Native XDP_TX on veth needs a program on the peer; the client's checksums complete
        # (README of tests: facts about veth).
        obj = os.path.join(self.tmp, "xdp_pass.o")
        here = os.path.dirname(os.path.abspath(__file__))
        sh("clang-14", "-O2", "-target", "bpf", "-c", os.path.join(here, "xdp_pass.c"), "-o", obj)
        sh("ethtool", "-K", "xc0", "tx", "off", ns=NS_C)
        sh("ip", "-n", NS_C, "link", "set", "dev", "xc0", "xdpdrv", "obj", obj, "sec", "xdp")
        return self

    def __exit__(self, *exc):
        for ns in (NS_P, NS_N, NS_C):
            sh("ip", "netns", "del", ns, check=False)


def ask(name, qtype="A", server=NODE_C, key=None, timeout=1.0):
    """(rcode, sorted rdata texts) from the client namespace (this process is in it)."""
    q = dns.message.make_query(name, qtype)
    if key:
        q.use_tsig(key)
    try:
        r = dns.query.udp(q, server, timeout=timeout)
    except Exception as e:  # noqa: BLE001
        return None, [repr(e)]
    return r.rcode(), sorted(rd.to_text() for rr in r.answer for rd in rr if rr.rdtype == dns.rdatatype.from_text(qtype))


def wait_answer(name, want, secs):
    deadline = time.monotonic() + secs
    got = None
    while time.monotonic() < deadline:
        got = ask(name)
        if got == want:
            return True, got
        time.sleep(0.1)
    return False, got


def post(s, i, name, port):
    """Sends query number `i` (its ID) for `name` A to the node's `port`; returns the ID."""
    q = dns.message.make_query(name, "A")
    q.id = i % 65536
    s.sendto(q.to_wire(), (NODE_C, port))
    return q.id


def fetch(s, pause):
    """The next reply waiting on the nonblocking socket `s`, else None after `pause` s."""
    try:
        wire, _ = s.recvfrom(4096)
    except BlockingIOError:
        time.sleep(pause)
        return None
    return dns.message.from_wire(wire)


def querier(names, old, new, secs, change, t_stop_early=None):
    """Ask `names` in turn at QPS for `secs`, calling `change()` after 1 s. Returns figures:
    answers, lost, bad (neither old nor new), back (old after new), latency (s from the change
    to the first answer with new data), per name old→new."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setblocking(False)
    s.bind((CLIENT, 0))
    sent = {}
    res = {"answers": 0, "lost": 0, "bad": [], "back": 0, "first_new": None, "t_change": None}
    new_seen = set()
    interval = 1.0 / QPS
    t0 = time.monotonic()
    i = 0
    changed = False
    while True:
        now = time.monotonic()
        if now - t0 > secs:
            break
        if not changed and now - t0 > 1.0:
            res["t_change"] = time.monotonic()
            change()
            changed = True
            continue
        if now >= t0 + i * interval:
            name = names[i % len(names)]
            sent[post(s, i, name, 53)] = (name, now)
            i += 1
        r = fetch(s, 0.0005)
        if r is None:
            continue
        name, _t = sent.pop(r.id, (None, None))
        if name is None:
            continue
        res["answers"] += 1
        data = sorted(rd.to_text() for rr in r.answer for rd in rr)
        if r.rcode() == 0 and data == [new[name]]:
            if res["first_new"] is None and changed:
                res["first_new"] = time.monotonic()
            new_seen.add(name)
        elif r.rcode() == 0 and data == [old[name]]:
            if name in new_seen:
                res["back"] += 1
        else:
            res["bad"].append((name, dns.rcode.to_text(r.rcode()), data))
    # Stragglers.
    deadline = time.monotonic() + 1
    while sent and time.monotonic() < deadline:
        try:
            wire, _ = s.recvfrom(4096)
            r = dns.message.from_wire(wire)
            if sent.pop(r.id, None):
                res["answers"] += 1
        except BlockingIOError:
            time.sleep(0.01)
    res["lost"] = len(sent)
    res["sent"] = i
    s.close()
    if res["first_new"] is not None:
        res["latency"] = res["first_new"] - res["t_change"]
    return res


def stats(lab, pins):
    out = sh(lab.bin, "stats", "--json", "--pin-dir", pins, ns=NS_N)
    import json
    return {k: int(v) for k, v in json.loads(out.stdout).items()}


def metrics():
    out = sh("curl", "-s", f"http://127.0.0.1:{METRICS_PORT}/metrics", ns=NS_N, check=False)
    return out.stdout


def log_lines(log, text):
    with open(log) as f:
        return [line for line in f if text in line]


def knot_change(kconf, zdir, origin, text, blocking=False):
    """Rewrite the primary's zone file and reload it; blocking waits until Knot serves it
    (without it the reload is queued, and a refresh asked right away can still see the old serial)."""
    with open(os.path.join(zdir, f"{origin}.zone"), "w") as f:
        f.write(text)
    sh("knotc", "-c", kconf, *(["-b"] if blocking else []), "zone-reload", f"{origin}.")


def dnsperf_start(tmp, secs):
    qfile = os.path.join(tmp, "perf.queries")
    with open(qfile, "w") as f:
        for i in range(200):
            f.write(f"h{i}.xfr.test A\n")
    return subprocess.Popen(["ip", "netns", "exec", NS_C, "dnsperf", "-s", NODE_C, "-d", qfile, "-Q", str(PERF_QPS),
                             "-l", str(secs), "-t", "1"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def dnsperf_result(p):
    out, _ = p.communicate(timeout=60)
    sent = lost = None
    for line in out.splitlines():
        line = line.strip()
        if line.startswith("Queries sent:"):
            sent = int(line.split()[2])
        if line.startswith("Queries lost:"):
            lost = int(line.split()[2])
    return sent, lost, out


def change_under_load(c, lab, pins, tmp, kconf, zdir, what, serial, www_old, www_new, net_old, net_new, kind, within):
    names = ["www.xfr.test."] + [f"h{i}.xfr.test." for i in range(0, HOSTS, 97)]
    old = {n: (www_old if n.startswith("www") else f"{net_old}.{int(n[1:].split('.')[0]) % 250 + 1}") for n in names}
    new = {n: (www_new if n.startswith("www") else f"{net_new}.{int(n[1:].split('.')[0]) % 250 + 1}") for n in names}
    before = stats(lab, pins)
    log = os.path.join(tmp, "rampart.log")
    transfers_before = len(log_lines(log, "transfer done"))
    perf = dnsperf_start(tmp, 5)
    res = querier(names, old, new, 5.0, lambda: knot_change(kconf, zdir, "xfr.test", zone("xfr.test", serial, www_new, net_new)))
    sent, lost, out = dnsperf_result(perf)
    after = stats(lab, pins)
    lat = res.get("latency")
    print(f"xfr latency {what}: {lat * 1000:.0f} ms (primary's zone-reload to the first new answer from XDP); "
          f"querier {res['sent']} sent, {res['answers']} answered; dnsperf {sent} sent, {lost} lost"
          if lat is not None else f"xfr latency {what}: no new answer", flush=True)
    c.check(f"{what}: new data answered within {within} s of the change", lat is not None and lat < within,
            str(res)[:500])
    c.check(f"{what}: no answer is neither the old nor the new version", not res["bad"], str(res["bad"][:5]))
    c.check(f"{what}: no old answer once the new one was seen", res["back"] == 0, str(res["back"]))
    c.check(f"{what}: the querier lost nothing", res["lost"] == 0 and res["sent"] > QPS * 3,
            f"sent {res['sent']} lost {res['lost']}")
    c.check(f"{what}: dnsperf at {PERF_QPS}/s lost under 0.5%", sent and lost is not None and lost <= sent * 0.005,
            out[-600:])
    answered_fast = sum(after.get(k, 0) - before.get(k, 0) for k in rplab.FAST_TX)
    total = res["answers"] + (sent or 0) - (lost or 0)
    c.check(f"{what}: the XDP program sent every answer ({total} answers)", answered_fast >= total * 0.999 and
            answered_fast <= total + 50, f"fast path answered {answered_fast} of {total}")
    lines = log_lines(log, "transfer done")[transfers_before:]
    c.check(f"{what}: one transfer, by {kind}, serial {serial}",
            len(lines) == 1 and f'kind="{kind}"' in lines[0] or (len(lines) == 1 and f"kind={kind}" in lines[0])
            and f"serial={serial}" in lines[0], "".join(lines))
    return lat


def both_paths(old, new, secs, change):
    """Asks www.xfr.test. every FLIP_INTERVAL, alternately from the XDP program (UDP 53) and
    the slow path (UDP SLOW_PORT), calling `change()` after 1 s. Returns the answers as
    (path, send time, "old"/"new"/what else, receive time) in send order, and the queries lost."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setblocking(False)
    s.bind((CLIENT, 0))
    sent, got = {}, []

    def answered(r):
        path, t = sent.pop(r.id)
        data = sorted(rd.to_text() for rr in r.answer for rd in rr)
        version = {(0, (old,)): "old", (0, (new,)): "new"}.get((r.rcode(), tuple(data)),
                                                              f"{dns.rcode.to_text(r.rcode())} {data}")
        return path, t, version, time.monotonic()

    t0 = time.monotonic()
    i = 0
    changed = False
    while time.monotonic() - t0 < secs:
        now = time.monotonic()
        if not changed and now - t0 > 1.0:
            change()
            changed = True
            continue
        if now >= t0 + i * FLIP_INTERVAL:
            path = ("fast", "slow")[i % 2]
            sent[post(s, i, "www.xfr.test.", 53 if path == "fast" else SLOW_PORT)] = (path, now)
            i += 1
        r = fetch(s, 0.0001)
        if r is not None and r.id in sent:
            got.append(answered(r))
    # The queries sent last may be answered after the loop (a busy host's slow path): judged
    # by their content like the others; what is still unanswered a second later is lost.
    deadline = time.monotonic() + 1
    while sent and time.monotonic() < deadline:
        r = fetch(s, 0.01)
        if r is not None and r.id in sent:
            got.append(answered(r))
    s.close()
    got.sort(key=lambda a: a[1])
    return got, len(sent)


def flip_together(c, lab, pins, kconf, zdir, serial, www_old, www_new):
    """A change (NOTIFY, IXFR) while both paths are asked in turn: the first new answer of each
    within FLIP_GAP of the other's, no answer where one path is older than the other past that,
    none old again, the XDP program sent the fast path's answers."""
    before = stats(lab, pins)
    got, lost = both_paths(www_old, www_new, 4.0, lambda: knot_change(
        kconf, zdir, "xfr.test", zone("xfr.test", serial, www_new, "198.51.100")))
    after = stats(lab, pins)
    # A query was answered somewhere between its sending and its answer's arrival: on a busy host
    # the slow path reads a query that waited in its socket later than it was sent (and so may
    # answer it from the newer version), while the XDP program answers on arrival. An old answer
    # contradicts a new one only if its query was sent after the new answer arrived.
    first = {p: next(((t, r) for q, t, v, r in got if q == p and v == "new"), None) for p in ("fast", "slow")}
    bad = [a for a in got if a[2] not in ("old", "new")]
    ok = None not in first.values()
    other = {"fast": "slow", "slow": "fast"}
    # How far apart the two first new answers' [sent, arrived] intervals are (0: they overlap).
    gap = max(0.0, first["fast"][0] - first["slow"][1], first["slow"][0] - first["fast"][1]) if ok else None
    # An old answer on one path sent after the other's first new one arrived, past the allowed gap.
    mixed = [(p, round((t - first[other[p]][1]) * 1000, 2)) for p, t, v, _ in got
             if ok and v == "old" and t > first[other[p]][1] + FLIP_GAP]
    back = [(p, t) for p, t, v, _ in got if ok and v == "old" and t > first[p][0]]
    counts = {p: sum(1 for q, *_ in got if q == p) for p in ("fast", "slow")}
    if ok:
        lead = "XDP" if first["fast"][0] < first["slow"][0] else "slow path"
        sent_gap = abs(first["fast"][0] - first["slow"][0])
        print(f"xfr flip gap: {gap * 1000:.2f} ms between the first new answers' intervals from XDP and from "
              f"the slow path ({sent_gap * 1000:.2f} ms between their queries, {lead} first; {counts['fast']} + "
              f"{counts['slow']} answers, a query every {FLIP_INTERVAL * 1000:.1f} ms alternating)", flush=True)
    c.check("both paths: each answered the new version", ok, str(got[-4:]))
    c.check(f"both paths: their first new answers within {FLIP_GAP * 1000:.0f} ms of each other",
            ok and gap <= FLIP_GAP, f"gap {gap}")
    c.check("both paths: no old answer on one path once the other answered the new version (past the gap)",
            ok and not mixed, str(mixed[:10]))
    c.check("both paths: none old again, none neither version, none lost",
            ok and not back and not bad and lost == 0 and min(counts.values()) > 1.5 / FLIP_INTERVAL,
            f"back {back[:5]} bad {bad[:5]} lost {lost} {counts}")
    fast_tx = sum(after.get(k, 0) - before.get(k, 0) for k in rplab.FAST_TX)
    c.check("both paths: the XDP program sent the fast path's answers, none of the slow path's",
            counts["fast"] <= fast_tx <= counts["fast"] + 2, f"tx {fast_tx}, fast answers {counts['fast']}")


def run():
    c = rplab.Checks("e2e_secondary")
    lab = rplab.Lab()
    if lab.target != "rampart":
        c.skip("secondary", "the node is not rampart")
        return c
    tmp = tempfile.mkdtemp(prefix="rp-xfr-")
    pins = os.path.join(os.path.dirname(lab.pin_dir), f"rampart-xfr-{PID}")
    knot = proc = nsd = refuser = None
    try:
        with Net(tmp):
            rplab.setns(NS_C)
            zdir = os.path.join(tmp, "primary-zones")
            kdir = os.path.join(tmp, "knot")
            os.makedirs(os.path.join(kdir, "storage"))
            os.makedirs(zdir)
            for origin in ("xfr.test", "timer.test", "badkey.test"):
                with open(os.path.join(zdir, f"{origin}.zone"), "w") as f:
                    f.write(zone(origin, 1, "203.0.113.10", "192.0.2"))
            kconf = os.path.join(kdir, "knot.conf")
            with open(kconf, "w") as f:
                f.write(knot_conf(kdir, zdir))
            sh("knotc", "-c", kconf, "conf-check")
            knot = subprocess.Popen(["ip", "netns", "exec", NS_P, "knotd", "-c", kconf],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            with open(os.path.join(tmp, "bulk.test.zone"), "w") as f:
                f.write("$ORIGIN bulk.test.\n$TTL 300\n@ SOA ns hm 1 3600 600 86400 60\n@ NS ns\n"
                        "ns A 192.0.2.53\n" + "".join(f"b{i} A 198.51.100.{i % 250 + 1}\n" for i in range(BULK)))
            nsd, refuser = fallback_primaries(tmp)
            rconf = os.path.join(tmp, "rampart.toml")
            with open(rconf, "w") as f:
                f.write(rampart_conf(tmp, pins))
            log = os.path.join(tmp, "rampart.log")

            def start(log):
                with open(log, "a") as out:
                    return subprocess.Popen(["ip", "netns", "exec", NS_N, lab.bin, "run", "--config", rconf],
                                            stdout=out, stderr=subprocess.STDOUT)
            proc = start(log)
            if not c.check("rampart starts as a secondary with no copy yet", wait_ready(proc, log),
                           open(log).read()[-2000:]):
                return c
            ok, got = wait_answer("www.xfr.test.", (0, ["203.0.113.10"]), 10)
            c.check("first transfer: the zone is served", ok, f"{got} {open(log).read()[-1500:]}")
            first = log_lines(log, "transfer done")
            c.check("first transfer: AXFR of the empty secondary",
                    any("xfr.test." in line and "axfr" in line and "serial=1" in line for line in first), "".join(first))
            # The slow path swaps its catalog just before the program's maps are filled: the
            # first answers may come from it for as long as the install takes.
            deadline = time.monotonic() + 5
            while True:
                before = stats(lab, pins)
                got = ask("h5.xfr.test.")
                after = stats(lab, pins)
                if after["tx_answer"] - before["tx_answer"] == 1 or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            c.check("first transfer: answered by the XDP program",
                    after["tx_answer"] - before["tx_answer"] == 1 and got == (0, ["192.0.2.6"]),
                    f"{got} {rplab.delta(before, after)}")
            change_under_load(c, lab, pins, tmp, kconf, zdir, "incremental change", 2, "203.0.113.10",
                              "203.0.113.20", "192.0.2", "192.0.2", "ixfr", 1.0)
            change_under_load(c, lab, pins, tmp, kconf, zdir, "large change", 3, "203.0.113.20",
                              "203.0.113.30", "192.0.2", "198.51.100", "ixfr", 2.0)
            c.run("both paths flip together", flip_together, c, lab, pins, kconf, zdir, 4, "203.0.113.30",
                  "203.0.113.31")
            # timer.test: the primary sends no NOTIFY for it; the refresh timer finds the change.
            ok, _ = wait_answer("www.timer.test.", (0, ["203.0.113.10"]), 10)
            t = time.monotonic()
            knot_change(kconf, zdir, "timer.test", zone("timer.test", 2, "203.0.113.40", "192.0.2"))
            ok, got = wait_answer("www.timer.test.", (0, ["203.0.113.40"]), REFRESH + 6)
            print(f"xfr latency by the refresh timer (refresh {REFRESH} s): {(time.monotonic() - t) * 1000:.0f} ms",
                  flush=True)
            c.check(f"no NOTIFY: the SOA refresh timer ({REFRESH} s) brings the change", ok, str(got))
            lines = [line for line in log_lines(log, "transfer done") if "timer.test." in line and "serial=2" in line]
            c.check("no journal on the primary: the IXFR answered with the whole zone is taken (kind axfr)",
                    len(lines) == 1 and 'kind="axfr"' in lines[0], "".join(lines))
            c.run("rampart ctl on secondary zones", ctl_checks, c, lab, tmp, kconf, zdir)
            c.run("IXFR answered with the whole zone (NSD)", nsd_fallback, c, lab, tmp, nsd)
            c.run("IXFR answered with an error (the refuser)", refused_fallback, c, lab, tmp)
            # A wrong key: the primary refuses, nothing is served.
            rc, data = ask("www.badkey.test.")
            bad = [line for line in log_lines(log, "refresh failed") if "badkey.test" in line]
            c.check("wrong TSIG key: the transfer is refused and logged", bad and rc == dns.rcode.REFUSED,
                    f"{rc} {data} {''.join(bad[-2:])}")
            c.check("wrong TSIG key: no transfer of that zone", not [line for line in log_lines(log, "transfer done")
                                                                     if "badkey.test" in line])
            c.run("NOTIFY refused", notify_checks, c, tmp, log)
            c.run("restart and expire", restart_expire, c, lab, pins, tmp, log, knot, kconf, start, proc)
    finally:
        rplab.setns(lab.ns_client)
        for p in (proc, knot, nsd, refuser):
            if p is not None:
                stop(p)
        if os.environ.get("RP_KEEP_TMP") != "1":
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"kept {tmp}")
        shutil.rmtree(pins, ignore_errors=True)
    return c


def fallback_primaries(tmp):
    """NSD (no IXFR history: it answers IXFR with the whole zone) and the refuser (IXFR answered
    with an error, AXFR with the zone) in the primary's namespace, each with its zone's serial 1."""
    d = os.path.join(tmp, "nsd")
    os.makedirs(d)
    with open(os.path.join(d, "nsd.test.zone"), "w") as f:
        f.write(zone("nsd.test", 1, "203.0.113.60", "192.0.2", FALLBACK_HOSTS))
    with open(os.path.join(d, "nsd.conf"), "w") as f:
        f.write(nsd_conf(d))
    nsd = subprocess.Popen(["ip", "netns", "exec", NS_P, "nsd", "-d", "-c", os.path.join(d, "nsd.conf")],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    d = os.path.join(tmp, "refuser")
    os.makedirs(d)
    with open(os.path.join(d, "refuse.test.zone"), "w") as f:
        f.write(zone("refuse.test", 1, "203.0.113.70", "192.0.2", FALLBACK_HOSTS))
    here = os.path.dirname(os.path.abspath(__file__))
    refuser = subprocess.Popen(["ip", "netns", "exec", NS_P, "/usr/bin/python3", os.path.join(here, "ixfr_refuser.py"),
                                PRIMARY, str(REFUSER_PORT), os.path.join(d, "refuse.test.zone"),
                                os.path.join(d, "rcode"), os.path.join(d, "queries.log")],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return nsd, refuser


def last_transfer(lab, tmp, origin):
    """zone-status's serial served and last transfer (kind, serial) of `origin`."""
    rc, got = ctl(lab, tmp, "zone-status", origin)
    z = got["zones"][0] if rc == 0 else {}
    t = (z.get("transfer") or {}).get("last_transfer") or {}
    return z.get("serial"), t.get("kind"), t.get("serial")


def fallback_refresh(c, lab, tmp, what, origin, serial, www):
    """`ctl refresh` after the primary's change to `serial`: served, and zone-status records an
    AXFR of it."""
    rc, got = ctl(lab, tmp, "refresh", origin)
    answer = ask(f"www.{origin}.")
    c.check(f"{what}: ctl refresh brings serial {serial}, its data served",
            rc == 0 and got.get("served_serial") == serial and answer == (0, [www]), f"{rc} {got} {answer}")
    status = last_transfer(lab, tmp, origin)
    c.check(f"{what}: zone-status records the transfer as axfr of serial {serial}", status == (serial, "axfr", serial),
            str(status))


def nsd_fallback(c, lab, tmp, nsd):
    ok, got = wait_answer("www.nsd.test.", (0, ["203.0.113.60"]), 10)
    c.check("NSD primary: the first transfer is served", ok, str(got))
    with open(os.path.join(tmp, "nsd", "nsd.test.zone"), "w") as f:
        f.write(zone("nsd.test", 2, "203.0.113.61", "192.0.2", FALLBACK_HOSTS))
    nsd.send_signal(signal.SIGHUP)  # NSD reads its changed zone files again
    deadline, serial = time.monotonic() + 10, None
    while time.monotonic() < deadline and serial != "2":
        out = sh("kdig", f"@{PRIMARY}", "-p", str(NSD_PORT), "+short", "SOA", "nsd.test.", ns=NS_P, check=False)
        serial = (out.stdout.split() + [None] * 3)[2]
        time.sleep(0.1)
    log = os.path.join(tmp, "rampart.log")
    fallback_refresh(c, lab, tmp, "NSD answers IXFR with the whole zone", "nsd.test", 2, "203.0.113.61")
    c.check("NSD: the IXFR's whole-zone answer is taken as is (no retry by AXFR)",
            not [line for line in log_lines(log, "IXFR failed") if "nsd.test" in line])


def refused_fallback(c, lab, tmp):
    d = os.path.join(tmp, "refuser")
    log = os.path.join(tmp, "rampart.log")
    ok, got = wait_answer("www.refuse.test.", (0, ["203.0.113.70"]), 10)
    c.check("refuser primary: the first transfer (AXFR) is served", ok, str(got))
    for serial, rcode in ((2, "NOTIMP"), (3, "REFUSED"), (4, "FORMERR")):
        with open(os.path.join(d, "rcode"), "w") as f:
            f.write(rcode)
        with open(os.path.join(d, "queries.log"), "w"):
            pass
        www = f"203.0.113.{70 + serial}"
        with open(os.path.join(d, "refuse.test.zone"), "w") as f:
            f.write(zone("refuse.test", serial, www, "192.0.2", FALLBACK_HOSTS))
        what = f"IXFR answered {rcode}"
        fallback_refresh(c, lab, tmp, what, "refuse.test", serial, www)
        with open(os.path.join(d, "queries.log")) as f:
            queries = [line.split()[:3] for line in f if "SOA" not in line]
        c.check(f"{what}: the primary saw the IXFR refused, then one AXFR",
                queries == [["tcp", "IXFR", rcode], ["tcp", "AXFR", "NOERROR"]], str(queries))
        c.check(f"{what}: logged as an IXFR failure retried by AXFR",
                any("refuse.test" in line and f"the primary answered {rcode}" in line and "trying AXFR" in line
                    for line in log_lines(log, "IXFR failed")), "".join(log_lines(log, "IXFR failed")[-3:]))


NOTIFY_PY = """
import sys, dns.message, dns.opcode, dns.query, dns.rcode, dns.tsig, dns.tsigkeyring
q = dns.message.make_query("xfr.test.", "SOA")
q.set_opcode(dns.opcode.NOTIFY)
if sys.argv[2]:
    q.use_tsig(dns.tsigkeyring.from_text({sys.argv[2]: sys.argv[3]}), keyname=sys.argv[2],
               algorithm=dns.tsig.HMAC_SHA256)
try:
    r = dns.query.udp(q, sys.argv[1], timeout=2, ignore_unexpected=True)
    print(dns.rcode.to_text(r.rcode()))
except dns.tsig.PeerBadSignature:
    print("BADSIG")
except dns.tsig.PeerBadKey:
    print("BADKEY")
except Exception as e:
    print(repr(e))
"""


def ctl(lab, tmp, *args):
    """`rampart ctl ARGS --json` on this lab's instance: (exit code, JSON or stderr)."""
    r = subprocess.run([lab.bin, "ctl", *args, "--json", "--control-socket", f"{tmp}/run/control.sock"],
                       capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        return r.returncode, r.stderr
    return 0, json.loads(r.stdout)


def ctl_checks(c, lab, tmp, kconf, zdir):
    rc, got = ctl(lab, tmp, "refresh", "xfr.test")
    c.check("ctl refresh of an up-to-date secondary succeeds: serial 4 transferred and served",
            rc == 0 and got["serial"] == 4 and got["served_serial"] == 4, str(got))
    rc, got = ctl(lab, tmp, "zone-status", "xfr.test")
    z = got["zones"][0] if rc == 0 else {}
    t = z.get("transfer") or {}
    now_ms = time.time() * 1000
    c.check("ctl zone-status: a secondary's primaries, serial, last transfer (IXFR of serial 4), no error",
            z.get("source") == {"kind": "primaries", "addresses": [f"{PRIMARY}:53"]} and z.get("serial") == 4
            and t.get("serial") == 4 and (t.get("last_transfer") or {}).get("serial") == 4
            and t["last_transfer"]["kind"] == "ixfr" and t.get("last_error") is None
            and z.get("last_error") is None and t.get("expired") is False, str(z))
    c.check("ctl zone-status: the next refresh is within the SOA refresh",
            now_ms - 1000 < (z.get("next_refresh_unix_ms") or 0) < now_ms + (REFRESH + 1) * 1000, str(z))
    # timer.test gets no NOTIFY: ctl refresh brings serial 3 and returns once it is served.
    knot_change(kconf, zdir, "timer.test", zone("timer.test", 3, "203.0.113.50", "192.0.2"), blocking=True)
    t0 = time.monotonic()
    rc, got = ctl(lab, tmp, "refresh", "timer.test")
    took = time.monotonic() - t0
    answer = ask("www.timer.test.")
    c.check("ctl refresh brings the primary's new serial and returns once it is served",
            rc == 0 and got["serial"] == 3 and got["served_serial"] == 3 and answer == (0, ["203.0.113.50"]),
            f"{rc} {got} {answer} in {took:.2f} s")
    rc, got = ctl(lab, tmp, "zone-status", "timer.test")
    z = got["zones"][0] if rc == 0 else {}
    c.check("ctl zone-status shows the refreshed serial (3) served and transferred, by axfr (Knot's IXFR answer "
            "without a journal is the whole zone)",
            z.get("serial") == 3 and (z.get("transfer") or {}).get("serial") == 3
            and ((z.get("transfer") or {}).get("last_transfer") or {}).get("kind") == "axfr", str(z))
    rc, got = ctl(lab, tmp, "status")
    last = got.get("last_reload") or {} if rc == 0 else {}
    c.check("ctl status: the transfer's reload is the last one (cause transfer, ok)",
            last.get("cause") == "transfer" and last.get("ok") is True, str(last))
    rc, err = ctl(lab, tmp, "refresh", "badkey.test")
    c.check("ctl refresh with a key the primary refuses: exit 1 with the refresh's error",
            rc == 1 and "refresh of badkey.test. failed" in err, f"{rc} {err}")
    rc, got = ctl(lab, tmp, "zone-status", "badkey.test")
    z = got["zones"][0] if rc == 0 else {}
    c.check("ctl zone-status: the zone that never transferred is listed with its error",
            z.get("serial") is None and "refresh:" in (z.get("last_error") or ""), str(z))


def notify_checks(c, tmp, log):
    def notify(keyname="", secret="", ns=NS_C, to=NODE_C):
        out = sh("/usr/bin/python3", "-c", NOTIFY_PY, to, keyname, secret, ns=ns, check=False)
        return (out.stdout + out.stderr).strip()[-300:]
    n0 = len(log_lines(log, "NOTIFY: refreshing"))
    got = notify("xfr-key.", WRONG, ns=NS_P, to=NODE_P)
    c.check("NOTIFY from the primary's address with a wrong key is refused (BADSIG)", got == "BADSIG", got)
    got = notify(ns=NS_P, to=NODE_P)
    c.check("unsigned NOTIFY from the primary's address is REFUSED (the zone has a key)", got == "REFUSED", got)
    got = notify("xfr-key.", SECRET)
    c.check("NOTIFY with the right key from an address that is not a primary is REFUSED", got == "REFUSED", got)
    got = notify("xfr-key.", SECRET, ns=NS_P, to=NODE_P)
    c.check("NOTIFY from the primary with the key is answered NOERROR", got == "NOERROR", got)
    time.sleep(0.3)
    c.check("only the good NOTIFY started a refresh", len(log_lines(log, "NOTIFY: refreshing")) == n0 + 1)
    m = metrics()
    c.check("metrics: refused NOTIFYs counted",
            'rampart_xfr_notifies_total{zone="xfr.test.",verdict="refused"} 3' in m, m[-1500:])
    c.check("metrics: IXFR transfers counted", 'kind="ixfr",result="ok"} 3' in m, m[-1500:])


def restart_expire(c, lab, pins, tmp, log, knot, kconf, start, proc):
    stop(proc)
    stop(knot)
    t_stop = time.monotonic()
    log = os.path.join(tmp, "rampart-restart.log")
    proc2 = start(log)
    try:
        if not c.check("restart with the primary down", wait_ready(proc2, log), open(log).read()[-1500:]):
            return
        t_ready = time.monotonic()
        rc, data = ask("www.xfr.test.")
        c.check("restart: the on-disk copy is served before any refresh (serial 4's data)",
                (rc, data) == (0, ["203.0.113.31"]), f"{rc} {data}")
        before = stats(lab, pins)
        ask("h7.xfr.test.")
        after = stats(lab, pins)
        c.check("restart: the copy is answered by the XDP program", after["tx_answer"] - before["tx_answer"] == 1)
        # Expire runs from the last refresh before the restart (the copy's mtime).
        deadline = time.monotonic() + EXPIRE + 8
        rc = 0
        while time.monotonic() < deadline:
            rc, data = ask("www.xfr.test.")
            if rc == dns.rcode.SERVFAIL:
                break
            time.sleep(0.1)
        t_exp = time.monotonic()
        c.check("expire: SERVFAIL once the SOA expire has passed without a primary", rc == dns.rcode.SERVFAIL,
                f"{rc} {data}")
        print(f"xfr expire: SERVFAIL {t_exp - t_stop:.1f} s after the primary stopped (expire {EXPIRE} s; "
              f"restart ready after {t_ready - t_stop:.1f} s)", flush=True)
        # The last refresh was at most REFRESH s before the stop; the check runs each RETRY s.
        c.check(f"expire: {EXPIRE - REFRESH - 1}-{EXPIRE + RETRY + 1} s after the primary stopped",
                EXPIRE - REFRESH - 1 <= t_exp - t_stop <= EXPIRE + RETRY + 1, f"{t_exp - t_stop:.1f} s")
        before = stats(lab, pins)
        rc, _ = ask("h7.xfr.test.")
        after = stats(lab, pins)
        c.check("expire: the XDP program no longer answers the zone (SERVFAIL from the slow path)",
                rc == dns.rcode.SERVFAIL and after["tx_answer"] == before["tx_answer"], f"{rc}")
        m = metrics()
        c.check("metrics: rampart_secondary_expired 1", 'rampart_secondary_expired{zone="xfr.test."} 1' in m)
        knot2 = subprocess.Popen(["ip", "netns", "exec", NS_P, "knotd", "-c", kconf],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            ok, got = wait_answer("www.xfr.test.", (0, ["203.0.113.31"]), RETRY + 10)
            c.check("expire: served again once the primary answers", ok, str(got))
        finally:
            stop(knot2)
    finally:
        stop(proc2)


if __name__ == "__main__":
    rplab.main_for(run)
