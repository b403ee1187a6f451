"""Malformed and unusual input from the client namespace to the node.

DNS-level cases go out on an ordinary UDP socket; IP/UDP-level ones (bad UDP length, IPv4
options, fragments, IPv6 extension headers, source port 0) are built with scapy and sent on the
client veth. For every case:
  - every reply that comes back parses as a DNS message, has QR=1 and the query's ID, echoes the
    question byte for byte when it carries one, and is never NOERROR-with-answers;
  - the fast path answered none of the invalid ones (no tx_* counter moved during the case);
  - a reply to a response (QR=1) is never sent (reflection loops);
  - then a canary, a normal query from the same family, is answered (NOERROR with the address):
    a node that went silent (crashed, wedged, or dropping everything) fails every case after it.
TCP cases (RFC 7766 framing): a length prefix longer than what follows, a zero length, a
truncated header, garbage framed and unframed, a 65,535-byte message; every reply that comes back
must be framed right and well-formed, the connection must end (the client closes its side), and
a canary over TCP and over UDP must be answered after each.
Cases the kernel accepts as valid IP (options, fragments, extension headers) must still get a
correct answer, from whichever path. Afterwards the node is alive and normal queries are answered
by the fast path (tx_answer grows).
"""

import json
import os
import socket
import struct
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dns.message  # noqa: E402
import dns.rcode  # noqa: E402

import rplab  # noqa: E402

QNAME = "www.example.com."


def name_wire(name):
    out = b""
    for label in name.rstrip(".").split("."):
        out += bytes([len(label)]) + label.encode()
    return out + b"\0"


def header(qid, flags=0, qd=1, an=0, ns=0, ar=0):
    return struct.pack("!HHHHHH", qid, flags, qd, an, ns, ar)


def question(name=QNAME, qtype=1, qclass=1):
    return name_wire(name) + struct.pack("!HH", qtype, qclass)


def opt(version=0, flags=0, payload=1232, rdata=b""):
    return b"\0" + struct.pack("!HHBBHH", 41, payload, 0, version, flags, len(rdata)) + rdata


def query(qid=0x1234, **kw):
    return header(qid, **kw) + question()


