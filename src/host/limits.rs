//! The host's limits on how many connections the process can hold: the open-files limit
//! (`RLIMIT_NOFILE`), the descriptors and threads in use, and the pids cgroup (systemd's
//! `TasksMax=`). Read once at start; the HTTP output derives its caps from them.

use crate::host::sys;

/// The limits in force that bound how many connections the process can hold: tiny_http
/// spends two descriptors and a thread on each, and fails hard when it cannot (EMFILE ends
/// its accept thread; a failed descriptor copy or thread spawn aborts the process).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InForce {
    /// The soft open-files limit (after raising it to the hard one).
    pub nofile: Option<u64>,
    /// Descriptors open now.
    pub fds: Option<u64>,
    /// How many more tasks (threads) the pids cgroup admits: the least `pids.max -
    /// pids.current` over our group and its ancestors (systemd's `TasksMax=` sets it).
    pub tasks_left: Option<u64>,
    /// `RLIMIT_NPROC`, if set by the caller: it counts every process and thread of the
    /// user, which we cannot see, so [`InForce::read`] leaves it out (it would bound ours only
    /// from above, and root is not held to it); a unit's `TasksMax=` is the pids cgroup.
    pub nproc: Option<u64>,
    /// Our threads now.
    pub threads: Option<u64>,
}

/// What the process keeps for itself besides one descriptor pair and one thread per
/// connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spare {
    /// Descriptors kept spare besides the connections'.
    pub fds: u64,
    /// Threads of the process when it holds no connection.
    pub threads: u64,
    /// Threads that exist whatever happens, assumed where the count is unknown.
    pub base_threads: u64,
}

impl InForce {
    /// Reads the limits in force now: `RLIMIT_NOFILE`, `/proc/self` and the pids cgroup (v2
    /// `/sys/fs/cgroup/<path>/`, v1 `/sys/fs/cgroup/pids/<path>/`). Call at start only: it
    /// reads files.
    #[must_use]
    pub fn read() -> InForce {
        let mut text = [0u8; 4096];
        let mut tasks_left: Option<u64> = None;
        let mut dir = String::new();
        for line in read_small("/proc/self/cgroup", &mut text)
            .unwrap_or("")
            .lines()
        {
            if !pids_dir(line, &mut dir) {
                continue;
            }
            let mut number = [0u8; 32];
            let base = dir.len();
            dir.push_str("/pids.max");
            let max = read_small(&dir, &mut number).and_then(|t| t.trim().parse::<u64>().ok());
            dir.truncate(base);
            dir.push_str("/pids.current");
            let current = read_small(&dir, &mut number).and_then(|t| t.trim().parse::<u64>().ok());
            if let (Some(max), Some(current)) = (max, current) {
                let left = max.saturating_sub(current);
                tasks_left = Some(tasks_left.map_or(left, |t| t.min(left)));
            }
        }
        InForce {
            nofile: sys::nofile_limit().ok().map(|(soft, _)| soft),
            fds: count_entries("/proc/self/fd"),
            tasks_left,
            nproc: None,
            threads: count_entries("/proc/self/task"),
        }
    }

    /// Most threads the process can have, if anything limits it.
    fn thread_ceiling(&self, spare: Spare) -> Option<u64> {
        let threads = self.threads.unwrap_or(spare.base_threads);
        let cgroup = self.tasks_left.map(|left| left + threads);
        match (cgroup, self.nproc) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Most connections the descriptors allow (two each), if known.
    fn fd_connections(&self, spare: Spare) -> Option<u64> {
        let free = self
            .nofile?
            .saturating_sub(self.fds.unwrap_or(0) + spare.fds);
        Some(free / 2)
    }

    /// Most connections the limits allow, if anything limits them.
    #[must_use]
    pub fn connections(&self, spare: Spare) -> Option<u64> {
        match (self.fd_connections(spare), self.thread_connections(spare)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Most connections the threads allow (one each), if anything limits them.
    #[must_use]
    pub fn thread_connections(&self, spare: Spare) -> Option<u64> {
        Some(
            self.thread_ceiling(spare)?
                .saturating_sub(spare.threads.max(self.threads.unwrap_or(0))),
        )
    }
}

/// Sets `dir` to the pids cgroup directory a line of `/proc/self/cgroup` names, in the v1
/// pids hierarchy or the v2 unified one (systemd's `TasksMax=` is set on the unit's own
/// group); false for any other line.
pub fn pids_dir(line: &str, dir: &mut String) -> bool {
    let Some((_, rest)) = line.split_once(':') else {
        return false;
    };
    let Some((controllers, path)) = rest.split_once(':') else {
        return false;
    };
    let root = if controllers.is_empty() {
        "/sys/fs/cgroup"
    } else if controllers.split(',').any(|c| c == "pids") {
        "/sys/fs/cgroup/pids"
    } else {
        return false;
    };
    // Outside our cgroup namespace the path climbs ("/.."): not ours to read.
    if !path.starts_with('/') || path.as_bytes().windows(2).any(|w| w == b"..") {
        return false;
    }
    dir.clear();
    dir.push_str(root);
    dir.push_str(path.strip_suffix('/').unwrap_or(path));
    true
}

/// The text of a small file (what fits in `buf`).
fn read_small<'a>(path: &str, buf: &'a mut [u8]) -> Option<&'a str> {
    use std::io::Read;
    let n = std::fs::File::open(path).ok()?.read(buf).ok()?;
    std::str::from_utf8(&buf[..n]).ok()
}

/// The entries of a directory (`/proc/self/fd`, `/proc/self/task`).
#[must_use]
pub fn count_entries(path: &str) -> Option<u64> {
    sys::count_dir_entries(&std::fs::File::open(path).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pids_cgroup_is_found_in_either_hierarchy() {
        let dirs = |text: &str| -> Vec<String> {
            text.lines()
                .filter_map(|line| {
                    let mut dir = String::new();
                    pids_dir(line, &mut dir).then_some(dir)
                })
                .collect()
        };
        assert_eq!(
            dirs("0::/system.slice/we.service\n"),
            ["/sys/fs/cgroup/system.slice/we.service"]
        );
        assert_eq!(
            dirs("9:name=systemd:/\n8:pids:/we\n4:memory:/x\n0::/\n"),
            ["/sys/fs/cgroup/pids/we", "/sys/fs/cgroup"]
        );
        assert_eq!(
            dirs("3:cpu,pids:/a/b/\n5:pids:/../x\n"),
            ["/sys/fs/cgroup/pids/a/b"]
        );
        assert!(dirs("garbage\n4:memory:/x\n").is_empty());
    }
}
