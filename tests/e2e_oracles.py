"""rampart against the majority of two reference servers, NSD and Knot DNS, serving the same
zones (issue 3: "rampart must agree with the majority on rcode, flags and the answer, authority
and additional sections").

Corpus: the one e2e_answers builds from tests/fixtures/zones (every owner and ENT with its types
and A/AAAA/MX/TXT/CNAME/NS/DS/ANY, missing names below the apex, below every name and ENT, below
wildcards, cuts and DNAMEs, one name out of zone), each lowercase and 0x20-mixed case, without
EDNS / EDNS / EDNS+DO, over IPv4 and IPv6, UDP and TCP. The zones: example.com with its child
child.example.com (parent and child on one server), example.net, sem.example (wildcards at three
depths, CNAME chains and loops, DNAMEs, ENTs, glue in and out of the zone, RRsets that truncate)
and the pre-signed zones of zones/signed (NSEC, NSEC3, NSEC3 opt-out), linked in and served
as-is (Knot with dnssec-signing: off). Every query goes to rampart (the node, port 53: XDP or slow path),
to NSD (RP_ORACLE4/6) and to Knot (RP_KNOT4/6).

Comparison classes, each judged on its own:
  rcode; flags AA, TC, RD, CD, AD; edns (OPT present, DO bit, the option codes);
  answer, authority, additional: sets of (lowercased owner, type, TTL, lowercased rdata), OPT not
  included.
Per class and query:
  - NSD == Knot: rampart must equal them ("agree"), else it is a difference;
  - NSD != Knot and rampart equals one of them: rampart is the majority of three, counted apart
    ("oracle split") and summarised per (class, which oracle rampart sided with, query shape);
  - all three differ: a difference (no majority).
A difference is a failure unless it falls in one of the IGNORED classes below (each with the reason
it is policy, not an error); the summary line counts both. Oracle splits are labelled with the
KNOWN_SPLITS policy difference they come from ("unexplained" if none: look at it).

Sensitivity, checked by hand: with the node serving a copy of the fixtures where one TTL and one
address differ, the affected (name, type) checks fail with all three answers printed
(2026-11-28: host.t.sem.example's TTL changed → host.t A, host.dn A (via the DNAME), c-dname A
(CNAME then DNAME) and host.t ANY fail, nothing else).
"""

import collections
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dns.flags  # noqa: E402
import dns.message  # noqa: E402
import dns.rcode  # noqa: E402
import dns.rdatatype  # noqa: E402

import e2e_answers  # noqa: E402  (corpus, query construction, transport)
import rplab  # noqa: E402

SEED = int(os.environ.get("RP_SEED", "20240101"))
FLAGS = (("aa", dns.flags.AA), ("tc", dns.flags.TC), ("rd", dns.flags.RD),
         ("cd", dns.flags.CD), ("ad", dns.flags.AD))
SECTIONS = ("answer", "authority", "additional")
CLASSES = ("rcode",) + tuple(f for f, _ in FLAGS) + ("edns",) + SECTIONS

# Difference classes that are not failures: name → (reason, predicate(cls, q, r, n, k)), where
# q = (qname, qtype, edns, transport), r/n/k = rampart's, NSD's and Knot's full class dicts (see
# classes()). Only what was observed in this lab and is understood belongs here: one class,
# ANY, where RFC 8482 leaves the choice of RRset to each server and all three choose differently
# at a zone apex over UDP. Elsewhere rampart equals NSD and Knot wherever those two agree
# (2026-11-28: 38,208 queries, 0 other differences), and the other NSD/Knot disagreements are
# the oracle splits below, where rampart is the majority of three. Not seen, hence not ignored: NSID or other
# EDNS options (neither oracle is configured for NSID; EDE 20 on REFUSED comes from both and from
# rampart), advertised UDP payload (1232 everywhere), negative-answer SOA TTL (all three use
# min(SOA TTL, MINIMUM)).
IGNORED = {   # (uses ORIGINS, set by run())
    "any-rrset-choice": (
        "ANY (RFC 8482 4.1: the responder picks one RRset, or a subset, as it likes). At an apex "
        "over UDP all three differ by policy: rampart sends the SOA (NSD's choice over TCP), NSD "
        "runs with refuse-any: yes and sends an empty TC=1 reply over UDP to a client without a "
        "cookie (RFC 8482 4.4), Knot sends the RRset with the lowest type code (the A). Only "
        "there, and only while rampart's answer is one RRset (with its RRSIGs under DO)",
        lambda cls, q, r, n, k: (q[1] == "ANY" and cls == "answer" and q[3] == "udp"
                                 and q[0] in ORIGINS and len({t for _, t, _, _ in r["answer"] if t != "RRSIG"}) == 1)),
}


