//! Workloads: which page (and which word of it) each operation touches.
//!
//! Page choice runs on every operation, so it is cheap: a per-thread
//! wyrand generator, Lemire's multiply-shift for uniform ranges, and the
//! YCSB (Gray et al.) closed-form Zipf generator, one `powf` per sample.
//! Every implementation runs this same code to choose its pages.
//!
//! `mixed` writes as well as reads. So that the final state of every
//! written word is known exactly, each word has one writer: thread `t` of
//! `n` writes only the words whose index is `t mod n` (a [`Lane`]). Reads
//! and page choice are not restricted.

use clap::ValueEnum;
use pagepool::PAGE_DATA_SIZE;

/// What the benchmark threads do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Workload {
    /// Working set = as many pages as the pool holds, all resident; read one
    /// u64 at a random 8-aligned offset of a uniform random page.
    HotPoint,
    /// Same working set as hot-point; sum a whole random page as u64 words.
    HotScan,
    /// Zipf (θ = 0.99) over a file 4× the pool; one u64 per operation.
    Zipf,
    /// Uniform over a file 8× the pool; one u64 per operation.
    UniformMiss,
    /// Sequential whole pages of a file 8× the pool (each thread its own
    /// cursor, starting past the pages the warm-up loaded); the sum of the
    /// page per operation.
    ScanMiss,
    /// Zipf (θ = 0.99) over a file 2× the pool: 90 % reads of one u64,
    /// 10 % writes of one u64 (dirty pages are evicted and written back);
    /// every written value is read back and checked after the run.
    Mixed,
    /// Zipf (θ = 0.99) over a file 4× the pool: 50 % reads, 50 % writes of
    /// one u64 (most evictions write a dirty page back); checked as
    /// `mixed` is.
    WriteHeavy,
    /// B+-tree: uniform random lookups of `--tuples` loaded tuples (an
    /// 8-byte key, a 120-byte value copied out).
    BtreeLookup,
    /// B+-tree: inserts of new keys in random order into an empty tree.
    BtreeInsert,
    /// B+-tree: range scans of 100 entries from uniform random keys.
    BtreeScan,
    /// B+-tree: 90 % lookups, 10 % upserts of loaded keys.
    BtreeMixed,
}

impl Workload {
    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Workload::HotPoint => "hot-point",
            Workload::HotScan => "hot-scan",
            Workload::Zipf => "zipf",
            Workload::UniformMiss => "uniform-miss",
            Workload::ScanMiss => "scan-miss",
            Workload::Mixed => "mixed",
            Workload::WriteHeavy => "write-heavy",
            Workload::BtreeLookup => "btree-lookup",
            Workload::BtreeInsert => "btree-insert",
            Workload::BtreeScan => "btree-scan",
            Workload::BtreeMixed => "btree-mixed",
        }
    }

    /// Whether it runs on a key-value store (the B+-tree workloads, see
    /// `bench/tree/`), not on pages.
    pub fn is_tree(self) -> bool {
        matches!(
            self,
            Workload::BtreeLookup
                | Workload::BtreeInsert
                | Workload::BtreeScan
                | Workload::BtreeMixed
        )
    }

    /// Whether every page it touches is resident (loaded before the clock).
    pub fn is_hot(self) -> bool {
        matches!(self, Workload::HotPoint | Workload::HotScan)
    }

    /// Whether it writes (and so runs on its own copy of the data file).
    pub fn writes(self) -> bool {
        matches!(self, Workload::Mixed | Workload::WriteHeavy)
    }

    /// Pages this workload touches, for a pool of `pool_frames` frames;
    /// `file_pages` (from `--file-mib`) overrides the size of the miss
    /// workloads. The hot ones never exceed the pool.
    pub fn pages(self, pool_frames: u64, file_pages: Option<u64>) -> u64 {
        match self {
            Workload::HotPoint | Workload::HotScan => pool_frames,
            // Their files are their own (bench/tree/); no data pages.
            Workload::BtreeLookup
            | Workload::BtreeInsert
            | Workload::BtreeScan
            | Workload::BtreeMixed => 0,
            Workload::Zipf | Workload::WriteHeavy => file_pages.unwrap_or(4 * pool_frames),
            Workload::UniformMiss | Workload::ScanMiss => file_pages.unwrap_or(8 * pool_frames),
            Workload::Mixed => file_pages.unwrap_or(2 * pool_frames),
        }
    }
}

