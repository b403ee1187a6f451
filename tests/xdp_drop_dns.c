/* XDP_DROP every UDP packet to port 53 (IPv4 or IPv6 without extension headers), pass the rest.
 * The anycast lab's test 6 attaches it to node1's uplink to make node1 silent (a hung host, a
 * blackhole on the way): DNS to it gets neither an answer nor an ICMP error, so a resolver waits
 * out its timeout. */
#define SEC(n) __attribute__((section(n), used))
typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
struct xdp_md { u32 data, data_end, data_meta, ingress_ifindex, rx_queue_index, egress_ifindex; };

SEC("xdp") int xdp_drop_dns(struct xdp_md *ctx)
{
	u8 *p = (u8 *)(unsigned long)ctx->data, *end = (u8 *)(unsigned long)ctx->data_end;
	u8 *l4;
	if (p + 14 > end)
		return 2;
	u16 proto = (u16)(p[12] << 8 | p[13]);
	if (proto == 0x0800) {
		if (p + 14 + 20 > end || p[14 + 9] != 17)
			return 2;
		l4 = p + 14 + (p[14] & 0xf) * 4;
	} else if (proto == 0x86dd) {
		if (p + 14 + 40 > end || p[14 + 6] != 17)
			return 2;
		l4 = p + 14 + 40;
	} else {
		return 2; /* XDP_PASS */
	}
	if (l4 + 4 > end)
		return 2;
	return (l4[2] == 0 && l4[3] == 53) ? 1 /* XDP_DROP */ : 2;
}
char _license[] SEC("license") = "GPL";