ORIGINS = set()   # the fixture zones' origins, lowercase text with the final dot (set by run())


def _zone_of(name):
    return max((o for o in ORIGINS if name == o or name.endswith("." + o)), key=len, default=None)


def _below(name, ancestor):
    return name != ancestor and name.endswith("." + ancestor)


def _cname_leaves_zone(q, n):
    """NSD's answer to q holds a CNAME whose target is in another of the zones served."""
    return any(t == "CNAME" and _zone_of(rd) not in (None, _zone_of(owner))
               for owner, t, _, rd in n["answer"])


# NSD and Knot differ by policy here; the split is counted, summarised and not a failure either
# way (rampart is then the majority of three with whichever it equals). Name → (reason,
# predicate(cls, q, n, k)); a split that matches none is printed as "unexplained".
KNOWN_SPLITS = {
    "knot-additional-for-targets": (
        "Knot 3.2 has no minimal-responses switch and adds the in-zone addresses of an MX "
        "answer's targets to the additional section (observed: mail.example.com A for example.com "
        "MX); NSD runs with minimal-responses: yes (extra data only where necessary). Additional "
        "data is optional (RFC 1034 4.3.2 step 6: 'attempt to add other RRs which may be useful')",
        lambda cls, q, n, k: cls == "additional" and n["additional"] < k["additional"]),
    "nsd-follows-cname-into-other-zone": (
        "NSD follows a CNAME into another zone it is authoritative for (answer: CNAME + target "
        "RRset; NODATA at the target: that zone's SOA in authority), as RFC 1034 4.3.2 step 3a "
        "(restart with the canonical name over all zones held) describes; Knot stops at the zone "
        "boundary and answers with the CNAME only (the resolver restarts at the target anyway)",
        lambda cls, q, n, k: cls in ("rcode", "answer", "authority") and _cname_leaves_zone(q, n)),
    "knot-rrsig-query-one-rrsig": (
        "Knot 3.2 answers a query for type RRSIG with the signatures of one RRset only (a minimal "
        "answer, like ANY under RFC 8482); NSD answers with every RRSIG at the name (RFC 4035 "
        "leaves RRSIG queries unspecified; a validator never asks for them). Without EDNS NSD's "
        "full set can exceed 512 bytes and truncate, Knot's single one does not",
        lambda cls, q, n, k: cls in ("answer", "tc") and q[1] == "RRSIG"),
    "any-one-rrset-by-policy": (
        "ANY (RFC 8482): NSD (refuse-any: yes) answers it over UDP with an empty TC=1 reply "
        "(AA clear) and over TCP with one RRset of its choosing (the SOA at an apex, else the "
        "first in the file); Knot answers with the RRset of the lowest type code (over UDP and "
        "TCP). rampart answers one RRset: the SOA at an apex, elsewhere the lowest type code, so "
        "it sides with one or the other",
        lambda cls, q, n, k: q[1] == "ANY" and cls in ("aa", "tc", "answer", "authority",
                                                       "additional")),
    "dname-below-itself": (
        "A DNAME whose target lies below itself (dn-grow DNAME more.dn-grow): each substitution "
        "lands under the DNAME again and the name only grows. NSD stops after the first "
        "synthesized CNAME; Knot follows five more, as BIND follows it to its restart limit, and "
        "so does rampart (answer::MAX_DNAME_REGROWTH). RFC 6672 sets no limit; the resolver "
        "restarts from the last CNAME either way",
        lambda cls, q, n, k: cls == "answer" and any(
            t == "DNAME" and _below(rd, owner) for owner, t, _, rd in n["answer"])),
    "nsd-wildcard-owner-nodata-proof": (
        "A DO query for the wildcard owner name itself (*.wild) with a type it lacks: Knot "
        "answers it as the ordinary NODATA it is (RFC 5155 7.2.3: the NSEC3 matching QNAME); NSD "
        "adds the wildcard NODATA proof of 7.2.5 (the closest encloser's NSEC3 too). Both "
        "validate",
        lambda cls, q, n, k: (cls == "authority" and q[0].startswith("*.") and q[2] == "do"
                              and n["authority"] > k["authority"])),
}


