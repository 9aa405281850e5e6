//! System metrics, read from `/proc` and `statvfs(3)`.
//!
//! Names follow the CloudWatch agent (and EC2 for `CPUUtilization`) so that alarms and
//! dashboards written for CloudWatch work unchanged:
//!
//! | name | unit | dimensions |
//! |------|------|------------|
//! | `CPUUtilization` | percent of all CPUs, busy = total − idle − iowait | |
//! | `load1`, `load5`, `load15` | run-queue averages | |
//! | `mem_used_percent` | 100 × (MemTotal − MemAvailable) / MemTotal | |
//! | `mem_available_bytes` | bytes | |
//! | `swap_used_percent` | percent, 0 without swap | |
//! | `disk_used_percent` | percent, df's formula | `path`, `device` (without `/dev/`, as the CloudWatch agent reports it), `fstype` |
//! | `net_bytes_recv_per_second`, `net_bytes_sent_per_second` | bytes/s | `interface` (all but `lo`) |
//!
//! `statvfs` on a hung network filesystem blocks; the collector then stops producing
//! samples, which `collector_status` shows.

use std::collections::{BTreeMap, HashSet};
use std::ffi::CString;
use std::os::unix::fs::MetadataExt;
use std::time::Instant;

use serde::{Deserialize, Serialize};

pub(crate) const PROC_STAT: &str = "/proc/stat";
pub(crate) const PROC_LOADAVG: &str = "/proc/loadavg";
pub(crate) const PROC_MEMINFO: &str = "/proc/meminfo";
pub(crate) const PROC_UPTIME: &str = "/proc/uptime";
// /proc/self/mounts rather than /proc/mounts: the same file, but it stays correct if the
// agent runs in its own mount namespace.
const PROC_MOUNTS: &str = "/proc/self/mounts";
const PROC_NET_DEV: &str = "/proc/net/dev";

/// Filesystems with no disk behind them, or whose usage is always 100 % by design
/// (read-only images), or that only repeat another filesystem's numbers.
const PSEUDO_FILESYSTEMS: &[&str] = &[
    "autofs",
    "binfmt_misc",
    "bpf",
    "cgroup",
    "cgroup2",
    "configfs",
    "debugfs",
    "devpts",
    "devtmpfs",
    "efivarfs",
    "fuse.gvfsd-fuse",
    "fuse.lxcfs",
    "fuse.portal",
    "fusectl",
    "hugetlbfs",
    "iso9660",
    "mqueue",
    "nsfs",
    "proc",
    "pstore",
    "ramfs",
    "rpc_pipefs",
    "securityfs",
    "selinuxfs",
    "squashfs",
    "sysfs",
    "tmpfs",
    "tracefs",
    "udf",
];

/// One measurement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub name: String,
    pub value: f64,
    pub dimensions: BTreeMap<String, String>,
}

impl Sample {
    fn new(name: &str, value: f64) -> Sample {
        Sample {
            name: name.to_string(),
            value,
            dimensions: BTreeMap::new(),
        }
    }

