"""Hardening (issue 11): what an operator runs into besides answers.

- SIGHUP while rampart starts (zones still loading) never kills it: it reloads once up.
- One instance per listen address and per pin dir: a second start fails naming the holder's pid
  and leaves the first (and its pins) alone; `rampart stats` says when the pinning instance is
  gone and survives a closed pipe; an attach refused with EBUSY says another program is there.
- A zone file removed from --zone-dir and a missing --zone file follow one rule: the previous
  version keeps serving, the error is logged.
- 300 idle TCP connections from one address don't lock out another client.
- Sockets-only mode rate-limits: --rrl-rate 1 --rrl-slip 0 answers 1 of 50 queries.
- Least privilege with XDP attached and anycast on: uid, CapEff, NoNewPrivs after the drop, and
  a SIGHUP reload, health probes and the announcement still work.

Sockets-only instances run in the client namespace (this process's) on its loopback; the XDP
instance in the node namespace on a veth pair of its own, beside the lab's rampart."""

import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype

import rplab
from e2e_operations import ns_run, stop, wait_ready, zone_text

PORT = 5461  # this module's ports: 5461-5468
ZONES = 300
CAP_NET_ADMIN, CAP_BPF = 12, 39


def ask(port, name, qtype="A", tcp=False):
    """(rcode, [rdata]) from a rampart on this namespace's loopback, or (None, error)."""
    q = dns.message.make_query(name, qtype)
    try:
        fn = dns.query.tcp if tcp else dns.query.udp
        r = fn(q, "127.0.0.1", port=port, timeout=2)
    except Exception as e:  # noqa: BLE001
        return None, repr(e)
    return r.rcode(), [rd.to_text() for rrset in r.answer for rd in rrset
                       if rrset.rdtype == dns.rdatatype.from_text(qtype)]


def spawn(cmd, log):
    with open(log, "w") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)


def log_has(log, text, secs=10):
    deadline = time.monotonic() + secs
    while time.monotonic() < deadline:
        with open(log) as f:
            if text in f.read():
                return True
        time.sleep(0.1)
    return False


def count_in(log, text):
    with open(log) as f:
        return f.read().count(text)


def make_zones(tmp, name, n, hosts=0):
    zdir = os.path.join(tmp, name)
    os.makedirs(zdir)
    os.chmod(zdir, 0o755)
    extra = "".join(f"h{j} A 192.0.2.{j % 250 + 1}\n" for j in range(hosts))
    for i in range(n):
        path = os.path.join(zdir, f"z{i}.test.zone")
        with open(path, "w") as f:
            f.write(zone_text(f"z{i}.test", 1, f"198.51.100.{i % 250 + 1}", extra))
        os.chmod(path, 0o644)
    return zdir


