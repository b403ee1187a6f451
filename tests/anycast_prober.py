"""Anycast prober: DNS queries over UDP at a fixed rate, each with the NSID option and a short
timeout, each from one of many source ports (so ECMP spreads them over the nodes), recording per
query its send time, whether it was answered in time and which node answered (NSID, RFC 5001).

    anycast_prober.py --server 192.0.2.53 --rate 500 --duration 10 --out FILE.json

Run it inside the client's namespace (`ip netns exec`). Send times are CLOCK_MONOTONIC, the clock
every process on the host shares, so a test can set them against the instant it killed a node.
Bounded by --duration (and --count). `summarize` is the summary the lab tests print."""

import argparse
import json
import os
import select
import socket
import struct
import sys
import time

import dns.edns
import dns.flags
import dns.exception
import dns.message
import dns.rcode

NSID = 3
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux; SCM_TIMESTAMPNS has the same value


RD = False  # --rd: recursion desired (a resolver service)


def query_wire(qname, qtype):
    """One query with EDNS and an empty NSID option; its ID is patched per query."""
    q = dns.message.make_query(qname, qtype, use_edns=0, payload=1232,
                               options=[dns.edns.GenericOption(NSID, b"")])
    q.flags = dns.flags.RD if RD else 0  # authoritative service: no RD
    return bytearray(q.to_wire())


def answer_of(wire):
    """(rcode, nsid) of a reply, nsid as text ('' when absent); None when not a DNS reply."""
    try:
        m = dns.message.from_wire(wire)
    except dns.exception.DNSException:
        return None
    nsid = ""
    for o in m.options:
        if o.otype == NSID:
            data = getattr(o, "data", None)
            if data is None:  # dnspython >= 2.6 parses NSID itself
                data = getattr(o, "nsid", b"")
            nsid = bytes(data).decode("ascii", "replace")
    return m.rcode(), nsid


def probe(server, port, rate, duration, timeout, qname, qtype, nports, count=None):
    """Sends for `duration` seconds (or `count` queries), then waits `timeout` for the last
    replies. Returns the list of [send_time, rtt or None, nsid or None, rcode or None, socket
    index, lateness, late_rtt or None]: the socket index names the query's flow (its source port,
    so its ECMP path), lateness is how many seconds after its schedule the query went out (the
    prober's own stall), late_rtt the round trip of a reply that came after the timeout (a lost
    query that was answered late, not dropped; its nsid is then filled in too)."""
    family = socket.AF_INET6 if ":" in server else socket.AF_INET
    base = query_wire(qname, qtype)
    socks = []
    ep = select.epoll()
    by_fd = {}
    for _ in range(nports):
        s = socket.socket(family, socket.SOCK_DGRAM)
        s.setblocking(False)
        # the kernel stamps each reply on arrival: a prober that the loaded machine deschedules
        # for a while reads late, but doesn't count an answer that came in time as lost
        s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        s.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", 0))
        socks.append(s)
        by_fd[s.fileno()] = s
        ep.register(s.fileno(), select.EPOLLIN)
    total = int(duration * rate) if count is None else min(count, int(duration * rate))
    recs = []
    sent_rt = []  # CLOCK_REALTIME of each send, the clock of the kernel's receive stamps
    pending = {}  # (fd, id) → index
    qid = int.from_bytes(os.urandom(2), "big")
    t0 = time.monotonic()
    i = 0
    end = None
    while True:
        now = time.monotonic()
        if i < total:
            due = t0 + i / rate
            if now >= due:
                s = socks[i % nports]
                qid = (qid + 7919) & 0xFFFF
                struct.pack_into("!H", base, 0, qid)
                # taken before sending: over veth the reply can arrive before sendto returns
                t_send = time.monotonic()
                recs.append([t_send, None, None, None, i % nports, t_send - due, None])
                sent_rt.append(time.time())
                try:
                    s.sendto(base, (server, port))
                except OSError:
                    pass  # no route during a withdrawal: the query is simply lost
                pending[(s.fileno(), qid)] = i
                i += 1
                continue
            wait = due - now
        else:
            if end is None:
                end = now + timeout + 0.05
            wait = end - now
            if wait <= 0:
                break
        for fd, _ in ep.poll(max(wait, 0)):
            s = by_fd[fd]
            while True:
                try:
                    wire, anc, _, _ = s.recvmsg(4096, socket.CMSG_SPACE(16))
                except BlockingIOError:
                    break
                except OSError:
                    continue  # ICMP error reported on the socket: not an answer
                t = time.time()
                for level, kind, data in anc:
                    if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= 16:
                        sec, nsec = struct.unpack("qq", data[:16])
                        t = sec + nsec / 1e9
                if len(wire) < 12:
                    continue
                k = pending.pop((fd, int.from_bytes(wire[:2], "big")), None)
                if k is None:
                    continue
                a = answer_of(wire)
                if a is None:
                    continue
                rtt = t - sent_rt[k]
                if rtt <= timeout:
                    recs[k][1], recs[k][3], recs[k][2] = rtt, a[0], a[1]
                else:
                    recs[k][6], recs[k][2] = rtt, a[1]
    for s in socks:
        s.close()
    ep.close()
    return recs