/// Zipf skew used by the `zipf` and `mixed` workloads.
pub const ZIPF_THETA: f64 = 0.99;

/// Share of `mixed` operations that write, in percent.
pub const MIXED_WRITE_PERCENT: u64 = 10;

/// Share of `write-heavy` operations that write, in percent.
pub const WRITE_HEAVY_PERCENT: u64 = 50;

/// Words of caller data in a page.
pub const PAGE_WORDS: u64 = (PAGE_DATA_SIZE / 8) as u64;

/// One operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// Read the little-endian u64 at `offset` (8-aligned) of page `page`.
    Point {
        /// Page number in the data file.
        page: u64,
        /// Byte offset in the page's data area.
        offset: usize,
    },
    /// Sum every u64 word of page `page`'s data area (wrapping).
    Scan {
        /// Page number in the data file.
        page: u64,
    },
    /// Store `value` as the little-endian u64 at `offset` (8-aligned) of
    /// page `page`; the operation returns `value`.
    Write {
        /// Page number in the data file.
        page: u64,
        /// Byte offset in the page's data area.
        offset: usize,
        /// The value (filled in by the driver; see `data::written_value`).
        value: u64,
    },
}

/// The words of a page one thread may write in `mixed`: word indexes
/// `index, index + count, index + 2·count, ...` below [`PAGE_WORDS`].
#[derive(Clone, Copy, Debug)]
pub struct Lane {
    index: u64,
    count: u64,
    words: u64,
}

impl Lane {
    /// Thread `index` of `count` (`index < count`).
    pub fn new(index: usize, count: usize) -> Lane {
        let (index, count) = (index as u64, count.max(1) as u64);
        let words = PAGE_WORDS.saturating_sub(index).div_ceil(count);
        Lane {
            index,
            count,
            words,
        }
    }

    /// A lane that owns every word (one writer).
    pub fn whole() -> Lane {
        Lane::new(0, 1)
    }
}

/// wyrand: one multiply per number, good enough for choosing pages.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `stream` (a thread or run number) of `seed`.
    pub fn new(seed: u64, stream: u64) -> Rng {
        let mut rng = Rng(seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        rng.next_u64();
        rng
    }

    /// A uniform u64.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0xa076_1d64_78bd_642f);
        let t = u128::from(self.0) * u128::from(self.0 ^ 0xe703_7ed1_a0b4_28db);
        ((t >> 64) as u64) ^ (t as u64)
    }

    /// Uniform in `0..n` (`n > 0`).
    #[inline]
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `[0, 1)`.
    #[inline]
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// Zipf-distributed ranks in `0..n` (rank 0 the most popular), by the
/// closed form of Gray et al., "Quickly generating billion-record synthetic
/// databases" (as in YCSB). Setup is O(n); a sample is one `powf`.
#[derive(Clone, Debug)]
pub struct Zipf {
    n: u64,
    zetan: f64,
    alpha: f64,
    eta: f64,
    two_threshold: f64,
}

impl Zipf {
    /// The distribution over `n >= 1` ranks with skew `theta` in (0, 1).
    pub fn new(n: u64, theta: f64) -> Zipf {
        let n = n.max(1);
        let zetan: f64 = (1..=n).map(|i| (i as f64).powf(-theta)).sum();
        let zeta2 = 1.0 + 2f64.powf(-theta);
        let eta = if n > 2 {
            (1.0 - (2.0 / n as f64).powf(1.0 - theta)) / (1.0 - zeta2 / zetan)
        } else {
            0.0
        };
        Zipf {
            n,
            zetan,
            alpha: 1.0 / (1.0 - theta),
            eta,
            two_threshold: 1.0 + 0.5f64.powf(theta),
        }
    }

    /// A rank in `0..n`.
    #[inline]
    pub fn sample(&self, rng: &mut Rng) -> u64 {
        let u = rng.unit();
        let uz = u * self.zetan;
        if uz < 1.0 || self.n == 1 {
            return 0;
        }
        if uz < self.two_threshold || self.n == 2 {
            return 1;
        }
        let rank = (self.n as f64 * (self.eta * u - self.eta + 1.0).powf(self.alpha)) as u64;
        rank.min(self.n - 1)
    }
}

