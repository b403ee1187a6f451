"""rampart (XDP native on the node veth + slow path) against NSD serving the same zones.

Corpus, from the zone files: every owner name and empty non-terminal × (its own types + A, AAAA,
MX, TXT, CNAME, NS, DS, ANY), plus missing names (below the apex and every name, below wildcards,
cuts and DNAMEs, out of zone); each
lowercase and 0x20-mixed case, without EDNS / EDNS / EDNS+DO, over IPv4 and IPv6, UDP and TCP.

Checks:
  - per (name, type): rcode, AA, TC, OPT presence, answer set (name, type, ttl, rdata), and for
    NXDOMAIN/NODATA the authority SOA, for referrals the authority NS, equal to NSD's, for every
    variant; every reply echoes the question byte for byte (the client's letter case).
    One deliberate difference: below a DNAME whose target lies below itself, NSD stops after the
    first synthesized CNAME and rampart follows as Knot does (e2e_oracles' "dname-below-itself"
    split judges it): there rampart's answer must hold NSD's and more CNAMEs only.
  - counters, measured on those queries alone: every UDP :53 query whose answer is precompilable
    (positive or NODATA, existing name, not truncated) moves tx_answer or tx_nodata (or, replies
    over veth's headroom longer than the query, pass_rewrite_failed) — the fast path answered.
  - fast vs slow: the same raw UDP query to :53 (XDP) and to the slow-path port (XDP passes any
    port but 53) gets byte-identical replies after the ID; the slow run moves no tx_* counter.
    That is every UDP query of the corpus (each one once more, over IPv4): the fast/slow
    invariant of docs/ARCHITECTURE.md §1 over the whole corpus.
  - XDP outcomes: positive, CNAME (chain), signed (DO), NXDOMAIN (also after a CNAME),
    referral (at a cut and below one, signed with DO too) and ENT NODATA answers each move their
    own tx_* counter by one on :53 and none on the slow-path port; every tx_* counter moved
    during the corpus run.
  - below cuts: names 1, 2 and 3 labels below every cut (not a zone we also serve), every
    variant, leave XDP as the cut's referral with the slow path's bytes: pass_miss moves by
    exactly the listed exceptions, tx_referral by the rest (less DO referrals that outgrow veth's
    headroom: pass_rewrite_failed), and by at least every one without DO.
"""

import glob
import itertools
import json
import os
import subprocess
import random
import time
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import dns.edns  # noqa: E402
import dns.message  # noqa: E402
import dns.name  # noqa: E402
import dns.rdatatype  # noqa: E402
import dns.zone  # noqa: E402

import rplab  # noqa: E402

EXTRA_TYPES = ("A", "AAAA", "MX", "TXT", "CNAME", "NS", "DS", "ANY")
EDNS_VARIANTS = ("noedns", "edns", "do")
SEED = int(os.environ.get("RP_SEED", "20240101"))
# RP_DIAG=1: read the counters around every UDP :53 query to the node and print which XDP
# outcome each precompilable query got (slow: ~20 ms per query)
DIAG = os.environ.get("RP_DIAG") == "1"


def load_zones(zone_dir):
    zones = {}
    for path in sorted(glob.glob(os.path.join(zone_dir, "*.zone"))):
        origin = os.path.basename(path)[: -len(".zone")] + "."
        zones[dns.name.from_text(origin)] = dns.zone.from_file(path, origin, relativize=False)
    return zones


def _zone_names(origin, z):
    """(owners, ENTs, cuts, wildcards, DNAME owners) of one zone. NSEC3 owners (hashed names
    holding only NSEC3 and its RRSIG) are not names of the zone's tree: left out."""
    nsec3_only = {dns.rdatatype.NSEC3, dns.rdatatype.RRSIG}
    owners = {n for n, node in z.nodes.items()
              if not {rds.rdtype for rds in node} <= nsec3_only or n == origin}
    cuts = {n for n in owners if n != origin and z.get_rdataset(n, "NS") is not None}
    dnames = {n for n in owners if z.get_rdataset(n, "DNAME") is not None}
    wilds = {n for n in owners if n.labels[0] == b"*"}
    ents = set()
    for n in owners:
        p = n.parent()
        while p != origin and p.is_subdomain(origin):
            if p not in owners:
                ents.add(p)
            p = p.parent()
    return owners, ents, cuts, wilds, dnames


