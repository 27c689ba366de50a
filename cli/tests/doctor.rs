//! `pagepool doctor`: every check on this machine (its answer asserted
//! where it is known here), and each negative answer against a fake root
//! (a directory standing in for `/proc` and `/sys`), a file system that
//! refuses `O_DIRECT`, and a process without the memory-lock limit for
//! fixed buffers.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

const CHECKS: [&str; 9] = [
    "o_direct",
    "block_size",
    "memory_encryption",
    "bounce_buffers",
    "io_uring",
    "fixed_buffers",
    "huge_pages",
    "device_queue",
    "numa",
];

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn doctor_command(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_pagepool"));
    command.arg("doctor").args(args);
    command
}

fn json_of(out: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}):\n{stdout}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Runs the doctor with `--json`; returns its report and exit code.
fn doctor(args: &[&str]) -> (Value, i32) {
    let out = doctor_command(&[args, &["--json"]].concat())
        .output()
        .unwrap();
    (json_of(&out), out.status.code().unwrap())
}

fn status<'a>(report: &'a Value, name: &str) -> (&'a str, &'a str) {
    let check = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name}: {report:#}"));
    (
        check["status"].as_str().unwrap(),
        check["result"].as_str().unwrap(),
    )
}

/// The schema of the module docs: every check once, in order, each with
/// its fields, and a summary that adds up.
fn assert_schema(report: &Value) {
    assert_eq!(report["schema"], 1);
    assert!(report["dir"].is_string() && report["pool_mib"].is_u64());
    let checks = report["checks"].as_array().unwrap();
    let names: Vec<&str> = checks.iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, CHECKS);
    let mut counts = std::collections::HashMap::new();
    for check in checks {
        let status = check["status"].as_str().unwrap();
        assert!(
            ["ok", "warn", "fail", "unknown"].contains(&status),
            "{check:#}"
        );
        assert!(!check["result"].as_str().unwrap().is_empty());
        assert!(!check["meaning"].as_str().unwrap().is_empty());
        assert!(check["advice"].is_null() || check["advice"].is_string());
        *counts.entry(status).or_insert(0u64) += 1;
    }
    for status in ["ok", "warn", "fail", "unknown"] {
        assert_eq!(
            report["summary"][status].as_u64().unwrap(),
            counts.get(status).copied().unwrap_or(0),
            "{status}"
        );
    }
}

