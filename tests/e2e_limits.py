"""Rate limits and junk handling in the XDP program, with real frames at a low rate.

Frames are written by hand and sent on the client veth through an AF_PACKET socket, from spoofed
documentation-space sources (192.0.2.0/24, 2001:db8:5xx::/56, 2001:db8:6xx::/56) that the lab
does not whitelist; the node's XDP_TX replies come back on the same veth and are read from the
same socket (they are addressed to the spoofed sources, so no socket of the kernel's would see
them). The lab runs rampart with low limits (scripts/lib/lab.sh RP_LIMIT_ARGS: RRL 10/s per
prefix and class with slip 2, 200/s per class in all, 10/s per prefix passed up, class slip 2)
and whitelists the client's own addresses. Checked:
  - RRL: after the burst a prefix's answers of one class are limited; every 2nd limited answer
    is a TC=1 slip (header and question, no records), the rest dropped; the counters match;
    IPv6 sources share a bucket per /56;
  - the global view: one query each from 300 distinct /56s for missing names of one zone (one
    NXDOMAIN class) is limited by the class rate where per-prefix RRL can't see it;
  - the miss budget: queries only the slow path answers are passed up to the budget, then
    slipped (TC=1, no AA) or dropped;
  - junk (a response, source port 7, a broken name) is dropped, never answered;
  - the whitelisted client is never limited.
"""

import os
import socket
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rplab  # noqa: E402

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s > 0xFFFF:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def name_wire(name):
    out = b""
    for label in name.rstrip(".").split("."):
        out += bytes([len(label)]) + label.encode()
    return out + b"\0"


def query(qid, name, qtype=1, flags=0x0100, edns=False):
    q = struct.pack("!HHHHHH", qid, flags, 1, 0, 0, 1 if edns else 0)
    q += name_wire(name) + struct.pack("!HH", qtype, 1)
    if edns:
        q += b"\0" + struct.pack("!HHBBHH", 41, 1232, 0, 0, 0, 0)
    return q


class Wire:
    """Raw frames on the client veth, and the node's replies to spoofed sources."""

    def __init__(self, lab):
        self.lab = lab
        self.s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self.s.bind((lab.client_if, 0))
        self.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.cmac = bytes.fromhex(link_mac(lab.ns_client, lab.client_if).replace(":", ""))
        self.nmac = bytes.fromhex(link_mac(lab.ns_node, lab.node_if).replace(":", ""))
        self.sent_bytes = 0

    def frame(self, src, sport, dns):
        udp_len = 8 + len(dns)
        if ":" in src:
            s6, d6 = socket.inet_pton(socket.AF_INET6, src), socket.inet_pton(socket.AF_INET6, self.lab.node6)
            pseudo = s6 + d6 + struct.pack("!IxxxB", udp_len, 17)
            udp = struct.pack("!HHHH", sport, 53, udp_len, 0) + dns
            c = csum(pseudo + udp) or 0xFFFF
            udp = udp[:6] + struct.pack("!H", c) + udp[8:]
            ip = struct.pack("!IHBB", 6 << 28, udp_len, 17, 64) + s6 + d6
            return self.nmac + self.cmac + b"\x86\xdd" + ip + udp
        s4, d4 = socket.inet_aton(src), socket.inet_aton(self.lab.node4)
        pseudo = s4 + d4 + struct.pack("!xBH", 17, udp_len)
        udp = struct.pack("!HHHH", sport, 53, udp_len, 0) + dns
        c = csum(pseudo + udp) or 0xFFFF
        udp = udp[:6] + struct.pack("!H", c) + udp[8:]
        ip = struct.pack("!BBHHHBBH", 0x45, 0, 20 + udp_len, 0, 0x4000, 64, 17, 0) + s4 + d4
        ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
        return self.nmac + self.cmac + b"\x08\x00" + ip + udp

    def drain(self):
        self.s.setblocking(False)
        try:
            while True:
                self.s.recv(65535)
        except BlockingIOError:
            pass

    def send(self, src, sport, dns):
        f = self.frame(src, sport, dns)
        self.s.send(f)
        self.sent_bytes += len(f)

    def burst(self, src, port, dns, n):
        """Send `dns` `n` times from `src` (ports port, port + 1, ...) and return the node's
        replies to `src`, earlier frames drained first."""
        self.drain()
        for i in range(n):
            self.send(src, port + i, dns)
        return [r for r in self.replies() if r[0] == src]

    def replies(self, wait=0.5):
        """DNS payloads of the frames the node sent to spoofed sources: [(dst, dns)]."""
        out = []
        self.s.settimeout(wait)
        while True:
            try:
                data, addr = self.s.recvfrom(65535)
            except (socket.timeout, BlockingIOError):
                break
            if addr[2] == PACKET_OUTGOING or len(data) < 14:
                continue
            et = struct.unpack("!H", data[12:14])[0]
            if et == 0x0800 and data[23] == 17:
                ihl = (data[14] & 0xF) * 4
                dst = socket.inet_ntoa(data[30:34])
                l4 = 14 + ihl
            elif et == 0x86DD and data[20] == 17:
                dst = socket.inet_ntop(socket.AF_INET6, data[38:54])
                l4 = 54
            else:
                continue
            if struct.unpack("!H", data[l4:l4 + 2])[0] != 53:
                continue
            out.append((dst, data[l4 + 8:], len(data)))
        return out


