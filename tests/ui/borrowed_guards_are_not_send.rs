// Borrowed guards, the thread's pin handle and optimistic guards belong to
// the thread that made them (the pool records their latches per thread):
// none may move to another thread. Owned guards are the ones that do.
use pagepool::{OptimisticGuard, PageMut, PageRef, ThreadPin};

fn assert_send<T: Send>() {}

fn main() {
    assert_send::<PageRef<'static>>();
    assert_send::<PageMut<'static>>();
    assert_send::<ThreadPin<'static>>();
    assert_send::<OptimisticGuard<'static>>();
}
