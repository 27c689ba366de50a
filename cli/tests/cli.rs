//! End-to-end tests of the `pagepool` binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use pagepool::{BufferPool, IoMode, PoolConfig, PAGE_SIZE};

fn pagepool(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pagepool"))
        .args(args)
        .output()
        .expect("running the pagepool binary")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A fresh directory for one test, on the target's file system (which
/// supports O_DIRECT, unlike some /tmp).
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes a data file of `pages` pages through the pool.
fn write_file(path: &Path, pages: u64) {
    let pool = BufferPool::open(PoolConfig::new(16).io_mode(IoMode::Direct)).unwrap();
    let file = pool.open_file(path).unwrap();
    for n in 0..pages {
        let (page_id, mut page) = pool.allocate(file).unwrap();
        assert_eq!(page_id.page_no(), n);
        page.store_u64(0, n).unwrap();
        page.write_at(100, format!("page {n}").as_bytes()).unwrap();
    }
    pool.close().unwrap();
}

fn flip_byte(path: &Path, offset: u64) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[offset as usize] ^= 0x40;
    std::fs::write(path, bytes).unwrap();
}

const RESULT_FIELDS: [&str; 10] = [
    "impl",
    "workload",
    "threads",
    "ops_per_sec",
    "cpu_seconds",
    "hit_ratio",
    "io_reads",
    "io_writes",
    "p50_ns",
    "p99_ns",
];

