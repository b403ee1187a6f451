"""The control socket (issue 12 item 2), on an instance of the module's own: XDP (generic) on a
veth pair whose peer is in the client namespace, the slow path on the same address.

- `rampart ctl status` / `zone-status` (`--json` and text): zones, serial, source, answers in
  the maps, load time; `reload ZONE` with a broken file exits 1 naming file:line and keeps the
  previous serial served; `refresh` of a file zone and `reload` of an unknown zone exit 1 with
  the reason; `rampart check --config` accepts the instance's config and rejects a bad key and
  a bad zone.
- A stopped daemon (SIGSTOP): `ctl reload` gives up after its --timeout with a clear message,
  exit 1, and once resumed the daemon does not carry the reload out.
- Reload under load: dnsperf on the fast path (port 53) and the slow path (port 5354) while a
  verifier sends its own queries to both and 100 `ctl reload`s alternate two versions of the
  zone: no answer may belong to neither version, each reload's result is served by both paths
  as soon as `ctl reload` returns, and dnsperf's loss is no worse than in the same run without
  reloads. Figures are printed (README "Control").
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

import dns.exception
import dns.message
import dns.rcode
import dns.rdatatype

import rplab
from e2e_hardening import spawn
from e2e_operations import ns_run, stop, wait_ready

NODE, CLIENT = "192.0.2.241", "192.0.2.242"  # the module's veth pair (/30)
FAST, SLOW = 53, 5354
SUP_PORT = 5481  # the supervised instance's (loopback)
ZONE = "ctl.test"
RELOADS = 100
LOAD_SECS = 12
FAST_QPS, SLOW_QPS = 8000, 2000  # dnsperf's rates (the 2-CPU lab answers both without loss)
CHECK_QPS = 400  # the verifier's, per path


def zone_text(version):
    """Two versions that differ in every name queried: serial, www's address, a TXT, and a name
    each has alone."""
    own = f"only{version} A 192.0.2.1{version}\n"
    return (f"$ORIGIN {ZONE}.\n$TTL 300\n@ SOA ns1 hostmaster {version} 7200 3600 1209600 300\n"
            f"@ NS ns1\nns1 A 192.0.2.1\nwww A 192.0.2.{version + 100}\nv TXT \"v{version}\"\n{own}")


# name, type -> {version: expected answer}: (rcode, sorted answer rdata texts)
EXPECTED = {
    ("www", "A"): {1: (0, ["192.0.2.101"]), 2: (0, ["192.0.2.102"])},
    ("v", "TXT"): {1: (0, ['"v1"']), 2: (0, ['"v2"'])},
    ("@", "SOA"): {v: (0, [f"ns1.{ZONE}. hostmaster.{ZONE}. {v} 7200 3600 1209600 300"]) for v in (1, 2)},
    ("only1", "A"): {1: (0, ["192.0.2.11"]), 2: (3, [])},
    ("only2", "A"): {1: (3, []), 2: (0, ["192.0.2.12"])},
}


def qname(name):
    return f"{ZONE}." if name == "@" else f"{name}.{ZONE}."


def versions_of(name, qtype, reply):
    """The versions whose data this reply is (empty: neither)."""
    got = (reply.rcode(), sorted(rd.to_text() for rrset in reply.answer for rd in rrset
                                 if rrset.rdtype == dns.rdatatype.from_text(qtype)))
    return {v for v, want in EXPECTED[(name, qtype)].items() if got == want}


def write_zone(path, version):
    tmp = path + ".new"
    with open(tmp, "w") as f:
        f.write(zone_text(version))
    os.replace(tmp, path)  # the reload reads one version or the other, never half a file


def ask(name, qtype, port, timeout=1.0):
    q = dns.message.make_query(qname(name), qtype)
    q.flags = 0
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(timeout)
            s.sendto(q.to_wire(), (NODE, port))
            while True:
                r = dns.message.from_wire(s.recv(65535))
                if r.id == q.id:
                    return r
    except (OSError, dns.exception.DNSException):
        return None


class Verifier:
    """Sends the EXPECTED queries round-robin to both ports at a fixed rate from one socket per
    port, and classifies every reply: v1, v2, both, or neither."""

    def __init__(self, qps):
        self.qps = qps
        self.stop = threading.Event()
        self.sent = {FAST: 0, SLOW: 0}
        self.got = {FAST: 0, SLOW: 0}
        self.neither = []
        self.only = {(port, v): 0 for port in (FAST, SLOW) for v in (1, 2)}  # replies of one version
        self.threads = []

    def start(self):
        for port in (FAST, SLOW):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind((CLIENT, 0))
            s.settimeout(0.2)
            pending = {}
            lock = threading.Lock()
            self.threads += [threading.Thread(target=self._send, args=(s, port, pending, lock)),
                             threading.Thread(target=self._recv, args=(s, port, pending, lock))]
        for t in self.threads:
            t.start()

    def _send(self, s, port, pending, lock):
        keys = list(EXPECTED)
        i, t0 = 0, time.monotonic()
        while not self.stop.is_set():
            name, qtype = keys[i % len(keys)]
            q = dns.message.make_query(qname(name), qtype)
            q.flags = 0
            q.id = i % 65536
            with lock:
                pending[q.id] = (name, qtype)
            s.sendto(q.to_wire(), (NODE, port))
            self.sent[port] += 1
            i += 1
            delay = t0 + i / self.qps - time.monotonic()
            if delay > 0:
                time.sleep(delay)

    def _recv(self, s, port, pending, lock):
        quiet_until = None
        while True:
            if self.stop.is_set():
                quiet_until = quiet_until or time.monotonic() + 1.0
                if time.monotonic() > quiet_until:
                    break
            try:
                data = s.recv(65535)
            except socket.timeout:
                continue
            r = dns.message.from_wire(data)
            with lock:
                key = pending.pop(r.id, None)
            if key is None:
                continue
            self.got[port] += 1
            versions = versions_of(*key, r)
            if not versions:
                self.neither.append((port, key, r.rcode(), [rr.to_text() for rr in r.answer]))
            elif len(versions) == 1:
                self.only[(port, *versions)] += 1
        s.close()

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(timeout=5)


def dnsperf(lab, tmp, port, qps, tag):
    """dnsperf from the client namespace for LOAD_SECS; returns (sent, completed, lost)."""
    data = os.path.join(tmp, f"dnsperf-{port}.txt")  # one each: the two runs start together
    with open(data, "w") as f:
        for name, qtype in EXPECTED:
            f.write(f"{qname(name)} {qtype}\n")
    out = subprocess.run(["ip", "netns", "exec", lab.ns_client, "dnsperf", "-s", NODE, "-p", str(port),
                          "-d", data, "-l", str(LOAD_SECS), "-Q", str(qps), "-c", "4", "-t", "2"],
                         capture_output=True, text=True, timeout=LOAD_SECS + 30)
    with open(os.path.join(tmp, f"dnsperf-{tag}-{port}.out"), "w") as f:
        f.write(out.stdout + out.stderr)
    fields = {}
    for line in out.stdout.splitlines():
        line = line.strip()
        for key in ("Queries sent:", "Queries completed:", "Queries lost:"):
            if line.startswith(key):
                fields[key] = int(line.split()[2])
    return fields.get("Queries sent:", 0), fields.get("Queries completed:", 0), fields.get("Queries lost:", -1)


class Instance:
    def __init__(self, lab, tmp):
        self.lab, self.tmp = lab, tmp
        self.zdir = os.path.join(tmp, "zones")
        os.makedirs(self.zdir)
        self.zfile = os.path.join(self.zdir, f"{ZONE}.zone")
        write_zone(self.zfile, 1)
        self.ctl = os.path.join(tmp, "run", "control.sock")
        self.pins = os.path.join(os.path.dirname(lab.pin_dir), "rampart-ctl")
        self.config = os.path.join(tmp, "rampart.toml")
        with open(self.config, "w") as f:
            f.write(f'[server]\nlisten = ["{NODE}:{FAST}", "{NODE}:{SLOW}"]\nidentity = "ctl-node"\n'
                    f'user = "root"\nrun_dir = "{tmp}/run"\n'
                    f'[zones]\ndir = "{self.zdir}"\n'
                    f'[xdp]\ninterfaces = ["rpct0"]\nmode = "generic"\npin_dir = "{self.pins}"\n'
                    # the load comes from one address: no rate limit may answer it
                    f'[rrl]\nwhitelist = ["{CLIENT}/32"]\n')
        self.log = os.path.join(tmp, "rampart.log")
        self.proc = None

    def start(self):
        self.proc = spawn(["ip", "netns", "exec", self.lab.ns_node, self.lab.bin, "run", "--config", self.config],
                          self.log)
        return wait_ready(self.proc, self.log)

    def rampart(self, *args, timeout=30):
        return ns_run(self.lab, self.lab.bin, *args, timeout=timeout)

    def ctl_json(self, *args):
        out = self.rampart("ctl", *args, "--json", "--control-socket", self.ctl)
        try:
            return out, json.loads(out.stdout)
        except ValueError:
            return out, None


def setup_veth(lab):
    ns_run(lab, "ip", "link", "add", "rpct0", "numtxqueues", "1", "numrxqueues", "1", "type", "veth",
           "peer", "name", "rpct1", "netns", lab.ns_client, check=True)
    ns_run(lab, "ip", "addr", "add", f"{NODE}/30", "dev", "rpct0", check=True)
    ns_run(lab, "ip", "link", "set", "rpct0", "up", check=True)
    for cmd in (["ip", "addr", "add", f"{CLIENT}/30", "dev", "rpct1"], ["ip", "link", "set", "rpct1", "up"],
                # the XDP program updates the UDP checksum incrementally (tests/README.md)
                ["ethtool", "-K", "rpct1", "tx", "off"]):
        subprocess.run(["ip", "netns", "exec", lab.ns_client, *cmd], check=True, capture_output=True)


def commands(c, inst):
    out, st = inst.ctl_json("status")
    c.check("ctl status --json answers", out.returncode == 0 and st is not None, out.stderr)
    if st is None:
        return
    c.check("status: one zone, none failing, slow path running, XDP answers, anycast off",
            (st["zones"], st["zones_failing"], st["slow_path"], st["anycast"]) == (1, 0, "running", None)
            and st["xdp"]["answers"] > 0 and st["xdp"]["interfaces"] == ["rpct0"], st)
    text = inst.rampart("ctl", "status", "--config", inst.config)
    c.check("ctl status (text, socket from --config)", text.returncode == 0 and "1 served, 0 with errors"
            in text.stdout and "ctl-node" in text.stdout, text.stdout + text.stderr)
    out, zs = inst.ctl_json("zone-status", ZONE)
    z = (zs or {}).get("zones", [{}])[0]
    now_ms = time.time() * 1000
    c.check("zone-status: serial, file source, answers in the maps, loaded within the last minute",
            z.get("zone") == f"{ZONE}." and z.get("serial") == 1 and z.get("source") == {"kind": "file", "path":
            inst.zfile} and (z.get("answers") or 0) > 0 and now_ms - 60_000 < (z.get("loaded_unix_ms") or 0) <= now_ms
            and z.get("last_error") is None, zs)
    # A broken version: exit 1 naming file:line; the previous serial is still served by both paths.
    with open(inst.zfile + ".new", "w") as f:
        f.write(zone_text(2) + "bad line here\n")
    os.replace(inst.zfile + ".new", inst.zfile)
    out = inst.rampart("ctl", "reload", ZONE, "--control-socket", inst.ctl)
    c.check("reload of a broken zone exits 1 and names file:line", out.returncode == 1
            and f"{inst.zfile}:9:" in out.stdout and "reload failed" in out.stderr, out.stdout + out.stderr)
    fast, slow = ask("@", "SOA", FAST), ask("@", "SOA", SLOW)
    c.check("the broken reload keeps serial 1 on both paths",
            fast is not None and slow is not None and versions_of("@", "SOA", fast) == {1}
            and versions_of("@", "SOA", slow) == {1}, (fast, slow))
    out, zs = inst.ctl_json("zone-status")
    z = (zs or {}).get("zones", [{}])[0]
    c.check("zone-status shows the error and the serial kept", z.get("serial") == 1
            and f"{inst.zfile}:9:" in (z.get("last_error") or ""), zs)
    write_zone(inst.zfile, 1)
    out = inst.rampart("ctl", "reload", "--control-socket", inst.ctl)
    c.check("reload of all zones, fixed: exit 0", out.returncode == 0 and "ok" in out.stdout, out.stdout + out.stderr)
    out = inst.rampart("ctl", "refresh", ZONE, "--control-socket", inst.ctl)
    c.check("refresh of a file zone: exit 1, not a secondary zone", out.returncode == 1
            and "not a secondary zone" in out.stderr, out.stderr)
    out = inst.rampart("ctl", "reload", "nowhere.test", "--control-socket", inst.ctl)
    c.check("reload of a zone not served: exit 1, says so", out.returncode == 1
            and "nowhere.test is not served" in out.stderr, out.stderr)
    out = inst.rampart("anycast", "drain", "--control-socket", inst.ctl)
    c.check("anycast drain with anycast off: exit 1, says so", out.returncode == 1
            and "anycast is off" in out.stderr, out.stderr)
    # rampart check --config: the instance's config, then a bad key, then a bad zone.
    out = inst.rampart("check", "--config", inst.config)
    c.check("check --config: the running config is ok", out.returncode == 0 and f"zone {ZONE}. is ok" in out.stdout
            and "is ok" in out.stdout.splitlines()[-1], out.stdout + out.stderr)
    bad_key = os.path.join(inst.tmp, "bad-key.toml")
    with open(bad_key, "w") as f:
        f.write(open(inst.config).read().replace("identity", "identty"))
    out = inst.rampart("check", "--config", bad_key)
    c.check("check --config: an unknown key exits 1 naming it", out.returncode == 1 and "identty" in out.stderr,
            out.stderr)
    bad_zone_dir = os.path.join(inst.tmp, "bad-zones")
    os.makedirs(bad_zone_dir)
    with open(os.path.join(bad_zone_dir, f"{ZONE}.zone"), "w") as f:
        f.write(zone_text(1) + "x A 192.0.2.999\n")
    bad_zone = os.path.join(inst.tmp, "bad-zone.toml")
    with open(bad_zone, "w") as f:
        f.write(open(inst.config).read().replace(inst.zdir, bad_zone_dir))
    out = inst.rampart("check", "--config", bad_zone)
    c.check("check --config: a zone error exits 1 with file:line", out.returncode == 1
            and f"{ZONE}.zone:9:" in out.stderr, out.stderr)


def stopped_daemon(c, inst):
    """SIGSTOP: the command fails in bounded time with a clear message and never happens."""
    _, before = inst.ctl_json("status")
    write_zone(inst.zfile, 2)
    os.kill(inst.proc.pid, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        out = inst.rampart("ctl", "reload", ZONE, "--timeout", "1", "--control-socket", inst.ctl)
        took = time.monotonic() - t0
    finally:
        # `ip netns exec` execs rampart: the pid is the daemon's.
        os.kill(inst.proc.pid, signal.SIGCONT)
    c.check("stopped daemon: ctl reload --timeout 1 exits 1 within 1.5 s, saying so",
            out.returncode == 1 and took < 1.5 and "did not answer" in out.stderr and "not carried out" in out.stderr,
            f"{took:.2f} s rc {out.returncode}: {out.stderr}")
    time.sleep(0.5)
    _, after = inst.ctl_json("status")
    soa = ask("@", "SOA", FAST)
    c.check("resumed: the reload reported failed was not carried out (serial 1 served, last reload unchanged)",
            after is not None and before is not None and after["last_reload"] == before["last_reload"]
            and soa is not None and versions_of("@", "SOA", soa) == {1}, (before, after, soa))
    write_zone(inst.zfile, 1)


def pid_alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def unreachable(c, lab, tmp):
    """`rampart ctl` where no daemon answers: no socket, a stale one, one whose daemon accepts
    nothing (its queue full): exit 1 within the timeout, saying which."""
    def ctl_at(path, timeout="1"):
        t0 = time.monotonic()
        out = subprocess.run([lab.bin, "ctl", "status", "--timeout", timeout, "--control-socket", path],
                             capture_output=True, text=True, timeout=20)
        return out.returncode, out.stderr.strip(), time.monotonic() - t0
    rc, err, took = ctl_at(os.path.join(tmp, "absent.sock"))
    c.check("ctl, no socket: exit 1 at once, saying rampart is not running there",
            rc == 1 and "no control socket at" in err and took < 0.5, f"{rc} {took:.2f} s: {err}")
    stale = os.path.join(tmp, "stale.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(stale)
    s.close()
    rc, err, took = ctl_at(stale)
    c.check("ctl, a stale socket: exit 1 at once, saying nothing listens",
            rc == 1 and "stale socket" in err and took < 0.5, f"{rc} {took:.2f} s: {err}")
    full = os.path.join(tmp, "full.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(full)
    listener.listen(0)
    queued = []
    try:
        while len(queued) < 64:
            q = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            q.setblocking(False)
            try:
                q.connect(full)
            except BlockingIOError:
                q.close()
                break
            queued.append(q)
        rc, err, took = ctl_at(full)
    finally:
        for q in queued:
            q.close()
        listener.close()
    c.check("ctl, a daemon that accepts nothing (queue full): exit 1 within its --timeout 1, saying so",
            rc == 1 and "queue is full" in err and 0.9 < took < 1.5, f"{rc} {took:.2f} s: {err}")


STRANGER_PY = """
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
try:
    s.sendto(b"WATCHDOG=1\\n", sys.argv[1])
    print("sent")
