#!/usr/bin/python3
"""DNS cookies (RFC 7873) of rampart's slow path against NSD 4.6, RFC 9018 interoperability. No
lab needed: both run on 127.0.0.1 with the same cookie secret and the zones of zones/signed (NSD
started by dnssec_vs_nsd.start_nsd, with answer-cookie on), each stopped by the pid this script
started.

    cargo build -p rampart && tests/cookies_vs_nsd.py [path/to/rampart]

Checked, over UDP and TCP:
- the same query with the same client cookie from the same address in the same second gets the
  same server cookie from both (version 1, reserved 0, timestamp, SipHash-2-4): byte for byte;
- NSD's server cookie sent to rampart is valid (rampart's debug log says so) and answered with a
  fresh cookie, again equal to NSD's own answer in the same second; a tampered one is invalid
  and answered the same way (NSD 4.6 and BIND's default: a normal answer, no BADCOOKIE);
- rampart's server cookie sent to NSD a few seconds later is valid there: NSD 4.6 echoes a valid
  cookie younger than 30 minutes unchanged (edns.c, COOKIE_VALID_REUSE) and makes a fresh one
  for an invalid cookie, so the old timestamp coming back is NSD's verdict;
- a COOKIE option of a bad length is FORMERR from both, without a cookie.
Closing line: `N checks: P passed, F failed`; exit status 1 on any failure.
"""

import os
import struct
import sys
import tempfile
import time

import dns.edns
import dns.exception
import dns.message
import dns.query
import dns.rcode

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dnssec_vs_nsd import ROOT, start_nsd, start_rampart, stop, zones  # noqa: E402

NSD_PORT, RAMPART_PORT = 5397, 5396
SECRET = "e5e973e5a6b2a43f48e7dc849e37bfcf"
COOKIE = 10

passed = failed = 0