/// How page popularity ranks map to page numbers: a bijection of `0..n`,
/// `rank * step + 1 mod n` with `step` coprime to `n`, so that the popular
/// pages of the zipf workload are spread over the file instead of packed
/// at its start (which would flatter readahead-based baselines).
#[derive(Clone, Copy, Debug)]
struct Scatter {
    n: u64,
    step: u64,
}

impl Scatter {
    fn new(n: u64) -> Scatter {
        // A step near n/φ, coprime to n (which makes it a bijection).
        let mut step = ((n as f64 * 0.618_033_988_75) as u64).max(1);
        while gcd(step, n) != 1 {
            step += 1;
        }
        Scatter { n, step }
    }

    #[inline]
    fn page(self, rank: u64) -> u64 {
        ((u128::from(rank) * u128::from(self.step) + 1) % u128::from(self.n)) as u64
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[derive(Clone, Debug)]
enum Dist {
    Uniform,
    Zipf(Zipf, Scatter),
}

/// How a workload draws its operations: the driver runs a loop of its own
/// for each shape, so that drawing an operation of a hot workload costs
/// only its random numbers (no branch on the distribution, the scan flag
/// or the write share, no `Op` dispatch after inlining).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// One u64 of a uniform page (hot-point, uniform-miss).
    UniformPoint,
    /// A whole uniform page (hot-scan).
    UniformScan,
    /// One u64 of a Zipf page (zipf).
    ZipfPoint,
    /// Whole pages in order from a per-thread cursor (scan-miss).
    Sequential,
    /// Anything else, through [`Sampler::next`] (mixed).
    General,
}

/// Generates one thread's operations for a workload over `pages` pages.
#[derive(Clone, Debug)]
pub struct Sampler {
    pages: u64,
    dist: Dist,
    scan: bool,
    /// Pages in order, not drawn (scan-miss).
    sequential: bool,
    /// A draw below this writes (0: never).
    write_below: u64,
}

impl Sampler {
    /// The operations of `workload` over pages `0..pages` (`pages > 0`).
    pub fn new(workload: Workload, pages: u64) -> Sampler {
        let pages = pages.max(1);
        let dist = match workload {
            Workload::Zipf | Workload::Mixed | Workload::WriteHeavy => {
                Dist::Zipf(Zipf::new(pages, ZIPF_THETA), Scatter::new(pages))
            }
            _ => Dist::Uniform,
        };
        let write_below = match workload {
            Workload::Mixed => (u64::MAX / 100) * MIXED_WRITE_PERCENT,
            Workload::WriteHeavy => (u64::MAX / 100) * WRITE_HEAVY_PERCENT,
            _ => 0,
        };
        Sampler {
            pages,
            dist,
            scan: workload == Workload::HotScan,
            sequential: workload == Workload::ScanMiss,
            write_below,
        }
    }

    /// Pages the workload ranges over.
    pub fn pages(&self) -> u64 {
        self.pages
    }

    /// The page of popularity rank `rank` (`< pages`): the warm-up loads
    /// ranks `0..pool frames`, the pages a steady state keeps resident.
    pub fn page_of_rank(&self, rank: u64) -> u64 {
        match &self.dist {
            Dist::Uniform => rank,
            Dist::Zipf(_, scatter) => scatter.page(rank),
        }
    }

    /// How this workload draws its operations.
    pub fn shape(&self) -> Shape {
        if self.sequential {
            return Shape::Sequential;
        }
        match (&self.dist, self.scan, self.write_below) {
            (Dist::Uniform, false, 0) => Shape::UniformPoint,
            (Dist::Uniform, true, 0) => Shape::UniformScan,
            (Dist::Zipf(..), false, 0) => Shape::ZipfPoint,
            _ => Shape::General,
        }
    }

    /// A uniform page below [`pages`](Self::pages).
    #[inline(always)]
    pub fn uniform_page(&self, rng: &mut Rng) -> u64 {
        rng.below(self.pages)
    }

