"""The resolver lab: a small private Internet in one network namespace, for tests/resolver_lab.py
and scripts/bench-resolver. NSD instances serve a private root (192.0.2.1), the TLD test.
(192.0.2.2) and leaf zones (192.0.2.3): good.test. (signed), bogus.test. (signed, one RRSIG made
wrong on purpose), plain.test. (unsigned, N names for the benchmark). The root, test. and
good.test. are signed here with dnspython (ECDSA P-256, one key per zone, NSEC); the root's
DNSKEY is the lab's trust anchor. Resolvers listen on 198.51.100.53 (rampart) and 198.51.100.54
(Unbound); 198.51.100.99 is a client address outside the ACL. Documentation addresses and
names only. Run with /usr/bin/python3 (it has dnspython) as root."""

import os
import shutil
import signal
import subprocess
import tempfile
import time

import dns.dnssec
import dns.name
import dns.node
import dns.rdata
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.rrset
import dns.zone
from cryptography.hazmat.primitives.asymmetric import ec

ROOT, TLD, LEAF = "192.0.2.1", "192.0.2.2", "192.0.2.3"
RAMPART, UNBOUND, OUTSIDER = "198.51.100.53", "198.51.100.54", "198.51.100.99"
# rampart's metrics endpoint (on RAMPART, inside the lab's namespace).
METRICS_PORT = 9153
# A second rampart that forwards to the first.
FORWARDER = "198.51.100.55"
# plain.test.: its SOA TTL and MINIMUM differ so the negative TTL (RFC 2308 §5) is their minimum.
NEG_TTL = 30
SHORT_TTL = 20
# The local zone rampart serves itself in the combined mode.
LOCAL_ZONE = "local.example."
# A record for the XDP cache checks, short-lived so its expiry comes within the run.
BRIEF_TTL = 12
# The XDP client namespace (`xdp_client`): its veth end, the lab's, and a source outside the ACL.
XDP_CLIENT, XDP_NODE, XDP_OUTSIDER = "203.0.113.2", "203.0.113.1", "203.0.113.3"


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=60, **kw)


def ns_exec(ns, cmd, **kw):
    return run(["ip", "netns", "exec", ns] + cmd, **kw)


def soa(origin, minimum=300, ttl=3600):
    mname = "a.root.test." if origin == "." else f"ns.{origin}"
    return f"{origin} {ttl} IN SOA {mname} hostmaster.test. 1 3600 600 86400 {minimum}"


def zone_texts(names):
    """origin -> zone text (unsigned), with `names` names under plain.test."""
    root = [soa("."), ". 3600 IN NS a.root.test.",
            "test. 3600 IN NS tld.ns.test.", f"tld.ns.test. 3600 IN A {TLD}",
            f"a.root.test. 3600 IN A {ROOT}"]
    tld = [soa("test."), "test. 3600 IN NS tld.ns.test.",
           f"tld.ns.test. 3600 IN A {TLD}", f"a.root.test. 3600 IN A {ROOT}"]
    for leaf in ("good", "bogus", "plain"):
        tld += [f"{leaf}.test. 3600 IN NS ns.{leaf}.test.", f"ns.{leaf}.test. 3600 IN A {LEAF}"]
    zones = {".": root, "test.": tld}
    for leaf in ("good", "bogus"):
        o = f"{leaf}.test."
        zones[o] = [soa(o), f"{o} 3600 IN NS ns.{o}", f"ns.{o} 3600 IN A {LEAF}",
                    f"www.{o} 300 IN A 192.0.2.80", f"{o} 300 IN TXT \"{leaf}\""]
    o = "plain.test."
    plain = [soa(o, minimum=NEG_TTL), f"{o} 3600 IN NS ns.{o}", f"ns.{o} 3600 IN A {LEAF}",
             f"short.{o} {SHORT_TTL} IN A 192.0.2.20", f"www.{o} 300 IN A 192.0.2.81",
             # an AAAA too, as the authoritative lab's www.example.com has: `getent hosts` asks
             # AAAA first and A only when there is none (two lookups, each paying a dead server)
             f"www.{o} 300 IN AAAA 2001:db8::81",
             f"brief.{o} {BRIEF_TTL} IN A 192.0.2.21",
             f"alias.{o} 300 IN CNAME www.{o}"]
    plain += [f"n{i}.{o} 3600 IN A 203.0.113.{i % 250 + 1}" for i in range(names)]
    zones[o] = plain
    return {origin: "\n".join(lines) + "\n" for origin, lines in zones.items()}


