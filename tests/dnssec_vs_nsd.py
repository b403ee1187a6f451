#!/usr/bin/python3
"""DNSSEC answers (issue 3) from rampart's slow path against NSD 4.6, on the pre-signed zones of
zones/signed. No lab needed: both run on 127.0.0.1 (ports below), each with its own temp dir and
pidfile, and are stopped by the pids this script started.

    cargo build -p rampart && tests/dnssec_vs_nsd.py [path/to/rampart]

Every query goes with DO and without (EDNS 1232, RD clear) over UDP. Compared: rcode, AA, AD
(must be clear) and the answer, authority and additional sections as sets of records (lowercased
owner, TTL, type, RDATA in presentation form: signatures, NSEC/NSEC3 bitmaps and hashes, keys,
addresses, exactly). A difference listed in KNOWN (with why rampart is right) must be exactly the
one listed, record for record: a known difference that changes or disappears fails too (the list
is stale). Exit status 1 on any failure.
"""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rdatatype

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ZONES = os.path.join(ROOT, "zones", "signed")
NSD_PORT, RAMPART_PORT = 5399, 5398

NAMES = [("", "SOA"), ("", "NS"), ("", "ANY"), ("", "DNSKEY"), ("", "NSEC3PARAM"), ("", "RRSIG"),
         ("www", "A"), ("www", "MX"), ("www", "ANY"), ("www", "RRSIG"), ("www", "NSEC"),
         ("alias", "A"), ("alias", "MX"), ("ns", "A"), ("0", "A"), ("nope", "A"),
         ("deep.nope", "A"), ("nope", "DS"), ("zzz", "A"), ("b", "A"), ("b", "DS"), ("a.b", "A"),
         ("a.b", "TXT"), ("x.a.b", "A"), ("wild", "A"), ("*.wild", "A"), ("foo.wild", "A"),
         ("foo.wild", "MX"), ("bar.foo.wild", "A"), ("sub", "A"), ("sub", "NS"), ("sub", "DS"),
         ("www.sub", "A"), ("ns.sub", "A"), ("insecure", "A"), ("insecure", "DS"),
         ("x.insecure", "A"), ("ns.insecure", "A"), ("insecure2", "A"), ("insecure2", "DS"),
         ("old", "DNAME"), ("old", "A"), ("x.old", "A"), ("www.old", "A"), ("www.old", "MX"),
         ("new", "A"), ("a.cw", "A"), ("a.cw", "CNAME"), ("b.a.cw", "MX"), ("alias-nx", "A"),
         ("alias-x", "A"), ("alias-x", "MX"), ("y.b", "A"), ("foo.new", "A"), ("www.new", "A"),
         ("y.nope", "TXT"), ("x.www", "A"), ("*.cw", "A"), ("cw", "TXT"), ("x.ns.sub", "A"),
         ("insecure2", "NS"), ("www.insecure2", "A")]
EXTRA = [("2chh0lmaivastrsmdki2unl9e99c461e.nsec3.example.", "A"),
         ("2chh0lmaivastrsmdki2unl9e99c461e.nsec3.example.", "NSEC3"),
         ("x.2chh0lmaivastrsmdki2unl9e99c461e.nsec3.example.", "A")]

