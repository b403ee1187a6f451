"""The Debian package and its systemd unit (issue 12), as far as a container without systemd as
PID 1 allows:

- scripts/build-deb builds target/debian/rampart_*.deb; `dpkg-deb -c` lists the binary, the unit,
  the config (a conffile), the man pages, the completions and the docs; postinst makes the user.
- `systemd-analyze verify` passes on the unit as installed and reports a broken copy.
- Installed with dpkg -i (postinst makes the user `rampart`, the config 0640 root:rampart, man
  finds the pages) and purged after (files and user gone). On a shared machine the install runs
  in a private mount namespace with /etc, /usr and /var overlaid, so nothing else sees it (every
  rampart started as root would become the `rampart` user); RP_PKG_INSTALL=1 installs for real
  (a disposable machine). The extracted package is checked too, run as nobody.
- The binary runs the way the unit runs it: the unit's User= (`rampart` installed, nobody
  extracted), its AmbientCapabilities= and CapabilityBoundingSet=, NoNewPrivs, from its
  WorkingDirectory= with its ExecStart= config, XDP attached to a veth of its own, listening on a
  port below 1024: it starts, keeps only what it uses, answers dig; without CAP_PERFMON it can't
  load the XDP program (so the unit's list is not larger than needed: no CAP_SYS_ADMIN)."""

import glob
import os
import pwd
import re
import shutil
import stat
import sys
import subprocess
import tempfile

import rplab
from e2e_hardening import proc_status, spawn
from e2e_operations import ns_run, stop, wait_ready

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PORT = 573  # below 1024: CAP_NET_BIND_SERVICE is exercised
CAP = {"CAP_NET_BIND_SERVICE": 10, "CAP_NET_ADMIN": 12, "CAP_SYS_ADMIN": 21, "CAP_PERFMON": 38, "CAP_BPF": 39}
WANT_FILES = [
    "./usr/bin/rampart",
    "./usr/lib/systemd/system/rampart.service",
    "./etc/rampart/rampart.toml",
    "./etc/rampart/zones/example.com.zone",
    "./usr/share/man/man1/rampart.1.gz",
    "./usr/share/man/man1/rampart-run.1.gz",
    "./usr/share/man/man1/rampart-anycast-drain.1.gz",
    "./usr/share/bash-completion/completions/rampart",
    "./usr/share/zsh/vendor-completions/_rampart",
    "./usr/share/fish/vendor_completions.d/rampart.fish",
    "./usr/share/doc/rampart/README.md",
    "./usr/share/doc/rampart/copyright",
]


def unit_settings(path):
    """key → [values] of the unit file's [Service] section."""
    out = {}
    section = None
    for line in open(path):
        line = line.strip()
        if line.startswith("["):
            section = line
        elif section == "[Service]" and "=" in line and not line.startswith("#"):
            k, v = line.split("=", 1)
            out.setdefault(k, []).append(v)
    return out


def build_and_list(c, tmp):
    b = subprocess.run([os.path.join(REPO, "scripts/build-deb")], capture_output=True, text=True, timeout=1800)
    debs = sorted(glob.glob(os.path.join(REPO, "target/debian/rampart_*.deb")), key=os.path.getmtime)
    if not c.check("scripts/build-deb builds the .deb", b.returncode == 0 and debs, (b.stdout + b.stderr)[-2000:]):
        return None
    deb = debs[-1]
    listing = subprocess.run(["dpkg-deb", "-c", deb], capture_output=True, text=True, check=True).stdout
    names = {line.split()[-1] for line in listing.splitlines()} | {
        line.split()[-3] for line in listing.splitlines() if " -> " in line}
    missing = [f for f in WANT_FILES if f not in names]
    c.check("dpkg-deb -c lists binary, unit, config, man pages, completions, docs", not missing,
            f"missing {missing}; have {sorted(names)}")
    ctl = os.path.join(tmp, "control")
    subprocess.run(["dpkg-deb", "-e", deb, ctl], check=True)
    conffiles = open(os.path.join(ctl, "conffiles")).read().split() if os.path.exists(
        os.path.join(ctl, "conffiles")) else []
    c.check("the config is a conffile", "/etc/rampart/rampart.toml" in conffiles, str(conffiles))
    postinst = open(os.path.join(ctl, "postinst")).read()
    c.check("postinst makes the system user rampart", "adduser --system" in postinst and "rampart" in postinst,
            postinst[:500])
    control = open(os.path.join(ctl, "control")).read()
    c.check("control: Depends names adduser and libc", "adduser" in control and "libc6" in control, control)
    return deb


