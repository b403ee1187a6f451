"""The routed anycast lab's six tests (issue 4; test 3 and 4 for four kinds of failure) and a drain
check, against the lab scripts/test-anycast builds
(scripts/lib/anycast-lab.sh: client ─ router (BIRD, ECMP) ─ node1, node2 (BIRD + rampart)).

Each test measures with tests/anycast_prober.py (500 queries/s, 200 ms timeout, 512 source ports,
NSID on every query so each answer names its node) and prints its figures on one line starting
with `anycast:`. Closing line: `N passed, M failed`. Usage: anycast_lab.py [test ...]
(distribution nearest failover_kill failover_detach failover_slowpath failover_wedged flapping drain
conventional)."""

import json
import os
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import anycast_prober as prober  # noqa: E402
import rplab  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
E = os.environ
PY = E.get("PY", "/usr/bin/python3")
RATE = 500
TIMEOUT = 0.2
LOSS_BOUND_MS = 1000.0
HANG_S = 3.0  # failover_hung: how long node1's rampart is stopped
# the resolver variant (tests/anycast_resolver_lab.py) asks a name the nodes resolve, with RD
NAME = E.get("AL_QNAME", "www.example.com.")
RD = ["--rd"] if E.get("AL_RD") == "1" else []
RESULTS = {}  # every figure measured; RP_ANYCAST_RESULTS=FILE.md writes them as a report


def sh(*args, check=True, timeout=60):
    return subprocess.run(args, check=check, capture_output=True, text=True, timeout=timeout)


def lab(fn, *args, timeout=60):
    """Runs a helper of scripts/lib/anycast-lab.sh (the lab's variables are in the environment)."""
    cmd = f'. "{REPO}/scripts/lib/anycast-lab.sh"; {fn} ' + " ".join(f"'{a}'" for a in args)
    r = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError(f"{fn} {' '.join(map(str, args))} failed:\n{r.stdout}{r.stderr}")
    return r.stdout


class Node:
    def __init__(self, n):
        self.n = n
        self.name = f"node{n}"
        self.ns = E[f"AL_NS_NODE{n}"]
        self.addr4 = E[f"AL_NODE{n}_4"]
        self.dir = os.path.join(E["RP_TMP"], self.name)
        self.wedged = False

    def pid(self):
        with open(os.path.join(self.dir, "rampart.pid")) as f:
            return int(f.read())

    def alive(self):
        return pid_alive(self.pid())

    def start(self):
        lab("alab_node_start", self.n)

    def kill(self):
        """SIGKILL: no chance to withdraw; only fate-sharing (the TUN device) can."""
        pid = self.pid()
        os.kill(pid, signal.SIGKILL)
        t = time.monotonic()
        for _ in range(200):
            if not pid_alive(pid):
                break
            time.sleep(0.01)
        return t

    def wait_sockets_closed(self, secs=5.0):
        """Until no UDP socket is bound to port 53 in the node's namespace. A killed process is a
        zombie once its main thread is gone, while its other threads (and so its sockets) may
        still be exiting: a query then is queued to a socket nobody reads, and no port
        unreachable comes back."""
        deadline = time.monotonic() + secs
        while time.monotonic() < deadline:
            r = sh("ip", "netns", "exec", self.ns, "ss", "-Hnuln", "sport = :53", check=False)
            if not r.stdout.strip():
                return True
            time.sleep(0.01)
        return False

    def rampart(self, *args, timeout=20, check=True):
        return sh("ip", "netns", "exec", self.ns, E["RP_BIN"], *args, timeout=timeout, check=check)

    def config(self):
        return os.path.join(self.dir, "rampart.toml")

    def status(self):
        return json.loads(self.rampart("anycast", "status", "--json", "--config", self.config()).stdout)

    def wedge(self, on):
        """Wedges (on) or frees (off) the node's slow path: a cgroup_skb program drops every DNS
        query to the sockets of rampart's cgroup (alab_wedge): clients' queries that need the
        slow path and the health checker's slow probe time out, while the sockets stay open and
        the process, its XDP program and its health checker keep running. Takes ~10 ms."""
        if not E.get("AL_CGROUP"):
            raise RuntimeError("no cgroup2 for the nodes (see the lab's log): can't wedge a slow path")
        sh("bpftool", "cgroup", "attach" if on else "detach", os.path.join(E["AL_CGROUP"], self.name),
           "ingress", "pinned", os.path.join(E["RP_BPFFS"], "cgroup_drop_dns"))
        self.wedged = on


