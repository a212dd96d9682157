//! What an operator installs beside the binary, as the `--print-*` flags print it: the
//! systemd units shipped in `src/host/units/` with the flags filled in, the warnings for the
//! paths a unit would hide, and the alerting rules with the thresholds a site chose. All of
//! it is text in, text out: nothing here reads the environment, the file system or a socket
//! (the caller finds out, for instance, which group may read the log).

use std::fmt::Write as _;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

/// The service unit for systemd ≥ 239, with `@ARGS@` where the flags go (see [`fill_args`]).
pub const SERVICE_UNIT: &str = include_str!("units/widget-exporter.service");

/// The service unit for systemd < 239 (219 and later), with `@ARGS@` where the flags go.
pub const LEGACY_SERVICE_UNIT: &str = include_str!("units/widget-exporter-legacy.service");

/// The socket unit (`ListenStream=8000`) that the service adopts when both are enabled.
pub const SOCKET_UNIT: &str = include_str!("units/widget-exporter.socket");

/// The placeholder in the service units that [`fill_args`] replaces.
pub const ARGS_PLACEHOLDER: &str = "@ARGS@";

/// Returns `unit` with [`ARGS_PLACEHOLDER`] replaced by `args`, each quoted so systemd's
/// `ExecStart=` parser hands the exporter exactly these strings.
///
/// `%` (unit specifiers) and `$` (environment expansion) are doubled everywhere; words
/// with whitespace, quotes, backslashes, control characters or nothing at all are put in
/// double quotes with C escapes. With no args the placeholder becomes empty, leaving a
/// trailing space that the unit parser strips.
#[must_use]
pub fn fill_args<S: AsRef<str>>(unit: &str, args: &[S]) -> String {
    let mut quoted = String::new();
    for (i, arg) in args.iter().enumerate() {
        if i > 0 {
            quoted.push(' ');
        }
        push_exec_word(&mut quoted, arg.as_ref());
    }
    unit.replace(ARGS_PLACEHOLDER, &quoted)
}

/// Returns a service `unit` given the lines the log source needs to read its log as the
/// unit's user: `SupplementaryGroups=` with the group (by number) of a log only that group
/// may read, else a commented example.
#[must_use]
pub fn with_log_access(unit: &str, gid: Option<u32>) -> String {
    let group = gid.map_or_else(
        || "#SupplementaryGroups=adm".to_owned(),
        |g| format!("SupplementaryGroups={g}"),
    );
    unit.replacen(
        "[Service]\n",
        &format!(
            "[Service]\n\
             # Log source: the log is read as User= below, in none of the log's groups. A log only\n\
             # its group may read (Debian's /var/log files are root:adm 0640) needs that group\n\
             # (name or number); ProtectHome= and PrivateTmp= hide /home, /root and /tmp, so keep\n\
             # the log elsewhere (under /var/log). Reading needs no other privilege.\n{group}\n"
        ),
        1,
    )
}

/// Returns a service `unit` whose `Description=` says what it exports: `about` is the
/// chosen source's phrase ("a widget-processing service, counted from its log").
#[must_use]
pub fn describe(unit: &str, about: &str) -> String {
    let mut out = String::with_capacity(unit.len() + about.len());
    for line in unit.split_inclusive('\n') {
        if line.starts_with("Description=") {
            let _ = writeln!(
                out,
                "Description=widget-exporter: Prometheus exporter for {about}"
            );
        } else {
            out.push_str(line);
        }
    }
    out
}

/// Returns [`SOCKET_UNIT`] listening on `listen_stream` instead of port 8000.
///
/// `listen_stream` is spelled as `ListenStream=` wants it: a port (`8000`, all addresses),
/// `127.0.0.1:8000` or `[::1]:8000`. systemd resolves no host names, so `localhost` must
/// already be an address.
#[must_use]
pub fn socket_unit(listen_stream: &str) -> String {
    SOCKET_UNIT.replace(
        "\nListenStream=8000\n",
        &format!("\nListenStream={listen_stream}\n"),
    )
}

