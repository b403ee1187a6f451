/* cgroup_skb/ingress: drop every UDP packet to port 53 delivered to the sockets of the processes in
 * the cgroup it is attached to, pass the rest. The anycast lab puts a node's rampart in a cgroup
 * of its own and attaches this to kill the slow path without touching the process: its sockets
 * receive no query (neither clients' nor the health probe's), while the XDP program keeps
 * answering and the health checker keeps running, as with a wedged slow path. */
#define SEC(n) __attribute__((section(n), used))
typedef unsigned char u8;
typedef unsigned int u32;
struct __sk_buff;
static long (*bpf_skb_load_bytes)(const struct __sk_buff *skb, u32 off, void *to, u32 len) = (void *)26;

SEC("cgroup_skb/ingress") int cgroup_drop_dns(struct __sk_buff *skb)
{
	u8 h[48];
	u32 l4;
	if (bpf_skb_load_bytes(skb, 0, h, 1))
		return 1;
	if ((h[0] >> 4) == 4) {
		if (bpf_skb_load_bytes(skb, 0, h, 20) || h[9] != 17)
			return 1;
		l4 = (h[0] & 0xf) * 4;
	} else if ((h[0] >> 4) == 6) {
		if (bpf_skb_load_bytes(skb, 0, h, 40) || h[6] != 17)
			return 1;
		l4 = 40;
	} else {
		return 1;
	}
	if (bpf_skb_load_bytes(skb, l4 & 0x3f, h, 4))
		return 1;
	return (h[2] == 0 && h[3] == 53) ? 0 /* drop */ : 1;
}
char _license[] SEC("license") = "GPL";
