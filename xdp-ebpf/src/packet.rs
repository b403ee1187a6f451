//! Bounds-checked packet access: every read and write checks its own bound, next to the access.
use aya_ebpf::programs::XdpContext;
use rampart_common::{Counter, PROBE_META};

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