    /// A page drawn from the workload's distribution.
    #[inline(always)]
    pub fn page(&self, rng: &mut Rng) -> u64 {
        match &self.dist {
            Dist::Uniform => rng.below(self.pages),
            Dist::Zipf(zipf, scatter) => scatter.page(zipf.sample(rng)),
        }
    }

    /// A uniform 8-aligned offset of a word in a page's data area.
    #[inline(always)]
    pub fn point_offset(rng: &mut Rng) -> usize {
        (rng.below(PAGE_WORDS) * 8) as usize
    }

    /// The next operation of the thread writing `lane`. A write's value
    /// is left 0 for the driver to fill in.
    #[inline]
    pub fn next(&self, rng: &mut Rng, lane: Lane) -> Op {
        let page = self.page(rng);
        if self.scan {
            Op::Scan { page }
        } else if self.write_below != 0 && rng.next_u64() < self.write_below && lane.words != 0 {
            let word = lane.index + lane.count * rng.below(lane.words);
            Op::Write {
                page,
                offset: (word * 8) as usize,
                value: 0,
            }
        } else {
            Op::Point {
                page,
                offset: Self::point_offset(rng),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_ranges_stay_in_bounds() {
        let mut rng = Rng::new(1, 2);
        let sampler = Sampler::new(Workload::HotPoint, 10);
        for _ in 0..10_000 {
            match sampler.next(&mut rng, Lane::whole()) {
                Op::Point { page, offset } => {
                    assert!(page < 10);
                    assert!(offset % 8 == 0 && offset + 8 <= PAGE_DATA_SIZE);
                }
                op => panic!("unexpected {op:?}"),
            }
        }
    }

    #[test]
    fn mixed_writes_a_tenth_and_only_its_lane() {
        let sampler = Sampler::new(Workload::Mixed, 1000);
        for (index, count) in [(0, 1), (1, 2), (3, 16), (509, 510), (20, 600), (600, 700)] {
            let lane = Lane::new(index, count);
            let mut rng = Rng::new(3, index as u64);
            let (mut writes, mut reads) = (0u32, 0u32);
            for _ in 0..20_000 {
                match sampler.next(&mut rng, lane) {
                    Op::Write {
                        page,
                        offset,
                        value,
                    } => {
                        assert!(page < 1000 && value == 0);
                        assert!(offset % 8 == 0 && offset + 8 <= PAGE_DATA_SIZE);
                        assert_eq!((offset / 8) % count, index, "lane {index}/{count}");
                        writes += 1;
                    }
                    Op::Point { .. } => reads += 1,
                    op => panic!("unexpected {op:?}"),
                }
            }
            if index >= PAGE_WORDS as usize {
                assert_eq!(writes, 0, "a lane with no words never writes");
            } else {
                let share = f64::from(writes) / f64::from(writes + reads);
                assert!((0.08..0.12).contains(&share), "write share {share}");
            }
        }
    }

    #[test]
    fn scatter_is_a_bijection() {
        for n in [1, 2, 3, 10, 256, 1000, 4096] {
            let scatter = Scatter::new(n);
            let mut seen = vec![false; n as usize];
            for rank in 0..n {
                let page = scatter.page(rank) as usize;
                assert!(!seen[page], "n {n} rank {rank}");
                seen[page] = true;
            }
        }
    }

    #[test]
    fn zipf_is_skewed_and_in_range() {
        let n = 10_000;
        let zipf = Zipf::new(n, ZIPF_THETA);
        let mut rng = Rng::new(7, 0);
        let mut counts = vec![0u32; n as usize];
        let samples = 200_000;
        for _ in 0..samples {
            counts[zipf.sample(&mut rng) as usize] += 1;
        }
        // With θ = 0.99 over 10k items, rank 0 draws about 10 % and the top
        // 1 % of ranks about half of all samples.
        let top: u32 = counts[..100].iter().sum();
        assert!(counts[0] > samples / 20, "rank 0: {}", counts[0]);
        assert!(top > samples * 4 / 10, "top 1 %: {top}");
        assert!(counts[0] > counts[1] && counts[1] > counts[10]);
        for n in [1, 2, 3] {
            let zipf = Zipf::new(n, ZIPF_THETA);
            for _ in 0..1000 {
                assert!(zipf.sample(&mut rng) < n);
            }
        }
    }
}
