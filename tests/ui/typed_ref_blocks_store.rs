// A typed reference from the exclusive guard blocks its stores.
use pagepool::{BufferPool, MemoryStorage, PoolConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let pool = BufferPool::open(PoolConfig::new(4))?;
    let file = pool.open_storage(Box::new(MemoryStorage::new()))?;
    let (_page_id, mut page) = pool.allocate(file)?;
    let value: &u64 = page.get(0)?;
    page.put(0, &1u64)?;
    println!("{value}");
    Ok(())
}
