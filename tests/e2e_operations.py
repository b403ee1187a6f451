"""Operating rampart: what a DNS operator relies on besides answers.

- `rampart check` reports file:line and exits 1 on a broken zone, 0 on good ones.
- Hundreds of zones load at once and each one answers.
- SIGHUP reload: a changed zone is served anew; a zone whose file now fails keeps serving its
  previous version (never dropped, never half-loaded).
- Fate-sharing: a rampart killed with SIGKILL leaves no XDP program on its NIC (bpf_link).
- `rampart detach` removes only rampart's program: another program alone on the NIC (here a
  netlink-attached XDP_PASS program) is left in place, named in the error (e2e_share checks the
  removal of a dead instance's left-over, and of rampart's entry in libxdp's dispatcher).

These run in the node namespace on a veth pair and loopback port of their own, beside the lab's
running rampart, which they don't touch."""

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time

import dns.message
import dns.rcode
import dns.rdatatype

import rplab

PORT = 5454  # a socket-only rampart of this module's own, on the node's loopback
ZONES = 300


def zone_text(origin, serial, addr, extra=""):
    return (f"$ORIGIN {origin}.\n$TTL 300\n@ SOA ns1 hostmaster {serial} 7200 3600 1209600 300\n"
            f"@ NS ns1\nns1 A 192.0.2.1\nwww A {addr}\n{extra}")


def ns_run(lab, *cmd, timeout=30, check=False):
    return subprocess.run(["ip", "netns", "exec", lab.ns_node, *cmd], capture_output=True, text=True,
                          timeout=timeout, check=check)


def ask(lab, name, qtype="A"):
    """Query the module's own rampart over UDP on the node's loopback; (rcode, [rdata text])."""
    q = dns.message.make_query(name, qtype)
    out = ns_run(lab, "/usr/bin/python3", "-c",
                 "import sys,dns.message,dns.query;"
                 "q=dns.message.from_wire(bytes.fromhex(sys.argv[1]));"
                 f"r=dns.query.udp(q,'127.0.0.1',port={PORT},timeout=2);"
                 "print(r.to_wire().hex())", q.to_wire().hex())
    if out.returncode != 0:
        return None, out.stderr.strip()[-200:]
    r = dns.message.from_wire(bytes.fromhex(out.stdout.strip()))
    data = [rd.to_text() for rrset in r.answer for rd in rrset if rrset.rdtype == dns.rdatatype.from_text(qtype)]
    return r.rcode(), data


def wait_ready(proc, log, secs=20):
    deadline = time.monotonic() + secs
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        with open(log) as f:
            if "rampart: ready" in f.read():
                return True
        time.sleep(0.1)
    return False


