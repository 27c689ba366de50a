// A guard borrows the pool: the pool cannot go while a guard lives.
use pagepool::{BufferPool, MemoryStorage, PoolConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let page;
    {
        let pool = BufferPool::open(PoolConfig::new(4))?;
        let file = pool.open_storage(Box::new(MemoryStorage::new()))?;
        let (page_id, new_page) = pool.allocate(file)?;
        drop(new_page);
        page = pool.read(page_id)?;
    }
    println!("{:?}", page.page_id());
    Ok(())
}
