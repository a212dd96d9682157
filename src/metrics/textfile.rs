//! The textfile output's families, present only with `--textfile.path`: writes by result and
//! when the file was last written. Owns their names, help, kinds, label values, atomics and
//! the methods that update them ([`Textfile`]), snapshot, encoding, which of them a restart
//! in place carries, and how the written file states them. It must not touch another
//! owner's families, nor know how the file is written (that is `output::textfile`) or how
//! the exposition is spelled; what else the file holds is put together in `mod.rs`.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::metrics::render::{family, Encoder, Family, Kind, Number};

const WRITES: Family = family(
    "widget_exporter_textfile_writes_total",
    Kind::Counter,
    "Writes of the --textfile.path file for node_exporter, by result (ok or error).",
);
const LAST_WRITE: Family = family(
    "widget_exporter_textfile_last_write_timestamp_seconds",
    Kind::Gauge,
    "Unix time of the latest successful write of the --textfile.path file, 0 before the first.",
);

/// The `result` label values of the writes, in the order of [`TextfileSnapshot::writes`].
const RESULTS: [&str; 2] = ["ok", "error"];

/// The live textfile values, updated by the textfile output with relaxed atomics.
#[derive(Debug, Default)]
pub(crate) struct Textfile {
    /// Writes that succeeded, then writes that failed.
    writes: [AtomicU64; 2],
    last_write_unix_nanos: AtomicU64,
}

impl Textfile {
    /// The families' values.
    pub(crate) fn snapshot(&self) -> TextfileSnapshot {
        TextfileSnapshot {
            writes: std::array::from_fn(|i| self.writes[i].load(Relaxed)),
            last_write_unix_nanos: self.last_write_unix_nanos.load(Relaxed),
        }
    }

    /// What a restart in place carries: all of it.
    pub(crate) fn carried<'a>(&'a self, out: &mut Vec<&'a AtomicU64>) {
        out.extend(&self.writes);
        out.push(&self.last_write_unix_nanos);
    }
}

/// The families of the textfile output.
#[derive(Debug, Clone, PartialEq)]
pub struct TextfileSnapshot {
    /// Writes that succeeded, then writes that failed.
    pub writes: [u64; 2],
    /// When the latest successful write happened, unix nanoseconds; 0 before the first.
    pub last_write_unix_nanos: u64,
}

impl TextfileSnapshot {
    /// Writes the textfile families.
    pub(crate) fn encode(&self, e: &mut Encoder<'_>) {
        e.labeled_counters(&WRITES, "result", RESULTS.into_iter().zip(self.writes));
        e.gauge(&LAST_WRITE, Number::Nanos(self.last_write_unix_nanos));
    }
}

impl Textfile {
    /// Counts one write of the textfile, and when it succeeded.
    pub(crate) fn count_write(&self, ok: bool, unix_nanos: u64) {
        self.writes[usize::from(!ok)].fetch_add(1, Relaxed);
        if ok {
            self.last_write_unix_nanos.store(unix_nanos, Relaxed);
        }
    }
}

impl TextfileSnapshot {
    /// The families as the file written at `unix_nanos` states them: as if this write
    /// succeeded, which is true whenever anyone reads the file.
    pub(crate) fn as_written(&mut self, unix_nanos: u64) {
        self.writes[0] += 1;
        self.last_write_unix_nanos = unix_nanos;
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::time::{Duration, Instant};

    use crate::host::process::ProcessStats;
    use crate::metrics::render::{render, Format};
    use crate::metrics::{Metrics, Parts, Snapshot};

    /// The family names a snapshot renders, from its `# TYPE` lines.
    fn names(s: &Snapshot) -> BTreeSet<String> {
        let mut text = String::new();
        render(s, Format::Text, &mut text);
        text.lines()
            .filter_map(|l| Some(l.strip_prefix("# TYPE ")?.split(' ').next()?.to_owned()))
            .collect()
    }

    /// The textfile holds the widget families and the exporter's own, never `process_*`
    /// (node_exporter's), and the HTTP ones only while HTTP is served; it counts the write
    /// that produced it.
    #[test]
    fn textfile_families() {
        let now = Instant::now();
        let all_parts = Parts {
            in_progress: true,
            http: true,
            textfile: true,
            log: true,
        };
        let with = |parts| Metrics::new(parts, Duration::from_secs(60), now);
        let proc = ProcessStats::all_known();
        let every = names(&with(all_parts).snapshot(proc));
        let but = |parts| &every - &names(&with(parts).snapshot(proc));
        let http_only = but(Parts {
            http: false,
            ..all_parts
        });
        let log_only = but(Parts {
            log: false,
            ..all_parts
        });
        assert!(http_only.contains("widget_exporter_http_requests_total"));
        assert!(log_only.contains("widget_exporter_log_lines_total"));
        for http in [false, true] {
            let parts = Parts {
                http,
                textfile: true,
                ..Parts::default()
            };
            let m = with(parts);
            m.textfile.count_write(true, 5_000_000_000);
            m.textfile.count_write(false, 6_000_000_000);
            let mut out = String::new();
            render(
                &m.textfile_snapshot(now, 7_500_000_000),
                Format::Text,
                &mut out,
            );
            let got = names(&m.textfile_snapshot(now, 7_500_000_000));
            let want: BTreeSet<String> = every
                .iter()
                .filter(|f| !f.starts_with("process_"))
                .filter(|f| http || !http_only.contains(*f))
                .filter(|f| !log_only.contains(*f))
                .cloned()
                .collect();
            assert_eq!(got, want, "http={http}");
            assert!(out.contains("\nwidget_exporter_textfile_writes_total{result=\"ok\"} 2\n"));
            assert!(out.contains("\nwidget_exporter_textfile_writes_total{result=\"error\"} 1\n"));
            assert!(out.contains("\nwidget_exporter_textfile_last_write_timestamp_seconds 7.5\n"));
            // The live counters are not moved by rendering.
            let live = m
                .snapshot(ProcessStats::default())
                .textfile
                .expect("textfile part");
            assert_eq!(live.writes, [1, 1]);
            assert_eq!(live.last_write_unix_nanos, 5_000_000_000);
        }
        let without = Metrics::default().snapshot(ProcessStats::default());
        assert_eq!(
            without.textfile, None,
            "no textfile families without --textfile.path"
        );
    }
}