def answered(r):
    return r[1] is not None and r[3] == dns.rcode.NOERROR


def summarize(recs, t_from=None, t_to=None, gap=0.2):
    """Counts over the queries sent in [t_from, t_to]: answered share per node, lost queries and
    the loss windows: lost queries grouped so that two losses less than `gap` seconds apart
    belong to one window (under ECMP the flows hashed to a dead node lose every query while the
    others keep answering, so a window is a span of time, not a run of consecutive losses)."""
    sel = [r for r in recs if (t_from is None or r[0] >= t_from) and (t_to is None or r[0] <= t_to)]
    n = len(sel)
    per = {}
    for r in sel:
        if answered(r):
            per[r[2] or "?"] = per.get(r[2] or "?", 0) + 1
    lost = [r[0] for r in sel if not answered(r)]
    windows = []
    for t in lost:
        if windows and t - windows[-1][1] < gap:
            windows[-1][1] = t
            windows[-1][2] += 1
        else:
            windows.append([t, t, 1])
    interval = (sel[-1][0] - sel[0][0]) / (n - 1) if n > 1 else 0.0
    longest = max(windows, key=lambda w: w[1] - w[0]) if windows else None
    rtts = sorted(r[1] for r in sel if answered(r))
    return {
        "sent": n,
        "answered": n - len(lost),
        "lost": len(lost),
        "rate": (n - 1) / (sel[-1][0] - sel[0][0]) if n > 1 and sel[-1][0] > sel[0][0] else 0.0,
        "share": {k: v / n for k, v in sorted(per.items())} if n else {},
        "by_node": dict(sorted(per.items())),
        # a window's length: first to last lost query, plus one send interval
        "loss_window_ms": ((longest[1] - longest[0]) + interval) * 1000 if longest else 0.0,
        "loss_window_start": longest[0] if longest else None,
        "loss_window_lost": longest[2] if longest else 0,
        "windows": len(windows),
        # lost queries whose reply did come, after the timeout (a slow machine, not a drop)
        "late": sum(1 for r in sel if not answered(r) and len(r) > 6 and r[6] is not None),
        # the prober's own longest delay in sending a query (it was not running)
        "send_late_max_ms": max((r[5] for r in sel if len(r) > 5), default=0.0) * 1000,
        "rtt_p50_ms": rtts[len(rtts) // 2] * 1000 if rtts else None,
        "rtt_max_ms": rtts[-1] * 1000 if rtts else None,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--server", required=True)
    ap.add_argument("--port", type=int, default=53)
    ap.add_argument("--rate", type=float, default=500.0, help="queries per second")
    ap.add_argument("--duration", type=float, default=10.0, help="seconds of sending (max 120)")
    ap.add_argument("--count", type=int, help="at most this many queries")
    ap.add_argument("--timeout", type=float, default=0.2, help="seconds a reply may take")
    ap.add_argument("--ports", type=int, default=512, help="source ports to spread over")
    ap.add_argument("--qname", default="www.example.com.")
    ap.add_argument("--qtype", default="A")
    ap.add_argument("--out", help="write every query's record here (JSON)")
    ap.add_argument("--rd", action="store_true", help="set RD (querying a resolver)")
    a = ap.parse_args()
    global RD
    RD = a.rd
    if not 0 < a.duration <= 120 or not 0 < a.rate <= 20000:
        sys.exit("duration must be in (0, 120] s and rate in (0, 20000] q/s")
    recs = probe(a.server, a.port, a.rate, a.duration, a.timeout, a.qname, a.qtype, a.ports, a.count)
    if a.out:
        with open(a.out + ".tmp", "w") as f:
            json.dump({"server": a.server, "rate": a.rate, "timeout": a.timeout, "queries": recs}, f)
        os.replace(a.out + ".tmp", a.out)
    s = summarize(recs)
    print(json.dumps(s), flush=True)


if __name__ == "__main__":
    main()
