"""The resolver benchmark (scripts/bench-resolver): rampart in resolver mode against Unbound on
the same lab (tests/reslab.py: a private root, test. and leaf zones served by NSD, plain.test.
holding RP_BENCH_NAMES names), each started cold, then loaded by dnsperf with the same query
file: RP_BENCH_QUERIES queries drawn from a Zipf distribution (s = 1) over the names.
  cold run  the file once from an empty cache: hit ratio = 1 - leaf zone queries / client
            queries (the leaf NSD's own counter, so the same measure for both), replies/s, latency
  hot run   the file again for RP_BENCH_SECS (10) seconds: everything cached, replies/s, latency, CPU per reply (the resolver
            process's utime + stime from /proc, every thread, over the replies)
Results: bench-results/resolver-<date>.md (a table) and a line per figure on stdout. Run as root
with /usr/bin/python3. Knobs: RP_BENCH_NAMES (100000), RP_BENCH_QUERIES (200000),
RP_BENCH_DNSPERF ("-c 8 -q 200"), RP_BENCH_SECS, RP_BENCH_ONLY ("rampart unbound"), RP_BIN,
RP_BENCH_ALONE=1 (rampart a resolver alone, no zones: the cache looked in first; else it also
serves a local zone).
RP_BENCH_XDP=1: every resolver is queried from a client namespace over a veth (reslab's
xdp_client), rampart with its XDP program attached there (cache hits answered in the driver):
also the share answered in XDP (tx_cache over replies), and the CPU per reply counts the
softirq time of the whole machine (where XDP runs, and both ends' veth work) besides the
process's. RP_BENCH_XDP_ENTRIES: rampart's --xdp-cache-entries (65536).
With RP_BENCH_XDP=1 a third run, "hot-kxdpgun", sends the same file with kxdpgun (AF_XDP on the
client's veth, offered RP_BENCH_KXDPGUN_QPS, 3,000,000: more than it can send here) for
RP_BENCH_SECS: dnsperf on these two cores tops out near what either resolver answers, so its
replies/s measure the client; kxdpgun's measure the servers (RP_BENCH_KXDPGUN=0: skip it), and
the run time per packet of n0's XDP program (BPF run-time statistics held on meanwhile): rampart's
and the reflector's, a figure the load of the machine's other work moves less than replies/s.
"reflector" in RP_BENCH_ONLY (with RP_BENCH_XDP=1): scripts/bench-reflector.c on n0, which
answers every query by swapping addresses; its hot-kxdpgun run is the ceiling of kxdpgun and
the veth on this lab, what no resolver answering in XDP can pass.
Where the kernel refuses kxdpgun's XDP program (probed once), the run is "hot-flood" instead:
scripts/flood-gen sends the same file (AF_PACKET, sendmmsg, one process as fast as it sends)
and the replies are counted at c0 by scripts/bench-sink.c (XDP_DROP, veth's xdp_drops)."""

import json
import os
import random
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reslab  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NAMES = int(os.environ.get("RP_BENCH_NAMES", "100000"))
QUERIES = int(os.environ.get("RP_BENCH_QUERIES", "200000"))
DNSPERF = os.environ.get("RP_BENCH_DNSPERF", "-c 8 -q 200").split()
ONLY = os.environ.get("RP_BENCH_ONLY", "rampart unbound").split()
HOT_SECS = int(os.environ.get("RP_BENCH_SECS", "10"))
XDP = os.environ.get("RP_BENCH_XDP", "0") == "1"
# Entries rampart's XDP program may answer from (RP_BENCH_XDP=1): room for every distinct name.
XDP_ENTRIES = os.environ.get("RP_BENCH_XDP_ENTRIES", "65536")
KXDPGUN = XDP and os.environ.get("RP_BENCH_KXDPGUN", "1") == "1"
KXDPGUN_QPS = os.environ.get("RP_BENCH_KXDPGUN_QPS", "3000000")
# rampart as a resolver alone (no zones of its own: the XDP program looks in the cache first).
ALONE = os.environ.get("RP_BENCH_ALONE", "0") == "1"
BIN = os.environ.get("RP_BIN", os.path.join(REPO, "target/release/rampart"))
TICK = os.sysconf("SC_CLK_TCK")