# (name, payload, policy). INVALID: no NOERROR-with-answers, and the fast path must not answer.
# NOT_FAST: valid DNS the fast path must leave to the slow path (class ANY/CH): any well-formed
# reply. LENIENT: servers differ (NSD answers a query with trailing bytes as if they weren't
# there, and FORMERRs a query with RCODE != 0): the fast path may answer; when both the node and
# the oracle answer NOERROR with records, the records must be equal.
INVALID, NOT_FAST, LENIENT = "invalid", "not-fast", "lenient"
def dns_cases():
    q = question()
    long_name = ".".join(["a" * 63] * 5) + "."        # 320 bytes of wire: > 255
    return [
        ("empty payload", b"", INVALID),
        ("1-byte header", b"\x12", INVALID),
        ("2-byte header", b"\x12\x34", INVALID),
        ("11-byte header", header(0x1234)[:11], INVALID),
        ("header only, QDCOUNT=1", header(0x1234), INVALID),
        ("label length overruns packet", header(0x1235) + b"\x3fwww", INVALID),
        ("name without root label", header(0x1236) + b"\x03www\x07example\x03com", INVALID),
        ("question missing type/class", header(0x1237) + name_wire(QNAME), INVALID),
        ("compression pointer to itself in question", header(0x1238) + b"\xc0\x0c" + b"\0\1\0\1", INVALID),
        ("compression pointer to header", header(0x1239) + b"\x03www\xc0\x00" + b"\0\1\0\1", INVALID),
        ("forward compression pointer", header(0x123a) + b"\x03www\xc0\x14" + b"\0\1\0\1" + b"\x07example\x03com\0", INVALID),
        ("QR=1 (a response)", query(0x123b, flags=0x8000), INVALID),
        ("QDCOUNT=2", header(0x123c, qd=2) + q + question("mail.example.com."), INVALID),
        ("QDCOUNT=2 with one question", header(0x123d, qd=2) + q, INVALID),
        ("QDCOUNT=0", header(0x123e, qd=0), INVALID),
        ("QDCOUNT=0 with a question", header(0x123f, qd=0) + q, INVALID),
        ("name > 255 bytes", header(0x1240) + name_wire(long_name) + b"\0\1\0\1", INVALID),
        ("label length 64 (0x40 type)", header(0x1241) + b"\x40" + b"a" * 64 + b"\0\0\1\0\1", INVALID),
        ("label length 0x7f", header(0x1242) + b"\x7f" + b"a" * 127 + b"\0\0\1\0\1", INVALID),
        ("opcode STATUS (2)", query(0x1243, flags=2 << 11), INVALID),
        ("opcode NOTIFY (4)", query(0x1244, flags=4 << 11), INVALID),
        ("opcode UPDATE (5)", query(0x1245, flags=5 << 11), INVALID),
        ("opcode 15", query(0x1246, flags=15 << 11), INVALID),
        ("class CH", header(0x1247) + question(qclass=3), NOT_FAST),
        ("class CH version.bind TXT", header(0x1248) + question("version.bind.", 16, 3), NOT_FAST),
        ("class ANY", header(0x1249) + question(qclass=255), NOT_FAST),
        ("trailing garbage", query(0x124a) + b"\xde\xad\xbe\xef\x00", LENIENT),
        ("truncated OPT (ARCOUNT=1, 3 bytes)", header(0x124b, ar=1) + q + b"\0\0\x29", INVALID),
        ("truncated OPT rdata", header(0x124c, ar=1) + q + opt(rdata=b"")[:-2] + b"\0\x08\0\x03", INVALID),
        ("OPT version 1", header(0x124d, ar=1) + q + opt(version=1), INVALID),
        ("two OPT records", header(0x124e, ar=2) + q + opt() + opt(), INVALID),
        ("OPT with non-root owner", header(0x124f, ar=1) + q + b"\x01a" + opt(), INVALID),
        ("ANCOUNT=1, no answer", header(0x1250, an=1) + q, INVALID),
        ("ANCOUNT=1 with an answer RR", header(0x1251, an=1) + q + b"\xc0\x0c\0\1\0\1\0\0\0\x3c\0\4\xc0\0\2\1", INVALID),
        ("NSCOUNT=1, no record", header(0x1252, ns=1) + q, INVALID),
        ("ARCOUNT=1, no record", header(0x1253, ar=1) + q, INVALID),
        ("qtype 0", header(0x1254) + question(qtype=0), INVALID),
        ("qtype AXFR over UDP", header(0x1255) + question("example.com.", 252), INVALID),
        ("RCODE set in query", query(0x1256, flags=0x0005), LENIENT),
    ]


def check_replies(c, name, wire, replies, qr_query, allow_answers=False):
    qid = wire[:2] if len(wire) >= 2 else None
    qlen = rplab.question_len(wire) if len(wire) > 12 else None
    for r in replies:
        if r == b"ICMP-REFUSED":
            c.check(f"{name}: no ICMP port unreachable", False, "the node has no listener on 53?")
            continue
        problems = []
        if qr_query:
            problems.append("replied to a response (QR=1)")
        if len(r) < 12:
            problems.append(f"reply shorter than a header: {r.hex()}")
        else:
            flags = struct.unpack("!H", r[2:4])[0]
            qd, an = struct.unpack("!HH", r[4:8])
            if qid is not None and r[:2] != qid:
                problems.append(f"ID {r[:2].hex()} != query's {qid.hex()}")
            if not flags & 0x8000:
                problems.append("QR=0 in a reply")
            if (flags & 0xF) == 0 and an > 0 and not allow_answers:
                problems.append(f"NOERROR with {an} answers for invalid input")
            if qd == 1 and qlen and r[12:12 + qlen] != wire[12:12 + qlen]:
                problems.append(f"question not echoed: sent {wire[12:12+qlen].hex()} got {r[12:12+qlen].hex()}")
            bad = rplab.wire_check(r)
            if bad:
                problems.append(f"malformed reply: {bad}: {r.hex()}")
        c.check(f"{name}: reply well-formed", not problems, "; ".join(problems))


