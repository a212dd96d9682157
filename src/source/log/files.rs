//! Following a glob of log files (`/var/log/widgets/worker-*.log`): the directory listed at
//! every step, each matching regular file followed by its device and inode whatever names it
//! takes, with the single file's rules ([`crate::source::log::tail`]): a file there at the
//! start is read from its end, one that appears later from its start; a file that leaves the
//! glob (renamed away or deleted) is drained until quiet; a truncation is seen by the file's
//! fingerprint. Owns the glob's grammar, the listing, the cap on files followed and their
//! carried positions. Never blocks (regular files only, opened `O_NONBLOCK` in case a FIFO
//! takes a name between the listing and the open) and does bounded work per step; the clock
//! is an argument. Knows nothing of templates or metrics, and logs each trouble once per
//! streak.
//!
//! Memory: one shared read buffer, and per file its unfinished line (at most
//! [`crate::source::log::tail::MAX_LINE`] bytes, grown only as far as lines need) and a 64
//! byte fingerprint. At most `max_files` files are followed and as many drained at once.

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::fs::OpenOptions;
use std::io::ErrorKind;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::log;
use crate::source::log::tail::{
    Event, Position, Reader, Tail, CHUNK, DRAIN_QUIET, O_NONBLOCK, STEP_BUDGET,
};

/// Default of `--widget.log.max-files`.
pub(crate) const DEFAULT_MAX_FILES: usize = 64;

/// Largest `--widget.log.max-files` accepted: each followed and each drained file holds a
/// file descriptor.
pub(crate) const MAX_FILES_LIMIT: usize = 1024;

/// Directory entries looked at per listing, so a directory flooded with files cannot hold up
/// a step for long; entries past it are not seen (and warned about).
pub(crate) const MAX_SCAN: usize = 100_000;

/// A path whose last component holds `*` (any run of characters) or `?` (one character).
/// As in the shell, neither matches a leading `.`; there are no escapes or classes (`[` is
/// literal), and the match is on the name's bytes (`?` takes one UTF-8 character).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Glob {
    dir: PathBuf,
    pattern: Vec<u8>,
}

impl Glob {
    /// The glob in `path`, or `None` for a plain path (followed by
    /// [`crate::source::log::tail::Tail`], as always). The error is what `--widget.log.path`'s
    /// value gets wrong.
    pub(crate) fn parse(path: &Path) -> Result<Option<Glob>, &'static str> {
        let wild = |b: &[u8]| b.iter().any(|&c| c == b'*' || c == b'?');
        if !wild(path.as_os_str().as_bytes()) {
            return Ok(None);
        }
        let (Some(name), Some(parent)) = (path.file_name(), path.parent()) else {
            return Err("* and ? may appear only in the last component, a file name");
        };
        if wild(parent.as_os_str().as_bytes()) {
            return Err("* and ? may appear only in the last component, not in a directory");
        }
        if path.as_os_str().as_bytes().ends_with(b"/") {
            return Err("with * or ? it must end in a file name, not /");
        }
        let dir = if parent.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            parent.to_owned()
        };
        Ok(Some(Glob {
            dir,
            pattern: name.as_bytes().to_vec(),
        }))
    }

    /// The directory listed.
    #[must_use]
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether a file name matches.
    #[must_use]
    pub(crate) fn matches(&self, name: &OsStr) -> bool {
        glob_match(&self.pattern, name.as_bytes())
    }

    /// The matching regular files now, sorted by name (the check mode reads them all).
    pub(crate) fn list(&self) -> std::io::Result<Vec<PathBuf>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.dir)?.take(MAX_SCAN) {
            let path = entry?.path();
            let matching = path.file_name().is_some_and(|n| self.matches(n));
            if matching && std::fs::metadata(&path).is_ok_and(|m| m.is_file()) {
                out.push(path);
            }
        }
        out.sort();
        Ok(out)
    }
}

/// Bytes of the character that starts at `at` (1 for a byte that starts none).
fn char_len(name: &[u8], at: usize) -> usize {
    let n = match name[at] {
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF7 => 4,
        _ => 1,
    };
    n.min(name.len() - at)
}

/// Shell-style `*` and `?` over a file name; linear in practice (one star backtracks).
fn glob_match(pattern: &[u8], name: &[u8]) -> bool {
    if name.first() == Some(&b'.') && pattern.first() != Some(&b'.') {
        return false;
    }
    let (mut p, mut n) = (0, 0);
    // After the last star: where the pattern resumes and how much of the name it took.
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some(b'*') => {
                p += 1;
                star = Some((p, n));
                continue;
            }
            Some(b'?') => {
                p += 1;
                n += char_len(name, n);
                continue;
            }
            Some(&c) if c == name[n] => {
                p += 1;
                n += 1;
                continue;
            }
            _ => {}
        }
        let Some((resume, took)) = star else {
            return false;
        };
        let took = took + char_len(name, took);
        star = Some((resume, took));
        p = resume;
        n = took;
    }
    pattern[p.min(pattern.len())..].iter().all(|&c| c == b'*')
}