except OSError as e:
    print(type(e).__name__)
"""


def notify_path(pid):
    """NOTIFY_SOCKET as process `pid` was given it."""
    with open(f"/proc/{pid}/environ", "rb") as f:
        env = dict(v.split(b"=", 1) for v in f.read().split(b"\0") if b"=" in v)
    return env.get(b"NOTIFY_SOCKET", b"").decode()


def notify_socket(c, child):
    """The supervisor's notify socket: the supervisor's user's alone, refused to another uid."""
    path = notify_path(child)
    modes = {}
    for p in (os.path.dirname(path), path):
        try:
            modes[p] = oct(os.stat(p).st_mode & 0o777)
        except OSError as e:
            modes[p] = repr(e)
    c.check("supervise: the notify socket is 0600 in a 0700 dir",
            list(modes.values()) == ["0o700", "0o600"], str(modes))
    out = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", "-c",
                          STRANGER_PY, path], capture_output=True, text=True, timeout=10)
    c.check("supervise: a ping from another uid (nobody) is refused (permission denied)",
            out.stdout.strip() == "PermissionError", out.stdout + out.stderr)


def supervised(c, lab, tmp):
    """`rampart supervise --watchdog-ms 500` (sockets only, loopback): a SIGSTOPped child is
    killed within a second and a new one serves; SIGTERM ends both."""
    zdir = os.path.join(tmp, "sup-zones")
    os.makedirs(zdir)
    write_zone(os.path.join(zdir, f"{ZONE}.zone"), 1)
    ctl = os.path.join(tmp, "sup-run", "control.sock")
    log = os.path.join(tmp, "supervise.log")
    wrong = ns_run(lab, lab.bin, "supervise", "--", "run", "--zone-dir", zdir)
    c.check("supervise: `run` after -- is refused, saying how", wrong.returncode == 1 and "without `run`" in wrong.stderr,
            wrong.stderr)
    t0 = time.monotonic()
    broken = ns_run(lab, lab.bin, "supervise", "--restart-delay-ms", "200", "--", "--zone-dir", os.path.join(tmp, "no-such-dir"), "--listen",
                    f"127.0.0.1:{SUP_PORT}", "--run-dir", os.path.join(tmp, "sup-run"), "--user", "root", timeout=20)
    c.check("supervise: a node that never gets ready ends supervision with its exit status after 3 starts",
            broken.returncode == 1 and "3 times in a row: giving up" in broken.stderr
            and broken.stderr.count("node started") == 3 and time.monotonic() - t0 < 5,
            broken.stderr[-500:])
    proc = spawn(["ip", "netns", "exec", lab.ns_node, lab.bin, "supervise", "--watchdog-ms", "500",
                  "--restart-delay-ms", "200", "--", "--zone-dir", zdir, "--listen", f"127.0.0.1:{SUP_PORT}",
                  "--run-dir", os.path.join(tmp, "sup-run"), "--user", "root"], log)
    try:
        if not c.check("supervise: the node starts", wait_ready(proc, log), open(log).read()[-2000:]):
            return

        def child_pid():
            out = ns_run(lab, lab.bin, "ctl", "status", "--json", "--timeout", "1", "--control-socket", ctl)
            return json.loads(out.stdout)["pid"] if out.returncode == 0 else None
        first = child_pid()
        notify_socket(c, first)
        path = notify_path(first)
        # This process (root, not the node) pings for it all along: it must not count.
        stranger = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        os.kill(first, signal.SIGSTOP)
        t0 = time.monotonic()
        sent = 0
        while pid_alive(first) and time.monotonic() - t0 < 3:
            try:
                stranger.sendto(b"WATCHDOG=1\n", path)
                sent += 1
            except OSError:
                pass
            time.sleep(0.01)
        gone_ms = (time.monotonic() - t0) * 1000
        stranger.close()
        print(f"  supervise: the stopped child was killed {gone_ms:.0f} ms after SIGSTOP "
              f"(another root process sent {sent} WATCHDOG=1 meanwhile)", flush=True)
        c.check("supervise: a SIGSTOPped node is killed within 1 s (watchdog 500 ms), whoever else pings",
                gone_ms < 1000 and sent > 10, f"{gone_ms:.0f} ms, {sent} sent, log: {open(log).read()[-1000:]}")
        c.check("supervise: the stranger's pings are logged as ignored (once)",
                open(log).read().count("a notify message not from the node: ignored") == 1, open(log).read()[-1500:])
        second, deadline = None, time.monotonic() + 10
        while time.monotonic() < deadline and second in (None, first):
            second = child_pid()
            time.sleep(0.1)
        c.check("supervise: a new node serves", second not in (None, first), (first, second))
        proc.terminate()
        try:
            rc = proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            rc = None
        c.check("supervise: SIGTERM ends it (exit 0) and its node", rc == 0 and not pid_alive(second or 0),
                (rc, second))
    finally:
        stop(proc)


