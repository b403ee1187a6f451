//! Ordered parallel map over independent items (zones to load, zones and names to compile), on every core.
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// `items.iter().map(f).collect()`, spread over the available cores; results keep the items'
/// order. Workers take the next item as they finish, so one large zone doesn't hold up the rest.
pub fn map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(items.len());
    if threads <= 1 {
        return items.iter().map(f).collect();
    }
    let next = AtomicUsize::new(0);
    let mut results: Vec<(usize, R)> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut out = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(item) = items.get(i) else { break };
                        out.push((i, f(item)));
                    }
                    out
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("worker thread panicked"))
            .collect()
    });
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}

/// `items.iter().flat_map(f).collect()` on every core, in the items' order: `f` pushes an
/// item's results. Workers, started once, take pieces of `PIECE` items as they finish and hand
/// each piece's results to this thread, which appends them in order to the result (room for
/// `capacity` from the start). Long-lived workers reuse the memory of the pieces they made
/// before: a thread started per batch would take fresh pages for each, and a fresh page costs
/// the kernel a zeroing (most of a million-name compile's time went there).
pub fn flat_map<T: Sync, R: Send>(
    items: &[T],
    capacity: usize,
    f: impl Fn(&T, &mut Vec<R>) + Sync,
) -> Vec<R> {
    const PIECE: usize = 512;
    let pieces: Vec<&[T]> = items.chunks(PIECE).collect();
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(pieces.len());
    // Results per item, rounded up: a piece's vector seldom grows.
    let per_item = capacity.div_ceil(items.len().max(1));
    let mut out = Vec::with_capacity(capacity);
    if threads <= 1 {
        for item in items {
            f(item, &mut out);
        }
        return out;
    }
    let next = AtomicUsize::new(0);
    // Bounded: workers wait while this thread appends (its appending is the slow part only
    // when the results are large, and then they'd pile up).
    let (tx, rx) = std::sync::mpsc::sync_channel::<(usize, Vec<R>)>(threads * 4);
    std::thread::scope(|s| {
        for _ in 0..threads {
            let (tx, next, pieces, f) = (tx.clone(), &next, &pieces, &f);
            s.spawn(move || {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(piece) = pieces.get(i) else { break };
                    let mut v = Vec::with_capacity(per_item * piece.len());
                    for item in *piece {
                        f(item, &mut v);
                    }
                    if tx.send((i, v)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        // Pieces finish out of order: each waits here until those before it are appended.
        let mut early = std::collections::BTreeMap::new();
        let mut want = 0;
        for (i, v) in rx {
            early.insert(i, v);
            while let Some(v) = early.remove(&want) {
                out.extend(v);
                want += 1;
            }
        }
    });
    out
}

/// Appends `f` of every item to `out`, in the items' order, on every core: each worker writes
/// its own pieces of `out`'s room, so the fresh pages under them are faulted (and zeroed by the
/// kernel) on every core too, not by one thread appending. On an error, the first in the items'
/// order is returned and `out` keeps its length (results written past it are never dropped).
pub fn extend_with<T: Sync, R: Send, E: Send>(
    items: &[T],
    out: &mut Vec<R>,
    f: impl Fn(&T) -> Result<R, E> + Sync,
) -> Result<(), E> {
    const PIECE: usize = 4096;
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(items.len().div_ceil(PIECE));
    let len = out.len();
    out.reserve(items.len());
    let first_error: Mutex<Option<(usize, E)>> = Mutex::new(None);
    {
        let room = &mut out.spare_capacity_mut()[..items.len()];
        let pieces = Mutex::new(room.chunks_mut(PIECE).zip(items.chunks(PIECE)).enumerate());
        let work = || {
            loop {
                let next = pieces.lock().unwrap_or_else(|e| e.into_inner()).next();
                let Some((i, (room, items))) = next else {
                    break;
                };
                for (slot, item) in room.iter_mut().zip(items) {
                    match f(item) {
                        Ok(r) => {
                            slot.write(r);
                        }
                        Err(e) => {
                            let mut first = first_error.lock().unwrap_or_else(|e| e.into_inner());
                            if first.as_ref().is_none_or(|&(j, _)| i < j) {
                                *first = Some((i, e));
                            }
                            break;
                        }
                    }
                }
            }
        };
        std::thread::scope(|s| {
            for _ in 1..threads {
                s.spawn(&work);
            }
            work();
        });
    }
    if let Some((_, e)) = first_error.into_inner().unwrap_or_else(|e| e.into_inner()) {
        return Err(e);
    }
    // SAFETY: no error, so every one of the `items.len()` slots after `len` was written.
    unsafe { out.set_len(len + items.len()) };
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn keeps_order_and_covers_every_item() {
        let items: Vec<u32> = (0..1000).collect();
        assert_eq!(
            super::map(&items, |x| x * 2),
            items.iter().map(|x| x * 2).collect::<Vec<_>>()
        );
        assert!(super::map(&[] as &[u32], |x| *x).is_empty());
    }

    #[test]
    fn flat_map_keeps_order_across_pieces_and_windows() {
        let items: Vec<u32> = (0..100_000).collect();
        let expected: Vec<u32> = items
            .iter()
            .flat_map(|&x| [x; 3])
            .filter(|x| x % 7 != 0)
            .collect();
        let got = super::flat_map(&items, 10, |&x, out| {
            if x % 7 != 0 {
                out.extend([x; 3]);
            }
        });
        assert_eq!(got, expected);
        assert!(super::flat_map(&[] as &[u32], 0, |x, out| out.push(*x)).is_empty());
    }

    #[test]
    fn extend_with_keeps_order_and_reports_the_first_error() {
        let items: Vec<u32> = (0..100_000).collect();
        let mut out = vec![7u64];
        super::extend_with(&items, &mut out, |&x| Ok::<_, ()>(u64::from(x) * 3)).unwrap();
        let expected: Vec<u64> = std::iter::once(7)
            .chain(items.iter().map(|&x| u64::from(x) * 3))
            .collect();
        assert_eq!(out, expected);
        let failing = |&x: &u32| if x % 20_000 == 19_999 { Err(x) } else { Ok(x) };
        let mut out = vec![1u32, 2];
        assert_eq!(super::extend_with(&items, &mut out, failing), Err(19_999));
        assert_eq!(out, [1, 2], "unchanged on an error");
        super::extend_with(&[] as &[u32], &mut out, |&x| Ok::<_, ()>(x)).unwrap();
        assert_eq!(out, [1, 2]);
    }
}
