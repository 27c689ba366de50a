//! The async API under tokio: many more tasks than threads, misses that
//! suspend tasks and not threads, guards held across `.await`.

mod common;

use std::future::Future;
use std::path::Path;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use pagepool::testing::{FaultController, FaultKind, Faulty, IoOp};
use pagepool::{
    BufferPool, DirectFile, EngineKind, Error, FileId, IoEngine, IoMode, OwnedPageMut,
    OwnedPageRef, PageId, PoolConfig, ReadFuture, Storage, WriteFuture,
};

const PAGES: u64 = 256;

fn assert_send_sync<T: Send + Sync>() {}
fn assert_send<T: Send>() {}

#[test]
fn the_async_types_are_send_and_the_pool_is_shared() {
    assert_send_sync::<BufferPool>();
    assert_send_sync::<OwnedPageRef>();
    assert_send_sync::<OwnedPageMut>();
    assert_send::<ReadFuture>();
    assert_send::<WriteFuture>();
    fn optimistic_future_is_send(pool: &Arc<BufferPool>, page_id: PageId) -> impl Send + '_ {
        pool.optimistic_async(page_id, |view| view.load_u64(0))
    }
    let _ = optimistic_future_is_send;
}

fn make_file(path: &Path) {
    let pool = BufferPool::open(PoolConfig::new(32).io_engine(IoEngine::Sync)).unwrap();
    let file = pool.open_file(path).unwrap();
    for n in 0..PAGES {
        let (_, mut page) = pool.allocate(file).unwrap();
        page.store_u64(0, n * 31 + 5).unwrap();
    }
    pool.close().unwrap();
}

fn value(page_id: PageId) -> u64 {
    page_id.page_no() * 31 + 5
}

fn open(
    engine: IoEngine,
    path: &Path,
    frames: usize,
) -> (Arc<BufferPool>, FileId, Arc<FaultController>) {
    let pool = BufferPool::open(PoolConfig::new(frames).io_engine(engine)).unwrap();
    let controller = FaultController::new();
    let direct = DirectFile::open(path, IoMode::Direct).unwrap();
    let storage: Box<dyn Storage> = Box::new(Faulty::with_controller(
        Box::new(direct),
        controller.clone(),
    ));
    let file = pool.open_storage(storage).unwrap();
    (Arc::new(pool), file, controller)
}

fn engines() -> Vec<IoEngine> {
    let mut engines = vec![IoEngine::Sync, IoEngine::Worker];
    if BufferPool::open(PoolConfig::new(4).io_engine(IoEngine::Uring)).is_ok() {
        engines.push(IoEngine::Uring);
    }
    engines
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap()
}

/// 1024 tasks on 2 threads, each reading 16 random pages of a file four
/// times the pool: almost every read a miss, evictions all the time.
#[test]
fn many_more_tasks_than_threads_read_every_page_right() {
    let dir = common::scratch_dir("async-many-tasks");
    let path = dir.join("data.db");
    make_file(&path);
    for engine in engines() {
        let (pool, file, faults) = open(engine, &path, 64);
        let checked = Arc::new(AtomicU64::new(0));
        runtime().block_on(async {
            let mut tasks = Vec::new();
            for task in 0..1024u64 {
                let (pool, checked) = (Arc::clone(&pool), Arc::clone(&checked));
                tasks.push(tokio::spawn(async move {
                    let mut x = task.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
                    for _ in 0..16 {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        let page_id = PageId::new(file, x % PAGES);
                        let got = if x % 3 == 0 {
                            pool.optimistic_async(page_id, |view| view.load_u64(0).unwrap())
                                .await
                                .unwrap()
                        } else {
                            pool.read_async(page_id)
                                .await
                                .unwrap()
                                .view()
                                .load_u64(0)
                                .unwrap()
                        };
                        assert_eq!(got, value(page_id));
                        checked.fetch_add(1, Ordering::Relaxed);
                    }
                }));
            }
            for task in tasks {
                tokio::time::timeout(Duration::from_secs(60), task)
                    .await
                    .expect("a task hung")
                    .unwrap();
            }
        });
        assert_eq!(checked.load(Ordering::Relaxed), 1024 * 16);
        let stats = pool.stats();
        assert!(stats.misses > 1000, "{engine:?}: {stats:?}");
        if stats.engine != EngineKind::Sync {
            assert!(stats.reads_started > 1000, "{engine:?}: {stats:?}");
        }
        assert!(faults.stats().reads >= stats.misses.min(1000));
        drop(pool);
    }
}