#[test]
fn every_check_runs_on_this_machine_in_well_under_a_few_seconds() {
    let dir = scratch("doctor-here");
    let started = std::time::Instant::now();
    let (report, code) = doctor(&["--dir", dir.to_str().unwrap()]);
    let took = started.elapsed();
    assert_schema(&report);
    assert!(took.as_secs() < 10, "took {took:?}");
    assert_eq!(
        code,
        i32::from(report["summary"]["fail"].as_u64().unwrap() > 0),
        "exit 1 exactly when a check fails"
    );
    // What is known of this project's machines: the data directory is on
    // ext4, which takes O_DIRECT; the kernel command line says
    // swiotlb=noforce (asserted only where it does).
    let fs = Command::new("stat")
        .args(["-f", "-c", "%T", dir.to_str().unwrap()])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    if fs == "ext2/ext3" || fs == "ext4" {
        assert_eq!(
            status(&report, "o_direct"),
            ("ok", status(&report, "o_direct").1)
        );
        assert!(status(&report, "o_direct").1.contains("ext4"));
    }
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    if cmdline.split_whitespace().any(|w| w == "swiotlb=noforce") {
        assert_eq!(status(&report, "bounce_buffers").0, "ok");
    }
    // No scratch file is left behind.
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
    // The text form says the same.
    let out = doctor_command(&["--dir", dir.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for name in CHECKS {
        assert!(text.contains(name), "{text}");
    }
    assert!(text.contains(" ok, "), "{text}");
}

/// Writes `contents` at `path` under `root`, creating directories.
fn put(root: &Path, path: &str, contents: &str) {
    let path = root.join(path);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, contents).unwrap();
}

/// A fake `/proc` and `/sys` of a machine where everything is wrong: an
/// AMD SEV-SNP guest, swiotlb in use, io_uring disabled, no huge pages, a
/// disk with 8 KiB blocks and a 16-request queue, two NUMA nodes.
fn bad_machine(root: &Path, data: &Path) {
    put(
        root,
        "proc/cpuinfo",
        "processor : 0\nflags : fpu sse2 hypervisor sev sev_es sev_snp\n",
    );
    put(root, "proc/cmdline", "console=ttyS0 quiet\n");
    put(root, "proc/sys/kernel/io_uring_disabled", "2\n");
    put(
        root,
        "proc/self/status",
        "Name: pagepool\nCapEff: 0000000000000000\n",
    );
    put(
        root,
        "sys/kernel/mm/transparent_hugepage/enabled",
        "always madvise [never]\n",
    );
    put(root, "sys/kernel/debug/swiotlb/io_tlb_used", "12\n");
    put(
        root,
        "dev/kmsg",
        "6,1,0,-;Memory Encryption Features active: AMD SEV SEV-ES SEV-SNP\n6,2,0,-;software IO TLB: mapped [mem 0x1000-0x2000] (64MB)\n",
    );
    let dev = std::fs::metadata(data).unwrap().dev();
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    let queue = format!("sys/dev/block/{major}:{minor}/queue");
    put(root, &format!("{queue}/logical_block_size"), "8192\n");
    put(root, &format!("{queue}/physical_block_size"), "8192\n");
    put(root, &format!("{queue}/nr_requests"), "16\n");
    put(root, &format!("{queue}/scheduler"), "[none]\n");
    put(root, &format!("{queue}/rotational"), "0\n");
    put(root, "sys/devices/system/node/node0/meminfo", "");
    put(root, "sys/devices/system/node/node1/meminfo", "");
}

#[test]
fn a_fake_bad_machine_fails_and_warns_where_it_should() {
    let dir = scratch("doctor-bad");
    let (root, data) = (dir.join("root"), dir.join("data"));
    std::fs::create_dir_all(&data).unwrap();
    bad_machine(&root, &data);
    let (report, code) = doctor(&[
        "--dir",
        data.to_str().unwrap(),
        "--root",
        root.to_str().unwrap(),
    ]);
    assert_schema(&report);
    assert_eq!(code, 1, "a failing check exits 1");
    for (name, want) in [
        ("block_size", "fail"),
        ("memory_encryption", "fail"),
        ("bounce_buffers", "fail"),
        ("io_uring", "fail"),
        ("huge_pages", "warn"),
        ("device_queue", "warn"),
        ("numa", "warn"),
    ] {
        assert_eq!(status(&report, name).0, want, "{name}: {report:#}");
    }
    assert!(status(&report, "memory_encryption").1.contains("sev_snp"));
    assert!(status(&report, "block_size").1.contains("8192"));
    assert!(status(&report, "numa").1.contains("2 NUMA nodes"));
}

#[test]
fn bounce_buffers_forced_in_use_idle_or_unknown() {
    let dir = scratch("doctor-bounce");
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    // (case, files of the fake root, the answer wanted)
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
    let cases: [Case; 5] = [
        (
            "forced",
            &[("proc/cmdline", "quiet swiotlb=force\n")],
            "fail",
        ),
        (
            "in use",
            &[
                ("proc/cmdline", "quiet\n"),
                ("sys/kernel/debug/swiotlb/io_tlb_used", "5\n"),
            ],
            "warn",
        ),
        (
            "idle",
            &[
                ("proc/cmdline", "quiet\n"),
                ("sys/kernel/debug/swiotlb/io_tlb_used", "0\n"),
            ],
            "ok",
        ),
        ("disabled", &[("proc/cmdline", "swiotlb=noforce\n")], "ok"),
        // Neither debugfs nor a command-line word: never "ok".
        ("silent", &[("proc/cmdline", "quiet\n")], "unknown"),
    ];
    for (case, files, want) in cases {
        let root = dir.join(case.replace(' ', "-"));
        put(&root, "proc/cpuinfo", "flags : fpu hypervisor\n");
        for (path, contents) in files {
            put(&root, path, contents);
        }
        let (report, _) = doctor(&[
            "--dir",
            data.to_str().unwrap(),
            "--root",
            root.to_str().unwrap(),
        ]);
        assert_eq!(
            status(&report, "bounce_buffers").0,
            want,
            "{case}: {report:#}"
        );
        // A plain guest is not a confidential one.
        assert_eq!(status(&report, "memory_encryption").0, "ok", "{case}");
    }
    // A TDX guest.
    let root = dir.join("tdx");
    put(&root, "proc/cpuinfo", "flags : fpu hypervisor tdx_guest\n");
    let (report, _) = doctor(&[
        "--dir",
        data.to_str().unwrap(),
        "--root",
        root.to_str().unwrap(),
    ]);
    assert_eq!(status(&report, "memory_encryption").0, "fail");
    assert_eq!(status(&report, "bounce_buffers").0, "fail");
    // An SNP guest whose CPU flags say nothing, known by its device node.
    let root = dir.join("sev-guest-node");
    put(&root, "proc/cpuinfo", "flags : fpu hypervisor\n");
    put(&root, "dev/sev-guest", "");
    let (report, _) = doctor(&[
        "--dir",
        data.to_str().unwrap(),
        "--root",
        root.to_str().unwrap(),
    ]);
    assert_eq!(status(&report, "memory_encryption").0, "fail", "{report:#}");
    // Nothing readable at all: unknown, with a reason.
    let root = dir.join("empty");
    std::fs::create_dir_all(&root).unwrap();
    let (report, _) = doctor(&[
        "--dir",
        data.to_str().unwrap(),
        "--root",
        root.to_str().unwrap(),
    ]);
    for name in [
        "memory_encryption",
        "bounce_buffers",
        "huge_pages",
        "numa",
        "block_size",
    ] {
        assert_eq!(status(&report, name).0, "unknown", "{name}: {report:#}");
    }
}

/// A file system that refuses `O_DIRECT`: ramfs (tmpfs takes it since
/// Linux 6.6). Mounting one needs root; elsewhere the test says so.
#[test]
fn a_file_system_that_refuses_o_direct_fails() {
    let dir = scratch("doctor-ramfs");
    let mounted = Command::new("mount")
        .args(["-t", "ramfs", "ramfs", dir.to_str().unwrap()])
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("note: cannot mount a ramfs here (not root?); the refusal is not tested");
        return;
    }
    let (report, code) = doctor(&["--dir", dir.to_str().unwrap()]);
    let _ = Command::new("umount").arg(&dir).status();
    assert_eq!(status(&report, "o_direct").0, "fail", "{report:#}");
    assert!(
        status(&report, "o_direct").1.contains("ramfs"),
        "{report:#}"
    );
    assert_eq!(code, 1);
    // A directory that takes no file at all is said to be that.
    let (report, _) = doctor(&["--dir", "/proc"]);
    assert!(
        status(&report, "o_direct")
            .1
            .contains("cannot create a file"),
        "{report:#}"
    );
}

