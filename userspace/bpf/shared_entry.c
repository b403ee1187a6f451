// rampart's component in libxdp's dispatcher (`[xdp] attach = "shared"`): hands each frame to
// rampart's XDP program, loaded by the daemon and reached through the daemon's JUMPS program
// array. Fate-sharing: the kernel empties a program array when its last user reference goes, and
// only the daemon's fds hold JUMPS, so once the daemon is gone the tail call misses and this
// returns XDP_PASS (the dispatcher's next program, then the stack, decide).
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#ifndef JUMP_MAIN
#error "build.rs defines JUMP_MAIN (rampart_common::JUMP_MAIN)"
#endif

// Replaced by the daemon's own JUMPS (bpf_map__reuse_fd) before loading.
struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 3); // rampart_common::JUMP_SLOTS
	__type(key, __u32);
	__type(value, __u32);
} JUMPS SEC(".maps");

SEC("xdp")
int rampart(struct xdp_md *ctx)
{
	bpf_tail_call(ctx, &JUMPS, JUMP_MAIN);
	return XDP_PASS; // the daemon is gone: its JUMPS is empty
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
