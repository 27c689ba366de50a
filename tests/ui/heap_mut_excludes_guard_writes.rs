// A HeapPageMut borrows the exclusive guard mutably: nothing else writes
// the page behind its back.
use pagepool::heap::HeapPageMut;
use pagepool::{BufferPool, MemoryStorage, PoolConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let pool = BufferPool::open(PoolConfig::new(4))?;
    let file = pool.open_storage(Box::new(MemoryStorage::new()))?;
    let (_page_id, mut page) = pool.allocate(file)?;
    let mut heap = HeapPageMut::init(&mut page)?;
    page.write_at(0, b"clobber")?;
    heap.insert(b"record")?;
    Ok(())
}