def query_file(path):
    """Zipf (s = 1) over the names: the name of rank k drawn with weight 1/k."""
    rng = random.Random(13)
    ranks = list(range(NAMES))
    cum, total = [], 0.0
    for k in ranks:
        total += 1.0 / (k + 1)
        cum.append(total)
    drawn = rng.choices(ranks, cum_weights=cum, k=QUERIES)
    with open(path, "w") as f:
        for k in drawn:
            f.write(f"n{k}.plain.test A\n")
    return len(set(drawn))


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def softirq_ticks():
    with open("/proc/stat") as f:
        return int(f.readline().split()[7])


def tx_cache(lab):
    if not XDP:
        return 0
    r = subprocess.run([BIN, "stats", "--json", "--pin-dir", lab.pin_dir], capture_output=True, text=True)
    return json.loads(r.stdout)["tx_cache"] if r.returncode == 0 else 0


def leaf_queries(lab):
    """Queries the leaf zones' NSD has answered so far (nsd-control over its unix socket)."""
    out = subprocess.run(["nsd-control", "-c", lab.nsd_conf["leaf"], "stats_noreset"], capture_output=True,
                         text=True, timeout=20, check=True).stdout
    return int(re.search(r"^num\.queries=(\d+)", out, re.M).group(1))


def dnsperf(lab, server, path, hot):
    # Cold: the file once; hot: the file over and over for HOT_SECS (long enough for the CPU
    # clock's 10 ms ticks).
    span = ["-l", str(HOT_SECS)] if hot else ["-n", "1", "-l", "300"]
    ns = lab.client_ns if XDP else lab.ns
    r = subprocess.run(["ip", "netns", "exec", ns, "dnsperf", "-s", server, "-d", path] + span
                       + DNSPERF, capture_output=True, text=True, timeout=400)
    out = r.stdout
    def num(label):
        m = re.search(rf"{label}:\s+([\d.]+)", out)
        return float(m.group(1)) if m else float("nan")
    lost = re.search(r"Queries lost:\s+(\d+)", out)
    noerror = re.search(r"NOERROR (\d+)", out)
    return {"sent": num("Queries sent"), "completed": num("Queries completed"),
            "lost": int(lost.group(1)) if lost else -1, "noerror": int(noerror.group(1)) if noerror else 0,
            "qps": num("Queries per second"), "latency_ms": num("Average Latency \\(s\\)") * 1000,
            "raw": out}


def mac(ns, dev):
    out = subprocess.run(["ip", "-n", ns, "-j", "link", "show", dev], capture_output=True, text=True,
                         check=True).stdout
    return json.loads(out)[0]["address"]


def kxdpgun(lab, server, path):
    """The file for HOT_SECS from the client's veth by AF_XDP, from the allowed client's address;
    kxdpgun leaves its own XDP program on c0, so the lab's pass program goes back after it."""
    cmd = ["ip", "netns", "exec", lab.client_ns, "kxdpgun", "-t", str(HOT_SECS), "-Q", KXDPGUN_QPS,
           "-i", path, "-I", "c0", "-l", reslab.XDP_CLIENT, "-L", mac(lab.client_ns, "c0"),
           "-R", mac(lab.ns, "n0"), server]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=HOT_SECS + 60)
        out = r.stdout + r.stderr
    finally:
        lab.reattach_client_pass()
    def total(label):
        m = re.search(rf"total {label}:\s+(\d+) \((\d+) pps\)", out)
        return (int(m.group(1)), int(m.group(2))) if m else (0, 0)
    (sent, _), (replies, rps) = total("queries"), total("replies")
    noerror = re.search(r"responded NOERROR:\s+(\d+)", out)
    return {"sent": float(sent), "completed": float(replies), "lost": sent - replies,
            "noerror": int(noerror.group(1)) if noerror else 0, "qps": float(rps),
            "latency_ms": float("nan"), "raw": out}


def kxdpgun_loads(lab, path):
    """Whether this kernel loads kxdpgun's XDP program (one short run at nothing: some kernels
    refuse its bpf_xdp_adjust_meta)."""
    cmd = ["ip", "netns", "exec", lab.client_ns, "kxdpgun", "-t", "1", "-Q", "10", "-i", path, "-I", "c0",
           "-l", reslab.XDP_CLIENT, "-L", mac(lab.client_ns, "c0"), "-R", mac(lab.ns, "n0"), reslab.RAMPART]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    finally:
        lab.reattach_client_pass()
    return "failed to initialize" not in r.stdout + r.stderr


