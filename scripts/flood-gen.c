/* flood-gen: the flood lab's query generator. Crafts Ethernet / IPv4 or IPv6 / UDP / DNS queries
 * and sends them through an AF_PACKET socket with sendmmsg (qdisc bypassed), as fast as it can or
 * at a fixed rate, bounded by a duration and a count. What kxdpgun (knot-dnsutils) can't do:
 * sources spread over many prefixes (a distinct /56 per packet until the prefix is exhausted) and
 * queries carrying well-formed but wrong DNS server cookies (RFC 7873, RFC 9018 layout).
 *
 *   flood-gen -i IF -D DSTMAC -d DST -s SRC[/LEN] [-g GRAN] -n NAME [-R] [-C] [-e]
 *             -t SECONDS [-c COUNT] [-r PPS] [-b BATCH] [-q QTYPE] [-P PORT] [-x SEED]
 *
 *   -s SRC/LEN   spoofed sources: bits LEN..GRAN of SRC take a distinct value per packet (an odd
 *                multiplier modulo 2^(GRAN-LEN) is a bijection, so the first 2^(GRAN-LEN) packets
 *                all come from different GRAN-prefixes); without /LEN one source address
 *   -g GRAN      the prefix length that counts as one source (56 for IPv6, 32 for IPv4: RRL's
 *                /56 and, inside a documentation /24, one address each)
 *   -n NAME      the hot name; with -R: the zone, and each query asks a random 12-character label
 *                under it (water torture: NXDOMAIN)
 *   -C           an EDNS COOKIE option with a random client cookie and a 16-byte server cookie
 *                shaped like RFC 9018's (version 1, reserved 0, the current time, 8 random bytes
 *                of "hash"): well formed, never valid. Implies -e.
 *   -e           an OPT record (UDP size 1232, no DO)
 *   -f FILE      instead of -n: the queries of a kxdpgun/dnsperf query file ("NAME TYPE" a line, TYPE a
 *                mnemonic of A AAAA NS SOA MX TXT PTR CNAME DS DNSKEY ANY or a number), one after
 *                another, from the top again at its end: what kxdpgun -i sends, where its AF_XDP
 *                program can't be loaded (scripts/bench's flood tools)
 * Prints one line: "flood-gen: packets=N bytes=B seconds=S pps=R sources=K" (bytes: Ethernet
 * frames as the interface counts them, without FCS; sources: distinct GRAN-prefixes used).
 * IPv4 header and UDP checksums are computed in full (the UDP one is mandatory on IPv6). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netpacket/packet.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_BATCH 256
#define FRAME_MAX 512
#define MAX_QUERIES 1000000

/* A query of a -f file, in wire form. */
struct query { uint8_t name[255]; uint8_t len; uint16_t qtype; };

static volatile sig_atomic_t stop;
static void on_signal(int sig) { (void)sig; stop = 1; }

static void die(const char *msg) { fprintf(stderr, "flood-gen: %s\n", msg); exit(2); }

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* xorshift64*: fast, good enough for IDs, ports and labels */
static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static uint64_t rnd(void) {
    uint64_t x = rng_state;
    x ^= x >> 12; x ^= x << 25; x ^= x >> 27;
    rng_state = x;
    return x * 0x2545f4914f6cdd1dULL;
}

static uint32_t csum_add(uint32_t sum, const uint8_t *p, size_t n) {
    for (; n > 1; p += 2, n -= 2) sum += (uint32_t)p[0] << 8 | p[1];
    if (n) sum += (uint32_t)p[0] << 8;
    return sum;
}
static uint16_t csum_fold(uint32_t sum) {
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)~sum;
}

static int parse_mac(const char *s, uint8_t mac[6]) {
    return sscanf(s, "%hhx:%hhx:%hhx:%hhx:%hhx:%hhx", &mac[0], &mac[1], &mac[2], &mac[3], &mac[4],
                  &mac[5]) == 6 ? 0 : -1;
}

