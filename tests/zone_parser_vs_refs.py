"""rampart's zone parser against two reference parsers (issue 3, "Parser corpus"): Knot's
`kzonecheck` and NSD's `nsd-checkzone`, over the tricky master files of tests/fixtures/parser/
(each starts with a comment saying what it tries; the origin of every file is p.test.).

For every file: `rampart check p.test.=FILE`, `kzonecheck -o p.test. FILE` and
`nsd-checkzone p.test. FILE` (run from that directory, so relative $INCLUDEs resolve the same way
for all three), each an accept (exit 0) or reject verdict.
  - Both references agree: rampart must give the same verdict, unless the file is in
    RAMPART_DEVIATES (rampart stricter than both, each with its reason).
  - The references disagree: the file must be in REFS_DISAGREE with rampart's verdict and why;
    rampart must give that verdict. A listed file the references now agree on fails (stale list).
No lab needed. Closing line: `N files: A agree, L listed, F failed` (scripts/test counts A + L
as passed and F as failed). Usage: zone_parser_vs_refs.py [RAMPART_BINARY]
"""

import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "fixtures", "parser")
ORIGIN = "p.test."

# file → (rampart's verdict, why) where kzonecheck and nsd-checkzone (Knot/NSD 3.2.6/4.6.1)
# disagree. "reject" wherever the file's meaning is in doubt: a server must not guess.
REFS_DISAGREE = {
    "19-txt-too-long.zone": (
        "reject", "NSD rejects a 256-byte TXT string, Knot accepts it; a character-string holds "
        "at most 255 octets (RFC 1035 3.3) and splitting it silently changes the data"),
    "22-paren-unbalanced.zone": (
        "reject", "Knot rejects the unclosed '(' at end of file, NSD closes it silently; a "
        "truncated file must not load"),
    "25-crlf.zone": (
        "accept", "Knot refuses CR bytes ('unsupported CRLF newline'), NSD reads CRLF files; CR "
        "is plain whitespace to the RFC 1035 grammar and files edited on Windows are common"),
    "28-unknown-rdata-bad-length.zone": (
        "reject", "Knot rejects '\\# 4 0102' (length 4, 2 bytes of data), NSD accepts it; RFC "
        "3597 5 says the length must match the hex data"),
    "30-two-soa.zone": (
        "reject", "NSD rejects a second SOA at the apex, Knot accepts the zone; a zone has exactly "
        "one SOA (RFC 1035 5.2, RFC 2181 6.1)"),
    "31-soa-not-at-apex.zone": (
        "reject", "NSD rejects a SOA below the apex, Knot accepts; the SOA marks the top of the "
        "zone only (RFC 1035 5.2)"),
    "33-soa-serial-too-big.zone": (
        "reject", "Knot rejects serial 2^32, NSD accepts it (truncated); the serial is a 32-bit "
        "number (RFC 1035 3.3.13)"),
    "34-no-ns-at-apex.zone": (
        "reject", "kzonecheck's semantic check rejects a zone without apex NS, NSD accepts; RFC "
        "1035 5.2 asks for the NS RRs at the top of the zone, and an NS query would get NODATA"),
    "42-out-of-zone.zone": (
        "reject", "NSD rejects data outside the zone, Knot drops it with a warning; such a record "
        "is almost always a missing dot, and dropping it serves a different zone than written"),
    "43-ns-without-glue-inside.zone": (
        "accept", "kzonecheck's semantic check rejects an in-bailiwick NS without an address, NSD "
        "accepts (knotd itself loads it with its default semantic-checks: off); the zone is "
        "servable, resolvers just can't follow that one server. rampart warns (RFC 9471)"),
    "45-ns-at-apex-no-address.zone": (
        "accept", "as 43: kzonecheck rejects an apex NS target in zone without an address, NSD "
        "accepts; rampart warns"),
    "49-bad-mx-preference.zone": (
        "reject", "Knot rejects MX preference 70000, NSD accepts it (truncated to 16 bits); the "
        "field is 16 bits (RFC 1035 3.3.9)"),
}

# file → (rampart's verdict, why) where both references agree and rampart deliberately doesn't.
RAMPART_DEVIATES = {
    "15-escape-ddd-over-255.zone": (
        "reject", "both accept the escape \\256 (NSD warns 'text escape \\DDD overflow'); \\DDD "
        "names one octet (RFC 1035 5.1), and 256 is none: the bytes loaded would not be the "
        "ones written"),
    "69-include-outside.zone": (
        "reject", "both follow an $INCLUDE anywhere (here /dev/null, read as empty); rampart reads "
        "includes only from the zone file's directory and below, regular files only (issue 11: a "
        "zone file is untrusted input, and a path out of the directory can serve any file's "
        "lines)"),
}


def verdict(cmd):
    r = subprocess.run(cmd, cwd=CORPUS, capture_output=True, text=True, timeout=60)
    return ("accept" if r.returncode == 0 else "reject"), (r.stdout + r.stderr).strip()


def main(argv):
    binary = os.path.abspath(argv[1] if len(argv) > 1 else os.path.join(HERE, "..", "target", "release", "rampart"))
    files = sorted(f for f in os.listdir(CORPUS) if f.endswith(".zone"))
    agree = listed = failed = 0
    rows = []
    for f in files:
        r, r_out = verdict([binary, "check", f"{ORIGIN}={f}"])
        k, k_out = verdict(["kzonecheck", "-o", ORIGIN, f])
        n, n_out = verdict(["nsd-checkzone", ORIGIN, f])
        problem = None
        if "panicked" in r_out:
            problem = "rampart panicked: " + next(l for l in r_out.splitlines() if "panicked" in l)
        elif k == n:
            want, why = RAMPART_DEVIATES.get(f, (k, None))
            if f in REFS_DISAGREE:
                problem = "listed as a disagreement, but both references now say " + k
            elif r != want:
                problem = f"rampart {r}s, both references {k}" + (f" (listed: {want})" if why else "")
            elif why:
                listed += 1
                rows.append(f"  {f:34s} knot {k:6s} nsd {n:6s} rampart {r:6s} DEVIATES: {why}")
            else:
                agree += 1
        else:
            entry = REFS_DISAGREE.get(f)
            if entry is None:
                problem = f"references disagree (knot {k}, nsd {n}) and the file is not listed"
            elif r != entry[0]:
                problem = f"rampart {r}s, listed as {entry[0]}"
            else:
                listed += 1
                rows.append(f"  {f:34s} knot {k:6s} nsd {n:6s} rampart {r:6s} {entry[1]}")
        if problem:
            failed += 1
            print(f"FAIL parser {f}: {problem}\n     rampart: {r_out[-300:]}\n     knot: {k_out[-300:]}"
                  f"\n     nsd: {n_out[-300:]}", flush=True)
    print("parser corpus: files the references disagree on (or rampart deliberately deviates), "
          "with rampart's verdict:")
    print("\n".join(rows))
    missing = [f for f in list(REFS_DISAGREE) + list(RAMPART_DEVIATES) if f not in files]
    for f in missing:
        failed += 1
        print(f"FAIL parser {f}: listed but not in {CORPUS}")
    print(f"{len(files)} files: {agree} agree, {listed} listed, {failed} failed")
    return 1 if failed or not files else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