/// What can go wrong, each warned about once per streak: indexes into [`Files::troubles`].
const DIR: usize = 0;
const EXTRA: usize = 1;
const OPEN: usize = 2;
const READ: usize = 3;

/// What the listing did with one entry.
enum Admit {
    /// Followed (or nothing to do).
    Yes,
    /// New and matching, but the cap is reached.
    Extra,
    /// It could not be opened.
    Failed,
}

/// A glob of files followed. Files past the cap are not read; once a followed file leaves
/// the glob its slot frees, and the next listing follows an extra file from its start (its
/// lines count late rather than never).
pub(crate) struct Files {
    glob: Glob,
    /// `--widget.log.max-files`.
    cap: usize,
    followed: Vec<Reader>,
    /// Files that left the glob, read until quiet for [`DRAIN_QUIET`].
    draining: Vec<Reader>,
    chunk: Box<[u8]>,
    /// Whether this is the first listing: files found by it were there at the start.
    at_start: bool,
    /// Which followed file reads first in the next step, so none starves under a backlog.
    next: usize,
    /// The files found by this listing; reused.
    present: Vec<(u64, u64)>,
    /// Whether each trouble happened at the last look, and whether it was warned about.
    troubles: [bool; 4],
    warned: [bool; 4],
}

impl Files {
    /// Starts following the files matching `glob` (from their ends), at most `max_files` of
    /// them (clamped to 1..=[`MAX_FILES_LIMIT`]). A missing or unreadable directory is not an
    /// error: it is warned about and listed again at each step.
    #[must_use]
    pub(crate) fn open(glob: Glob, max_files: usize, now: Instant) -> Files {
        let mut files = Files {
            glob,
            cap: max_files.clamp(1, MAX_FILES_LIMIT),
            followed: Vec::new(),
            draining: Vec::new(),
            chunk: vec![0; CHUNK].into_boxed_slice(),
            at_start: true,
            next: 0,
            present: Vec::new(),
            troubles: [false; 4],
            warned: [false; 4],
        };
        files.list(now, &mut |_| {});
        files.at_start = false;
        files
    }

    /// How many files are followed now (drained ones not included).
    #[must_use]
    pub(crate) fn files(&self) -> usize {
        self.followed.len()
    }

    /// Whether the directory could be listed at the last step.
    #[must_use]
    pub(crate) fn readable(&self) -> bool {
        !self.troubles[DIR]
    }

    /// The positions to carry across a restart in place: one per followed file.
    #[must_use]
    pub(crate) fn positions(&self) -> Vec<Position> {
        self.followed.iter().map(Reader::position).collect()
    }

    /// Resumes each followed file found among `carried` (same device and inode, not shorter
    /// than the offset) at its carried offset; the others stay where [`Files::open`] put
    /// them (at their ends). Returns how many resumed.
    pub(crate) fn resume(&mut self, carried: &[Position]) -> usize {
        let mut resumed = 0;
        for r in &mut self.followed {
            let at = carried.iter().find(|p| (p.dev, p.ino) == (r.dev, r.ino));
            if at.is_some_and(|p| r.resume(p.offset)) {
                resumed += 1;
            }
        }
        resumed
    }

    /// The earliest instant at which a drained file may be closed, if one is open.
    #[must_use]
    pub(crate) fn drain_deadline(&self) -> Option<Instant> {
        self.draining
            .iter()
            .map(|r| r.last_data + DRAIN_QUIET)
            .min()
    }