/* Encode a dotted name into wire form; returns its length or -1. */
static int encode_name(const char *name, uint8_t *out) {
    int n = 0;
    const char *p = name;
    while (*p) {
        const char *dot = strchr(p, '.');
        size_t len = dot ? (size_t)(dot - p) : strlen(p);
        if (len == 0 || len > 63 || n + len + 2 > 255) return -1;
        out[n++] = (uint8_t)len;
        memcpy(out + n, p, len);
        n += len;
        p += len;
        if (*p == '.') p++;
    }
    out[n++] = 0;
    return n;
}

static int type_code(const char *t) {
    static const struct { const char *m; int code; } types[] = {
        {"A", 1}, {"NS", 2}, {"CNAME", 5}, {"SOA", 6}, {"PTR", 12}, {"MX", 15}, {"TXT", 16},
        {"AAAA", 28}, {"DS", 43}, {"DNSKEY", 48}, {"ANY", 255}};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (!strcasecmp(t, types[i].m)) return types[i].code;
    char *end;
    long v = strtol(t, &end, 10);
    return *end || v < 1 || v > 65535 ? -1 : (int)v;
}

/* Load a query file; returns the number of queries, or dies naming the bad line. */
static size_t load_queries(const char *path, struct query **out) {
    FILE *f = fopen(path, "r");
    if (!f) { perror("flood-gen: -f"); exit(2); }
    struct query *q = calloc(MAX_QUERIES, sizeof *q);
    if (!q) die("out of memory");
    char line[512], name[300], type[32];
    size_t n = 0, lineno = 0;
    while (fgets(line, sizeof line, f) && n < MAX_QUERIES) {
        lineno++;
        if (sscanf(line, "%299s %31s", name, type) != 2) {
            if (strspn(line, " \t\r\n") == strlen(line)) continue;
            fprintf(stderr, "flood-gen: %s:%zu: expected NAME TYPE\n", path, lineno);
            exit(2);
        }
        size_t l = strlen(name);
        if (l > 1 && name[l - 1] == '.') name[l - 1] = 0;
        int wl = encode_name(name, q[n].name), code = type_code(type);
        if (wl < 0 || code < 0) {
            fprintf(stderr, "flood-gen: %s:%zu: bad name or type\n", path, lineno);
            exit(2);
        }
        q[n].len = (uint8_t)wl;
        q[n].qtype = (uint16_t)code;
        n++;
    }
    fclose(f);
    if (!n) die("-f: no queries");
    *out = q;
    return n;
}

/* Set bits [from, to) of a big-endian address to the low bits of v. */
static void set_bits(uint8_t *addr, int from, int to, uint32_t v) {
    for (int b = to - 1; b >= from; b--, v >>= 1) {
        uint8_t m = (uint8_t)(0x80 >> (b % 8));
        if (v & 1) addr[b / 8] |= m; else addr[b / 8] &= (uint8_t)~m;
    }
}

static void usage(void) {
    fprintf(stderr, "usage: flood-gen -i IF -D DSTMAC -d DST -s SRC[/LEN] [-g GRAN] (-n NAME [-R] | -f FILE) [-C] [-e]\n"
                    "                 -t SECONDS [-c COUNT] [-r PPS] [-b BATCH] [-q QTYPE] [-P PORT] [-x SEED]\n");
    exit(2);
}

