//! The process table from /proc/[pid], and the `top_cpu` / `top_mem` probes built on it.
//!
//! Processes come and go while /proc is walked; any that vanish or cannot be read are
//! skipped, never an error.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, Instant};

use super::text::{human_bytes, table, Align};
use super::ProbeError;
use crate::collect::{
    parse_loadavg, parse_meminfo, parse_stat, read_proc, CollectError, MemInfo, PROC_LOADAVG,
    PROC_MEMINFO, PROC_STAT, PROC_UPTIME,
};
use crate::redact::Redactor;

/// Longest COMMAND shown, in characters; enough to tell `java -jar app.jar` instances
/// apart without one row swamping the incident.
const COMMAND_WIDTH: usize = 120;
/// How long top_cpu watches, at most.
const CPU_WINDOW: Duration = Duration::from_millis(250);

/// The fields of /proc/[pid]/stat the probes use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PidStat {
    pub pid: u32,
    pub comm: String,
    pub ppid: u32,
    /// utime + stime, in clock ticks.
    pub cpu_ticks: u64,
    /// Start time after boot, in clock ticks; with the pid it identifies a process, since
    /// pids are reused.
    pub start_ticks: u64,
    pub rss_pages: u64,
}

/// Parses /proc/[pid]/stat. `comm` may itself contain spaces and parentheses, so it runs
/// from the first `(` to the last `)`.
pub(crate) fn parse_pid_stat(text: &str) -> Option<PidStat> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    if close < open {
        return None;
    }
    let pid = text[..open].trim().parse().ok()?;
    let comm = text[open + 1..close].to_string();
    // rest[0] is field 3 of proc(5) (state), so field N is rest[N - 3].
    let rest: Vec<&str> = text[close + 1..].split_whitespace().collect();
    let field = |n: usize| rest.get(n - 3).copied();
    let number = |n: usize| field(n)?.parse::<u64>().ok();
    Some(PidStat {
        pid,
        comm,
        ppid: field(4)?.parse().ok()?,
        cpu_ticks: number(14)?.checked_add(number(15)?)?,
        start_ticks: number(22)?,
        // rss is signed in the kernel's format string; treat anything odd as 0.
        rss_pages: field(24)?.parse::<i64>().ok()?.max(0).unsigned_abs(),
    })
}

/// A process as the tables show it.
#[derive(Debug, Clone)]
pub(crate) struct Process {
    pub stat: PidStat,
    pub uid: Option<u32>,
    pub rss_kib: u64,
}

fn pids() -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

fn read_pid_stat(pid: u32) -> Option<PidStat> {
    parse_pid_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// All processes readable right now.
pub(crate) fn processes() -> Vec<Process> {
    let kib_per_page = page_size() / 1024;
    pids()
        .into_iter()
        .filter_map(|pid| {
            let stat = read_pid_stat(pid)?;
            // The owner of /proc/[pid] is the effective uid, which is what ps shows.
            let uid = std::fs::metadata(format!("/proc/{pid}"))
                .ok()
                .map(|m| m.uid());
            Some(Process {
                rss_kib: stat.rss_pages.saturating_mul(kib_per_page),
                stat,
                uid,
            })
        })
        .collect()
}

fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf only reads a configuration value.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(ticks).ok().filter(|&t| t > 0).unwrap_or(100)
}

fn page_size() -> u64 {
    // SAFETY: sysconf only reads a configuration value.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size)
        .ok()
        .filter(|&s| s >= 1024)
        .unwrap_or(4096)
}

/// The command line as ps prints it: argv joined by spaces, `[comm]` for kernel threads
/// (which have none), control characters shown as `?` so one process cannot break the
/// table, secrets masked, cut to [`COMMAND_WIDTH`] characters. Masking comes before the
/// cut, which could otherwise leave part of a secret its rule no longer recognises.
fn command_line(stat: &PidStat, redactor: &Redactor) -> String {
    let raw = std::fs::read(format!("/proc/{}/cmdline", stat.pid)).unwrap_or_default();
    let printable = |text: &str| -> String {
        text.chars()
            .map(|c| if c.is_control() { '?' } else { c })
            .collect()
    };
    let args: Vec<String> = raw
        .split(|&b| b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| printable(&String::from_utf8_lossy(a)))
        .collect();
    let line = if args.is_empty() {
        printable(&format!("[{}]", stat.comm))
    } else {
        redactor.command_line(&args)
    };
    line.chars().take(COMMAND_WIDTH).collect()
}