    fn with(mut self, key: &str, value: &str) -> Sample {
        self.dimensions.insert(key.to_string(), value.to_string());
        self
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    #[error("cannot read {path}: {source}; the agent needs Linux with /proc mounted and readable by its user")]
    Read {
        path: &'static str,
        source: std::io::Error,
    },
    #[error("cannot make sense of {path}: {detail}; please report this with a copy of that file")]
    Parse { path: &'static str, detail: String },
}

pub(crate) fn read_proc(path: &'static str) -> Result<String, CollectError> {
    std::fs::read_to_string(path).map_err(|source| CollectError::Read { path, source })
}

fn parse_error(path: &'static str, detail: impl Into<String>) -> CollectError {
    CollectError::Parse {
        path,
        detail: detail.into(),
    }
}

/// Keeps the previous counter readings that CPU and network rates are computed from.
#[derive(Debug, Default)]
pub struct Collector {
    previous: Option<Reading>,
}

#[derive(Debug)]
struct Reading {
    at: Instant,
    cpu: CpuTimes,
    net: BTreeMap<String, NetCounters>,
}

impl Reading {
    fn take() -> Result<Reading, CollectError> {
        let cpu = parse_stat(&read_proc(PROC_STAT)?)?.cpu;
        let net = parse_net_dev(&read_proc(PROC_NET_DEV)?)?;
        Ok(Reading {
            at: Instant::now(),
            cpu,
            net,
        })
    }
}

impl Collector {
    pub fn new() -> Collector {
        Collector::default()
    }

    /// One round of samples. CPU and network rates cover the time since the previous
    /// call, so the first round after a (re)start, having no earlier reading, sends none:
    /// a made-up 0 % would count in alarms' statistics as if it had been measured.
    /// `CPUUtilization` is also left out if no clock tick passed since the previous call
    /// (calls less than ~10 ms apart).
    pub fn collect(&mut self) -> Result<Vec<Sample>, CollectError> {
        let current = Reading::take()?;
        let mut samples = Vec::new();
        if let Some(previous) = &self.previous {
            if let Some(busy) = current.cpu.busy_percent_since(&previous.cpu) {
                samples.push(Sample::new("CPUUtilization", busy));
            }
            samples.extend(net_rates(previous, &current));
        }
        // Kept before the remaining reads so that a failure there does not cost the next
        // round its rates.
        self.previous = Some(current);

        let [load1, load5, load15] = parse_loadavg(&read_proc(PROC_LOADAVG)?)?;
        samples.push(Sample::new("load1", load1));
        samples.push(Sample::new("load5", load5));
        samples.push(Sample::new("load15", load15));

        let mem = parse_meminfo(&read_proc(PROC_MEMINFO)?)?;
        samples.push(Sample::new("mem_used_percent", mem.used_percent()));
        samples.push(Sample::new(
            "mem_available_bytes",
            mem.available_kib as f64 * 1024.0,
        ));
        samples.push(Sample::new("swap_used_percent", mem.swap_used_percent()));

        for fs in filesystems()? {
            let device = fs.device.strip_prefix("/dev/").unwrap_or(&fs.device);
            samples.push(
                Sample::new("disk_used_percent", fs.used_percent())
                    .with("path", &fs.mount_point)
                    .with("device", device)
                    .with("fstype", &fs.fstype),
            );
        }
        Ok(samples)
    }
}

fn net_rates(previous: &Reading, current: &Reading) -> Vec<Sample> {
    let secs = current.at.duration_since(previous.at).as_secs_f64();
    if secs <= 0.0 {
        return Vec::new();
    }
    let mut samples = Vec::new();
    for (interface, now) in &current.net {
        if interface == "lo" {
            continue;
        }
        // An interface that is new, or whose counters went backwards (re-created, driver
        // reset), has no meaningful rate this round.
        let Some(before) = previous.net.get(interface) else {
            continue;
        };
        let (Some(recv), Some(sent)) = (
            now.recv_bytes.checked_sub(before.recv_bytes),
            now.sent_bytes.checked_sub(before.sent_bytes),
        ) else {
            continue;
        };
        samples.push(
            Sample::new("net_bytes_recv_per_second", recv as f64 / secs)
                .with("interface", interface),
        );
        samples.push(
            Sample::new("net_bytes_sent_per_second", sent as f64 / secs)
                .with("interface", interface),
        );
    }
    samples
}

/// Aggregate CPU time of all CPUs, in clock ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CpuTimes {
    pub total: u64,
    /// idle + iowait: time in which no CPU had work it could do.
    pub idle: u64,
}

impl CpuTimes {
    /// Busy percentage between `earlier` and `self`; `None` if no tick passed.
    pub(crate) fn busy_percent_since(&self, earlier: &CpuTimes) -> Option<f64> {
        let total = self.total.checked_sub(earlier.total)?;
        if total == 0 {
            return None;
        }
        // iowait is known to go backwards on some kernels; clamp instead of trusting it.
        let idle = self.idle.saturating_sub(earlier.idle).min(total);
        Some(100.0 * (total - idle) as f64 / total as f64)
    }
}

/// What the probes and the collector need from /proc/stat.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct KernelStat {
    pub cpu: CpuTimes,
    /// Number of `cpuN` lines: the CPUs online.
    pub cpus: usize,
    /// Boot time, seconds since the Unix epoch.
    pub btime: Option<u64>,
}