def check(what, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print(f"ok   {what}")
    else:
        failed += 1
        print(f"FAIL {what} {detail}")


def ask(port, name, cookie, tcp=False):
    """The response to NAME SOA with a COOKIE option of these bytes (None: no option)."""
    options = [] if cookie is None else [dns.edns.GenericOption(COOKIE, cookie)]
    q = dns.message.make_query(name, "SOA", use_edns=0, payload=1232, options=options)
    for _ in range(3):
        try:
            if tcp:
                return dns.query.tcp(q, "127.0.0.1", port=port, timeout=2)
            return dns.query.udp(q, "127.0.0.1", port=port, timeout=2)
        except dns.exception.Timeout:
            continue
    raise RuntimeError(f"no answer from port {port}")


def cookie_of(r):
    """The response's COOKIE option data, or None."""
    found = [o for o in r.options if o.otype == COOKIE]
    return bytes(found[0].data) if found else None


def stamp(cookie):
    return struct.unpack("!I", cookie[12:16])[0]


def same_second(name, cookie, tcp, nsd_cookie=None):
    """rampart's answer to the query with `cookie` and NSD's to the one with `nsd_cookie`
    (default the same), retried until both fall within one second (their timestamps agree), at
    most 5 times."""
    nsd_cookie = cookie if nsd_cookie is None else nsd_cookie
    for _ in range(5):
        r, n = ask(RAMPART_PORT, name, cookie, tcp), ask(NSD_PORT, name, nsd_cookie, tcp)
        cr, cn = cookie_of(r), cookie_of(n)
        if cr is None or cn is None or stamp(cr) == stamp(cn):
            return r, n
    return r, n


def log_verdicts(path):
    with open(path) as f:
        return [line for line in f if "server cookie" in line]


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target/debug/rampart")
    tmp = tempfile.mkdtemp(prefix="cookies-vs-nsd-")
    # cookie-secret-file: a path that doesn't exist, so the configured secret is the one used
    # (NSD reads /etc/nsd/nsd_cookiesecrets.txt instead if that exists).
    nsd_pid = start_nsd(tmp, NSD_PORT, f"""  answer-cookie: yes
  cookie-secret: "{SECRET}"
  cookie-secret-file: "{tmp}/no-such-cookie-secrets"
""")
    log_path = os.path.join(tmp, "rampart.log")
    env = dict(os.environ, RUST_LOG="info,rampart::server=debug")
    rampart = start_rampart(binary, tmp, RAMPART_PORT, ["--cookie-secret", SECRET], env)
    try:
        name = zones()[0]
        client = bytes.fromhex("2464c4abcf10c957")
        for tcp in (False, True):
            via = "TCP" if tcp else "UDP"
            # A client cookie alone: the same fresh server cookie from both.
            r, n = same_second(name, client, tcp)
            cr, cn = cookie_of(r), cookie_of(n)
            check(f"{via}: both answer a client cookie with a cookie", cr is not None and cn is not None,
                  f"rampart {cr!r} nsd {cn!r}")
            if cr is None or cn is None:
                continue
            check(f"{via}: 24 bytes, the client cookie echoed",
                  len(cr) == len(cn) == 24 and cr[:8] == cn[:8] == client, f"{cr.hex()} {cn.hex()}")
            check(f"{via}: rampart's server cookie is NSD's, byte for byte", cr == cn,
                  f"\n    rampart {cr.hex()}\n    nsd     {cn.hex()}")
            check(f"{via}: version 1, reserved 0, timestamp now",
                  cr[8:12] == b"\x01\x00\x00\x00" and abs(stamp(cr) - time.time()) < 5, cr.hex())
            check(f"{via}: answers otherwise agree (rcode, sections)",
                  r.rcode() == n.rcode() == 0 and r.answer == n.answer, f"{r}\n{n}")

            # NSD's cookie to rampart: valid; the answer has a fresh cookie, the one NSD makes
            # in the same second (NSD itself would echo its valid cookie: reuse, RFC 9018 §4.3).
            before = len(log_verdicts(log_path))
            r2, n2 = same_second(name, cn, tcp, nsd_cookie=client)
            time.sleep(0.2)
            verdicts = log_verdicts(log_path)[before:]
            check(f"{via}: rampart finds NSD's server cookie valid",
                  len(verdicts) >= 1 and "valid=true" in verdicts[0] and "127.0.0.1" in verdicts[0],
                  repr(verdicts))
            c2r, c2n = cookie_of(r2), cookie_of(n2)
            check(f"{via}: ... and answers it normally with a fresh cookie, NSD's",
                  r2.rcode() == 0 and c2r is not None and c2r == c2n,
                  f"{c2r and c2r.hex()} {c2n and c2n.hex()}")

            # A tampered cookie: invalid; still the normal answer, fresh cookie, as NSD.
            bad = cn[:-1] + bytes([cn[-1] ^ 1])
            before = len(log_verdicts(log_path))
            r3, n3 = same_second(name, bad, tcp)
            time.sleep(0.2)
            verdicts = log_verdicts(log_path)[before:]
            check(f"{via}: a tampered server cookie is invalid to rampart",
                  len(verdicts) >= 1 and "valid=false" in verdicts[0], repr(verdicts))
            c3r, c3n = cookie_of(r3), cookie_of(n3)
            check(f"{via}: ... answered normally with a fresh cookie, as NSD does",
                  r3.rcode() == n3.rcode() == 0 and c3r is not None and c3r == c3n
                  and r3.answer == n3.answer, f"{r3.rcode()} {n3.rcode()} {c3r!r} {c3n!r}")

        # rampart's cookie to NSD after 2 s: NSD echoes a valid young cookie unchanged (reuse),
        # and makes a fresh one for an invalid cookie: its verdict shows in the timestamp.
        made = cookie_of(ask(RAMPART_PORT, name, client))
        time.sleep(2.1)
        back = cookie_of(ask(NSD_PORT, name, made))
        check("NSD finds rampart's server cookie valid (echoed unchanged)", back == made,
              f"{made.hex()} -> {back and back.hex()}")
        tampered = made[:-1] + bytes([made[-1] ^ 1])
        back = cookie_of(ask(NSD_PORT, name, tampered))
        check("control: NSD answers a tampered one with a fresh cookie",
              back is not None and back != tampered and stamp(back) > stamp(made),
              f"{tampered.hex()} -> {back and back.hex()}")

        # Bad lengths: FORMERR from both, no cookie back (NSD also drops its OPT; rampart keeps
        # a bare one, as Knot does).
        for length in (0, 7, 9, 15, 41):
            data = bytes(range(1, length + 1))
            r, n = ask(RAMPART_PORT, name, data), ask(NSD_PORT, name, data)
            check(f"COOKIE of {length} bytes: FORMERR from both, no cookie",
                  r.rcode() == n.rcode() == dns.rcode.FORMERR and cookie_of(r) is None,
                  f"rampart {dns.rcode.to_text(r.rcode())} nsd {dns.rcode.to_text(n.rcode())}")
        print(f"{passed + failed} checks: {passed} passed, {failed} failed")
        return 1 if failed else 0
    finally:
        stop(rampart, nsd_pid, tmp)


if __name__ == "__main__":
    sys.exit(main())