def stop(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def check_command(c, lab, tmp):
    good = os.path.join(tmp, "good.test.zone")
    bad = os.path.join(tmp, "bad.test.zone")
    with open(good, "w") as f:
        f.write(zone_text("good.test", 1, "192.0.2.10"))
    with open(bad, "w") as f:
        f.write(zone_text("bad.test", 1, "192.0.2.10", "mail MX 10\n"))
    ok = subprocess.run([lab.bin, "check", good], capture_output=True, text=True, timeout=20)
    c.check("check: a good zone exits 0", ok.returncode == 0, ok.stdout + ok.stderr)
    ko = subprocess.run([lab.bin, "check", good, bad], capture_output=True, text=True, timeout=20)
    c.check("check: a broken zone exits 1", ko.returncode == 1, f"rc={ko.returncode}")
    c.check("check: the error is file:line", f"{bad}:7:" in ko.stderr, ko.stderr)


def native_attach_fails_loudly(c, lab, tmp):
    """Loopback has no driver-mode XDP: native (the default) must refuse, generic must work."""
    zdir = os.path.join(tmp, "lo-zones")
    os.makedirs(zdir)
    with open(os.path.join(zdir, "lo.test.zone"), "w") as f:
        f.write(zone_text("lo.test", 1, "192.0.2.10"))
    pins = os.path.join(os.path.dirname(lab.pin_dir), "rampart-lo")
    out = ns_run(lab, lab.bin, "run", "--iface", "lo", "--zone-dir", zdir, "--listen", f"127.0.0.1:{PORT + 2}",
                 "--pin-dir", pins, "--control-socket", os.path.join(tmp, "lo.sock"), timeout=30)
    c.check("native attach on a NIC without driver XDP exits non-zero", out.returncode != 0, out.stderr[-500:])
    c.check("and says why and what to do", "Native mode" in out.stderr and "--xdp-mode generic" in out.stderr,
            out.stderr[-500:])
    c.check("and leaves no program behind", not xdp_prog_on(lab, "lo"))


def reload_and_many_zones(c, lab, tmp):
    zdir = os.path.join(tmp, "zones")
    os.makedirs(zdir)
    for i in range(ZONES):
        with open(os.path.join(zdir, f"z{i}.test.zone"), "w") as f:
            f.write(zone_text(f"z{i}.test", 1, f"198.51.100.{i % 250 + 1}"))
    log = os.path.join(tmp, "rampart.log")
    with open(log, "w") as out:
        proc = subprocess.Popen(["ip", "netns", "exec", lab.ns_node, lab.bin, "run", "--zone-dir", zdir,
                                 "--listen", f"127.0.0.1:{PORT}", "--metrics", f"127.0.0.1:{PORT + 3}",
                                 "--control-socket", os.path.join(tmp, "many.sock")], stdout=out, stderr=subprocess.STDOUT)
    try:
        if not c.check("many zones: rampart starts", wait_ready(proc, log), open(log).read()[-2000:]):
            return
        answers = {i: ask(lab, f"www.z{i}.test") for i in (0, 1, 150, ZONES - 1)}
        c.check(f"many zones: all {ZONES} load and answer",
                all(a == (dns.rcode.NOERROR, [f"198.51.100.{i % 250 + 1}"]) for i, a in answers.items()),
                str(answers))

        # z0 changes; z1 breaks (syntax error); SIGHUP.
        with open(os.path.join(zdir, "z0.test.zone"), "w") as f:
            f.write(zone_text("z0.test", 2, "203.0.113.77"))
        with open(os.path.join(zdir, "z1.test.zone"), "w") as f:
            f.write(zone_text("z1.test", 2, "203.0.113.78", "www2 A 203.0.113.999\n"))
        hup_at = time.time()
        proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and ask(lab, "www.z0.test")[1] != ["203.0.113.77"]:
            time.sleep(0.1)
        c.check("reload: a changed zone is served anew", ask(lab, "www.z0.test") == (dns.rcode.NOERROR, ["203.0.113.77"]))
        c.check("reload: a zone whose file now fails keeps its previous version",
                ask(lab, "www.z1.test") == (dns.rcode.NOERROR, ["198.51.100.2"]), str(ask(lab, "www.z1.test")))
        text = open(log).read()
        c.check("reload: the error is logged as file:line", "z1.test.zone:7:" in text, text[-1500:])
        c.check("reload: the others still answer", ask(lab, f"www.z{ZONES - 1}.test")[0] == dns.rcode.NOERROR)
        reload_metrics(c, lab, proc, zdir, hup_at)
    finally:
        stop(proc)


def reload_metrics(c, lab, proc, zdir, hup_at):
    """After one reload with z1 broken: one failed reload, its errors counted, the serials as
    served; mending z1 and reloading again adds one ok reload."""
    m = scrape(lab, PORT + 3) or {}
    reloads = family(m, "rampart_reloads_total", "result")
    c.check("reload metrics: one failed reload, no ok one", reloads == {"ok": 0, "failed": 1}, reloads)
    # z1's one bad line, and "keeping the previously loaded zone": the two errors logged.
    c.check("reload metrics: z1's two load errors", m.get(("rampart_zone_load_errors_total", ())) == 2,
            m.get(("rampart_zone_load_errors_total", ())))
    serials = family(m, "rampart_zone_serial", "zone")
    c.check("reload metrics: the serials served (z1 kept its old version)",
            (len(serials), serials.get("z0.test."), serials.get("z1.test.")) == (ZONES, 2, 1),
            (len(serials), serials.get("z0.test."), serials.get("z1.test.")))
    c.check("reload metrics: rampart_zones", m.get(("rampart_zones", ())) == ZONES)
    at = m.get(("rampart_last_reload_timestamp_seconds", ()), 0)
    took = m.get(("rampart_last_reload_duration_seconds", ()), 0)
    c.check("reload metrics: when the reload started", hup_at - 1 <= at <= time.time(), (hup_at, at))
    c.check("reload metrics: how long it took", 0 < took < 10, took)
    with open(os.path.join(zdir, "z1.test.zone"), "w") as f:
        f.write(zone_text("z1.test", 3, "203.0.113.78"))
    proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        m = scrape(lab, PORT + 3) or {}
        if family(m, "rampart_reloads_total", "result").get("ok") == 1:
            break
        time.sleep(0.1)
    reloads = family(m, "rampart_reloads_total", "result")
    c.check("reload metrics: a clean reload is ok", reloads == {"ok": 1, "failed": 1}, reloads)
    c.check("reload metrics: z1's new serial", family(m, "rampart_zone_serial", "zone").get("z1.test.") == 3)


def xdp_prog_on(lab, dev):
    out = ns_run(lab, "ip", "-j", "link", "show", dev, check=True)
    return '"xdp"' in out.stdout


def fate_sharing_and_detach(c, lab, tmp):
    """A veth pair of this module's own inside the node namespace."""
    ns_run(lab, "ip", "link", "add", "rpop0", "numtxqueues", "1", "numrxqueues", "1", "type", "veth",
           "peer", "name", "rpop1", "numtxqueues", "1", "numrxqueues", "1", check=True)
    try:
        ns_run(lab, "ip", "link", "set", "rpop0", "up", check=True)
        ns_run(lab, "ip", "link", "set", "rpop1", "up", check=True)
        zdir = os.path.join(tmp, "fs-zones")
        os.makedirs(zdir)
        with open(os.path.join(zdir, "fs.test.zone"), "w") as f:
            f.write(zone_text("fs.test", 1, "192.0.2.10"))
        pins = os.path.join(os.path.dirname(lab.pin_dir), "rampart-ops")
        log = os.path.join(tmp, "fs.log")
        with open(log, "w") as out:
            proc = subprocess.Popen(["ip", "netns", "exec", lab.ns_node, lab.bin, "run", "--iface", "rpop0",
                                     "--zone-dir", zdir, "--listen", f"127.0.0.1:{PORT + 1}",
                                     "--pin-dir", pins, "--control-socket", os.path.join(tmp, "fs.sock")],
                                    stdout=out, stderr=subprocess.STDOUT)
        try:
            if not c.check("fate-sharing: rampart attaches", wait_ready(proc, log), open(log).read()[-1500:]):
                return
            c.check("fate-sharing: program on the NIC while running", xdp_prog_on(lab, "rpop0"))
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
            gone = False
            for _ in range(50):
                if not xdp_prog_on(lab, "rpop0"):
                    gone = True
                    break
                time.sleep(0.1)
            c.check("fate-sharing: SIGKILL leaves no XDP program behind", gone)
        finally:
            stop(proc)
        # Another program, attached the legacy (netlink) way: not rampart's, so detach leaves it.
        obj = os.path.join(os.environ.get("RP_TMP", tmp), "xdp_pass.o")
        if not os.path.exists(obj):
            c.skip("detach", "no xdp_pass.o in the lab")
            return
        ns_run(lab, "ip", "link", "set", "dev", "rpop0", "xdpgeneric", "obj", obj, "sec", "xdp", check=True)
        c.check("detach: another program is there", xdp_prog_on(lab, "rpop0"))
        out = ns_run(lab, lab.bin, "detach", "--iface", "rpop0")
        c.check("detach: refuses another program, naming it",
                out.returncode != 0 and "not rampart's" in out.stderr and "xdp_pass" in out.stderr, out.stderr)
        c.check("detach: that program stays", xdp_prog_on(lab, "rpop0"))
        out = ns_run(lab, lab.bin, "detach", "--iface", "no-such-nic")
        c.check("detach: an unknown NIC is an error", out.returncode != 0 and "no such interface" in out.stderr,
                out.stderr)
    finally:
        ns_run(lab, "ip", "link", "del", "rpop0")


def scrape(lab, port=None):
    """The lab rampart's (or `port`'s) /metrics parsed: {(name, ((label, value), ...)): value}; None on failure.
    Label values are unescaped (\\, \", \n), so a broken escape shows as a parse failure."""
    port = port or os.environ.get("RP_METRICS_PORT", "9153")
    out = ns_run(lab, "/usr/bin/python3", "-c",
                 "import urllib.request;"
                 f"print(urllib.request.urlopen('http://127.0.0.1:{port}/metrics', timeout=5).read().decode())")
    if out.returncode != 0:
        return None
    samples = {}
    sample = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
    label = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\[\\"n])*)"(,|$)')
    for line in out.stdout.splitlines():
        if not line or line.startswith("#"):
            continue
        m = sample.match(line)
        if not m:
            raise ValueError(f"not a sample line: {line!r}")
        labels, rest = [], m.group(2) or ""
        while rest:
            lm = label.match(rest)
            if not lm:
                raise ValueError(f"bad labels: {line!r}")
            value = re.sub(r'\\(.)', lambda e: {"n": "\n"}.get(e.group(1), e.group(1)), lm.group(2))
            labels.append((lm.group(1), value))
            rest = rest[lm.end():]
        samples[(m.group(1), tuple(labels))] = float(m.group(3))
    return samples


def family(samples, name, label):
    """{label value: value} of a one-label family."""
    return {k[1][0][1]: v for k, v in samples.items() if k[0] == name and k[1] and k[1][0][0] == label
            and len(k[1]) == 1}


def metrics_endpoint(c, lab):
    """The lab's rampart: known queries over UDP and TCP move the slow path's series by exactly
    what was sent, one XDP answer moves tx_answer by one, and the outcomes sum to the packets."""
    before = scrape(lab)
    c.check("metrics: the endpoint answers", before is not None)
    if before is None:
        return
    q = lambda name, qtype: dns.message.make_query(name, qtype, use_edns=False).to_wire()
    # XDP answers port 53 over UDP; the slow port and TCP reach the slow path.
    sent = [
        ("xdp", rplab.udp_raw(q("www.example.com", "A"), lab.node4, 53)),
        ("udp", rplab.udp_raw(q("www.example.com", "A"), lab.node4, lab.slow_port)),
        ("udp", rplab.udp_raw(q("www.example.com", "AAAA"), lab.node4, lab.slow_port)),
        ("udp", rplab.udp_raw(q("nope.example.com", "A"), lab.node4, lab.slow_port)),
        ("udp", rplab.udp_raw(q("example.com", "TYPE65280"), lab.node4, lab.slow_port)),
        ("tcp", rplab.tcp_raw(q("example.com", "SOA"), lab.node4, 53)),
        ("tcp", rplab.tcp_raw(q("nope.example.com", "AAAA"), lab.node4, 53)),
    ]
    c.check("metrics: every query was answered", all(r is not None for _, r in sent),
            [w for w, r in sent if r is None])
    rcodes = [dns.rcode.to_text(dns.message.from_wire(r).rcode()) for _, r in sent if r is not None]
    c.check("metrics: the answers' RCODEs",
            rcodes == ["NOERROR", "NOERROR", "NOERROR", "NXDOMAIN", "NOERROR", "NOERROR", "NXDOMAIN"], rcodes)
    # The TCP threads count after their write: give them a moment, bounded.
    deadline = time.monotonic() + 5
    while True:
        after = scrape(lab)
        moved = after and after.get(("rampart_slow_queries_total", (("transport", "tcp"),)), 0) - \
            before.get(("rampart_slow_queries_total", (("transport", "tcp"),)), 0)
        if moved == 2 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    c.check("metrics: scraped again", after is not None)
    if after is None:
        return

    def moved(name, label):
        b, a = family(before, name, label), family(after, name, label)
        return {k: a[k] - b.get(k, 0) for k in a if a[k] - b.get(k, 0)}

    c.check("metrics: queries by transport", moved("rampart_slow_queries_total", "transport") ==
            {"udp": 4, "tcp": 2}, moved("rampart_slow_queries_total", "transport"))
    c.check("metrics: responses by RCODE", moved("rampart_slow_responses_total", "rcode") ==
            {"NOERROR": 4, "NXDOMAIN": 2}, moved("rampart_slow_responses_total", "rcode"))
    c.check("metrics: responses by QTYPE (a private type is 'other')",
            moved("rampart_slow_responses_by_qtype_total", "qtype") ==
            {"A": 2, "AAAA": 2, "other": 1, "SOA": 1},
            moved("rampart_slow_responses_by_qtype_total", "qtype"))
    h = "rampart_slow_response_duration_seconds"
    counts = {t: after.get((f"{h}_count", (("transport", t),)), 0) - before.get((f"{h}_count", (("transport", t),)), 0)
              for t in ("udp", "tcp")}
    c.check("metrics: latency observed once per answer", counts == {"udp": 4, "tcp": 2}, counts)
    inf = {t: after.get((f"{h}_bucket", (("transport", t), ("le", "+Inf"))), -1) for t in ("udp", "tcp")}
    c.check("metrics: the +Inf bucket is the count",
            all(inf[t] == after.get((f"{h}_count", (("transport", t),))) for t in inf), inf)
    c.check("metrics: TCP connections accepted", moved("rampart_slow_tcp_connections_total", "result") ==
            {"accepted": 2}, moved("rampart_slow_tcp_connections_total", "result"))
    outcomes = family(after, "rampart_xdp_outcomes_total", "outcome")
    packets = after.get(("rampart_xdp_packets_total", ()))
    c.check("metrics: XDP outcomes sum to the packets (events apart)",
            packets is not None and sum(outcomes.values()) == packets and "packets" not in outcomes
            and "cookie_valid" not in outcomes, (packets, sum(outcomes.values())))
    c.check("metrics: XDP events are a family of their own",
            "cookie_valid" in family(after, "rampart_xdp_events_total", "event"))
    c.check("metrics: the XDP answer counted once",
            moved("rampart_xdp_outcomes_total", "outcome").get("tx_answer") == 1,
            moved("rampart_xdp_outcomes_total", "outcome"))
    c.check("metrics: zones served", after.get(("rampart_zones", ()), 0) >= 1)
    serial = after.get(("rampart_zone_serial", (("zone", "example.com."),)))
    c.check("metrics: example.com.'s serial", serial is not None and serial > 0, serial)


def run():
    c = rplab.Checks("e2e_operations")
    lab = rplab.Lab()
    if lab.target != "rampart":
        c.skip("operations", "the node is not rampart")
        return c
    tmp = tempfile.mkdtemp(prefix="rp-ops-")
    try:
        c.run("metrics endpoint", metrics_endpoint, c, lab)
        c.run("check command", check_command, c, lab, tmp)
        c.run("reload and many zones", reload_and_many_zones, c, lab, tmp)
        c.run("fate-sharing and detach", fate_sharing_and_detach, c, lab, tmp)
        c.run("native attach fails loudly", native_attach_fails_loudly, c, lab, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return c