def corpus(zones):
    """[(qname text lowercase, qtype text, kind)] — kind: 'exists' for names the zone holds
    (owner or ENT, not at or under a cut, a DNAME or a wildcard), 'below_cut' for missing names
    below a cut (not a zone we serve too: a referral), else 'other'.

    Per zone: every owner and ENT × (its own types + EXTRA_TYPES; DS at a cut is answered by
    the parent side); names that don't exist: below the apex, below an existing name, below an
    ENT (the closest encloser then has no wildcard: NXDOMAIN); names below each wildcard one and
    two labels deep (synthesis), below each cut (referral) and below each DNAME (substitution);
    plus one name outside every zone (REFUSED)."""
    base = []
    seen = set()

    def add(name, t, kind):
        key = (name.to_text().lower(), t)
        if key not in seen:
            seen.add(key)
            base.append(key + (kind,))

    for origin, z in zones.items():
        owners, ents, cuts, wilds, dnames = _zone_names(origin, z)
        for n in sorted(owners | ents):
            below = any(n != c and n.is_subdomain(c) for c in cuts | dnames)
            kind = "other" if (below or n in cuts or n in dnames or n.labels[0] == b"*") else "exists"
            types = set(EXTRA_TYPES)
            if n in owners:
                types |= {dns.rdatatype.to_text(rds.rdtype) for rds in z.nodes[n]}
            if n in cuts:
                types.add("DS")   # answered by the parent side of the cut (NODATA), not a referral
            for t in sorted(types):
                add(n, t, kind)
        missing = [dns.name.from_text("nonexistent", origin), dns.name.from_text("deeper.nx.nothere", origin)]
        for n in sorted(owners | ents):
            if n == origin or n.labels[0] == b"*":
                continue
            missing.append(dns.name.from_text("nx", n))          # below a name or ENT
        for w in sorted(wilds):
            missing += [dns.name.from_text("q", w.parent()), dns.name.from_text("a.b", w.parent())]
        for d in sorted(dnames):
            missing += [dns.name.from_text("host", d), dns.name.from_text("a.b", d)]
        for n in missing:
            for t in ("A", "AAAA", "TXT"):
                add(n, t, "other")
        for d in sorted(cuts):
            for n in (dns.name.from_text("host", d), dns.name.from_text("a.b", d)):
                for t in ("A", "AAAA", "TXT"):
                    add(n, t, "other" if d in zones else "below_cut")
    for t in ("A", "SOA"):
        add(dns.name.from_text("www.example.org."), t, "other")   # not ours: REFUSED from both
    return base


def mix_case(name, rng):
    out = "".join(c.upper() if c.isalpha() and rng.random() < 0.5 else c for c in name)
    if out == name and any(c.isalpha() for c in name):  # make sure at least one letter flips
        i = next(i for i, c in enumerate(name) if c.isalpha())
        out = name[:i] + name[i].upper() + name[i + 1:]
    return out


def make_query(qname, qtype, edns, qid, options=()):
    if edns == "noedns":
        q = dns.message.make_query(qname, qtype, use_edns=False)
    else:
        q = dns.message.make_query(qname, qtype, use_edns=0, payload=1232, want_dnssec=(edns == "do"),
                                   options=list(options))
    q.flags = 0  # RD=0: an authoritative server's client
    q.id = qid
    return q.to_wire()


def ask(wire, addr, port, transport):
    # Three tries: on this loaded 2-CPU machine a single-worker oracle (Knot) now and then misses
    # a datagram for over a second; a server that never answers still fails.
    if transport == "udp":
        return rplab.udp_raw(wire, addr, port, tries=3)
    return rplab.tcp_raw(wire, addr, port)


def dname_regrows(answer):
    """The answer holds a DNAME whose target is below its own owner (answer as rplab.summary
    gives it: (owner, type, ttl, rdata), lowercase text)."""
    return any(t == "DNAME" and rd != owner and rd.endswith("." + owner) for owner, t, _, rd in answer)


# Bytes a veth frame can grow at its head (README, "Resizing"): a fast-path answer at most this
# much longer than its query always leaves from XDP.
VETH_HEADROOM = 216


