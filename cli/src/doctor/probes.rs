//! The checks of `pagepool doctor` (see the parent module's table).

use std::path::{Path, PathBuf};

use pagepool::{BufferPool, DirectFile, EngineKind, IoEngine, IoMode, PoolConfig, Storage};

use super::{Check, Env, Status};

/// Every check, in the report's order.
pub fn all(env: &Env) -> Vec<Check> {
    let device = block_device(env);
    let encryption = memory_encryption(env);
    vec![
        o_direct(env),
        block_size(env, device.as_deref()),
        encryption.clone(),
        bounce_buffers(env, &encryption),
        io_uring(env),
        fixed_buffers(env),
        huge_pages(env),
        device_queue(device.as_deref()),
        numa(env),
    ]
}

fn check(
    name: &'static str,
    status: Status,
    result: impl Into<String>,
    meaning: impl Into<String>,
    advice: Option<&str>,
) -> Check {
    Check {
        name,
        status,
        result: result.into(),
        meaning: meaning.into(),
        advice: advice.map(str::to_string),
    }
}

#[repr(C, align(4096))]
struct AlignedPage([u8; pagepool::PAGE_SIZE]);

/// A 4 KiB aligned `O_DIRECT` write and read of a scratch file, through
/// pagepool's own `DirectFile`.
fn o_direct(env: &Env) -> Check {
    let fs = fs_type(&env.dir);
    let path = env
        .dir
        .join(format!(".pagepool-doctor-{}", std::process::id()));
    // A plain file first: a directory that takes no file at all is not
    // an O_DIRECT refusal.
    if let Err(error) = std::fs::File::create(&path) {
        return check(
            "o_direct",
            Status::Fail,
            format!(
                "cannot create a file in {} ({fs}): {error}",
                env.dir.display()
            ),
            "the pool cannot open its data files here",
            Some("name a writable directory with --dir"),
        );
    }
    let probe = (|| -> std::io::Result<bool> {
        let file = DirectFile::open(&path, IoMode::Direct).map_err(std::io::Error::other)?;
        let mut page = Box::new(AlignedPage([0; pagepool::PAGE_SIZE]));
        for (index, byte) in page.0.iter_mut().enumerate() {
            *byte = (index % 251) as u8;
        }
        file.write_page(0, &page.0)?;
        file.sync()?;
        let mut back = Box::new(AlignedPage([0; pagepool::PAGE_SIZE]));
        file.read_page(0, &mut back.0)?;
        Ok(back.0 == page.0)
    })();
    let _ = std::fs::remove_file(&path);
    match probe {
        Ok(true) => check(
            "o_direct",
            Status::Ok,
            format!("a 4 KiB O_DIRECT write and read round-trip on {fs}"),
            "pages load straight into the frames, with no copy through the kernel's page cache",
            None,
        ),
        Ok(false) => check(
            "o_direct",
            Status::Fail,
            format!("an O_DIRECT page read back different bytes on {fs}"),
            "the file system or device corrupts direct I/O; pagepool's checksums would report every page as corrupt",
            Some("put the data files on another file system"),
        ),
        Err(error) => check(
            "o_direct",
            Status::Fail,
            format!("O_DIRECT refused on {fs}: {error}"),
            "BufferPool::open_file fails here (pagepool never falls back silently)",
            Some(
                "put the data files on a local file system that takes O_DIRECT (ext4, xfs), \
                 or open them with IoMode::Buffered and accept the page cache's copy",
            ),
        ),
    }
}

/// The file system type of `dir`, by name where known.
fn fs_type(dir: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c_path) = std::ffi::CString::new(dir.as_os_str().as_bytes()) else {
        return "an unknown file system".into();
    };
    // SAFETY: `statfs` writes only into the zeroed struct it is given and
    // reads the NUL-terminated path, which lives across the call.
    let mut stat: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::statfs(c_path.as_ptr(), &mut stat) } != 0 {
        return "an unknown file system".into();
    }
    let name = match stat.f_type as u64 {
        0xEF53 => "ext4",
        0x5846_5342 => "xfs",
        0x9123_683E => "btrfs",
        0x0102_1994 => "tmpfs",
        0x6969 => "nfs",
        0x6573_5546 => "fuse",
        0x794C_7630 => "overlayfs",
        0x2FC1_2FC1 => "zfs",
        0xFF53_4D42 => "cifs",
        0x0185_8300 => "9p",
        0x8584_58F6 => "ramfs",
        other => return format!("file system type {other:#x}"),
    };
    name.to_string()
}

