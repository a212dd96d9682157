//! The renderer, byte for byte: a hand-built snapshot (never RNG output) rendered in both
//! formats and compared with files under `tests/golden/`. `UPDATE_GOLDEN=1 cargo test --test
//! it golden::` rewrites them; review their diff like code.

use widget_exporter::host::process::ProcessStats;
use widget_exporter::metrics::render::{render, Format};
use widget_exporter::metrics::{HttpSnapshot, Snapshot, WidgetsSnapshot, BUCKETS, HTTP_CODES};

fn snapshot() -> Snapshot {
    let mut buckets = [0; BUCKETS.len() + 1];
    // 3 widgets at or under 0.15 s, 7 more by 0.3 s, 2 by 0.5 s, one slow outlier.
    for (i, b) in buckets.iter_mut().enumerate() {
        *b = match i {
            0..=2 => 0,
            3 => 3,
            4..=5 => 6,
            6 => 10,
            7 => 11,
            _ if i < 10 => 12,
            _ => 13,
        };
    }
    Snapshot {
        widgets: WidgetsSnapshot {
            processed: 13,
            failed: 2,
            in_progress: Some(1),
            duration_buckets: buckets,
            duration_sum_nanos: 4_123_456_789,
            average_nanos: Some(317_188_983),
            last_processed_unix_nanos: 1_795_757_095_250_000_000,
        },
        http: Some(HttpSnapshot {
            requests: {
                let mut r = [0; HTTP_CODES.len()];
                r[0] = 41;
                r[2] = 3;
                r
            },
            self_probe_success: 1,
            connections: 3,
            connections_closed: [12, 1, 0, 0, 2, 1],
        }),
        restarts: 1,
        textfile: None,
        log: None,
        process: ProcessStats {
            cpu_nanos: Some(370_000_000),
            resident_memory_bytes: Some(1_679_360),
            virtual_memory_bytes: Some(9_453_568),
            start_time_nanos: Some(1_795_757_000_120_000_000),
            open_fds: Some(7),
            max_fds: Some(1_048_576),
            threads: Some(6),
        },
    }
}

fn check(file: &str, format: Format, snapshot: &Snapshot) {
    let path = format!("{}/tests/golden/{file}", env!("CARGO_MANIFEST_DIR"));
    let mut out = String::new();
    render(snapshot, format, &mut out);
    if std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1") {
        std::fs::write(&path, &out).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{path}: {e} (UPDATE_GOLDEN=1 writes it)"));
    if out != want {
        let line = out
            .lines()
            .zip(want.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(out.lines().count().min(want.lines().count()));
        panic!(
            "{file} differs at line {}:\n got: {:?}\nwant: {:?}\n--- full output ---\n{out}",
            line + 1,
            out.lines().nth(line),
            want.lines().nth(line)
        );
    }
}

#[test]
fn text_format_matches_golden() {
    check("metrics.prom", Format::Text, &snapshot());
}

#[test]
fn openmetrics_matches_golden() {
    check("metrics.om", Format::OpenMetrics, &snapshot());
}

#[test]
fn empty_window_and_missing_proc_fields() {
    // A fresh exporter on a host whose /proc hides everything: NaN mean, no process families.
    let full = snapshot();
    let s = Snapshot {
        widgets: WidgetsSnapshot {
            average_nanos: None,
            ..full.widgets.clone()
        },
        process: ProcessStats::default(),
        ..full
    };
    check("fresh.prom", Format::Text, &s);
}

#[test]
fn both_formats_share_bucket_strings_and_order() {
    let (mut text, mut om) = (String::new(), String::new());
    render(&snapshot(), Format::Text, &mut text);
    render(&snapshot(), Format::OpenMetrics, &mut om);
    let samples = |s: &str| -> Vec<String> {
        s.lines()
            .filter(|l| !l.starts_with('#'))
            .map(str::to_owned)
            .collect()
    };
    // Same samples, same order, same `le` strings: only metadata lines and `# EOF` differ.
    assert_eq!(samples(&text), samples(&om));
    assert!(om.ends_with("# EOF\n") && text.ends_with('\n'));
    assert!(!text.contains("# EOF"));
}