def fast_untouched(c, name, lab, before):
    after = lab.stats()
    if before is None:
        return
    d = rplab.delta(before, after)
    tx = {k: d[k] for k in rplab.FAST_TX if d.get(k)}
    c.check(f"{name}: fast path did not answer", not tx, f"counters moved: {tx}")


CANARY_ID = [0x5000]


def canary(c, label, lab, fam, tcp=False):
    """A normal query (www.example.com A) after a bad case: it must be answered."""
    CANARY_ID[0] = (CANARY_ID[0] + 1) & 0xFFFF
    wire = query(CANARY_ID[0])
    via = "tcp" if tcp else "udp"
    r = (rplab.tcp_raw if tcp else rplab.udp_raw)(wire, lab.node(fam), 53)
    ok = False
    if r:
        try:
            m = dns.message.from_wire(r)
            ok = m.id == CANARY_ID[0] and m.rcode() == 0 and len(m.answer) > 0
        except Exception:  # noqa: BLE001
            pass
    c.check(f"{label}: canary over {via} answered after it", ok, f"reply {r.hex() if r else None}")


def run_dns_cases(c, lab):
    seen = {}
    for fam in (4, 6):
        for name, wire, policy in dns_cases():
            label = f"v{fam} {name}"
            before = lab.stats()
            replies = rplab.udp_collect(wire, lab.node(fam), 53, wait=0.25)
            seen[label] = replies
            check_replies(c, label, wire, replies, qr_query=(len(wire) >= 4 and wire[2] & 0x80),
                          allow_answers=(policy != INVALID))
            if policy != LENIENT:
                fast_untouched(c, label, lab, before)
                canary(c, label, lab, fam)
            else:
                oracle = rplab.udp_collect(wire, lab.oracle(fam), 53, wait=0.25)
                o_ans = [o for o in oracle if len(o) >= 12 and (o[3] & 0xF) == 0 and o[6:8] != b"\0\0"]
                for r in replies:
                    if o_ans and len(r) >= 12 and (r[3] & 0xF) == 0 and r[6:8] != b"\0\0":
                        same = rplab.summary(r)["answer"] == rplab.summary(o_ans[0])["answer"]
                        c.check(f"{label}: answer equals the oracle's", same,
                                f"node {r.hex()} oracle {[o.hex() for o in oracle]}")
                canary(c, label, lab, fam)
    summary = {k: (dns.rcode.to_text(v[0][3] & 0xF) if v and len(v[0]) >= 12 else "no reply")
               for k, v in seen.items()}
    print("e2e_badpackets: replies: " + json.dumps(summary), flush=True)


# ---- IP/UDP level, with scapy ----------------------------------------------------------------

def link_mac(ns, dev):
    out = subprocess.run(["ip", "-n", ns, "-j", "link", "show", dev], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)[0]["address"]


