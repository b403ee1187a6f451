/* XDP_PASS everything: attached to the client end of a lab veth so that veth delivers the
 * node's XDP_TX frames (veth only redirects XDP frames to a peer that runs XDP itself). */
#define SEC(n) __attribute__((section(n), used))
struct xdp_md;
SEC("xdp") int xdp_pass(struct xdp_md *ctx) { return 2; /* XDP_PASS */ }
char _license[] SEC("license") = "GPL";