/// `/sys/dev/block/M:m` of the device `dir` is on (its queue directory's
/// parent: the disk, not the partition), under the root.
fn block_device(env: &Env) -> Option<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let dev = std::fs::metadata(&env.dir).ok()?.dev();
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    let node = env.sys(&format!("/sys/dev/block/{major}:{minor}"));
    let node = std::fs::canonicalize(&node).unwrap_or(node);
    if node.join("queue").is_dir() {
        return Some(node);
    }
    let parent = node.parent()?.to_path_buf();
    parent.join("queue").is_dir().then_some(parent)
}

fn block_size(env: &Env, device: Option<&Path>) -> Check {
    let Some(device) = device else {
        return check(
            "block_size",
            Status::Unknown,
            format!("no block device under /sys/dev/block for {}", env.dir.display()),
            "a file system without a local block device (tmpfs, network, overlay on one) may still take O_DIRECT; the o_direct line says",
            None,
        );
    };
    let read = |name: &str| -> Option<u64> {
        std::fs::read_to_string(device.join("queue").join(name))
            .ok()?
            .trim()
            .parse()
            .ok()
    };
    match (read("logical_block_size"), read("physical_block_size")) {
        (Some(logical), physical) if logical > 0 && 4096 % logical == 0 => check(
            "block_size",
            Status::Ok,
            format!(
                "logical {logical} B, physical {} B",
                physical.map_or("unknown".into(), |p| p.to_string())
            ),
            "a 4 KiB page is a whole number of device blocks",
            None,
        ),
        (Some(logical), _) => check(
            "block_size",
            Status::Fail,
            format!("logical block size {logical} B"),
            "4 KiB O_DIRECT transfers are not a multiple of the device's block: the kernel refuses them",
            Some("use a device (or a file system on one) with 512 B or 4 KiB logical blocks"),
        ),
        (None, _) => check(
            "block_size",
            Status::Unknown,
            format!("{} has no readable logical_block_size", device.display()),
            "cannot tell whether 4 KiB pages align with the device's blocks",
            None,
        ),
    }
}

/// Every record of the kernel log, if this process may read it.
fn kernel_log(env: &Env) -> Option<String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(env.sys("/dev/kmsg"))
        .ok()?;
    let mut log = String::new();
    let mut record = vec![0u8; 8192];
    for _ in 0..200_000 {
        match file.read(&mut record) {
            Ok(0) => break,
            Ok(n) => {
                log.push_str(&String::from_utf8_lossy(&record[..n]));
                if !log.ends_with('\n') {
                    log.push('\n');
                }
            }
            // EPIPE: records overwritten while reading; go on.
            Err(error) if error.raw_os_error() == Some(libc::EPIPE) => {}
            Err(_) => break,
        }
    }
    Some(log)
}

fn cpu_flags(env: &Env) -> Option<Vec<String>> {
    let cpuinfo = env.read("/proc/cpuinfo")?;
    let line = cpuinfo.lines().find(|line| line.starts_with("flags"))?;
    Some(
        line.split(':')
            .nth(1)?
            .split_whitespace()
            .map(str::to_string)
            .collect(),
    )
}

