"""Sharing the NIC (`[xdp] attach = "shared"`): rampart beside xdp-tools' xdp-filter.

A node and a client namespace of this module's own (veth, generic XDP), the client with two
documentation sources: 198.51.100.2 (let through) and 198.51.100.3 (dropped by xdp-filter).

- rampart starts in shared mode through libxdp; `xdp-loader status` lists it; a query is answered
  by the XDP program (tx_answer moves by exactly one).
- Where the kernel lets libxdp build its dispatcher: xdp-filter joins the NIC; `xdp-loader status`
  lists both; .2 is answered from XDP, .3 gets nothing (xdp-filter counts it); `kill -9` of the
  daemon: both still listed, xdp-filter still drops .3, and rampart's entry no longer answers
  (.2 gets port unreachable from the stack: its frames went up); a restart replaces the dead
  entry (one rampart listed) and answers again; `rampart detach` removes rampart's entry only:
  xdp-filter stays and still drops .3, and the still-running daemon answers from its sockets.
- Where the kernel refuses freplace programs (this lab's kernel: BPF_PROG_LOAD of any
  BPF_PROG_TYPE_EXT program is EPERM, libxdp's own compatibility test included), libxdp attaches
  rampart's entry alone and rampart says so; xdp-filter is refused (EBUSY, "not using a
  dispatcher") and rampart keeps answering; the coexistence checks are reported as skipped. The
  fate-sharing, restart, second-instance and detach checks run either way, and `rampart detach`
  leaves xdp-filter's program alone on a NIC rampart isn't on (without a dispatcher, rampart
  then can't start on that NIC, and says why).
"""

import glob
import os
import re
import signal
import subprocess
import tempfile
import shutil
import time

import rplab
from e2e_operations import stop, wait_ready, zone_text

NODE4, PASS4, DROP4 = "198.51.100.1", "198.51.100.2", "198.51.100.3"
ANSWER = "192.0.2.53"


class Share:
    """The module's namespaces, bpffs dir for libxdp and pin dirs; torn down by close()."""

    def __init__(self, lab, tmp):
        tag = f"{os.getpid() % 100000}"
        self.lab, self.tmp = lab, tmp
        self.ns_node, self.ns_client = f"rpsh-n{tag}", f"rpsh-c{tag}"
        self.dev = "rpsh0"
        bpffs = os.environ.get("RP_BPFFS") or os.path.dirname(lab.pin_dir)
        self.libxdp = os.path.join(bpffs, f"libxdp-{tag}")
        self.pins = os.path.join(bpffs, f"rampart-share-{tag}")
        self.env = dict(os.environ, LIBXDP_BPFFS=self.libxdp)
        self.procs = []
        os.makedirs(self.libxdp, exist_ok=True)
        for ns in (self.ns_node, self.ns_client):
            subprocess.run(["ip", "netns", "add", ns], check=True)
        subprocess.run(["ip", "link", "add", self.dev, "netns", self.ns_node, "type", "veth", "peer", "name",
                        "rpsh1", "netns", self.ns_client], check=True)
        self.node("ip", "addr", "add", f"{NODE4}/24", "dev", self.dev, check=True)
        for a in (PASS4, DROP4):
            self.client("ip", "addr", "add", f"{a}/24", "dev", "rpsh1", check=True)
        # Full checksums from the client (see tests/README.md: XDP_TX of CHECKSUM_PARTIAL frames).
        self.client("ethtool", "-K", "rpsh1", "tx", "off", check=True)
        for ns, dev in ((self.ns_node, self.dev), (self.ns_node, "lo"), (self.ns_client, "rpsh1")):
            subprocess.run(["ip", "-n", ns, "link", "set", dev, "up"], check=True)
        self.zones = os.path.join(tmp, "share-zones")
        os.makedirs(self.zones)
        with open(os.path.join(self.zones, "share.test.zone"), "w") as f:
            f.write(zone_text("share.test", 1, ANSWER))

    def node(self, *cmd, check=False, timeout=30):
        return subprocess.run(["ip", "netns", "exec", self.ns_node, *cmd], capture_output=True, text=True,
                              timeout=timeout, check=check, env=self.env)

    def client(self, *cmd, check=False):
        return subprocess.run(["ip", "netns", "exec", self.ns_client, *cmd], capture_output=True, text=True,
                              timeout=30, check=check)

    def start(self, name):
        """rampart in shared mode on the module's NIC; (process, log path); None if not ready."""
        log = os.path.join(self.tmp, f"{name}.log")
        with open(log, "w") as out:
            proc = subprocess.Popen(["ip", "netns", "exec", self.ns_node, self.lab.bin, "run", "--iface", self.dev,
                                     "--xdp-mode", "generic", "--xdp-attach", "shared", "--zone-dir", self.zones,
                                     "--listen", f"{NODE4}:53", "--pin-dir", f"{self.pins}-{name}"],
                                    stdout=out, stderr=subprocess.STDOUT, env=self.env)
        self.procs.append(proc)
        return proc, log

    def dig(self, source):
        """'answer' (the zone's address came back), 'refused' (port unreachable), 'silent'."""
        out = self.client("dig", "+tries=1", "+time=1", "-b", source, f"@{NODE4}", "www.share.test", "A")
        text = out.stdout + out.stderr
        if re.search(rf"www\.share\.test\.\s+\d+\s+IN\s+A\s+{re.escape(ANSWER)}", text):
            return "answer"
        if "refused" in text:
            return "refused"
        return "silent"

    def tx_answer(self, name):
        out = self.node(self.lab.bin, "stats", "--pin-dir", f"{self.pins}-{name}")
        m = re.search(r"^tx_answer\s+(\d+)", out.stdout, re.M)
        return int(m.group(1)) if m else None

    def status(self):
        """xdp-loader status of the NIC: program names listed (the dispatcher included)."""
        out = self.node("xdp-loader", "status", self.dev).stdout
        names = []
        for line in out.splitlines():
            f = line.replace("=>", " ").split()
            if len(f) >= 4 and (f[0] == self.dev or line.lstrip().startswith("=>")):
                names.append(f[1] if f[0] == self.dev else f[1])
        return names, out

    def close(self):
        for p in self.procs:
            stop(p)
        self.node("xdp-filter", "unload", "--all", self.dev)
        for ns in (self.ns_node, self.ns_client):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        shutil.rmtree(self.libxdp, ignore_errors=True)
        for d in glob.glob(f"{self.pins}-*"):  # a SIGKILLed instance's pins
            shutil.rmtree(d, ignore_errors=True)