def analyze(root, unit):
    """`systemd-analyze verify UNIT` with the package's files where it puts them: in a private
    mount namespace, its /usr/bin and man pages overlaid on the host's (nothing is installed)."""
    if root == "/":
        cmd = ["systemd-analyze", "verify", unit]
    else:
        mounts = " && ".join(
            f"mount -t overlay overlay -o lowerdir={root}{d}:{d} {d}" for d in ("/usr/bin", "/usr/share/man/man1"))
        cmd = ["unshare", "-m", "sh", "-c", f"mount --make-rprivate / && {mounts} && systemd-analyze verify {unit}"]
    v = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    return v.returncode, (v.stdout + v.stderr).strip()


def verify(c, root, tmp):
    unit = os.path.join(root, "usr/lib/systemd/system/rampart.service")
    rc, out = analyze(root, unit)
    c.check("systemd-analyze verify: clean (no output, exit 0)", rc == 0 and not out, f"rc={rc} {out}")
    # The check can fail: an unknown key and a missing binary are reported.
    bad = os.path.join(tmp, "rampart.service")
    text = open(unit).read().replace("WatchdogSec=", "WatchdogSecs=").replace("/usr/bin/rampart", "/usr/bin/rampart-nope")
    with open(bad, "w") as f:
        f.write(text)
    rc, out = analyze(root, bad)
    c.check("systemd-analyze verify: reports a broken copy of the unit",
            "WatchdogSecs" in out and "rampart-nope" in out, f"rc={rc} {out}")


def caps_arg(names):
    return ",".join("+" + n.lower().removeprefix("cap_") for n in names)


def udev_tun(tmp):
    """Debian's udev makes /dev/net/tun 0666 (50-udev-default.rules); a container without udev
    may leave it 0600, which the unit's user can't open. Then, in a private mount namespace of
    the instance only, a 0666 node of the same device is bound over it."""
    if os.stat("/dev/net/tun").st_mode & 0o777 == 0o666:
        return []
    tun = os.path.join(tmp, "tun")
    if not os.path.exists(tun):
        os.mknod(tun, 0o666 | stat.S_IFCHR, os.makedev(10, 200))
        os.chmod(tun, 0o666)
        print("note: /dev/net/tun is not 0666 here (no udev): a 0666 node is bound over it for the instance")
    return ["unshare", "-m", "sh", "-c", 'mount --make-rprivate / && mount --bind "$0" /dev/net/tun && exec "$@"',
            tun]


def run_as_unit(c, lab, tmp, root, user, caps, label, expect_ok=True):
    """ExecStart= as the unit runs it. Returns the process (running) or None."""
    unit = unit_settings(os.path.join(root, "usr/lib/systemd/system/rampart.service"))
    exec_start = unit["ExecStart"][0].split()
    binary = os.path.join(root, exec_start[0].lstrip("/"))
    config = os.path.join(root, exec_start[exec_start.index("--config") + 1].lstrip("/"))
    workdir = os.path.join(root, unit["WorkingDirectory"][0].lstrip("/"))
    pw = pwd.getpwnam(user)
    pins = os.path.join(os.path.dirname(lab.pin_dir), f"rampart-pkg-{label}")
    run_dir = os.path.join(tmp, f"run-{label}")
    for d in (pins, run_dir):  # ExecStartPre=+install -d, RuntimeDirectory=
        os.makedirs(d, exist_ok=True)
        os.chown(d, pw.pw_uid, pw.pw_gid)
    log = os.path.join(tmp, f"unit-{label}.log")
    ca = caps_arg(caps)
    cmd = [*udev_tun(tmp), "ip", "netns", "exec", lab.ns_node, "setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}",
           "--init-groups" if root == "/" else "--clear-groups", f"--inh-caps=-all,{ca}",
           f"--ambient-caps=-all,{ca}", f"--bounding-set=-all,{ca}", "--no-new-privs",
           "sh", "-c", 'cd "$0" && exec "$@"', workdir,
           binary, *exec_start[1:exec_start.index("--config")], "--config", config,
           "--iface", "rpk0", "--listen", f"127.0.0.1:{PORT}", "--pin-dir", pins, "--run-dir", run_dir,
           "--anycast-prefix", "203.0.113.197/32", "--anycast-device", f"rpk{label[:3]}0",
           "--control-socket", os.path.join(run_dir, "control.sock")]
    proc = spawn(cmd, log)
    ok = wait_ready(proc, log, 40)
    text = open(log).read()
    if not expect_ok:
        stop(proc)
        shutil.rmtree(pins, ignore_errors=True)
        return ok, text
    if not c.check(f"{label}: started as {user} with {caps} only, ExecStart's config", ok, text[-2000:]):
        stop(proc)
        shutil.rmtree(pins, ignore_errors=True)
        return None
    return proc, pins, log


