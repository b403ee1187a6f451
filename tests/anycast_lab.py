"""The routed anycast lab's six tests (issue 4), against the lab scripts/test-anycast builds
(scripts/lib/anycast-lab.sh: client ─ router (BIRD, ECMP) ─ node1, node2 (BIRD + rampart)).

Each test measures with tests/anycast_prober.py (500 queries/s, 200 ms timeout, 512 source ports,
NSID on every query so each answer names its node) and prints its figures on one line starting
with `anycast:`. Closing line: `N passed, M failed`. Usage: anycast_lab.py [test ...]
(distribution nearest failover_kill failover_detach failover_slowpath flapping conventional)."""

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
NAME = "www.example.com."
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
        self.fault_on = False

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

    def rampart(self, *args, timeout=20):
        return sh("ip", "netns", "exec", self.ns, E["RP_BIN"], *args, timeout=timeout)

    def status(self):
        r = self.rampart("anycast", "status", "--json", "--config", os.path.join(self.dir, "rampart.toml"))
        return json.loads(r.stdout)

    def fault(self, on):
        """Kills (on) or revives (off) the node's slow path: a cgroup_skb program drops every
        DNS query to the sockets of rampart's cgroup (alab_slowpath_fault), so clients' queries
        that need the slow path and the health checker's slow-path probe go unanswered, while
        the process, its XDP program and its health checker keep running."""
        sh("bpftool", "cgroup", "attach" if on else "detach", os.path.join(E["AL_CGROUP"], self.name),
           "ingress", "pinned", os.path.join(E["RP_BPFFS"], "cgroup_drop_dns"))
        self.fault_on = on


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
    address, stamped with CLOCK_MONOTONIC on arrival, and the set of next hops after it."""

    def __init__(self):
        self.gw = frozenset(router_gateways())
        self.events = [(time.monotonic(), self.gw)]  # (t, frozenset of gateways)
        self.p = subprocess.Popen(["stdbuf", "-oL", "ip", "-n", E["AL_NS_ROUTER"], "monitor", "route"],
                                  stdout=subprocess.PIPE, text=True, bufsize=1)
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        msg = []
        for line in self.p.stdout:
            if line[:1] not in (" ", "\t") and msg:
                self._message(msg)
                msg = []
            msg.append(line.rstrip("\n"))
        if msg:
            self._message(msg)

    def _message(self, lines):
        head = lines[0].split()
        deleted = head[:1] == ["Deleted"]
        if deleted:
            head = head[1:]
        if not head or head[0] not in (E["AL_SERVICE4"], E["AL_SERVICE4"] + "/32"):
            return
        words = " ".join(lines).split()
        gws = frozenset(words[i + 1] for i, w in enumerate(words) if w == "via")
        self.gw = (self.gw - gws) if deleted else gws
        self.events.append((time.monotonic(), self.gw))

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
             "--duration", str(duration), "--qname", NAME, "--out", self.out],
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
            if n.fault_on:
                n.fault(False)
            if not n.alive():
                n.start()
        ok = wait_gateways(self.both, 30)
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
            self.c.check(f"distribution IPv{fam}: under 2% lost", s["lost"] <= 0.02 * s["sent"], json.dumps(s))
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
            self.c.check("nearest: under 2% lost", s["lost"] <= 0.02 * s["sent"], json.dumps(s))
        finally:
            lab("alab_node2_prepend", 0)
        self.c.check("nearest: prepend removed: both nodes again", wait_gateways(self.both, 15),
                     str(router_gateways()))

    def _failover(self, label, act, restore, restore_label):
        """Probe for a while, `act` on node1 1.5 s in; then `restore` and probe the way back.
        Checks: answers move to node2, the loss window < 1 s; after restoring, node1 is announced
        again after the hold-down, takes its traffic back, and no query is lost."""
        if not self.ensure_both(label):
            return
        p = Probe(5, tag=label)
        p.wait_started()
        time.sleep(1.0)
        t_act = act()
        recs = p.result()
        s = prober.summarize(recs, t_from=t_act - 0.05)
        wd = self.watch.changes(self.n1.addr4, t_act - 0.05)
        t_wd = next((t for t, present in wd if not present), None)
        after = prober.summarize(recs, t_from=t_act + LOSS_BOUND_MS / 1000 + 0.3)
        RESULTS[label] = dict(s, withdrawn_ms=(t_wd - t_act) * 1000 if t_wd else None)
        print(f"anycast: 3 failover ({label}): loss window {ms(s['loss_window_ms'])}, lost {s['lost']} "
              f"of {s['sent']} queries after the fault, route withdrawn at the router "
              f"{ms((t_wd - t_act) * 1000 if t_wd else None)} after it", flush=True)
        self.c.check(f"{label}: router withdrew node1", t_wd is not None, str(self.watch.events[-5:]))
        self.c.check(f"{label}: loss window under {LOSS_BOUND_MS:.0f} ms", s["loss_window_ms"] < LOSS_BOUND_MS,
                     json.dumps(s))
        self.c.check(f"{label}: afterwards node2 answers everything",
                     after["sent"] > 0 and after["by_node"].get("node2", 0) == after["sent"], json.dumps(after))
        # 4: the way back
        p = Probe(4.0 + self.hold_down_s() + 4.0, tag=label + "-back")
        p.wait_started()
        time.sleep(0.5)
        t_rec = restore()
        ok = wait_gateways(self.both, self.hold_down_s() + 20)
        recs = p.result()
        s = prober.summarize(recs, t_from=t_rec - 0.5)
        back = self.watch.changes(self.n1.addr4, t_rec)
        t_back = next((t for t, present in back if present), None)
        delay = (t_back - t_rec) * 1000 if t_back else None
        tail = prober.summarize(recs, t_from=(t_back or t_rec) + 0.2)
        RESULTS[label + "_restore"] = dict(s, announced_ms=delay)
        print(f"anycast: 4 restoration ({restore_label}): node1 announced again {ms(delay)} after it "
              f"recovered (hold-down {self.hold_down_s() * 1000:.0f} ms), lost {s['lost']} of {s['sent']}, "
              f"then node1 {pct(tail['share'].get('node1', 0))} / node2 {pct(tail['share'].get('node2', 0))}",
              flush=True)
        self.c.check(f"{label} restore: node1 announced again", ok and t_back is not None, str(router_gateways()))
        if delay is not None:
            self.c.check(f"{label} restore: not before the hold-down", delay >= self.hold_down_s() * 1000 - 50,
                         f"{delay:.0f} ms")
        self.c.check(f"{label} restore: no query lost", s["lost"] == 0, json.dumps(s))
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
        self._failover("failover_kill", self.n1.kill, restore, "rampart restarted")

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
        self._failover("failover_detach", act, restore, "restarted after detach")

    def failover_slowpath(self):
        def act():
            t = time.monotonic()
            self.n1.fault(True)
            return t

        def restore():
            t = time.monotonic()
            self.n1.fault(False)
            return t
        self._failover("failover_slowpath", act, restore, "slow path revived")

    # 5
    def flapping(self):
        if not self.ensure_both("flapping"):
            return
        period, total = 0.2, 10.0
        t0 = time.monotonic()
        toggles = 0
        while time.monotonic() - t0 < total:
            self.n1.fault(not self.n1.fault_on)
            toggles += 1
            time.sleep(max(0.0, t0 + toggles * period - time.monotonic()))
        if self.n1.fault_on:
            self.n1.fault(False)
        t_end = time.monotonic()
        ok = wait_gateways(self.both, self.hold_down_s() + 20)
        ch = self.watch.changes(self.n1.addr4, t0, time.monotonic())
        hold = self.hold_down_s()
        # each re-announcement must follow the withdrawal before it by at least the hold-down
        gaps = [(b[0] - a[0]) for a, b in zip(ch, ch[1:]) if not a[1] and b[1]]
        bound = 2 * int(total / hold) + 2
        RESULTS["flapping"] = {"toggles": toggles, "changes": len(ch), "bound": bound,
                               "min_readvertise_gap_ms": min(gaps) * 1000 if gaps else None}
        print(f"anycast: 5 flapping: {toggles} health toggles in {t_end - t0:.1f} s (every {period * 1000:.0f} ms): "
              f"{len(ch)} announcement changes at the router (bound {bound} with hold-down {hold * 1000:.0f} ms), "
              f"shortest withdraw→announce {ms(min(gaps) * 1000 if gaps else None)}", flush=True)
        self.c.check("flapping: announcement changes within the hold-down bound", len(ch) <= bound, str(ch))
        self.c.check("flapping: no re-announcement sooner than the hold-down",
                     all(g >= hold - 0.05 for g in gaps), str(gaps))
        self.c.check("flapping: node1 announced again once healthy", ok, str(router_gateways()))

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


TESTS = ["distribution", "nearest", "failover_kill", "failover_detach", "failover_slowpath", "flapping",
         "conventional"]


def run(names=None):
    s = Suite()
    try:
        for name in names or TESTS:
            t = time.monotonic()
            print(f"== anycast {name}", flush=True)
            s.c.run(name, getattr(s, name))
            print(f"== anycast {name}: {time.monotonic() - t:.1f} s", flush=True)
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
                      ("failover_slowpath", "node1's slow path dead (its sockets get no query)")):
        rows.append(f"| {what} | {g(key, 'loss_window_ms')} ms | {g(key, 'lost')} of {g(key, 'sent')} | "
                    f"{g(key, 'withdrawn_ms')} ms | {g(key + '_restore', 'lost')} of {g(key + '_restore', 'sent')} | "
                    f"{g(key + '_restore', 'announced_ms')} ms |")
    d4, d6 = R.get("distribution_v4", {}), R.get("distribution_v6", {})
    fl, cv = R.get("flapping", {}), R.get("conventional", {})
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
        "| failure of node1 | loss window | queries lost (of sent after the fault) | route withdrawn at the router after | "
        "restoration: lost | re-announced after recovery |",
        "|---|---:|---:|---:|---:|---:|",
        *rows,
        "",
        f"- Load distribution (both healthy): IPv4 node1 {100 * d4.get('share', {}).get('node1', 0):.1f}% / "
        f"node2 {100 * d4.get('share', {}).get('node2', 0):.1f}%, IPv6 node1 "
        f"{100 * d6.get('share', {}).get('node1', 0):.1f}% / node2 {100 * d6.get('share', {}).get('node2', 0):.1f}%.",
        f"- Nearest node (node2's AS path prepended twice): node1 answered {g('nearest', 'answered')} of "
        f"{g('nearest', 'sent')}, node2 {R.get('nearest', {}).get('by_node', {}).get('node2', 0)}.",
        f"- No flapping: {fl.get('toggles', 'n/a')} health toggles (every 200 ms for 10 s) → "
        f"{fl.get('changes', 'n/a')} announcement changes at the router (bound {fl.get('bound', 'n/a')}); "
        f"shortest withdraw→announce {g('flapping', 'min_readvertise_gap_ms')} ms.",
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
