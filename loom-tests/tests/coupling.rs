//! An exhaustive model of optimistic lock coupling: a reader coupling
//! from a parent to a child while a writer splits the child.
//!
//! Three resident pages (32-byte pages under loom: two data words). The
//! parent's word 0 names the child that holds key k; the child's word 0
//! says whether it holds k. The writer splits A, moving k to a new right
//! half B, with the parent and A latched: B gets k, A loses it, the
//! parent points at B. A reader that validates must find k wherever the
//! parent it validated pointed: a reader that reads A after the split
//! through a pointer read before it must fail validation. Remove either
//! of `OptimisticGuard::child`'s parent checks and loom finds the
//! schedule in which it does not.
#![cfg(loom)]

mod common;

use std::sync::Arc;

use common::run;
use loom::thread;
use pagepool::{BufferPool, MemoryStorage, OlcError, PageId, PoolConfig, Restart};

const COUPLING_BOUND: usize = 5;

#[test]
fn a_reader_coupling_through_a_parent_never_validates_a_stale_child() {
    run(COUPLING_BOUND, || {
        let pool = BufferPool::open(PoolConfig::new(4)).unwrap();
        let file = pool.open_storage(Box::new(MemoryStorage::new())).unwrap();
        let mut ids = Vec::new();
        for _ in 0..3 {
            ids.push(pool.allocate(file).unwrap().0);
        }
        let (parent, a, b) = (ids[0], ids[1], ids[2]);
        pool.write(parent)
            .unwrap()
            .store_u64(0, a.page_no())
            .unwrap();
        pool.write(a).unwrap().store_u64(0, 1).unwrap();
        let pool = Arc::new(pool);
        let writer = {
            let pool = Arc::clone(&pool);
            thread::spawn(move || {
                let mut parent_page = pool.write(parent).unwrap();
                let mut left = pool.write(a).unwrap();
                let mut right = pool.write(b).unwrap();
                right.store_u64(0, 1).unwrap();
                left.store_u64(0, 0).unwrap();
                parent_page.store_u64(0, b.page_no()).unwrap();
            })
        };
        let pin = pool.pin_thread();
        let read = || -> Result<u64, OlcError> {
            let guard = pin.optimistic_guard(parent)?;
            let child_no = guard.view().load_u64(0).map_err(|_| Restart)?;
            let child = guard.child(PageId::new(file, child_no))?;
            let has_key = child.view().load_u64(0).map_err(|_| Restart)?;
            Ok(child.finish(has_key)?)
        };
        match read() {
            Ok(has_key) => assert_eq!(has_key, 1, "a validated read missed the key"),
            Err(OlcError::Restart) => {}
            Err(OlcError::Pool(error)) => panic!("{error}"),
        }
        drop(pin);
        writer.join().unwrap();
    });
}