def pid_alive(pid):
    """A zombie counts as dead: rampart's parent (a short-lived shell) is gone, and whoever
    inherited it may reap late."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def drop_obj():
    obj = os.path.join(E["RP_TMP"], "xdp_drop_dns.o")
    if not os.path.exists(obj):
        sh("clang-14", "-O2", "-target", "bpf", "-c", os.path.join(HERE, "xdp_drop_dns.c"), "-o", obj)
    return obj


class RouteWatch:
    """`ip monitor route` in the router's namespace: every change of the route to the IPv4 service
    address, stamped with CLOCK_MONOTONIC on arrival, with the set of next hops after it."""

    def __init__(self):
        self.gw = frozenset(router_gateways())
        self.events = [(time.monotonic(), self.gw)]  # (t, frozenset of gateways)
        self.p = subprocess.Popen(["stdbuf", "-oL", "ip", "-n", E["AL_NS_ROUTER"], "monitor", "route"],
                                  stdout=subprocess.PIPE, text=True, bufsize=1)
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        log = open(os.path.join(E["RP_TMP"], "route-monitor.log"), "a")
        for line in self.p.stdout:
            t = time.monotonic()
            log.write(f"{t:.3f} {line}")
            log.flush()
            # a message's first line names the route (continuation lines are indented next hops)
            head = line.split()
            if line[:1] in (" ", "\t") or not head:
                continue
            if head[0] == "Deleted":
                head = head[1:]
            if head and head[0] in (E["AL_SERVICE4"], E["AL_SERVICE4"] + "/32"):
                # the next hops read back from the kernel: a change can come as a replace, or as
                # an add and a delete, in either order
                gw = frozenset(router_gateways())
                if gw != self.gw:
                    self.gw = gw
                    self.events.append((t, gw))
        log.close()

    def changes(self, node_addr, t_from, t_to=None):
        """Times node_addr entered or left the route's next hops in [t_from, t_to]."""
        out = []
        before = self.has_at(node_addr, t_from)
        for t, gw in self.events:
            if t < t_from or (t_to is not None and t > t_to):
                continue
            if (node_addr in gw) != before:
                before = not before
                out.append((t, before))
        return out

    def has_at(self, node_addr, t):
        gw = self.events[0][1]
        for te, g in self.events:
            if te > t:
                break
            gw = g
        return node_addr in gw

    def stop(self):
        self.p.terminate()
        self.p.wait(5)


def router_gateways(service=None):
    """Next hops of the router's kernel route to the service address (empty set: no route)."""
    service = service or E["AL_SERVICE4"]
    r = sh("ip", "-n", E["AL_NS_ROUTER"], "-6" if ":" in service else "-4", "-j", "route", "show", service)
    routes = json.loads(r.stdout or "[]")
    gws = set()
    for rt in routes:
        if rt.get("gateway"):
            gws.add(rt["gateway"])
        for nh in rt.get("nexthops", []):
            if nh.get("gateway"):
                gws.add(nh["gateway"])
    return gws


def wait_gateways(want, timeout=30.0, service=None):
    want = set(want)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if router_gateways(service) == want:
            return True
        time.sleep(0.05)
    return False