# (qname, qtype, DO) → (why rampart differs from NSD 4.6.1 and is right, the difference: class →
# records only NSD sent ("-") and only rampart sent ("+"), as diff() prints them).
KNOWN = {
    ("x.old.nsec2.example.", "A", True): (
        "DNAME to a missing name in an NSEC zone: NSD sends only the NSEC covering the wildcard "
        "*.new; rampart also the NSEC covering the target x.new itself (RFC 4035 §3.1.3.2 asks "
        "for both). For the NSEC3 zone both send the full proof.",
        {"authority": sorted([
            '+ www.new.nsec2.example. 300 NSEC ns.nsec2.example. A RRSIG NSEC',
            '+ www.new.nsec2.example. 300 RRSIG NSEC 15 4 300 20360101000000 20260101000000 33167 '
            'nsec2.example. pCl6DLW7fmF9oCTUU1J6LwuXw0OxgRjA u2BZ5JqT4AeEvHsbYJ8f5qwhQN2Sk37o BXkjHUggrqN+7YMiy+qbDg==',
        ])}),
    ("x.2chh0lmaivastrsmdki2unl9e99c461e.nsec3.example.", "A", True): (
        "Below an NSEC3 owner name: NSD keeps NSEC3 owners in its name tree and sends one NSEC3; "
        "rampart treats them as nonexistent (RFC 5155 §7.2.8), so the closest encloser is the "
        "apex and the proof is the full RFC 5155 §7.2.2 one.",
        {"authority": sorted([
            '+ 2chh0lmaivastrsmdki2unl9e99c461e.nsec3.example. 300 NSEC3 1 0 0 abcd '
            '9dhl1to250lup0m32eftslauepdf48qr A NS SOA RRSIG DNSKEY NSEC3PARAM',
            '+ 2chh0lmaivastrsmdki2unl9e99c461e.nsec3.example. 300 RRSIG NSEC3 15 3 300 20360101000000 '
            '20260101000000 61099 nsec3.example. hbvLLO7BwZlWBbZWgxrwsn7JDXCJmidX IAKkIFOo6dozwAWGDAv7EbhsQxH9iTGA SfEDNurDhpI8M46u1g4NAQ==',
            '+ ebms0iqsbqmudtfedi8pvs0eki6mjc7f.nsec3.example. 300 NSEC3 1 0 0 abcd '
            'em37fse2r8na0bl51skqv9u3eees3q4p CNAME RRSIG',
            '+ ebms0iqsbqmudtfedi8pvs0eki6mjc7f.nsec3.example. 300 RRSIG NSEC3 15 3 300 20360101000000 '
            '20260101000000 61099 nsec3.example. iyNG4F2JXQh703us+dghU7hjX6xi0xhz KCdsSsCFwUre8nF0xbq4G04k/gTLVNg2 vLuD0WSyBDVeeQb0KuD5Ag==',
            '+ ulsboeuqnq2mu573ba7ijqjctessct80.nsec3.example. 300 NSEC3 1 0 0 abcd '
            '15na20j18vgjfsr39vnkmvbghjv1inrd',
            '+ ulsboeuqnq2mu573ba7ijqjctessct80.nsec3.example. 300 RRSIG NSEC3 15 3 300 20360101000000 '
            '20260101000000 61099 nsec3.example. Oe7aJRRZg6Mb/uQ/K5+JXPPJ/i1nO322 Jfooj6ofpvwPKM/MpO2j+FAKk0wpsLFl IvgGJ4iwaqhPq+IGVEw9CQ==',
            '- l8pj9jvnkf3hu0ibcuhlrqn9ljuj6rl2.nsec3.example. 300 NSEC3 1 0 0 abcd '
            'sauc3753qfi66332k2dq545r13djha7p NS DS RRSIG',
            '- l8pj9jvnkf3hu0ibcuhlrqn9ljuj6rl2.nsec3.example. 300 RRSIG NSEC3 15 3 300 20360101000000 '
            '20260101000000 61099 nsec3.example. 5/RnpRLwGM027mrdVO6oyZkXE7OcV8zA sMby36AYDz13aG9/hN6ZmbnQQ89ebAuz ++qqEYkcbY2RZBufi38BAA==',
        ])}),
}


def zones():
    return sorted(f[:-len(".zone")] + "." for f in os.listdir(ZONES) if f.endswith(".zone"))


def queries():
    out = []
    for z in zones():
        out += [((n + "." if n else "") + z, t) for n, t in NAMES]
    return out + EXTRA


def start_nsd(tmp, port=NSD_PORT, extra=""):
    """NSD on 127.0.0.1@port serving zones/signed from tmp; `extra`: more `server:` lines."""
    conf = os.path.join(tmp, "nsd.conf")
    with open(conf, "w") as f:
        f.write(f"""server:
  ip-address: 127.0.0.1@{port}
  pidfile: {tmp}/nsd.pid
  zonesdir: {ZONES}
  database: ""
  xfrdfile: {tmp}/xfrd.state
  zonelistfile: {tmp}/zone.list
  username: ""
  chroot: ""
  logfile: {tmp}/nsd.log
  rrl-ratelimit: 0
  rrl-whitelist-ratelimit: 0
  minimal-responses: yes
{extra}remote-control:
  control-enable: no
""")
        for z in zones():
            f.write(f"zone:\n  name: {z}\n  zonefile: {z}zone\n")
    subprocess.run(["nsd", "-c", conf], check=True)
    for _ in range(50):
        if os.path.exists(f"{tmp}/nsd.pid"):
            with open(f"{tmp}/nsd.pid") as f:
                text = f.read().strip()
            if text:
                return int(text)
        time.sleep(0.1)
    sys.exit("nsd did not start")