def compare(c, lab, base):
    rng = random.Random(SEED)
    below_cut = 0           # UDP :53 queries below a cut that NSD answers with a referral
    udp_queries = []        # (raw UDP wire sent to :53, category), for fast_vs_slow
    for qname, qtype, kind in base:
        problems = []
        for case in ("lower", "mixed"):
            name = qname if case == "lower" else mix_case(qname, rng)
            for edns in EDNS_VARIANTS:
                for fam in (4, 6):
                    for tr in ("udp", "tcp"):
                        tag = f"{case}/{edns}/v{fam}/{tr}"
                        wire = make_query(name, qtype, edns, rng.randrange(1, 65536))
                        want_raw = ask(wire, lab.oracle(fam), 53, tr)
                        diag0 = lab.stats() if DIAG and tr == "udp" else None
                        got_raw = ask(wire, lab.node(fam), 53, tr)
                        if diag0 is not None:
                            moved = [k for k, v in rplab.delta(diag0, lab.stats()).items()
                                     if v and k != "packets"]
                            print(f"DIAG {kind:6s} {name} {qtype} {tag}: {','.join(moved) or '-'}"
                                  f" reply {len(got_raw or b'')} B query {len(wire)} B", flush=True)
                        if want_raw is None:
                            problems.append(f"{tag}: oracle (NSD) did not answer")
                            continue
                        if got_raw is None:
                            problems.append(f"{tag}: no reply from the node")
                            continue
                        want = rplab.summary(want_raw)
                        try:
                            got = rplab.summary(got_raw)
                        except Exception as e:
                            problems.append(f"{tag}: reply does not parse: {e}: {got_raw.hex()}")
                            continue
                        ql = rplab.question_len(wire)
                        if got_raw[12:12 + ql] != wire[12:12 + ql]:
                            problems.append(f"{tag}: question not echoed byte for byte: "
                                            f"sent {wire[12:12+ql]!r} got {got_raw[12:12+ql]!r}")
                        keys = ["rcode", "aa", "tc", "opt", "qr"]
                        if qtype == "ANY":
                            # RFC 8482: which RRset answers ANY is each server's choice, and
                            # NSD (refuse-any) sends UDP clients an empty TC=1 reply; the
                            # three-way comparison in e2e_oracles judges ANY.
                            keys = ["rcode", "opt", "qr"]
                        elif not want["tc"]:
                            keys += ["answer"]
                            if want["rcode"] == "NXDOMAIN" or (want["rcode"] == "NOERROR" and not want["answer"]):
                                keys += ["auth_soa"]
                            if want["rcode"] == "NOERROR" and not want["answer"] and not want["aa"]:
                                keys += ["auth_ns"]  # referral
                        if "answer" in keys and dname_regrows(want["answer"]):
                            keys.remove("answer")
                            extra = got["answer"] - want["answer"]
                            if not want["answer"] <= got["answer"] or any(t != "CNAME" for _, t, _, _ in extra):
                                problems.append(f"{tag}: answer below a DNAME into itself: rampart "
                                                f"{sorted(got['answer'])} does not extend nsd {sorted(want['answer'])}")
                        for k in keys:
                            if got[k] != want[k]:
                                problems.append(f"{tag}: {k}: rampart {sorted(got[k]) if isinstance(got[k], set) else got[k]}"
                                                f" != nsd {sorted(want[k]) if isinstance(want[k], set) else want[k]}")
                        if tr == "udp":
                            # "fast": what the maps must answer (an existing name, answered
                            # NOERROR in full: positive or NODATA)
                            fast = (kind == "exists" and want["rcode"] == "NOERROR" and want["aa"]
                                    and not want["tc"])
                            # a reply that outgrows the query by more than veth's headroom may
                            # go up as pass_rewrite_failed (README, "Resizing")
                            big = len(got_raw) - len(wire) > VETH_HEADROOM
                            udp_queries.append((wire, ("fast-big" if big else "fast") if fast else kind))
                            if (kind == "below_cut" and want["rcode"] == "NOERROR"
                                    and not want["aa"] and not want["answer"]):
                                below_cut += 1
        c.check(f"{qname} {qtype}", not problems, "\n     ".join(problems[:8]) +
                (f"\n     ... {len(problems) - 8} more" if len(problems) > 8 else ""))
    print(f"e2e_answers: {below_cut} UDP :53 corpus queries below a cut, referrals", flush=True)
    return udp_queries


