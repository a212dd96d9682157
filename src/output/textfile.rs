//! The textfile output: keeps one file up to date for node_exporter's textfile collector, for
//! hosts that allow no new port. It owns the file's life: checking where it goes, removing
//! temporary files a crash left behind, the atomic replace (a temporary file in the same
//! directory, fsync, mode 0644, rename, fsync of the directory), the write schedule and the
//! one-log-line-per-failure-streak rule. What goes into the file is `metrics`'s choice
//! (`Metrics::textfile_snapshot`) and how it is spelled is `render`'s; this file must not
//! know the families, nor touch sockets.
//!
//! node_exporter reads only `*.prom`, so the temporary file `.FILE.PID.tmp` is never read
//! half-written; the rename makes a reader see either the old file or the new one. The file
//! is left in place on exit: node_exporter's `node_textfile_mtime_seconds` shows its age, and
//! the shipped alert rule fires when it goes stale.

use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Write as _};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::host::clock;
use crate::log;
use crate::metrics::render::{render, Format};
use crate::output::kind::{Numbers, Opening, Output};

/// node_exporter runs as another user and must read the file; the unit's `UMask=0077` alone
/// would leave it 0600.
const MODE: u32 = 0o644;

/// One file kept up to date, with its buffer and schedule.
#[derive(Debug)]
struct Textfile {
    /// The path as given, for the log.
    shown: String,
    path: PathBuf,
    dir: PathBuf,
    temp: PathBuf,
    buf: String,
    interval: Duration,
    next: Instant,
    /// Inside a failure streak: the first failure was logged, the rest are not.
    failing: bool,
    /// The latest write succeeded.
    last_ok: bool,
    /// A write succeeded since this image of the process started.
    written: bool,
    /// The latest failure, as `step: error`, while it lasts.
    failure: Option<String>,
}

/// How a write went, as far as the failure streak is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Written, as the previous one was.
    Written,
    /// Written after one or more failures (logged at info).
    Recovered,
    /// Failed; `first` when it starts a streak (only that one is logged at warn).
    Failed {
        /// Whether this failure starts a streak.
        first: bool,
    },
}

impl Outcome {
    /// Whether the file now holds what was rendered.
    #[must_use]
    fn ok(self) -> bool {
        !matches!(self, Outcome::Failed { .. })
    }
}

/// The directory of `path` as written: `.` for a bare file name, `/` for a file in the root.
#[must_use]
pub fn dir_of(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) => "/",
        Some(i) => &path[..i],
        None => ".",
    }
}

impl Textfile {
    /// Prepares to keep `path` up to date every `interval`, the first write due at `now`.
    /// Refuses a path whose directory does not exist or which is a directory itself (the
    /// error is a reason that reads after "invalid value …: "), and removes our temporary
    /// files that a crash left in that directory.
    fn open(path: &str, interval: Duration, now: Instant) -> Result<Textfile, String> {
        let dir = dir_of(path);
        let name = &path[path.rfind('/').map_or(0, |i| i + 1)..];
        match fs::metadata(dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(format!("{dir} is not a directory")),
            // "No such file or directory" for one that does not exist.
            Err(e) => return Err(format!("directory {dir}: {e}")),
        }
        if name.is_empty() || fs::metadata(path).is_ok_and(|m| m.is_dir()) {
            return Err("is a directory, expected a file name in it".to_owned());
        }
        remove_stale(dir, name);
        Ok(Textfile {
            shown: path.to_owned(),
            path: PathBuf::from(path),
            dir: PathBuf::from(dir),
            temp: PathBuf::from(format!("{dir}/.{name}.{}.tmp", std::process::id())),
            buf: String::new(),
            interval,
            next: now,
            failing: false,
            last_ok: false,
            written: false,
            failure: None,
        })
    }