def sockets_only_instance(c, lab, tmp):
    """Signals before ready, the listen lock, zone files that are gone, TCP per-source cap."""
    # 300 zones of 8,000 names: loading takes a second or so (sockets only, nothing is
    # compiled; 300 x 3,000 loaded in ~0.25 s on two cores once the zone model got compact),
    # the window in which a SIGHUP used to kill rampart.
    zdir = make_zones(tmp, "zones", ZONES, hosts=8000)
    extra = os.path.join(tmp, "extra.test.zone")
    with open(extra, "w") as f:
        f.write(zone_text("extra.test", 1, "192.0.2.77"))
    run_dir = os.path.join(tmp, "run")
    log = os.path.join(tmp, "a.log")
    cmd = [lab.bin, "run", "--zone-dir", zdir, "--zone", f"extra.test={extra}",
           "--listen", f"127.0.0.1:{PORT}", "--run-dir", run_dir]
    proc = spawn(cmd, log)
    try:
        # SIGHUP every 20 ms until ready, from 100 ms after the start (the process is past its
        # first lines of main by then; the zones are still loading).
        time.sleep(0.1)
        hups, deadline = 0, time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None:
            with open(log) as f:
                if "rampart: ready" in f.read():
                    break
            proc.send_signal(signal.SIGHUP)
            hups += 1
            time.sleep(0.02)
        c.check("SIGHUPs were sent while starting", hups >= 5, f"{hups}")
        c.check("SIGHUP while starting: rampart survives and becomes ready",
                proc.poll() is None and log_has(log, "rampart: ready", 1),
                f"rc={proc.poll()} {open(log).read()[-1500:]}")
        if proc.poll() is not None:
            return
        c.check("SIGHUP while starting: a reload once up", log_has(log, "reloaded"), open(log).read()[-800:])
        c.check("and it answers", ask(PORT, "www.z0.test") == (dns.rcode.NOERROR, ["198.51.100.1"]),
                str(ask(PORT, "www.z0.test")))

        # SIGTERM while starting still ends a starting instance at once (no wait for the zones).
        other = spawn([lab.bin, "run", "--zone-dir", zdir, "--listen", f"127.0.0.1:{PORT + 7}",
                       "--run-dir", run_dir], os.path.join(tmp, "term.log"))
        time.sleep(0.2)
        t0 = time.monotonic()
        other.send_signal(signal.SIGTERM)
        try:
            other.wait(timeout=5)
        except subprocess.TimeoutExpired:
            stop(other)
        took = time.monotonic() - t0
        c.check("SIGTERM while starting ends it at once", took < 0.5 and other.returncode == -signal.SIGTERM,
                f"{took:.2f} s, rc={other.returncode}")

        # A second instance on the same address: refused, naming the first.
        second = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        c.check("listen lock: a second instance on the same address exits non-zero", second.returncode != 0,
                second.stderr[-500:])
        c.check("listen lock: the error names the holder's pid",
                f"127.0.0.1:{PORT} is in use by another rampart (pid {proc.pid}" in second.stderr,
                second.stderr[-500:])
        c.check("listen lock: the first still answers", ask(PORT, "www.z1.test")[0] == dns.rcode.NOERROR)

        # One rule for files that are gone: a --zone-dir file and a --zone file.
        os.remove(os.path.join(zdir, "z2.test.zone"))
        os.remove(extra)
        reloads = count_in(log, "reloaded")
        proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and count_in(log, "reloaded") == reloads:
            time.sleep(0.1)
        c.check("gone files: reloaded", count_in(log, "reloaded") > reloads)
        c.check("gone from --zone-dir: the zone keeps serving",
                ask(PORT, "www.z2.test") == (dns.rcode.NOERROR, ["198.51.100.3"]), str(ask(PORT, "www.z2.test")))
        c.check("gone --zone file: the zone keeps serving",
                ask(PORT, "www.extra.test") == (dns.rcode.NOERROR, ["192.0.2.77"]), str(ask(PORT, "www.extra.test")))
        text = open(log).read()
        c.check("gone files: both errors logged",
                "z2.test.zone: keeping the previously loaded zone" in text
                and "extra.test.zone: keeping the previously loaded zone" in text, text[-1500:])

        # 300 idle TCP connections from 127.0.0.1, then a client from 127.0.0.2.
        hogs = []
        try:
            for _ in range(300):
                s = socket.create_connection(("127.0.0.1", PORT), timeout=5)
                hogs.append(s)
            other = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            other.settimeout(5)
            other.bind(("127.0.0.2", 0))
            other.connect(("127.0.0.1", PORT))
            q = dns.message.make_query("www.z3.test", "A").to_wire()
            other.sendall(struct.pack("!H", len(q)) + q)
            head = rplab._recv_exact(other, 2)
            body = rplab._recv_exact(other, struct.unpack("!H", head)[0]) if head else None
            other.close()
            ok = body is not None and dns.message.from_wire(body).rcode() == dns.rcode.NOERROR
            c.check("TCP: 300 idle connections from one address don't lock out another", ok)
        finally:
            for s in hogs:
                s.close()
    finally:
        stop(proc)


