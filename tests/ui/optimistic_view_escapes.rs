// An optimistic view exists only inside its closure: its bytes are valid
// only until the pool validates them.
use pagepool::{BufferPool, MemoryStorage, OptimisticView, PoolConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let pool = BufferPool::open(PoolConfig::new(4))?;
    let file = pool.open_storage(Box::new(MemoryStorage::new()))?;
    let (page_id, page) = pool.allocate(file)?;
    drop(page);
    let mut escaped: Option<OptimisticView<'_>> = None;
    pool.optimistic(page_id, |view| escaped = Some(view))?;
    println!("{:?}", escaped.map(|view| view.load_u64(0)));
    Ok(())
}
