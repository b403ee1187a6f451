"""Keep the kernel's BPF run-time statistics on while this process lives (at most MAX_S seconds).

BPF_ENABLE_STATS hands back a file descriptor and the kernel counts its holders, so benches
run side by side each hold their own and none can leave the statistics on for the others, as
saving and restoring `kernel.bpf_stats_enabled` did (two benches at once: the second put back
the first's 1, and every BPF_PROG_TEST_RUN afterwards paid ~40 ns for them).
Prints "on" once they are on; exits when killed or after MAX_S.
"""
import ctypes
import os
import struct
import sys
import time

NR_BPF = 321  # x86_64
BPF_ENABLE_STATS = 32
BPF_STATS_RUN_TIME = 0
MAX_S = int(sys.argv[1]) if len(sys.argv) > 1 else 3600

libc = ctypes.CDLL(None, use_errno=True)
attr = ctypes.create_string_buffer(struct.pack("I", BPF_STATS_RUN_TIME) + bytes(124))
fd = libc.syscall(NR_BPF, BPF_ENABLE_STATS, attr, ctypes.sizeof(attr))
if fd < 0:
    sys.exit(f"bpf(BPF_ENABLE_STATS): {os.strerror(ctypes.get_errno())}")
print("on", flush=True)
time.sleep(MAX_S)