def rrset_tuples(section):
    out = set()
    for rrset in section:
        for rd in rrset:
            out.add((rrset.name.to_text().lower(), dns.rdatatype.to_text(rrset.rdtype),
                     rrset.ttl, rd.to_text().lower()))
    return frozenset(out)


def classes(wire):
    """Class name → comparable value for one reply. Raises on a reply that doesn't parse."""
    m = dns.message.from_wire(wire)
    v = {"rcode": dns.rcode.to_text(m.rcode())}
    for name, bit in FLAGS:
        v[name] = bool(m.flags & bit)
    if m.edns >= 0:
        v["edns"] = ("opt", f"v{m.edns}", f"udp{m.payload}", "do" if m.ednsflags & dns.flags.DO else "-",
                     tuple(sorted(int(o.otype) for o in m.options)))
    else:
        v["edns"] = ("no-opt",)
    v["answer"] = rrset_tuples(m.answer)
    v["authority"] = rrset_tuples(m.authority)
    v["additional"] = rrset_tuples(m.additional)
    return v


def show(v):
    return sorted(v) if isinstance(v, frozenset) else v


def shape(q, n):
    """The query, for the oracle-split summary (variants of case, EDNS, family and transport are
    counted together)."""
    qname, qtype, _edns, _tr = q
    return f"{qname} {qtype} (nsd {n['rcode']})"


def split_reason(cls, q, n, k):
    return next((name for name, (_, pred) in KNOWN_SPLITS.items() if pred(cls, q, n, k)),
                "unexplained")


def judge(q, r, n, k, stats, problems, tag):
    for cls in CLASSES:
        rv, nv, kv = r[cls], n[cls], k[cls]
        if nv == kv:
            if rv == nv:
                stats["agree"] += 1
                continue
        elif rv == nv or rv == kv:
            side = "nsd" if rv == nv else "knot"
            stats["split"] += 1
            stats["split_classes"][(cls, side, shape(q, n), split_reason(cls, q, n, k))] += 1
            if len(stats["split_examples"][(cls, side)]) < 2:
                stats["split_examples"][(cls, side)].append(
                    f"{q[0]} {q[1]} {tag}: rampart=={side}: {show(rv)}; other: {show(kv if side == 'nsd' else nv)}")
            continue
        why = next((name for name, (_, pred) in IGNORED.items() if pred(cls, q, r, n, k)), None)
        if why is not None:
            stats["ignored"][why] += 1
            continue
        stats["differ"] += 1
        problems.append(f"{tag}: {cls}: rampart {show(rv)} | nsd {show(nv)} | knot {show(kv)}")