fn memory_encryption(env: &Env) -> Check {
    let log = kernel_log(env).unwrap_or_default();
    let active = log
        .lines()
        .find(|line| line.contains("Memory Encryption Features active"))
        .map(|line| {
            line.split(';')
                .next_back()
                .unwrap_or(line)
                .trim()
                .to_string()
        });
    let Some(flags) = cpu_flags(env) else {
        return check(
            "memory_encryption",
            Status::Unknown,
            "no CPU flags in /proc/cpuinfo",
            "cannot tell whether this is a confidential guest (SEV, TDX), where every DMA bounces",
            None,
        );
    };
    let has = |flag: &str| flags.iter().any(|f| f == flag);
    let guest = has("hypervisor");
    let found = if has("tdx_guest") {
        Some("an Intel TDX guest (tdx_guest)".to_string())
    } else if guest && (has("sev_snp") || has("sev_es") || has("sev")) {
        let kind = ["sev_snp", "sev_es", "sev"]
            .into_iter()
            .find(|f| has(f))
            .unwrap_or("sev");
        Some(format!("an AMD SEV guest ({kind})"))
    } else if env.sys("/dev/sev-guest").exists() {
        Some("an AMD SEV-SNP guest (/dev/sev-guest)".to_string())
    } else if env.sys("/dev/tdx_guest").exists() {
        Some("an Intel TDX guest (/dev/tdx_guest)".to_string())
    } else if env.sys("/sys/kernel/config/tsm/report").exists() {
        Some("a confidential guest (/sys/kernel/config/tsm/report)".to_string())
    } else {
        active.clone()
    };
    match found {
        Some(what) => check(
            "memory_encryption",
            Status::Fail,
            format!("memory encryption is active: {what}"),
            "a confidential guest's devices cannot reach its private memory: every O_DIRECT read and write is bounced through swiotlb, the copy O_DIRECT exists to avoid",
            Some("expect a copy per page I/O here; measure with `pagepool bench` before relying on zero-copy"),
        ),
        None => check(
            "memory_encryption",
            Status::Ok,
            format!(
                "no SEV/TDX guest flags ({}, kernel log {})",
                if guest { "a virtual machine" } else { "bare metal" },
                if log.is_empty() { "unreadable" } else { "silent" }
            ),
            "DMA reaches the frames directly",
            None,
        ),
    }
}

fn bounce_buffers(env: &Env, encryption: &Check) -> Check {
    const NAME: &str = "bounce_buffers";
    let cmdline = env.read("/proc/cmdline").unwrap_or_default();
    let arg = cmdline
        .split_whitespace()
        .find_map(|word| word.strip_prefix("swiotlb="))
        .map(str::to_string);
    let copy = "O_DIRECT I/O is copied through a bounce buffer: the copy O_DIRECT exists to avoid";
    if arg
        .as_deref()
        .is_some_and(|a| a.split(',').any(|p| p == "force"))
    {
        return check(
            NAME,
            Status::Fail,
            "swiotlb=force on the kernel command line",
            copy,
            Some("boot without swiotlb=force"),
        );
    }
    if encryption.status == Status::Fail {
        return check(
            NAME,
            Status::Fail,
            "forced by memory encryption (see memory_encryption)",
            copy,
            None,
        );
    }
    if arg
        .as_deref()
        .is_some_and(|a| a.split(',').any(|p| p == "noforce"))
    {
        return check(
            NAME,
            Status::Ok,
            "swiotlb=noforce on the kernel command line: no bounce buffers",
            "devices read and write the frames directly",
            None,
        );
    }
    if let Some(used) = env.read("/sys/kernel/debug/swiotlb/io_tlb_used") {
        return match used.parse::<u64>() {
            Ok(0) => check(
                NAME,
                Status::Ok,
                "swiotlb present, 0 slots in use (debugfs)",
                "no device is bouncing DMA now",
                None,
            ),
            Ok(slots) => check(
                NAME,
                Status::Warn,
                format!("swiotlb has {slots} slots in use (debugfs)"),
                "some device bounces its DMA; if it is the data files' device, every page I/O is copied",
                Some("check the device's DMA mask (a 32-bit device on a machine with more than 4 GiB bounces)"),
            ),
            Err(_) => check(
                NAME,
                Status::Unknown,
                format!("unreadable io_tlb_used: {used:?}"),
                "cannot tell whether DMA bounces",
                None,
            ),
        };
    }
    let log = kernel_log(env);
    let initialised = log
        .as_deref()
        .is_some_and(|log| log.contains("software IO TLB"));
    check(
        NAME,
        Status::Unknown,
        if initialised {
            "swiotlb is set up (kernel log) and debugfs is not readable: whether it is used is not visible"
        } else {
            "no swiotlb= argument, debugfs and the kernel log not readable"
        },
        "cannot tell whether O_DIRECT I/O is bounced (it is when the device cannot address the frames)",
        Some("run as root with debugfs mounted (/sys/kernel/debug) to see swiotlb's use"),
    )
}