pub(crate) fn parse_stat(text: &str) -> Result<KernelStat, CollectError> {
    let mut cpu = None;
    let mut cpus = 0;
    let mut btime = None;
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        match fields.next() {
            Some("cpu") => {
                let values: Vec<u64> = fields.map_while(|f| f.parse().ok()).collect();
                if values.len() < 4 {
                    return Err(parse_error(
                        PROC_STAT,
                        format!("the `cpu` line has fewer than 4 numbers: {line:?}"),
                    ));
                }
                // user nice system idle iowait irq softirq steal; guest and guest_nice that
                // may follow are already counted in user and nice.
                let total = values.iter().take(8).sum();
                let idle = values[3] + values.get(4).copied().unwrap_or(0);
                cpu = Some(CpuTimes { total, idle });
            }
            Some(name) if name.starts_with("cpu") => cpus += 1,
            Some("btime") => btime = fields.next().and_then(|v| v.parse().ok()),
            _ => {}
        }
    }
    let cpu = cpu.ok_or_else(|| parse_error(PROC_STAT, "no aggregate `cpu` line"))?;
    Ok(KernelStat {
        cpu,
        cpus: cpus.max(1),
        btime,
    })
}

pub(crate) fn parse_loadavg(text: &str) -> Result<[f64; 3], CollectError> {
    let mut fields = text.split_whitespace().map(str::parse::<f64>);
    match (fields.next(), fields.next(), fields.next()) {
        (Some(Ok(a)), Some(Ok(b)), Some(Ok(c))) => Ok([a, b, c]),
        _ => Err(parse_error(
            PROC_LOADAVG,
            format!("expected three load averages, got {:?}", text.trim()),
        )),
    }
}

/// The /proc/meminfo values the metrics use, in KiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MemInfo {
    pub total_kib: u64,
    pub available_kib: u64,
    pub swap_total_kib: u64,
    pub swap_free_kib: u64,
}

impl MemInfo {
    pub(crate) fn used_percent(&self) -> f64 {
        let used = self.total_kib.saturating_sub(self.available_kib);
        100.0 * used as f64 / self.total_kib as f64
    }

    pub(crate) fn swap_used_kib(&self) -> u64 {
        self.swap_total_kib.saturating_sub(self.swap_free_kib)
    }

    pub(crate) fn swap_used_percent(&self) -> f64 {
        if self.swap_total_kib == 0 {
            return 0.0;
        }
        100.0 * self.swap_used_kib() as f64 / self.swap_total_kib as f64
    }
}

pub(crate) fn parse_meminfo(text: &str) -> Result<MemInfo, CollectError> {
    let mut values = BTreeMap::new();
    for line in text.lines() {
        let Some((key, rest)) = line.split_once(':') else {
            continue;
        };
        if let Some(Ok(v)) = rest.split_whitespace().next().map(str::parse::<u64>) {
            values.insert(key.trim(), v);
        }
    }
    let get = |key: &str| values.get(key).copied();
    let total_kib = get("MemTotal")
        .filter(|&t| t > 0)
        .ok_or_else(|| parse_error(PROC_MEMINFO, "no usable MemTotal line"))?;
    // Kernels before 3.14 have no MemAvailable; free + buffers + cache is what tools
    // estimated it with before.
    let available_kib = match get("MemAvailable") {
        Some(v) => v,
        None => {
            get("MemFree").unwrap_or(0) + get("Buffers").unwrap_or(0) + get("Cached").unwrap_or(0)
        }
    };
    Ok(MemInfo {
        total_kib,
        available_kib,
        swap_total_kib: get("SwapTotal").unwrap_or(0),
        swap_free_kib: get("SwapFree").unwrap_or(0),
    })
}

/// One line of /proc/self/mounts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MountEntry {
    pub device: String,
    pub mount_point: String,
    pub fstype: String,
}

pub(crate) fn parse_mounts(text: &str) -> Vec<MountEntry> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            Some(MountEntry {
                device: unescape_mount_field(fields.next()?),
                mount_point: unescape_mount_field(fields.next()?),
                fstype: fields.next()?.to_string(),
            })
        })
        .collect()
}