def run_ip_cases(c, lab):
    import logging
    logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
    from scapy.all import IP, IPv6, UDP, Ether, IPOption, IPv6ExtHdrHopByHop, IPv6ExtHdrDestOpt, Raw, fragment, fragment6, IPv6ExtHdrFragment, sendp, conf  # noqa: E501
    conf.verb = 0
    cmac = link_mac(lab.ns_client, lab.client_if)
    nmac = link_mac(lab.ns_node, lab.node_if)
    client4, client6 = os.environ["RP_CLIENT4"], os.environ["RP_CLIENT6"]
    eth = Ether(src=cmac, dst=nmac)

    def v4(sport, **kw):
        return eth / IP(src=client4, dst=lab.node4, **kw)

    def v6(sport):
        return eth / IPv6(src=client6, dst=lab.node6)

    big_q = header(0x2000, ar=1) + question("www.example.com.", 16) + opt() + b""  # TXT www
    cases = []  # (name, family, sport, frames, payload, invalid, must_answer)
    sp = 40000
    # UDP length larger than the datagram (the kernel drops it)
    cases.append(("UDP length > datagram", 4, sp, [v4(sp) / UDP(sport=sp, dport=53, len=8 + 60) / Raw(query(0x2001))],
                  query(0x2001), True, False))
    sp += 1
    # UDP length shorter than the payload: only the first 8+20 bytes are the datagram
    cases.append(("UDP length < payload", 4, sp, [v4(sp) / UDP(sport=sp, dport=53, len=8 + 20) / Raw(query(0x2002))],
                  query(0x2002), True, False))
    sp += 1
    cases.append(("UDP length < 8", 4, sp, [v4(sp) / UDP(sport=sp, dport=53, len=4) / Raw(query(0x2003))],
                  query(0x2003), True, False))
    sp += 1
    cases.append(("IPv6 UDP length > datagram", 6, sp, [v6(sp) / UDP(sport=sp, dport=53, len=8 + 60) / Raw(query(0x2004))],
                  query(0x2004), True, False))
    sp += 1
    # valid IP the fast path may pass: the kernel delivers it, so someone must answer it right
    cases.append(("IPv4 options (NOP x4)", 4, sp,
                  [v4(sp, options=[IPOption(b"\x01\x01\x01\x01")]) / UDP(sport=sp, dport=53) / Raw(query(0x2005))],
                  query(0x2005), False, True))
    sp += 1
    frags = fragment(v4(sp)[IP] / UDP(sport=sp, dport=53) / Raw(big_q), fragsize=24)
    cases.append(("IPv4 fragments", 4, sp, [eth / f for f in frags], big_q, False, True))
    sp += 1
    pkt6 = IPv6(src=client6, dst=lab.node6) / IPv6ExtHdrFragment() / UDP(sport=sp, dport=53) / Raw(big_q)
    cases.append(("IPv6 fragments", 6, sp, [eth / f for f in fragment6(pkt6, 80)], big_q, False, True))
    sp += 1
    cases.append(("IPv6 hop-by-hop header", 6, sp,
                  [eth / IPv6(src=client6, dst=lab.node6) / IPv6ExtHdrHopByHop() / UDP(sport=sp, dport=53) / Raw(query(0x2008))],
                  query(0x2008), False, True))
    sp += 1
    cases.append(("IPv6 destination options header", 6, sp,
                  [eth / IPv6(src=client6, dst=lab.node6) / IPv6ExtHdrDestOpt() / UDP(sport=sp, dport=53) / Raw(query(0x2009))],
                  query(0x2009), False, True))
    sp += 1
    cases.append(("IPv4 source port 0", 4, 0, [v4(0) / UDP(sport=0, dport=53) / Raw(query(0x200a))],
                  query(0x200a), True, False))
    cases.append(("IPv6 source port 0", 6, 0, [v6(0) / UDP(sport=0, dport=53) / Raw(query(0x200b))],
                  query(0x200b), True, False))
    cases.append(("IPv4 bad UDP checksum", 4, sp, [v4(sp) / UDP(sport=sp, dport=53, chksum=0x1234) / Raw(query(0x200c))],
                  query(0x200c), True, False))
    sp += 1

    for name, fam, sport, frames, wire, invalid, must_answer in cases:
        s = None
        if sport:
            s = socket.socket(socket.AF_INET if fam == 4 else socket.AF_INET6, socket.SOCK_DGRAM)
            s.bind((client4 if fam == 4 else client6, sport))
            s.settimeout(0.3)
        before = lab.stats()
        sendp(frames, iface=lab.client_if)
        replies = []
        if s:
            try:
                while True:
                    replies.append(s.recv(65535))
            except socket.timeout:
                pass
            s.close()
        check_replies(c, name, wire, replies, qr_query=False, allow_answers=must_answer)
        if invalid:
            fast_untouched(c, name, lab, before)
        canary(c, name, lab, fam)
        if must_answer:
            ok = False
            for r in replies:
                try:
                    m = dns.message.from_wire(r)
                    ok = m.rcode() == 0 and len(m.answer) > 0
                except Exception:  # noqa: BLE001
                    pass
            c.check(f"{name}: answered (valid IP the kernel accepts)", ok, f"replies: {[r.hex() for r in replies]}")