/// A pool with an io_uring engine over an arena of `frames`: the engine
/// it got and whether its arena is registered, or why it got none.
fn try_ring(frames: usize) -> std::result::Result<(EngineKind, bool), String> {
    match BufferPool::open(PoolConfig::new(frames).io_engine(IoEngine::Uring)) {
        Ok(pool) => {
            let stats = pool.stats();
            Ok((stats.engine, stats.fixed_buffers))
        }
        Err(error) => Err(error.to_string()),
    }
}

fn io_uring(env: &Env) -> Check {
    const NAME: &str = "io_uring";
    let sysctl = env.read("/proc/sys/kernel/io_uring_disabled");
    if sysctl.as_deref() == Some("2") {
        return check(
            NAME,
            Status::Fail,
            "kernel.io_uring_disabled = 2",
            "no rings: IoEngine::Auto falls back to sync reads (misses do not overlap), IoEngine::Uring fails at open",
            Some("sysctl kernel.io_uring_disabled=0 (or 1 with the process in io_uring_group)"),
        );
    }
    match try_ring(16) {
        Ok((EngineKind::Uring, _)) => check(
            NAME,
            Status::Ok,
            format!(
                "a ring is set up (kernel.io_uring_disabled = {})",
                sysctl.as_deref().unwrap_or("unreadable")
            ),
            "IoEngine::Auto runs io_uring: prefetch, read_many, scans and async misses overlap",
            None,
        ),
        Ok((other, _)) => check(
            NAME,
            Status::Fail,
            format!("asked for io_uring, the pool runs {}", other.name()),
            "misses do not overlap",
            None,
        ),
        Err(why) => check(
            NAME,
            Status::Fail,
            format!("the kernel refuses a ring: {why}"),
            "IoEngine::Auto falls back to sync reads (misses do not overlap); IoEngine::Uring fails at open",
            Some(
                "a seccomp profile or container runtime may block io_uring_setup \
                 (docker's default profile does); allow it, or accept sync reads",
            ),
        ),
    }
}

/// The memory-lock limit (soft), `None` for unlimited.
fn memlock_limit() -> Option<u64> {
    // SAFETY: `getrlimit` only writes the struct it is given.
    let mut limit: libc::rlimit = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut limit) } != 0 {
        return Some(0);
    }
    (limit.rlim_cur != libc::RLIM_INFINITY).then_some(limit.rlim_cur)
}

/// Whether the process has `CAP_IPC_LOCK` (bit 14 of `CapEff`).
fn has_ipc_lock(env: &Env) -> Option<bool> {
    let status = env.read("/proc/self/status")?;
    let caps = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
    let bits = u64::from_str_radix(caps.trim(), 16).ok()?;
    Some(bits & (1 << 14) != 0)
}

