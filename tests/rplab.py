"""Shared helpers for the end-to-end tests: namespaces, raw DNS over UDP/TCP, counters, a tiny
check runner. The lab itself (namespaces, veths, NSD oracle, rampart) is made by scripts/lib/lab.sh,
which exports the RP_* variables read here. Run with /usr/bin/python3 (it has dnspython)."""

import ctypes
import json
import os
import socket
import struct
import subprocess
import sys
import time
import traceback

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype

ENV = os.environ
CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def env(name, default=None):
    v = ENV.get(name, default)
    if v is None:
        sys.exit(f"{name} is not set: run through scripts/test (it builds the lab)")
    return v


def setns(ns):
    """Move this (single-threaded) process into network namespace `ns`. Sockets made before
    stay in the namespace they were made in."""
    fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            e = ctypes.get_errno()
            raise OSError(e, f"setns {ns}: {os.strerror(e)}")
    finally:
        os.close(fd)


class Lab:
    def __init__(self):
        self.ns_client = env("RP_NS_CLIENT")
        self.ns_node = env("RP_NS_NODE")
        self.node4 = env("RP_NODE4")
        self.node6 = env("RP_NODE6")
        self.oracle4 = env("RP_ORACLE4")
        self.oracle6 = env("RP_ORACLE6")
        self.slow_port = int(env("RP_SLOW_PORT", "5353"))
        self.zone_dir = env("RP_ZONE_DIR")
        self.pin_dir = env("RP_PIN_DIR", "")
        self.bin = env("RP_BIN", "")
        self.client_if = env("RP_CLIENT_IF", "c0")
        self.node_if = env("RP_NODE_IF", "n0")
        # RP_TARGET=nsd: the node runs NSD instead of rampart (checks the harness itself);
        # counter checks are skipped then.
        self.target = ENV.get("RP_TARGET", "rampart")
        setns(self.ns_client)

    def node(self, family):
        return self.node4 if family == 4 else self.node6

    def oracle(self, family):
        return self.oracle4 if family == 4 else self.oracle6

    def stats(self):
        """rampart's counters (dict name → int), or None when the node isn't rampart."""
        if self.target != "rampart":
            return None
        out = subprocess.run(
            ["ip", "netns", "exec", self.ns_node, self.bin, "stats", "--json", "--pin-dir", self.pin_dir],
            check=True, capture_output=True, text=True, timeout=20).stdout
        return {k: int(v) for k, v in json.loads(out).items()}

    def alive(self):
        """Is the node's server process still running? (pid from the lab's pid file)"""
        try:
            with open(os.path.join(env("RP_TMP"), "pids")) as f:
                for line in f:
                    pid, name = line.split()
                    if name in ("rampart", "nsd-node"):
                        os.kill(int(pid), 0)
                        return True
        except (OSError, ValueError):
            return False
        return False


def delta(before, after):
    return {k: after.get(k, 0) - before.get(k, 0) for k in after}


FAST_TX = ("tx_answer", "tx_nodata", "tx_nxdomain", "tx_referral")


def udp_raw(wire, addr, port, timeout=1.0, tries=2):
    """Send one datagram, return the first reply whose ID matches (bytes), or None."""
    fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
    for _ in range(tries):
        s = socket.socket(fam, socket.SOCK_DGRAM)
        try:
            s.settimeout(timeout)
            s.connect((addr, port))
            s.send(wire)
            end = time.monotonic() + timeout
            while time.monotonic() < end:
                try:
                    r = s.recv(65535)
                except socket.timeout:
                    break
                if len(wire) < 2 or r[:2] == wire[:2]:
                    return r
        finally:
            s.close()
    return None


def udp_collect(wire, addr, port, wait=0.3):
    """Send one datagram and collect every reply for `wait` seconds (for malformed input)."""
    fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_DGRAM)
    out = []
    try:
        s.connect((addr, port))
        s.send(wire)
        end = time.monotonic() + wait
        while True:
            left = end - time.monotonic()
            if left <= 0:
                break
            s.settimeout(left)
            try:
                out.append(s.recv(65535))
            except socket.timeout:
                break
            except ConnectionRefusedError:
                out.append(b"ICMP-REFUSED")
                break
    finally:
        s.close()
    return out


