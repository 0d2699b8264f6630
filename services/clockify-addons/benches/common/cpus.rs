//! `BENCH_DB_CPUS`: the database on cores of its own.
//!
//! In a cluster an add-on pod does not share its cores with PostgreSQL. On one machine the
//! database, the servers, the load driver and the fake Clockify all run on the same cores, and
//! at 64 connections every one of them waits for a core; a statement then takes as long as its
//! backend waited to be scheduled. With `BENCH_DB_CPUS` (a CPU list, such as `1`) the
//! benchmark pins the local PostgreSQL (its postmaster, every process it has started, and so
//! every backend it starts later) to those CPUs and itself, with the servers it starts, to the
//! others; both are given every CPU again when it ends. It needs the database on this machine
//! and the right to change its processes' affinity (`taskset`, as their user or as root). A
//! benchmark killed before it ends leaves PostgreSQL pinned; every CPU is given back with
//! `for p in $(pgrep -x postgres); do taskset -a -c -p "$(cat /sys/devices/system/cpu/online)" $p; done`.

use std::process::Command;

/// Parses a CPU list (`0-3,6`).
fn parse_list(s: &str) -> Result<Vec<u32>, String> {
    let mut cpus = Vec::new();
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        let bad = || format!("{part:?} is not a CPU number or range");
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u32, u32) =
                    (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
                if a > b {
                    return Err(bad());
                }
                cpus.extend(a..=b);
            }
            None => cpus.push(part.parse().map_err(|_| bad())?),
        }
    }
    cpus.sort_unstable();
    cpus.dedup();
    Ok(cpus)
}

fn format_list(cpus: &[u32]) -> String {
    cpus.iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// The database's cores and the benchmark's, while it runs.
pub struct Split {
    postmaster: u32,
    online: Vec<u32>,
    database: Vec<u32>,
    benchmark: Vec<u32>,
}

/// `pid` and the processes whose parent it is.
fn with_children(pid: u32) -> Vec<u32> {
    let mut pids = vec![pid];
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(child) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if parent(child) == Some(pid) {
            pids.push(child);
        }
    }
    pids
}

/// The parent of `pid` (`/proc/<pid>/stat`, whose second field may hold spaces).
fn parent(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Gives `pid` and all its threads the CPUs `cpus`.
fn pin(pid: u32, cpus: &[u32]) -> Result<(), String> {
    let out = Command::new("taskset")
        .args(["-a", "-c", "-p", &format_list(cpus), &pid.to_string()])
        .output()
        .map_err(|e| format!("cannot run taskset: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }
}

impl Split {
    /// Splits the cores as `BENCH_DB_CPUS` asks, or does nothing when it is unset. Panics with
    /// what was wrong when it cannot (this is a benchmark's setting, not a server's input).
    pub fn from_env(server: &str) -> Option<Split> {
        let wanted = std::env::var("BENCH_DB_CPUS").ok()?;
        let online = std::fs::read_to_string("/sys/devices/system/cpu/online")
            .map_err(|e| e.to_string())
            .and_then(|s| parse_list(&s))
            .unwrap_or_else(|e| panic!("BENCH_DB_CPUS: cannot read the online CPUs: {e}"));
        let database =
            parse_list(&wanted).unwrap_or_else(|e| panic!("BENCH_DB_CPUS={wanted:?}: {e}"));
        let benchmark: Vec<u32> = online
            .iter()
            .copied()
            .filter(|c| !database.contains(c))
            .collect();
        assert!(
            !database.is_empty() && database.iter().all(|c| online.contains(c)),
            "BENCH_DB_CPUS={wanted:?}: name CPUs among the online ones ({})",
            format_list(&online)
        );
        assert!(
            !benchmark.is_empty(),
            "BENCH_DB_CPUS={wanted:?} leaves no CPU for the benchmark and its servers"
        );
        // The checkpointer is a child of the postmaster, as every backend is.
        let out = Command::new("psql")
            .args([
                &format!("{server}/postgres"),
                "-Atc",
                "SELECT pid FROM pg_stat_activity WHERE backend_type = 'checkpointer'",
            ])
            .output()
            .expect("psql");
        let checkpointer: u32 = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or_else(|_| {
                panic!(
                    "BENCH_DB_CPUS: cannot find PostgreSQL's checkpointer: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                )
            });
        let postmaster = parent(checkpointer).unwrap_or_else(|| {
            panic!(
                "BENCH_DB_CPUS: PostgreSQL's processes (checkpointer {checkpointer}) are not on this machine"
            )
        });
        let split = Split {
            postmaster,
            online,
            database,
            benchmark,
        };
        for pid in with_children(postmaster) {
            // A backend that ended meanwhile has nothing to pin.
            if let Err(e) = pin(pid, &split.database)
                && std::fs::metadata(format!("/proc/{pid}")).is_ok()
            {
                panic!("BENCH_DB_CPUS: cannot pin PostgreSQL's process {pid}: {e}");
            }
        }
        pin(std::process::id(), &split.benchmark)
            .unwrap_or_else(|e| panic!("BENCH_DB_CPUS: cannot pin the benchmark: {e}"));
        Some(split)
    }

    /// For a benchmark's header: `database on CPU 1, benchmark and servers on CPU 0`, or that
    /// every process shares every CPU.
    pub fn describe(split: Option<&Split>) -> String {
        match split {
            Some(s) => format!(
                "database on CPU {}, benchmark and servers on CPU {}",
                format_list(&s.database),
                format_list(&s.benchmark)
            ),
            None => "every process on every CPU".to_owned(),
        }
    }
}

impl Drop for Split {
    fn drop(&mut self) {
        for pid in with_children(self.postmaster) {
            let _ = pin(pid, &self.online);
        }
        let _ = pin(std::process::id(), &self.online);
    }
}

/// The machine's CPU time so far (`/proc/stat`'s first line, in clock ticks): how busy a level
/// kept every core, and how much of it the hypervisor took (steal), since a statement's time
/// under load is mostly its wait for a core.
#[derive(Clone, Copy, Default)]
pub struct Times {
    busy: u64,
    steal: u64,
    total: u64,
}

impl Times {
    /// Zero everywhere when `/proc/stat` cannot be read (the level then prints 0%).
    pub fn now() -> Self {
        let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
            return Self::default();
        };
        // user nice system idle iowait irq softirq steal guest guest_nice; guest time is also
        // counted in user and nice.
        let f: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .take(8)
            .map(|v| v.parse().unwrap_or(0))
            .collect();
        let at = |i: usize| f.get(i).copied().unwrap_or(0);
        Self {
            busy: at(0) + at(1) + at(2) + at(5) + at(6),
            steal: at(7),
            total: f.iter().sum(),
        }
    }

    /// "busy% steal%" of every core between `self` and `later`.
    pub fn share_until(&self, later: &Self) -> String {
        let total = later.total.saturating_sub(self.total).max(1) as f64;
        format!(
            "{:.0}% {:.0}%",
            100.0 * later.busy.saturating_sub(self.busy) as f64 / total,
            100.0 * later.steal.saturating_sub(self.steal) as f64 / total
        )
    }
}