    /// Renders with `fill` into the reused buffer (cleared first) and replaces the file with
    /// it, then schedules the next write one interval on (skipping intervals the loop slept
    /// through). A failure leaves the previous file and no temporary file behind; only the
    /// first of a streak is logged (warn), and the recovery (info). The first success is
    /// logged at info; a failure before it is not logged here, since it ends the process
    /// (see `wake`).
    fn write(&mut self, now: Instant, fill: impl FnOnce(&mut String)) -> Outcome {
        self.next += self.interval;
        if self.next <= now {
            self.next = now + self.interval;
        }
        self.buf.clear();
        fill(&mut self.buf);
        let began = Instant::now();
        let result = self.replace();
        // The figure behind the README's write-time claim: render excluded, both fsyncs
        // and the rename included.
        let micros = began.elapsed().as_micros();
        let outcome = match (result, self.failing) {
            (Ok(()), failing) => {
                log::debug(
                    "textfile written",
                    &[("bytes", &self.buf.len()), ("write_us", &micros)],
                );
                if !self.written {
                    let interval = crate::config::format_duration(self.interval);
                    log::info(
                        "textfile written; rewriting it every interval",
                        &[
                            ("path", &self.shown),
                            ("bytes", &self.buf.len()),
                            ("interval", &interval),
                        ],
                    );
                }
                self.written = true;
                self.failure = None;
                if failing {
                    log::info("textfile written again", &[("path", &self.shown)]);
                    Outcome::Recovered
                } else {
                    Outcome::Written
                }
            }
            (Err((step, e)), failing) => {
                if !failing && self.written {
                    log::warn(
                        "cannot write the textfile; keeping the previous one and retrying every interval",
                        &[("path", &self.shown), ("step", &step), ("err", &e)],
                    );
                }
                self.failure = Some(format!("{step}: {e}"));
                Outcome::Failed { first: !failing }
            }
        };
        self.failing = !outcome.ok();
        self.last_ok = outcome.ok();
        outcome
    }

    /// The atomic replace; on failure, which step failed. The temporary file is removed
    /// whatever step failed.
    fn replace(&self) -> Result<(), (&'static str, io::Error)> {
        let result = self
            .write_temp()
            .and_then(|()| fs::rename(&self.temp, &self.path).map_err(|e| ("rename", e)));
        if result.is_err() {
            let _ = fs::remove_file(&self.temp);
            return result;
        }
        // Makes the rename itself durable (old ext4 without auto_da_alloc could otherwise
        // lose it in a crash). Some filesystems cannot sync a directory; the file is
        // already in place then, so that is no failure.
        if let Ok(dir) = File::open(&self.dir) {
            let _ = dir.sync_all();
        }
        Ok(())
    }

    fn write_temp(&self) -> Result<(), (&'static str, io::Error)> {
        // A leftover of ours (a crash of this same PID after a restart in place) would make
        // `create_new` fail; `create_new` is kept so that a symlink planted under our
        // temporary name in a shared directory is never followed.
        let _ = fs::remove_file(&self.temp);
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(MODE)
            .open(&self.temp)
            .map_err(|e| ("create", e))?;
        file.set_permissions(Permissions::from_mode(MODE))
            .map_err(|e| ("chmod", e))?;
        file.write_all(self.buf.as_bytes())
            .map_err(|e| ("write", e))?;
        file.sync_all().map_err(|e| ("fsync", e))
    }
}

/// The textfile output, when `--textfile.path` asks for one. A path that cannot be is a
/// usage error.
pub(crate) fn open(opening: &Opening) -> Result<Option<Box<dyn Output>>, Error> {
    let config = opening.config;
    let Some(path) = &config.textfile_path else {
        return Ok(None);
    };
    let textfile =
        Textfile::open(path, config.textfile_interval, opening.started).map_err(|why| {
            Error::Usage(format!("invalid value {path:?} for --textfile.path: {why}"))
        })?;
    Ok(Some(Box::new(textfile)))
}

impl Output for Textfile {
    /// Writes the file if it is due at `now`: what `Metrics::textfile_snapshot` gives, in
    /// the text format, counted in the metrics. A failed write is logged and retried at the
    /// next interval, but for the first one: a file that could never be written at start
    /// (a directory the service may not write to) ends the process with that reason, rather
    /// than leave it running for ever with nothing to show.
    fn wake(&mut self, now: Instant, numbers: &mut Numbers) -> Result<(), Error> {
        if now < self.next {
            return Ok(());
        }
        let metrics = numbers.metrics();
        let unix_nanos = clock::unix_nanos();
        let snapshot = metrics.textfile_snapshot(now, unix_nanos);
        let outcome = self.write(now, |buf| render(&snapshot, Format::Text, buf));
        metrics.textfile.count_write(outcome.ok(), unix_nanos);
        match (&self.failure, self.written) {
            (Some(why), false) => Err(Error::Fatal(format!(
                "cannot write --textfile.path={} at start ({why}); is its directory writable \
                 for this user?",
                self.shown
            ))),
            _ => Ok(()),
        }
    }

    fn next_due(&self) -> Instant {
        self.next
    }