def _recv_exact(s, n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            return None
        b += c
    return b


def tcp_raw(wire, addr, port, timeout=2.0):
    fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    try:
        s.settimeout(timeout)
        s.connect((addr, port))
        s.sendall(struct.pack("!H", len(wire)) + wire)
        h = _recv_exact(s, 2)
        if h is None:
            return None
        return _recv_exact(s, struct.unpack("!H", h)[0])
    except OSError:
        return None
    finally:
        s.close()


def question_len(wire):
    """Length of the first question (name + type + class) starting at offset 12, or None."""
    i = 12
    while i < len(wire):
        l = wire[i]
        if l == 0:
            return i + 1 + 4 - 12 if i + 5 <= len(wire) else None
        if l & 0xC0:
            return None
        i += 1 + l
    return None


def _name_end(wire, i):
    """Walk a (possibly compressed) name at i; return the offset after it. Raises ValueError on
    overruns, loops, forward pointers, labels > 63 or names > 255."""
    end_here, hops, total = None, 0, 0
    while True:
        if i >= len(wire):
            raise ValueError("name overruns message")
        l = wire[i]
        if l & 0xC0 == 0xC0:
            if i + 1 >= len(wire):
                raise ValueError("pointer overruns message")
            target = ((l & 0x3F) << 8) | wire[i + 1]
            if end_here is None:
                end_here = i + 2
            if target >= i or hops > 127:
                raise ValueError("compression pointer not backward")
            hops += 1
            i = target
            continue
        if l & 0xC0:
            raise ValueError(f"label type {l:#x}")
        total += l + 1
        if total > 255:
            raise ValueError("name longer than 255")
        if l == 0:
            return end_here if end_here is not None else i + 1
        i += 1 + l


def wire_check(wire):
    """Strict structural check of a DNS message (any opcode/rcode): header, every question and
    RR inside the message, names valid, no trailing bytes. Returns None or a problem string."""
    if len(wire) < 12:
        return "shorter than a header"
    qd, an, ns, ar = struct.unpack("!HHHH", wire[4:12])
    i = 12
    try:
        for _ in range(qd):
            i = _name_end(wire, i) + 4
            if i > len(wire):
                return "question overruns message"
        for _ in range(an + ns + ar):
            i = _name_end(wire, i)
            if i + 10 > len(wire):
                return "RR header overruns message"
            rdlen = struct.unpack("!H", wire[i + 8:i + 10])[0]
            i += 10 + rdlen
            if i > len(wire):
                return "RDATA overruns message"
    except ValueError as e:
        return str(e)
    if i != len(wire):
        return f"{len(wire) - i} trailing bytes"
    return None


def summary(wire):
    """What the oracle comparison looks at. Raises on a reply that doesn't parse."""
    m = dns.message.from_wire(wire)
    def rrs(section, only=None):
        out = set()
        for rrset in section:
            if only is not None and rrset.rdtype != only:
                continue
            for rd in rrset:
                out.add((rrset.name.to_text().lower(), dns.rdatatype.to_text(rrset.rdtype),
                         rrset.ttl, rd.to_text().lower()))
        return out
    return {
        "rcode": dns.rcode.to_text(m.rcode()),
        "aa": bool(m.flags & dns.flags.AA),
        "tc": bool(m.flags & dns.flags.TC),
        "qr": bool(m.flags & dns.flags.QR),
        "opt": m.edns >= 0,
        "do": bool(m.ednsflags & dns.flags.DO) if m.edns >= 0 else False,
        "answer": rrs(m.answer),
        "auth_soa": rrs(m.authority, dns.rdatatype.SOA),
        "auth_ns": rrs(m.authority, dns.rdatatype.NS),
    }


class Checks:
    """Collects named checks; a test module returns one of these."""

    def __init__(self, title):
        self.title = title
        self.passed = 0
        self.failed = 0
        self.skipped = 0
        self.failures = []

    def check(self, name, ok, detail=""):
        if ok:
            self.passed += 1
        else:
            self.failed += 1
            self.failures.append((name, detail))
            print(f"FAIL {self.title}: {name}\n     {detail}", flush=True)
        return ok

    def skip(self, name, why):
        self.skipped += 1
        print(f"SKIP {self.title}: {name}: {why}", flush=True)

    def run(self, name, fn, *a):
        try:
            fn(*a)
        except Exception:  # a crashing check is a failed check, not a crashed suite
            self.check(name, False, traceback.format_exc())

    def line(self):
        s = f"{self.passed} passed, {self.failed} failed"
        return s + (f", {self.skipped} skipped" if self.skipped else "")


def main_for(fn):
    """Run one test module standalone: prints its closing line, exits non-zero on failure."""
    c = fn()
    print(c.line())
    sys.exit(1 if c.failed else 0)
