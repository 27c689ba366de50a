// A record read through a HeapPageMut borrows it: no change to the page
// while the record is in use.
use pagepool::heap::HeapPageMut;
use pagepool::{BufferPool, MemoryStorage, PoolConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let pool = BufferPool::open(PoolConfig::new(4))?;
    let file = pool.open_storage(Box::new(MemoryStorage::new()))?;
    let (_page_id, mut page) = pool.allocate(file)?;
    let mut heap = HeapPageMut::init(&mut page)?;
    let slot = heap.insert(b"first")?;
    let record = heap.record(slot)?;
    heap.insert(b"second")?;
    println!("{record:?}");
    Ok(())
}