class Key:
    """One ECDSA P-256 signing key (flags 257: key- and zone-signing)."""

    def __init__(self, origin):
        self.origin = dns.name.from_text(origin)
        self.private = ec.generate_private_key(ec.SECP256R1())
        self.dnskey = dns.dnssec.make_dnskey(self.private.public_key(), dns.dnssec.Algorithm.ECDSAP256SHA256, flags=257)

    def ds(self):
        return dns.dnssec.make_ds(self.origin, self.dnskey, "SHA256")

    def anchor_line(self):
        return f"{self.origin.to_text()} 3600 IN DNSKEY {self.dnskey.to_text()}"


def sign(text, origin, key, ds=(), corrupt=None):
    """The zone text signed with `key` (DNSKEY, NSEC chain, RRSIGs on authoritative data), with
    DS records for the children in `ds` (child origin -> DS rdata). `corrupt`: an owner name
    whose A RRSIG gets a flipped signature byte (a bogus zone)."""
    z = dns.zone.from_text(text, origin=origin, relativize=False, check_origin=False)
    o = z.origin
    z.find_rdataset(o, "DNSKEY", create=True).add(key.dnskey, 3600)
    for child, rd in ds:
        z.find_rdataset(dns.name.from_text(child), "DS", create=True).add(rd, 3600)
    cuts = {n for n, node in z.nodes.items() if n != o and node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.NS)}

    def below_cut(n):
        return any(n != c and n.is_subdomain(c) for c in cuts)

    owners = sorted(n for n in z.nodes if not below_cut(n))
    for i, n in enumerate(owners):
        types = {rds.rdtype for rds in z.nodes[n].rdatasets}
        if n in cuts:
            types &= {dns.rdatatype.NS, dns.rdatatype.DS}
        types |= {dns.rdatatype.RRSIG, dns.rdatatype.NSEC}
        nxt = owners[(i + 1) % len(owners)]
        bitmap = " ".join(dns.rdatatype.to_text(t) for t in sorted(types))
        nsec = dns.rdata.from_text("IN", "NSEC", f"{nxt.to_text()} {bitmap}")
        minimum = z.find_rdataset(o, "SOA")[0].minimum
        z.find_rdataset(n, "NSEC", create=True).add(nsec, minimum)
    now = int(time.time())
    for n in owners:
        node = z.nodes[n]
        for rds in list(node.rdatasets):
            if rds.rdtype == dns.rdatatype.RRSIG:
                continue
            if n in cuts and rds.rdtype not in (dns.rdatatype.DS, dns.rdatatype.NSEC):
                continue
            rrset = dns.rrset.from_rdata_list(n, rds.ttl, list(rds))
            sig = dns.dnssec.sign(rrset, key.private, o, key.dnskey, inception=now - 3600,
                                  expiration=now + 30 * 86400)
            if corrupt and n == dns.name.from_text(corrupt) and rds.rdtype == dns.rdatatype.A:
                raw = bytearray(sig.signature)
                raw[10] ^= 0xFF
                sig = sig.replace(signature=bytes(raw))
            node.find_rdataset(dns.rdataclass.IN, dns.rdatatype.RRSIG, rds.rdtype, create=True).add(sig, rds.ttl)
    return z.to_text(relativize=False)