/// The kernel writes space, tab, newline and backslash in mount fields as `\ooo`.
fn unescape_mount_field(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 3 < bytes.len() {
            let digits = &bytes[i + 1..i + 4];
            if digits[0] <= b'3' && digits.iter().all(|b| (b'0'..=b'7').contains(b)) {
                out.push(digits.iter().fold(0u8, |acc, d| acc * 8 + (d - b'0')));
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether a filesystem type has a disk (or a network share) behind it.
pub(crate) fn is_real_filesystem(fstype: &str) -> bool {
    !PSEUDO_FILESYSTEMS.contains(&fstype)
}

/// Size and usage of one mounted filesystem, in bytes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FsUsage {
    pub device: String,
    pub fstype: String,
    pub mount_point: String,
    pub size_bytes: u64,
    pub used_bytes: u64,
    pub avail_bytes: u64,
}

impl FsUsage {
    /// df's formula: blocks reserved for root count neither as used nor as available.
    pub(crate) fn used_percent(&self) -> f64 {
        let denominator = self.used_bytes + self.avail_bytes;
        if denominator == 0 {
            return 0.0;
        }
        100.0 * self.used_bytes as f64 / denominator as f64
    }
}

/// Real mounted filesystems, each once: a later mount on the same path hides the earlier
/// one, and bind mounts (same device number) repeat the first mount's numbers.
pub(crate) fn filesystems() -> Result<Vec<FsUsage>, CollectError> {
    let mut visible: Vec<MountEntry> = Vec::new();
    for entry in parse_mounts(&read_proc(PROC_MOUNTS)?) {
        if !is_real_filesystem(&entry.fstype) {
            continue;
        }
        visible.retain(|e| e.mount_point != entry.mount_point);
        visible.push(entry);
    }
    let mut seen_devices = HashSet::new();
    let mut out = Vec::new();
    for entry in visible {
        // Mounts that vanished or that this user cannot see are simply not reported.
        let Ok(meta) = std::fs::metadata(&entry.mount_point) else {
            continue;
        };
        if !seen_devices.insert(meta.dev()) {
            continue;
        }
        let Some(usage) = statvfs(&entry.mount_point) else {
            continue;
        };
        if usage.size_bytes == 0 {
            continue;
        }
        out.push(FsUsage {
            device: entry.device,
            fstype: entry.fstype,
            mount_point: entry.mount_point,
            ..usage
        });
    }
    Ok(out)
}

fn statvfs(path: &str) -> Option<FsUsage> {
    let c_path = CString::new(path).ok()?;
    let mut buf = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c_path` is NUL-terminated and `buf` points to writable memory of the right
    // size, which statvfs fills completely when it returns 0.
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), buf.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: rc == 0, so the kernel initialised the struct.
    let st = unsafe { buf.assume_init() };
    // The field types differ between targets (u32 on 32-bit), hence the casts.
    #[allow(clippy::unnecessary_cast)]
    let (blocks, bfree, bavail, frsize) = (
        st.f_blocks as u64,
        st.f_bfree as u64,
        st.f_bavail as u64,
        st.f_frsize as u64,
    );
    Some(FsUsage {
        device: String::new(),
        fstype: String::new(),
        mount_point: path.to_string(),
        size_bytes: blocks.saturating_mul(frsize),
        used_bytes: blocks.saturating_sub(bfree).saturating_mul(frsize),
        avail_bytes: bavail.saturating_mul(frsize),
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct NetCounters {
    recv_bytes: u64,
    sent_bytes: u64,
}

fn parse_net_dev(text: &str) -> Result<BTreeMap<String, NetCounters>, CollectError> {
    let mut out = BTreeMap::new();
    // The first two lines are column headers.
    for line in text.lines().skip(2) {
        let Some((name, counters)) = line.split_once(':') else {
            continue;
        };
        let fields: Vec<&str> = counters.split_whitespace().collect();
        // Receive has 8 columns, then transmit starts with bytes.
        let (Some(recv), Some(sent)) = (fields.first(), fields.get(8)) else {
            return Err(parse_error(
                PROC_NET_DEV,
                format!("interface line with fewer than 9 counters: {line:?}"),
            ));
        };
        let (Ok(recv_bytes), Ok(sent_bytes)) = (recv.parse(), sent.parse()) else {
            return Err(parse_error(
                PROC_NET_DEV,
                format!("non-numeric byte counters: {line:?}"),
            ));
        };
        out.insert(
            name.trim().to_string(),
            NetCounters {
                recv_bytes,
                sent_bytes,
            },
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    const STAT: &str = "\
cpu  39002 0 8125 251225 876 0 160 33 7 0
cpu0 18473 0 3709 127213 142 0 41 11 0 0
cpu1 20529 0 4415 124011 733 0 118 21 0 0
intr 729362 0 0 0
ctxt 1781488
btime 1795427788
processes 28718
procs_running 4
";

    #[test]
    fn stat_is_parsed() {
        let stat = parse_stat(STAT).unwrap();
        assert_eq!(stat.cpus, 2);
        assert_eq!(stat.btime, Some(1795427788));
        // guest (7) is not added: it is already part of user.
        assert_eq!(stat.cpu.total, 39002 + 8125 + 251225 + 876 + 160 + 33);
        assert_eq!(stat.cpu.idle, 251225 + 876);
    }

    #[test]
    fn stat_without_cpu_line_is_an_error() {
        let err = parse_stat("intr 1 2 3\n").unwrap_err();
        assert!(err.to_string().contains("/proc/stat"), "{err}");
        assert!(parse_stat("cpu 1 2\n").is_err());
    }

    #[test]
    fn busy_percent_counts_iowait_as_idle() {
        let before = CpuTimes {
            total: 1000,
            idle: 800,
        };
        let after = CpuTimes {
            total: 1200,
            idle: 850,
        };
        assert_eq!(after.busy_percent_since(&before), Some(75.0));
        assert_eq!(before.busy_percent_since(&before), None);
        // A counter that went backwards never yields a value outside 0..=100.
        let odd = CpuTimes {
            total: 1100,
            idle: 700,
        };
        assert_eq!(odd.busy_percent_since(&before), Some(100.0));
        assert_eq!(before.busy_percent_since(&after), None);
    }

    #[test]
    fn loadavg_is_parsed() {
        assert_eq!(
            parse_loadavg("1.55 0.77 0.40 3/162 28721\n").unwrap(),
            [1.55, 0.77, 0.40]
        );
        assert!(parse_loadavg("1.55 x\n").is_err());
    }

    const MEMINFO: &str = "\
MemTotal:       24683656 kB
MemFree:        22114936 kB
MemAvailable:   23494640 kB
Buffers:            4972 kB
Cached:          1581880 kB
SwapCached:            0 kB
SwapTotal:       4194300 kB
SwapFree:        3145725 kB
HugePages_Total:       0
";

    #[test]
    fn meminfo_is_parsed() {
        let mem = parse_meminfo(MEMINFO).unwrap();
        assert_eq!(
            mem,
            MemInfo {
                total_kib: 24683656,
                available_kib: 23494640,
                swap_total_kib: 4194300,
                swap_free_kib: 3145725,
            }
        );
        let expected = 100.0 * (24683656.0 - 23494640.0) / 24683656.0;
        assert!((mem.used_percent() - expected).abs() < 1e-9);
        assert!((mem.swap_used_percent() - 25.0).abs() < 0.001);
    }

    #[test]
    fn meminfo_without_available_or_swap() {
        let mem =
            parse_meminfo("MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 50 kB\nCached: 150 kB\n")
                .unwrap();
        assert_eq!(mem.available_kib, 300);
        assert_eq!(mem.used_percent(), 70.0);
        assert_eq!(mem.swap_used_percent(), 0.0);
        let err = parse_meminfo("MemFree: 100 kB\n").unwrap_err();
        assert!(err.to_string().contains("/proc/meminfo"), "{err}");
    }

    #[test]
    fn mounts_are_parsed_and_unescaped() {
        let text = "\
proc /proc proc rw,relatime 0 0
/dev/vda / ext4 rw,relatime 0 0
tmpfs /dev/shm tmpfs rw 0 0
/dev/sdb1 /mnt/my\\040disk xfs rw 0 0
/dev/sdc1 /mnt/back\\134slash ext4 rw 0 0
overlay /var/lib/docker/overlay2/abc/merged overlay rw 0 0
truncated
";
        let mounts = parse_mounts(text);
        let points: Vec<&str> = mounts.iter().map(|m| m.mount_point.as_str()).collect();
        assert_eq!(
            points,
            [
                "/proc",
                "/",
                "/dev/shm",
                "/mnt/my disk",
                "/mnt/back\\slash",
                "/var/lib/docker/overlay2/abc/merged"
            ]
        );
        let real: Vec<&str> = mounts
            .iter()
            .filter(|m| is_real_filesystem(&m.fstype))
            .map(|m| m.fstype.as_str())
            .collect();
        assert_eq!(real, ["ext4", "xfs", "ext4", "overlay"]);
        for pseudo in ["sysfs", "cgroup2", "devpts", "squashfs", "tmpfs"] {
            assert!(!is_real_filesystem(pseudo), "{pseudo}");
        }
    }

    #[test]
    fn unescape_leaves_stray_backslashes() {
        assert_eq!(unescape_mount_field("a\\0"), "a\\0");
        assert_eq!(unescape_mount_field("a\\999b"), "a\\999b");
        assert_eq!(unescape_mount_field("\\011x"), "\tx");
    }

    #[test]
    fn df_formula_excludes_reserved_blocks() {
        let fs = FsUsage {
            device: "/dev/vda".into(),
            fstype: "ext4".into(),
            mount_point: "/".into(),
            size_bytes: 100,
            used_bytes: 45,
            avail_bytes: 45,
        };
        assert_eq!(fs.used_percent(), 50.0);
    }

    const NET_DEV: &str = "\
Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo: 59069648   65623    0    0    0     0          0         0 59069648   65623    0    0    0     0       0          0
  eth0: 155706513    4917    0    0    0     0          0         0   248685    2706    0    0    0     0       0          0
";

    #[test]
    fn net_dev_is_parsed() {
        let net = parse_net_dev(NET_DEV).unwrap();
        assert_eq!(net.len(), 2);
        assert_eq!(
            net["eth0"],
            NetCounters {
                recv_bytes: 155706513,
                sent_bytes: 248685
            }
        );
        assert!(parse_net_dev("h\nh\n eth0: 1 2 3\n").is_err());
    }

    #[test]
    fn net_rates_skip_lo_new_and_reset_interfaces() {
        let start = Instant::now();
        let counters = |r: u64, s: u64| NetCounters {
            recv_bytes: r,
            sent_bytes: s,
        };
        let previous = Reading {
            at: start,
            cpu: CpuTimes { total: 0, idle: 0 },
            net: BTreeMap::from([
                ("lo".to_string(), counters(0, 0)),
                ("eth0".to_string(), counters(1000, 500)),
                ("eth1".to_string(), counters(1000, 500)),
            ]),
        };
        let current = Reading {
            at: start + Duration::from_secs(2),
            cpu: CpuTimes { total: 0, idle: 0 },
            net: BTreeMap::from([
                ("lo".to_string(), counters(100, 100)),
                ("eth0".to_string(), counters(3000, 1500)),
                ("eth1".to_string(), counters(10, 10)),
                ("eth2".to_string(), counters(10, 10)),
            ]),
        };
        let samples = net_rates(&previous, &current);
        assert_eq!(samples.len(), 2, "{samples:?}");
        assert_eq!(samples[0].name, "net_bytes_recv_per_second");
        assert_eq!(samples[0].value, 1000.0);
        assert_eq!(samples[1].name, "net_bytes_sent_per_second");
        assert_eq!(samples[1].value, 500.0);
        assert_eq!(samples[1].dimensions["interface"], "eth0");
    }

    fn find<'a>(samples: &'a [Sample], name: &str) -> &'a Sample {
        samples
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no {name} in {samples:?}"))
    }

    /// Keeps one core busy until dropped.
    struct Burner {
        stop: Arc<AtomicBool>,
        thread: Option<std::thread::JoinHandle<()>>,
    }

    impl Burner {
        fn start() -> Burner {
            let stop = Arc::new(AtomicBool::new(false));
            let flag = Arc::clone(&stop);
            let thread = std::thread::spawn(move || {
                let mut x = 0u64;
                while !flag.load(Ordering::Relaxed) {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
            });
            Burner {
                stop,
                thread: Some(thread),
            }
        }
    }

    impl Drop for Burner {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::Relaxed);
            if let Some(thread) = self.thread.take() {
                let _ = thread.join();
            }
        }
    }

    #[test]
    fn first_round_has_every_gauge_and_no_rate() {
        let samples = Collector::new().collect().unwrap();
        for name in [
            "load1",
            "load5",
            "load15",
            "mem_used_percent",
            "mem_available_bytes",
            "swap_used_percent",
            "disk_used_percent",
        ] {
            find(&samples, name);
        }
        let rates: Vec<&Sample> = samples
            .iter()
            .filter(|s| s.name == "CPUUtilization" || s.name.starts_with("net_"))
            .collect();
        assert!(rates.is_empty(), "no earlier reading, yet {rates:?}");
        let root = samples
            .iter()
            .find(|s| s.name == "disk_used_percent" && s.dimensions["path"] == "/")
            .unwrap_or_else(|| panic!("no disk_used_percent for / in {samples:?}"));
        assert!(!root.dimensions["fstype"].is_empty());
        assert!(!root.dimensions["device"].is_empty());
        assert!((0.0..=100.0).contains(&root.value));
        for s in samples.iter().filter(|s| s.name == "disk_used_percent") {
            assert!(is_real_filesystem(&s.dimensions["fstype"]), "{s:?}");
        }
        let paths: Vec<&String> = samples
            .iter()
            .filter(|s| s.name == "disk_used_percent")
            .map(|s| &s.dimensions["path"])
            .collect();
        let unique: HashSet<&&String> = paths.iter().collect();
        assert_eq!(unique.len(), paths.len(), "duplicate mounts: {paths:?}");
    }

    #[test]
    fn rates_start_with_the_second_round_after_each_start() {
        let _burner = Burner::start();
        let mut collector = Collector::new();
        for start in ["first start", "restart"] {
            let first = collector.collect().unwrap();
            assert!(
                first.iter().all(|s| s.name != "CPUUtilization"),
                "{start}: CPU in the first round: {first:?}"
            );
            // Long enough for clock ticks on every CPU, with one of them busy.
            std::thread::sleep(Duration::from_millis(200));
            let second = collector.collect().unwrap();
            let cpu = find(&second, "CPUUtilization").value;
            assert!(cpu > 0.0 && cpu <= 100.0, "{start}: CPUUtilization {cpu}");
            for s in second.iter().filter(|s| s.name.starts_with("net_")) {
                assert_ne!(s.dimensions["interface"], "lo");
                assert!(s.value >= 0.0, "{s:?}");
            }
            // What the agent's loop does when a collector_restart probe asks.
            collector = Collector::new();
        }
    }

    #[test]
    fn cpu_utilisation_rises_under_load() {
        let mut collector = Collector::new();
        collector.collect().unwrap();
        let burners = [Burner::start(), Burner::start()];
        std::thread::sleep(Duration::from_millis(500));
        let samples = collector.collect();
        drop(burners);
        let cpu = find(&samples.unwrap(), "CPUUtilization").value;
        assert!(cpu > 30.0 && cpu <= 100.0, "CPUUtilization {cpu}");
    }

    #[test]
    fn mem_used_percent_matches_meminfo() {
        let samples = Collector::new().collect().unwrap();
        let reported = find(&samples, "mem_used_percent").value;
        let text = std::fs::read_to_string("/proc/meminfo").unwrap();
        let field = |key: &str| -> f64 {
            text.lines()
                .find(|l| l.starts_with(&format!("{key}:")))
                .and_then(|l| l.split_whitespace().nth(1))
                .unwrap()
                .parse()
                .unwrap()
        };
        let expected = 100.0 * (field("MemTotal") - field("MemAvailable")) / field("MemTotal");
        assert!(
            (reported - expected).abs() < 2.0,
            "reported {reported}, /proc/meminfo says {expected}"
        );
        let available = find(&samples, "mem_available_bytes").value;
        assert!((available / 1024.0 - field("MemAvailable")).abs() < 0.02 * field("MemTotal"));
    }
}