/// uid → user name from /etc/passwd.
pub(crate) fn parse_passwd(text: &str) -> HashMap<u32, String> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split(':');
            let name = fields.next()?;
            let uid = fields.nth(1)?.parse().ok()?;
            Some((uid, name.to_string()))
        })
        .collect()
}

/// Renders processes with their %CPU as a ps-style table.
pub(crate) struct ProcessTable<'r> {
    users: HashMap<u32, String>,
    mem_total_kib: u64,
    redactor: &'r Redactor,
}

impl ProcessTable<'_> {
    pub(crate) fn new<'r>(mem: &MemInfo, redactor: &'r Redactor) -> ProcessTable<'r> {
        // Without /etc/passwd (minimal containers) users show as numbers, as in ps.
        let users = std::fs::read_to_string("/etc/passwd")
            .map(|t| parse_passwd(&t))
            .unwrap_or_default();
        ProcessTable {
            users,
            mem_total_kib: mem.total_kib,
            redactor,
        }
    }

    pub(crate) fn render(&self, rows: &[(&Process, f64)]) -> String {
        let headers = [
            ("USER", Align::Left),
            ("PID", Align::Right),
            ("PPID", Align::Right),
            ("%CPU", Align::Right),
            ("%MEM", Align::Right),
            ("RSS", Align::Right),
            ("COMMAND", Align::Left),
        ];
        let cells: Vec<Vec<String>> = rows
            .iter()
            .map(|(p, cpu)| {
                let user = match p.uid {
                    Some(uid) => self
                        .users
                        .get(&uid)
                        .cloned()
                        .unwrap_or_else(|| uid.to_string()),
                    None => "?".to_string(),
                };
                let mem = 100.0 * p.rss_kib as f64 / self.mem_total_kib.max(1) as f64;
                vec![
                    user,
                    p.stat.pid.to_string(),
                    p.stat.ppid.to_string(),
                    format!("{cpu:.1}"),
                    format!("{mem:.1}"),
                    p.rss_kib.to_string(),
                    command_line(&p.stat, self.redactor),
                ]
            })
            .collect();
        table(&headers, &cells)
    }
}

/// What the processes and the whole machine did during one window.
pub(crate) struct CpuWindow {
    /// Every process seen at the end, with its %CPU of one core over the window.
    pub processes: Vec<(Process, f64)>,
    pub busy_percent: Option<f64>,
    pub window: Duration,
}

impl CpuWindow {
    /// Busiest first; ties by pid so the output is stable.
    pub(crate) fn top(&self, n: usize) -> Vec<(&Process, f64)> {
        let mut rows: Vec<(&Process, f64)> = self.processes.iter().map(|(p, c)| (p, *c)).collect();
        rows.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.stat.pid.cmp(&b.0.stat.pid)));
        rows.truncate(n);
        rows
    }
}

/// Reads every process's CPU time twice, `window` apart.
pub(crate) fn sample_cpu(window: Duration) -> Result<CpuWindow, ProbeError> {
    let before_cpu = parse_stat(&read_proc(PROC_STAT)?)?.cpu;
    let started = Instant::now();
    let before: HashMap<u32, (u64, u64)> = pids()
        .into_iter()
        .filter_map(|pid| read_pid_stat(pid).map(|s| (pid, (s.start_ticks, s.cpu_ticks))))
        .collect();
    std::thread::sleep(window);
    let after = processes();
    let elapsed = started.elapsed();
    let busy_percent = parse_stat(&read_proc(PROC_STAT)?)?
        .cpu
        .busy_percent_since(&before_cpu);

    let ticks_per_second = clock_ticks_per_second() as f64;
    let secs = elapsed.as_secs_f64().max(f64::EPSILON);
    let processes = after
        .into_iter()
        .map(|p| {
            // A process not seen before (or a reused pid) started within the window, so
            // all of its CPU time falls inside it.
            let earlier = match before.get(&p.stat.pid) {
                Some(&(start, ticks)) if start == p.stat.start_ticks => ticks,
                _ => 0,
            };
            let ticks = p.stat.cpu_ticks.saturating_sub(earlier);
            let percent = 100.0 * ticks as f64 / ticks_per_second / secs;
            (p, percent)
        })
        .collect();
    Ok(CpuWindow {
        processes,
        busy_percent,
        window: elapsed,
    })
}

