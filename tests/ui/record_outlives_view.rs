// A record slice borrows the page through its view: it cannot be returned
// once the view and the guard under it are gone.
use pagepool::heap::HeapPageView;
use pagepool::{BufferPool, PageId};

fn first_record(pool: &BufferPool, page_id: PageId) -> Option<&[u8]> {
    let page = pool.read(page_id).ok()?;
    let view = HeapPageView::new(&page).ok()?;
    view.record(0).ok()?
}

fn main() {
    let _ = first_record;
}
