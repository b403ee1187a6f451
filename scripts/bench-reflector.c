/* The benchmark's ceiling: the cheapest possible "DNS server" in XDP. For every UDP packet to
 * port 53 (IPv4 or IPv6, no VLAN, no IPv4 options) it swaps MACs, addresses and ports, sets QR
 * and sends the query back with XDP_TX. No lookup, no answer: whatever rampart does costs more.
 * Built without libbpf headers: clang -O2 -target bpf -c bench-reflector.c */
typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
#define SEC(n) __attribute__((section(n), used))
#define XDP_PASS 2
#define XDP_TX 3
struct xdp_md { u32 data, data_end, data_meta, ingress_ifindex, rx_queue_index, egress_ifindex; };

static inline u16 bswap16(u16 x) { return (u16)((x << 8) | (x >> 8)); }

/* RFC 1624 incremental update of a one's-complement checksum for a 16-bit word change. */
static inline u16 csum_replace(u16 check, u16 old, u16 new_) {
    u32 sum = (u16)~check + (u16)~old + new_;
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    return (u16)~sum;
}

SEC("xdp") int reflect(struct xdp_md *ctx) {
    u8 *data = (u8 *)(unsigned long)ctx->data;
    u8 *end = (u8 *)(unsigned long)ctx->data_end;
    u8 *ip = data + 14, *l4;
    int v6;
    if (data + 14 > end) return XDP_PASS;
    u16 proto = *(u16 *)(data + 12);
    if (proto == bswap16(0x0800)) {
        if (ip + 20 > end || ip[0] != 0x45 || ip[9] != 17) return XDP_PASS;
        l4 = ip + 20; v6 = 0;
    } else if (proto == bswap16(0x86DD)) {
        if (ip + 40 > end || ip[6] != 17) return XDP_PASS;
        l4 = ip + 40; v6 = 1;
    } else {
        return XDP_PASS;
    }
    if (l4 + 8 + 12 > end) return XDP_PASS;   /* UDP header + DNS header */
    if (*(u16 *)(l4 + 2) != bswap16(53)) return XDP_PASS;
    /* Swapping addresses and ports leaves the IPv4 header and UDP checksums unchanged (the
     * one's-complement sum is commutative); only the flags word needs an incremental update. */
    if (v6) {
        for (int i = 0; i < 16; i += 4) {
            u32 t = *(u32 *)(ip + 8 + i);
            *(u32 *)(ip + 8 + i) = *(u32 *)(ip + 24 + i);
            *(u32 *)(ip + 24 + i) = t;
        }
    } else {
        u32 t = *(u32 *)(ip + 12); *(u32 *)(ip + 12) = *(u32 *)(ip + 16); *(u32 *)(ip + 16) = t;
    }
    u16 sp = *(u16 *)l4; *(u16 *)l4 = *(u16 *)(l4 + 2); *(u16 *)(l4 + 2) = sp;
    u8 *dns = l4 + 8;
    u16 oldw = *(u16 *)(dns + 2);
    dns[2] |= 0x80;  /* QR */
    dns[3] &= 0xf0;  /* RCODE 0 */
    u16 neww = *(u16 *)(dns + 2);
    u16 *check = (u16 *)(l4 + 6);
    if (*check) *check = csum_replace(*check, oldw, neww);
    u8 mac[6];
    for (int i = 0; i < 6; i++) { mac[i] = data[i]; data[i] = data[6 + i]; data[6 + i] = mac[i]; }
    return XDP_TX;
}
char _license[] SEC("license") = "GPL";