def sockets_only_rrl(c, lab, tmp):
    zdir = make_zones(tmp, "rrl-zones", 1)
    log = os.path.join(tmp, "rrl.log")
    proc = spawn([lab.bin, "run", "--zone-dir", zdir, "--listen", f"127.0.0.1:{PORT + 1}",
                  "--run-dir", os.path.join(tmp, "run-rrl"), "--rrl-rate", "1", "--rrl-slip", "0"], log)
    try:
        if not c.check("rrl: sockets-only rampart starts", wait_ready(proc, log), open(log).read()[-1500:]):
            return
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(1.5)
        s.connect(("127.0.0.1", PORT + 1))
        for i in range(50):
            q = dns.message.make_query("www.z0.test", "A")
            q.id = i
            s.send(q.to_wire())
        answered = 0
        while True:
            try:
                s.recv(4096)
                answered += 1
            except socket.timeout:
                break
        s.close()
        c.check("rrl: sockets-only --rrl-rate 1 --rrl-slip 0 answers 1 of 50 (2 if a second passed)",
                1 <= answered <= 2, f"{answered} answered")
        c.check("rrl: TCP is not limited", ask(PORT + 1, "www.z0.test", tcp=True)[0] == dns.rcode.NOERROR)
    finally:
        stop(proc)


def proc_status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


def stats(lab, pins, **kw):
    return subprocess.run([lab.bin, "stats", "--json", "--pin-dir", pins], capture_output=True, text=True,
                          timeout=20, **kw)


def add_veth(lab, a, b):
    """A one-queue veth pair in the node namespace, for an instance of its own to attach to."""
    ns_run(lab, "ip", "link", "add", a, "numtxqueues", "1", "numrxqueues", "1", "type", "veth",
           "peer", "name", b, "numtxqueues", "1", "numrxqueues", "1", check=True)


def up_veth(lab, a, b):
    for dev in (a, b):
        ns_run(lab, "ip", "link", "set", dev, "up", check=True)


