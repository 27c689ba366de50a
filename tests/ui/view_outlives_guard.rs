// A heap page view borrows the shared guard it reads.
use pagepool::heap::HeapPageView;
use pagepool::{BufferPool, MemoryStorage, PoolConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let pool = BufferPool::open(PoolConfig::new(4))?;
    let file = pool.open_storage(Box::new(MemoryStorage::new()))?;
    let (page_id, page) = pool.allocate(file)?;
    drop(page);
    let view;
    {
        let page = pool.read(page_id)?;
        view = HeapPageView::new(&page)?;
    }
    println!("{}", view.slot_count());
    Ok(())
}
