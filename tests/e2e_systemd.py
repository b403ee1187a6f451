"""systemd's notify protocol (issue 12), checked without systemd as PID 1: the test owns the
NOTIFY_SOCKET (a unix datagram socket) and sets WATCHDOG_USEC as systemd would.

- READY=1 once the node answers, with a STATUS= line naming the zones and answers.
- WATCHDOG=1 every half WATCHDOG_USEC while the slow path answers and the health loop turns.
- SIGHUP: RELOADING=1 (with MONOTONIC_USEC) then READY=1 with the new status.
- `rampart debug stop-slow-path`: WATCHDOG=1 stops (and STATUS says why) until
  `start-slow-path`; SIGSTOP: nothing is sent (systemd would kill the node: its TUN device, the
  announcement, goes with it).
- SIGTERM: STOPPING=1, exit 0.

The instance runs sockets-only with anycast on (the control socket and the health loop) in the
lab's node namespace, on its loopback."""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import rplab
from e2e_hardening import make_zones, spawn
from e2e_operations import ns_run, stop, wait_ready, zone_text

PORT = 5471  # this module's ports: 5471-5472
WATCHDOG_USEC = 1_000_000  # rampart pings every 0.5 s


class NotifySocket:
    """The socket systemd would listen on; collects (time, fields) per datagram."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        os.chmod(path, 0o666)
        self.sock.settimeout(0.1)
        self.got = []
        self.seen = 0  # wait_for looks after this index

    def pump(self, secs):
        """Reads what arrives during `secs`; returns those messages."""
        start = len(self.got)
        deadline = time.monotonic() + secs
        while time.monotonic() < deadline:
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            fields = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
            self.got.append((time.monotonic(), fields))
        return self.got[start:]

    def wait_for(self, key, value, secs):
        """Pumps until a message with key=value after the last one returned; that message, or
        None."""
        deadline = time.monotonic() + secs
        while True:
            for i in range(self.seen, len(self.got)):
                if self.got[i][1].get(key) == value:
                    self.seen = i + 1
                    return self.got[i][1]
            if time.monotonic() >= deadline:
                return None
            self.pump(0.1)

    def close(self):
        self.sock.close()


def count(msgs, key, value="1"):
    return sum(1 for _, m in msgs if m.get(key) == value)


def notify_protocol(c, lab, tmp):
    zdir = make_zones(tmp, "sd-zones", 2)
    ctl = os.path.join(tmp, "control.sock")
    notify = NotifySocket(os.path.join(tmp, "notify.sock"))
    log = os.path.join(tmp, "sd.log")
    # As systemd does: WATCHDOG_PID is the service's pid (sh's, kept through the execs).
    env = ["sh", "-c", 'export WATCHDOG_PID=$$; exec "$@"', "sh", "ip", "netns", "exec", lab.ns_node, "env",
           f"NOTIFY_SOCKET={notify.path}", f"WATCHDOG_USEC={WATCHDOG_USEC}"]
    proc = spawn([*env, lab.bin, "run", "--zone-dir", zdir,
                  "--listen", f"127.0.0.1:{PORT}", "--run-dir", os.path.join(tmp, "run"), "--user", "root",
                  "--anycast-prefix", "203.0.113.198/32", "--anycast-device", "rpsd0",
                  "--control-socket", ctl, "--identity", "sd-node"], log)

    def dig(name="www.z0.test"):
        return ns_run(lab, "dig", "+short", "+time=1", "+tries=1", "-p", str(PORT), "@127.0.0.1", name,
                      "A").stdout.strip()

    def debug(action):
        return ns_run(lab, lab.bin, "debug", action, "--control-socket", ctl)

    try:
        ready = notify.wait_for("READY", "1", 30)
        if not c.check("READY=1 sent once started", ready is not None,
                       f"{notify.got[:5]} {open(log).read()[-1500:]}"):
            return
        c.check("READY=1: the node answers at that moment", dig() == "198.51.100.1", dig())
        c.check("READY=1 comes with STATUS= naming the zones (sockets only: no XDP answers)",
                ready.get("STATUS", "") == "serving 2 zones", str(ready))
        c.check("READY=1 after 'rampart: ready' is printed", wait_ready(proc, log, 5))
        got = notify.pump(2.6)
        pings = count(got, "WATCHDOG")
        c.check("WATCHDOG=1 every WATCHDOG_USEC/2 while healthy (4-6 in 2.6 s)", 4 <= pings <= 6,
                f"{pings}: {got}")
        with open(os.path.join(zdir, "z0.test.zone"), "w") as f:
            f.write(zone_text("z0.test", 2, "203.0.113.77"))
        proc.send_signal(signal.SIGHUP)
        reloading = notify.wait_for("RELOADING", "1", 10)
        c.check("SIGHUP: RELOADING=1 with MONOTONIC_USEC",
                reloading is not None and reloading.get("MONOTONIC_USEC", "").isdigit(), str(reloading))
        again = notify.wait_for("READY", "1", 20)
        c.check("SIGHUP: READY=1 after the reload, new zones served",
                again is not None and again.get("STATUS") == "serving 2 zones" and dig() == "203.0.113.77",
                f"{again} {dig()}")

        out = debug("stop-slow-path")
        c.check("stop-slow-path answered", out.returncode == 0, out.stderr[-300:])
        notify.pump(0.8)  # a ping already under way
        got = notify.pump(2.5)
        c.check("slow path stopped: no WATCHDOG=1 for 2.5 s", count(got, "WATCHDOG") == 0, str(got))
        c.check("slow path stopped: STATUS says the watchdog is not fed and why",
                any("watchdog not fed: slow path at 127.0.0.1" in m.get("STATUS", "") for _, m in notify.got),
                str(notify.got[-5:]))
        out = debug("start-slow-path")
        got = notify.pump(2.0)
        c.check("slow path started again: WATCHDOG=1 resumes",
                out.returncode == 0 and count(got, "WATCHDOG") >= 2, f"{out.stderr[-200:]} {got}")

        proc.send_signal(signal.SIGSTOP)
        try:
            notify.pump(0.3)
            got = notify.pump(2.0)
        finally:
            proc.send_signal(signal.SIGCONT)
        c.check("SIGSTOP: no WATCHDOG=1 while stopped", count(got, "WATCHDOG") == 0, str(got))
        got = notify.pump(1.5)
        c.check("SIGCONT: WATCHDOG=1 again", count(got, "WATCHDOG") >= 1, str(got))

        proc.send_signal(signal.SIGTERM)
        stopping = notify.wait_for("STOPPING", "1", 10)
        c.check("SIGTERM: STOPPING=1", stopping is not None, str(notify.got[-5:]))
        try:
            rc = proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            rc = None
        c.check("SIGTERM: exit 0", rc == 0, f"rc={rc} {open(log).read()[-800:]}")
    finally:
        stop(proc)
        notify.close()


def without_socket(c, lab, tmp):
    """No NOTIFY_SOCKET (started by hand): nothing sent, nothing logged about it."""
    zdir = make_zones(tmp, "plain-zones", 1)
    log = os.path.join(tmp, "plain.log")
    proc = spawn(["sh", "-c", 'export WATCHDOG_PID=$$; exec "$@"', "sh", "ip", "netns", "exec", lab.ns_node,
                  "env", "-u", "NOTIFY_SOCKET", f"WATCHDOG_USEC={WATCHDOG_USEC}",
                  lab.bin, "run", "--zone-dir", zdir, "--listen", f"127.0.0.1:{PORT + 1}",
                  "--run-dir", os.path.join(tmp, "run-plain"), "--user", "root"], log)
    try:
        c.check("without NOTIFY_SOCKET: starts", wait_ready(proc, log))
        time.sleep(1.2)
        text = open(log).read()
        c.check("without NOTIFY_SOCKET: no sd_notify error, no watchdog",
                "sd_notify" not in text and "watchdog" not in text, text[-800:])
    finally:
        stop(proc)


def run():
    c = rplab.Checks("e2e_systemd")
    lab = rplab.Lab()
    if lab.target != "rampart":
        c.skip("systemd", "the node is not rampart")
        return c
    tmp = tempfile.mkdtemp(prefix="rp-sd-")
    os.chmod(tmp, 0o755)
    try:
        c.run("notify protocol", notify_protocol, c, lab, tmp)
        c.run("without NOTIFY_SOCKET", without_socket, c, lab, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return c


if __name__ == "__main__":
    rplab.main_for(run)
