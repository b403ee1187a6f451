#!/usr/bin/env python3
"""Split perf samples taken inside a JITed BPF program by source line.

The kernel keeps, per loaded program, the BTF line info (instruction -> file:line and the
line's text) and where each of those instructions begins in the JIT image
(`jited_line_info`). A sample's address inside `bpf_prog_<tag>_<name>` is then attributed to
the last line that begins at or before it. Debian's bpftool is built without a disassembler,
so `bpftool prog dump jited linum` isn't available; this reads the same tables directly with
the bpf(2) syscall (root).

    jit_lines.py PROG_ID [PROG_ID...] < perf-script-output    (perf script -F ip,sym, with
                                                               the call chains of record -g)

Prints, per program, the samples whose call chain runs through it by stage of the query path
(STAGES below), by function, and the lines holding the most (a helper's samples go to the line
that called it).
"""
import collections
import ctypes
import os
import struct
import sys

SYS_BPF = 321  # x86_64
PROG_GET_FD_BY_ID, OBJ_GET_INFO_BY_FD, BTF_GET_FD_BY_ID = 13, 15, 19
libc = ctypes.CDLL(None, use_errno=True)


def bpf(cmd, attr):
    buf = ctypes.create_string_buffer(attr, 128)
    r = libc.syscall(SYS_BPF, cmd, buf, 128)
    if r < 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    return r, buf


def fd_by_id(cmd, ident):
    return bpf(cmd, struct.pack("=III", ident, 0, 0))[0]


def info(fd, size, fill=None):
    """bpf_obj_get_info_by_fd into a `size`-byte struct, pre-filled by `fill(buf)`."""
    out = ctypes.create_string_buffer(size)
    if fill:
        fill(out)
    bpf(OBJ_GET_INFO_BY_FD, struct.pack("=IIQ", fd, size, ctypes.addressof(out)))
    return out


def u32(b, off):
    return struct.unpack_from("=I", b, off)[0]


def u64(b, off):
    return struct.unpack_from("=Q", b, off)[0]


def program(prog_id):
    """(name, [(jit address, 'file:line  text', function)] sorted by address)."""
    fd = fd_by_id(PROG_GET_FD_BY_ID, prog_id)
    size = 232
    first = info(fd, size)
    name = first.raw[64:80].split(b"\0")[0].decode()
    n_li, n_jli = u32(first, 148), u32(first, 168)
    li_size, jli_size = u32(first, 172), u32(first, 176)
    n_func, fi_size = u32(first, 144), u32(first, 132)
    btf_id = u32(first, 128)
    if not n_li or not n_jli:
        raise SystemExit(f"program {prog_id}: no line info (JIT or BTF off?)")
    li = ctypes.create_string_buffer(n_li * li_size)
    jli = ctypes.create_string_buffer(n_jli * jli_size)
    fi = ctypes.create_string_buffer(max(1, n_func * fi_size))

    def fill(b):
        struct.pack_into("=IQ", b, 144, n_func, 0)
        struct.pack_into("=Q", b, 136, ctypes.addressof(fi))
        struct.pack_into("=II", b, 144, n_func, n_li)
        struct.pack_into("=QQ", b, 152, ctypes.addressof(li), ctypes.addressof(jli))
        struct.pack_into("=III", b, 168, n_jli, li_size, jli_size)
        struct.pack_into("=I", b, 132, fi_size)

    info(fd, size, fill)
    os.close(fd)
    strings = btf_strings(btf_id)
    funcs = []  # (insn_off, name)
    types = btf_func_names(btf_id)
    for i in range(n_func):
        insn_off, type_id = struct.unpack_from("=II", fi.raw, i * fi_size)
        funcs.append((insn_off, types.get(type_id, f"func{i}")))
    funcs.sort()
    rows = []
    for i in range(min(n_li, n_jli)):
        insn_off, file_off, line_off, line_col = struct.unpack_from("=IIII", li.raw, i * li_size)
        addr = u64(jli.raw, i * jli_size)
        path = cstr(strings, file_off)
        fname = os.path.basename(path)
        text = cstr(strings, line_off).strip()
        func = next((n for o, n in reversed(funcs) if o <= insn_off), "?")
        stage = stage_of(path, line_col >> 10)
        rows.append((addr, f"{fname}:{line_col >> 10}  {text[:70]}", func, stage))
    rows.sort()
    return name, rows


# The query path's stages, by the program's own function a line is in (docs/ARCHITECTURE.md
# §2.1). Lines in shared helpers (packet access, laundering, core, aya) are not a stage of
# their own: they go to the stage of the nearest own line before them in the JIT image.
STAGES = {
    "parse": "eth::parse ip::parse ip::source udp::parse parse_header name_length parse_edns "
    "scan_options is_health_probe",
    "name: measure, lowercase, hash": "read_question clear fill_name take_generation "
    "ascii_lowercase8 set_len",
    "lookup": "locate lookup find scan matches variant_of lookup_encloser walk_hop "
    "fill_short_suffix promoted jump",
    "limits": "limits.rs",
    "cookie": "cookie.rs siphash.rs",
    "checksums": "verify_checksum address_sum pseudo_sum csum.rs query_header_sum header_sum "
    "sum_words",
    "rewrite": "resize rewrite set_do relocate write_header reply_flags swap_macs reply "
    "store_tail store_inline respond",
    "counters": "count count_index",
}
_STAGE_OF = {w: stage for stage, words in STAGES.items() for w in words.split()}
_FN_CACHE = {}