def serve_as_unit(c, lab, tmp, root, user):
    unit = unit_settings(os.path.join(root, "usr/lib/systemd/system/rampart.service"))
    amb = unit.get("AmbientCapabilities", [""])[0].split()
    bounding = unit.get("CapabilityBoundingSet", [""])[0].split()
    c.check("unit: AmbientCapabilities = CapabilityBoundingSet, no CAP_SYS_ADMIN",
            sorted(amb) == sorted(bounding) and "CAP_SYS_ADMIN" not in amb and amb, f"{amb} {bounding}")
    c.check("unit: Type=notify, ExecReload, WatchdogSec, NoNewPrivileges, ProtectSystem=strict",
            unit.get("Type") == ["notify"] and unit.get("ExecReload") == ["/bin/kill -HUP $MAINPID"]
            and unit.get("WatchdogSec") and unit.get("NoNewPrivileges") == ["yes"]
            and unit.get("ProtectSystem") == ["strict"], str(unit))
    ns_run(lab, "ip", "link", "add", "rpk0", "numtxqueues", "1", "numrxqueues", "1", "type", "veth",
           "peer", "name", "rpk1", "numtxqueues", "1", "numrxqueues", "1", check=True)
    try:
        ns_run(lab, "ip", "link", "set", "rpk0", "up", check=True)
        ns_run(lab, "ip", "link", "set", "rpk1", "up", check=True)
        started = run_as_unit(c, lab, tmp, root, user, amb, "unit")
        if started is None:
            return
        proc, pins, log = started
        try:
            st = proc_status(proc.pid)
            pw = pwd.getpwnam(user)
            want = sum(1 << CAP[n] for n in ("CAP_BPF", "CAP_NET_ADMIN", "CAP_NET_BIND_SERVICE"))
            c.check(f"unit: runs as {user}, CapEff trimmed to BPF + NET_ADMIN + NET_BIND_SERVICE, NoNewPrivs",
                    st["Uid"].split() == [str(pw.pw_uid)] * 4 and int(st["CapEff"], 16) == want
                    and st.get("NoNewPrivs") == "1", f"{st['Uid']} {st['CapEff']} {st.get('NoNewPrivs')}")
            text = open(log).read()
            c.check("unit: the XDP program is attached and filled", "fast path filled" in text, text[-1500:])
            out = ns_run(lab, "dig", "+short", "+time=2", "+tries=2", "-p", str(PORT), "@127.0.0.1",
                         "example.com", "SOA")
            c.check("unit: dig gets example.com's SOA from the packaged zone",
                    out.stdout.startswith("ns1.example.com. hostmaster.example.com. 2024010101"),
                    out.stdout + out.stderr)
        finally:
            stop(proc)
            shutil.rmtree(pins, ignore_errors=True)
        # One capability less (CAP_PERFMON): the program doesn't load, so the list is the least.
        fewer = [cap for cap in amb if cap != "CAP_PERFMON"]
        ok, text = run_as_unit(c, lab, tmp, root, user, fewer, "noperfmon", expect_ok=False)
        c.check("without CAP_PERFMON: the verifier refuses the program (EACCES), rampart exits",
                not ok and "insns" in text and "Permission denied" in text, text[-800:])
    finally:
        ns_run(lab, "ip", "link", "del", "rpk0")