def xdp_instance(c, lab, tmp):
    """XDP attached, anycast on, run as nobody: privileges, reload, locks, stats."""
    add_veth(lab, "rph0", "rph1")
    pins = os.path.join(os.path.dirname(lab.pin_dir), "rampart-hard")
    proc = None
    try:
        up_veth(lab, "rph0", "rph1")
        zdir = make_zones(tmp, "xdp-zones", 2)
        run_dir = os.path.join(tmp, "run-xdp")
        ctl = os.path.join(run_dir, "control.sock")
        log = os.path.join(tmp, "xdp.log")
        proc = spawn(["ip", "netns", "exec", lab.ns_node, lab.bin, "run", "--iface", "rph0", "--zone-dir", zdir,
                      "--listen", f"127.0.0.1:{PORT + 2}", "--pin-dir", pins, "--run-dir", run_dir,
                      "--user", "nobody", "--anycast-prefix", "203.0.113.199/32", "--anycast-device", "rphard0",
                      "--control-socket", ctl, "--metrics", f"127.0.0.1:{PORT + 6}"], log)
        if not c.check("privileges: rampart attaches and starts", wait_ready(proc, log), open(log).read()[-2000:]):
            return
        st = proc_status(proc.pid)
        want = (1 << CAP_BPF) | (1 << CAP_NET_ADMIN)
        c.check("privileges: runs as nobody", st["Uid"].split() == ["65534"] * 4, st["Uid"])
        c.check("privileges: CapEff is CAP_BPF + CAP_NET_ADMIN only", int(st["CapEff"], 16) == want, st["CapEff"])
        c.check("privileges: CapPrm and CapBnd too", int(st["CapPrm"], 16) == want and int(st["CapBnd"], 16) == want,
                f"{st['CapPrm']} {st['CapBnd']}")
        c.check("privileges: NoNewPrivs", st.get("NoNewPrivs") == "1", st.get("NoNewPrivs"))

        def anycast_state():
            out = ns_run(lab, lab.bin, "anycast", "status", "--json", "--control-socket", ctl)
            try:
                import json
                return json.loads(out.stdout)
            except ValueError:
                return {"error": out.stderr}

        def wait_announced(secs=15):
            deadline = time.monotonic() + secs
            while time.monotonic() < deadline:
                s = anycast_state()
                if s.get("state") == "announced":
                    return s
                time.sleep(0.2)
            return anycast_state()

        s = wait_announced()
        c.check("privileges: health probes pass and the prefix is announced after the drop",
                s.get("state") == "announced", str(s)[:800])
        before = count_in(log, "fast path filled")
        offset = len(open(log).read())
        with open(os.path.join(zdir, "z0.test.zone"), "w") as f:
            f.write(zone_text("z0.test", 2, "203.0.113.88"))
        proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and count_in(log, "fast path filled") == before:
            time.sleep(0.1)
        text = open(log).read()[offset:]
        c.check("privileges: a SIGHUP reload refills the XDP maps after the drop, no warning",
                count_in(log, "fast path filled") > before and " WARN " not in text and " ERROR " not in text,
                text[-1500:])
        out = ns_run(lab, "dig", "+short", "-p", str(PORT + 2), "@127.0.0.1", "www.z0.test", "A")
        c.check("privileges: the reloaded zone is served", out.stdout.strip() == "203.0.113.88", out.stdout)
        time.sleep(1)
        s = anycast_state()
        c.check("privileges: still announced after the reload", s.get("state") == "announced", str(s)[:800])
        c.check("stats: the running instance's counters", stats(lab, pins).returncode == 0)
        scrape = ns_run(lab, "/usr/bin/python3", "-c",
                        "import urllib.request;"
                        f"print(urllib.request.urlopen('http://127.0.0.1:{PORT + 6}/metrics', timeout=5).read().decode())")
        c.check("privileges: the metrics endpoint reads the XDP counters as nobody",
                'rampart_xdp_outcomes_total{outcome="tx_answer"}' in scrape.stdout, scrape.stdout[:500] + scrape.stderr[-300:])

        # A second instance on the same pin dir: refused, the first's pins untouched.
        second = ns_run(lab, lab.bin, "run", "--iface", "rph0", "--zone-dir", zdir, "--listen",
                        f"127.0.0.1:{PORT + 3}", "--pin-dir", pins, "--run-dir", os.path.join(tmp, "run2"),
                        "--user", "root", timeout=60)
        c.check("pin lock: a second instance on the same pin dir exits non-zero", second.returncode != 0)
        c.check("pin lock: the error names the holder's pid",
                f"pin dir {pins} is in use by another rampart (pid {proc.pid}" in second.stderr, second.stderr[-600:])
        c.check("pin lock: the first instance's pins are intact", stats(lab, pins).returncode == 0)
        # Another pin dir, same NIC: EBUSY, said as such, no generic-mode advice.
        third = ns_run(lab, lab.bin, "run", "--iface", "rph0", "--zone-dir", zdir, "--listen",
                       f"127.0.0.1:{PORT + 4}", "--pin-dir", pins + "-3", "--run-dir", os.path.join(tmp, "run3"),
                       "--user", "root", timeout=60)
        c.check("attach on a busy NIC: exits non-zero and says another program is attached",
                third.returncode != 0 and "another XDP program is attached to rph0" in third.stderr
                and "--xdp-mode generic" not in third.stderr, third.stderr[-600:])
        c.check("attach on a busy NIC: the first still has its pins", stats(lab, pins).returncode == 0)
        # `rampart stats | head`: the reader is gone before stats writes.
        r, w = os.pipe()
        os.close(r)
        closed = subprocess.run([lab.bin, "stats", "--pin-dir", pins], stdout=w, stderr=subprocess.PIPE,
                                text=True, timeout=20)
        os.close(w)
        c.check("stats into a closed pipe: no panic, exit 0",
                closed.returncode == 0 and "panicked" not in closed.stderr, closed.stderr[-500:])
        # SIGKILL: the pins stay, stats says the instance is gone.
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        dead = stats(lab, pins)
        c.check("stats after SIGKILL: exits non-zero saying the instance is gone",
                dead.returncode != 0 and "is gone" in dead.stderr, f"rc={dead.returncode} {dead.stderr[-400:]}")
    finally:
        if proc is not None:
            stop(proc)
        ns_run(lab, "ip", "link", "del", "rph0")
        for d in (pins, pins + "-3"):
            shutil.rmtree(d, ignore_errors=True)


