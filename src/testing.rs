//! What the crate's unit tests share (compiled for tests only): a directory of their own,
//! appending to a file, and finding an outside tool with the same rule as the integration
//! tests (`skipped: NAME not found`, or a failure under `WIDGET_EXPORTER_REQUIRE_TOOLS=1`).

use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A directory of its own under the temporary directory, removed when dropped.
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    /// A new, empty directory whose name carries `tag`, the process and a counter.
    pub(crate) fn new(tag: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "widget-exporter-unit-{tag}-{}-{n}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create a temporary directory");
        TempDir(dir)
    }

    /// The directory.
    pub(crate) fn path(&self) -> &Path {
        &self.0
    }

    /// `name` inside the directory.
    pub(crate) fn join(&self, name: impl AsRef<Path>) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Appends `bytes` to `path`, creating it.
pub(crate) fn append(path: &Path, bytes: impl AsRef<[u8]>) {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(bytes.as_ref()))
        .unwrap_or_else(|e| panic!("append to {}: {e}", path.display()));
}

/// `name` on `PATH` (or in /usr/sbin, /sbin); when absent, prints `skipped: NAME not found`,
/// or fails under `WIDGET_EXPORTER_REQUIRE_TOOLS=1`.
pub(crate) fn require_tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|dir| dir.join(name))
        .find(|p| p.is_file());
    if found.is_none() {
        let required = std::env::var_os("WIDGET_EXPORTER_REQUIRE_TOOLS").is_some_and(|v| v == "1");
        assert!(
            !required,
            "{name} not found and WIDGET_EXPORTER_REQUIRE_TOOLS=1"
        );
        eprintln!("skipped: {name} not found");
    }
    found
}

/// The seed of a property test: `WIDGET_EXPORTER_FUZZ_SEED` replays one, else the clock
/// draws one. It is printed with `name`, so a failure can be replayed.
pub(crate) fn fuzz_seed(name: &str) -> u64 {
    let seed = std::env::var("WIDGET_EXPORTER_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    eprintln!("{name} property test seed: {seed} (WIDGET_EXPORTER_FUZZ_SEED={seed} replays)");
    seed
}