def installed(c, lab, deb, overlay):
    """dpkg -i, the unit verified and run as installed (as `rampart`), dpkg --purge. `overlay`:
    in this process's own mount namespace, /etc, /usr and /var are overlaid on the host's first,
    so the install (files, the user, dpkg's database) is seen by nothing else and vanishes with
    the namespace."""
    tmp = tempfile.mkdtemp(prefix="rp-pkgi-")
    os.chmod(tmp, 0o755)
    done = False
    try:
        if overlay:
            for d in ("/etc", "/usr", "/var"):
                up, work = os.path.join(tmp, "up" + d), os.path.join(tmp, "work" + d)
                os.makedirs(up)
                os.makedirs(work)
                subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                                f"lowerdir={d},upperdir={up},workdir={work}", d], check=True)
        c.check("before: no user rampart", subprocess.run(["getent", "passwd", "rampart"],
                                                         capture_output=True).returncode != 0)
        i = subprocess.run(["dpkg", "-i", deb], capture_output=True, text=True, timeout=300)
        done = c.check("dpkg -i installs it", i.returncode == 0, (i.stdout + i.stderr)[-1500:])
        if not done:
            return
        c.check("postinst made the system user rampart", subprocess.run(
            ["getent", "passwd", "rampart"], capture_output=True).returncode == 0)
        st = os.stat("/etc/rampart/rampart.toml")
        c.check("the config is 0640 root:rampart", st.st_mode & 0o777 == 0o640
                and st.st_gid == pwd.getpwnam("rampart").pw_gid, oct(st.st_mode))
        if shutil.which("man"):
            man = subprocess.run(["man", "-w", "rampart-run"], capture_output=True, text=True)
            c.check("man -w rampart-run finds the page", man.stdout.strip().endswith("rampart-run.1.gz"),
                    man.stdout + man.stderr)
        verify(c, "/", tmp)
        c.run("served as the installed unit runs it", serve_as_unit, c, lab, tmp, "/", "rampart")
    finally:
        if done:
            p = subprocess.run(["dpkg", "--purge", "rampart"], capture_output=True, text=True, timeout=300)
            c.check("dpkg --purge removes the files and the user",
                    p.returncode == 0 and not os.path.exists("/usr/bin/rampart")
                    and not os.path.exists("/etc/rampart")
                    and subprocess.run(["getent", "passwd", "rampart"], capture_output=True).returncode != 0,
                    (p.stdout + p.stderr)[-800:])
        if overlay:
            for d in ("/var", "/usr", "/etc"):
                subprocess.run(["umount", "-l", d])
        shutil.rmtree(tmp, ignore_errors=True)


def run():
    c = rplab.Checks("e2e_package")
    lab = rplab.Lab()
    if lab.target != "rampart":
        c.skip("package", "the node is not rampart")
        return c
    tmp = tempfile.mkdtemp(prefix="rp-pkg-")
    os.chmod(tmp, 0o755)
    try:
        deb = build_and_list(c, tmp)
        if deb is None:
            return c
        # Extracted to a scratch root, run as nobody.
        root = os.path.join(tmp, "root")
        subprocess.run(["dpkg-deb", "-x", deb, root], check=True)
        os.chmod(root, 0o755)
        # What postinst does for the rampart user: the config (0640) readable by its group.
        os.chown(os.path.join(root, "etc/rampart/rampart.toml"), -1, pwd.getpwnam("nobody").pw_gid)
        verify(c, root, tmp)
        c.run("served as the unit runs it", serve_as_unit, c, lab, tmp, root, "nobody")
        if os.environ.get("RP_PKG_INSTALL") == "1":
            installed(c, lab, deb, overlay=False)
        else:
            # Installed for real, but in a private mount namespace (the `rampart` user must not
            # appear on a shared machine: every rampart started as root would become it).
            child = subprocess.run(["unshare", "-m", "--propagation", "private", sys.executable,
                                    os.path.abspath(__file__), "--installed", deb],
                                   capture_output=True, text=True, timeout=900)
            print(child.stdout, end="", flush=True)
            m = re.search(r"^(\d+) passed, (\d+) failed(?:, (\d+) skipped)?$", child.stdout, re.M)
            if c.check("install in a private mount namespace ran", m is not None,
                       (child.stdout + child.stderr)[-1500:]):
                c.passed += int(m.group(1))
                c.failed += int(m.group(2))
                c.skipped += int(m.group(3) or 0)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return c


def installed_main(deb):
    c = rplab.Checks("e2e_package (installed)")
    installed(c, rplab.Lab(), deb, overlay=True)
    print(c.line(), flush=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--installed"]:
        installed_main(sys.argv[2])
    else:
        rplab.main_for(run)
