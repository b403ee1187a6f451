"""The flood lab, short and at low rate (CI): builds its own lab (scripts/lib/flood-lab.sh, names
suffixed with a run id), runs rampart on the node and checks that the lab measures what the
benchmark (scripts/bench-flood) reports:
  - flood-gen's frames are what it claims: captured on the attacker's NIC, every IPv6/IPv4 and UDP
    checksum is right, the DNS query parses (random names under the zone, a 24-byte cookie
    option), and the spread sources are distinct /56s;
  - the generator's packet and byte counts match the attacker interface's counters;
  - replies to spoofed sources come back to the attacker namespace (amplification is measurable);
  - the legit client is answered while a low-rate flood runs, and the node answered the flood in
    XDP (rampart's counters);
  - with rampart's flood defenses (where its `run --help` has them; skipped otherwise): a
    one-source hot flood is limited (RRL and the global view) with slips, a hot or bad-cookie
    flood from 100,000+ /56s is limited by the global view, a wildcard flood (slow path only)
    is held by the miss budget, the slips are 1 in 2 (RRL) and 1 in 4 (global view) of what each
    limits and the amplification is what this lab measures (AMP_*), each within ±20%, and the
    legit client stays answered throughout; DNS cookies: answers
    carry a server cookie, wrong server cookies are counted bad and bypass nothing, and a legit
    client asking for the flooded name itself is limited without a server cookie and fully
    answered once it shows the one it learnt.
The lab checks run rampart with its limits off (--rrl-rate 0 ...), the defense checks at the
defaults with --class-rate 5000 so a 20,000 packets/s flood crosses the global view.
Run as root: /usr/bin/python3 tests/flood_lab.py (prints "N passed, M failed")."""

import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rplab  # noqa: E402

import dns.message  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAB_ID = f"ci{os.getpid()}"
ETH_P_ALL = 0x0003
# Amplification (bytes back to the attacker / bytes it sent) with the defenses at their defaults,
# as this lab measures it with the generator pinned to one CPU (the aggregate limits are per CPU:
# unpinned, it met one or two CPUs' shares from run to run, 0.30-0.34, 0.39-0.51, 0.38-0.50);
# 2026-12-07, issue 10's rate tables, two runs: 0.296/0.296, 0.380/0.383, 0.379/0.378; each run
# prints "flood_lab: ... (want ...)": checked within ±20%, so a twofold regression (or a defense
# that stopped working) fails.
AMP_HOT_ONE = 0.30
AMP_HOT_SPREAD = 0.38
AMP_COOKIE_SPREAD = 0.38
PACKET_OUTGOING = 4


def sh(cmd, timeout=120):
    """Run bash with the flood lab's helpers sourced and this run's names set."""
    script = f". scripts/lib/flood-lab.sh && flood_init {LAB_ID} && {cmd}"
    r = subprocess.run(["bash", "-c", script], cwd=REPO, capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError(f"`{cmd}` failed ({r.returncode}):\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}")
    return r.stdout


def names():
    out = sh('echo "$RP_TMP $RP_NS_ATTACKER $RP_NS_SWITCH $RP_FLOOD_GEN $RP_NODE6 $RP_NODE4"')
    return out.split()


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def capture(ns, dev, run, secs):
    """UDP frames to port 53 arriving on `dev` in namespace `ns` while `run()` runs (raw
    AF_PACKET). Captured on the switch's port: flood-gen bypasses the qdisc layer, where taps on
    the sending side would see its frames."""
    frames = []
    ready = threading.Event()

    def rx():
        rplab.setns(ns)  # this thread's own namespace (setns is per thread)
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 << 20)
        s.bind((dev, 0))
        s.settimeout(0.5)
        ready.set()
        end = time.monotonic() + secs
        while time.monotonic() < end:
            try:
                data, addr = s.recvfrom(2048)
            except socket.timeout:
                continue
            if addr[2] == PACKET_OUTGOING or len(data) < 64:
                continue
            v6 = data[12:14] == b"\x86\xdd" and data[20] == 17 and data[56:58] == b"\x00\x35"
            v4 = data[12:14] == b"\x08\x00" and data[23] == 17 and data[36:38] == b"\x00\x35"
            if v6 or v4:
                frames.append(data)
        s.close()

    t = threading.Thread(target=rx)
    t.start()
    ready.wait(5)
    run()
    t.join()
    return frames


