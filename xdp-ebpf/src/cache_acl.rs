//! Who may have answers from the resolver cache (`resolver.allow`), the trie's verdicts memoised
//! per CPU by exact address.
use aya_ebpf::{
    macros::map,
    maps::{LpmTrie, PerCpuArray, lpm_trie::Key},
};
use rampart_common::WhitelistAddr;

/// Clients allowed recursion (`resolver.allow`, IPv6, IPv4 mapped); anyone else goes up (and
/// gets REFUSED there). Written once, when the daemon enables the cache.
#[map(name = "CACHE_ACL")]
static CACHE_ACL: LpmTrie<WhitelistAddr, u8> = LpmTrie::with_max_entries(1, 0);

/// A verdict of the trie for one address.
#[repr(C)]
pub struct Memo {
    addr: [u32; 4],
    /// 0: empty, `ALLOWED` or `REFUSED`.
    verdict: u32,
}

const MEMO_WAYS: usize = 8;
const ALLOWED: u32 = 1;
const REFUSED: u32 = 2;

/// The last verdicts, by address: a resolver's clients are few and keep asking, and a trie walk
/// costs more than the rest of the check (~10 ns a query).
#[map(name = "CACHE_ACL_MEMO")]
static CACHE_ACL_MEMO: PerCpuArray<[Memo; MEMO_WAYS]> = PerCpuArray::with_max_entries(1, 0);

/// Whether `addr` (IPv6, IPv4 mapped) may have answers from the cache.
#[inline(always)]
pub fn allowed(addr: &[u32; 4]) -> bool {
    let Some(memo) = CACHE_ACL_MEMO.get_ptr_mut(0) else {
        return in_trie(addr);
    };
    let way = ((addr[3] ^ addr[3] >> 16 ^ addr[1]) as usize) & (MEMO_WAYS - 1);
    // SAFETY: this CPU's memo (per-CPU map: nothing else writes it meanwhile); way < 8.
    let m = unsafe { &mut (*memo)[way] };
    if m.verdict != 0 && m.addr == *addr {
        return m.verdict == ALLOWED;
    }
    let yes = in_trie(addr);
    m.addr = *addr;
    m.verdict = if yes { ALLOWED } else { REFUSED };
    yes
}

#[inline(always)]
fn in_trie(addr: &[u32; 4]) -> bool {
    // SAFETY: [u32; 4] and [u8; 16] have the same size and any bit pattern is valid.
    let data: WhitelistAddr = unsafe { core::mem::transmute(*addr) };
    CACHE_ACL.get(Key::new(128, data)).is_some()
}