def reload_under_load(c, lab, inst, figures):
    # Baseline: the same load without reloads.
    base = run_load(lab, inst, reloads=False)
    loaded = run_load(lab, inst, reloads=True)
    figures["base"], figures["reload"] = base, loaded
    for tag, r in (("without reloads", base), ("with reloads", loaded)):
        print(f"  {tag}: dnsperf fast {r['fast']}, slow {r['slow']} (sent, completed, lost); verifier sent "
              f"{r['checked_sent']} got {r['checked_got']}, neither {len(r['neither'])}; reloads {r['reloads']} "
              f"in {r['reload_secs']:.1f} s, ctl reload {r['ctl_ms_median']} ms median; one-version replies "
              f"{r['only']}; XDP answers {r['xdp_answers']}", flush=True)
    c.check("the verifier heard answers on both paths", all(loaded["checked_got"][p] > 0.9 * loaded["checked_sent"][p]
                                                              for p in (FAST, SLOW)), loaded)
    c.check(f"{RELOADS} reloads, every one exit 0 and served at once by both paths",
            loaded["reloads"] == RELOADS and not loaded["reload_failures"], loaded["reload_failures"][:5])
    c.check("the verifier saw both versions on both paths while reloading",
            all(n > 100 for n in loaded["only"].values()), loaded["only"])
    c.check("the fast path's answers came from XDP (tx_answer + tx_nxdomain moved by dnsperf's and the verifier's)",
            loaded["xdp_answers"] >= loaded["fast"][1] + loaded["checked_got"][FAST] - 10, loaded["xdp_answers"])
    c.check("no answer from neither version (verifier, both paths)", not loaded["neither"] and not base["neither"],
            (loaded["neither"] + base["neither"])[:5])
    for path in ("fast", "slow"):
        sent_b, _, lost_b = base[path]
        sent_r, _, lost_r = loaded[path]
        c.check(f"dnsperf ran on the {path} path", sent_b > 0 and sent_r > 0 and lost_b >= 0 and lost_r >= 0,
                (base[path], loaded[path]))
        # No worse: the lost fraction with reloads within 0.1% of the queries sent (plus 10
        # queries of jitter) of the lost fraction without.
        c.check(f"{path} path: loss with reloads no worse than without",
                lost_r / max(sent_r, 1) <= lost_b / max(sent_b, 1) + 0.001 + 10 / max(sent_r, 1),
                f"without {lost_b}/{sent_b}, with {lost_r}/{sent_r}")