# ---- TCP (RFC 7766 framing) ------------------------------------------------------------------

def tcp_cases():
    """(name, bytes sent on one connection before the client closes its side, the DNS message
    inside when the framing is right)."""
    q = query(0x4001)
    garbage = bytes((i * 73 + 41) & 0xFF for i in range(200))
    big = query(0x4006, ar=0) + b"\0" * (65535 - len(query(0x4006)))
    return [
        ("length prefix longer than the message", struct.pack("!H", 300) + q, None),
        ("zero length prefix", b"\0\0", b""),
        ("truncated header", struct.pack("!H", 10) + q[:10], q[:10]),
        ("truncated question", struct.pack("!H", len(q) - 3) + q[:-3], q[:-3]),
        ("garbage, framed", struct.pack("!H", len(garbage)) + garbage, garbage),
        ("garbage, unframed (HTTP)", b"GET / HTTP/1.1\r\nHost: node\r\n\r\n", None),
        ("odd single byte", b"\x01", None),
        ("65,535-byte message (a query and zero padding)", struct.pack("!H", len(big)) + big, big),
    ]


def tcp_exchange(addr, data, timeout=5.0):
    """Sends `data`, closes the sending side, reads until the node closes: (bytes read, closed)."""
    fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    got, closed = b"", False
    try:
        s.settimeout(timeout)
        s.connect((addr, 53))
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        while True:
            chunk = s.recv(65535)
            if not chunk:
                closed = True
                break
            got += chunk
    except socket.timeout:
        pass
    except ConnectionResetError:
        closed = True
    finally:
        s.close()
    return got, closed


def run_tcp_cases(c, lab):
    for fam in (4, 6):
        for name, data, message in tcp_cases():
            label = f"v{fam} tcp {name}"
            got, closed = tcp_exchange(lab.node(fam), data)
            c.check(f"{label}: connection ends", closed, f"still open after 5 s, {len(got)} bytes read")
            replies = []
            while len(got) >= 2:
                n = struct.unpack("!H", got[:2])[0]
                if len(got) < 2 + n:
                    break
                replies.append(got[2:2 + n])
                got = got[2 + n:]
            c.check(f"{label}: replies framed right", not got, f"{len(got)} bytes left over: {got[:40].hex()}")
            check_replies(c, label, message if message is not None else b"", replies, qr_query=False,
                          allow_answers=message is not None and message.startswith(query(0x4006)[:12]))
            canary(c, label, lab, fam, tcp=True)
            canary(c, label, lab, fam)


def after_all(c, lab):
    c.check("node process still running", lab.alive(), "rampart (or the node's NSD) exited")
    before = lab.stats()
    wire = query(0x3000)
    ok = 0
    for i in range(20):
        w = struct.pack("!H", 0x3000 + i) + wire[2:]
        r = rplab.udp_raw(w, lab.node4, 53)
        if r:
            m = dns.message.from_wire(r)
            ok += m.rcode() == 0 and len(m.answer) > 0
    c.check("normal queries answered after the bad ones", ok == 20, f"{ok}/20 answered")
    if before is None:
        c.skip("fast path still answering", "node is not rampart")
        return
    d = rplab.delta(before, lab.stats())
    c.check("fast path still answering", d.get("tx_answer", 0) >= 20, f"deltas {d}")


def run():
    lab = rplab.Lab()
    c = rplab.Checks("e2e_badpackets")
    c.run("dns-level cases", run_dns_cases, c, lab)
    c.run("ip-level cases", run_ip_cases, c, lab)
    c.run("tcp cases", run_tcp_cases, c, lab)
    c.run("after the bad packets", after_all, c, lab)
    return c


if __name__ == "__main__":
    rplab.main_for(run)