def xdp_drops(lab):
    """Frames c0's XDP program dropped, every queue: the replies the sink counted."""
    out = subprocess.run(["ip", "netns", "exec", lab.client_ns, "ethtool", "-S", "c0"], capture_output=True,
                         text=True, check=True).stdout
    return sum(int(v) for v in re.findall(r"rx_queue_\d+_xdp_drops:\s+(\d+)", out))


def flood(lab, server, path):
    """The file for HOT_SECS by scripts/flood-gen from the allowed client's address, the replies
    dropped and counted at c0 by scripts/bench-sink.c; the lab's pass program goes back after."""
    gen, sink = os.path.join(lab.tmp, "flood-gen"), os.path.join(lab.tmp, "sink.o")
    if not os.path.exists(gen):
        subprocess.run(["gcc", "-O2", "-Wall", "-o", gen, os.path.join(REPO, "scripts/flood-gen.c")], check=True)
        subprocess.run(["clang-14", "-O2", "-target", "bpf", "-c", os.path.join(REPO, "scripts/bench-sink.c"),
                        "-o", sink], check=True)
    subprocess.run(["ip", "-n", lab.client_ns, "link", "set", "dev", "c0", "xdp", "off"], check=True)
    subprocess.run(["ip", "-n", lab.client_ns, "link", "set", "dev", "c0", "xdpdrv", "obj", sink, "sec", "xdp"],
                   check=True)
    try:
        before = xdp_drops(lab)
        r = subprocess.run(["ip", "netns", "exec", lab.client_ns, gen, "-i", "c0", "-D", mac(lab.ns, "n0"),
                            "-d", server, "-s", reslab.XDP_CLIENT, "-f", path, "-t", str(HOT_SECS)],
                           capture_output=True, text=True, timeout=HOT_SECS + 60)
        time.sleep(0.2)  # the last replies
        replies = xdp_drops(lab) - before
    finally:
        lab.reattach_client_pass()
    out = r.stdout + r.stderr
    m = re.search(r"packets=(\d+)", out)
    sent = int(m.group(1)) if m else 0
    # noerror -1: the sink counts replies, not their rcodes.
    return {"sent": float(sent), "completed": float(replies), "lost": sent - replies,
            "noerror": -1, "qps": replies / HOT_SECS, "latency_ms": float("nan"), "raw": out}


def xdp_stats(lab):
    """(run_time_ns, run_cnt) of the XDP program on n0, the cache program's time included (a tail
    call runs within its caller's run); zeros where there is none."""
    out = subprocess.run(["ip", "-n", lab.ns, "-j", "link", "show", "n0"], capture_output=True, text=True,
                         check=True).stdout
    link = json.loads(out)[0]
    prog = (link.get("xdp") or {}).get("prog") or {}
    if "id" not in prog:
        return 0, 0
    p = json.loads(subprocess.run(["bpftool", "prog", "show", "id", str(prog["id"]), "-j"],
                                  capture_output=True, text=True, check=True).stdout)
    return p.get("run_time_ns", 0), p.get("run_cnt", 0)


class BpfStats:
    """The kernel's BPF run-time statistics on while held (scripts/lib/bpf_stats_hold.py: the
    kernel counts holders, so other benches' are left alone)."""

    def __enter__(self):
        self.p = subprocess.Popen([sys.executable, os.path.join(REPO, "scripts/lib/bpf_stats_hold.py"),
                                   str(HOT_SECS + 120)], stdout=subprocess.PIPE, text=True)
        if self.p.stdout.readline().strip() != "on":
            self.p.kill()
            raise RuntimeError("BPF run-time statistics could not be turned on")
        return self

    def __exit__(self, *exc):
        self.p.kill()
        self.p.wait()