/// Returns `unit` allowed to write `dir` and nothing else: `DIRECTIVE=dir` just before its
/// `ProtectSystem=` line (which makes everything else read-only). The caller refuses what
/// the unit parser would read differently: whitespace, quotes, backslashes, `%`.
#[must_use]
pub fn allow_writes(unit: &str, directive: &str, dir: &str) -> String {
    let line = format!(
        "\n# --textfile.path: the one directory it may write.\n{directive}={dir}\nProtectSystem="
    );
    unit.replacen("\nProtectSystem=", &line, 1)
}

/// Appends one `ExecStart=` word that systemd reads back as `word`.
fn push_exec_word(out: &mut String, word: &str) {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_.,:=/+@%$".contains(c);
    // A lone ";" once separated commands in ExecStart=; quoting keeps it an argument.
    let bare = !word.is_empty() && word != ";" && word.chars().all(plain);
    if !bare {
        out.push('"');
    }
    for c in word.chars() {
        match c {
            '%' => out.push_str("%%"),
            '$' => out.push_str("$$"),
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    write!(out, "\\x{b:02x}").expect("writing to a String cannot fail");
                }
            }
            c => out.push(c),
        }
    }
    if !bare {
        out.push('"');
    }
}

/// The alerting rules as shipped, with [`Thresholds::default`] in them: a real file that
/// `promtool` checks and packagers can install as it is.
pub const ALERT_RULES: &str = include_str!("units/widget-exporter.rules.yml");

/// The thresholds a site chooses for the rules that depend on its widgets: how slow, how
/// often failing and how long idle is wrong there. [`alert_rules`] prints them in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// `WidgetProcessingSlow` fires when the 90th percentile of the processing time over
    /// 5 minutes stays above this for 10 minutes. Longer than 0.
    pub slow_p90: Duration,
    /// `WidgetFailureRatioHigh` fires when more than this share of the widgets finished
    /// over 5 minutes failed, for 10 minutes. Above 0 and below 1.
    pub failure_ratio: f64,
    /// `WidgetsNotProcessed` fires when no widget finished for longer than this, for 5 more
    /// minutes. At least 1 s.
    pub idle_after: Duration,
}

impl Default for Thresholds {
    /// Quiet on the default simulation with room to spare: its widgets take 0.1 to 0.5 s,
    /// so the histogram's p90 never passes the 0.5 bucket and 1 s is twice the slowest
    /// widget; it fails none, so 10 % is far off; one widget finishes every 1.1 to 1.5 s,
    /// so 5 minutes without one is some 200 missed widgets, not one slow widget.
    fn default() -> Self {
        Thresholds {
            slow_p90: Duration::from_secs(1),
            failure_ratio: 0.1,
            idle_after: Duration::from_secs(300),
        }
    }
}

/// The alerting rules with `thresholds` in them: [`ALERT_RULES`] itself for the defaults.
/// The caller has checked each value against its field's bounds.
#[must_use]
pub fn alert_rules(thresholds: &Thresholds) -> String {
    let mut rules = ALERT_RULES.to_owned();
    for (shipped, printed) in threshold_spots(thresholds) {
        // Each spot occurs once in the shipped file; a unit test keeps it so.
        rules = rules.replacen(shipped, &printed, 1);
    }
    rules
}