class Probe:
    """tests/anycast_prober.py in the client's namespace, in the background."""

    def __init__(self, duration, server=None, tag="p"):
        self.out = os.path.join(E["RP_TMP"], f"probe-{tag}-{time.monotonic_ns()}.json")
        self.p = subprocess.Popen(
            ["ip", "netns", "exec", E["AL_NS_CLIENT"], PY, os.path.join(HERE, "anycast_prober.py"),
             "--server", server or E["AL_SERVICE4"], "--rate", str(RATE), "--timeout", str(TIMEOUT),
             "--duration", str(duration), "--qname", NAME, "--out", self.out, *RD],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.t0 = time.monotonic()

    def wait_started(self):
        """Blocks until the prober has sent its first queries (python start-up takes ~100 ms)."""
        time.sleep(0.5)

    def result(self):
        out, err = self.p.communicate(timeout=180)
        if self.p.returncode != 0:
            raise RuntimeError(f"prober failed: {err}")
        with open(self.out) as f:
            recs = json.load(f)["queries"]
        os.unlink(self.out)
        return recs


STALL_MS = 10.0  # the prober sent 5 queries late: the machine did not run it (idle jitter is < 1 ms)


def lost_detail(recs, t_from, t_ref):
    """Each lost query sent from t_from on, set against t_ref (the router's switch back): its send
    time relative to t_ref (ms), the node its flow (source port) reaches after t_ref, the round
    trip of its reply if one came after the timeout (and from which node), and the prober's own
    longest send delay in the 250 ms before it. A query is `stall` when its reply did come, late,
    and the machine as a whole was not running: the prober itself (in the client's namespace)
    was stalled >= STALL_MS just before, or node2, whose path the switch back doesn't touch,
    answered late within 250 ms of it too. Any other lost query counts as dropped."""
    later = {}
    for r in recs:
        if r[0] > t_ref + 0.2 and prober.answered(r):
            later.setdefault(r[4], r[2])
    lost = [(k, r) for k, r in enumerate(recs) if r[0] >= t_from and not prober.answered(r)]
    node2_late = [r[0] for _, r in lost if r[6] is not None and r[2] == "node2"]
    out = []
    for k, r in lost:
        stall = max((q[5] for q in recs[max(0, k - 200):k + 1] if q[0] >= r[0] - 0.25), default=0.0) * 1000
        wide = stall >= STALL_MS or any(abs(t - r[0]) <= 0.25 for t in node2_late)
        out.append({"at_ms": round((r[0] - t_ref) * 1000, 1), "flow_node": later.get(r[4]),
                    "late_rtt_ms": round(r[6] * 1000, 1) if r[6] is not None else None,
                    "late_from": r[2], "prober_stall_ms": round(stall, 1),
                    "stall": r[6] is not None and wide})
    return out


# the kernel's counters of packets it dropped, and where (nstat names)
DROP_KEYS = ("IpInDiscards", "IpOutDiscards", "IpOutNoRoutes", "IpInAddrErrors", "IpExtInNoRoutes",
             "IpExtInCsumErrors", "UdpInErrors", "UdpRcvbufErrors", "UdpSndbufErrors", "UdpNoPorts",
             "UdpInCsumErrors", "Udp6InErrors", "Udp6RcvbufErrors", "Udp6NoPorts", "IcmpOutDestUnreachs",
             "IcmpInDestUnreachs")


def drop_counters():
    """Per namespace of the lab, the kernel's drop counters (nstat, absolute) and each link's
    rx/tx dropped: a lost query with no reply was dropped somewhere, and these say where."""
    out = {}
    for role in ("client", "router", "node1", "node2"):
        ns = E[f"AL_NS_{role.upper()}"]
        k = json.loads(sh("ip", "netns", "exec", ns, "nstat", "-asz", "-j").stdout or "{}").get("kernel", {})
        out.update({f"{role} {key}": k[key] for key in DROP_KEYS if key in k})
        for link in json.loads(sh("ip", "-n", ns, "-s", "-j", "link", "show").stdout or "[]"):
            st = link.get("stats64", {})
            for d in ("rx", "tx"):
                out[f"{role} {link['ifname']} {d}_dropped"] = st.get(d, {}).get("dropped", 0)
    return out


def drops_since(before):
    """What drop_counters() grew by since `before` (a restarted node's new TUN device starts at 0)."""
    now = drop_counters()
    return {k: v - before.get(k, 0) for k, v in now.items() if v - before.get(k, 0) > 0}


def check_no_loss(c, what, recs, t_from, t_ref, s):
    """The strict check of a switch (restoration, drain): no query lost. A lost query is excused
    only as `stall` (lost_detail: answered late while the prober itself could not run), and then
    reported as such; a query with no reply at all fails it. Returns the detail (also printed)."""
    det = lost_detail(recs, t_from, t_ref) if s["lost"] else []
    dropped = [d for d in det if not d["stall"]]
    if det:
        print(f"anycast: {what}: {len(det)} lost ({len(det) - len(dropped)} answered late during a machine "
              f"stall the prober recorded, {len(dropped)} not); each, relative to the router's switch: "
              + json.dumps(det), flush=True)
    c.check(f"{what}: no query lost (a reply late only through a recorded machine stall is reported apart)",
            not dropped, json.dumps(dict(s, dropped=dropped[:20])))
    return det


def ms(x):
    return f"{x:.0f} ms" if x is not None else "n/a"


def pct(x):
    return f"{100 * x:.1f}%"


class Suite:
    def __init__(self):
        self.c = rplab.Checks("anycast")
        self.n1, self.n2 = Node(1), Node(2)
        self.watch = RouteWatch()
        self.both = {self.n1.addr4, self.n2.addr4}

    def ensure_both(self, why):
        """Both nodes running and announced (restarts node1 if a test left it down)."""
        for n in (self.n1, self.n2):
            if n.wedged:
                n.wedge(False)
            if not n.alive():
                n.start()
        ok = wait_gateways(self.both, 15)
        if not ok:  # a test that failed half-way may leave a node drained or its slow path stopped
            for n in (self.n1, self.n2):
                if n.addr4 not in router_gateways():
                    n.kill()
                    n.start()
            ok = wait_gateways(self.both, 15)
        self.c.check(f"{why}: both nodes announced", ok, f"router next hops: {router_gateways()}")
        return ok

    # 1
    def distribution(self):
        if not self.ensure_both("distribution"):
            return
        figs = []
        for fam, server in ((4, E["AL_SERVICE4"]), (6, E["AL_SERVICE6"])):
            if fam == 6 and not wait_gateways({E["AL_NODE1_6"], E["AL_NODE2_6"]}, 10, E["AL_SERVICE6"]):
                self.c.check("distribution: IPv6 route has both nodes", False, str(router_gateways(server)))
            recs = Probe(4 if fam == 4 else 2, server, f"dist{fam}").result()
            s = prober.summarize(recs)
            sh1, sh2 = s["share"].get("node1", 0), s["share"].get("node2", 0)
            figs.append(f"IPv{fam} node1 {pct(sh1)}, node2 {pct(sh2)}, lost {s['lost']} of {s['sent']} "
                        f"({s['rate']:.0f} q/s)")
            RESULTS[f"distribution_v{fam}"] = s
            self.c.check(f"distribution IPv{fam}: both nodes answer (>= 20% each)", sh1 >= 0.2 and sh2 >= 0.2,
                         json.dumps(s))
            self.c.check(f"distribution IPv{fam}: every answer names its node (NSID)",
                         set(s["by_node"]) <= {"node1", "node2"}, json.dumps(s["by_node"]))
            # a node that stops answering loses ~half; a stall of the loaded machine, a few percent
            self.c.check(f"distribution IPv{fam}: under 10% lost", s["lost"] <= 0.1 * s["sent"], json.dumps(s))
            self.c.check(f"distribution IPv{fam}: >= 450 q/s sent", s["rate"] >= 450, f"{s['rate']:.0f} q/s")
        print("anycast: 1 distribution: " + "; ".join(figs), flush=True)

    # 2
    def nearest(self):
        if not self.ensure_both("nearest"):
            return
        lab("alab_node2_prepend", 2)
        try:
            ok = wait_gateways({self.n1.addr4}, 15)
            self.c.check("nearest: with node2's path prepended the router routes to node1 only", ok,
                         str(router_gateways()))
            s = prober.summarize(Probe(3, tag="nearest").result())
            RESULTS["nearest"] = s
            print(f"anycast: 2 nearest (node2 AS path +2): node1 {s['by_node'].get('node1', 0)}, "
                  f"node2 {s['by_node'].get('node2', 0)}, lost {s['lost']} of {s['sent']}", flush=True)
            self.c.check("nearest: every answer from node1", s["by_node"].get("node1", 0) == s["answered"]
                         and s["answered"] > 0, json.dumps(s))
            self.c.check("nearest: under 10% lost", s["lost"] <= 0.1 * s["sent"], json.dumps(s))
        finally:
            lab("alab_node2_prepend", 0)
        self.c.check("nearest: prepend removed: both nodes again", wait_gateways(self.both, 15),
                     str(router_gateways()))

    def _failover(self, label, act, restore, restore_label, restarts=False):
        """One probe run across a failure of node1 and its recovery: `act` 1.5 s in, `restore`
        2 s later (soon enough that the hold-down, counted from the withdrawal, still holds).
        Test 3: answers move to node2, loss window < 1 s. Test 4: node1 is announced again, not
        before the hold-down after its withdrawal (or after its start, when it restarted), takes
        its traffic back, and no query is lost from the recovery on."""
        if not self.ensure_both(label):
            return
        hold = self.hold_down_s()
        p = Probe(1.5 + 2.0 + hold + 4.0, tag=label)
        p.wait_started()
        time.sleep(1.0)
        t_act = act()
        time.sleep(max(0.0, t_act + 1.0 - time.monotonic()))
        drops0 = drop_counters()  # after the failover's own losses, before the restoration
        time.sleep(max(0.0, t_act + 1.8 - time.monotonic()))
        # the node's own account of the withdrawal (a killed node has none)
        st = self.n1.status() if self.n1.alive() else None
        last = (st or {}).get("transitions", [{}])[-1]
        time.sleep(max(0.0, t_act + 2.0 - time.monotonic()))
        t_rec = restore()
        ok = wait_gateways(self.both, hold + 20)
        recs = p.result()

        # 3: failover, [t_act, t_rec)
        s = prober.summarize(recs, t_from=t_act - 0.05, t_to=t_rec)
        t_wd = next((t for t, present in self.watch.changes(self.n1.addr4, t_act - 0.05, t_rec) if not present), None)
        wd_ms = (t_wd - t_act) * 1000 if t_wd else None
        after = prober.summarize(recs, t_from=t_act + LOSS_BOUND_MS / 1000 + 0.2, t_to=t_rec)
        RESULTS[label] = dict(s, withdrawn_ms=wd_ms)
        print(f"anycast: 3 failover ({label}): loss window {ms(s['loss_window_ms'])}, lost {s['lost']} "
              f"of {s['sent']} queries in the {t_rec - t_act:.1f} s after the fault, route withdrawn at the "
              f"router {ms(wd_ms)} after it" + (f"; node1 says: {last.get('to')}: {last.get('reason')}"
                                                if st else ""), flush=True)
        if st:
            self.c.check(f"{label}: node1 reports the withdrawal with a reason",
                         st.get("state") == "withdrawn" and last.get("to") == "withdrawn" and last.get("reason"),
                         json.dumps(st.get("transitions", [])[-3:]))
        self.c.check(f"{label}: router withdrew node1", t_wd is not None, str(self.watch.events[-5:]))
        self.c.check(f"{label}: loss window under {LOSS_BOUND_MS:.0f} ms", s["loss_window_ms"] < LOSS_BOUND_MS,
                     json.dumps(s))
        self.c.check(f"{label}: then node2 answers everything",
                     after["sent"] > 0 and after["by_node"].get("node2", 0) == after["sent"], json.dumps(after))

        # 4: restoration, from t_rec on
        s = prober.summarize(recs, t_from=t_rec)
        t_back = next((t for t, present in self.watch.changes(self.n1.addr4, t_rec) if present), None)
        back_ms = (t_back - t_rec) * 1000 if t_back else None
        gap_ms = (t_back - t_wd) * 1000 if t_back and t_wd else None
        tail = prober.summarize(recs, t_from=(t_back or t_rec) + 0.2)
        RESULTS[label + "_restore"] = dict(s, announced_ms=back_ms, withdrawn_for_ms=gap_ms)
        print(f"anycast: 4 restoration ({restore_label}): node1 announced again {ms(back_ms)} after it "
              f"recovered, {ms(gap_ms)} after its withdrawal (hold-down {hold * 1000:.0f} ms), lost {s['lost']} "
              f"of {s['sent']}, then node1 {pct(tail['share'].get('node1', 0))} / node2 "
              f"{pct(tail['share'].get('node2', 0))}", flush=True)
        self.c.check(f"{label} restore: node1 announced again", ok and t_back is not None, str(router_gateways()))
        if restarts:
            # a new process counts its start as a withdrawal: announced no sooner than the
            # hold-down after it (t_rec is before the start, the router sees the announcement after)
            self.c.check(f"{label} restore: the restarted node waits the hold-down",
                         back_ms is not None and back_ms >= hold * 1000, f"{back_ms} ms")
        else:
            # exact, from the node's transition times (the router's view adds routing jitter)
            tr = self.n1.status().get("transitions", [])
            pairs = [(a["unix_ms"], b["unix_ms"]) for a, b in zip(tr, tr[1:])
                     if a["to"] == "withdrawn" and b["to"] == "announced"]
            self.c.check(f"{label} restore: announced again, not before the hold-down",
                         bool(pairs) and pairs[-1][1] - pairs[-1][0] >= hold * 1000, json.dumps(tr[-3:]))
        drops = drops_since(drops0)
        RESULTS[label + "_restore"]["kernel_drops"] = drops
        if drops:
            # node1's own health probes to a stopped or wedged slow path (over lo) count here too
            print(f"anycast: {label} restore: kernel drop counters that grew from 1 s after the fault on "
                  "(node1's own probes of a stopped/wedged slow path included): "
                  + json.dumps(drops), flush=True)
        det = check_no_loss(self.c, f"{label} restore", recs, t_rec, t_back or t_rec, s)
        if det:  # the router's route changes in that span: a gap with no route would show here
            print(f"anycast: {label} restore: router's route to the service, relative to the switch: "
                  + json.dumps([(round((t - (t_back or t_rec)) * 1000, 1), sorted(gw))
                                for t, gw in self.watch.events if t >= t_rec]), flush=True)
        RESULTS[label + "_restore"]["stall_lost"] = sum(d["stall"] for d in det)
        self.c.check(f"{label} restore: node1 takes its traffic back", tail["share"].get("node1", 0) >= 0.2,
                     json.dumps(tail))

    def hold_down_s(self):
        return float(E.get("AL_HOLD_DOWN_MS", "2000")) / 1000

    # 3 + 4, three ways of failing
    def failover_kill(self):
        def restore():
            t = time.monotonic()
            self.n1.start()
            return t
        self._failover("failover_kill", self.n1.kill, restore, "rampart restarted", restarts=True)

    def failover_detach(self):
        def act():
            t = time.monotonic()
            self.n1.rampart("detach", "--iface", E["AL_UPLINK"])
            return t

        def restore():
            # rampart does not re-attach a program someone removed: restart it (node1 is
            # withdrawn, so the restart itself costs no query)
            self.n1.kill()
            t = time.monotonic()
            self.n1.start()
            return t
        self._failover("failover_detach", act, restore, "restarted after detach", restarts=True)

    def failover_slowpath(self):
        def act():
            t = time.monotonic()
            self.n1.rampart("debug", "stop-slow-path", "--config", self.n1.config())
            return t

        def restore():
            t = time.monotonic()
            self.n1.rampart("debug", "start-slow-path", "--config", self.n1.config())
            return t
        self._failover("failover_slowpath", act, restore, "slow path started again")

    def failover_wedged(self):
        def act():
            t = time.monotonic()
            self.n1.wedge(True)
            return t

        def restore():
            t = time.monotonic()
            self.n1.wedge(False)
            return t
        self._failover("failover_wedged", act, restore, "slow path unwedged")

    def _hang(self, label, pid, secs=HANG_S, during=None):
        """node1's daemon (pid) stopped with SIGSTOP for `secs`, under probing; returns the
        failover's summary, the router's withdrawal time after the stop (or None) and the times."""
        hold = self.hold_down_s()
        p = Probe(1.0 + secs + hold + 6.0, tag=label)
        p.wait_started()
        time.sleep(1.0)
        t_stop = time.monotonic()
        os.kill(pid, signal.SIGSTOP)
        if during:
            during()
        time.sleep(max(0.0, t_stop + secs - time.monotonic()))
        t_cont = time.monotonic()
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass  # killed by its supervisor
        wait_gateways(self.both, hold + 20)
        recs = p.result()
        s = prober.summarize(recs, t_from=t_stop - 0.05, t_to=t_cont)
        t_wd = next((t for t, present in self.watch.changes(self.n1.addr4, t_stop - 0.05, t_cont) if not present),
                    None)
        after = prober.summarize(recs, t_from=t_stop + LOSS_BOUND_MS / 1000 + 0.2, t_to=t_cont)
        return s, ((t_wd - t_stop) * 1000 if t_wd else None), after

    def failover_hung(self):
        """Issue 12 item 6: node1's rampart stopped (SIGSTOP) for 3 s. Alone it keeps its route
        (its TUN device and BIRD live on) and every slow-path query hashed to it is lost for the
        whole hang; under `rampart supervise --watchdog-ms 500` the silent node is SIGKILLed, its
        device and route go, node2 answers: loss window under 1 s. The supervisor starts it
        again, announced after the hold-down."""
        if not self.ensure_both("failover_hung"):
            return
        drain = {}

        def drain_stopped():
            t = time.monotonic()
            r = self.n1.rampart("anycast", "drain", "--timeout", "1", "--config", self.n1.config(), check=False)
            drain.update(rc=r.returncode, took=time.monotonic() - t, err=r.stderr.strip())
        s0, wd0, _ = self._hang("hung_plain", self.n1.pid(), during=drain_stopped)
        self.c.check("hung: `anycast drain --timeout 1` fails within 1.5 s, saying so",
                     drain.get("rc") == 1 and drain.get("took", 9) < 1.5 and "not carried out" in drain.get("err", ""),
                     json.dumps(drain))
        state = self.n1.status().get("state")
        self.c.check("hung: the drain reported failed is not carried out once the node resumes",
                     state == "announced" and self.n1.addr4 in router_gateways(), state)
        print(f"anycast: drain against the stopped node: exit {drain.get('rc')} after {drain.get('took', 0):.2f} s "
              f"({drain.get('err')}); resumed: {state}", flush=True)
        RESULTS["failover_hung_plain"] = dict(s0, withdrawn_ms=wd0)
        print(f"anycast: hung {HANG_S:.0f} s without a supervisor: loss window {ms(s0['loss_window_ms'])}, lost "
              f"{s0['lost']} of {s0['sent']}, route withdrawn {ms(wd0)} after the stop", flush=True)
        self.c.check("hung, no supervisor: the hang shows (loss window over 2 s)", s0["loss_window_ms"] > 2000,
                     json.dumps(s0))
        if not self.ensure_both("failover_hung (supervised)"):
            return
        self.n1.kill()
        os.environ["AL_SUPERVISE_MS"] = "500"
        try:
            self.n1.start()
        finally:
            del os.environ["AL_SUPERVISE_MS"]
        try:
            if not self.ensure_both("failover_hung under rampart supervise"):
                return
            child = json.loads(self.n1.rampart("ctl", "status", "--json", "--config", self.n1.config()).stdout)["pid"]
            s, wd, after = self._hang("hung_supervised", child)
            RESULTS["failover_hung"] = dict(s, withdrawn_ms=wd)
            print(f"anycast: hung {HANG_S:.0f} s under rampart supervise --watchdog-ms 500: loss window "
                  f"{ms(s['loss_window_ms'])}, lost {s['lost']} of {s['sent']}, route withdrawn {ms(wd)} after "
                  f"the stop", flush=True)
            self.c.check("hung, supervised: router withdrew node1", wd is not None, str(self.watch.events[-5:]))
            self.c.check(f"hung, supervised: loss window under {LOSS_BOUND_MS:.0f} ms",
                         s["loss_window_ms"] < LOSS_BOUND_MS, json.dumps(s))
            self.c.check("hung, supervised: then node2 answers everything",
                         after["sent"] > 0 and after["by_node"].get("node2", 0) == after["sent"], json.dumps(after))
            st = json.loads(self.n1.rampart("ctl", "status", "--json", "--config", self.n1.config()).stdout)
            self.c.check("hung, supervised: node1 started again (a new process) and announced",
                         st["pid"] != child and self.n1.addr4 in router_gateways(), (st["pid"], child))
        finally:
            # back to a node without supervisor for the tests after this one
            os.kill(self.n1.pid(), signal.SIGTERM)
            for _ in range(100):
                if not self.n1.alive():
                    break
                time.sleep(0.1)

    # 5
    def _toggle(self, period, total):
        """Wedges and frees node1's slow path every `period` s for `total` s; ends freed."""
        t0 = time.monotonic()
        toggles = 0
        while time.monotonic() - t0 < total:
            self.n1.wedge(not self.n1.wedged)
            toggles += 1
            time.sleep(max(0.0, t0 + toggles * period - time.monotonic()))
        if self.n1.wedged:
            self.n1.wedge(False)
        return toggles, t0, time.monotonic()

    def flapping(self):
        """Phase A, the issue's: health toggles every 200 ms for 10 s (each half shorter than
        `fall` or `rise` rounds). Phase B: every 700 ms for 8.4 s, long enough to withdraw and to
        be healthy for `rise` rounds again each time: only the hold-down keeps the announcement
        from following. Both count changes of node1's route at the router."""
        if not self.ensure_both("flapping"):
            return
        hold = self.hold_down_s()
        figs = []
        for phase, period, total in (("A", 0.2, 10.0), ("B", 0.7, 8.4)):
            p = Probe(total + 0.5, tag="flap" + phase) if phase == "A" else None
            if p:
                p.wait_started()
            toggles, t0, t_end = self._toggle(period, total)
            ok = wait_gateways(self.both, hold + 20)
            ch = self.watch.changes(self.n1.addr4, t0, time.monotonic())
            # each re-announcement must follow the withdrawal before it by at least the hold-down
            gaps = [(b[0] - a[0]) for a, b in zip(ch, ch[1:]) if not a[1] and b[1]]
            bound = 2 * int((time.monotonic() - t0) / hold) + 2
            r = {"period_ms": period * 1000, "toggles": toggles, "seconds": t_end - t0, "changes": len(ch),
                 "bound": bound, "min_withdrawn_ms": min(gaps) * 1000 if gaps else None}
            fig = (f"{phase}: {toggles} toggles every {period * 1000:.0f} ms for {t_end - t0:.1f} s → {len(ch)} "
                   f"announcement changes (bound {bound}), shortest withdrawn {ms(r['min_withdrawn_ms'])}")
            if p:
                s = prober.summarize(p.result(), t_from=t0, t_to=t_end)
                r["probe"] = s
                fig += f", lost {s['lost']} of {s['sent']} queries"
            RESULTS["flapping_" + phase] = r
            figs.append(fig)
            self.c.check(f"flapping {phase}: announcement changes within the hold-down bound", len(ch) <= bound,
                         str(ch))
            self.c.check(f"flapping {phase}: no re-announcement sooner than the hold-down",
                         all(g >= hold - 0.05 for g in gaps), str(gaps))
            self.c.check(f"flapping {phase}: node1 announced again once healthy", ok, str(router_gateways()))
            if phase == "B":
                self.c.check("flapping B: the toggling did withdraw node1 (the fault is real)", len(ch) >= 2, str(ch))
        print(f"anycast: 5 flapping (hold-down {hold * 1000:.0f} ms): " + "; ".join(figs), flush=True)

    # beyond the six: maintenance
    def drain(self):
        """`rampart anycast drain` withdraws while the node still answers: nothing is lost, then
        `undrain` brings it back (after the hold-down), again losing nothing."""
        if not self.ensure_both("drain"):
            return
        hold = self.hold_down_s()
        p = Probe(1.0 + 1.5 + hold + 2.5, tag="drain")
        p.wait_started()
        time.sleep(1.0)
        t_d = time.monotonic()
        self.n1.rampart("anycast", "drain", "--config", self.n1.config())
        time.sleep(1.5)
        state = self.n1.status().get("state")
        t_u = time.monotonic()
        self.n1.rampart("anycast", "undrain", "--config", self.n1.config())
        ok = wait_gateways(self.both, hold + 20)
        recs = p.result()
        s = prober.summarize(recs, t_from=t_d)
        ch = self.watch.changes(self.n1.addr4, t_d)
        RESULTS["drain"] = dict(s, changes=len(ch))
        print(f"anycast: drain/undrain: node1 withdrawn {ms((ch[0][0] - t_d) * 1000 if ch else None)} after "
              f"`drain`, announced again {ms((ch[1][0] - t_u) * 1000 if len(ch) > 1 else None)} after `undrain`, "
              f"lost {s['lost']} of {s['sent']}", flush=True)
        self.c.check("drain: status says draining", state == "draining", str(state))
        self.c.check("drain: withdrawn then announced again", len(ch) == 2 and not ch[0][1] and ch[1][1] and ok,
                     str(ch))
        check_no_loss(self.c, "drain", recs, t_d, ch[-1][0] if ch else t_d, s)

    # 6
    def conventional(self):
        if not self.ensure_both("conventional"):
            return
        ns = E["AL_NS_CLIENT"]
        d = f"/etc/netns/{ns}"
        os.makedirs(d, exist_ok=True)
        with open(f"{d}/resolv.conf", "w") as f:
            f.write(f"# anycast lab, test 6: two unicast name servers (node1, node2)\n"
                    f"nameserver {self.n1.addr4}\nnameserver {self.n2.addr4}\n")

        def timed(*cmd):
            t = time.monotonic()
            r = subprocess.run(["ip", "netns", "exec", ns, *cmd], capture_output=True, text=True, timeout=60)
            return time.monotonic() - t, r

        host = NAME.rstrip(".")
        figs = {}
        try:
            base_g, rg = timed("getent", "hosts", host)
            base_d, rd = timed("dig", host, "A")
            self.c.check("conventional: getent resolves through the stub with both up",
                         rg.returncode == 0 and rg.stdout.strip() != "", rg.stdout + rg.stderr)
            self.c.check("conventional: dig resolves with both up", "status: NOERROR" in rd.stdout, rd.stdout)
            # node1's process killed: its kernel answers port unreachable, the stub moves on
            self.n1.kill()
            self.c.check("conventional: node1's sockets gone after the kill", self.n1.wait_sockets_closed())
            k_g, rg = timed("getent", "hosts", host)
            k_d, rd = timed("dig", host, "A")
            self.c.check("conventional (killed): getent still resolves", rg.returncode == 0, rg.stdout + rg.stderr)
            self.c.check("conventional (killed): dig still resolves", "status: NOERROR" in rd.stdout, rd.stdout)
            # node1 silent (a hung host, a blackhole on the way): DNS to it is dropped on its uplink,
            # no ICMP comes back, the stub waits out its timeout
            sh("ip", "-n", self.n1.ns, "link", "set", "dev", E["AL_UPLINK"], "xdpdrv", "obj", drop_obj(), "sec", "xdp")
            s_g, rg = timed("getent", "hosts", host)
            s_d, rd = timed("dig", host, "A")
            self.c.check("conventional (silent): getent resolves after the timeout", rg.returncode == 0,
                         rg.stdout + rg.stderr)
            self.c.check("conventional (silent): dig resolves after the timeout", "status: NOERROR" in rd.stdout,
                         rd.stdout)
            figs = {"getent_up_ms": base_g * 1000, "dig_up_ms": base_d * 1000,
                    "getent_killed_ms": k_g * 1000, "dig_killed_ms": k_d * 1000,
                    "getent_silent_ms": s_g * 1000, "dig_silent_ms": s_d * 1000}
            RESULTS["conventional"] = figs
            print(f"anycast: 6 conventional (resolv.conf: node1, node2 unicast): getent hosts {ms(base_g * 1000)} "
                  f"with both up, {ms(k_g * 1000)} with node1's server killed (port unreachable), "
                  f"{ms(s_g * 1000)} with node1 silent; dig {ms(base_d * 1000)}, {ms(k_d * 1000)}, "
                  f"{ms(s_d * 1000)}", flush=True)
            self.c.check("conventional: a silent first server stalls the glibc stub >= 1 s (the contrast)",
                         s_g >= 1.0, f"{s_g:.3f} s")
        finally:
            sh("ip", "-n", self.n1.ns, "link", "set", "dev", E["AL_UPLINK"], "xdpdrv", "off", check=False)
            try:
                os.unlink(f"{d}/resolv.conf")
                os.rmdir(d)
            except OSError:
                pass


TESTS = ["distribution", "nearest", "failover_kill", "failover_detach", "failover_slowpath", "failover_wedged",
         "flapping", "drain", "failover_hung", "conventional"]


def run_named(suite, names, label):
    """Each named test of `suite` in turn, announced and timed as scripts/test greps them."""
    for name in names:
        t = time.monotonic()
        print(f"== {label} {name}", flush=True)
        suite.c.run(name, getattr(suite, name))
        print(f"== {label} {name}: {time.monotonic() - t:.1f} s", flush=True)


def run(names=None):
    s = Suite()
    try:
        run_named(s, names or TESTS, "anycast")
    finally:
        s.watch.stop()
        out = E.get("RP_ANYCAST_RESULTS")
        if out:
            write_report(out, s.c)
    return s.c


def write_report(path, checks):
    """The measured figures as markdown (bench-results/anycast-<date>.md), raw JSON at the end."""
    R = RESULTS

    def g(key, field, fmt="{:.0f}"):
        v = R.get(key, {}).get(field)
        return fmt.format(v) if v is not None else "n/a"

    rows = []
    for key, what in (("failover_kill", "rampart SIGKILLed on node1"),
                      ("failover_detach", "node1's XDP program detached (`rampart detach`)"),
                      ("failover_slowpath", "node1's slow path stopped (`rampart debug stop-slow-path`)"),
                      ("failover_wedged", "node1's slow path wedged (sockets open, no query reaches them)")):
        stall = R.get(key + "_restore", {}).get("stall_lost")
        rows.append(f"| {what} | {g(key, 'loss_window_ms')} ms | {g(key, 'lost')} of {g(key, 'sent')} | "
                    f"{g(key, 'withdrawn_ms')} ms | {g(key + '_restore', 'lost')} of {g(key + '_restore', 'sent')}"
                    f"{f' ({stall} answered late in a machine stall)' if stall else ''} | "
                    f"{g(key + '_restore', 'announced_ms')} ms | {g(key + '_restore', 'withdrawn_for_ms')} ms |")
    d4, d6 = R.get("distribution_v4", {}), R.get("distribution_v6", {})
    fa, fb, cv = R.get("flapping_A", {}), R.get("flapping_B", {}), R.get("conventional", {})
    uname = os.uname()
    lines = [
        f"# Anycast lab, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        "",
        f"Machine: {uname.nodename}, kernel {uname.release}, {os.cpu_count()} CPUs (shared). Lab: "
        "scripts/lib/anycast-lab.sh (client ─ router ─ node1, node2 in network namespaces, veth, BIRD 2 "
        "eBGP with 1 s keepalive / 3 s hold, ECMP with L4 hashing). Prober: tests/anycast_prober.py, "
        f"{RATE} queries/s, {TIMEOUT * 1000:.0f} ms timeout, 512 source ports, NSID on every query. "
        f"rampart's health defaults, hold-down {float(E.get('AL_HOLD_DOWN_MS', '2000')):.0f} ms. "
        f"Checks: {checks.line()}.",
        "",
        "| failure of node1 | loss window | queries lost (of sent in the 2 s after the fault) | route withdrawn at "
        "the router after | restoration: lost | re-announced after recovery | withdrawn for |",
        "|---|---:|---:|---:|---:|---:|---:|",
        *rows,
        "",
        "Recovery is a restart for the first two rows (a new process starts withdrawn and announces after "
        "`rise` good rounds, no sooner than the hold-down after its start) and in-process for the last two "
        "(announced `rise` rounds after recovering, never sooner than the hold-down after the withdrawal). "
        "Every query carries NSID, which sends it to the slow path: a detached XDP program costs no answer "
        "here, only the announcement. A restoration loss is excused only when its reply did come, late, while "
        f"the machine was stalled (the prober itself sent >= {STALL_MS:.0f} ms late, or node2 answered late too); any "
        "query with no reply at all fails the check.",
        "",
        f"- Load distribution (both healthy): IPv4 node1 {100 * d4.get('share', {}).get('node1', 0):.1f}% / "
        f"node2 {100 * d4.get('share', {}).get('node2', 0):.1f}%, IPv6 node1 "
        f"{100 * d6.get('share', {}).get('node1', 0):.1f}% / node2 {100 * d6.get('share', {}).get('node2', 0):.1f}%.",
        f"- Nearest node (node2's AS path prepended twice): node1 answered {g('nearest', 'answered')} of "
        f"{g('nearest', 'sent')}, node2 {R.get('nearest', {}).get('by_node', {}).get('node2', 0)}.",
        f"- No flapping: node1's slow path wedged and freed every 200 ms for 10 s ({fa.get('toggles', 'n/a')} "
        f"toggles) → {fa.get('changes', 'n/a')} announcement changes at the router (bound "
        f"{fa.get('bound', 'n/a')}), {fa.get('probe', {}).get('lost', 'n/a')} of "
        f"{fa.get('probe', {}).get('sent', 'n/a')} queries lost meanwhile; every 700 ms for 8.4 s "
        f"({fb.get('toggles', 'n/a')} toggles) → {fb.get('changes', 'n/a')} changes (bound {fb.get('bound', 'n/a')}), "
        f"shortest time withdrawn {g('flapping_B', 'min_withdrawn_ms')} ms.",
        f"- Drain: `rampart anycast drain` then `undrain` lost {g('drain', 'lost')} of {g('drain', 'sent')} queries.",
        f"- Conventional DNS for contrast (resolv.conf with node1 and node2 unicast, node1 failing): "
        f"`getent hosts` {cv.get('getent_up_ms', 0):.0f} ms with both up, {cv.get('getent_killed_ms', 0):.0f} ms "
        f"with node1's server killed (its kernel sends port unreachable), {cv.get('getent_silent_ms', 0):.0f} ms "
        f"with node1 silent; `dig` {cv.get('dig_up_ms', 0):.0f} / {cv.get('dig_killed_ms', 0):.0f} / "
        f"{cv.get('dig_silent_ms', 0):.0f} ms.",
        "",
        "```json",
        json.dumps(RESULTS, indent=1, default=str),
        "```",
        "",
    ]
    with open(path, "w") as f:
        f.write("\n".join(lines))


if __name__ == "__main__":
    rplab.main_for(lambda: run(sys.argv[1:]))