def fast_vs_slow(c, lab, udp_queries):
    """Same raw query, XDP (:53) vs slow path (:slow_port): replies equal after the ID. The :53
    queries go one category after the other, with the counters read between them: every "fast"
    query (an existing name NSD answers NOERROR, untruncated) must move tx_answer or tx_nodata,
    counted on that category alone, so answers to other categories can't stand in for it; a
    "fast-big" one (reply more than VETH_HEADROOM bytes longer) moves one of them or
    pass_rewrite_failed."""
    before = lab.stats()
    diffs, missing = [], 0
    slow = {}
    for wire, _ in udp_queries:
        slow[wire] = rplab.udp_raw(wire, lab.node4, lab.slow_port)
    mid = lab.stats()
    per_cat = {}
    for cat in sorted({cat for _, cat in udp_queries}):
        wires = [w for w, k in udp_queries if k == cat]
        cat_before = lab.stats()
        for wire in wires:
            f, s = rplab.udp_raw(wire, lab.node4, 53), slow[wire]
            if f is None or s is None:
                missing += 1
                continue
            if f[2:] != s[2:]:
                diffs.append(f"{dns.message.from_wire(wire).question[0]}: fast {f[2:].hex()} slow {s[2:].hex()}")
        if cat_before is not None:
            d = rplab.delta(cat_before, lab.stats())
            per_cat[cat] = (len(wires), {k: v for k, v in d.items() if v and k != "packets"})
    c.check("fast path and slow path replies are byte-identical after the ID", not diffs and not missing,
            f"{missing} unanswered; {len(diffs)} differ:\n     " + "\n     ".join(diffs[:5]))
    if before is None:
        c.skip("slow-path port moves no tx_* counter", "node is not rampart")
        c.skip("fast path answered every precompilable UDP query", "node is not rampart")
        return
    for cat, (n, d) in per_cat.items():
        print(f"e2e_answers: category {cat}: {n} UDP queries to :53, counter deltas {d}", flush=True)
    for cat, outcomes in (("fast", ("tx_answer", "tx_nodata")),
                          ("fast-big", ("tx_answer", "tx_nodata", "pass_rewrite_failed"))):
        n, d = per_cat.get(cat, (0, {}))
        grew = sum(d.get(k, 0) for k in outcomes)
        others = {k: v for k, v in d.items() if k not in outcomes and k != "rrl_whitelisted"}
        c.check(f"fast path answered every precompilable UDP query, {cat} (counted on those alone)",
                n > 0 and grew == n and not others,
                f"{n} queries: {' + '.join(outcomes)} grew by {grew}; deltas {d} (RP_DIAG=1 shows "
                f"each query's outcome)")
    d = rplab.delta(before, mid)
    tx = sum(d.get(k, 0) for k in rplab.FAST_TX)
    c.check("slow-path port moves no tx_* counter", tx == 0,
            f"tx_* grew by {tx} while only port {lab.slow_port} was queried: {d}")


# One query per kind of answer the XDP program must send itself (issue 3: "counters show
# NXDOMAIN, referral and CNAME answers leaving from XDP"): (qname, qtype, edns, the tx_* counter
# that must move by exactly one on :53, nothing else tx_* moving). Names below a cut get the
# cut's referral template, relocated to their length (userspace/src/compile.rs).
XDP_OUTCOMES = (
    ("www.example.com.", "A", "edns", "tx_answer"),
    ("ftp.example.com.", "A", "noedns", "tx_answer"),            # CNAME to an in-zone name
    ("c1.sem.example.", "AAAA", "edns", "tx_answer"),             # CNAME chain of three
    ("www.nsec.example.", "A", "do", "tx_answer"),                # signed positive, with RRSIGs
    ("nonexistent.example.com.", "A", "noedns", "tx_nxdomain"),
    ("deeper.nx.nothere.example.net.", "TXT", "edns", "tx_nxdomain"),
    ("c-ext-nx.sem.example.", "A", "edns", "tx_nxdomain"),        # CNAME to a missing name
    ("sub.example.com.", "A", "noedns", "tx_referral"),           # at a cut, glue
    ("deleg-far.sem.example.", "AAAA", "edns", "tx_referral"),    # at a cut, no glue
    ("host.sub.example.com.", "A", "noedns", "tx_referral"),      # below a cut, glue
    ("a.b.deleg-far.sem.example.", "TXT", "edns", "tx_referral"),  # two labels below
    ("x.sub.nsec.example.", "A", "do", "tx_referral"),            # DS + RRSIG
    ("x.y.z.insecure.nsec.example.", "A", "do", "tx_referral"),   # NSEC proof of no DS
    ("f.g.sem.example.", "A", "edns", "tx_nodata"),               # empty non-terminal
)


