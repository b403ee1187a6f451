"""The routed anycast lab with resolver nodes (issue 13, anycast for resolvers), against the lab
scripts/test-anycast-resolver builds (scripts/lib/anycast-lab.sh with AL_RESOLVER=1: client ─
router ─ node1, node2, and behind the router the private root, TLD and leaf servers of
tests/reslab.py, which this script starts). Both nodes resolve from the lab's root with DNSSEC
validation, each naming the other in health.peers. The prober (tests/anycast_prober.py, 500
queries/s with RD set, 200 ms timeout) asks www.plain.test.

  failover_kill      rampart SIGKILLed on node1: answers move to node2, then node1 restarts
                     (cold cache) and takes its share back (tests/anycast_lab.py's figures 3-4);
  failover_upstream  node1's route to the authoritative servers blackholed: its upstream check
                     fails, node2 reports reaching its own, node1 withdraws, losing nothing (it
                     still answers from its cache meanwhile); the route back, it re-announces
                     after the hold-down;
  fleet_guard        the route to the authoritative servers blackholed at the router (every node
                     lost its upstreams): both stay announced, answering from their caches, and
                     each reports the guard holding;
  conventional       a stub with node1 and node2 as unicast resolvers, node1 killed then silent,
                     against the anycast address (the whitepaper's figure 6 contrast).

Each test prints its figures on lines starting with `anycast-resolver:`. Closing line:
`N passed, M failed`. Usage: anycast_resolver_lab.py [test ...]."""

import json
import os
import subprocess
import sys
import time

E = os.environ
E.setdefault("AL_QNAME", "www.plain.test.")
E.setdefault("AL_RD", "1")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import anycast_lab as al  # noqa: E402
import anycast_prober as prober  # noqa: E402
import reslab  # noqa: E402
import rplab  # noqa: E402

RESULTS = {}


def upstreams_probe(status):
    return next((p for p in status.get("probes", []) if p["name"] == "upstreams"), {})


