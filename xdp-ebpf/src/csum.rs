//! Internet checksum arithmetic (RFC 1071) on 32-bit accumulators folded at the end.

/// Fold a 32-bit (or wider) accumulator of 16-bit words into 16 bits.
#[inline(always)]
pub fn fold(mut sum: u64) -> u16 {
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    sum as u16
}

/// The final checksum field value: complement of the folded sum.
#[inline(always)]
pub fn finish(sum: u64) -> u16 {
    !fold(sum)
}

/// A sum precomputed as if its bytes started at an even offset, placed at `off` instead: an odd
/// offset swaps every byte's weight, which is the same as swapping the sum's bytes (RFC 1071 §2B).
#[inline(always)]
pub fn at_offset(sum: u16, off: usize) -> u64 {
    if off & 1 == 0 {
        sum as u64
    } else {
        sum.swap_bytes() as u64
    }
}