def xdp_outcomes(c, lab):
    """Each XDP_OUTCOMES query, over UDP to :53, moves its tx_* counter by one: the answer left
    from the driver; the same query to the slow-path port moves no tx_* counter."""
    rng = random.Random(SEED)
    for qname, qtype, edns, counter in XDP_OUTCOMES:
        wire = make_query(mix_case(qname, rng), qtype, edns, rng.randrange(1, 65536))
        before = lab.stats()
        fast = rplab.udp_raw(wire, lab.node4, 53)
        mid = lab.stats()
        slow = rplab.udp_raw(wire, lab.node4, lab.slow_port)
        after = lab.stats()
        d_fast = {k: v for k, v in rplab.delta(before, mid).items() if k in rplab.FAST_TX and v}
        d_slow = {k: v for k, v in rplab.delta(mid, after).items() if k in rplab.FAST_TX and v}
        c.check(f"XDP answers {qname} {qtype} ({edns}): {counter}",
                fast is not None and d_fast == {counter: 1} and not d_slow and fast[2:] == (slow or b"")[2:],
                f"tx deltas on :53 {d_fast}, on :{lab.slow_port} {d_slow}; "
                f"fast {fast.hex() if fast else None} slow {slow.hex() if slow else None}")


def answer_cookie(reply):
    """The COOKIE option's data in a reply, or None."""
    m = dns.message.from_wire(reply)
    return next((bytes(o.to_wire()) for o in m.options if o.otype == 10), None) if m.opt else None


def cookies_fast_vs_slow(c, lab):
    """DNS cookies: each EDNS XDP_OUTCOMES query with a client cookie, then with the server
    cookie it got back, leaves from XDP (tx_* and cookie_sent move on :53) carrying the client
    cookie and a fresh server cookie, byte-identical to the slow path's reply in the same second
    (both make RFC 9018 cookies with the node's secret); the learnt cookie is counted valid."""
    rng = random.Random(SEED + 1)
    client = bytes(rng.randrange(256) for _ in range(8))
    for qname, qtype, edns, counter in XDP_OUTCOMES:
        if edns == "noedns":
            continue
        cookie = client
        for step in ("client cookie", "learnt server cookie"):
            for _ in range(3):   # the two replies must come from one second; rarely they don't
                t0 = int(time.time())
                wire = make_query(qname, qtype, edns, rng.randrange(1, 65536),
                                  [dns.edns.GenericOption(10, cookie)])
                before = lab.stats()
                fast = rplab.udp_raw(wire, lab.node4, 53)
                mid = lab.stats()
                slow = rplab.udp_raw(wire, lab.node4, lab.slow_port)
                if int(time.time()) == t0:
                    break
            d = rplab.delta(before, mid)
            got = answer_cookie(fast) if fast else None
            want_event = "cookie_client_only" if step == "client cookie" else "cookie_valid"
            c.check(f"cookies: {qname} {qtype} ({edns}, {step}) from XDP, as the slow path sends it",
                    fast is not None and got is not None and len(got) == 24 and got[:8] == client
                    and d.get(counter, 0) == 1 and d.get("cookie_sent", 0) == 1 and d.get(want_event, 0) == 1
                    and fast[2:] == (slow or b"")[2:],
                    f"cookie {got.hex() if got else None}; deltas {({k: v for k, v in d.items() if v})}; "
                    f"fast {fast.hex() if fast else None} slow {slow.hex() if slow else None}")
            cookie = got or client


# Below-cut referrals the fast path leaves to the slow path, and why: (cut, variant or None for
# all) -> reason. Anything else below a cut must leave from XDP.
SLOW_BELOW_CUT = {
    ("deleg.sem.example.", None): "three NS, in-bailiwick and sibling glue: 9 compression "
                                  "pointers to relocate, more than MAX_RELOCS (8)",
    ("insecure2.optout.example.", "do"): "the opt-out proof is long: pointers past tail offset "
                                         "255, which the one-byte relocation offsets can't hold",
}


def cuts_below_which_we_refer(zones):
    """Every delegation of every zone, except the apexes of zones we serve too (names below
    those are the child zone's)."""
    out = []
    for origin, z in zones.items():
        _, _, cuts, _, _ = _zone_names(origin, z)
        out += sorted(cut for cut in cuts if cut not in zones)
    return out