/// Each process's %CPU averaged over its lifetime, as `ps` computes it.
pub(crate) fn lifetime_cpu(processes: Vec<Process>) -> Result<Vec<(Process, f64)>, ProbeError> {
    let uptime = parse_uptime(&read_proc(PROC_UPTIME)?)?;
    let ticks_per_second = clock_ticks_per_second() as f64;
    Ok(processes
        .into_iter()
        .map(|p| {
            let age = uptime - p.stat.start_ticks as f64 / ticks_per_second;
            let cpu = p.stat.cpu_ticks as f64 / ticks_per_second;
            let percent = if age > 0.0 { 100.0 * cpu / age } else { 0.0 };
            (p, percent)
        })
        .collect())
}

/// Seconds since boot, from /proc/uptime.
pub(crate) fn parse_uptime(text: &str) -> Result<f64, CollectError> {
    text.split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| CollectError::Parse {
            path: PROC_UPTIME,
            detail: format!("expected seconds since boot, got {:?}", text.trim()),
        })
}

/// Biggest resident set first.
pub(crate) fn top_by_memory(rows: &[(Process, f64)], n: usize) -> Vec<(&Process, f64)> {
    let mut rows: Vec<(&Process, f64)> = rows.iter().map(|(p, c)| (p, *c)).collect();
    rows.sort_by(|a, b| {
        b.0.rss_kib
            .cmp(&a.0.rss_kib)
            .then(a.0.stat.pid.cmp(&b.0.stat.pid))
    });
    rows.truncate(n);
    rows
}

pub(crate) fn load_line() -> Result<String, ProbeError> {
    let [a, b, c] = parse_loadavg(&read_proc(PROC_LOADAVG)?)?;
    Ok(format!("{a:.2} {b:.2} {c:.2}"))
}

pub(crate) fn memory_line(mem: &MemInfo) -> String {
    let used = mem.total_kib.saturating_sub(mem.available_kib) * 1024;
    let swap = if mem.swap_total_kib == 0 {
        "no swap".to_string()
    } else {
        format!(
            "swap {:.1}% used ({} of {})",
            mem.swap_used_percent(),
            human_bytes(mem.swap_used_kib() * 1024),
            human_bytes(mem.swap_total_kib * 1024)
        )
    };
    format!(
        "memory {:.1}% used ({} of {}), {} available; {swap}",
        mem.used_percent(),
        human_bytes(used),
        human_bytes(mem.total_kib * 1024),
        human_bytes(mem.available_kib * 1024),
    )
}

/// How long to watch: up to half a second, but never more than half the time left, so
/// the probe answers before its deadline.
pub(crate) fn cpu_window(deadline: Instant) -> Duration {
    let left = deadline.saturating_duration_since(Instant::now());
    CPU_WINDOW.min(left / 2)
}

pub(crate) fn top_cpu(
    top: usize,
    deadline: Instant,
    redactor: &Redactor,
) -> Result<String, ProbeError> {
    let sampled = sample_cpu(cpu_window(deadline))?;
    let mem = parse_meminfo(&read_proc(PROC_MEMINFO)?)?;
    let busy = match sampled.busy_percent {
        Some(p) => format!("{p:.1}%"),
        None => "unknown".to_string(),
    };
    let mut out = format!(
        "CPU utilisation {busy} over {} ms, load {}\n",
        sampled.window.as_millis(),
        load_line()?
    );
    out.push_str(&ProcessTable::new(&mem, redactor).render(&sampled.top(top)));
    Ok(out)
}