int main(int argc, char **argv) {
    const char *ifname = NULL, *dmac_s = NULL, *dst_s = NULL, *src_s = NULL, *name = NULL, *qfile = NULL;
    int gran = -1, random_names = 0, cookie = 0, edns = 0, batch = 64, qtype = 1, port = 53;
    double secs = 0, rate = 0;
    unsigned long long count = 0;
    int opt;
    while ((opt = getopt(argc, argv, "i:D:d:s:g:n:f:RCet:c:r:b:q:P:x:h")) != -1) {
        switch (opt) {
        case 'i': ifname = optarg; break;
        case 'D': dmac_s = optarg; break;
        case 'd': dst_s = optarg; break;
        case 's': src_s = optarg; break;
        case 'g': gran = atoi(optarg); break;
        case 'n': name = optarg; break;
        case 'f': qfile = optarg; break;
        case 'R': random_names = 1; break;
        case 'C': cookie = 1; edns = 1; break;
        case 'e': edns = 1; break;
        case 't': secs = atof(optarg); break;
        case 'c': count = strtoull(optarg, NULL, 10); break;
        case 'r': rate = atof(optarg); break;
        case 'b': batch = atoi(optarg); break;
        case 'q': qtype = atoi(optarg); break;
        case 'P': port = atoi(optarg); break;
        case 'x': rng_state = strtoull(optarg, NULL, 0) | 1; break;
        default: usage();
        }
    }
    if (!ifname || !dmac_s || !dst_s || !src_s || !name == !qfile) usage();
    if (qfile && random_names) die("-R takes -n, not -f");
    struct query *queries = NULL;
    size_t nqueries = qfile ? load_queries(qfile, &queries) : 0;
    if (qfile) name = ""; /* the frames' first name (the root); each packet writes its own */
    /* bounded by construction: a duration is required and capped */
    if (secs <= 0 || secs > 600) die("-t SECONDS is required (0 < SECONDS <= 600)");
    if (batch < 1 || batch > MAX_BATCH) die("-b BATCH must be 1..256");

    uint8_t dmac[6], smac[6];
    if (parse_mac(dmac_s, dmac)) die("bad -D MAC");
    int fd = socket(AF_PACKET, SOCK_RAW, 0); /* protocol 0: send only, receive nothing */
    if (fd < 0) { perror("flood-gen: socket"); return 2; }
    struct ifreq ifr = {0};
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", ifname);
    if (ioctl(fd, SIOCGIFHWADDR, &ifr) < 0) { perror("flood-gen: SIOCGIFHWADDR"); return 2; }
    memcpy(smac, ifr.ifr_hwaddr.sa_data, 6);
    struct sockaddr_ll sll = {.sll_family = AF_PACKET, .sll_ifindex = (int)if_nametoindex(ifname)};
    if (!sll.sll_ifindex) die("no such interface");
    if (bind(fd, (struct sockaddr *)&sll, sizeof sll) < 0) { perror("flood-gen: bind"); return 2; }
    int one = 1;
    setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof one); /* best effort */

    /* addresses */
    char srcbuf[INET6_ADDRSTRLEN + 8];
    snprintf(srcbuf, sizeof srcbuf, "%s", src_s);
    int plen = -1;
    char *slash = strchr(srcbuf, '/');
    if (slash) { *slash = 0; plen = atoi(slash + 1); }
    uint8_t src[16], dst[16];
    int v6 = strchr(dst_s, ':') != NULL;
    int alen = v6 ? 16 : 4, abits = alen * 8;
    if (inet_pton(v6 ? AF_INET6 : AF_INET, srcbuf, src) != 1) die("bad -s address (same family as -d)");
    if (inet_pton(v6 ? AF_INET6 : AF_INET, dst_s, dst) != 1) die("bad -d address");
    if (gran < 0) gran = v6 ? 56 : 32;
    if (plen < 0) plen = gran; /* one source */
    if (plen > gran || gran > abits) die("need LEN <= GRAN <= address bits");
    int sbits = gran - plen > 32 ? 32 : gran - plen;
    uint32_t smask = sbits == 32 ? 0xffffffffu : ((1u << sbits) - 1);

    /* the DNS question, fixed except for the random label */
    uint8_t qname[256];
    char full[300];
    if (random_names) snprintf(full, sizeof full, "xxxxxxxxxxxx.%s", name);
    else snprintf(full, sizeof full, "%s", name);
    int qlen = encode_name(full, qname);
    if (qlen < 0) die("bad -n name");

    const int l3 = v6 ? 40 : 20;
    const int opt_len = edns ? 11 + (cookie ? 4 + 8 + 16 : 0) : 0;
    /* with -f these change per packet (and so do the frame's length fields) */
    int dns_len = 12 + qlen + 4 + opt_len;
    int udp_len = 8 + dns_len;
    int frame_len = 14 + l3 + udp_len;
    if (14 + l3 + 8 + 12 + 255 + 4 + opt_len > FRAME_MAX) die("query too long");

    static uint8_t frames[MAX_BATCH][FRAME_MAX];
    struct iovec iov[MAX_BATCH];
    struct mmsghdr msgs[MAX_BATCH];
    memset(msgs, 0, sizeof msgs);
    for (int i = 0; i < batch; i++) {
        uint8_t *f = frames[i];
        memcpy(f, dmac, 6);
        memcpy(f + 6, smac, 6);
        f[12] = v6 ? 0x86 : 0x08; f[13] = v6 ? 0xdd : 0x00;
        uint8_t *ip = f + 14;
        if (v6) {
            ip[0] = 0x60; ip[4] = udp_len >> 8; ip[5] = udp_len & 0xff; ip[6] = 17; ip[7] = 64;
            memcpy(ip + 24, dst, 16);
        } else {
            ip[0] = 0x45; ip[2] = (20 + udp_len) >> 8; ip[3] = (20 + udp_len) & 0xff;
            ip[6] = 0x40; /* DF */ ip[8] = 64; ip[9] = 17;
            memcpy(ip + 16, dst, 4);
        }
        uint8_t *udp = ip + l3;
        udp[2] = port >> 8; udp[3] = port & 0xff; udp[4] = udp_len >> 8; udp[5] = udp_len & 0xff;
        uint8_t *dns = udp + 8;
        dns[2] = 0x00; /* QUERY, RD=0: an authoritative flood */
        dns[5] = 1;    /* QDCOUNT */
        dns[11] = edns; /* ARCOUNT */
        memcpy(dns + 12, qname, qlen);
        uint8_t *q = dns + 12 + qlen;
        q[0] = qtype >> 8; q[1] = qtype & 0xff; q[2] = 0; q[3] = 1;
        if (edns) {
            uint8_t *o = q + 4;
            o[0] = 0; o[1] = 0; o[2] = 41; o[3] = 1232 >> 8; o[4] = 1232 & 0xff;
            o[5] = o[6] = o[7] = o[8] = 0;
            o[9] = 0; o[10] = cookie ? 28 : 0;
            if (cookie) { o[11] = 0; o[12] = 10; o[13] = 0; o[14] = 24; }
        }
        iov[i].iov_base = f;
        iov[i].iov_len = frame_len;
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }

    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    static const char alnum[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    unsigned long long sent = 0, seq = 0, bytes = 0;
    const double t0 = now(), deadline = t0 + secs;
    double t = t0;
    while (!stop && t < deadline && (!count || sent < count)) {
        int n = batch;
        if (count && count - sent < (unsigned long long)n) n = (int)(count - sent);
        if (rate > 0) {
            /* pace: never ahead of rate * elapsed; small batches keep the flow smooth */
            double allowed = rate * (t - t0) + 1 - (double)sent;
            if (allowed < 1) {
                struct timespec ts = {0, (long)((1 - allowed) / rate * 1e9)};
                nanosleep(&ts, NULL);
                t = now();
                continue;
            }
            if (allowed < n) n = (int)allowed;
        }
        for (int i = 0; i < n; i++, seq++) {
            uint8_t *f = frames[i], *ip = f + 14, *udp = ip + l3, *dns = udp + 8;
            uint64_t r = rnd();
            if (qfile) {
                const struct query *qq = &queries[seq % nqueries];
                qlen = qq->len;
                memcpy(dns + 12, qq->name, qlen);
                uint8_t *q = dns + 12 + qlen;
                q[0] = qq->qtype >> 8; q[1] = qq->qtype & 0xff; q[2] = 0; q[3] = 1;
                if (edns) {
                    uint8_t *o = q + 4;
                    o[0] = 0; o[1] = 0; o[2] = 41; o[3] = 1232 >> 8; o[4] = 1232 & 0xff;
                    o[5] = o[6] = o[7] = o[8] = 0; o[9] = 0; o[10] = cookie ? 28 : 0;
                    if (cookie) { o[11] = 0; o[12] = 10; o[13] = 0; o[14] = 24; }
                }
                dns_len = 12 + qlen + 4 + opt_len;
                udp_len = 8 + dns_len;
                frame_len = 14 + l3 + udp_len;
                udp[4] = udp_len >> 8; udp[5] = udp_len & 0xff;
                if (v6) { ip[4] = udp_len >> 8; ip[5] = udp_len & 0xff; }
                else { ip[2] = (20 + udp_len) >> 8; ip[3] = (20 + udp_len) & 0xff; }
                iov[i].iov_len = frame_len;
            }
            uint8_t *s = v6 ? ip + 8 : ip + 12;
            memcpy(s, src, alen);
            if (sbits) set_bits(s, plen, plen + sbits, (uint32_t)(seq * 2654435761u) & smask);
            uint16_t sport = (uint16_t)(1024 + (r % 64512));
            udp[0] = sport >> 8; udp[1] = sport & 0xff;
            dns[0] = (uint8_t)(r >> 16); dns[1] = (uint8_t)(r >> 24);
            if (random_names) {
                uint64_t r2 = rnd();
                for (int k = 0; k < 12; k++, r2 >>= 5) dns[13 + k] = (uint8_t)alnum[(r2 & 31) % 36];
            }
            if (cookie) {
                uint8_t *c = dns + 12 + qlen + 4 + 15; /* client cookie, then server cookie */
                uint64_t cc = rnd(), h = rnd();
                uint32_t ts = (uint32_t)time(NULL);
                memcpy(c, &cc, 8);
                c[8] = 1; c[9] = c[10] = c[11] = 0; /* version 1, reserved */
                c[12] = ts >> 24; c[13] = ts >> 16; c[14] = ts >> 8; c[15] = ts;
                memcpy(c + 16, &h, 8);
            }
            /* checksums */
            udp[6] = udp[7] = 0;
            uint32_t sum = csum_add(0, s, alen) + csum_add(0, v6 ? ip + 24 : ip + 16, alen);
            sum += 17 + udp_len;
            sum = csum_add(sum, udp, udp_len);
            uint16_t c = csum_fold(sum);
            if (c == 0) c = 0xffff;
            udp[6] = c >> 8; udp[7] = c & 0xff;
            if (!v6) {
                uint16_t id = (uint16_t)(r >> 32);
                ip[4] = id >> 8; ip[5] = id & 0xff;
                ip[10] = ip[11] = 0;
                uint16_t hc = csum_fold(csum_add(0, ip, 20));
                ip[10] = hc >> 8; ip[11] = hc & 0xff;
            }
        }
        int off = 0;
        while (off < n && !stop) {
            int k = sendmmsg(fd, msgs + off, (unsigned)(n - off), 0);
            if (k < 0) {
                if (errno == EINTR) continue;
                if (errno == ENOBUFS || errno == EAGAIN) { usleep(50); continue; }
                perror("flood-gen: sendmmsg");
                stop = 1;
                break;
            }
            for (int j = off; j < off + k; j++) bytes += iov[j].iov_len;
            off += k;
        }
        /* the frames of a partly sent batch are rebuilt next round: count what went out */
        sent += (unsigned long long)off;
        seq -= (unsigned long long)(n - off);
        t = now();
    }
    double el = now() - t0;
    unsigned long long distinct = sbits == 0 ? 1 : (sbits >= 63 || sent < (1ULL << sbits) ? sent : (1ULL << sbits));
    printf("flood-gen: packets=%llu bytes=%llu seconds=%.3f pps=%.0f sources=%llu\n", sent,
           bytes, el, el > 0 ? sent / el : 0.0, distinct);
    return 0;
}
