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
    assert_eq!(top, ["machine", "results"]);
    assert!(report["machine"]["logical_cpus"].as_u64().unwrap() >= 1);
    let results = report["results"].as_array().unwrap();
    // Default workloads: hot-point and uniform-miss, impl pagepool.
    assert_eq!(results.len(), 2, "{report:#}");
    for result in results {
        let object = result.as_object().unwrap();
        let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
        keys.sort_unstable();
        let mut want = RESULT_FIELDS.to_vec();
        want.sort_unstable();
        assert_eq!(keys, want);
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