    /// Lists the directory, then reads what the files gained (at most [`STEP_BUDGET`] bytes
    /// in all): drained files first, then the followed ones, each checked for truncation
    /// before it is read. Returns whether bytes are left over that the budget did not cover.
    pub(crate) fn step(&mut self, now: Instant, mut on: impl FnMut(Event<'_>)) -> bool {
        let mut budget = STEP_BUDGET;
        self.list(now, &mut on);
        let mut i = 0;
        while i < self.draining.len() {
            if !self.draining[i].drain(&mut self.chunk, &mut budget, now, &mut on) {
                i += 1;
                continue;
            }
            self.draining.swap_remove(i);
        }
        let n = self.followed.len();
        let mut failed = false;
        for k in 0..n {
            if budget == 0 {
                break;
            }
            let r = &mut self.followed[(self.next + k) % n];
            let read = r.check_truncated().and_then(|truncated| {
                if truncated {
                    log::info("log file truncated; reading it from its start", &[]);
                    on(Event::Truncated);
                }
                r.read(&mut self.chunk, &mut budget, now, &mut on)
            });
            // Kept open and tried again at the next step: dropped, it would be listed as new
            // and read again from its start.
            if let Err(e) = read {
                failed = true;
                if !std::mem::replace(&mut self.warned[READ], true) {
                    log::warn(
                        "cannot read a log file; trying again at every poll",
                        &[("error", &e)],
                    );
                }
            }
        }
        self.streak(failed, READ, "log files readable again");
        self.next = (self.next + 1) % n.max(1);
        budget == 0
    }

    /// Notes whether a trouble happened in this step; a step without it ends its streak.
    fn streak(&mut self, now: bool, which: usize, over: &str) {
        self.troubles[which] = now;
        if now {
            self.warned[which] = true;
        } else if std::mem::take(&mut self.warned[which]) {
            log::info(over, &[("dir", &self.glob.dir.display())]);
        }
    }

    /// Lists the directory: new matching files are followed, files that left are drained.
    fn list(&mut self, now: Instant, on: &mut impl FnMut(Event<'_>)) {
        let entries = match std::fs::read_dir(&self.glob.dir) {
            Ok(entries) => entries,
            Err(e) => {
                if !self.warned[DIR] {
                    let msg = if e.kind() == ErrorKind::NotFound {
                        "log directory missing; listing it again at every poll"
                    } else {
                        "cannot list the log directory; listing it again at every poll"
                    };
                    log::warn(msg, &[("dir", &self.glob.dir.display()), ("error", &e)]);
                }
                self.streak(true, DIR, "");
                // Nothing can be told apart now; the files stay followed until it can.
                return;
            }
        };
        self.streak(false, DIR, "log directory readable again");
        self.present.clear();
        let (mut extra, mut open_failed, mut scanned) = (false, false, 0);
        for entry in entries {
            scanned += 1;
            if scanned > MAX_SCAN {
                if !std::mem::replace(&mut self.warned[EXTRA], true) {
                    log::warn(
                        "too many entries in the log directory; the rest are not looked at",
                        &[("dir", &self.glob.dir.display())],
                    );
                }
                extra = true;
                break;
            }
            let Ok(entry) = entry else { continue };
            match self.admit(&entry, now) {
                Admit::Extra => extra = true,
                Admit::Failed => open_failed = true,
                Admit::Yes => {}
            }
        }
        if extra && !self.warned[EXTRA] {
            log::warn(
                "more log files match than --widget.log.max-files; the extra files are not read",
                &[("dir", &self.glob.dir.display()), ("max_files", &self.cap)],
            );
        }
        self.streak(extra, EXTRA, "all matching log files are followed again");
        self.streak(open_failed, OPEN, "log files open again");
        self.retire_missing(now, on);
    }

    /// Follows a listed entry if it matches and is new, or notes that it is followed.
    fn admit(&mut self, entry: &std::fs::DirEntry, now: Instant) -> Admit {
        if !self.glob.matches(&entry.file_name()) {
            return Admit::Yes;
        }
        let path = entry.path();
        // Followed through symlinks, as the single path is.
        let Ok(meta) = std::fs::metadata(&path) else {
            return Admit::Yes;
        };
        let id = (meta.dev(), meta.ino());
        if !meta.is_file() || self.present.contains(&id) {
            return Admit::Yes;
        }
        if self.followed.iter().any(|r| (r.dev, r.ino) == id) {
            self.present.push(id);
            return Admit::Yes;
        }
        if let Some(i) = self.draining.iter().position(|r| (r.dev, r.ino) == id) {
            // Renamed back into the glob: followed on where it was.
            self.followed.push(self.draining.swap_remove(i));
            self.present.push(id);
            return Admit::Yes;
        }
        if self.followed.len() >= self.cap {
            return Admit::Extra;
        }
        match self.open_file(&path, id, now) {
            Ok(reader) => {
                if !self.at_start {
                    log::info(
                        "following a new log file from its start",
                        &[("path", &path.display())],
                    );
                }
                self.followed.push(reader);
                self.present.push(id);
                Admit::Yes
            }
            Err(e) => {
                if !std::mem::replace(&mut self.warned[OPEN], true) {
                    log::warn(
                        "cannot open a log file; trying again at every poll",
                        &[("path", &path.display()), ("error", &e)],
                    );
                }
                Admit::Failed
            }
        }
    }

    /// Followed files the listing did not find left the glob: they are drained.
    fn retire_missing(&mut self, now: Instant, on: &mut impl FnMut(Event<'_>)) {
        let mut i = 0;
        while i < self.followed.len() {
            let r = &self.followed[i];
            if self.present.contains(&(r.dev, r.ino)) {
                i += 1;
                continue;
            }
            let mut gone = self.followed.swap_remove(i);
            gone.last_data = now;
            if self.draining.len() >= self.cap {
                // The longest drained goes first: its writer most likely reopened long ago.
                self.draining.remove(0);
            }
            self.draining.push(gone);
            log::info("a log file left the glob; draining it", &[]);
            on(Event::Renamed);
        }
    }

    /// Opens a listed file: from its end at the first listing, else from its start.
    fn open_file(&self, path: &Path, id: (u64, u64), now: Instant) -> std::io::Result<Reader> {
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(O_NONBLOCK)
            .open(path)?;
        let meta = file.metadata()?;
        if !meta.is_file() || (meta.dev(), meta.ino()) != id {
            return Err(std::io::Error::other("replaced while being opened"));
        }
        let mut reader = Reader::new(file, &meta, now);
        reader.fingerprint();
        if self.at_start {
            reader.skip_to_end(meta.len())?;
        }
        Ok(reader)
    }

    #[cfg(test)]
    /// Bytes held for reading: the shared buffer and each file's unfinished line.
    #[must_use]
    pub(crate) fn buffer_bytes(&self) -> usize {
        self.chunk.len()
            + self
                .followed
                .iter()
                .chain(&self.draining)
                .map(Reader::held_capacity)
                .sum::<usize>()
    }
}

/// What the log source follows: one path (a file, a FIFO or standard input), as always, or
/// a glob of files. One type for the source to hold whichever `--widget.log.path` names.
pub(crate) enum Follower {
    /// A plain path.
    One(Tail),
    /// A glob.
    Many(Files),
}

impl Follower {
    /// Follows `path`: a glob when its last component holds `*` or `?`. The error is one
    /// line naming the flag (a misplaced wildcard, or a directory).
    pub(crate) fn open(
        path: &Path,
        max_files: usize,
        now: Instant,
    ) -> Result<Follower, &'static str> {
        match Glob::parse(path)? {
            Some(glob) => Ok(Follower::Many(Files::open(glob, max_files, now))),
            None => Tail::open(path, now)
                .map(Follower::One)
                .ok_or("--widget.log.path names a directory, not a log file"),
        }
    }

    /// Reads what the log gained; returns whether bytes are left over for another step.
    pub(crate) fn step(&mut self, now: Instant, on: impl FnMut(Event<'_>)) -> bool {
        match self {
            Follower::One(t) => t.step(now, on),
            Follower::Many(f) => f.step(now, on),
        }
    }

    /// Whether the log (the file, or the glob's directory) was readable at the last step.
    #[must_use]
    pub(crate) fn readable(&self) -> bool {
        match self {
            Follower::One(t) => t.readable(),
            Follower::Many(f) => f.readable(),
        }
    }

    /// How many files are followed now: for a plain path, 1 while it is readable.
    #[must_use]
    pub(crate) fn files(&self) -> usize {
        match self {
            Follower::One(t) => usize::from(t.readable()),
            Follower::Many(f) => f.files(),
        }
    }

    /// The earliest instant at which a drained file may be closed, if one is open.
    #[must_use]
    pub(crate) fn drain_deadline(&self) -> Option<Instant> {
        match self {
            Follower::One(t) => t.drain_deadline(),
            Follower::Many(f) => f.drain_deadline(),
        }
    }

    /// The positions to carry across a restart in place.
    #[must_use]
    pub(crate) fn positions(&self) -> Vec<Position> {
        match self {
            Follower::One(t) => t.position().into_iter().collect(),
            Follower::Many(f) => f.positions(),
        }
    }

    /// Resumes at carried positions; returns how many files resumed.
    pub(crate) fn resume(&mut self, carried: &[Position]) -> usize {
        match self {
            Follower::One(t) => carried.iter().filter(|&&p| t.resume(p)).take(1).count(),
            Follower::Many(f) => f.resume(carried),
        }
    }
}

/// Positions in their carried form: `dev,ino,offset` each, joined by `;` (one position is
/// written as the single log's carried position always was).
#[must_use]
pub(crate) fn encode_positions(positions: &[Position]) -> String {
    let mut out = String::new();
    for (i, p) in positions.iter().enumerate() {
        let sep = if i == 0 { "" } else { ";" };
        let _ = write!(out, "{sep}{},{},{}", p.dev, p.ino, p.offset);
    }
    out
}

/// Positions from their carried form; lines that do not parse are skipped, and at most
/// [`MAX_FILES_LIMIT`] are kept. Never panics.
#[must_use]
pub(crate) fn decode_positions(text: &str) -> Vec<Position> {
    text.split(';')
        .filter_map(|one| {
            let mut it = one.split(',').map(str::parse::<u64>);
            match (it.next(), it.next(), it.next(), it.next()) {
                (Some(Ok(dev)), Some(Ok(ino)), Some(Ok(offset)), None) => {
                    Some(Position { dev, ino, offset })
                }
                _ => None,
            }
        })
        .take(MAX_FILES_LIMIT)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{append, require_tool, TempDir};
    use std::io::Write;
    use std::time::Duration;

    /// The glob `pattern` inside `dir`.
    fn glob(dir: &TempDir, pattern: &str) -> Glob {
        Glob::parse(&dir.join(pattern))
            .expect("valid glob")
            .expect("a glob")
    }

    /// What one step handed out, sorted (the order across files is not promised).
    fn step(files: &mut Files, now: Instant) -> Vec<String> {
        let mut got = Vec::new();
        files.step(now, |e| {
            got.push(match e {
                Event::Line(l) => String::from_utf8_lossy(l).into_owned(),
                Event::TooLong => "<too long>".to_owned(),
                Event::Renamed => "<renamed>".to_owned(),
                Event::Truncated => "<truncated>".to_owned(),
            });
        });
        got.sort();
        got
    }

    #[test]
    fn glob_grammar_table() {
        let cases: &[(&str, &str, bool)] = &[
            ("*.log", "app.log", true),
            ("*.log", "app.log.1", false),
            ("*.log", "app.log-20261202", false),
            ("*.log", "app.log.gz", false),
            ("*.log", ".hidden.log", false),
            (".*.log", ".hidden.log", true),
            ("worker-*.log", "worker-1.log", true),
            ("worker-*.log", "worker-.log", true),
            ("worker-?.log", "worker-12.log", false),
            ("worker-?.log", "worker-é.log", true),
            ("worker-??.log", "worker-é.log", false),
            ("*", "x", true),
            ("*a*b", "xaxbxb", true),
            ("*a*b", "xaxbxc", false),
            ("a*", "a", true),
            ("a**", "abc", true),
            ("[a].log", "[a].log", true),
            ("[a].log", "a.log", false),
            ("?", "\u{fc}", true),
            ("*x", "\u{fc}x", true),
        ];
        for &(pattern, name, want) in cases {
            assert_eq!(
                glob_match(pattern.as_bytes(), name.as_bytes()),
                want,
                "{pattern:?} vs {name:?}"
            );
        }
        assert_eq!(Glob::parse(Path::new("/var/log/app.log")), Ok(None));
        let g = Glob::parse(Path::new("/var/log/w-*.log"))
            .expect("valid")
            .expect("glob");
        assert_eq!(g.dir(), Path::new("/var/log"));
        let g = Glob::parse(Path::new("w-?.log"))
            .expect("valid")
            .expect("glob");
        assert_eq!(g.dir(), Path::new("."));
        for bad in ["/var/*/app.log", "/var/lo?/x*", "/var/log/*/"] {
            let err = Glob::parse(Path::new(bad)).expect_err(bad);
            assert!(err.contains(" ? "), "{bad}: {err}");
        }
    }

    #[test]
    fn files_there_at_start_from_their_end_new_ones_from_their_start() {
        let dir = TempDir::new("files");
        let (a, b, c) = (dir.join("a.log"), dir.join("b.log"), dir.join("c.log"));
        append(&a, b"old a\n");
        append(&b, b"old b\nhalf");
        append(&dir.join("a.log.1"), b"rotated, not matching\n");
        let t0 = Instant::now();
        let mut files = Files::open(glob(&dir, "*.log"), DEFAULT_MAX_FILES, t0);
        assert_eq!((files.files(), files.readable()), (2, true));
        assert!(step(&mut files, t0).is_empty());
        append(&a, b"new a\n");
        append(&b, b" written\nnew b\n");
        append(&c, b"first c\nsecond c\n");
        assert_eq!(
            step(&mut files, t0),
            ["first c", "new a", "new b", "second c"]
        );
        assert_eq!(files.files(), 3);
        assert!(step(&mut files, t0).is_empty());
    }

    #[test]
    fn a_rename_inside_the_glob_is_not_read_again() {
        let dir = TempDir::new("files");
        let one = dir.join("worker-1.log");
        append(&one, b"");
        let t0 = Instant::now();
        let mut files = Files::open(glob(&dir, "worker-*.log"), DEFAULT_MAX_FILES, t0);
        let mut writer = OpenOptions::new().append(true).open(&one).expect("writer");
        writer.write_all(b"l1\nl2\n").expect("write");
        assert_eq!(step(&mut files, t0), ["l1", "l2"]);
        std::fs::rename(&one, dir.join("worker-2.log")).expect("rename");
        writer.write_all(b"l3\n").expect("write");
        assert_eq!(step(&mut files, t0), ["l3"], "no rotation, nothing twice");
        assert_eq!(files.files(), 1);
        // Renamed out and back in before a step sees it gone: still the same file.
        std::fs::rename(dir.join("worker-2.log"), dir.join("tmp")).expect("rename");
        assert_eq!(step(&mut files, t0), ["<renamed>"]);
        std::fs::rename(dir.join("tmp"), &one).expect("rename");
        writer.write_all(b"l4\n").expect("write");
        assert_eq!(step(&mut files, t0), ["l4"]);
        assert_eq!((files.files(), files.drain_deadline()), (1, None));
    }

    #[test]
    fn a_file_renamed_away_is_drained_and_its_successor_read_from_its_start() {
        let dir = TempDir::new("files");
        let log = dir.join("app.log");
        append(&log, b"");
        let t0 = Instant::now();
        let mut files = Files::open(glob(&dir, "*.log"), DEFAULT_MAX_FILES, t0);
        let mut writer = OpenOptions::new().append(true).open(&log).expect("writer");
        writer.write_all(b"a1\n").expect("write");
        assert_eq!(step(&mut files, t0), ["a1"]);
        writer.write_all(b"a2\n").expect("write");
        std::fs::rename(&log, dir.join("app.log.1")).expect("rename");
        append(&log, b"b1\n");
        writer.write_all(b"a3\n").expect("write");
        assert_eq!(step(&mut files, t0), ["<renamed>", "a2", "a3", "b1"]);
        let t1 = t0 + DRAIN_QUIET / 2;
        writer.write_all(b"a4\n").expect("write");
        assert_eq!(step(&mut files, t1), ["a4"]);
        assert_eq!(files.drain_deadline(), Some(t1 + DRAIN_QUIET));
        assert!(step(&mut files, t1 + DRAIN_QUIET).is_empty());
        assert_eq!(files.drain_deadline(), None, "quiet drained file closed");
        writer.write_all(b"lost after close\n").expect("write");
        append(&log, b"b2\n");
        assert_eq!(step(&mut files, t1 + DRAIN_QUIET), ["b2"]);
        // Deleted: drained too, and the directory stays readable.
        std::fs::remove_file(&log).expect("remove");
        assert_eq!(step(&mut files, t1 + DRAIN_QUIET), ["<renamed>"]);
        assert_eq!((files.files(), files.readable()), (0, true));
    }

    #[test]
    fn at_most_max_files_are_followed_and_an_extra_waits_for_a_free_slot() {
        let dir = TempDir::new("files");
        let t0 = Instant::now();
        let mut files = Files::open(glob(&dir, "*.log"), 2, t0);
        for name in ["a.log", "b.log", "c.log"] {
            append(&dir.join(name), format!("{name}\n").as_bytes());
        }
        let got = step(&mut files, t0);
        assert_eq!((got.len(), files.files()), (2, 2), "{got:?}");
        let read: Vec<&str> = got.iter().map(String::as_str).collect();
        let extra = ["a.log", "b.log", "c.log"]
            .into_iter()
            .find(|n| !read.contains(n))
            .expect("one not read");
        let gone = read[0];
        std::fs::remove_file(dir.join(gone)).expect("remove");
        append(&dir.join(extra), b"more\n");
        // The slot frees when the file leaves; the extra is read from its start then.
        assert_eq!(step(&mut files, t0), ["<renamed>"]);
        let mut want = vec![extra.to_owned(), "more".to_owned()];
        want.sort();
        assert_eq!(step(&mut files, t0), want);
        assert_eq!(files.files(), 2);
    }

    #[test]
    fn each_file_has_its_truncation_seen() {
        let dir = TempDir::new("files");
        let (a, b) = (dir.join("a.log"), dir.join("b.log"));
        append(&a, b"");
        append(&b, b"");
        let t0 = Instant::now();
        let mut files = Files::open(glob(&dir, "*.log"), DEFAULT_MAX_FILES, t0);
        append(&a, b"one\ntwo\n");
        append(&b, b"bee\n");
        assert_eq!(step(&mut files, t0), ["bee", "one", "two"]);
        OpenOptions::new()
            .write(true)
            .open(&a)
            .and_then(|f| f.set_len(0))
            .expect("truncate");
        append(&a, b"three\nfour\nfive\n");
        assert_eq!(
            step(&mut files, t0),
            ["<truncated>", "five", "four", "three"]
        );
    }

    #[test]
    fn positions_carry_and_resume() {
        let dir = TempDir::new("files");
        let (a, b) = (dir.join("a.log"), dir.join("b.log"));
        append(&a, b"");
        append(&b, b"");
        let t0 = Instant::now();
        let mut files = Files::open(glob(&dir, "*.log"), DEFAULT_MAX_FILES, t0);
        append(&a, b"a1\na");
        append(&b, b"b1\n");
        assert_eq!(step(&mut files, t0), ["a1", "b1"]);
        let text = encode_positions(&files.positions());
        assert_eq!(text.matches(';').count(), 1, "{text}");
        let carried = decode_positions(&format!("garbage;1,2;{text};1,2,3,4;"));
        assert_eq!(carried.len(), 2);
        append(&a, b"2\n");
        append(&b, b"b2\n");
        let mut again = Files::open(glob(&dir, "*.log"), DEFAULT_MAX_FILES, t0);
        assert_eq!(again.resume(&carried), 2);
        assert_eq!(step(&mut again, t0), ["a2", "b2"]);
        assert!(decode_positions("\u{0};99999999999999999999,1,1").is_empty());
        let one = Position {
            dev: 8,
            ino: 9,
            offset: 10,
        };
        assert_eq!(encode_positions(&[one]), "8,9,10");
        assert_eq!(decode_positions("8,9,10"), [one]);
    }

    #[test]
    fn a_missing_directory_waits_and_its_files_count_from_their_start() {
        let dir = TempDir::new("files");
        let sub = dir.join("later");
        let glob = Glob::parse(&sub.join("*.log"))
            .expect("valid")
            .expect("glob");
        let t0 = Instant::now();
        let mut files = Files::open(glob, DEFAULT_MAX_FILES, t0);
        assert!(!files.readable());
        assert!(step(&mut files, t0).is_empty());
        std::fs::create_dir(&sub).expect("mkdir");
        append(&sub.join("x.log"), b"x1\n");
        assert_eq!(step(&mut files, t0), ["x1"]);
        assert!(files.readable());
    }

    #[test]
    fn memory_is_one_buffer_and_each_files_unfinished_line() {
        let dir = TempDir::new("files");
        let t0 = Instant::now();
        let mut files = Files::open(glob(&dir, "*.log"), DEFAULT_MAX_FILES, t0);
        for i in 0..DEFAULT_MAX_FILES + 10 {
            append(&dir.join(format!("{i}.log")), b"");
        }
        let _ = step(&mut files, t0);
        assert_eq!(files.files(), DEFAULT_MAX_FILES);
        for round in 0..3 {
            for i in 0..DEFAULT_MAX_FILES + 10 {
                append(
                    &dir.join(format!("{i}.log")),
                    format!("line {round} of file {i}\nunfinished").as_bytes(),
                );
            }
            let got = step(&mut files, t0);
            // Each file: one line per round, its unfinished end completed from round 1 on.
            assert_eq!(got.len(), DEFAULT_MAX_FILES);
        }
        let held = files.buffer_bytes() - CHUNK;
        assert!(
            held <= DEFAULT_MAX_FILES * 64,
            "{held} bytes held beyond the buffer"
        );
    }

    #[test]
    fn the_follower_takes_a_plain_path_or_a_glob() {
        let dir = TempDir::new("files");
        let log = dir.join("app.log");
        append(&log, b"");
        let t0 = Instant::now();
        let mut one = Follower::open(&log, 2, t0).expect("a file");
        assert!(matches!(one, Follower::One(_)));
        let mut many = Follower::open(&dir.join("*.log"), 2, t0).expect("a glob");
        assert!(matches!(many, Follower::Many(_)));
        append(&log, b"x\n");
        for f in [&mut one, &mut many] {
            let mut n = 0;
            assert!(!f.step(t0, |e| n += usize::from(e == Event::Line(b"x"))));
            assert_eq!((n, f.files(), f.readable()), (1, 1, true));
            assert_eq!(f.positions().len(), 1);
            assert_eq!(f.positions()[0].offset, 2);
        }
        let carried = one.positions();
        let mut again = Follower::open(&log, 2, t0).expect("a file");
        assert_eq!(again.resume(&carried), 1);
        assert!(Follower::open(dir.path(), 2, t0).is_err(), "a directory");
        assert!(
            Follower::open(&dir.join("*/x.log"), 2, t0).is_err(),
            "a glob in a directory"
        );
    }

    #[test]
    fn three_files_rotated_by_logrotate_are_counted_exactly() {
        let Some(logrotate) = require_tool("logrotate") else {
            return;
        };
        let dir = TempDir::new("files");
        let paths: Vec<PathBuf> = (1..=3)
            .map(|i| dir.join(format!("worker-{i}.log")))
            .collect();
        for p in &paths {
            append(p, b"before the start: not counted\n");
        }
        let reopen = dir.join("reopen");
        let conf = dir.join("logrotate.conf");
        std::fs::write(
            &conf,
            format!(
                "{}/worker-*.log {{\n  rotate 10\n  create\n  postrotate\n    touch {}\n  endscript\n}}\n",
                dir.path().display(),
                reopen.display()
            ),
        )
        .expect("write the logrotate config");
        let mut now = Instant::now();
        let mut files = Files::open(glob(&dir, "worker-*.log"), DEFAULT_MAX_FILES, now);
        let open = |p: &PathBuf| OpenOptions::new().append(true).open(p).expect("writer");
        let mut writers: Vec<std::fs::File> = paths.iter().map(open).collect();
        let (mut written, mut seen, mut renamed) = (0, std::collections::HashSet::new(), 0);
        let mut take = |files: &mut Files, now: Instant| {
            for line in step(files, now) {
                if line == "<renamed>" {
                    renamed += 1;
                } else {
                    assert!(seen.insert(line.clone()), "{line:?} counted twice");
                }
            }
        };
        let mut write = |writers: &mut Vec<std::fs::File>, tag: &str| {
            for (w, f) in writers.iter_mut().enumerate() {
                for k in 0..40 {
                    writeln!(f, "{tag} worker {w} line {k}").expect("write");
                    written += 1;
                }
            }
        };
        for round in 0..4 {
            write(&mut writers, &format!("r{round} before"));
            if round % 2 == 0 {
                take(&mut files, now);
            }
            let status = std::process::Command::new(&logrotate)
                .arg("-f")
                .arg("-s")
                .arg(dir.join("state"))
                .arg(&conf)
                .status()
                .expect("run logrotate");
            assert!(status.success(), "logrotate: {status}");
            // Until the postrotate signal reaches them, the writers write to the rotated files.
            write(&mut writers, &format!("r{round} late"));
            std::fs::remove_file(&reopen).expect("postrotate ran");
            writers = paths.iter().map(open).collect();
            write(&mut writers, &format!("r{round} after"));
            take(&mut files, now);
            now += DRAIN_QUIET / 3;
        }
        for _ in 0..3 {
            now += DRAIN_QUIET;
            take(&mut files, now);
        }
        assert_eq!(seen.len(), written, "every line once");
        assert_eq!(renamed, 12, "three files rotated four times");
        assert_eq!((files.files(), files.drain_deadline()), (3, None));
        assert!(
            dir.join("worker-1.log.4").exists(),
            "logrotate kept its rotated copies"
        );
    }

    #[test]
    fn random_rotations_count_every_line_once() {
        let seed = crate::testing::fuzz_seed("files");
        let mut g = fastrand::Rng::with_seed(seed);
        let dir = TempDir::new("files");
        let mut now = Instant::now();
        let mut files = Files::open(glob(&dir, "w-*.log"), DEFAULT_MAX_FILES, now);
        // Each writer: the name its file has now, the handle it writes through, and whether a
        // step listed that file (a file that appears and leaves the glob between two listings
        // is never seen: polling cannot, so the model does not do that).
        let mut writers: Vec<(PathBuf, std::fs::File, bool)> = Vec::new();
        let (mut written, mut counted, mut names) = (0, std::collections::HashSet::new(), 0);
        let mut fresh = |ext: &str| {
            names += 1;
            dir.join(format!("w-{names}.{ext}"))
        };
        let take =
            |files: &mut Files, now: Instant, counted: &mut std::collections::HashSet<String>| {
                for line in step(files, now) {
                    if !line.starts_with('<') {
                        assert!(
                            counted.insert(line.clone()),
                            "seed {seed}: {line:?} counted twice"
                        );
                    }
                }
            };
        let open = |p: &Path| {
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .expect("writer")
        };
        for op in 0..300 {
            let mut write = |f: &mut std::fs::File, n: usize| {
                for k in 0..n {
                    writeln!(f, "op {op} line {written} {}", "x".repeat(k % 7)).expect("write");
                    written += 1;
                }
            };
            match g.usize(..7) {
                0 if writers.len() < 4 => {
                    let p = fresh("log");
                    let mut f = open(&p);
                    write(&mut f, g.usize(..5));
                    writers.push((p, f, false));
                }
                1 if !writers.is_empty() => {
                    // Renamed to another name inside the glob: the same file, followed on.
                    let w = g.usize(..writers.len());
                    let to = fresh("log");
                    std::fs::rename(&writers[w].0, &to).expect("rename");
                    writers[w].0 = to;
                    write(&mut writers[w].1, g.usize(..5));
                }
                2 if writers.iter().any(|w| w.2) => {
                    // Rotated: renamed out of the glob, a new file in its place; the writer
                    // writes a little to the old file before it reopens.
                    let listed: Vec<usize> = (0..writers.len()).filter(|&w| writers[w].2).collect();
                    let w = listed[g.usize(..listed.len())];
                    let path = writers[w].0.clone();
                    std::fs::rename(&path, fresh("log.1")).expect("rename");
                    let mut new = open(&path);
                    write(&mut new, g.usize(..3));
                    write(&mut writers[w].1, g.usize(..3));
                    writers[w].1 = new;
                    writers[w].2 = false;
                }
                3 if !writers.is_empty() => {
                    // Truncated after everything was read, and refilled past the old size.
                    take(&mut files, now, &mut counted);
                    for w in &mut writers {
                        w.2 = true;
                    }
                    let w = g.usize(..writers.len());
                    writers[w].1.set_len(0).expect("truncate");
                    write(&mut writers[w].1, g.usize(..12));
                }
                4 => {
                    now += Duration::from_millis(g.u64(..2_000));
                    take(&mut files, now, &mut counted);
                    for w in &mut writers {
                        w.2 = true;
                    }
                }
                _ if !writers.is_empty() => {
                    let w = g.usize(..writers.len());
                    write(&mut writers[w].1, g.usize(1..6));
                }
                _ => {}
            }
        }
        for _ in 0..3 {
            now += DRAIN_QUIET;
            take(&mut files, now, &mut counted);
        }
        assert_eq!(counted.len(), written, "seed {seed}: every line once");
        assert_eq!(files.files(), writers.len(), "seed {seed}");
        assert_eq!(files.drain_deadline(), None, "seed {seed}");
    }

    #[test]
    fn a_fifo_in_the_glob_is_not_opened() {
        let dir = TempDir::new("files");
        let fifo = dir.join("pipe.log");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if !made.is_ok_and(|s| s.success()) {
            eprintln!("skipped: mkfifo not found");
            return;
        }
        let t0 = Instant::now();
        // Opening it for reading would block until a writer came: it must not be tried.
        let mut files = Files::open(glob(&dir, "*.log"), DEFAULT_MAX_FILES, t0);
        assert!(step(&mut files, t0).is_empty());
        assert_eq!(files.files(), 0);
    }
}