/// Each place a threshold appears in [`ALERT_RULES`], spelled with the defaults, and how it
/// reads with `t`.
fn threshold_spots(t: &Thresholds) -> [(&'static str, String); 9] {
    let percent = {
        // Rounded so that 0.1 reads 10%, not 10.000000000000002%.
        let p = (t.failure_ratio * 100.0 * 1e6).round() / 1e6;
        format!("{p}%")
    };
    [
        (
            "widget_last_processed_timestamp_seconds > 300\n",
            format!(
                "widget_last_processed_timestamp_seconds > {}\n",
                seconds(t.idle_after)
            ),
        ),
        (
            "max_over_time(widgets_processed_total[5m]) == 0\n",
            format!(
                "max_over_time(widgets_processed_total[{}]) == 0\n",
                promql_duration(t.idle_after)
            ),
        ),
        (
            "widgets_processed_total offset 5m\n",
            format!(
                "widgets_processed_total offset {}\n",
                promql_duration(t.idle_after)
            ),
        ),
        (
            "{{ $labels.instance }} for over 5m\n",
            format!(
                "{{{{ $labels.instance }}}} for over {}\n",
                human(t.idle_after)
            ),
        ),
        (
            "rate(widgets_processed_total[5m]) > 0.1)",
            format!("rate(widgets_processed_total[5m]) > {})", t.failure_ratio),
        ),
        (
            "More than 10% of widgets fail",
            format!("More than {percent} of widgets fail"),
        ),
        ("(threshold 10%)", format!("(threshold {percent})")),
        (
            "\n          ) > 1\n",
            format!("\n          ) > {}\n", seconds(t.slow_p90)),
        ),
        (
            "(threshold 1s)",
            format!("(threshold {})", human(t.slow_p90)),
        ),
    ]
}

/// A duration as a PromQL number of seconds: `300`, `1`, `0.45`.
fn seconds(d: Duration) -> String {
    format!("{}", d.as_secs_f64())
}

/// A duration as PromQL writes one: `5m`, `1h30m`, `2500ms` (whole milliseconds; it has
/// no fractions).
fn promql_duration(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        human(d)
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// A duration as people write it: `5m`, `1h30m`, `1s`, `1.5s`, `450ms`.
fn human(d: Duration) -> String {
    if d.subsec_nanos() != 0 {
        return if d < Duration::from_secs(1) {
            format!("{}ms", d.as_secs_f64() * 1e3)
        } else {
            format!("{}s", d.as_secs_f64())
        };
    }
    let secs = d.as_secs();
    let mut out = String::new();
    for (n, unit) in [(secs / 3600, "h"), (secs / 60 % 60, "m"), (secs % 60, "s")] {
        if n > 0 {
            let _ = write!(out, "{n}{unit}");
        }
    }
    if out.is_empty() {
        out.push_str("0s");
    }
    out
}

/// One warning line for each path in use that `unit` would hide from the service, naming
/// the flag, the path and the directive:
/// `PrivateTmp=` gives the service its own empty `/tmp` and `/var/tmp`, `ProtectHome=`
/// (`yes` or `tmpfs`) empties `/home`, `/root` and `/run/user`. The service would then never
/// find the log, or write a textfile node_exporter never reads. `-` (standard input) is no
/// path; a relative path is taken from `/`, where systemd starts a service.
///
/// `log_path` is `--widget.log.path` (log source only), `textfile_path` `--textfile.path`;
/// `--print-systemd-unit` prints the lines on standard error beside the unit.
#[must_use]
pub fn hidden_paths(
    unit: &str,
    log_path: Option<&Path>,
    textfile_path: Option<&Path>,
) -> Vec<String> {
    let private_tmp =
        last_setting(unit, "PrivateTmp").is_some_and(|v| matches!(v, "yes" | "true" | "on" | "1"));
    let protect_home = last_setting(unit, "ProtectHome")
        .is_some_and(|v| matches!(v, "yes" | "true" | "on" | "1" | "tmpfs"));
    let hiding: [(&[&str], &str, bool); 2] = [
        (&["/tmp", "/var/tmp"], "PrivateTmp=", private_tmp),
        (
            &["/home", "/root", "/run/user"],
            "ProtectHome=",
            protect_home,
        ),
    ];
    let paths = [
        ("--widget.log.path", log_path),
        ("--textfile.path", textfile_path),
    ];
    let mut warnings = Vec::new();
    for (flag, path) in paths {
        let Some(path) = path else { continue };
        if path == Path::new("-") {
            continue;
        }
        let resolved = lexically_absolute(path);
        let directive = hiding.iter().find_map(|&(dirs, directive, on)| {
            (on && dirs.iter().any(|d| resolved.starts_with(d))).then_some(directive)
        });
        if let Some(directive) = directive {
            warnings.push(format!(
                "widget-exporter: warning: {flag}={} is hidden from the service by {directive} \
                 in the printed unit; keep the file elsewhere (the log under /var/log, the \
                 textfile in node_exporter's directory) or change {directive}",
                path.display()
            ));
        }
    }
    warnings
}

/// The value of the last `NAME=` line in `unit`, as systemd lets a later line win.
fn last_setting<'a>(unit: &'a str, name: &str) -> Option<&'a str> {
    unit.lines()
        .filter_map(|l| l.trim().strip_prefix(name)?.strip_prefix('='))
        .next_back()
        .map(str::trim)
}