def check_frames(c, frames, want, v6, random_names, cookie):
    ok_l3 = ok_udp = ok_dns = 0
    sources, qnames = set(), set()
    for f in frames:
        if v6:
            if f[12:14] != b"\x86\xdd" or f[20] != 17:
                continue
            ip, l4 = f[14:54], f[54:]
            src = ip[8:24]
            pseudo = ip[8:40] + struct.pack("!IxxxB", len(l4), 17)
            ok_l3 += 1
            sources.add(src[:7])  # the /56
        else:
            if f[12:14] != b"\x08\x00" or f[23] != 17:
                continue
            ip, l4 = f[14:34], f[34:]
            ok_l3 += csum(ip) == 0xFFFF
            src = ip[12:16]
            pseudo = ip[12:20] + struct.pack("!xBH", 17, len(l4))
            sources.add(src)
        ok_udp += csum(pseudo + l4) == 0xFFFF and l4[6:8] != b"\0\0"
        try:
            m = dns.message.from_wire(l4[8:])
            q = m.question[0]
            opts = {o.otype: o for o in (m.options or [])}
            good = str(q.name).endswith("flood.example.")
            if cookie:
                o = opts.get(10)
                good = good and o is not None and len(o.to_wire()) == 24
            ok_dns += good
            qnames.add(str(q.name))
        except Exception:  # noqa: BLE001: a frame that doesn't parse is counted as bad
            pass
    n = len(frames)
    c.check(f"capture: saw the generator's {want} frames", n == want, f"captured {n}")
    c.check("capture: IP headers right (IPv4 header checksums)", ok_l3 == n, f"{ok_l3}/{n}")
    c.check("capture: UDP checksums right", ok_udp == n, f"{ok_udp}/{n}")
    c.check("capture: DNS queries parse" + (" with a 24-byte cookie" if cookie else ""), ok_dns == n, f"{ok_dns}/{n}")
    if random_names:
        c.check("capture: random names are distinct", len(qnames) >= n * 0.99, f"{len(qnames)} names in {n}")
    return sources


def kv_last(path):
    with open(path) as f:
        line = [ln for ln in f if ln.strip()][-1]
    return dict(x.split("=", 1) for x in line.split())


def round_(out, args):
    """One flood_round (MIX SPREAD SECS RATE LEGIT_QPS); returns its key=value results."""
    sh(f"flood_round {out} {args}")
    return kv_last(out)


def counted_round(out, args):
    """A round_ with rampart's counter deltas over it: (results, deltas, attack packets sent)."""
    s0 = stats()
    r = round_(out, args)
    return r, rplab.delta(s0, stats()), int(r["gen_packets"])


def amp_of(r):
    return int(r["atk_rx_bytes"]) / max(1, int(r["atk_tx_bytes"]))


def near(c, what, got, want, detail=""):
    """`got` within ±20% of `want` (a configured ratio or a figure this lab measured), printed
    either way so a change shows in the log before it fails."""
    print(f"flood_lab: {what}: {got:.3f} (want {want:.3f} ±20%){' ' + detail if detail else ''}", flush=True)
    c.check(f"{what}: {want:.2f} ±20%", abs(got - want) <= 0.2 * want, f"{got:.3f}; {detail}")


def legit_ok(c, r, what):
    sent, done = int(r["legit_sent"]), int(r["legit_completed"])
    c.check(f"legit answered during the {what} flood (>= 99%)", done >= 0.99 * sent > 0, f"{done}/{sent}")


def stats():
    return json.loads(sh("lab_stats --json"))