def ambient_start(c, lab, tmp):
    """Started as nobody with ambient capabilities (as systemd's User= and AmbientCapabilities=
    do): it loads and attaches, then trims its sets to what it keeps."""
    if shutil.which("setpriv") is None:
        c.skip("ambient capabilities", "no setpriv")
        return
    add_veth(lab, "rpa0", "rpa1")
    pins = os.path.join(os.path.dirname(lab.pin_dir), "rampart-ambient")
    proc = None
    try:
        up_veth(lab, "rpa0", "rpa1")
        zdir = make_zones(tmp, "ambient-zones", 1)
        run_dir = os.path.join(tmp, "run-ambient")
        for d in (pins, run_dir):  # what the operator prepares for that user
            os.makedirs(d, exist_ok=True)
            os.chown(d, 65534, 65534)
        log = os.path.join(tmp, "ambient.log")
        caps = "+bpf,+net_admin,+perfmon"
        proc = spawn(["ip", "netns", "exec", lab.ns_node, "setpriv", "--reuid=65534", "--regid=65534",
                      "--clear-groups", f"--inh-caps={caps}", f"--ambient-caps={caps}", lab.bin, "run",
                      "--iface", "rpa0", "--zone-dir", zdir, "--listen", f"127.0.0.1:{PORT + 5}",
                      "--pin-dir", pins, "--run-dir", run_dir], log)
        if not c.check("ambient: started as nobody with CAP_BPF, CAP_NET_ADMIN, CAP_PERFMON it attaches",
                       wait_ready(proc, log), open(log).read()[-2000:]):
            return
        st = proc_status(proc.pid)
        c.check("ambient: CapEff trimmed to CAP_BPF, nothing ambient, NoNewPrivs",
                int(st["CapEff"], 16) == 1 << CAP_BPF and int(st["CapAmb"], 16) == 0
                and st.get("NoNewPrivs") == "1", f"{st['CapEff']} {st['CapAmb']} {st.get('NoNewPrivs')}")
        before = count_in(log, "fast path filled")
        proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and count_in(log, "fast path filled") == before:
            time.sleep(0.1)
        c.check("ambient: a reload refills the XDP maps", count_in(log, "fast path filled") > before,
                open(log).read()[-1000:])
        stop(proc)
        c.check("ambient: its pins are removed at exit", os.listdir(pins) == [], str(os.listdir(pins)))
    finally:
        if proc is not None:
            stop(proc)
        ns_run(lab, "ip", "link", "del", "rpa0")
        shutil.rmtree(pins, ignore_errors=True)


def run():
    c = rplab.Checks("e2e_hardening")
    lab = rplab.Lab()
    if lab.target != "rampart":
        c.skip("hardening", "the node is not rampart")
        return c
    tmp = tempfile.mkdtemp(prefix="rp-hard-")
    os.chmod(tmp, 0o755)  # the XDP instance runs as nobody and reads its zones from here
    try:
        c.run("sockets-only instance", sockets_only_instance, c, lab, tmp)
        c.run("sockets-only rrl", sockets_only_rrl, c, lab, tmp)
        c.run("xdp instance", xdp_instance, c, lab, tmp)
        c.run("ambient capabilities", ambient_start, c, lab, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return c


if __name__ == "__main__":
    rplab.main_for(run)
