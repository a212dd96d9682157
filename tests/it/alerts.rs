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
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert!(
        output.status.success(),
        "command: {command:?}\nstatus: {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
}