/// `path` from `/`, with `.` and `..` resolved without asking the file system (a symbolic
/// link is not followed: the warning is about the path the unit would see).
fn lexically_absolute(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for part in path.components() {
        match part {
            Component::Normal(p) => out.push(p),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_writes_opens_one_directory_in_each_unit() {
        for (unit, directive, protect) in [
            (SERVICE_UNIT, "ReadWritePaths", "ProtectSystem=strict"),
            (
                LEGACY_SERVICE_UNIT,
                "ReadWriteDirectories",
                "ProtectSystem=full",
            ),
        ] {
            let out = allow_writes(unit, directive, "/var/lib/node");
            let want = format!("\n{directive}=/var/lib/node\n{protect}\n");
            assert_eq!(out.matches(&want).count(), 1, "{out}");
            assert_eq!(out.matches("ReadWrite").count(), 1, "{out}");
            assert_eq!(
                out.replace(&want, &format!("\n{protect}\n"))
                    .lines()
                    .count(),
                unit.lines().count() + 1
            );
        }
        assert_eq!(
            allow_writes("[Service]\n", "ReadWritePaths", "/d"),
            "[Service]\n"
        );
    }

    #[test]
    fn fill_args_quotes_for_exec_start() {
        let unit = "ExecStart=/usr/local/bin/widget-exporter @ARGS@\n";
        #[rustfmt::skip]
        let cases: &[(&[&str], &str)] = &[
            (&[],                                    "ExecStart=/usr/local/bin/widget-exporter \n"),
            (&["--web.listen-address=:8000"],        "ExecStart=/usr/local/bin/widget-exporter --web.listen-address=:8000\n"),
            (&["--a=1", "--b=[::1]:9"],              "ExecStart=/usr/local/bin/widget-exporter --a=1 \"--b=[::1]:9\"\n"),
            (&["--x=50%"],                           "ExecStart=/usr/local/bin/widget-exporter --x=50%%\n"),
            (&["--x=$HOME"],                         "ExecStart=/usr/local/bin/widget-exporter --x=$$HOME\n"),
            (&["a b"],                               "ExecStart=/usr/local/bin/widget-exporter \"a b\"\n"),
            (&["say \"hi\" \\ 'x'"],                 "ExecStart=/usr/local/bin/widget-exporter \"say \\\"hi\\\" \\\\ 'x'\"\n"),
            (&["l1\nl2\tt\u{7}"],                    "ExecStart=/usr/local/bin/widget-exporter \"l1\\nl2\\tt\\x07\"\n"),
            (&["", ";"],                             "ExecStart=/usr/local/bin/widget-exporter \"\" \";\"\n"),
        ];
        for &(args, want) in cases {
            assert_eq!(fill_args(unit, args), want, "{args:?}");
        }
    }

    #[test]
    fn describe_names_the_source_once() {
        for unit in [SERVICE_UNIT, LEGACY_SERVICE_UNIT] {
            let out = describe(unit, "a widget-processing service, counted from its log");
            let lines: Vec<_> = out
                .lines()
                .filter(|l| l.starts_with("Description="))
                .collect();
            assert_eq!(
                lines,
                [
                    "Description=widget-exporter: Prometheus exporter for a widget-processing \
                  service, counted from its log"
                ]
            );
            assert_eq!(out.lines().count(), unit.lines().count());
        }
    }

    #[test]
    fn shipped_units_have_one_placeholder_each() {
        for unit in [SERVICE_UNIT, LEGACY_SERVICE_UNIT] {
            assert_eq!(unit.matches(ARGS_PLACEHOLDER).count(), 1);
            assert!(fill_args(unit, &["--web.systemd-socket"])
                .contains("ExecStart=/usr/local/bin/widget-exporter --web.systemd-socket\n"));
        }
        assert!(!SOCKET_UNIT.contains(ARGS_PLACEHOLDER));
    }

    #[test]
    fn socket_unit_swaps_the_listen_stream() {
        assert_eq!(socket_unit("8000"), SOCKET_UNIT);
        let unit = socket_unit("[::1]:9100");
        assert_eq!(unit.matches("\nListenStream=").count(), 1);
        assert!(unit.contains("\nListenStream=[::1]:9100\n"));
    }
    #[test]
    fn default_thresholds_print_the_shipped_rules() {
        assert_eq!(alert_rules(&Thresholds::default()), ALERT_RULES);
    }

    #[test]
    fn each_threshold_spot_occurs_once_in_the_shipped_rules() {
        for (shipped, printed) in threshold_spots(&Thresholds::default()) {
            assert_eq!(ALERT_RULES.matches(shipped).count(), 1, "{shipped:?}");
            assert_eq!(printed, shipped, "defaults print as shipped");
        }
    }

    #[test]
    fn chosen_thresholds_reach_every_spot() {
        let rules = alert_rules(&Thresholds {
            slow_p90: Duration::from_millis(2500),
            failure_ratio: 0.025,
            idle_after: Duration::from_secs(5400),
        });
        for want in [
            "widget_last_processed_timestamp_seconds > 5400\n",
            "max_over_time(widgets_processed_total[1h30m]) == 0\n",
            "widgets_processed_total offset 1h30m\n",
            "{{ $labels.instance }} for over 1h30m\n",
            "rate(widgets_processed_total[5m]) > 0.025)",
            "More than 2.5% of widgets fail",
            "(threshold 2.5%)",
            "\n          ) > 2.5\n",
            "(threshold 2.5s)",
        ] {
            assert_eq!(rules.matches(want).count(), 1, "{want:?} in\n{rules}");
        }
        for gone in [
            "processed_timestamp_seconds > 300\n",
            "> 0.1)",
            "10%",
            ") > 1\n",
            "threshold 1s",
            "over 5m",
            "[5m]) == 0",
            "offset 5m",
        ] {
            assert!(!rules.contains(gone), "{gone:?} left in\n{rules}");
        }
        // Everything but the thresholds is as shipped.
        assert_eq!(rules.lines().count(), ALERT_RULES.lines().count());
    }

    #[test]
    fn durations_print_for_promql_and_for_people() {
        #[rustfmt::skip]
        let cases = [
            (Duration::from_millis(450),  "0.45", "450ms"),
            (Duration::from_millis(1),    "0.001", "1ms"),
            (Duration::from_secs(1),      "1",    "1s"),
            (Duration::from_millis(1500), "1.5",  "1.5s"),
            (Duration::from_secs(90),     "90",   "1m30s"),
            (Duration::from_secs(300),    "300",  "5m"),
            (Duration::from_secs(3600),   "3600", "1h"),
            (Duration::from_secs(90_061), "90061", "25h1m1s"),
            (Duration::ZERO,              "0",    "0s"),
        ];
        for (d, promql, people) in cases {
            assert_eq!(
                (seconds(d).as_str(), human(d).as_str()),
                (promql, people),
                "{d:?}"
            );
        }
        assert_eq!(promql_duration(Duration::from_secs(300)), "5m");
        assert_eq!(promql_duration(Duration::from_millis(2500)), "2500ms");
    }

    #[test]
    fn both_service_units_hide_tmp_and_home_and_cap_tasks() {
        for unit in [SERVICE_UNIT, LEGACY_SERVICE_UNIT] {
            assert_eq!(last_setting(unit, "PrivateTmp"), Some("yes"));
            assert_eq!(last_setting(unit, "ProtectHome"), Some("yes"));
            // Above the guard's 300 threads, so the guard sheds first.
            assert_eq!(last_setting(unit, "TasksMax"), Some("512"));
        }
    }

    #[test]
    fn hidden_paths_warn_once_per_hidden_path() {
        let p = |s: &'static str| Some(Path::new(s));
        #[rustfmt::skip]
        let cases: &[(Option<&Path>, Option<&Path>, &[&str])] = &[
            (p("/var/log/app.log"), p("/var/lib/node/w.prom"), &[]),
            (None, None, &[]),
            (p("-"), None, &[]),
            (p("/tmp/app.log"), None, &["--widget.log.path=/tmp/app.log is hidden from the service by PrivateTmp= in"]),
            (p("/var/tmp/a/app.log"), None, &["--widget.log.path=/var/tmp/a/app.log is hidden from the service by PrivateTmp="]),
            (p("/home/ann/app.log"), p("/tmp/w.prom"), &[
                "--widget.log.path=/home/ann/app.log is hidden from the service by ProtectHome=",
                "--textfile.path=/tmp/w.prom is hidden from the service by PrivateTmp=",
            ]),
            (p("/root/app.log"), None, &["--widget.log.path=/root/app.log is hidden from the service by ProtectHome="]),
            (None, p("/run/user/1000/w.prom"), &["--textfile.path=/run/user/1000/w.prom is hidden from the service by ProtectHome="]),
            // Whole components only, and the path as the service sees it.
            (p("/tmpfiles/app.log"), p("/homeless/w.prom"), &[]),
            (p("/var/log/../../tmp/app.log"), None, &["--widget.log.path=/var/log/../../tmp/app.log is hidden"]),
            (p("tmp/app.log"), None, &["--widget.log.path=tmp/app.log is hidden from the service by PrivateTmp="]),
        ];
        for unit in [SERVICE_UNIT, LEGACY_SERVICE_UNIT] {
            for &(log, textfile, want) in cases {
                let got = hidden_paths(unit, log, textfile);
                assert_eq!(got.len(), want.len(), "{log:?} {textfile:?}: {got:?}");
                for (line, want) in got.iter().zip(want) {
                    let line = line
                        .strip_prefix("widget-exporter: warning: ")
                        .unwrap_or_else(|| panic!("{line}"));
                    assert!(line.starts_with(want), "{line}\nwant {want}");
                    assert!(!line.contains('\n'), "{line}");
                }
            }
        }
    }

    #[test]
    fn hidden_paths_follow_the_directives_the_unit_sets() {
        let log = Some(Path::new("/home/ann/app.log"));
        let textfile = Some(Path::new("/tmp/w.prom"));
        #[rustfmt::skip]
        let cases = [
            ("[Service]\n", 0),
            ("[Service]\nPrivateTmp=yes\n", 1),
            ("[Service]\nPrivateTmp=yes\nPrivateTmp=no\n", 0),
            ("[Service]\nProtectHome=read-only\n", 0),
            ("[Service]\nProtectHome=tmpfs\n", 1),
            ("[Service]\nProtectHome=true\nPrivateTmp=on\n", 2),
        ];
        for (unit, n) in cases {
            assert_eq!(hidden_paths(unit, log, textfile).len(), n, "{unit}");
        }
    }
}
