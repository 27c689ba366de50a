//! Exhaustive models of the page table (src/table.rs): two slots per
//! bucket under loom, so that three pages of one bucket reach the
//! overflow list. Every read of an overflow entry and its destruction are
//! declared to loom, which reports a free not ordered after a read.
#![cfg(loom)]

mod common;

use std::sync::Arc;

use common::run;
use loom::thread;
use pagepool::__model::Table;

/// Preemption bound of these models when `LOOM_MAX_PREEMPTIONS` is unset.
const TABLE_BOUND: usize = 3;

/// A table of one bucket (sized for one frame) holding `pages`, page `n`
/// mapped to frame `10 * n`.
fn table_with(pages: &[u64]) -> Arc<Table> {
    let table = Arc::new(Table::new(1));
    let handle = table.register();
    let guard = handle.pin();
    for &page in pages {
        table.insert(page, 10 * page as usize, &guard).unwrap();
    }
    table
}

#[test]
fn inserts_and_removes_of_one_page_admit_one_mapping_and_spare_the_neighbours() {
    run(TABLE_BOUND, || {
        let table = table_with(&[2]);
        let inserter = {
            let table = table.clone();
            thread::spawn(move || {
                let handle = table.register();
                let guard = handle.pin();
                let won = table.insert(1, 10, &guard).is_ok();
                if won {
                    assert!(table.remove(1, 10, &guard));
                }
                won
            })
        };
        let handle = table.register();
        let guard = handle.pin();
        let won = table.insert(1, 11, &guard).is_ok();
        assert_eq!(
            table.lookup(2, &guard),
            Some(20),
            "a neighbour's insert or remove hid page 2"
        );
        if won {
            assert_eq!(
                table.lookup(1, &guard),
                Some(11),
                "our mapping of page 1 was lost"
            );
        }
        drop(guard);
        let other_won = inserter.join().unwrap();
        // Both may win only if the first removal came before the second
        // insert; at least one always wins.
        assert!(won || other_won, "an insert of an absent page failed");
        let guard = handle.pin();
        assert_eq!(table.lookup(1, &guard), won.then_some(11));
        assert_eq!(table.lookup(2, &guard), Some(20));
    });
}

/// The stale-hint case behind the pool's page-id checks: a slot is
/// vacated (page 1) and refilled (page 3) while a reader looks page 1 up,
/// so the reader may be handed page 3's frame. It is never handed a frame
/// no mapping ever had, a page that stays mapped (2, in the other slot) is
/// always found, and the exact lookup is exact.
#[test]
fn a_slot_vacated_and_refilled_under_a_reader_gives_only_a_hint() {
    // Across executions: the model does reach the stale hint.
    static STALE_SEEN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    run(TABLE_BOUND, || {
        let table = table_with(&[1, 2]);
        let writer = {
            let table = table.clone();
            thread::spawn(move || {
                let handle = table.register();
                let guard = handle.pin();
                assert!(table.remove(1, 10, &guard));
                table.insert(3, 30, &guard).unwrap();
            })
        };
        let handle = table.register();
        let guard = handle.pin();
        let hint = table.lookup(1, &guard);
        assert!(matches!(hint, None | Some(10) | Some(30)), "hint {hint:?}");
        if hint == Some(30) {
            STALE_SEEN.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        assert_eq!(
            table.lookup(2, &guard),
            Some(20),
            "a page that stays mapped was missed"
        );
        let exact = table.lookup_exact(1, &guard);
        assert!(matches!(exact, None | Some(10)), "exact lookup {exact:?}");
        drop(guard);
        writer.join().unwrap();
        let guard = handle.pin();
        assert_eq!(table.lookup_exact(1, &guard), None);
        assert_eq!(table.lookup(3, &guard), Some(30));
    });
    assert!(
        STALE_SEEN.load(std::sync::atomic::Ordering::Relaxed),
        "no execution handed page 1's reader page 3's frame"
    );
}

/// An overflow entry removed under a pinned reader is freed only after the
/// reader unpins (invariant 4); loom reports the free otherwise.
#[test]
fn an_overflow_entry_removed_under_a_reader_outlives_the_read() {
    run(TABLE_BOUND, || {
        // Pages 1 and 2 fill the slots; page 3 is in the overflow list.
        let table = table_with(&[1, 2, 3]);
        let remover = {
            let table = table.clone();
            thread::spawn(move || {
                let handle = table.register();
                let guard = handle.pin();
                assert!(table.remove(3, 30, &guard));
                drop(guard);
                // Push the epoch on so the entry can be freed here, too.
                for _ in 0..2 {
                    handle.pin().flush();
                }
            })
        };
        let handle = table.register();
        {
            let guard = handle.pin();
            let seen = table.lookup(3, &guard);
            assert!(matches!(seen, None | Some(30)), "{seen:?}");
        }
        remover.join().unwrap();
        for _ in 0..2 {
            handle.pin().flush();
        }
        assert_eq!(table.lookup(3, &handle.pin()), None);
    });
}