def start_rampart(binary, tmp, port, args=(), env=None):
    """rampart's slow path on 127.0.0.1:port serving zones/signed, logging to tmp/rampart.log."""
    log = open(os.path.join(tmp, "rampart.log"), "w")
    rampart = subprocess.Popen([binary, "run", "--zone-dir", ZONES, "--listen",
                                f"127.0.0.1:{port}", "--pin-dir", f"{tmp}/pin",
                                "--control-socket", f"{tmp}/control-{port}.sock", *args],
                               stdout=log, stderr=subprocess.STDOUT, env=env)
    time.sleep(1.5)
    return rampart


def stop(rampart, nsd_pid, tmp):
    """Stops what start_rampart and start_nsd started, removes tmp (unless RP_KEEP_TMP)."""
    rampart.send_signal(signal.SIGTERM)
    rampart.wait(timeout=10)
    os.kill(nsd_pid, signal.SIGTERM)
    time.sleep(0.3)
    if not os.environ.get("RP_KEEP_TMP"):
        shutil.rmtree(tmp, ignore_errors=True)


def ask(port, name, qtype, do):
    q = dns.message.make_query(name, qtype, use_edns=0, payload=1232, want_dnssec=do)
    q.flags &= ~dns.flags.RD
    for _ in range(3):
        try:
            return dns.query.udp(q, "127.0.0.1", port=port, timeout=2)
        except dns.exception.Timeout:
            continue
    raise RuntimeError(f"no answer from port {port} for {name} {qtype}")


def shape(r):
    def section(sec):
        return {f"{rrset.name.to_text().lower()} {rrset.ttl} {dns.rdatatype.to_text(rrset.rdtype)} "
                f"{rd.to_text()}" for rrset in sec for rd in rrset}
    return {"rcode": r.rcode(), "aa": bool(r.flags & dns.flags.AA),
            "ad": bool(r.flags & dns.flags.AD), "answer": section(r.answer),
            "authority": section(r.authority), "additional": section(r.additional)}


def diff(n, r):
    """class → sorted ["- record NSD only", "+ record rampart only"] (or ["- nsd value",
    "+ rampart value"]) for every class that differs; "ad" when rampart sets AD."""
    out = {}
    for k in n:
        if n[k] == r[k]:
            continue
        if isinstance(n[k], set):
            out[k] = sorted([f"- {x}" for x in n[k] - r[k]] + [f"+ {x}" for x in r[k] - n[k]])
        else:
            out[k] = [f"- {n[k]}", f"+ {r[k]}"]
    if r["ad"]:
        out["ad set"] = ["+ AD"]
    return out


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target/debug/rampart")
    tmp = tempfile.mkdtemp(prefix="dnssec-vs-nsd-")
    nsd_pid = start_nsd(tmp)
    rampart = start_rampart(binary, tmp, RAMPART_PORT)
    try:
        failed = known = total = 0
        for name, qtype in queries():
            for do in (True, False):
                total += 1
                n, r = shape(ask(NSD_PORT, name, qtype, do)), shape(ask(RAMPART_PORT, name, qtype, do))
                d = diff(n, r)
                why, listed = KNOWN.get((name, qtype, do), (None, None))
                if not d and listed is None:
                    continue
                if d == listed:
                    print(f"KNOWN {name} {qtype} do={do}: {', '.join(d)} ({why})")
                    known += 1
                    continue
                what = "DIFF" if listed is None else "KNOWN DIFFERENCE CHANGED" if d else "KNOWN DIFFERENCE GONE"
                print(f"{what} {name} {qtype} do={do}: {', '.join(d) or 'identical now'}")
                for k, lines in d.items():
                    print(f"    {k}:")
                    print("".join(f"      {x}\n" for x in lines), end="")
                if listed is not None:
                    print(f"    listed: {listed}")
                failed += 1
        print(f"{total} queries: {total - failed - known} identical, {known} known, {failed} failed")
        return 1 if failed else 0
    finally:
        stop(rampart, nsd_pid, tmp)


if __name__ == "__main__":
    sys.exit(main())