fn fixed_buffers(env: &Env) -> Check {
    const NAME: &str = "fixed_buffers";
    let need = (env.pool_mib as u64) << 20;
    let limit = memlock_limit();
    let cap = has_ipc_lock(env);
    let limits = format!(
        "RLIMIT_MEMLOCK {}, CAP_IPC_LOCK {}",
        limit.map_or("unlimited".into(), |l| format!("{} KiB", l >> 10)),
        match cap {
            Some(true) => "held",
            Some(false) => "not held",
            None => "unknown",
        }
    );
    let predicted = cap == Some(true) || limit.is_none_or(|l| l >= need);
    match try_ring(env.pool_mib * 256) {
        Ok((EngineKind::Uring, true)) => check(
            NAME,
            Status::Ok,
            format!("a {} MiB arena is registered ({limits})", env.pool_mib),
            "reads and writes are READ_FIXED / WRITE_FIXED: the kernel does not pin and unpin each frame per I/O",
            None,
        ),
        Ok((EngineKind::Uring, false)) => check(
            NAME,
            Status::Warn,
            format!(
                "a {} MiB arena is not registered ({limits}{})",
                env.pool_mib,
                if predicted { "" } else { ": the limit is below the arena" }
            ),
            "the ring reads with plain READ: the kernel pins each frame per I/O (a few hundred ns more per page)",
            Some("raise the memory-lock limit to the pool's size (ulimit -l, LimitMEMLOCK= in systemd) or grant CAP_IPC_LOCK"),
        ),
        Ok(_) | Err(_) => check(
            NAME,
            Status::Unknown,
            format!("no ring to register with ({limits})"),
            "see io_uring",
            None,
        ),
    }
}

fn huge_pages(env: &Env) -> Check {
    const NAME: &str = "huge_pages";
    let setting = env.read("/sys/kernel/mm/transparent_hugepage/enabled");
    let chosen = setting.as_deref().and_then(|s| {
        let start = s.find('[')?;
        let end = s[start..].find(']')?;
        Some(s[start + 1..start + end].to_string())
    });
    let took = madvise_takes();
    match chosen.as_deref() {
        Some("never") => check(
            NAME,
            Status::Warn,
            "transparent huge pages: never",
            "the arena is mapped with 4 KiB pages: a hit costs a TLB miss per page on a large pool",
            Some("echo madvise > /sys/kernel/mm/transparent_hugepage/enabled"),
        ),
        Some(mode) => match took {
            Some(true) => check(
                NAME,
                Status::Ok,
                format!("transparent huge pages: {mode}; MADV_HUGEPAGE took on a test mapping"),
                "the arena is backed by 2 MiB pages: one TLB entry per 512 frames",
                None,
            ),
            Some(false) => check(
                NAME,
                Status::Warn,
                format!("transparent huge pages: {mode}, but a test mapping got none"),
                "the arena may stay on 4 KiB pages (memory fragmented, or khugepaged off)",
                Some("check /sys/kernel/mm/transparent_hugepage/defrag"),
            ),
            None => check(
                NAME,
                Status::Unknown,
                format!("transparent huge pages: {mode}; /proc/self/smaps not readable"),
                "cannot tell whether the arena gets 2 MiB pages",
                None,
            ),
        },
        None => check(
            NAME,
            Status::Unknown,
            "no /sys/kernel/mm/transparent_hugepage/enabled",
            "cannot tell whether the arena gets 2 MiB pages",
            None,
        ),
    }
}

/// Maps 4 MiB, advises huge pages on its aligned 2 MiB, touches it and
/// asks smaps whether it got one.
fn madvise_takes() -> Option<bool> {
    const HUGE: usize = 2 << 20;
    let len = 2 * HUGE;
    // SAFETY: an anonymous private mapping of `len` bytes; checked for
    // failure, used only inside its bounds, and unmapped below.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if base == libc::MAP_FAILED {
        return None;
    }
    let aligned = (base as usize).next_multiple_of(HUGE);
    // SAFETY: `[aligned, aligned + HUGE)` lies inside the mapping (4 MiB
    // from `base`, aligned up by less than 2 MiB); madvise and the writes
    // touch only it.
    let answer = unsafe {
        let advised = libc::madvise(aligned as *mut libc::c_void, HUGE, libc::MADV_HUGEPAGE) == 0;
        std::ptr::write_bytes(aligned as *mut u8, 1, HUGE);
        advised.then(|| smaps_huge_kib(aligned)).flatten()
    };
    // SAFETY: unmaps exactly the mapping made above.
    unsafe { libc::munmap(base, len) };
    answer.map(|kib| kib > 0)
}