class ResolverSuite(al.Suite):
    def __init__(self):
        super().__init__()
        self.c = rplab.Checks("anycast-resolver")

    def warm(self):
        """Each node resolves the prober's name once (its unicast address), so both caches hold it."""
        for n in (self.n1, self.n2):
            subprocess.run(["ip", "netns", "exec", E["AL_NS_CLIENT"], "dig", f"@{n.addr4}", al.NAME, "A",
                            "+time=2", "+tries=2"], capture_output=True, text=True, timeout=30)

    def failover_kill(self):
        self.warm()
        super().failover_kill()

    def conventional(self):
        self.warm()
        super().conventional()

    def failover_upstream(self):
        label = "failover_upstream"
        if not self.ensure_both(label):
            return
        self.warm()
        hold = self.hold_down_s()
        blackhole = ["ip", "-n", self.n1.ns, "route", "add", "blackhole", E["AL_AUTH_NET"]]
        p = al.Probe(1.0 + 4.0 + hold + 3.0, tag=label)
        p.wait_started()
        time.sleep(1.0)
        t_act = time.monotonic()
        al.sh(*blackhole)
        try:
            gone = al.wait_gateways({self.n2.addr4}, 8)
            st = self.n1.status()
        finally:
            t_rec = time.monotonic()
            al.sh("ip", "-n", self.n1.ns, "route", "del", "blackhole", E["AL_AUTH_NET"], check=False)
        back = al.wait_gateways(self.both, hold + 20)
        recs = p.result()
        t_wd = next((t for t, present in self.watch.changes(self.n1.addr4, t_act, t_rec) if not present), None)
        t_back = next((t for t, present in self.watch.changes(self.n1.addr4, t_rec) if present), None)
        s = prober.summarize(recs, t_from=t_act)
        last = (st.get("transitions") or [{}])[-1]
        wd_ms = (t_wd - t_act) * 1000 if t_wd else None
        back_ms = (t_back - t_rec) * 1000 if t_back else None
        RESULTS[label] = dict(s, withdrawn_ms=wd_ms, announced_ms=back_ms)
        print(f"anycast-resolver: upstreams of node1 unreachable: withdrawn at the router {al.ms(wd_ms)} after "
              f"the blackhole, lost {s['lost']} of {s['sent']} queries (node1 answers from its cache until then); "
              f"announced again {al.ms(back_ms)} after the route came back (hold-down {hold * 1000:.0f} ms); "
              f"node1 says: {last.get('to')}: {last.get('reason')}", flush=True)
        self.c.check(f"{label}: router withdrew node1", gone and t_wd is not None, str(self.watch.events[-5:]))
        self.c.check(f"{label}: withdrawn for its upstreams, naming the peer that reaches them",
                     last.get("to") == "withdrawn" and "upstreams" in (last.get("reason") or "")
                     and E["AL_NODE2_4"] in (last.get("reason") or ""), json.dumps(last))
        # one check interval (1 s) for the failure, at most one more before the peer's answer
        # postdates it, `fall` rounds (2.3 s at worst), BGP; 3 s on a loaded machine
        self.c.check(f"{label}: withdrawn within 3 s", wd_ms is not None and wd_ms < 3000, f"{wd_ms} ms")
        self.c.check(f"{label}: no query lost (cached answers meanwhile, then node2)",
                     s["lost"] <= 2 and s["sent"] > 0, json.dumps(s))
        self.c.check(f"{label}: announced again once the upstreams answer, not before the hold-down",
                     back and t_back is not None and t_wd is not None and t_back - t_wd >= hold - 0.05,
                     f"{t_back} {t_wd}")

    def fleet_guard(self):
        label = "fleet_guard"
        if not self.ensure_both(label):
            return
        self.warm()
        before = [upstreams_probe(n.status()).get("guarded", 0) for n in (self.n1, self.n2)]
        p = al.Probe(6.0, tag=label)
        p.wait_started()
        time.sleep(0.5)
        t_act = time.monotonic()
        al.sh("ip", "-n", E["AL_NS_ROUTER"], "route", "replace", "blackhole", E["AL_AUTH_NET"])
        try:
            time.sleep(4.5)
            st = [n.status() for n in (self.n1, self.n2)]
        finally:
            t_end = time.monotonic()
            al.sh("ip", "-n", E["AL_NS_ROUTER"], "route", "replace", E["AL_AUTH_NET"], "via", E["AL_AUTH4"],
                  check=False)
        recs = p.result()
        ch = self.watch.changes(self.n1.addr4, t_act, t_end) + self.watch.changes(self.n2.addr4, t_act, t_end)
        s = prober.summarize(recs, t_from=t_act, t_to=t_end)
        guarded = [upstreams_probe(x).get("guarded", 0) - b for x, b in zip(st, before)]
        why = [upstreams_probe(x).get("last_failure") for x in st]
        RESULTS[label] = dict(s, route_changes=len(ch), guarded=guarded)
        print(f"anycast-resolver: every node's upstreams unreachable for 4.5 s: {len(ch)} route changes at the "
              f"router, states {[x.get('state') for x in st]}, guarded checks {guarded}, answered node1 "
              f"{s['by_node'].get('node1', 0)} / node2 {s['by_node'].get('node2', 0)}, lost {s['lost']} of "
              f"{s['sent']}; node1 says: {why[0]}", flush=True)
        logs = []
        for n in (self.n1, self.n2):
            with open(os.path.join(n.dir, "rampart.log")) as f:
                logs += [f"{n.name}: {ln.strip()}" for ln in f if "anycast: " in ln][-6:]
        self.c.check(f"{label}: both nodes stay announced (no route change)", not ch and
                     all(x.get("state") == "announced" for x in st),
                     json.dumps([x.get("transitions", [])[-2:] for x in st]) + "\n" + "\n".join(logs))
        self.c.check(f"{label}: both report the guard holding", all(g >= 2 for g in guarded)
                     and all("fleet guard" in (w or "") for w in why), json.dumps([guarded, why]))
        self.c.check(f"{label}: both answer from their caches, nothing lost",
                     s["by_node"].get("node1", 0) > 0 and s["by_node"].get("node2", 0) > 0 and s["lost"] <= 2,
                     json.dumps(s))


TESTS = ["failover_kill", "failover_upstream", "fleet_guard", "conventional"]


def run(names=None):
    with reslab.ResolverLab(E["RP_LAB_ID"], names=100, netns=E["AL_NS_AUTH"]) as auth:
        E["AL_TRUST_ANCHOR"] = auth.anchor
        for n in (1, 2):
            al.lab("alab_node_start", n)
        s = ResolverSuite()
        try:
            al.run_named(s, names or TESTS, "anycast-resolver")
        finally:
            s.watch.stop()
            RESULTS.update({k: v for k, v in al.RESULTS.items() if k not in RESULTS})
            out = E.get("RP_ANYCAST_RESOLVER_RESULTS")
            if out:
                with open(out, "w") as f:
                    json.dump(RESULTS, f, indent=1, default=str)
            # the nodes go with the lab (alab_down); the authoritative servers with `auth`
    return s.c


if __name__ == "__main__":
    rplab.main_for(lambda: run(sys.argv[1:]))