def reflector(lab):
    """The reflector on n0 (the node's end of the client's veth), built here with clang."""
    obj = os.path.join(lab.tmp, "reflector.o")
    subprocess.run(["clang-14", "-O2", "-g", "-target", "bpf", "-c",
                    os.path.join(REPO, "scripts/bench-reflector.c"), "-o", obj], check=True)
    subprocess.run(["ip", "-n", lab.ns, "link", "set", "dev", "n0", "xdpdrv", "obj", obj, "sec", "xdp"],
                   check=True)


def measure(lab, name, server, proc, path, hot_run):
    rows = {}
    runs = ("cold", "hot") + ((hot_run,) if KXDPGUN else ())
    if proc is None:
        # The reflector: the hot file only (dnsperf's where kxdpgun is off).
        runs = (hot_run,) if KXDPGUN else ("hot",)
    for run in runs:
        before_leaf, before_cpu = leaf_queries(lab), cpu_ticks(proc.pid) if proc else 0
        before_irq, before_xdp = softirq_ticks(), tx_cache(lab)
        t0 = time.monotonic()
        if run == hot_run:
            with BpfStats():
                (t_before, n_before) = xdp_stats(lab)
                d = (kxdpgun if run == "hot-kxdpgun" else flood)(lab, server, path)
                (t_after, n_after) = xdp_stats(lab)
            ns_per_pkt = (t_after - t_before) / (n_after - n_before) if n_after > n_before else float("nan")
        elif run == "hot" and XDP:
            # The XDP program's ns/packet under dnsperf's hot run too (where kxdpgun can't load
            # its own program on the client's veth, this is the only figure of the program).
            with BpfStats():
                (t_before, n_before) = xdp_stats(lab)
                d = dnsperf(lab, server, path, True)
                (t_after, n_after) = xdp_stats(lab)
            ns_per_pkt = (t_after - t_before) / (n_after - n_before) if n_after > n_before else float("nan")
        else:
            d = dnsperf(lab, server, path, run == "hot")
            ns_per_pkt = float("nan")
        elapsed = time.monotonic() - t0
        leaf = leaf_queries(lab) - before_leaf
        cpu = ((cpu_ticks(proc.pid) if proc else 0) - before_cpu) / TICK
        if XDP:
            cpu += (softirq_ticks() - before_irq) / TICK
        done = d["completed"] or float("nan")
        rows[run] = {**d, "hit_ratio": 1 - leaf / d["sent"], "leaf": leaf, "cpu_s": cpu,
                     "cpu_us_per_reply": cpu / done * 1e6, "elapsed": elapsed,
                     "xdp_share": (tx_cache(lab) - before_xdp) / done, "xdp_ns": ns_per_pkt}
        print(f"{name} {run}: {d['completed']:.0f}/{d['sent']:.0f} answered ({d['noerror'] if d['noerror'] >= 0 else 'n/a'} NOERROR, "
              f"{d['lost']} lost), {d['qps']:.0f} replies/s, {d['latency_ms']:.3f} ms mean, hit ratio "
              f"{rows[run]['hit_ratio']:.4f} ({leaf} leaf queries), {rows[run]['cpu_us_per_reply']:.1f} us CPU/reply, "
              f"{rows[run]['xdp_share']:.3f} answered in XDP, {ns_per_pkt:.1f} XDP ns/packet",
              flush=True)
        if d["completed"] != d["sent"] and run != hot_run:
            print(d["raw"][-1500:], flush=True)
    return rows


