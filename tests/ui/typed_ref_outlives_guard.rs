// A typed reference into a page borrows the guard.
use pagepool::{BufferPool, MemoryStorage, PoolConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let pool = BufferPool::open(PoolConfig::new(4))?;
    let file = pool.open_storage(Box::new(MemoryStorage::new()))?;
    let (page_id, page) = pool.allocate(file)?;
    drop(page);
    let value: &u64;
    {
        let page = pool.read(page_id)?;
        value = page.get(0)?;
    }
    println!("{value}");
    Ok(())
}