def link_mac(ns, dev):
    import json
    out = subprocess.run(["ip", "-n", ns, "-j", "link", "show", dev], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)[0]["address"]


def flags(dns):
    return struct.unpack("!H", dns[2:4])[0]


def counts(dns):
    return struct.unpack("!HHHH", dns[4:12])


def classify(replies, sent_dns):
    """(full answers, slips, problems) among replies."""
    full, slips, problems = 0, 0, []
    for dst, r, _ in replies:
        if len(r) < 12:
            problems.append(f"short reply to {dst}")
            continue
        if flags(r) & 0x0200:
            slips += 1
            qd, an, ns, ar = counts(r)
            ql = rplab.question_len(sent_dns)
            if (qd, an, ns, ar) != (1, 0, 0, 0) or len(r) != 12 + ql or r[12:] != sent_dns[12:12 + ql]:
                problems.append(f"slip not header+question: {r.hex()}")
        else:
            full += 1
    return full, slips, problems


def run():
    c = rplab.Checks("e2e_limits")
    lab = rplab.Lab()
    if lab.target != "rampart":
        c.skip("limits", "the node is not rampart")
        return c
    w = Wire(lab)
    time.sleep(1.0)  # let buckets the earlier modules touched refill
    c.run("RRL per prefix and class, slip 2", rrl_v4, c, lab, w)
    c.run("RRL shares a bucket per IPv6 /56", rrl_v6, c, lab, w)
    c.run("global view limits a class spread over 300 /56s", global_view, c, lab, w)
    c.run("miss budget", budget, c, lab, w)
    c.run("junk dropped", junk, c, lab, w)
    c.run("whitelisted client never limited", whitelisted, c, lab)
    return c


