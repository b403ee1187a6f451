//! Ordered parallel map over independent items (zones to load, zones and names to compile), on every core.
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
}