/// A task holds a write guard across an `.await`; readers of the page
/// wait for it (suspended), then see its write. Meanwhile other tasks
/// churn the rest of a small pool: the held guard pins nothing, so frames
/// keep being reclaimed.
#[test]
fn a_guard_held_across_await_blocks_only_its_page() {
    let dir = common::scratch_dir("async-held-guard");
    let path = dir.join("data.db");
    make_file(&path);
    for engine in engines() {
        let (pool, file, _faults) = open(engine, &path, 16);
        let page_id = PageId::new(file, 0);
        runtime().block_on(async {
            let mut page = pool.write_async(page_id).await.unwrap();
            let readers: Vec<_> = (0..64)
                .map(|_| {
                    let pool = Arc::clone(&pool);
                    tokio::spawn(async move {
                        pool.read_async(page_id)
                            .await
                            .unwrap()
                            .view()
                            .load_u64(0)
                            .unwrap()
                    })
                })
                .collect();
            // Churn: 8 tasks reading every other page, 16 frames for 256.
            let churn: Vec<_> = (0..8u64)
                .map(|task| {
                    let pool = Arc::clone(&pool);
                    tokio::spawn(async move {
                        for n in 1..PAGES {
                            let page_id = PageId::new(file, (n + task * 29) % (PAGES - 1) + 1);
                            let got = pool.read_async(page_id).await.unwrap().view().load_u64(0);
                            assert_eq!(got.unwrap(), value(page_id));
                        }
                    })
                })
                .collect();
            for task in churn {
                tokio::time::timeout(Duration::from_secs(60), task)
                    .await
                    .expect("churn hung while a guard was held across an await")
                    .unwrap();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            page.store_u64(0, 4242).unwrap();
            drop(page);
            for reader in readers {
                let got = tokio::time::timeout(Duration::from_secs(30), reader)
                    .await
                    .expect("a reader was not woken")
                    .unwrap();
                assert_eq!(got, 4242, "{engine:?}");
            }
        });
    }
}

/// A resident page's read completes in the first poll.
#[test]
fn a_hit_completes_without_suspending() {
    let pool = Arc::new(BufferPool::open(PoolConfig::new(8)).unwrap());
    let file = pool
        .open_storage(Box::new(pagepool::MemoryStorage::new()))
        .unwrap();
    let (page_id, mut page) = pool.allocate(file).unwrap();
    page.store_u64(0, 9).unwrap();
    drop(page);
    let waker = common::noop_waker();
    let mut cx = Context::from_waker(&waker);
    let read = pin!(pool.read_async(page_id));
    match read.poll(&mut cx) {
        Poll::Ready(page) => assert_eq!(page.unwrap().view().load_u64(0).unwrap(), 9),
        Poll::Pending => panic!("a hit suspended"),
    }
    let optimistic = pin!(pool.optimistic_async(page_id, |view| view.load_u64(0).unwrap()));
    assert!(matches!(optimistic.poll(&mut cx), Poll::Ready(Ok(9))));
    let write = pin!(pool.write_async(page_id));
    assert!(matches!(write.poll(&mut cx), Poll::Ready(Ok(_))));
}

/// A miss suspends (with an engine that reads elsewhere) and the failed
/// read's error, with its page id, reaches the task that started it.
#[test]
fn a_failed_read_reaches_the_task_with_its_page_id() {
    let dir = common::scratch_dir("async-eio");
    let path = dir.join("data.db");
    make_file(&path);
    for engine in engines() {
        let (pool, file, faults) = open(engine, &path, 16);
        let page_id = PageId::new(file, 7);
        faults.fail_next(IoOp::Read, FaultKind::Eio, 1);
        let got = runtime().block_on(pool.read_async(page_id));
        match got {
            Err(error @ Error::Read { .. }) => assert_eq!(error.page_id(), Some(page_id)),
            other => panic!("{engine:?}: {other:?}"),
        }
        // Nothing was published; the next read reads the page again.
        let again = runtime().block_on(pool.read_async(page_id)).unwrap();
        assert_eq!(again.view().load_u64(0).unwrap(), value(page_id));
    }
}

/// Owned guards move between threads and release on drop wherever.
#[test]
fn owned_guards_move_between_threads() {
    let pool = Arc::new(BufferPool::open(PoolConfig::new(8)).unwrap());
    let file = pool
        .open_storage(Box::new(pagepool::MemoryStorage::new()))
        .unwrap();
    let (page_id, page) = pool.allocate(file).unwrap();
    drop(page);
    let mut page = pool.write_owned(page_id).unwrap();
    page.store_u64(0, 77).unwrap();
    std::thread::spawn(move || drop(page)).join().unwrap();
    let read = pool.read_owned(page_id).unwrap();
    let got = std::thread::spawn(move || read.view().load_u64(0).unwrap())
        .join()
        .unwrap();
    assert_eq!(got, 77);
    // Every latch was released: a writer gets in at once.
    drop(
        pool.try_write(page_id)
            .unwrap()
            .expect("no latch left behind"),
    );
}