class ResolverLab:
    """The namespace, the signed zones and the NSD instances; `close()` (or `with`) removes
    everything, processes it started included."""

    def __init__(self, lab_id, names=1000, netns=None):
        """`netns`: an existing namespace to serve from (the routed anycast lab's), left in
        place by `close()`; only the authoritative servers' addresses are added to its lo."""
        self.own_ns = netns is None
        self.ns = netns or f"rrlab-{lab_id}"
        self.tmp = tempfile.mkdtemp(prefix=f"rrlab-{lab_id}-")
        self.procs = {}
        self.nsd_conf = {}
        self.nsd_served = {}
        self.client_ns = None
        self.bpffs = None
        try:
            self._network()
            self._zones(names)
            for name, addr, origins in (("root", ROOT, ["."]), ("tld", TLD, ["test."]),
                                        ("leaf", LEAF, ["good.test.", "bogus.test.", "plain.test."])):
                self._nsd(name, addr, origins)
        except BaseException:
            self.close()
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _network(self):
        if self.own_ns:
            run(["ip", "netns", "add", self.ns])
        ns_exec(self.ns, ["ip", "link", "set", "lo", "up"])
        others = (RAMPART, UNBOUND, OUTSIDER, FORWARDER) if self.own_ns else ()
        for addr in (ROOT, TLD, LEAF) + others:
            ns_exec(self.ns, ["ip", "addr", "add", f"{addr}/32", "dev", "lo"])

    def _zones(self, names):
        texts = zone_texts(names)
        keys = {o: Key(o) for o in (".", "test.", "good.test.", "bogus.test.")}
        self.zone_files = {}
        signed = {
            ".": sign(texts["."], ".", keys["."], ds=[("test.", keys["test."].ds())]),
            "test.": sign(texts["test."], "test.", keys["test."],
                          ds=[(o, keys[o].ds()) for o in ("good.test.", "bogus.test.")]),
            "good.test.": sign(texts["good.test."], "good.test.", keys["good.test."]),
            "bogus.test.": sign(texts["bogus.test."], "bogus.test.", keys["bogus.test."], corrupt="www.bogus.test."),
            "plain.test.": texts["plain.test."],
        }
        for origin, text in signed.items():
            path = os.path.join(self.tmp, (origin.rstrip(".") or "root") + ".zone")
            with open(path, "w") as f:
                f.write(text)
            self.zone_files[origin] = path
        self.anchor = os.path.join(self.tmp, "root.key")
        with open(self.anchor, "w") as f:
            f.write(keys["."].anchor_line() + "\n")
        self.local_zone = os.path.join(self.tmp, "local.example.zone")
        with open(self.local_zone, "w") as f:
            f.write(f"$ORIGIN {LOCAL_ZONE}\n@ 3600 IN SOA ns hostmaster 1 3600 600 86400 300\n"
                    f"@ 3600 IN NS ns\nns 3600 IN A {RAMPART}\nwww 3600 IN A 192.0.2.53\n")

    def _nsd(self, name, addr, origins):
        d = os.path.join(self.tmp, f"nsd-{name}")
        os.makedirs(d)
        conf = os.path.join(d, "nsd.conf")
        zones = "".join(f"zone:\n  name: \"{o}\"\n  zonefile: \"{self.zone_files[o]}\"\n" for o in origins)
        with open(conf, "w") as f:
            f.write(f"server:\n  ip-address: {addr}\n  port: 53\n  username: \"\"\n  chroot: \"\"\n"
                    f"  zonesdir: \"{d}\"\n  database: \"\"\n  pidfile: \"{d}/nsd.pid\"\n"
                    f"  xfrdfile: \"{d}/xfrd.state\"\n  zonelistfile: \"{d}/zone.list\"\n"
                    f"  logfile: \"{d}/nsd.log\"\n  server-count: 1\n  verbosity: 0\n"
                    # NSD's RRL (200 answers/s per class) would drop or truncate a resolver's
                    # run of negative answers (DS probes) and make the resolver look slow
                    f"  rrl-ratelimit: 0\n  rrl-whitelist-ratelimit: 0\n"
                    f"remote-control:\n  control-enable: yes\n  control-interface: {d}/nsd.ctl\n{zones}")
        self.nsd_conf[name] = conf
        self.nsd_served[name] = (addr, origins[0])
        self.start_nsd(name)

    def start_nsd(self, name):
        """Start NSD instance `name` as configured (again, after `stop`)."""
        self.procs[name] = subprocess.Popen(["ip", "netns", "exec", self.ns, "nsd", "-d", "-c", self.nsd_conf[name]],
                                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.wait_answering(*self.nsd_served[name])

    def wait_answering(self, addr, name, port=53, secs=20):
        deadline = time.time() + secs
        while time.time() < deadline:
            r = subprocess.run(["ip", "netns", "exec", self.ns, "dig", f"@{addr}", "-p", str(port), "+norec",
                                "+time=1", "+tries=1", name, "SOA"], capture_output=True, text=True)
            if "status: " in r.stdout:  # answering, whatever it says
                return
            time.sleep(0.2)
        raise RuntimeError(f"{addr}:{port} not answering for {name}")

    def start(self, name, cmd, addr, probe):
        """Start a resolver (its own process group) in the namespace and wait for it."""
        log = open(os.path.join(self.tmp, f"{name}.log"), "w")
        self.procs[name] = subprocess.Popen(["ip", "netns", "exec", self.ns] + cmd, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        self.wait_answering(addr, probe)
        return self.procs[name]

    def stop(self, name):
        p = self.procs.pop(name, None)
        if p and p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)

    def queries(self, name):
        """Queries NSD instance `name` (root, tld, leaf) has received so far."""
        out = run(["nsd-control", "-c", self.nsd_conf[name], "stats_noreset"]).stdout
        for line in out.splitlines():
            if line.startswith("num.queries="):
                return int(line.split("=")[1])
        raise RuntimeError(f"no num.queries from nsd-control: {out}")

    def rampart(self, binary, extra=(), forward=False, alone=False):
        """rampart iterating from the lab's root on RAMPART and serving the local zone too, or
        (`forward`) a resolver alone (no zones) on FORWARDER forwarding to Unbound (start it
        first), or (`alone`) a resolver alone on FORWARDER iterating from the root; each allows
        only its own address."""
        name, addr = ("rampart-fwd", FORWARDER) if forward or alone else ("rampart", RAMPART)
        upstream = ["--forwarder", f"{UNBOUND}:53"] if forward else ["--root-hint", ROOT]
        zones = [] if forward or alone else ["--zone", f"{LOCAL_ZONE}={self.local_zone}"]
        cmd = [binary, "run", "--listen", f"{addr}:53", "--user", "root", "--run-dir",
               os.path.join(self.tmp, f"run-{name}")] + zones + [
               "--resolver", "--trust-anchor", self.anchor, "--resolver-allow", f"{addr}/32",
               "--resolver-allow", "127.0.0.0/8", "--no-cookies"] + upstream + list(extra)
        if not forward and not alone:
            cmd += ["--metrics", f"{RAMPART}:{METRICS_PORT}"]
        return self.start(name, cmd, addr, LOCAL_ZONE)

    def unbound(self):
        d = os.path.join(self.tmp, "unbound")
        os.makedirs(d, exist_ok=True)
        hints = os.path.join(d, "root.hints")
        with open(hints, "w") as f:
            f.write(f". 3600 IN NS a.root.test.\na.root.test. 3600 IN A {ROOT}\n")
        conf = os.path.join(d, "unbound.conf")
        with open(conf, "w") as f:
            f.write(f"server:\n  interface: {UNBOUND}\n  port: 53\n  do-daemonize: no\n  username: \"\"\n"
                    f"  chroot: \"\"\n  directory: \"{d}\"\n  pidfile: \"{d}/unbound.pid\"\n"
                    f"  use-syslog: no\n  logfile: \"\"\n  verbosity: 0\n  num-threads: 1\n"
                    f"  access-control: 198.51.100.0/24 allow\n  access-control: {XDP_CLIENT}/32 allow\n  root-hints: \"{hints}\"\n"
                    f"  trust-anchor-file: \"{self.anchor}\"\n  do-not-query-localhost: no\n"
                    f"  msg-cache-size: 64m\n  rrset-cache-size: 128m\n  qname-minimisation: no\n"
                    f"  aggressive-nsec: no\n  harden-referral-path: no\n"
                    # test. is one of Unbound's built-in NXDOMAIN zones (RFC 6761)
                    f"  local-zone: \"test.\" nodefault\n"
                    f"remote-control:\n  control-enable: no\n")
        return self.start("unbound", ["unbound", "-d", "-c", conf], UNBOUND, "www.good.test.")

    def xdp_client(self):
        """A client namespace behind a veth (XDP_CLIENT and XDP_OUTSIDER; the lab's end n0 is
        XDP_NODE) and a bpffs of the lab's own: the `rampart run` arguments that attach rampart's
        XDP program to n0, answering XDP_CLIENT from the cache."""
        self.client_ns = f"{self.ns}-c"
        run(["ip", "netns", "add", self.client_ns])
        cns = ["ip", "-n", self.client_ns]
        run(cns + ["link", "set", "lo", "up"])
        run(["ip", "link", "add", "c0", "netns", self.client_ns, "type", "veth", "peer", "name", "n0",
             "netns", self.ns])
        for addr in (XDP_CLIENT, XDP_OUTSIDER):
            run(cns + ["addr", "add", f"{addr}/24", "dev", "c0"])
        run(["ip", "-n", self.ns, "addr", "add", f"{XDP_NODE}/24", "dev", "n0"])
        # As scripts/lib/lab.sh: full checksums from the client, and XDP on its end so that
        # veth delivers the node's XDP_TX frames.
        ns_exec(self.client_ns, ["ethtool", "-K", "c0", "tx", "off"])
        obj = os.path.join(self.tmp, "xdp_pass.o")
        src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "xdp_pass.c")
        run(["clang-14", "-O2", "-target", "bpf", "-c", src, "-o", obj])
        self.pass_obj = obj
        self.reattach_client_pass()
        run(cns + ["link", "set", "c0", "up"])
        run(["ip", "-n", self.ns, "link", "set", "n0", "up"])
        run(cns + ["route", "add", "198.51.100.0/24", "via", XDP_NODE])
        self.bpffs = os.path.join(self.tmp, "bpffs")
        os.makedirs(self.bpffs)
        run(["mount", "-t", "bpf", "bpf", self.bpffs])
        self.pin_dir = os.path.join(self.bpffs, "rampart")
        return ["--iface", "n0", "--pin-dir", self.pin_dir, "--resolver-allow", f"{XDP_CLIENT}/32"]

    def reattach_client_pass(self):
        """The client end's own XDP program (a pass), which veth needs to deliver the node's
        XDP_TX frames; kxdpgun replaces it with its own and leaves that behind."""
        run(["ip", "-n", self.client_ns, "link", "set", "dev", "c0", "xdp", "off"])
        run(["ip", "-n", self.client_ns, "link", "set", "dev", "c0", "xdpdrv", "obj", self.pass_obj,
             "sec", "xdp"])

    def close(self):
        for name in list(self.procs):
            self.stop(name)
        if self.own_ns:
            subprocess.run(["ip", "netns", "del", self.ns], capture_output=True)
        if self.client_ns:
            subprocess.run(["ip", "netns", "del", self.client_ns], capture_output=True)
        if self.bpffs:
            subprocess.run(["umount", self.bpffs], capture_output=True)
        shutil.rmtree(self.tmp, ignore_errors=True)