def enclosing_fn(path, line):
    """The name of the `fn` a line of an xdp-ebpf source file is in (the last one above it)."""
    if path not in _FN_CACHE:
        try:
            src = open(path).read().split("\n")
        except OSError:
            src = []
        names, last = [], None
        for text in src:
            t = text.strip()
            for prefix in ("pub fn ", "pub(crate) fn ", "fn ", "unsafe fn ", 'extern "C" fn '):
                if t.startswith(prefix):
                    last = t[len(prefix):].split("(")[0].split("<")[0]
            names.append(last)
        _FN_CACHE[path] = names
    names = _FN_CACHE[path]
    return names[line - 1] if 0 < line <= len(names) else None


def stage_of(path, line):
    """The stage of a line of the program's own source, or None (shared code: inherited)."""
    if "xdp-ebpf/src/" not in path:
        return None
    base = os.path.basename(path)
    if base in _STAGE_OF:
        return _STAGE_OF[base]
    fn = enclosing_fn(path, line)
    mod = base.removesuffix(".rs")
    return _STAGE_OF.get(f"{mod}::{fn}") or _STAGE_OF.get(fn)


def cstr(b, off):
    end = b.find(b"\0", off)
    return b[off:end].decode(errors="replace")


_btf_cache = {}


def btf_raw(btf_id):
    if btf_id in _btf_cache:
        return _btf_cache[btf_id]
    fd = fd_by_id(BTF_GET_FD_BY_ID, btf_id)
    first = info(fd, 32)
    size = u32(first, 8)
    data = ctypes.create_string_buffer(size)

    def fill(b):
        struct.pack_into("=QI", b, 0, ctypes.addressof(data), size)

    info(fd, 32, fill)
    os.close(fd)
    _btf_cache[btf_id] = data.raw
    return data.raw


def btf_strings(btf_id):
    raw = btf_raw(btf_id)
    hdr_len, type_off, type_len, str_off, str_len = struct.unpack_from("=IIIII", raw, 4)
    return raw[hdr_len + str_off:hdr_len + str_off + str_len]


def btf_func_names(btf_id):
    """BTF type id -> name, for FUNC types (kind 12)."""
    raw = btf_raw(btf_id)
    hdr_len, type_off, type_len, str_off, str_len = struct.unpack_from("=IIIII", raw, 4)
    strings = raw[hdr_len + str_off:hdr_len + str_off + str_len]
    off, end, tid, names = hdr_len + type_off, hdr_len + type_off + type_len, 1, {}
    extra = {1: lambda v: 4, 2: lambda v: 0, 3: lambda v: 12, 4: lambda v: 12 * v, 5: lambda v: 12 * v,
             6: lambda v: 8 * v, 7: lambda v: 0, 8: lambda v: 0, 9: lambda v: 0, 10: lambda v: 0,
             11: lambda v: 0, 12: lambda v: 0, 13: lambda v: 8 * v, 14: lambda v: 4,
             15: lambda v: 12 * v, 16: lambda v: 0, 17: lambda v: 4, 18: lambda v: 0,
             19: lambda v: 16 * v}
    while off < end:
        name_off, info_word, _ = struct.unpack_from("=III", raw, off)
        kind, vlen = (info_word >> 24) & 0x1f, info_word & 0xffff
        if kind == 12:
            names[tid] = cstr(strings, name_off)
        off += 12 + extra.get(kind, lambda v: 0)(vlen)
        tid += 1
    return names


def samples_by_program(lines, names):
    """perf script output (with call chains: a header line, then one `ip sym` line per frame, a
    blank line between samples) -> per program: Counter of (address in it, leaf symbol or '')
    for every sample whose chain runs through it: its own instructions (leaf '') or the helper
    its call at that address was in."""
    out = collections.defaultdict(collections.Counter)
    frames = []
    for line in list(lines) + [""]:
        parts = line.split()
        if parts and len(parts) >= 2 and all(c in "0123456789abcdef" for c in parts[0]):
            frames.append((int(parts[0], 16), parts[1].split("+")[0]))
            continue
        if not parts and frames:
            for depth, (ip, sym) in enumerate(frames):
                name = next((n for n in names if sym.startswith("bpf_prog_") and sym.endswith("_" + n)), None)
                if name:
                    leaf = "" if depth == 0 else frames[0][1]
                    # A return address points past the call: attribute it to the call.
                    out[name][(ip - (1 if depth else 0), leaf)] += 1
                    break
            frames = []
    return out


def main():
    import bisect
    progs = {}
    for pid in map(int, sys.argv[1:]):
        name, rows = program(pid)
        progs[name] = rows
    samples = samples_by_program(sys.stdin, list(progs))
    for name, rows in progs.items():
        addrs = [r[0] for r in rows]
        stages, current = [], "entry"
        for r in rows:
            current = r[3] or current
            stages.append(current)
        by_line, by_func = collections.Counter(), collections.Counter()
        by_stage = collections.Counter()
        total = sum(samples[name].values())
        for (ip, leaf), n in samples[name].items():
            i = bisect.bisect_right(addrs, ip) - 1
            row = rows[i] if i >= 0 else (0, "?", "?")
            where = row[1] if not leaf else f"{row[1]}  -> in {leaf}"
            by_line[where] += n
            by_func[row[2]] += n
            by_stage[stages[i] if i >= 0 else "?"] += n
        print(f"## {name}: {total} samples whose call chain runs through it")
        if not total:
            continue
        print("\n| share | stage (helpers' samples at the line that called them) |\n|---:|---|")
        for f, n in by_stage.most_common():
            print(f"| {100 * n / total:.1f}% | {f} |")
        print("\n| share | function |\n|---:|---|")
        for f, n in by_func.most_common():
            print(f"| {100 * n / total:.1f}% | {f} |")
        print("\n| share | line (and the helper it was in, if any) |\n|---:|---|")
        for l, n in by_line.most_common(40):
            print(f"| {100 * n / total:.1f}% | `{l.replace('|', '/')}` |")
        print()


if __name__ == "__main__":
    main()