/// `AnonHugePages` of the mapping that contains `address`.
fn smaps_huge_kib(address: usize) -> Option<u64> {
    let smaps = std::fs::read_to_string("/proc/self/smaps").ok()?;
    let mut inside = false;
    for line in smaps.lines() {
        if let Some((range, _)) = line.split_once(' ') {
            if let Some((start, end)) = range.split_once('-') {
                if let (Ok(start), Ok(end)) = (
                    usize::from_str_radix(start, 16),
                    usize::from_str_radix(end, 16),
                ) {
                    inside = (start..end).contains(&address);
                    continue;
                }
            }
        }
        if inside {
            if let Some(kib) = line.strip_prefix("AnonHugePages:") {
                return kib.trim().trim_end_matches("kB").trim().parse().ok();
            }
        }
    }
    None
}

fn device_queue(device: Option<&Path>) -> Check {
    const NAME: &str = "device_queue";
    let Some(device) = device else {
        return check(
            NAME,
            Status::Unknown,
            "no block device (see block_size)",
            "cannot tell how many requests the device takes at once",
            None,
        );
    };
    let read = |name: &str| {
        std::fs::read_to_string(device.join("queue").join(name))
            .ok()
            .map(|s| s.trim().to_string())
    };
    let depth = read("nr_requests");
    let scheduler = read("scheduler").unwrap_or_else(|| "unknown".into());
    let name = device
        .file_name()
        .map_or("?".into(), |n| n.to_string_lossy().to_string());
    // virtio and Xen disks say they rotate whatever backs them.
    let virtual_disk = name.starts_with("vd") || name.starts_with("xvd");
    let rotational = read("rotational").as_deref() == Some("1") && !virtual_disk;
    let result = format!(
        "{name}: {} requests, scheduler {scheduler}{}",
        depth.as_deref().unwrap_or("unknown"),
        if rotational {
            ", rotational"
        } else if virtual_disk {
            " (a virtual disk: its rotational flag says nothing)"
        } else {
            ""
        }
    );
    if rotational {
        return check(
            NAME,
            Status::Warn,
            result,
            "a spinning disk: random page reads take milliseconds each, however many are in flight",
            Some("put the data files on an SSD"),
        );
    }
    match depth.and_then(|d| d.parse::<u32>().ok()) {
        Some(depth) if depth < 32 => check(
            NAME,
            Status::Warn,
            result,
            "the device queue holds fewer requests than the io_uring engine keeps in flight (queue_depth, default 128)",
            Some("lower PoolConfig::queue_depth to the device's, or raise nr_requests"),
        ),
        Some(_) => check(
            NAME,
            Status::Ok,
            result,
            "room for the reads the io_uring engine keeps in flight",
            None,
        ),
        None => check(
            NAME,
            Status::Unknown,
            result,
            "cannot tell how many requests the device takes at once",
            None,
        ),
    }
}

fn numa(env: &Env) -> Check {
    const NAME: &str = "numa";
    let Ok(entries) = std::fs::read_dir(env.sys("/sys/devices/system/node")) else {
        return check(
            NAME,
            Status::Unknown,
            "no /sys/devices/system/node",
            "cannot tell where the arena's memory is",
            None,
        );
    };
    let nodes = entries
        .filter_map(|e| e.ok())
        .filter(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            name.strip_prefix("node")
                .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
        })
        .count();
    match nodes {
        0 => check(
            NAME,
            Status::Unknown,
            "no node directories",
            "cannot tell where the arena's memory is",
            None,
        ),
        1 => check(
            NAME,
            Status::Ok,
            "1 NUMA node",
            "every frame is as near to every core",
            None,
        ),
        n => check(
            NAME,
            Status::Warn,
            format!("{n} NUMA nodes"),
            "the arena is allocated at open, first touched by one thread: threads on other nodes reach it across the interconnect",
            Some("run the process on one node (numactl --cpunodebind=0 --membind=0), or interleave (numactl --interleave=all)"),
        ),
    }
}