fn run_bench(dir: &Path, extra: &[&str]) -> serde_json::Value {
    let json = dir.join("out.json");
    let data = dir.join("data");
    let mut args = vec![
        "bench",
        "--seconds",
        "0.2",
        "--pool-mib",
        "1",
        "--dir",
        data.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let out = pagepool(&args);
    assert!(
        out.status.success(),
        "bench failed:\nstdout:\n{}\nstderr:\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(text(&out.stdout).contains("ops/s"), "{}", text(&out.stdout));
    serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap()
}

#[test]
fn bench_writes_the_json_interface() {
    let dir = scratch("bench_json");
    let report = run_bench(&dir, &["--threads", "1"]);
    let top: Vec<&str> = report
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    // the two stable keys (docs/design.md); extras (command, targets) may follow.
    assert!(
        top.contains(&"machine") && top.contains(&"results"),
        "{top:?}"
    );
    assert!(report["machine"]["logical_cpus"].as_u64().unwrap() >= 1);
    let results = report["results"].as_array().unwrap();
    // Default workloads: hot-point and uniform-miss, impl pagepool.
    assert_eq!(results.len(), 2, "{report:#}");
    for result in results {
        let object = result.as_object().unwrap();
        // Every stable key (docs/design.md), with its JSON type; extra keys are allowed.
        for key in RESULT_FIELDS {
            assert!(object.contains_key(key), "{key} missing: {result:#}");
        }
        assert!(result["impl"].is_string() && result["workload"].is_string());
        for key in ["threads", "io_reads", "io_writes", "p50_ns", "p99_ns"] {
            assert!(result[key].is_u64(), "{key}: {result:#}");
        }
        assert!(result["ops_per_sec"].is_f64() && result["cpu_seconds"].is_f64());
        assert_eq!(result["impl"], "pagepool");
        assert_eq!(result["threads"], 1);
        assert!(result["ops_per_sec"].as_f64().unwrap() > 0.0);
        assert!(result["cpu_seconds"].as_f64().unwrap() > 0.0);
        assert!(result["p50_ns"].as_u64().unwrap() > 0);
        assert!(result["p99_ns"].as_u64().unwrap() >= result["p50_ns"].as_u64().unwrap());
        assert_eq!(result["io_writes"], 0);
    }
    let hot = &results[0];
    assert_eq!(hot["workload"], "hot-point");
    assert_eq!(hot["hit_ratio"], 1.0);
    assert_eq!(hot["io_reads"], 0);
    let miss = &results[1];
    assert_eq!(miss["workload"], "uniform-miss");
    let ratio = miss["hit_ratio"].as_f64().unwrap();
    assert!(ratio < 0.5, "uniform over 8× the pool hit {ratio}");
    assert!(miss["io_reads"].as_u64().unwrap() > 0);
    // The data file is named after its size and reused.
    assert!(dir.join("data/pages-8mib.db").is_file());
}

#[test]
fn bench_runs_every_workload_and_impl() {
    let dir = scratch("bench_all");
    let report = run_bench(
        &dir,
        &[
            "--workload",
            "hot-point,hot-scan,zipf,uniform-miss",
            "--impl",
            "pagepool,pagepool-shared",
            "--threads",
            "2",
            "--file-mib",
            "3",
        ],
    );
    let results = report["results"].as_array().unwrap();
    assert_eq!(results.len(), 8);
    let names: Vec<(String, String)> = results
        .iter()
        .map(|r| {
            (
                r["workload"].as_str().unwrap().to_string(),
                r["impl"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(names.contains(&("hot-scan".into(), "pagepool-shared".into())));
    assert!(names.contains(&("zipf".into(), "pagepool".into())));
    // --file-mib sizes the miss workloads: 3 MiB, so the file is 3 MiB.
    assert!(dir.join("data/pages-3mib.db").is_file());
}

#[test]
fn bench_refuses_bad_options_cleanly() {
    for args in [
        &["bench", "--pool-mib", "0"][..],
        &["bench", "--pool-mib", "99999999999999"],
        &["bench", "--file-mib", "0"],
        &["bench", "--file-mib", "18446744073709551615"],
        &["bench", "--threads", "0"],
        &["bench", "--seconds", "-1"],
        &["bench", "--workload", "nope"],
        &["bench", "--impl", "nope"],
    ] {
        let out = pagepool(args);
        assert!(!out.status.success(), "{args:?} succeeded");
        let stderr = text(&out.stderr);
        assert!(stderr.contains("error"), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

#[test]
fn verify_accepts_a_good_file() {
    let dir = scratch("verify_good");
    let path = dir.join("good.db");
    write_file(&path, 8);
    let out = pagepool(&["verify", path.to_str().unwrap()]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("all 8 pages OK"), "{stdout}");
}

#[test]
fn verify_lists_each_bad_page_with_its_offset() {
    let dir = scratch("verify_bad");
    let path = dir.join("bad.db");
    write_file(&path, 8);
    // A flipped data byte in page 3, a damaged trailer magic in page 6.
    flip_byte(&path, 3 * PAGE_SIZE as u64 + 100);
    flip_byte(&path, 6 * PAGE_SIZE as u64 + PAGE_SIZE as u64 - 1);
    let out = pagepool(&["verify", path.to_str().unwrap()]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", text(&out.stderr));
    let bad: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("bad page"))
        .collect();
    assert_eq!(bad.len(), 2, "{stdout}");
    assert!(
        bad[0].contains("page 3") && bad[0].contains("offset 12288"),
        "{stdout}"
    );
    assert!(bad[0].contains("checksum"), "{stdout}");
    assert!(
        bad[1].contains("page 6") && bad[1].contains("offset 24576"),
        "{stdout}"
    );
    assert!(stdout.contains("2 of 8 pages bad"), "{stdout}");
}

#[test]
fn verify_refuses_a_file_a_running_pool_holds_and_reads_a_read_only_one() {
    let dir = scratch("verify_locked");
    let path = dir.join("live.db");
    write_file(&path, 4);
    {
        let pool = BufferPool::open(PoolConfig::new(16)).unwrap();
        pool.open_file(&path).unwrap();
        let out = pagepool(&["verify", path.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));
        let stderr = text(&out.stderr);
        assert!(stderr.contains("running pool"), "{stderr}");
    }
    // Closed: verified, read-only (the mode bits allow no write).
    let mut perms = std::fs::metadata(&path).unwrap().permissions();
    perms.set_readonly(true);
    std::fs::set_permissions(&path, perms).unwrap();
    let before = std::fs::read(&path).unwrap();
    let out = pagepool(&["verify", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("all 4 pages OK"));
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

#[test]
fn verify_reports_unusable_files_as_errors() {
    let dir = scratch("verify_errors");
    let missing = dir.join("missing.db");
    let out = pagepool(&["verify", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("error"), "{}", text(&out.stderr));
    assert!(
        !missing.exists(),
        "verify created the file it was asked to check"
    );

    let short = dir.join("short.db");
    std::fs::write(&short, [1u8; 100]).unwrap();
    let out = pagepool(&["verify", short.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("not a multiple"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn bench_fails_cleanly_on_a_corrupt_data_file() {
    let dir = scratch("bench_corrupt");
    run_bench(&dir, &["--threads", "1", "--workload", "uniform-miss"]);
    let data = dir.join("data/pages-8mib.db");
    let json = dir.join("again.json");
    let bench = |workload: &str| {
        pagepool(&[
            "bench",
            "--seconds",
            "0.5",
            "--pool-mib",
            "1",
            "--threads",
            "2",
            "--workload",
            workload,
            "--dir",
            dir.join("data").to_str().unwrap(),
            "--json",
            json.to_str().unwrap(),
        ])
    };
    // Pages past the warm-up set (the first 256): found by the timed run.
    for page in (300..2048).step_by(4) {
        flip_byte(&data, page * PAGE_SIZE as u64 + 8);
    }
    let out = bench("uniform-miss");
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("corrupt"), "{stderr}");
    assert!(stderr.contains("uniform-miss"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    // A page of the warm-up set: found before the clock starts (the
    // workload list sizes the file, so both use the same 8 MiB file).
    flip_byte(&data, 5 * PAGE_SIZE as u64 + 8);
    let out = bench("hot-point,uniform-miss");
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("warming up") && stderr.contains("page 5"),
        "{stderr}"
    );
    assert!(!json.exists(), "a failed bench wrote a report");
}

const ALL_IMPLS: &str = "pagepool,pagepool-shared,raw,dashmap-rwlock,mutex-lru,mmap,pread";
const ALL_WORKLOADS: &str = "hot-point,hot-scan,zipf,uniform-miss,mixed";

#[test]
fn bench_runs_every_impl_on_every_workload_with_plot() {
    let dir = scratch("bench_every_impl");
    let plot = dir.join("bench.png");
    let report = run_bench(
        &dir,
        &[
            "--workload",
            ALL_WORKLOADS,
            "--impl",
            ALL_IMPLS,
            "--threads",
            "1,3",
            "--file-mib",
            "4",
            "--plot",
            plot.to_str().unwrap(),
        ],
    );
    let results = report["results"].as_array().unwrap();
    // raw runs the two hot workloads only: (2 × 7 + 3 × 6) × 2 thread counts.
    assert_eq!(results.len(), 64, "{report:#}");
    let row = |imp: &str, workload: &str, threads: u64| {
        results
            .iter()
            .find(|r| r["impl"] == imp && r["workload"] == workload && r["threads"] == threads)
            .unwrap_or_else(|| panic!("no row {imp} {workload} {threads}"))
    };
    for result in results {
        assert!(result["ops_per_sec"].as_f64().unwrap() > 0.0, "{result:#}");
        assert!(
            result["cpu_ns_per_op"].as_f64().unwrap() > 0.0,
            "{result:#}"
        );
        assert!(result["p99_ns"].as_u64().unwrap() >= result["p50_ns"].as_u64().unwrap());
    }
    assert!(!results
        .iter()
        .any(|r| r["impl"] == "raw" && r["workload"] == "zipf"));
    // Caches of their own report a hit ratio; raw has none.
    assert!(row("raw", "hot-point", 1)["hit_ratio"].is_null());
    for imp in ["pagepool", "dashmap-rwlock", "mutex-lru"] {
        assert_eq!(row(imp, "hot-scan", 3)["hit_ratio"], 1.0, "{imp}");
        let miss = row(imp, "uniform-miss", 3);
        assert!(miss["hit_ratio"].as_f64().unwrap() < 0.5, "{imp}: {miss:#}");
        assert!(miss["io_reads"].as_u64().unwrap() > 0, "{imp}: {miss:#}");
    }
    // mixed writes, the pools write dirty pages back, and every written
    // word was read back (live and after reopening).
    for imp in [
        "pagepool",
        "pagepool-shared",
        "dashmap-rwlock",
        "mutex-lru",
        "mmap",
        "pread",
    ] {
        let mixed = row(imp, "mixed", 3);
        assert!(
            mixed["checked_words"].as_u64().unwrap() > 0,
            "{imp}: {mixed:#}"
        );
        assert!(
            dir.join(format!("data/mixed-{imp}-pages-4mib.db"))
                .is_file(),
            "{imp}: its own copy of the file"
        );
    }
    for imp in ["pagepool", "dashmap-rwlock", "mutex-lru"] {
        let mixed = row(imp, "mixed", 3);
        assert!(mixed["io_writes"].as_u64().unwrap() > 0, "{imp}: {mixed:#}");
    }
    // The kernel's cache is dropped before each run; pread and mmap fill it.
    assert!(
        row("pread", "uniform-miss", 3)["page_cache_mib"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    assert!(
        row("pagepool", "uniform-miss", 3)["page_cache_mib"]
            .as_f64()
            .unwrap()
            < 0.5
    );
    // The targets computed from the rows.
    // (none here: the targets compare 2-thread rows)
    assert!(report["targets"].is_array());
    let png = std::fs::read(&plot).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
}

#[test]
fn bench_plots_svg_and_runs_fio_or_says_why_not() {
    let dir = scratch("bench_fio");
    let plot = dir.join("bench.svg");
    let json = dir.join("out.json");
    let out = pagepool(&[
        "bench",
        "--seconds",
        "0.2",
        "--pool-mib",
        "1",
        "--workload",
        "uniform-miss",
        "--threads",
        "2",
        "--fio",
        "--dir",
        dir.join("data").to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
        "--plot",
        plot.to_str().unwrap(),
    ]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let imps: Vec<&str> = report["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["impl"].as_str().unwrap())
        .collect();
    let fio_installed = Command::new("fio").arg("--version").output().is_ok();
    if fio_installed {
        assert!(imps.contains(&"fio-psync"), "{imps:?}\n{stderr}");
        let fio = report["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["impl"] == "fio-psync")
            .unwrap();
        assert_eq!(fio["workload"], "uniform-miss");
        assert_eq!(fio["threads"], 2);
        assert!(fio["ops_per_sec"].as_f64().unwrap() > 0.0);
        assert!(fio["io_reads"].as_u64().unwrap() > 0);
    } else {
        assert_eq!(imps, ["pagepool"]);
        assert!(stderr.contains("fio is not installed"), "{stderr}");
    }
    let svg = std::fs::read_to_string(&plot).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains("uniform-miss"),
        "{svg:.200}"
    );
}

/// The B+-tree workloads run on every store, out of memory for the pool
/// (1 MiB, 256 frames, for 20,000 tuples of about 2.6 MiB), and report
/// lookups with the pool's counters.
#[test]
fn bench_runs_the_btree_workloads() {
    let dir = scratch("bench_btree");
    let report = run_bench(
        &dir,
        &[
            "--workload",
            "btree-lookup,btree-insert,btree-scan,btree-mixed",
            "--impl",
            "pagepool-btree,redb,btreemap-rwlock,pagepool",
            "--threads",
            "2",
            "--tuples",
            "20000",
        ],
    );
    let results = report["results"].as_array().unwrap();
    // pagepool (pages) runs none of them: 4 workloads × 3 stores.
    assert_eq!(results.len(), 12, "{report:#}");
    for row in results {
        assert!(row["ops_per_sec"].as_f64().unwrap() > 0.0, "{row:#}");
        for key in RESULT_FIELDS {
            assert!(row.as_object().unwrap().contains_key(key), "{key}: {row:#}");
        }
        if row["impl"] == "pagepool-btree" {
            let pages = row["pages_per_op"].as_f64().unwrap();
            assert!(
                pages >= 2.0,
                "a lookup reads the meta page and a leaf: {row:#}"
            );
            if row["workload"] == "btree-lookup" {
                assert!(
                    row["hit_ratio"].as_f64().unwrap() < 1.0,
                    "out of memory: {row:#}"
                );
                assert!(row["io_reads"].as_u64().unwrap() > 0);
            }
        }
    }
    let tree_file = format!("data/btree-v{}-20000.db", pagepool_btree::FORMAT_VERSION);
    assert!(dir.join(tree_file).is_file());
    assert!(dir.join("data/redb-20000.redb").is_file());
}

#[test]
fn bench_runs_batched_async_and_scan_rows_on_both_engines() {
    let dir = scratch("bench_engines");
    let report = run_bench(
        &dir,
        &[
            "--workload",
            "uniform-miss,scan-miss",
            "--impl",
            "pagepool,pagepool-batch,pagepool-async,pread",
            "--engine",
            "sync,uring",
            "--threads",
            "2",
            "--batch",
            "8",
            "--read-ahead",
            "16",
            "--tasks",
            "16",
        ],
    );
    let results = report["results"].as_array().unwrap();
    let names: Vec<String> = results
        .iter()
        .map(|r| {
            format!(
                "{} {}",
                r["impl"].as_str().unwrap(),
                r["workload"].as_str().unwrap()
            )
        })
        .collect();
    // Three pagepool rows on two engines for uniform-miss, two for
    // scan-miss (no async scans), and pread once each.
    assert_eq!(results.len(), 3 * 2 + 2 * 2 + 2, "{names:?}");
    for row in results {
        assert!(row["ops_per_sec"].as_f64().unwrap() > 0.0, "{row:#}");
        let name = row["impl"].as_str().unwrap();
        let engine = row["engine"].as_str().unwrap();
        let depth = row["queue_depth"].as_u64().unwrap();
        if name == "pagepool-batch[uring]" {
            assert!(engine.starts_with("uring"), "{row:#}");
            let expected = if row["workload"] == "scan-miss" {
                16
            } else {
                8
            };
            assert_eq!(depth, expected, "{row:#}");
        }
        if name == "pagepool-async[uring]" {
            assert!(engine.starts_with("uring"), "{row:#}");
            assert_eq!(depth, 8, "16 tasks on 2 threads: {row:#}");
        }
        if name.ends_with("[sync]") || name == "pread" {
            assert_eq!((engine, depth), ("sync", 1), "{row:#}");
        }
        if row["workload"] == "uniform-miss" && name.starts_with("pagepool") {
            assert!(row["cpu_us_per_read"].as_f64().unwrap() > 0.0, "{row:#}");
        }
    }
}

#[test]
fn bench_runs_the_writing_workloads_with_the_writer_on_and_off_and_checkpoints() {
    let dir = scratch("bench_writeback");
    let report = run_bench(
        &dir,
        &[
            "--workload",
            "mixed,write-heavy",
            "--impl",
            "pagepool,mutex-lru",
            "--writer",
            "off,on",
            "--checkpoint-ms",
            "100",
            "--threads",
            "2",
        ],
    );
    let results = report["results"].as_array().unwrap();
    // Two pagepool rows (writer off, on) and one mutex-lru row each.
    assert_eq!(results.len(), 2 * 3, "{results:#?}");
    for row in results {
        let name = row["impl"].as_str().unwrap();
        assert!(row["checked_words"].as_u64().unwrap() > 0, "{row:#}");
        match name {
            "pagepool[writer]" | "pagepool[no-writer]" => {
                let writer_on = name == "pagepool[writer]";
                assert_eq!(row["writer"], if writer_on { "on" } else { "off" });
                let by_writer = row["writer_write_backs"].as_u64().unwrap();
                assert_eq!(by_writer > 0, writer_on, "{row:#}");
                assert!(row["eviction_write_backs"].is_u64(), "{row:#}");
                let conditions = row["conditions"].as_str().unwrap();
                assert!(conditions.contains("engine") && conditions.contains("huge pages"));
                assert!(row["checkpoints"].as_u64().unwrap() > 0, "{row:#}");
                assert!(
                    // A batch of 256 operations is the ratio's grain: a
                    // short checkpoint may see none complete.
                    row["checkpoint_ops_ratio"].as_f64().unwrap() >= 0.0,
                    "{row:#}"
                );
            }
            "mutex-lru" => {
                assert!(row.get("writer").is_none(), "{row:#}");
                assert!(row.get("checkpoints").is_none(), "{row:#}");
            }
            other => panic!("unexpected row {other}"),
        }
    }
}

// ---- verify --json and inspect ----

/// Runs `pagepool ARGS` and parses its stdout as one JSON object.
fn pagepool_json(args: &[&str]) -> (Option<i32>, serde_json::Value, String) {
    let out = pagepool(args);
    let stdout = text(&out.stdout);
    let json = serde_json::from_str(&stdout).unwrap_or_else(|error| {
        panic!(
            "{args:?}: stdout is not one JSON object ({error}):\n{stdout}\nstderr:\n{}",
            text(&out.stderr)
        )
    });
    (out.status.code(), json, text(&out.stderr))
}

/// A formatted file: header (page 0), pages 1..=8 allocated with LSN
/// 100 + n, pages 1 and 6 freed (list: 6 -> 1), root slot 0 -> page 2 and
/// slot 5 -> page 7; then one zero page appended. 10 pages in all.
fn write_formatted(path: &Path) {
    use pagepool::PageId;
    let pool = BufferPool::open(PoolConfig::new(64)).unwrap();
    let file = pool.open_file(path).unwrap();
    pool.format_file(file).unwrap();
    for n in 1..=8u64 {
        let (page_id, mut page) = pool.allocate(file).unwrap();
        assert_eq!(page_id.page_no(), n);
        page.store_u64(0, n).unwrap();
        page.set_lsn(100 + n);
    }
    for n in [1, 6] {
        pool.free_page(pool.write(PageId::new(file, n)).unwrap())
            .unwrap();
    }
    pool.set_root(file, 0, Some(2)).unwrap();
    pool.set_root(file, 5, Some(7)).unwrap();
    assert_eq!(pool.free_page_count(file).unwrap(), 2);
    pool.close().unwrap();
    let data = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    data.set_len(10 * PAGE_SIZE as u64).unwrap();
}

/// Rewrites page `page_no`'s checksum the way the library computes it
/// (src/page.rs: CRC-32C of bytes 0..4088, then the page number, le).
fn restamp(bytes: &mut [u8], page_no: u64) {
    let page = &mut bytes[page_no as usize * PAGE_SIZE..][..PAGE_SIZE];
    let crc = crc32c::crc32c_append(crc32c::crc32c(&page[..4088]), &page_no.to_le_bytes());
    page[4088..4092].copy_from_slice(&crc.to_le_bytes());
}

fn store_u64(bytes: &mut [u8], page_no: u64, offset: usize, value: u64) {
    let at = page_no as usize * PAGE_SIZE + offset;
    bytes[at..at + 8].copy_from_slice(&value.to_le_bytes());
    restamp(bytes, page_no);
}

fn problems(report: &serde_json::Value) -> Vec<String> {
    report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn verify_json_describes_a_good_file() {
    let dir = scratch("verify_json_good");
    let path = dir.join("good.db");
    write_file(&path, 8);
    let (code, report, stderr) = pagepool_json(&["verify", "--json", path.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{report:#}{stderr}");
    assert_eq!(report["schema"], 1);
    assert_eq!(report["path"], path.to_str().unwrap());
    assert_eq!(report["pages"], 8);
    assert_eq!(report["ok_pages"], 8);
    assert_eq!(report["bad_page_count"], 0);
    assert_eq!(report["bad_pages"], serde_json::json!([]));
    // The text form ends in a line for grep.
    let out = pagepool(&["verify", path.to_str().unwrap()]);
    let stdout = text(&out.stdout);
    assert_eq!(
        stdout.lines().last(),
        Some("summary: pages=8 ok_pages=8 bad_pages=0"),
        "{stdout}"
    );
}

#[test]
fn verify_json_lists_each_bad_page() {
    let dir = scratch("verify_json_bad");
    let path = dir.join("bad.db");
    write_file(&path, 8);
    flip_byte(&path, 3 * PAGE_SIZE as u64 + 100);
    flip_byte(&path, 7 * PAGE_SIZE as u64 - 1); // page 6's trailer magic
    let (code, report, stderr) = pagepool_json(&["verify", "--json", path.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{report:#}{stderr}");
    assert_eq!(report["schema"], 1);
    assert_eq!(report["pages"], 8);
    assert_eq!(report["ok_pages"], 6);
    assert_eq!(report["bad_page_count"], 2);
    let bad = report["bad_pages"].as_array().unwrap();
    assert_eq!(bad.len(), 2, "{report:#}");
    assert_eq!(bad[0]["page_no"], 3);
    assert_eq!(bad[0]["byte_offset"], 12288);
    assert!(
        bad[0]["reason"].as_str().unwrap().contains("checksum"),
        "{report:#}"
    );
    assert_eq!(bad[1]["page_no"], 6);
    assert_eq!(bad[1]["byte_offset"], 24576);
    assert!(
        bad[1]["reason"].as_str().unwrap().contains("trailer"),
        "{report:#}"
    );
    let out = pagepool(&["verify", path.to_str().unwrap()]);
    assert!(
        text(&out.stdout).contains("\nsummary: pages=8 ok_pages=6 bad_pages=2\n"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn verify_and_inspect_say_what_to_pass_instead() {
    let dir = scratch("json_errors");
    let missing = dir.join("missing.db");
    for command in ["verify", "inspect"] {
        let (code, report, stderr) = pagepool_json(&[command, "--json", missing.to_str().unwrap()]);
        assert_eq!(code, Some(2), "{command}: {report:#}");
        assert_eq!(report["schema"], 1);
        let error = report["error"].as_str().unwrap();
        assert!(
            error.contains("No such file or directory")
                && error.contains("pass the path of a pagepool data file"),
            "{command}: {error}"
        );
        assert!(stderr.contains(error), "{command}: {stderr}");
        assert!(!missing.exists(), "{command} created the file");

        let out = pagepool(&[command, dir.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{command}");
        let stderr = text(&out.stderr);
        assert!(stderr.contains("is a directory"), "{command}: {stderr}");
        assert!(!stderr.contains("panicked"), "{command}: {stderr}");
    }
    // An empty file holds 0 pages; that is not an error.
    let empty = dir.join("empty.db");
    std::fs::write(&empty, b"").unwrap();
    let (code, report, _) = pagepool_json(&["inspect", "--json", empty.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{report:#}");
    assert_eq!(report["pages"], 0);
    assert_eq!(report["formatted"], false);
    assert!(report["header"].is_null());
    let (code, report, _) = pagepool_json(&["verify", "--json", empty.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{report:#}");
    assert_eq!(report["pages"], 0);
}

#[test]
fn inspect_describes_a_formatted_file_without_changing_it() {
    let dir = scratch("inspect_formatted");
    let path = dir.join("formatted.db");
    write_formatted(&path);
    let before = std::fs::read(&path).unwrap();
    let (code, report, stderr) = pagepool_json(&["inspect", "--json", path.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{report:#}{stderr}");
    assert_eq!(report["schema"], 1);
    assert_eq!(report["file_size"], 10 * 4096);
    assert_eq!(report["page_size"], 4096);
    assert_eq!(report["pages"], 10);
    assert_eq!(report["trailing_bytes"], 0);
    assert_eq!(report["formatted"], true);
    let header = &report["header"];
    assert_eq!(header["version"], 1);
    assert_eq!(header["checksum_ok"], true);
    assert_eq!(header["free_head"], 6, "the page freed last");
    assert_eq!(header["free_count"], 2);
    assert_eq!(
        header["roots"],
        serde_json::json!([{ "slot": 0, "page_no": 2 }, { "slot": 5, "page_no": 7 }])
    );
    assert_eq!(
        report["counts"],
        serde_json::json!({ "header": 1, "data": 6, "free": 2, "zero": 1, "corrupt": 0 })
    );
    assert_eq!(report["corrupt_pages"], serde_json::json!([]));
    // Pages 2..=5, 7, 8 keep their LSNs; freeing cleared pages 1's and 6's.
    assert_eq!(
        report["lsn_range"],
        serde_json::json!({ "min": 102, "max": 108 })
    );
    let list = &report["free_list"];
    assert_eq!(list["walked"], 2);
    assert_eq!(list["header_count"], 2);
    assert_eq!(list["matches_header"], true);
    assert_eq!(list["consistent"], true);
    assert_eq!(list["marked_free_off_list"], 0);
    assert!(problems(&report).is_empty(), "{report:#}");

    let out = pagepool(&["inspect", path.to_str().unwrap()]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("format version 1"), "{stdout}");
    assert!(
        stdout.contains("root slots: 0 -> page 2, 5 -> page 7"),
        "{stdout}"
    );
    assert!(stdout.contains("LSN range:  102..=108"), "{stdout}");
    assert!(
        stdout.contains("\nsummary: pages=10 header=1 data=6 free=2 zero=1 corrupt=0 problems=0\n"),
        "{stdout}"
    );
    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "inspect changed the file"
    );

    // The same on tmpfs, where O_DIRECT is refused.
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        let copy = shm.join(format!("pagepool-inspect-{}.db", std::process::id()));
        std::fs::write(&copy, &before).unwrap();
        let (code, again, _) = pagepool_json(&["inspect", "--json", copy.to_str().unwrap()]);
        let _ = std::fs::remove_file(&copy);
        assert_eq!(code, Some(0), "{again:#}");
        assert_eq!(again["counts"], report["counts"]);
    }
}

#[test]
fn inspect_checks_checksums_as_the_library_does() {
    let dir = scratch("inspect_checksums");
    let path = dir.join("plain.db");
    write_file(&path, 8);
    let (code, report, _) = pagepool_json(&["inspect", "--json", path.to_str().unwrap()]);
    // Every page the library wrote verifies.
    assert_eq!(code, Some(0), "{report:#}");
    assert_eq!(report["formatted"], false);
    assert!(report["header"].is_null() && report["free_list"].is_null());
    assert_eq!(
        report["counts"],
        serde_json::json!({ "header": 0, "data": 8, "free": 0, "zero": 0, "corrupt": 0 })
    );
    assert!(report["lsn_range"].is_null(), "no LSN was set");

    // One flipped data byte; a good page copied to the wrong offset (the
    // page number is part of the checksum); a damaged magic.
    flip_byte(&path, 3 * PAGE_SIZE as u64 + 100);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.copy_within(PAGE_SIZE..2 * PAGE_SIZE, 5 * PAGE_SIZE);
    bytes[7 * PAGE_SIZE + 4094] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();
    let (code, report, _) = pagepool_json(&["inspect", "--json", path.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{report:#}");
    assert_eq!(report["counts"]["corrupt"], 3);
    assert_eq!(report["counts"]["data"], 5);
    let corrupt = report["corrupt_pages"].as_array().unwrap();
    let numbers: Vec<u64> = corrupt
        .iter()
        .map(|p| p["page_no"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, [3, 5, 7], "{report:#}");
    assert_eq!(corrupt[1]["byte_offset"], 5 * 4096);
    assert!(corrupt[0]["reason"]
        .as_str()
        .unwrap()
        .contains("checksum mismatch"));
    assert!(corrupt[1]["reason"]
        .as_str()
        .unwrap()
        .contains("checksum mismatch"));
    assert!(corrupt[2]["reason"]
        .as_str()
        .unwrap()
        .contains("no page trailer"));
    assert!(
        problems(&report)
            .iter()
            .any(|p| p.contains("3 corrupt pages")),
        "{report:#}"
    );
    // verify (the pool's own check) finds the same pages.
    let (code, verified, _) = pagepool_json(&["verify", "--json", path.to_str().unwrap()]);
    assert_eq!(code, Some(1));
    let verified: Vec<u64> = verified["bad_pages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["page_no"].as_u64().unwrap())
        .collect();
    assert_eq!(verified, numbers);
}

#[test]
fn inspect_finds_a_broken_free_list_and_roots() {
    let dir = scratch("inspect_free_list");
    let path = dir.join("formatted.db");
    write_formatted(&path);
    let good = std::fs::read(&path).unwrap();
    let inspect = |bytes: &[u8]| {
        std::fs::write(&path, bytes).unwrap();
        let (code, report, _) = pagepool_json(&["inspect", "--json", path.to_str().unwrap()]);
        assert_eq!(code, Some(1), "{report:#}");
        assert_eq!(report["header"]["checksum_ok"], true, "restamped");
        report
    };

    // The header counts 3 free pages; slot 9 names a page past the end.
    let mut bytes = good.clone();
    store_u64(&mut bytes, 0, 24, 3);
    store_u64(&mut bytes, 0, 64 + 8 * 9, 99);
    let report = inspect(&bytes);
    let list = &report["free_list"];
    assert_eq!(list["walked"], 2);
    assert_eq!(list["header_count"], 3);
    assert_eq!(list["matches_header"], false);
    assert_eq!(list["consistent"], false);
    let found = problems(&report);
    assert!(
        found
            .iter()
            .any(|p| p.contains("counts 3 free pages, the list holds 2")),
        "{found:?}"
    );
    assert!(
        found
            .iter()
            .any(|p| p.contains("root slot 9 names page 99, past the end")),
        "{found:?}"
    );

    // Free page 1 links back to page 6: a cycle.
    let mut bytes = good.clone();
    store_u64(&mut bytes, 1, 8, 6);
    let report = inspect(&bytes);
    assert_eq!(report["free_list"]["walked"], 2);
    assert_eq!(report["free_list"]["consistent"], false);
    let found = problems(&report);
    assert!(
        found
            .iter()
            .any(|p| p.contains("cycle") && p.contains("page 6")),
        "{found:?}"
    );

    // The head names data page 4: not marked free; pages 6 and 1 leak.
    let mut bytes = good.clone();
    store_u64(&mut bytes, 0, 16, 4);
    let report = inspect(&bytes);
    let list = &report["free_list"];
    assert_eq!(list["walked"], 0);
    assert_eq!(list["marked_free_off_list"], 2);
    let found = problems(&report);
    assert!(
        found
            .iter()
            .any(|p| p.contains("links to page 4, which is not marked free (a data page)")),
        "{found:?}"
    );
    assert_eq!(report["counts"]["free"], 2);
}

#[test]
fn inspect_reports_a_trailing_partial_page() {
    let dir = scratch("inspect_partial");
    let path = dir.join("torn.db");
    write_formatted(&path);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.extend_from_slice(&[7u8; 100]);
    std::fs::write(&path, &bytes).unwrap();
    let (code, report, stderr) = pagepool_json(&["inspect", "--json", path.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{report:#}{stderr}");
    assert_eq!(report["file_size"], 10 * 4096 + 100);
    assert_eq!(report["pages"], 10);
    assert_eq!(report["trailing_bytes"], 100);
    assert_eq!(report["counts"]["data"], 6, "the whole pages are scanned");
    let found = problems(&report);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("partial page: 100 bytes"), "{found:?}");
    let out = pagepool(&["inspect", path.to_str().unwrap()]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("+ a partial page of 100 bytes"), "{stdout}");
    assert!(!text(&out.stderr).contains("panicked"));
    assert_eq!(
        std::fs::read(&path).unwrap(),
        bytes,
        "inspect changed the file"
    );
    // verify refuses it, and points at inspect.
    let out = pagepool(&["verify", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("not a multiple") && stderr.contains("pagepool inspect"),
        "{stderr}"
    );
}