def main():
    stamp = time.strftime("%Y%m%d-%H%M%S")
    results = {}
    with reslab.ResolverLab(f"bench{os.getpid()}", names=NAMES) as lab:
        xdp_args = lab.xdp_client() + ["--xdp-cache-entries", XDP_ENTRIES] if XDP else []
        path = os.path.join(lab.tmp, "queries.txt")
        distinct = query_file(path)
        print(f"{QUERIES} queries over {NAMES} names (Zipf s=1): {distinct} distinct, best possible hit ratio "
              f"{1 - distinct / QUERIES:.4f}", flush=True)
        hot_run = "hot-kxdpgun" if KXDPGUN and kxdpgun_loads(lab, path) else "hot-flood"
        if KXDPGUN and hot_run == "hot-flood":
            print("this kernel refuses kxdpgun's XDP program: flood-gen takes its place", flush=True)
        for name in ONLY:
            if name == "rampart":
                # Rate limits off, the per-zone outbound limit too, as Unbound's (ratelimit 0): the bench
                # measures resolving.
                proc = lab.rampart(BIN, ["--rrl-rate", "0", "--class-rate", "0", "--miss-rate", "0",
                                         "--miss-total-rate", "0", "--zone-rate", "0"] + xdp_args,
                                   alone=ALONE)
                server = reslab.FORWARDER if ALONE else reslab.RAMPART
            elif name == "reflector":
                if not XDP:
                    sys.exit("the reflector is an XDP program: RP_BENCH_XDP=1")
                reflector(lab)
                proc, server = None, reslab.RAMPART
            else:
                proc = lab.unbound()
                server = reslab.UNBOUND
            try:
                results[name] = measure(lab, name, server, proc, path, hot_run)
            finally:
                if name == "reflector":
                    subprocess.run(["ip", "-n", lab.ns, "link", "set", "dev", "n0", "xdp", "off"])
            # The lab names a resolver alone "rampart-fwd": stopped by that name, or its XDP
            # program would stay on the NIC and answer the next resolver's queries.
            lab.stop("rampart-fwd" if name == "rampart" and ALONE else name)
    out = os.path.join(REPO, "bench-results", f"resolver-{stamp}.md")
    with open(out, "w") as f:
        f.write(f"# Resolver benchmark {stamp}\n\n")
        if "RP_BIN" in os.environ:
            f.write(f"RP_BIN={BIN}\n\n")
        f.write(f"scripts/bench-resolver: {QUERIES} queries (A) drawn Zipf s=1 over {NAMES} names of an unsigned\n"
                f"leaf zone ({distinct} distinct: best hit ratio {1 - distinct / QUERIES:.4f}); dnsperf {' '.join(DNSPERF)};\n"
                f"a private signed root and TLD (NSD), DNSSEC validation on in both; 2 shared cores; rampart "
                + ("a resolver alone (no zones). " if ALONE else "serving a local zone too. ")
                + ""
                + ("Queries from a client namespace over a veth, rampart's XDP program on it (cache hits answered\n"
                   "in the driver); CPU = the resolver process's utime+stime plus the machine's softirq time.\n"
                   if XDP else "No XDP\n(resolver answers come from the slow path); CPU = the resolver process's "
                   "utime+stime over the run.\n")
                + ("hot-kxdpgun: the same file by kxdpgun (AF_XDP on the client's veth, offered "
                   f"{int(KXDPGUN_QPS):,} qps, {HOT_SECS} s): replies/s the server keeps up with; XDP ns/packet: run_time_ns /\n"
                   "run_cnt of n0's XDP program (BPF run-time statistics on; rampart's includes the cache program it\n"
                   "tail-calls), over that run.\n" if KXDPGUN and hot_run == "hot-kxdpgun" else "")
                + ("hot-flood: this kernel refuses kxdpgun's XDP program, so scripts/flood-gen sends the same file\n"
                   f"(AF_PACKET, sendmmsg, one process as fast as it sends, {HOT_SECS} s), replies counted at the client veth's\n"
                   "XDP sink (scripts/bench-sink.c); XDP ns/packet: run_time_ns / run_cnt of n0's XDP program (BPF run-time\n"
                   "statistics on; rampart's includes the cache program it tail-calls), over that run.\n"
                   if KXDPGUN and hot_run == "hot-flood" else "")
                + "Hit ratio = 1 - leaf NSD queries / client queries.\n\n")
        f.write("| resolver | run | answered/sent | replies/s | mean latency ms | hit ratio | CPU us/reply "
                "| answered in XDP | XDP ns/packet |\n")
        f.write("|---|---|---|---|---|---|---|---|---|\n")
        for name, rows in results.items():
            for run, r in rows.items():
                f.write(f"| {name} | {run} | {r['completed']:.0f}/{r['sent']:.0f} | {r['qps']:.0f} | "
                        f"{r['latency_ms']:.3f} | {r['hit_ratio']:.4f} | {r['cpu_us_per_reply']:.1f} | "
                        f"{r['xdp_share']:.3f} | {r['xdp_ns']:.1f} |\n")
    print(f"results: {out}")


if __name__ == "__main__":
    main()