def below_cut_referrals(c, lab, zones):
    """Names 1, 2 and 3 labels below each cut (the corpus's and one more), lowercase and mixed,
    A/AAAA/TXT, each variant: the referral leaves from XDP, byte for byte the slow path's, except
    the SLOW_BELOW_CUT cases, which go up as pass_miss."""
    rng = random.Random(SEED)
    queries = []   # (wire, label, expected fast, variant)
    for cut in cuts_below_which_we_refer(zones):
        for prefix in ("host", "a.b", "x-0123456789.yy.zzz"):
            lower = dns.name.from_text(prefix, cut).to_text()
            for name, qtype, edns in itertools.product(
                    (lower, mix_case(lower, rng)), ("A", "AAAA", "TXT"), EDNS_VARIANTS):
                slow = (cut.to_text(), None) in SLOW_BELOW_CUT or (cut.to_text(), edns) in SLOW_BELOW_CUT
                wire = make_query(name, qtype, edns, rng.randrange(1, 65536))
                queries.append((wire, f"{name} {qtype} {edns}", not slow, edns))
    before = lab.stats()
    diffs = []
    for wire, label, _, _ in queries:
        fast = rplab.udp_raw(wire, lab.node4, 53, tries=3)
        slow = rplab.udp_raw(wire, lab.node4, lab.slow_port, tries=3)
        if fast is None or slow is None or fast[2:] != slow[2:]:
            diffs.append(f"{label}: fast {fast.hex() if fast else None} slow {slow.hex() if slow else None}")
    d = rplab.delta(before, lab.stats())
    n_fast = sum(1 for q in queries if q[2])
    # DO referrals with their proof grow a small query's frame by ~180-220 bytes, more than veth
    # leaves at the head: those go up as pass_rewrite_failed (as in the corpus). Without DO the
    # referrals here are under 110 bytes of tail: all of them must leave from XDP.
    small = sum(1 for q in queries if q[2] and q[3] != "do")
    got = {k: d.get(k, 0) for k in list(rplab.FAST_TX) + ["pass_miss", "pass_rewrite_failed"]
           if d.get(k, 0)}
    tx, regrown = got.get("tx_referral", 0), got.get("pass_rewrite_failed", 0)
    print(f"e2e_answers: {len(queries)} below-cut queries: {n_fast} expected from XDP "
          f"({small} without DO); deltas {got}", flush=True)
    c.check("names below cuts get the cut's referral from XDP, with the slow path's bytes",
            n_fast > 0 and not diffs and tx + regrown == n_fast and tx >= small
            and got.get("pass_miss", 0) == len(queries) - n_fast
            and set(got) <= {"tx_referral", "pass_miss", "pass_rewrite_failed"},
            f"counter deltas {got}: want tx_referral + pass_rewrite_failed = {n_fast}, "
            f"tx_referral >= {small}, pass_miss = {len(queries) - n_fast}; "
            f"{len(diffs)} differ:\n     " + "\n     ".join(diffs[:5]))


def native_attached(c, lab):
    """The node's NIC runs rampart's program in driver (native) mode: `ip -j link` xdp.mode 1."""
    out = subprocess.run(["ip", "-n", lab.ns_node, "-d", "-j", "link", "show", lab.node_if],
                         check=True, capture_output=True, text=True).stdout
    xdp = json.loads(out)[0].get("xdp") or {}
    c.check("XDP program attached to the node NIC in native mode", xdp.get("mode") == 1,
            f"ip link xdp info: {xdp}")


def run():
    lab = rplab.Lab()
    c = rplab.Checks("e2e_answers")
    if lab.target == "rampart":
        c.run("native attach", native_attached, c, lab)
    zones = load_zones(lab.zone_dir)
    c.check("zones found", bool(zones), f"no *.zone in {lab.zone_dir}")
    base = corpus(zones)
    print(f"e2e_answers: {len(base)} (name, type) pairs × 24 variants, seed {SEED}", flush=True)
    before = lab.stats()
    udp_queries = compare(c, lab, base)
    after = lab.stats()
    if before is not None:
        d = rplab.delta(before, after)
        print(f"e2e_answers: counter deltas {d}", flush=True)
    c.run("fast vs slow", fast_vs_slow, c, lab, udp_queries)
    if before is None:
        c.skip("XDP answers each kind of name-determined answer", "node is not rampart")
    else:
        c.run("XDP outcomes", xdp_outcomes, c, lab)
        c.run("cookies fast vs slow", cookies_fast_vs_slow, c, lab)
        c.run("below cuts", below_cut_referrals, c, lab, zones)
        for k in rplab.FAST_TX:
            c.check(f"the corpus run moved {k}", d.get(k, 0) > 0, f"counter deltas {d}")
    return c


if __name__ == "__main__":
    rplab.main_for(run)
