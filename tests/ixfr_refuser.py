"""A primary that answers IXFR with an error and AXFR with the whole zone, for e2e_secondary.

No server installed here can be configured to answer IXFR with an error while it serves AXFR
(Knot and NSD 4.6 answer an IXFR they have no history for with the whole zone; BIND's
`provide-ixfr no` does the same), so this minimal dnspython one stands in for that one case.

Usage: ixfr_refuser.py ADDR PORT ZONEFILE RCODEFILE LOG
  ZONEFILE   the zone, read again for every query (the test rewrites it)
  RCODEFILE  the RCODE IXFR gets (NOTIMP, REFUSED, FORMERR...), read again for every query
  LOG        one line per query: transport, qtype, rcode answered
Serves UDP (SOA) and TCP (SOA, IXFR, AXFR) on ADDR:PORT until killed."""

import socket
import socketserver
import struct
import sys
import threading

import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import dns.zone

ADDR, PORT, ZONEFILE, RCODEFILE, LOG = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
lock = threading.Lock()


def log(line):
    with lock, open(LOG, "a") as f:
        f.write(line + "\n")


def answer(wire, transport):
    q = dns.message.from_wire(wire)
    r = dns.message.make_response(q)
    qtype = q.question[0].rdtype
    zone = dns.zone.from_file(ZONEFILE, relativize=False)
    soa = zone.find_rrset(zone.origin, dns.rdatatype.SOA)
    if qtype == dns.rdatatype.IXFR:
        with open(RCODEFILE) as f:
            r.set_rcode(dns.rcode.from_text(f.read().strip()))
    elif qtype == dns.rdatatype.SOA:
        r.answer.append(soa)
    elif qtype == dns.rdatatype.AXFR and transport == "tcp":
        r.answer.append(soa)
        for name, node in zone.nodes.items():
            for rds in node.rdatasets:
                if rds.rdtype != dns.rdatatype.SOA:
                    r.answer.append(dns.rrset.from_rdata_list(name, rds.ttl, rds))
        r.answer.append(soa)
    else:
        r.set_rcode(dns.rcode.REFUSED)
    log(f"{transport} {dns.rdatatype.to_text(qtype)} {dns.rcode.to_text(r.rcode())}")
    return r.to_wire(max_size=65535)


class Tcp(socketserver.BaseRequestHandler):
    def handle(self):
        s = self.request
        while True:
            head = s.recv(2, socket.MSG_WAITALL)
            if len(head) < 2:
                return
            wire = s.recv(struct.unpack("!H", head)[0], socket.MSG_WAITALL)
            out = answer(wire, "tcp")
            s.sendall(struct.pack("!H", len(out)) + out)


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


def udp():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((ADDR, PORT))
    while True:
        wire, peer = s.recvfrom(4096)
        s.sendto(answer(wire, "udp"), peer)


if __name__ == "__main__":
    threading.Thread(target=udp, daemon=True).start()
    Server((ADDR, PORT), Tcp).serve_forever()