pub(crate) fn top_mem(top: usize, redactor: &Redactor) -> Result<String, ProbeError> {
    let mem = parse_meminfo(&read_proc(PROC_MEMINFO)?)?;
    let rows = lifetime_cpu(processes())?;
    let mut out = memory_line(&mem);
    out.push_str("\n%CPU is averaged over each process's lifetime, as ps shows it\n");
    out.push_str(&ProcessTable::new(&mem, redactor).render(&top_by_memory(&rows, top)));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_stat_with_odd_comm() {
        let text = "4242 (my (weird) proc) S 1 4242 4242 0 -1 4194560 100 0 0 0 \
                    150 50 0 0 20 0 3 0 987654 123456789 2560 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n";
        let stat = parse_pid_stat(text).unwrap();
        assert_eq!(
            stat,
            PidStat {
                pid: 4242,
                comm: "my (weird) proc".into(),
                ppid: 1,
                cpu_ticks: 200,
                start_ticks: 987654,
                rss_pages: 2560,
            }
        );
    }

    #[test]
    fn pid_stat_kernel_thread_and_spaces() {
        let text = "2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 3 0 0 20 0 1 0 1 0 0 18446744073709551615 0 0 0 0 0 0 0 2147483647 0 0 0 0 17 0 0 0 0 0 0";
        let stat = parse_pid_stat(text).unwrap();
        assert_eq!((stat.pid, stat.ppid, stat.cpu_ticks), (2, 0, 3));
        assert_eq!(stat.comm, "kthreadd");
        let spaced = "77 (a ) b) R 5 0 0 0 -1 0 0 0 0 0 1 1 0 0 20 0 1 0 9 0 1 0";
        assert_eq!(parse_pid_stat(spaced).unwrap().comm, "a ) b");
    }

    #[test]
    fn pid_stat_rejects_garbage() {
        assert_eq!(parse_pid_stat(""), None);
        assert_eq!(parse_pid_stat("12 (x"), None);
        assert_eq!(parse_pid_stat(") 12 (x"), None);
        assert_eq!(parse_pid_stat("12 (x) S 1 2 3"), None, "too few fields");
        assert_eq!(
            parse_pid_stat("x (y) S 1 0 0 0 -1 0 0 0 0 0 1 1 0 0 20 0 1 0 9 0 1 0"),
            None
        );
        let negative_rss = "5 (z) S 1 0 0 0 -1 0 0 0 0 0 1 1 0 0 20 0 1 0 9 0 -3 0";
        assert_eq!(parse_pid_stat(negative_rss).unwrap().rss_pages, 0);
    }

    #[test]
    fn passwd_maps_uids() {
        let users = parse_passwd(
            "root:x:0:0:root:/root:/bin/bash\n# comment\nwww-data:x:33:33::/var/www:/usr/sbin/nologin\nbroken\n",
        );
        assert_eq!(users.len(), 2);
        assert_eq!(users[&0], "root");
        assert_eq!(users[&33], "www-data");
    }

    #[test]
    fn uptime_is_parsed() {
        assert_eq!(parse_uptime("1505.33 2512.25\n").unwrap(), 1505.33);
        assert!(parse_uptime("").is_err());
    }

    #[test]
    fn own_process_is_listed_with_its_command() {
        let me = std::process::id();
        let all = processes();
        let own = all.iter().find(|p| p.stat.pid == me).unwrap();
        assert!(own.rss_kib > 0);
        assert!(all.len() > 1);
        let cmd = command_line(&own.stat, &Redactor::default());
        let exe = std::env::args().next().unwrap();
        assert!(cmd.starts_with(&exe), "{cmd} vs {exe}");
        // pid 2 is kthreadd, which has no command line.
        if let Some(kthreadd) = all.iter().find(|p| p.stat.pid == 2) {
            assert_eq!(
                command_line(&kthreadd.stat, &Redactor::default()),
                "[kthreadd]"
            );
        }
    }

    #[test]
    fn cpu_window_fits_the_deadline() {
        let soon = Instant::now() + Duration::from_millis(200);
        assert!(cpu_window(soon) <= Duration::from_millis(100));
        let later = Instant::now() + Duration::from_secs(10);
        assert_eq!(cpu_window(later), CPU_WINDOW);
    }
}