def run():
    c = rplab.Checks("flood_lab")
    try:
        sh("flood_up && flood_zone $RP_TMP/w 2000 && cp $RP_TMP/w/legit.txt $RP_TMP/legit.txt", 120)
        tmp, ns_atk, ns_sw, gen, node6, node4 = names()
        mac = sh('lab_mac "$RP_NS_NODE" n0').strip()

        # 1. the generator's frames, captured where they leave the attacker
        def gen_run(args):
            return lambda: subprocess.run(
                ["ip", "netns", "exec", ns_atk, gen, "-i", "a0", "-D", mac] + args, check=True,
                capture_output=True, text=True, timeout=30)

        fr = capture(ns_sw, "sa", gen_run(["-d", node6, "-s", "2001:db8:8000::/33", "-n", "flood.example",
                                            "-R", "-C", "-c", "3000", "-r", "3000", "-t", "5"]), 2.5)
        srcs = check_frames(c, fr, 3000, True, True, True)
        c.check("capture: spread IPv6 sources are distinct /56s", len(srcs) == 3000, f"{len(srcs)} /56s")
        fr = capture(ns_sw, "sa", gen_run(["-d", node4, "-s", "203.0.113.0/24", "-n", "www.flood.example",
                                            "-c", "1000", "-r", "2000", "-t", "5"]), 1.5)
        srcs = check_frames(c, fr, 1000, False, False, False)
        c.check("capture: spread IPv4 sources cover the /24", len(srcs) == 256, f"{len(srcs)} addresses")

        # 2. the lab itself, rampart with its limits off (where it has them): what goes out comes
        # back, and the legit client is answered while a low-rate flood runs
        help_ = subprocess.run([os.environ.get("RP_BIN", os.path.join(REPO, "target/release/rampart")), "run", "--help"],
                               capture_output=True, text=True).stdout
        has_limits = "--class-rate" in help_
        off = "--rrl-rate 0 --class-rate 0 --miss-rate 0 --miss-total-rate 0" if has_limits else ""
        sh(f"flood_rampart_start $RP_TMP/w/zones {off}", 90)
        out = os.path.join(tmp, "rounds.kv")
        r, d, _ = counted_round(out, "hot one 3 20000 1000")
        gp, tp, gb, tb = (int(r[k]) for k in ("gen_packets", "atk_tx_packets", "gen_bytes", "atk_tx_bytes"))
        c.check("counters: attacker NIC sent what flood-gen counted (packets)", 0 <= tp - gp <= 100, f"gen {gp} nic {tp}")
        c.check("counters: attacker NIC sent what flood-gen counted (bytes)", 0 <= tb - gb <= 20000, f"gen {gb} nic {tb}")
        c.check("hot flood ran near its rate", gp >= 20000 * 5 * 0.8, f"{gp} packets in 5 s at 20,000/s")
        rx = int(r["atk_rx_packets"])
        c.check("replies to the spoofed source reach the attacker namespace", rx >= 0.9 * gp, f"{rx} frames back of {gp}")
        legit_ok(c, r, "hot")
        xdp = sum(d.get(k, 0) for k in rplab.FAST_TX)
        c.check("the node answered in XDP", xdp >= 0.9 * gp, f"XDP answers {xdp} of {gp} attack packets; {d}")
        r = round_(out, "hot one 2 50 1000")
        gp, rx = int(r["gen_packets"]), int(r["atk_rx_packets"])
        c.check("a slow stream: every spoofed query is answered back to the attacker", rx >= gp > 0, f"{rx}/{gp}")
        amp = int(r["atk_rx_bytes"]) / max(1, int(r["atk_tx_bytes"]))
        c.check("amplification is measured (answers are bigger than queries)", amp > 1.0, f"{amp:.2f}")
        for mix in ("random", "cookie"):
            r, d, _ = counted_round(out, f"{mix} spread 3 20000 1000")
            c.check(f"{mix} flood from spread sources: every packet its own /56",
                    int(r["gen_sources"]) == int(r["gen_packets"]) > 50000, f"{r['gen_sources']} of {r['gen_packets']}")
            legit_ok(c, r, mix)
            c.check(f"the {mix} flood reached the node", d.get("packets", 0) >= int(r["gen_packets"]) * 0.9, f"{d}")
        sh("lab_stop rampart")

        # 3. the flood defenses at their defaults (RRL 200/s slip 2, global view slip 4, miss budget
        # 200/s per prefix),
        # the global view lowered to 5,000/s so a CI-rate flood crosses it
        if not has_limits:
            for what in ("RRL", "global view", "cookies", "miss budget"):
                c.skip(f"{what} under a flood", "this rampart has no flood defenses yet (no --class-rate)")
            return c
        sh("flood_rampart_start $RP_TMP/w/zones --class-rate 5000 --cookie-secret 00112233445566778899aabbccddeeff", 90)
        r, d, gp = counted_round(out, "hot one 3 20000 1000")
        rrl = d.get("tx_slip_rrl", 0) + d.get("drop_rrl", 0)
        limited = rrl + d.get("tx_slip_global", 0) + d.get("drop_global", 0)
        # the global view (5,000/s for the hot name) sees the flood first; RRL limits what it lets by
        c.check("RRL: a one-source hot flood is limited (RRL and global view)", limited >= 0.9 * gp and rrl > 0,
                f"{limited} of {gp} ({rrl} by RRL): {d}")
        for what, slip, tx, drop in (("RRL", 2, "tx_slip_rrl", "drop_rrl"),
                                     ("global view", 4, "tx_slip_global", "drop_global")):
            n = d.get(tx, 0) + d.get(drop, 0)
            near(c, f"{what} slips 1 in {slip} of what it limits", d.get(tx, 0) / max(1, n), 1 / slip,
                 f"{d.get(tx, 0)} slips of {n}")
        # slips 1 in 2 (RRL) or 4 (global view) of the limited, each the size of the query
        near(c, "RRL: amplification of a one-source hot flood", amp_of(r), AMP_HOT_ONE)
        # the legit client sends a client cookie only (no server cookie learnt yet): counted so
        c.check("the legit client's client cookie is seen",
                d.get("cookie_client_only", 0) >= 0.9 * int(r["legit_sent"]), f"{d}")
        c.check("every cookie query's answer carries a server cookie",
                d.get("cookie_sent", 0) >= 0.9 * int(r["legit_sent"]), f"{d}")
        legit_ok(c, r, "hot (RRL on)")

        r, d, gp = counted_round(out, "hot spread 3 20000 1000")
        glob = d.get("tx_slip_global", 0) + d.get("drop_global", 0)
        c.check("global view: a hot flood over 100,000+ /56s is limited", glob >= 0.5 * gp, f"{glob} of {gp}: {d}")
        near(c, "global view: amplification of a hot flood from spread sources", amp_of(r), AMP_HOT_SPREAD)
        legit_ok(c, r, "spread hot (global view)")

        # the legit client asks for the flooded name itself: the global view limits it like the
        # flood, unless it shows the server cookie it learnt (a resolver's second query)
        sh("cp $RP_TMP/legit.txt $RP_TMP/legit-all.txt && grep -i '^$FLOOD_HOT ' $RP_TMP/legit-all.txt"
           " >$RP_TMP/legit.txt || echo \"$FLOOD_HOT A\" >$RP_TMP/legit.txt")
        try:
            for learnt in (False, True):
                if learnt:
                    sh("flood_legit_cookie")
                    kind = sh('cat "$RP_TMP/legit-cookie"').split()[0]
                    c.check("the legit client learnt a server cookie", kind == "server", kind)
                r, d, gp = counted_round(out, "hot spread 3 20000 1000")
                sent, done = int(r["legit_sent"]), int(r["legit_completed"])
                glob = d.get("tx_slip_global", 0) + d.get("drop_global", 0)
                if learnt:
                    c.check("cookies: the legit client's valid cookie is verified",
                            d.get("cookie_valid", 0) >= 0.99 * sent > 0, f"{d}")
                    c.check("cookies: a valid cookie passes the global view (legit >= 99.9%)",
                            done >= 0.999 * sent, f"{done}/{sent}; {d}")
                    c.check("cookies: the flood on the same name is still limited", glob >= 0.5 * gp,
                            f"{glob} of {gp}")
                else:
                    # drops are lost queries to dnsperf (slips are answers)
                    c.check("without a server cookie the legit client is limited on the flooded name",
                            done <= 0.9 * sent, f"{done}/{sent}; {d}")
        finally:
            sh('cp "$RP_TMP/legit-all.txt" "$RP_TMP/legit.txt" && rm -f "$RP_TMP/legit-cookie"')

        r, d, gp = counted_round(out, "cookie spread 3 20000 1000")
        limited = sum(d.get(k, 0) for k in ("tx_slip_rrl", "drop_rrl", "tx_slip_global", "drop_global"))
        c.check("a bad-cookie flood over spread sources is limited", limited >= 0.5 * gp, f"{limited} of {gp}: {d}")
        near(c, "cookies: amplification of a bad-cookie flood from spread sources", amp_of(r), AMP_COOKIE_SPREAD)
        c.check("cookies: wrong server cookies are counted bad", d.get("cookie_bad", 0) >= 0.9 * gp, f"{d}")
        c.check("cookies: a wrong server cookie bypasses nothing", d.get("cookie_valid", 0) == 0, f"{d}")
        legit_ok(c, r, "bad cookies")

        r, d, gp = counted_round(out, "wild one 3 5000 1000")
        budget = d.get("tx_slip_budget", 0) + d.get("drop_budget", 0)
        c.check("miss budget: a one-source flood only the slow path answers is budgeted", budget >= 0.8 * gp,
                f"{budget} of {gp}: {d}")
        legit_ok(c, r, "wildcard (miss budget)")
    except Exception as e:  # noqa: BLE001: a broken lab is a failed check, with its output
        c.check("flood lab ran", False, str(e))
    finally:
        try:
            sh("flood_down", 60)
        except Exception as e:  # noqa: BLE001
            c.check("flood lab torn down", False, str(e))
    return c


if __name__ == "__main__":
    rplab.main_for(run)