def rrl_v4(c, lab, w):
    q = query(0x5001, "mail.example.com")
    before = lab.stats()
    n = 40
    rep = w.burst("192.0.2.10", 20000, q, n)
    d = rplab.delta(before, lab.stats())
    full, slips, problems = classify(rep, q)
    limited = n - full
    c.check("RRL: replies well-formed", not problems, "; ".join(problems[:3]))
    c.check("RRL: the burst (10) answered, then limited", 10 <= full <= 13,
            f"full answers {full} of {n}")
    c.check("RRL: every 2nd limited answer slips", abs(slips - limited // 2) <= 1,
            f"limited {limited}, slips {slips}")
    c.check("RRL: counters match what came back",
            d["tx_slip_rrl"] == slips and d["drop_rrl"] == limited - slips
            and d["tx_answer"] >= full,
            f"tx_slip_rrl {d['tx_slip_rrl']} drop_rrl {d['drop_rrl']} tx_answer {d['tx_answer']}; "
            f"seen full {full} slips {slips}")
    # Another /24 is not affected.
    full2, _, _ = classify(w.burst("203.0.113.200", 21000, q, 5), q)
    c.check("RRL: another /24 has its own bucket", full2 == 5, f"{full2} of 5 answered")


def rrl_v6(c, lab, w):
    q = query(0x5002, "ns1.example.com", 28)
    w.drain()
    # All sent before any reply is read: the bucket refills 1 per 100 ms while we wait.
    batches = [("2001:db8:500:100::1", 15), ("2001:db8:500:1ff::2", 6), ("2001:db8:500:200::3", 6)]
    port = 22000
    for src, n in batches:
        for _ in range(n):
            w.send(src, port, q)
            port += 1
    rep = w.replies()
    first, second, third = (classify([r for r in rep if r[0] == src], q)[0] for src, _ in batches)
    c.check("RRL v6: the /56's burst spent by its first address", 10 <= first <= 12, f"{first} of 15")
    c.check("RRL v6: a second address of that /56 is limited", second <= 1, f"{second} of 6 answered")
    c.check("RRL v6: the next /56 is not", third == 6, f"{third} of 6 answered")


def global_view(c, lab, w):
    before = lab.stats()
    w.drain()
    n = 300
    sent = 0
    for i in range(n):
        q = query(0x6000 + i, f"flood-{i}.example.net")
        w.send(f"2001:db8:6{i // 256:x}{i % 256:02x}::1", 30000 + i, q)
        sent += 14 + 40 + 8 + len(q)
    rep = w.replies(wait=1.0)
    d = rplab.delta(before, lab.stats())
    limited = d["tx_slip_global"] + d["drop_global"]
    out_bytes = sum(r[2] for r in rep if r[0].startswith("2001:db8:6"))
    print(f"e2e_limits: global view: {d['tx_nxdomain']} NXDOMAIN answered, "
          f"{d['tx_slip_global']} slipped, {d['drop_global']} dropped of {n}; "
          f"{out_bytes} bytes out for {sent} in ({out_bytes / sent:.2f})", flush=True)
    c.check("global: a class spread over 300 /56s is limited", limited >= 100,
            f"tx_slip_global {d['tx_slip_global']} drop_global {d['drop_global']}")
    c.check("global: per-prefix RRL saw nothing (one query per /56)", d["drop_rrl"] + d["tx_slip_rrl"] == 0,
            f"{d['drop_rrl']} {d['tx_slip_rrl']}")
    c.check("global: about half the limited slip (class slip 2)",
            abs(d["tx_slip_global"] - limited / 2) <= 2, f"{d['tx_slip_global']} of {limited}")


def budget(c, lab, w):
    # ANY is never answered from the maps: every one goes up to the slow path.
    q = query(0x7001, "mail.example.com", 255)
    before = lab.stats()
    n = 30
    rep = w.burst("192.0.2.20", 25000, q, n)
    d = rplab.delta(before, lab.stats())
    _, slips, problems = classify(rep, q)
    tc_no_aa = all(flags(r) & 0x0600 == 0x0200 and flags(r) & 0xF == 0 for _, r, _ in rep)
    c.check("budget: 10 passed up, then over budget", 10 <= d["pass_miss"] <= 13,
            f"pass_miss {d['pass_miss']}")
    c.check("budget: the rest slipped or dropped",
            d["tx_slip_budget"] + d["drop_budget"] == n - d["pass_miss"],
            f"tx_slip_budget {d['tx_slip_budget']} drop_budget {d['drop_budget']}")
    c.check("budget: slips came back as TC=1, no AA, NOERROR", slips == d["tx_slip_budget"]
            and tc_no_aa and not problems, f"slips {slips} {problems[:2]}")


def junk(c, lab, w):
    before = lab.stats()
    w.drain()
    w.send("192.0.2.30", 26000, query(0x8001, "www.example.com", flags=0x8000))  # a response
    w.send("192.0.2.30", 7, query(0x8002, "www.example.com"))                     # echo port
    broken = struct.pack("!HHHHHH", 0x8003, 0x0100, 1, 0, 0, 0) + b"\x3fwww\0\0\1\0\1"
    w.send("192.0.2.30", 26001, broken)
    rep = [r for r in w.replies() if r[0] == "192.0.2.30"]
    d = rplab.delta(before, lab.stats())
    c.check("junk: nothing answered", not rep, f"{len(rep)} replies")
    c.check("junk: counted per reason",
            (d["drop_response"], d["drop_bad_source_port"], d["drop_malformed"]) == (1, 1, 1),
            f"drop_response {d['drop_response']} drop_bad_source_port {d['drop_bad_source_port']} "
            f"drop_malformed {d['drop_malformed']}")


def whitelisted(c, lab):
    q = query(0x9001, "www.example.com")
    before = lab.stats()
    answered = sum(1 for i in range(40) if rplab.udp_raw(q[:0] + struct.pack("!H", 0x9000 + i) + q[2:],
                                                          lab.node4, 53))
    d = rplab.delta(before, lab.stats())
    c.check("whitelist: the client's 40 queries all answered", answered == 40, f"{answered} of 40")
    c.check("whitelist: counted as over a limit but answered", d["rrl_whitelisted"] >= 20,
            f"rrl_whitelisted {d['rrl_whitelisted']}")


if __name__ == "__main__":
    rplab.main_for(run)
