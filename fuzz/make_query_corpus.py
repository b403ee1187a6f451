#!/usr/bin/env python3
"""Writes fuzz/corpus/query_pipeline: queries (dnspython) to the fixture zones, one per file."""
import os
import sys

import dns.edns
import dns.flags
import dns.message
import dns.opcode
import dns.rdataclass

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "query_pipeline")
NAMES = ["example.com", "WWW.Example.com", "x.wild.example.com", "host.sub.example.com",
         "nope.example.com", "alias.example.com", "www.child.example.com", "deep.a.b.example.net",
         "www.nsec.example", "nope.nsec.example", "nope.nsec3.example", "x.optout.example",
         "example.org", "."]
TYPES = ["A", "AAAA", "MX", "TXT", "NS", "SOA", "DS", "DNSKEY", "ANY", "CNAME", "TYPE65400"]
COOKIE = dns.edns.GenericOption(10, bytes(range(8)))
SERVER_COOKIE = dns.edns.GenericOption(10, bytes(range(8)) + bytes([1, 0, 0, 0]) + bytes(12))


def main():
    os.makedirs(OUT, exist_ok=True)
    n = 0

    def put(tag, wire):
        nonlocal n
        with open(os.path.join(OUT, f"{n:03d}-{tag}"), "wb") as f:
            f.write(wire)
        n += 1

    for i, name in enumerate(NAMES):
        for j, rtype in enumerate(TYPES):
            if (i + j) % 3:
                continue
            variant = (i * 7 + j) % 4
            q = dns.message.make_query(name, rtype, use_edns=variant > 0, want_dnssec=variant == 2,
                                       options=[COOKIE] if variant == 3 else [])
            q.id = i * 100 + j
            put(f"{name.strip('.') or 'root'}-{rtype}-{variant}", q.to_wire())
    extras = [
        ("chaos-id", dns.message.make_query("id.server", "TXT", rdclass=dns.rdataclass.CH)),
        ("axfr", dns.message.make_query("example.com", "AXFR")),
        ("nsid", dns.message.make_query("www.example.com", "A", use_edns=0,
                                        options=[dns.edns.GenericOption(3, b"")])),
        ("server-cookie", dns.message.make_query("www.example.com", "A", use_edns=0,
                                                 options=[SERVER_COOKIE])),
        ("edns1", dns.message.make_query("www.example.com", "A", use_edns=1)),
        ("bufsize-512", dns.message.make_query("big.example.com", "TXT", use_edns=0, payload=512)),
        ("bufsize-65535", dns.message.make_query("big.example.com", "TXT", use_edns=0,
                                                 payload=65535)),
    ]
    notify = dns.message.make_query("example.com", "SOA")
    notify.set_opcode(dns.opcode.NOTIFY)
    extras.append(("notify", notify))
    for tag, q in extras:
        put(tag, q.to_wire())
    base = dns.message.make_query("www.example.com", "A").to_wire()
    put("compressed-qname", base[:12] + b"\xc0\x0c\x00\x01\x00\x01")
    put("header-only", base[:12])
    put("qdcount-2", base[:5] + b"\x02" + base[6:])
    put("trailing", base + b"junk")
    print(f"{n} queries in {OUT}", file=sys.stderr)


main()