def xdp_answers(lab, inst):
    out = inst.rampart("stats", "--json", "--pin-dir", inst.pins)
    stats = json.loads(out.stdout)
    return sum(v for k, v in stats.items() if k.startswith("tx_"))


def run_load(lab, inst, reloads):
    verifier = Verifier(CHECK_QPS)
    results = {}
    before = xdp_answers(lab, inst)
    perf = [threading.Thread(target=lambda p=p, q=q, k=k: results.__setitem__(k, dnsperf(lab, inst.tmp, p, q, k)))
            for p, q, k in ((FAST, FAST_QPS, "fast"), (SLOW, SLOW_QPS, "slow"))]
    verifier.start()
    for t in perf:
        t.start()
    failures, done, times = [], 0, []
    t0 = time.monotonic()
    time.sleep(1)  # under load first
    if reloads:
        period = (LOAD_SECS - 3) / RELOADS
        for i in range(RELOADS):
            version = 2 if i % 2 == 0 else 1
            write_zone(inst.zfile, version)
            s = time.monotonic()
            out = inst.rampart("ctl", "reload", ZONE, "--control-socket", inst.ctl)
            times.append((time.monotonic() - s) * 1000)
            fast, slow = ask("@", "SOA", FAST), ask("@", "SOA", SLOW)
            served = [versions_of("@", "SOA", r) if r is not None else None for r in (fast, slow)]
            if out.returncode != 0 or served != [{version}, {version}]:
                failures.append((i, version, out.returncode, out.stderr[-200:], served))
            done += 1
            delay = t0 + 1 + (i + 1) * period - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        reload_secs = time.monotonic() - t0 - 1
    else:
        reload_secs = 0.0
    for t in perf:
        t.join(timeout=LOAD_SECS + 40)
    verifier.finish()
    answered = xdp_answers(lab, inst) - before
    write_zone(inst.zfile, 1)
    times.sort()
    return {"fast": results.get("fast", (0, 0, -1)), "slow": results.get("slow", (0, 0, -1)),
            "checked_sent": dict(verifier.sent), "checked_got": dict(verifier.got), "neither": verifier.neither,
            "reloads": done, "only": {f"{p}/v{v}": n for (p, v), n in verifier.only.items()},
            "xdp_answers": answered, "reload_failures": failures, "reload_secs": reload_secs,
            "ctl_ms_median": round(times[len(times) // 2]) if times else None}


def run():
    c = rplab.Checks("ctl")
    lab = rplab.Lab()
    if lab.target != "rampart":
        c.skip("ctl", "the node is not rampart")
        return c
    tmp = tempfile.mkdtemp(prefix="rp-ctl-")
    inst = None
    try:
        setup_veth(lab)
        inst = Instance(lab, tmp)
        if not c.check("rampart starts (XDP generic on rpct0)", inst.start(), open(inst.log).read()[-2000:]):
            return c
        c.run("commands", commands, c, inst)
        c.run("supervised", supervised, c, lab, tmp)
        c.run("unreachable", unreachable, c, lab, tmp)
        c.run("stopped daemon", stopped_daemon, c, inst)
        figures = {}
        c.run("reload under load", reload_under_load, c, lab, inst, figures)
        c.check("the instance is still running", inst.proc.poll() is None, open(inst.log).read()[-1000:])
    finally:
        if inst and inst.proc:
            stop(inst.proc)
        ns_run(lab, "ip", "link", "del", "rpct0")
        if os.environ.get("RP_KEEP_TMP") != "1":
            shutil.rmtree(tmp, ignore_errors=True)
    return c


if __name__ == "__main__":
    r = run()
    print(r.line())