/// Without `CAP_IPC_LOCK` and with a memory-lock limit below the arena,
/// the arena is not registered as fixed buffers (`prlimit` and `setpriv`
/// from util-linux; as root, dropping the capability from the bounding
/// set is what takes it away on exec).
#[test]
fn an_arena_above_the_memory_lock_limit_is_not_registered() {
    let dir = scratch("doctor-memlock");
    let exe = env!("CARGO_BIN_EXE_pagepool");
    let out = Command::new("prlimit")
        .args([
            "--memlock=1048576:1048576",
            "setpriv",
            "--bounding-set=-ipc_lock",
            exe,
        ])
        .args([
            "doctor",
            "--json",
            "--pool-mib",
            "64",
            "--dir",
            dir.to_str().unwrap(),
        ])
        .output();
    let Some(out) = out.ok().filter(|o| o.status.code().is_some_and(|c| c <= 1)) else {
        eprintln!("note: prlimit or setpriv unavailable; the memory-lock case is not tested");
        return;
    };
    let report = json_of(&out);
    let (io_uring, _) = status(&report, "io_uring");
    if io_uring != "ok" {
        eprintln!("note: no io_uring here; fixed buffers are not tested");
        return;
    }
    let (fixed, result) = status(&report, "fixed_buffers");
    assert_eq!(fixed, "warn", "{report:#}");
    assert!(
        result.contains("1024 KiB") && result.contains("not held"),
        "{result}"
    );
    // And with the limits as they are, 1 MiB registers.
    let (report, _) = doctor(&["--pool-mib", "1", "--dir", dir.to_str().unwrap()]);
    assert_eq!(status(&report, "fixed_buffers").0, "ok", "{report:#}");
}