def compare(c, lab, base, stats):
    rng = random.Random(SEED)
    knot = {4: rplab.env("RP_KNOT4"), 6: rplab.env("RP_KNOT6")}
    for qname, qtype, _kind in base:
        problems = []
        for case in ("lower", "mixed"):
            name = qname if case == "lower" else e2e_answers.mix_case(qname, rng)
            for edns in e2e_answers.EDNS_VARIANTS:
                for fam in (4, 6):
                    for tr in ("udp", "tcp"):
                        tag = f"{case}/{edns}/v{fam}/{tr}"
                        wire = e2e_answers.make_query(name, qtype, edns, rng.randrange(1, 65536))
                        raw = {"rampart": e2e_answers.ask(wire, lab.node(fam), 53, tr),
                               "nsd": e2e_answers.ask(wire, lab.oracle(fam), 53, tr),
                               "knot": e2e_answers.ask(wire, knot[fam], 53, tr)}
                        parsed = {}
                        for who, w in raw.items():
                            if w is None:
                                problems.append(f"{tag}: no reply from {who}")
                                continue
                            try:
                                parsed[who] = classes(w)
                            except Exception as e:  # noqa: BLE001
                                problems.append(f"{tag}: {who}'s reply does not parse: {e}: {w.hex()}")
                        if len(parsed) < 3:
                            continue
                        stats["queries"] += 1
                        judge((qname, qtype, edns, tr), parsed["rampart"], parsed["nsd"],
                              parsed["knot"], stats, problems, tag)
        c.check(f"{qname} {qtype}: rampart agrees with the NSD/Knot majority", not problems,
                "\n     ".join(problems[:8]) +
                (f"\n     ... {len(problems) - 8} more" if len(problems) > 8 else ""))


def run():
    lab = rplab.Lab()
    c = rplab.Checks("e2e_oracles")
    zones = e2e_answers.load_zones(lab.zone_dir)
    ORIGINS.update(o.to_text().lower() for o in zones)
    c.check("zones found", bool(zones), f"no *.zone in {lab.zone_dir}")
    base = e2e_answers.corpus(zones)
    print(f"e2e_oracles: {len(base)} (name, type) pairs × 24 variants × 3 servers, seed {SEED}", flush=True)
    stats = {"queries": 0, "agree": 0, "split": 0, "differ": 0,
             "ignored": collections.Counter(), "split_classes": collections.Counter(),
             "split_examples": collections.defaultdict(list)}
    compare(c, lab, base, stats)
    if stats["split_classes"]:
        print("e2e_oracles: NSD and Knot disagree, rampart sides with one of them (majority of three):",
              flush=True)
        for (cls, side, shp, why), n in sorted(stats["split_classes"].items()):
            print(f"  {cls:10s} rampart=={side:4s} {n:3d}/24 variants: {shp} [{why}]", flush=True)
        for name, (reason, _) in KNOWN_SPLITS.items():
            print(f"  [{name}]: {reason}", flush=True)
        for (cls, side), ex in sorted(stats["split_examples"].items()):
            for e in ex:
                print(f"  e.g. {cls}: {e}", flush=True)
    for name, (reason, _) in IGNORED.items():
        print(f"e2e_oracles: ignored class {name} ({stats['ignored'][name]}×): {reason}", flush=True)
    ign = sum(stats["ignored"].values())
    print(f"e2e_oracles: {stats['queries']} queries compared × {len(CLASSES)} classes: "
          f"{stats['agree']} agree with NSD and Knot, {stats['split']} oracle splits (rampart with one), "
          f"{stats['differ']} differences, {ign} ignored in {len(IGNORED)} ignored classes", flush=True)
    unexplained = sorted({f"{cls} {shp}" for (cls, _side, shp, why) in stats["split_classes"]
                          if why == "unexplained"})
    c.check("every oracle split is a known NSD/Knot policy difference", not unexplained,
            "\n     ".join(unexplained[:20]))
    c.check("every query compared", stats["queries"] == len(base) * 24,
            f"{stats['queries']} of {len(base) * 24} queries got three parsable replies")
    return c


if __name__ == "__main__":
    rplab.main_for(run)
