//! `system_summary`: the first screen an engineer looks at, plus recent OOM kills.

use std::collections::VecDeque;
use std::fs::OpenOptions;
use std::io::{ErrorKind, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::time::{Duration, Instant, UNIX_EPOCH};

use super::process::{
    cpu_window, load_line, memory_line, parse_uptime, sample_cpu, top_by_memory, ProcessTable,
};
use super::text::{duration_dhms, rfc3339};
use super::ProbeError;
use crate::collect::{parse_meminfo, parse_stat, read_proc, PROC_MEMINFO, PROC_STAT, PROC_UPTIME};
use crate::redact::Redactor;

const KMSG: &str = "/dev/kmsg";
const OOM_LINES: usize = 20;
/// Larger than the kernel's longest record (8 KiB), which a shorter read would fail on.
const KMSG_RECORD_MAX: usize = 16 * 1024;

pub(crate) fn system_summary(deadline: Instant, redactor: &Redactor) -> Result<String, ProbeError> {
    let stat = parse_stat(&read_proc(PROC_STAT)?)?;
    let uptime = parse_uptime(&read_proc(PROC_UPTIME)?)?;
    let mut out = format!("uptime {}", duration_dhms(uptime as u64));
    if let Some(btime) = stat.btime {
        out.push_str(&format!(
            ", booted {}",
            rfc3339(UNIX_EPOCH + Duration::from_secs(btime))
        ));
    }
    out.push_str(&format!(
        "\nload average {} on {} CPUs\n",
        load_line()?,
        stat.cpus
    ));

    let sampled = sample_cpu(cpu_window(deadline))?;
    let window_ms = sampled.window.as_millis();
    match sampled.busy_percent {
        Some(p) => out.push_str(&format!("CPU utilisation {p:.1}% over {window_ms} ms\n")),
        None => out.push_str("CPU utilisation unknown: no clock tick passed\n"),
    }
    let mem = parse_meminfo(&read_proc(PROC_MEMINFO)?)?;
    out.push_str(&memory_line(&mem));
    out.push('\n');

    let processes = ProcessTable::new(&mem, redactor);
    out.push_str(&format!("\ntop 3 by CPU over those {window_ms} ms:\n"));
    out.push_str(&processes.render(&sampled.top(3)));
    out.push_str("\ntop 3 by memory:\n");
    out.push_str(&processes.render(&top_by_memory(&sampled.processes, 3)));

    out.push('\n');
    match read_oom_messages(deadline) {
        Ok(oom) if oom.is_empty() => out.push_str("no OOM-killer messages in the kernel log\n"),
        Ok(oom) => {
            out.push_str(&format!(
                "kernel OOM-killer messages (last {}):\n",
                oom.len()
            ));
            for (usec, message) in oom {
                let line = match stat.btime {
                    Some(btime) => {
                        let at = UNIX_EPOCH
                            + Duration::from_secs(btime)
                            + Duration::from_micros(usec);
                        format!("[{}] {message}\n", rfc3339(at))
                    }
                    None => format!("[{:.6}] {message}\n", usec as f64 / 1e6),
                };
                out.push_str(&line);
            }
        }
        Err(e) => out.push_str(&format!(
            "kernel log not readable ({KMSG}: {e}); OOM kills are not shown — the agent needs CAP_SYSLOG or root for them\n"
        )),
    }
    Ok(out)
}

/// The last OOM-killer messages in the kernel ring buffer, with their time since boot
/// in microseconds.
///
/// /dev/kmsg is opened non-blocking: a blocking read would wait for the next kernel
/// message once the buffer is drained, which may never come.
fn read_oom_messages(deadline: Instant) -> std::io::Result<Vec<(u64, String)>> {
    let mut kmsg = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(KMSG)?;
    let mut buf = vec![0u8; KMSG_RECORD_MAX];
    let mut found = VecDeque::with_capacity(OOM_LINES);
    let mut read_any = false;
    while Instant::now() < deadline {
        // Each read returns exactly one record.
        let n = match kmsg.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            // Records were overwritten while reading; the next read resumes after them.
            Err(e) if e.raw_os_error() == Some(libc::EPIPE) => continue,
            Err(e) if !read_any => return Err(e),
            Err(_) => break,
        };
        read_any = true;
        let record = String::from_utf8_lossy(&buf[..n]);
        if let Some((usec, message)) = parse_kmsg_record(&record) {
            if is_oom_message(message) {
                if found.len() == OOM_LINES {
                    found.pop_front();
                }
                found.push_back((usec, message.to_string()));
            }
        }
    }
    Ok(found.into())
}

/// `PRIORITY,SEQUENCE,MICROSECONDS,FLAGS[,...];MESSAGE`, possibly followed by
/// continuation lines (` KEY=value`) that are not part of the message.
fn parse_kmsg_record(record: &str) -> Option<(u64, &str)> {
    let (prefix, rest) = record.split_once(';')?;
    let usec = prefix.split(',').nth(2)?.parse().ok()?;
    let message = rest.lines().next()?.trim_end();
    Some((usec, message))
}

fn is_oom_message(message: &str) -> bool {
    let lower = message.to_ascii_lowercase();
    ["out of memory", "oom-kill", "oom_reaper", "killed process"]
        .iter()
        .any(|needle| lower.contains(needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kmsg_records_are_parsed() {
        let record = "3,1042,5123456789,-;Out of memory: Killed process 4242 (java) total-vm:8000000kB\n SUBSYSTEM=memory\n";
        let (usec, message) = parse_kmsg_record(record).unwrap();
        assert_eq!(usec, 5_123_456_789);
        assert_eq!(
            message,
            "Out of memory: Killed process 4242 (java) total-vm:8000000kB"
        );
        let with_semicolon = "6,1,2,c;a; b\n";
        assert_eq!(parse_kmsg_record(with_semicolon), Some((2, "a; b")));
        assert_eq!(parse_kmsg_record("garbage"), None);
        assert_eq!(parse_kmsg_record("6,1,x,-;m"), None);
    }

    #[test]
    fn oom_messages_are_recognised() {
        for line in [
            "java invoked oom-killer: gfp_mask=0x140cca(GFP_HIGHUSER_MOVABLE), order=0",
            "Out of memory: Killed process 4242 (java) total-vm:8000000kB",
            "oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),task=java,pid=4242",
            "oom_reaper: reaped process 4242 (java), now anon-rss:0kB",
            "Memory cgroup out of memory: Killed process 77 (php-fpm)",
        ] {
            assert!(is_oom_message(line), "{line}");
        }
        assert!(!is_oom_message("EXT4-fs (vda): mounted filesystem"));
    }

    #[test]
    fn summary_has_every_section() {
        let out = system_summary(
            Instant::now() + Duration::from_secs(5),
            &Redactor::default(),
        )
        .unwrap();
        for needle in [
            "uptime ",
            "load average ",
            "CPU utilisation ",
            "memory ",
            "top 3 by CPU",
            "top 3 by memory",
        ] {
            assert!(out.contains(needle), "no {needle:?} in\n{out}");
        }
        assert!(
            out.contains("OOM-killer messages") || out.contains("kernel log not readable"),
            "{out}"
        );
        assert_eq!(out.matches("USER ").count(), 2, "{out}");
    }
}