def listed(names, prefix):
    return sum(1 for n in names if n.startswith(prefix))


def share(c, lab, tmp):
    s = Share(lab, tmp)
    try:
        run_share(c, s)
    finally:
        s.close()


def run_share(c, s):
    proc, log = s.start("r1")
    if not c.check("shared: rampart starts", wait_ready(proc, log), open(log).read()[-1500:]):
        return
    dispatcher = "without its dispatcher" not in open(log).read()
    names, text = s.status()
    c.check("shared: xdp-loader status lists rampart", listed(names, "rampart") == 1, text)
    c.check("shared: dispatcher iff rampart says so",
            (listed(names, "xdp_dispatcher") == 1) == dispatcher, text)
    before = s.tx_answer("r1")
    c.check("shared: answered", s.dig(PASS4) == "answer")
    c.check("shared: ... by the XDP program (tx_answer +1)", s.tx_answer("r1") == (before or 0) + 1,
            f"{before} -> {s.tx_answer('r1')}")

    load = s.node("xdp-filter", "load", "--mode", "skb", s.dev)
    if dispatcher:
        if not c.check("xdp-filter joins the NIC", load.returncode == 0, load.stderr):
            return
        add = s.node("xdp-filter", "ip", "--mode", "src", DROP4)
        c.check("xdp-filter drops the documentation source", add.returncode == 0, add.stderr)
        names, text = s.status()
        c.check("xdp-loader status lists both", listed(names, "rampart") == 1 and listed(names, "xdpfilt_") == 1,
                text)
        before = s.tx_answer("r1")
        c.check("beside xdp-filter: .2 answered", s.dig(PASS4) == "answer")
        c.check("beside xdp-filter: .3 gets nothing", s.dig(DROP4) == "silent")
        c.check("beside xdp-filter: one XDP answer (.2's)", s.tx_answer("r1") == before + 1,
                f"{before} -> {s.tx_answer('r1')}")
    else:
        c.check("no dispatcher: xdp-filter is refused, rampart's program stays",
                load.returncode != 0 and "not using a dispatcher" in load.stderr + load.stdout, load.stderr)
        c.skip("xdp-filter beside rampart",
               "this kernel refuses freplace programs (BPF_PROG_TYPE_EXT load: EPERM), so libxdp "
               "cannot build its dispatcher")
        c.check("no dispatcher: still answered", s.dig(PASS4) == "answer")

    # Fate-sharing: the daemon killed, its entry stays listed but passes every frame.
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    time.sleep(0.5)  # the kernel empties JUMPS from a work queue
    names, text = s.status()
    c.check("kill -9: rampart's entry still listed", listed(names, "rampart") == 1, text)
    c.check("kill -9: rampart's entry no longer answers (port unreachable from the stack)",
            s.dig(PASS4) == "refused")
    if dispatcher:
        c.check("kill -9: xdp-filter still listed", listed(names, "xdpfilt_") == 1, text)
        c.check("kill -9: xdp-filter still drops .3", s.dig(DROP4) == "silent")

    # A restart replaces the dead entry.
    proc, log = s.start("r2")
    if not c.check("restart: rampart starts", wait_ready(proc, log), open(log).read()[-1500:]):
        return
    c.check("restart: the dead entry was removed", "removing a dead rampart entry" in open(log).read(),
            open(log).read()[-1500:])
    names, text = s.status()
    c.check("restart: one rampart listed", listed(names, "rampart") == 1, text)
    before = s.tx_answer("r2")
    c.check("restart: answered from XDP", s.dig(PASS4) == "answer" and s.tx_answer("r2") == before + 1)

    # A second instance on the same NIC is refused while the first is alive.
    second = s.node(s.lab.bin, "run", "--iface", s.dev, "--xdp-mode", "generic", "--xdp-attach", "shared",
                    "--zone-dir", s.zones, "--listen", f"{NODE4}:5300", "--pin-dir", f"{s.pins}-r3")
    c.check("second instance: refused, naming the live one",
            second.returncode != 0 and "another rampart's program" in second.stderr, second.stderr[-600:])

    # detach removes rampart's entry only; the running daemon answers from its sockets.
    out = s.node(s.lab.bin, "detach", "--iface", s.dev)
    c.check("detach: exits 0", out.returncode == 0, out.stderr)
    names, text = s.status()
    c.check("detach: rampart gone", listed(names, "rampart") == 0, text)
    before = s.tx_answer("r2")
    c.check("detach: the slow path answers", s.dig(PASS4) == "answer" and s.tx_answer("r2") == before,
            f"{before} -> {s.tx_answer('r2')}")
    if dispatcher:
        c.check("detach: xdp-filter stays", listed(names, "xdpfilt_") == 1, text)
        c.check("detach: xdp-filter still drops .3", s.dig(DROP4) == "silent")
    stop(proc)
    c.check("clean exit: exit 0", proc.returncode == 0, open(log).read()[-800:])

    # A foreign program alone on the NIC: detach leaves it (and says whose it is).
    s.node("xdp-filter", "unload", "--all", s.dev)
    load = s.node("xdp-filter", "load", "--mode", "skb", s.dev)
    if c.check("xdp-filter alone on the NIC", load.returncode == 0, load.stderr):
        out = s.node(s.lab.bin, "detach", "--iface", s.dev)
        names, text = s.status()
        if dispatcher:
            c.check("detach beside xdp-filter alone: nothing of rampart's, exit 0",
                    out.returncode == 0 and "removed 0" in out.stdout, out.stdout + out.stderr)
        else:
            c.check("detach: a foreign program is left, named", out.returncode != 0 and "xdpfilt_" in out.stderr,
                    out.stderr)
        c.check("detach: xdp-filter's program still there", listed(names, "xdpfilt_") == 1, text)
        if not dispatcher:
            late = s.node(s.lab.bin, "run", "--iface", s.dev, "--xdp-mode", "generic", "--xdp-attach", "shared",
                          "--zone-dir", s.zones, "--listen", f"{NODE4}:5301", "--pin-dir", f"{s.pins}-r4")
            c.check("no dispatcher: rampart can't join xdp-filter, and says why",
                    late.returncode != 0 and "another XDP program holds the NIC" in late.stderr,
                    late.stderr[-600:])


def run():
    c = rplab.Checks("e2e_share")
    lab = rplab.Lab()
    if lab.target != "rampart":
        c.skip("share", "the node is not rampart")
        return c
    if shutil.which("xdp-loader") is None or shutil.which("xdp-filter") is None:
        c.check("xdp-tools installed (scripts/setup)", False, "xdp-loader/xdp-filter missing")
        return c
    tmp = tempfile.mkdtemp(prefix="rp-share-")
    try:
        c.run("shared NIC", share, c, lab, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return c


if __name__ == "__main__":
    rplab.main_for(run)
