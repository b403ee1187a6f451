//! SipHash-2-4 (Aumasson and Bernstein) over whole 64-bit words, the MAC of RFC 9018 server
//! cookies: straight-line rounds the verifier follows without loops of unknown length.

#[inline(always)]
fn round(v: &mut [u64; 4]) {
    v[0] = v[0].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(13) ^ v[0];
    v[0] = v[0].rotate_left(32);
    v[2] = v[2].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(16) ^ v[2];
    v[0] = v[0].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(21) ^ v[0];
    v[2] = v[2].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(17) ^ v[2];
    v[2] = v[2].rotate_left(32);
}

#[inline(always)]
fn compress(v: &mut [u64; 4], m: u64) {
    v[3] ^= m;
    round(v);
    round(v);
    v[0] ^= m;
}

/// SipHash-2-4 with key (k0, k1) (the 16 key bytes read little-endian) of a message made of the
/// first `n` (at most 4) of `words` (each 8 message bytes read little-endian) and the final
/// block `last` (the remaining bytes, little-endian, with the message length in the top byte).
#[inline(always)]
pub fn siphash24(k: [u64; 2], words: &[u64; 4], n: usize, last: u64) -> u64 {
    let mut v = [
        k[0] ^ 0x736f_6d65_7073_6575,
        k[1] ^ 0x646f_7261_6e64_6f6d,
        k[0] ^ 0x6c79_6765_6e65_7261,
        k[1] ^ 0x7465_6462_7974_6573,
    ];
    let mut i = 0;
    while i < 4 {
        if i >= n {
            break;
        }
        compress(&mut v, words[i]);
        i += 1;
    }
    compress(&mut v, last);
    v[2] ^= 0xff;
    round(&mut v);
    round(&mut v);
    round(&mut v);
    round(&mut v);
    v[0] ^ v[1] ^ v[2] ^ v[3]
}
