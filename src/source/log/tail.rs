//! Following a log: a path tailed across rename and truncate rotation, or a stream
//! (`-`, a FIFO) read as it comes. Owns opening, rotation detection, draining a renamed file,
//! splitting bytes into lines and the line-length limit. Never blocks (reads are on regular
//! files or `O_NONBLOCK` streams) and does a bounded amount of work per [`Tail::step`]; the
//! clock is an argument. It knows nothing of templates or metrics: it hands out lines and
//! rotation events, and logs each trouble once per streak.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::log;

/// Longest line kept, without its `\n`; longer ones are skipped to their end and reported.
pub(crate) const MAX_LINE: usize = 64 * 1024;

/// Most bytes read per step, so a backlog never holds up a scrape for long: a scrape can wait
/// for the step in progress and then takes one of its own, about 1.5 ms each at this size
/// (measured by tests/bench/logtail.sh), and steady-state growth between scrapes is far less.
pub(crate) const STEP_BUDGET: usize = 512 << 10;

/// Bytes per `read` call.
pub(super) const CHUNK: usize = 64 * 1024;

/// How long a renamed-away file must stay quiet before it is closed: the writer keeps writing
/// to it until its postrotate signal arrives and it reopens the path.
pub(crate) const DRAIN_QUIET: Duration = Duration::from_secs(5);

/// Bytes of a file's start kept as its fingerprint, to see a truncation that the file's size
/// hides (truncated and written past the read position again between two steps).
pub(crate) const HEAD: usize = 64;

/// `O_NONBLOCK` on Linux (every architecture we build for), spelled here to stay free of libc.
pub(super) const O_NONBLOCK: i32 = 0o4000;

/// What a step found, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event<'a> {
    /// A complete line without its `\n` (and `\r`).
    Line(&'a [u8]),
    /// A line longer than [`MAX_LINE`] was skipped.
    TooLong,
    /// The path now names another file; the old one is still drained.
    Renamed,
    /// The file was truncated under us (copytruncate): read again from its start. Seen when
    /// it shrank below the read position or when its first bytes changed.
    Truncated,
}

/// Where a carried position points: the file (device, inode) and the offset of the first
/// byte not yet handed out as part of a complete line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Position {
    /// `st_dev` of the file.
    pub(crate) dev: u64,
    /// `st_ino` of the file.
    pub(crate) ino: u64,
    /// Byte offset.
    pub(crate) offset: u64,
}

/// Why the path cannot be read right now (one warning per streak).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trouble {
    Missing,
    Unreadable,
    StreamEnded,
}

/// What the line splitter does with the bytes up to the next `\n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Mode {
    #[default]
    Keep,
    /// Skipping a line over the limit; reported when its end arrives.
    SkipLong,
    /// Skipping the tail of a line that began before we started reading.
    SkipSilent,
}

/// Why a read stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stop {
    /// The step's byte budget is spent.
    Budget,
    /// A stream has nothing more for now.
    Wait,
    /// End of file (for a stream: no writer).
    End,
}

/// Splits bytes into lines: the unfinished line between calls (at most [`MAX_LINE`] bytes,
/// grown only as far as lines need), and what to do with the bytes up to the next `\n`.
#[derive(Debug, Default)]
pub(crate) struct Splitter {
    partial: Vec<u8>,
    mode: Mode,
}

