/* The several-queues bench's reply sink, on the client veth: XDP_DROP every UDP packet from port
 * 53 (IPv4 without options, or IPv6 without extension headers), pass the rest. The replies are
 * counted by veth's per-queue XDP counters (ethtool -S: rx_queue_N_xdp_drops) without the
 * client's stack spending CPU on them (the generator has no socket to receive them).
 * Built without libbpf headers: clang -O2 -target bpf -c bench-sink.c */
#define SEC(n) __attribute__((section(n), used))
typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
struct xdp_md { u32 data, data_end, data_meta, ingress_ifindex, rx_queue_index, egress_ifindex; };

SEC("xdp") int bench_sink(struct xdp_md *ctx)
{
    u8 *p = (u8 *)(long)ctx->data, *end = (u8 *)(long)ctx->data_end;
    if (p + 14 > end)
        return 2;
    u16 proto = (u16)(p[12] << 8 | p[13]);
    u8 *udp;
    if (proto == 0x0800) {
        if (p + 14 + 20 + 8 > end || p[14] != 0x45 || p[14 + 9] != 17)
            return 2;
        udp = p + 34;
    } else if (proto == 0x86dd) {
        if (p + 14 + 40 + 8 > end || p[14 + 6] != 17)
            return 2;
        udp = p + 54;
    } else {
        return 2; /* XDP_PASS */
    }
    return (udp[0] == 0 && udp[1] == 53) ? 1 /* XDP_DROP */ : 2;
}

char _license[] SEC("license") = "GPL";