    /// Without HTTP, the first file written is what proves the exporter up.
    fn ready(&self) -> Option<String> {
        self.last_ok.then(|| format!("writing {}", self.shown))
    }

    /// The latest write succeeded: what proves the exporter alive to systemd's watchdog
    /// when there is no HTTP.
    fn alive(&self, _window: Duration, _now: Instant) -> bool {
        self.last_ok
    }
}

/// Our temporary name for `name` is `.NAME.PID.tmp`; any PID's is ours (an earlier run's).
fn is_our_temp(entry: &str, name: &str) -> bool {
    entry
        .strip_prefix('.')
        .and_then(|e| e.strip_prefix(name))
        .and_then(|e| e.strip_prefix('.'))
        .and_then(|e| e.strip_suffix(".tmp"))
        .is_some_and(|pid| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
}

/// Removes the temporary files an earlier run left when it died between create and rename.
fn remove_stale(dir: &str, name: &str) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(file) = file_name.to_str().filter(|e| is_our_temp(e, name)) else {
            continue;
        };
        let removed = fs::remove_file(format!("{dir}/{file}"));
        log::info(
            "removing a temporary file left by an earlier run",
            &[("dir", &dir), ("file", &file), ("ok", &removed.is_ok())],
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt as _;
    use std::path::Path;

    /// A fresh directory under the temp dir, removed on drop.
    struct Dir(PathBuf);

    impl Dir {
        fn new(tag: &str) -> Dir {
            use std::sync::atomic::{AtomicUsize, Ordering};
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let dir = std::env::temp_dir().join(format!(
                "widget-exporter-textfile-{tag}-{}-{n}",
                std::process::id()
            ));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).expect("create test dir");
            Dir(dir)
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .expect("read test dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    fn utf8(path: &Path) -> &str {
        path.to_str().expect("test paths are UTF-8")
    }

    fn open(path: &Path) -> Textfile {
        Textfile::open(utf8(path), Duration::from_secs(15), Instant::now()).expect("open")
    }

    #[test]
    fn directory_of_a_path() {
        for (path, dir) in [
            ("w.prom", "."),
            ("/w.prom", "/"),
            ("/var/lib/node/w.prom", "/var/lib/node"),
            ("rel/w.prom", "rel"),
            ("./w.prom", "."),
        ] {
            assert_eq!(dir_of(path), dir, "{path}");
        }
    }

    #[test]
    fn replaces_the_file_whole_with_mode_0644_and_no_leftovers() {
        let dir = Dir::new("replace");
        let path = dir.0.join("widgets.prom");
        let mut t = open(&path);
        let now = Instant::now();
        for body in ["a 1\n", "a 2\nb 3\n"] {
            assert_eq!(t.write(now, |b| b.push_str(body)), Outcome::Written);
            assert_eq!(fs::read_to_string(&path).expect("read"), body);
        }
        let meta = fs::metadata(&path).expect("stat");
        assert_eq!(meta.mode() & 0o777, 0o644);
        assert_eq!(entries(&dir.0), ["widgets.prom"]);
    }

    #[test]
    fn a_directory_removed_under_it_is_one_streak_then_a_recovery() {
        let dir = Dir::new("removed");
        let path = dir.0.join("widgets.prom");
        let mut t = open(&path);
        let now = Instant::now();
        assert!(t.write(now, |b| b.push_str("a 1\n")).ok());
        fs::remove_dir_all(&dir.0).expect("remove the directory");
        assert_eq!(
            t.write(now, |b| b.push_str("a 2\n")),
            Outcome::Failed { first: true }
        );
        assert_eq!(
            t.write(now, |b| b.push_str("a 3\n")),
            Outcome::Failed { first: false }
        );
        fs::create_dir_all(&dir.0).expect("recreate the directory");
        assert_eq!(t.write(now, |b| b.push_str("a 4\n")), Outcome::Recovered);
        assert_eq!(t.write(now, |b| b.push_str("a 5\n")), Outcome::Written);
        assert_eq!(fs::read_to_string(&path).expect("read"), "a 5\n");
        assert_eq!(entries(&dir.0), ["widgets.prom"]);
    }

    /// A failure after the temporary file was written and synced: the final name has become
    /// a non-empty directory, so the rename fails for root too (EISDIR).
    #[test]
    fn a_failed_rename_removes_the_temporary_file() {
        let dir = Dir::new("rename");
        let path = dir.0.join("widgets.prom");
        let mut t = open(&path);
        fs::create_dir(&path).expect("occupy the name");
        fs::write(path.join("keep"), "x").expect("fill it");
        let outcome = t.write(Instant::now(), |b| b.push_str("a 1\n"));
        assert_eq!(outcome, Outcome::Failed { first: true });
        assert_eq!(entries(&dir.0), ["widgets.prom"]);
        assert_eq!(fs::read_to_string(path.join("keep")).expect("kept"), "x");
    }

    /// A failure before anything is written (the temporary name is taken by a directory,
    /// which root cannot open for writing either): the previous file stays as it was.
    #[test]
    fn a_failed_write_keeps_the_previous_file() {
        let dir = Dir::new("keep");
        let path = dir.0.join("widgets.prom");
        let mut t = open(&path);
        let now = Instant::now();
        assert!(t.write(now, |b| b.push_str("old 1\n")).ok());
        fs::create_dir(&t.temp).expect("occupy the temporary name");
        assert!(!t.write(now, |b| b.push_str("new 2\n")).ok());
        assert_eq!(fs::read_to_string(&path).expect("read"), "old 1\n");
        fs::remove_dir(&t.temp).expect("free the temporary name");
        assert_eq!(t.write(now, |b| b.push_str("new 3\n")), Outcome::Recovered);
        assert_eq!(fs::read_to_string(&path).expect("read"), "new 3\n");
    }

    /// A directory nobody may create files in. Root ignores a 0555 mode, so under root
    /// (as in CI) the test uses sysfs, where file creation is refused to root too; it runs
    /// the 0555 case as well when not root.
    #[test]
    fn an_unwritable_directory_fails_without_leftovers() {
        let dir = Dir::new("readonly");
        let mut cases = vec![PathBuf::from("/sys/widget-exporter-test.prom")];
        let is_root = fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
        if !is_root {
            fs::set_permissions(&dir.0, Permissions::from_mode(0o555)).expect("chmod");
            cases.push(dir.0.join("widgets.prom"));
        }
        for path in cases {
            if !path.parent().is_some_and(Path::is_dir) {
                continue;
            }
            let mut t = open(&path);
            let outcome = t.write(Instant::now(), |b| b.push_str("a 1\n"));
            assert_eq!(
                outcome,
                Outcome::Failed { first: true },
                "{}",
                path.display()
            );
            assert!(!path.exists() && !t.temp.exists(), "{}", path.display());
        }
        let _ = fs::set_permissions(&dir.0, Permissions::from_mode(0o755));
    }

    #[test]
    fn open_refuses_what_cannot_be_the_file_and_removes_stale_temporaries() {
        let dir = Dir::new("open");
        let now = Instant::now();
        let interval = Duration::from_secs(1);
        let missing = dir.0.join("nope/widgets.prom");
        let err = Textfile::open(utf8(&missing), interval, now).expect_err("missing directory");
        assert!(err.contains("No such file or directory"), "{err}");
        let err = Textfile::open(utf8(&dir.0), interval, now).expect_err("a directory");
        assert!(err.contains("is a directory"), "{err}");
        fs::write(dir.0.join("plain"), "").expect("file");
        let err = Textfile::open(utf8(&dir.0.join("plain/widgets.prom")), interval, now)
            .expect_err("a file as directory");
        assert!(err.contains("is not a directory"), "{err}");

        for name in [
            ".widgets.prom.123.tmp",
            ".widgets.prom.1.tmp",
            ".widgets.prom.tmp",
            ".widgets.prom.12a.tmp",
            ".other.prom.5.tmp",
            "widgets.prom",
            "widgets.prom.5.tmp",
        ] {
            fs::write(dir.0.join(name), "").expect("seed");
        }
        open(&dir.0.join("widgets.prom"));
        assert_eq!(
            entries(&dir.0),
            [
                ".other.prom.5.tmp",
                ".widgets.prom.12a.tmp",
                ".widgets.prom.tmp",
                "plain",
                "widgets.prom",
                "widgets.prom.5.tmp",
            ]
        );
    }

    #[test]
    fn schedule_keeps_the_cadence_and_skips_missed_intervals() {
        let dir = Dir::new("schedule");
        let start = Instant::now();
        let s = Duration::from_secs;
        let mut t = Textfile::open(utf8(&dir.0.join("w.prom")), s(15), start).expect("open");
        assert_eq!(t.next_due(), start);
        for (at, want) in [(0, 15), (16, 30), (30, 45), (100, 115)] {
            t.write(start + s(at), |b| b.push('\n'));
            assert_eq!(t.next_due(), start + s(want), "write at {at}s");
        }
    }
}