impl Splitter {
    /// Splits `data` into lines, carrying an unfinished one to the next call.
    pub(crate) fn feed(&mut self, data: &[u8], on: &mut impl FnMut(Event<'_>)) {
        let mut rest = data;
        while let Some(nl) = rest.iter().position(|&b| b == b'\n') {
            let piece = &rest[..nl];
            rest = &rest[nl + 1..];
            match self.mode {
                Mode::SkipLong => on(Event::TooLong),
                Mode::SkipSilent => {}
                Mode::Keep if self.partial.len() + piece.len() > MAX_LINE => on(Event::TooLong),
                Mode::Keep if self.partial.is_empty() => on(Event::Line(strip_cr(piece))),
                Mode::Keep => {
                    self.partial.extend_from_slice(piece);
                    on(Event::Line(strip_cr(&self.partial)));
                }
            }
            self.partial.clear();
            self.mode = Mode::Keep;
        }
        if self.mode == Mode::Keep {
            if self.partial.len() + rest.len() > MAX_LINE {
                self.partial.clear();
                self.mode = Mode::SkipLong;
            } else {
                self.partial.extend_from_slice(rest);
            }
        }
    }

    /// Hands out a final line without its `\n` (a stream that ended).
    pub(crate) fn flush(&mut self, on: &mut impl FnMut(Event<'_>)) {
        match self.mode {
            Mode::Keep if !self.partial.is_empty() => on(Event::Line(strip_cr(&self.partial))),
            Mode::SkipLong => on(Event::TooLong),
            _ => {}
        }
        self.partial.clear();
        self.mode = Mode::Keep;
    }

    /// Forgets the unfinished line (the next byte starts a line).
    pub(crate) fn reset(&mut self) {
        self.partial.clear();
        self.mode = Mode::Keep;
    }

    /// Bytes held for an unfinished line that will be handed out (not skipped).
    #[must_use]
    pub(crate) fn held(&self) -> usize {
        if self.mode == Mode::Keep {
            self.partial.len()
        } else {
            0
        }
    }
}

/// An open file (or stream) and the partial line it owes.
pub(super) struct Reader {
    file: File,
    pub(super) dev: u64,
    pub(super) ino: u64,
    /// Bytes read so far from the start of the file.
    pub(super) offset: u64,
    lines: Splitter,
    pub(super) last_data: Instant,
    /// The file's first bytes as last seen, up to [`HEAD`] and up to the first NUL (see
    /// [`Reader::check_truncated`]); `head_len` of them are valid.
    head: [u8; HEAD],
    head_len: usize,
}

impl Reader {
    pub(super) fn new(file: File, meta: &std::fs::Metadata, now: Instant) -> Reader {
        Reader {
            file,
            dev: meta.dev(),
            ino: meta.ino(),
            offset: 0,
            lines: Splitter::default(),
            last_data: now,
            head: [0; HEAD],
            head_len: 0,
        }
    }

    /// Reads the file's first bytes (at most [`HEAD`]) without moving the read position.
    fn read_head(&self, buf: &mut [u8; HEAD]) -> std::io::Result<usize> {
        let mut n = 0;
        while n < HEAD {
            match self.file.read_at(&mut buf[n..], n as u64) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(n)
    }

    /// Keeps `now` (the file's first bytes) as the fingerprint, up to its first NUL.
    fn keep_head(&mut self, now: &[u8]) {
        let n = now.iter().position(|&b| b == 0).unwrap_or(now.len());
        self.head[..n].copy_from_slice(&now[..n]);
        self.head_len = n;
    }

    /// Takes the fingerprint of a file just opened.
    pub(super) fn fingerprint(&mut self) {
        let mut now = [0; HEAD];
        let n = self.read_head(&mut now).unwrap_or(0);
        self.keep_head(&now[..n]);
    }

    /// Whether the file was truncated since the last look, and if so goes back to its start.
    ///
    /// The rule: truncated when the file is shorter than the read position, or when a byte of
    /// the fingerprint differs from the byte now at its place. The fingerprint is the file's
    /// first [`HEAD`] bytes as last seen, cut at the first NUL: bytes not written yet read as
    /// NUL (a file grown by `truncate -s`, preallocated, or holed by a writer without
    /// `O_APPEND` after a copytruncate), so a NUL that later becomes text is not a change,
    /// while text that becomes NUL is. A file shorter than the fingerprint is compared over
    /// what it holds; each look keeps what it saw, so a fingerprint taken while the file was
    /// short grows with it. Not seen: a truncation whose new first bytes equal the old ones (a
    /// file rewritten with the same first line, or shorter than the fingerprint's
    /// distinguishing bytes), and a truncation that lands between this check and the read
    /// that follows it in the same step. A file rewritten in place without truncation counts
    /// as truncated, and is read again from its start.
    pub(super) fn check_truncated(&mut self) -> std::io::Result<bool> {
        let len = self.file.metadata()?.len();
        let mut now = [0; HEAD];
        let n = self.read_head(&mut now)?;
        let common = n.min(self.head_len);
        let truncated = len < self.offset || now[..common] != self.head[..common];
        if truncated {
            self.file.seek(SeekFrom::Start(0))?;
            self.offset = 0;
            self.lines.reset();
        }
        self.keep_head(&now[..n]);
        Ok(truncated)
    }

    /// One step of a file renamed away, still drained: what it gained since (all of it again
    /// if it was truncated meanwhile). Returns whether it is done with: quiet at its end for
    /// [`DRAIN_QUIET`], or unreadable (warned about).
    pub(super) fn drain(
        &mut self,
        chunk: &mut [u8],
        budget: &mut usize,
        now: Instant,
        on: &mut impl FnMut(Event<'_>),
    ) -> bool {
        let read = self.check_truncated().and_then(|truncated| {
            if truncated {
                log::info("rotated log file truncated; reading it from its start", &[]);
                on(Event::Truncated);
            }
            self.read(chunk, budget, now, on)
        });
        match read {
            Ok((_, Stop::End)) if now.duration_since(self.last_data) >= DRAIN_QUIET => {
                log::debug("closed a rotated log file after it went quiet", &[]);
                true
            }
            Ok(_) => false,
            Err(e) => {
                log::warn(
                    "cannot read a rotated log file; dropping it",
                    &[("error", &e)],
                );
                true
            }
        }
    }

    /// Reads up to `budget` bytes. Returns the bytes read and why reading stopped.
    pub(super) fn read(
        &mut self,
        chunk: &mut [u8],
        budget: &mut usize,
        now: Instant,
        on: &mut impl FnMut(Event<'_>),
    ) -> std::io::Result<(usize, Stop)> {
        let mut total = 0;
        while *budget > 0 {
            let want = chunk.len().min(*budget);
            let n = match self.file.read(&mut chunk[..want]) {
                Ok(0) => return Ok((total, Stop::End)),
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok((total, Stop::Wait)),
                Err(e) => return Err(e),
            };
            *budget -= n;
            total += n;
            self.offset += n as u64;
            self.last_data = now;
            self.lines.feed(&chunk[..n], on);
        }
        Ok((total, Stop::Budget))
    }

    fn same_file(&self, meta: &std::fs::Metadata) -> bool {
        self.dev == meta.dev() && self.ino == meta.ino()
    }

    /// Moves to the end of a file `len` bytes long: only lines written from now on count, and
    /// a line half-written at the end is skipped.
    pub(super) fn skip_to_end(&mut self, len: u64) -> std::io::Result<()> {
        if len == 0 {
            return Ok(());
        }
        let mut last = [0u8];
        let ends_clean =
            self.file.read_at(&mut last, len - 1).is_ok_and(|n| n == 1) && last[0] == b'\n';
        self.file.seek(SeekFrom::Start(len))?;
        self.offset = len;
        if !ends_clean {
            self.lines.mode = Mode::SkipSilent;
        }
        Ok(())
    }

    #[cfg(test)]
    /// Bytes the unfinished line's buffer holds on the heap.
    pub(super) fn held_capacity(&self) -> usize {
        self.lines.partial.capacity()
    }

    /// Goes to a carried offset if the file is not shorter than it.
    pub(super) fn resume(&mut self, offset: u64) -> bool {
        let fits = self.file.metadata().is_ok_and(|m| m.len() >= offset);
        if !fits || self.file.seek(SeekFrom::Start(offset)).is_err() {
            return false;
        }
        self.offset = offset;
        self.lines.reset();
        true
    }

    /// The carried position: the first byte not yet handed out as part of a complete line.
    pub(super) fn position(&self) -> Position {
        Position {
            dev: self.dev,
            ino: self.ino,
            offset: self.offset - self.lines.held() as u64,
        }
    }
}

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// A followed path, or a stream.
pub(crate) struct Tail {
    path: PathBuf,
    stream: bool,
    cur: Option<Reader>,
    /// The renamed-away file, drained until quiet.
    old: Option<Reader>,
    chunk: Box<[u8]>,
    trouble: Option<Trouble>,
}

impl Tail {
    /// Starts following `path` (`-` is standard input): an existing file from its end, a FIFO
    /// or `-` as a stream. A missing or unreadable path is not an error (it is warned about and
    /// checked again at each step); a directory is (`None`), since it can never become a log.
    #[must_use]
    pub(crate) fn open(path: &Path, now: Instant) -> Option<Tail> {
        let stdin = path == Path::new("-");
        let meta = if stdin {
            None
        } else {
            std::fs::metadata(path).ok()
        };
        if meta.as_ref().is_some_and(std::fs::Metadata::is_dir) {
            return None;
        }
        let stream = stdin || meta.as_ref().is_some_and(|m| m.file_type().is_fifo());
        let mut tail = Tail {
            path: path.to_owned(),
            stream,
            cur: None,
            old: None,
            chunk: vec![0; CHUNK].into_boxed_slice(),
            trouble: None,
        };
        tail.open_file(now, true);
        Some(tail)
    }

    /// Whether the log is open and was readable at the last step.
    #[must_use]
    pub(crate) fn readable(&self) -> bool {
        self.cur.is_some() && self.trouble.is_none()
    }

    /// The position to carry across a restart in place (regular files only).
    #[must_use]
    pub(crate) fn position(&self) -> Option<Position> {
        Some(self.cur.as_ref().filter(|_| !self.stream)?.position())
    }

    /// Resumes at a carried position if the path still names that file and it is not shorter.
    pub(crate) fn resume(&mut self, at: Position) -> bool {
        let Some(cur) = self.cur.as_mut().filter(|_| !self.stream) else {
            return false;
        };
        cur.dev == at.dev && cur.ino == at.ino && cur.resume(at.offset)
    }

    /// Reads what the log gained (at most [`STEP_BUDGET`] bytes) and checks the path for
    /// rotation. Returns whether bytes are left over that the budget did not cover.
    pub(crate) fn step(&mut self, now: Instant, mut on: impl FnMut(Event<'_>)) -> bool {
        let mut budget = STEP_BUDGET;
        if self.stream {
            self.step_stream(now, &mut budget, &mut on);
            return budget == 0;
        }
        // The old file first: its lines were written before the new file's.
        if let Some(old) = self.old.as_mut() {
            if old.drain(&mut self.chunk, &mut budget, now, &mut on) {
                self.old = None;
            }
        }
        // Before reading: bytes read past a truncation would be the middle of the new content.
        self.check_truncated(&mut on);
        self.read_cur(now, &mut budget, &mut on);
        self.check_path(now, &mut on);
        if self.cur.is_some() && budget > 0 {
            self.read_cur(now, &mut budget, &mut on);
        }
        budget == 0
    }

    /// The earliest instant at which a drained old file may be closed, if one is open.
    #[must_use]
    pub(crate) fn drain_deadline(&self) -> Option<Instant> {
        self.old.as_ref().map(|old| old.last_data + DRAIN_QUIET)
    }

    /// Sees a truncation of the open file (whatever its new size) and reads it from its start.
    fn check_truncated(&mut self, on: &mut impl FnMut(Event<'_>)) {
        let Some(cur) = self.cur.as_mut() else { return };
        match cur.check_truncated() {
            Ok(false) => {}
            Ok(true) => {
                log::info("log file truncated; reading it from its start", &[]);
                on(Event::Truncated);
            }
            Err(e) => {
                self.cur = None;
                self.trouble(Trouble::Unreadable, &e);
            }
        }
    }

    fn read_cur(&mut self, now: Instant, budget: &mut usize, on: &mut impl FnMut(Event<'_>)) {
        let Some(cur) = self.cur.as_mut() else { return };
        if let Err(e) = cur.read(&mut self.chunk, budget, now, on) {
            self.cur = None;
            self.trouble(Trouble::Unreadable, &e);
        }
    }

    /// Compares what the path names now with the open file.
    fn check_path(&mut self, now: Instant, on: &mut impl FnMut(Event<'_>)) {
        match std::fs::metadata(&self.path) {
            Ok(meta) => match self.cur.as_mut() {
                Some(cur) if cur.same_file(&meta) => {
                    if meta.len() < cur.offset {
                        self.check_truncated(on);
                    }
                }
                Some(_) => {
                    self.retire_cur(on);
                    self.open_file(now, false);
                }
                None => self.open_file(now, false),
            },
            Err(e) => {
                if self.cur.is_some() {
                    self.retire_cur(on);
                }
                let kind = if e.kind() == ErrorKind::NotFound {
                    Trouble::Missing
                } else {
                    Trouble::Unreadable
                };
                self.trouble(kind, &e);
            }
        }
    }

    /// The path was renamed away: keep draining the file we have open.
    fn retire_cur(&mut self, on: &mut impl FnMut(Event<'_>)) {
        if let Some(mut older) = self.old.take() {
            // Rotated twice within the quiet time: what the older file holds is read now
            // (one more bounded read); anything written to it after this is lost.
            let mut budget = STEP_BUDGET;
            let _ = older.read(&mut self.chunk, &mut budget, Instant::now(), on);
        }
        self.old = self.cur.take();
        log::info(
            "log file rotated; following the new file from its start",
            &[],
        );
        on(Event::Renamed);
    }

    /// Opens the path: a file (from its end when `at_start`), or a stream (`O_NONBLOCK`).
    fn open_file(&mut self, now: Instant, at_start: bool) {
        let stdin = self.path == Path::new("-");
        let path = if stdin {
            Path::new("/dev/stdin")
        } else {
            &self.path
        };
        let flags = if self.stream { O_NONBLOCK } else { 0 };
        let opened = OpenOptions::new()
            .read(true)
            .custom_flags(flags)
            .open(path)
            .and_then(|f| {
                let meta = f.metadata()?;
                if meta.is_dir() {
                    return Err(std::io::Error::other("is a directory"));
                }
                Ok((f, meta))
            });
        let (file, meta) = match opened {
            Ok(ok) => ok,
            Err(e) => {
                let kind = if e.kind() == ErrorKind::NotFound && !self.stream {
                    Trouble::Missing
                } else {
                    Trouble::Unreadable
                };
                self.trouble(kind, &e);
                return;
            }
        };
        let mut reader = Reader::new(file, &meta, now);
        if !self.stream {
            reader.fingerprint();
        }
        if at_start && !self.stream && reader.skip_to_end(meta.len()).is_err() {
            self.trouble(Trouble::Unreadable, &"cannot seek");
            return;
        }
        self.cur = Some(reader);
        self.recovered();
    }

    fn step_stream(&mut self, now: Instant, budget: &mut usize, on: &mut impl FnMut(Event<'_>)) {
        let Some(cur) = self.cur.as_mut() else {
            self.open_file(now, false);
            return;
        };
        match cur.read(&mut self.chunk, budget, now, on) {
            Ok((n, _)) if n > 0 => self.recovered(),
            Ok((_, Stop::End)) => {
                // A FIFO also reads 0 while no writer has it open; a writer may come back.
                if self.trouble != Some(Trouble::StreamEnded) {
                    cur.lines.flush(on);
                    self.trouble(Trouble::StreamEnded, &"end of stream");
                }
            }
            Ok(_) => {}
            Err(e) => {
                self.cur = None;
                self.trouble(Trouble::Unreadable, &e);
            }
        }
    }

    fn recovered(&mut self) {
        if self.trouble.take().is_some() {
            log::info("log readable again", &[("path", &self.path.display())]);
        }
    }

    fn trouble(&mut self, kind: Trouble, why: &dyn std::fmt::Display) {
        if self.trouble == Some(kind) {
            return;
        }
        self.trouble = Some(kind);
        let msg = match kind {
            Trouble::Missing => "log file missing; checking again at every poll",
            Trouble::Unreadable => "cannot read the log file; checking again at every poll",
            Trouble::StreamEnded => {
                "end of the log stream; counters stay and the exporter keeps serving"
            }
        };
        log::warn(msg, &[("path", &self.path.display()), ("error", why)]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{append, require_tool, TempDir};
    use std::io::Write;

    /// What one step handed out, as text.
    fn step(tail: &mut Tail, now: Instant) -> Vec<String> {
        let mut got = Vec::new();
        tail.step(now, |e| {
            got.push(match e {
                Event::Line(l) => String::from_utf8_lossy(l).into_owned(),
                Event::TooLong => "<too long>".to_owned(),
                Event::Renamed => "<renamed>".to_owned(),
                Event::Truncated => "<truncated>".to_owned(),
            });
        });
        got
    }

    #[test]
    fn existing_file_is_read_from_its_end_and_partial_lines_wait() {
        let dir = TempDir::new("tail");
        let path = dir.join("app.log");
        append(&path, b"old 1\nold 2\nhalf");
        let t0 = Instant::now();
        let mut tail = Tail::open(&path, t0).expect("open");
        assert!(tail.readable());
        assert!(step(&mut tail, t0).is_empty());
        append(&path, b" written\nnew 1\r\nnew");
        assert_eq!(step(&mut tail, t0), ["new 1"]);
        append(&path, b" 2\n");
        assert_eq!(step(&mut tail, t0), ["new 2"]);
        assert!(step(&mut tail, t0).is_empty());
    }

    #[test]
    fn a_missing_file_that_appears_is_read_from_its_start() {
        let dir = TempDir::new("tail");
        let path = dir.join("app.log");
        let t0 = Instant::now();
        let mut tail = Tail::open(&path, t0).expect("open");
        assert!(!tail.readable());
        assert!(step(&mut tail, t0).is_empty());
        append(&path, b"first\nsecond\n");
        assert_eq!(step(&mut tail, t0), ["first", "second"]);
        assert!(tail.readable());
        std::fs::remove_file(&path).expect("remove");
        assert_eq!(step(&mut tail, t0), ["<renamed>"]);
        assert!(!tail.readable());
    }

    #[test]
    fn rename_rotation_drains_the_old_file_and_reads_the_new_from_its_start() {
        let dir = TempDir::new("tail");
        let path = dir.join("app.log");
        append(&path, b"");
        let t0 = Instant::now();
        let mut tail = Tail::open(&path, t0).expect("open");
        let mut writer = OpenOptions::new().append(true).open(&path).expect("writer");
        writer.write_all(b"a1\n").expect("write");
        assert_eq!(step(&mut tail, t0), ["a1"]);
        writer.write_all(b"a2\n").expect("write");
        std::fs::rename(&path, dir.join("app.log.1")).expect("rename");
        append(&path, b"b1\n");
        // The writer has not reopened yet: it still writes to the renamed file.
        writer.write_all(b"a3 par").expect("write");
        let got = step(&mut tail, t0);
        assert_eq!(got, ["a2", "<renamed>", "b1"]);
        writer.write_all(b"tial\n").expect("write");
        let t1 = t0 + DRAIN_QUIET / 2;
        assert_eq!(step(&mut tail, t1), ["a3 partial"]);
        assert_eq!(tail.drain_deadline(), Some(t1 + DRAIN_QUIET));
        assert!(step(&mut tail, t1 + DRAIN_QUIET).is_empty());
        assert_eq!(tail.drain_deadline(), None, "quiet old file closed");
        writer.write_all(b"lost after close\n").expect("write");
        append(&path, b"b2\n");
        assert_eq!(step(&mut tail, t1 + DRAIN_QUIET), ["b2"]);
    }

    #[test]
    fn truncation_reads_the_file_again_from_its_start() {
        let dir = TempDir::new("tail");
        let path = dir.join("app.log");
        append(&path, b"");
        let t0 = Instant::now();
        let mut tail = Tail::open(&path, t0).expect("open");
        append(&path, b"one\ntwo\n");
        assert_eq!(step(&mut tail, t0), ["one", "two"]);
        OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|f| f.set_len(0))
            .expect("truncate");
        append(&path, b"x\n");
        assert_eq!(step(&mut tail, t0), ["<truncated>", "x"]);
        assert!(step(&mut tail, t0).is_empty());
    }

    fn truncate(path: &Path) {
        OpenOptions::new()
            .write(true)
            .open(path)
            .and_then(|f| f.set_len(0))
            .expect("truncate");
    }

    #[test]
    fn a_truncation_refilled_past_the_read_position_is_seen() {
        // (what the file holds when the tail opens it, then per step: truncate first?, bytes
        // appended, the events expected)
        type Step<'a> = (bool, &'a [u8], &'a [&'a str]);
        let cases: &[(&[u8], &[Step<'_>])] = &[
            // Refilled past the old size within one step: every new line exactly once.
            (
                b"",
                &[
                    (false, b"one\ntwo\n", &["one", "two"]),
                    (
                        true,
                        b"three\nfour\nfive\nsix\n",
                        &["<truncated>", "three", "four", "five", "six"],
                    ),
                    (false, b"seven\n", &["seven"]),
                ],
            ),
            // Refilled to exactly the old size, and with a partial line held.
            (
                b"",
                &[
                    (false, b"aaaa\nbb", &["aaaa"]),
                    (true, b"cccc\ndd\n", &["<truncated>", "cccc", "dd"]),
                ],
            ),
            // A file opened at its end: its fingerprint is taken at open.
            (
                b"2026-12-01 old line\n",
                &[(
                    true,
                    b"2026-12-02 new line, longer than the old one\n",
                    &[
                        "<truncated>",
                        "2026-12-02 new line, longer than the old one",
                    ],
                )],
            ),
            // A short fingerprint grows with the file, then sees a rewrite of those bytes.
            (
                b"",
                &[
                    (false, b"a", &[]),
                    (false, b"bc\nxyz\n", &["abc", "xyz"]),
                    (
                        true,
                        b"abd\nxyz\nmore\n",
                        &["<truncated>", "abd", "xyz", "more"],
                    ),
                ],
            ),
            // Appends never look like a truncation, however long the file grows.
            (
                b"",
                &[
                    (false, &[b'x'; 100], &[]),
                    (false, b"\nnext\n", &["<long x>", "next"]),
                    (false, b"again\n", &["again"]),
                ],
            ),
        ];
        for (n, &(initial, steps)) in cases.iter().enumerate() {
            let dir = TempDir::new("tail");
            let path = dir.join("app.log");
            append(&path, initial);
            let t0 = Instant::now();
            let mut tail = Tail::open(&path, t0).expect("open");
            for (i, &(cut, bytes, want)) in steps.iter().enumerate() {
                if cut {
                    truncate(&path);
                }
                append(&path, bytes);
                let got: Vec<String> = step(&mut tail, t0)
                    .into_iter()
                    .map(|l| {
                        if l.len() == 100 {
                            "<long x>".to_owned()
                        } else {
                            l
                        }
                    })
                    .collect();
                assert_eq!(got, want, "case {n} step {i}");
            }
        }
    }

    #[test]
    fn bytes_not_written_yet_are_no_fingerprint() {
        let dir = TempDir::new("tail");
        let path = dir.join("app.log");
        // A preallocated file: zeros, later written from its start in place.
        append(&path, b"");
        let writer = OpenOptions::new().write(true).open(&path).expect("writer");
        writer.set_len(16).expect("preallocate");
        writer.write_at(b"\n", 15).expect("write");
        let t0 = Instant::now();
        let mut tail = Tail::open(&path, t0).expect("open");
        writer.write_at(b"first line\n", 0).expect("write");
        assert!(
            step(&mut tail, t0).is_empty(),
            "not a truncation: nothing to read past 16"
        );
        writer.write_at(b"line at 16\n", 16).expect("write");
        assert_eq!(step(&mut tail, t0), ["line at 16"]);
        // Copytruncate with a writer without O_APPEND: it writes at its old offset after the
        // truncation, leaving a hole of NULs where the fingerprint was. That is a truncation.
        truncate(&path);
        writer.write_at(b"after\n", 27).expect("write");
        let got = step(&mut tail, t0);
        assert_eq!(got.first().map(String::as_str), Some("<truncated>"));
        assert_eq!(
            got.len(),
            2,
            "{got:?}: the hole and the line come as one line"
        );
        assert!(got[1].ends_with("after") && got[1].starts_with('\0'));
    }

    #[test]
    fn long_lines_are_skipped_and_reported_once() {
        let dir = TempDir::new("tail");
        let path = dir.join("app.log");
        append(&path, b"");
        let t0 = Instant::now();
        let mut tail = Tail::open(&path, t0).expect("open");
        let long = vec![b'x'; MAX_LINE * 3];
        append(&path, &long[..MAX_LINE / 2]);
        assert!(step(&mut tail, t0).is_empty());
        append(&path, &long[MAX_LINE / 2..]);
        append(&path, b"\nshort\n");
        let exact = vec![b'y'; MAX_LINE];
        append(&path, &exact);
        append(&path, b"\n");
        let mut over = exact.clone();
        over.push(b'y');
        append(&path, &over);
        append(&path, b"\n");
        let got = step(&mut tail, t0);
        assert_eq!(got.len(), 4, "too long, short, exact, too long");
        assert_eq!(got[0], "<too long>");
        assert_eq!(got[1], "short");
        assert_eq!(got[2].len(), MAX_LINE);
        assert_eq!(got[3], "<too long>");
    }

    #[test]
    fn a_backlog_is_read_in_bounded_steps_without_loss() {
        let dir = TempDir::new("tail");
        let path = dir.join("app.log");
        let t0 = Instant::now();
        let mut tail = Tail::open(&path, t0).expect("open");
        let line = b"2026-12-01T10:00:01Z worker-3 widget 4711 done status=ok took=231ms\n";
        let lines = 3 * STEP_BUDGET / line.len() + 17;
        let mut text = Vec::with_capacity(lines * line.len());
        for _ in 0..lines {
            text.extend_from_slice(line);
        }
        append(&path, &text);
        let (mut steps, mut seen) = (0, 0);
        loop {
            let mut n = 0;
            let more = tail.step(t0, |e| n += usize::from(matches!(e, Event::Line(_))));
            assert!(n <= STEP_BUDGET / line.len() + 1, "one step read {n} lines");
            seen += n;
            steps += 1;
            if !more {
                break;
            }
        }
        assert_eq!(seen, lines);
        assert!(steps >= 4, "{steps} steps");
        assert_eq!(tail.position().map(|p| p.offset), Some(text.len() as u64));
    }

    #[test]
    fn a_carried_position_resumes_at_the_first_unfinished_line() {
        let dir = TempDir::new("tail");
        let path = dir.join("app.log");
        append(&path, b"");
        let t0 = Instant::now();
        let mut tail = Tail::open(&path, t0).expect("open");
        append(&path, b"one\ntw");
        assert_eq!(step(&mut tail, t0), ["one"]);
        let at = tail.position().expect("a file has a position");
        append(&path, b"o\nthree\n");
        let mut again = Tail::open(&path, t0).expect("open");
        assert!(again.resume(at));
        assert_eq!(step(&mut again, t0), ["two", "three"]);
        let elsewhere = Position {
            ino: at.ino + 1,
            ..at
        };
        assert!(!Tail::open(&path, t0).expect("open").resume(elsewhere));
    }

    #[test]
    fn a_directory_is_refused_and_a_fifo_is_a_stream() {
        let dir = TempDir::new("tail");
        assert!(Tail::open(dir.path(), Instant::now()).is_none());
        let fifo = dir.join("fifo");
        let Some(mkfifo) = require_tool("mkfifo") else {
            return;
        };
        let made = std::process::Command::new(mkfifo).arg(&fifo).status();
        assert!(made.is_ok_and(|s| s.success()), "mkfifo {}", fifo.display());
        let t0 = Instant::now();
        let mut tail = Tail::open(&fifo, t0).expect("open fifo");
        let mut writer = OpenOptions::new().write(true).open(&fifo).expect("writer");
        writer.write_all(b"s1\ns2\nlast").expect("write");
        assert_eq!(step(&mut tail, t0), ["s1", "s2"]);
        assert!(tail.readable());
        drop(writer);
        assert_eq!(
            step(&mut tail, t0),
            ["last"],
            "end of stream completes the line"
        );
        assert!(!tail.readable());
        assert!(step(&mut tail, t0).is_empty());
        let mut writer = OpenOptions::new().write(true).open(&fifo).expect("writer");
        writer.write_all(b"s3\n").expect("write");
        assert_eq!(step(&mut tail, t0), ["s3"]);
        assert!(tail.readable());
    }
}
