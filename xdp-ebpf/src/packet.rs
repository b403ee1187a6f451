//! Bounds-checked packet access: every read and write checks its own bound, next to the access.
use aya_ebpf::programs::XdpContext;
use rampart_common::{Counter, PROBE_META};

/// Copy `len` bytes (one word <= `len` <= `MAX`, from a `W`-aligned source) into the packet at
/// `off`, a `W` word at a time, without `bpf_xdp_store_bytes` (its call and `memcpy` cost more
/// than the copy for a short tail). The frame ends where the bytes do, so the last word is the
/// one ending there (overlapping the one before). `off` and `len` come laundered and masked by
/// the caller, so the verifier bounds them once; a `len` out of range is `bad_len`.
#[inline(always)]
pub fn store_words<W: Copy, const MAX: usize>(
    ctx: &XdpContext,
    off: usize,
    src: *const u8,
    len: usize,
    bad_len: Counter,
) -> Result<(), Counter> {
    let w = core::mem::size_of::<W>();
    if len < w || len > MAX {
        return Err(bad_len);
    }
    let words = src as *const W;
    let mut i = 0;
    while i < MAX / w {
        if i * w + w > len {
            break;
        }
        let p = ptr_at(ctx, off + i * w, w, Counter::DropRewriteFailed)?;
        // SAFETY: word i of the source (i * w + w <= len <= MAX, the source's size), W-aligned
        // as the caller says; w packet bytes checked by ptr_at.
        unsafe { (p as *mut W).write_unaligned(words.add(i).read()) };
        i += 1;
    }
    if len % w != 0 {
        let last = len - w;
        let p = ptr_at(ctx, off + last, w, Counter::DropRewriteFailed)?;
        // SAFETY: the source's last w bytes (len >= w), unaligned; w packet bytes checked by
        // ptr_at.
        unsafe { (p as *mut W).write_unaligned((src.add(last) as *const W).read_unaligned()) };
    }
    Ok(())
}

/// Pointer to `len` bytes at `off`, or `err` when they are not all inside the packet.
#[inline(always)]
pub fn ptr_at(ctx: &XdpContext, off: usize, len: usize, err: Counter) -> Result<*mut u8, Counter> {
    let start = ctx.data();
    let end = ctx.data_end();
    if start + off + len > end {
        return Err(err);
    }
    Ok((start + off) as *mut u8)
}

#[inline(always)]
pub fn u8_at(ctx: &XdpContext, off: usize, err: Counter) -> Result<u8, Counter> {
    let p = ptr_at(ctx, off, 1, err)?;
    // SAFETY: bound checked by ptr_at.
    Ok(unsafe { *p })
}

#[inline(always)]
pub fn be16_at(ctx: &XdpContext, off: usize, err: Counter) -> Result<u16, Counter> {
    let p = ptr_at(ctx, off, 2, err)?;
    // SAFETY: bound checked by ptr_at; packet data has no alignment guarantee.
    Ok(u16::from_be(unsafe { (p as *const u16).read_unaligned() }))
}

#[inline(always)]
pub fn put_be16(ctx: &XdpContext, off: usize, v: u16) -> Result<(), Counter> {
    let p = ptr_at(ctx, off, 2, Counter::PassRewriteFailed)?;
    // SAFETY: bound checked by ptr_at.
    unsafe { (p as *mut u16).write_unaligned(v.to_be()) };
    Ok(())
}

/// A byte of the question name at a variable offset. The verifier grants no range from
/// `p < data_end` for a variable-offset pointer (and LLVM turns `p + 1 > data_end` into exactly
/// that), so check a 2-byte window: every name byte is followed by at least the 4-byte
/// qtype/qclass in any question worth answering.
#[inline(always)]
pub fn name_byte_at(ctx: &XdpContext, off: usize) -> Result<u8, Counter> {
    let p = ptr_at(ctx, off, 2, Counter::PassMalformed)?;
    // SAFETY: two bytes checked by ptr_at.
    Ok(unsafe { *p })
}

/// The question name's next (up to) eight bytes from `back4 + 4`, `rest` (>= 1) of them still
/// the name's, as a little-endian word with the bytes past the name zeroed: read in place. A
/// whole word is in any question when four name bytes remain (type and class follow); with
/// fewer, the word ending with the class is read and shifted down. Given 4 bytes back, so that
/// no offset here is a subtraction the verifier could see go negative.
#[inline(always)]
pub fn name_word(ctx: &XdpContext, back4: usize, rest: usize) -> Result<u64, Counter> {
    let w = if rest >= 4 {
        let p = ptr_at(ctx, back4 + 4, 8, Counter::PassMalformed)?;
        // SAFETY: eight bytes checked by ptr_at; unaligned.
        unsafe { (p as *const u64).read_unaligned() }
    } else {
        let p = ptr_at(ctx, back4 + rest, 8, Counter::PassMalformed)?;
        // SAFETY: as above.
        unsafe { (p as *const u64).read_unaligned() >> (8 * (4 - rest)) }
    };
    Ok(if rest >= 8 {
        w
    } else {
        w & ((1u64 << (8 * rest)) - 1)
    })
}

/// Whether the frame carries the health probe's metadata (see [`PROBE_META`]).
#[inline(always)]
pub fn is_health_probe(ctx: &XdpContext) -> bool {
    let meta = ctx.metadata();
    if meta + 4 > ctx.metadata_end() {
        return false;
    }
    // SAFETY: four metadata bytes checked just above.
    unsafe { (meta as *const u32).read_unaligned() == PROBE_META }
}
