//! The alert rules in `src/host/units/` against `promtool`: `check rules` (syntax, queries,
//! templates) and `test rules` (the unit tests in `tests/alerts/`). Skipped, visibly, when
//! promtool is not installed; failed instead under `WIDGET_EXPORTER_REQUIRE_TOOLS=1`.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support;

const RULES: &str = "src/host/units/widget-exporter.rules.yml";
const RULE_TESTS: &str = "tests/alerts/widget-exporter.rules.test.yml";

#[test]
fn rules_pass_promtool_check() {
    let Some(promtool) = support::require_tool("promtool") else {
        return;
    };
    run(&promtool, &["check", "rules"], RULES);
}

#[test]
fn rules_pass_their_unit_tests() {
    let Some(promtool) = support::require_tool("promtool") else {
        return;
    };
    // The test file names the rule file relative to itself, so the working directory
    // does not matter; the crate root just keeps the printed command short to reproduce.
    run(&promtool, &["test", "rules"], RULE_TESTS);
}

/// Runs `promtool ARGS FILE` from the crate root; on failure shows everything needed to
/// reproduce and understand it.
fn run(promtool: &Path, args: &[&str], file: &str) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut command = Command::new(promtool);
    command.args(args).arg(root.join(file)).current_dir(&root);
    let (code, out, err) = support::run_code(&mut command, "");
    assert_eq!(
        code,
        Some(0),
        "command: {command:?}\nstdout:\n{out}\nstderr:\n{err}"
    );
}

/// The README's alert table names exactly the rules `--print-alert-rules` prints, so an
/// operator reading it learns of every rule and of none that does not exist.
#[test]
fn readme_lists_every_printed_rule() {
    let (ok, printed, stderr) =
        support::run(Command::new(support::binary()).arg("--print-alert-rules"));
    assert!(ok, "--print-alert-rules failed: {stderr}");
    let mut printed: Vec<&str> = printed
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
        .map(str::trim)
        .collect();
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md is readable");
    let section = readme
        .split("\n## Alerts\n")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .expect("README has an Alerts section");
    let mut listed: Vec<&str> = section
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .collect();
    printed.sort_unstable();
    listed.sort_unstable();
    assert!(printed.len() >= 9, "too few rules printed: {printed:?}");
    assert_eq!(
        listed, printed,
        "README's alert table against --print-alert-rules"
    );
}
