//! widget-exporter: a tiny, synchronous Prometheus exporter for a widget-processing service.
//!
//! The map, one folder per concern:
//!
//! - [`app`]: the loop only: step the source, wake the outputs, sleep until the next due
//!   instant. It names no particular source or output.
//! - [`config`]: the flag-table machinery, parsing, `--help`, the validated configuration and
//!   the one duration parser. It is handed the sources' flag tables and names none of them.
//! - [`source`]: the `Source` trait and the registry of kinds. Each kind describes itself in
//!   its own file (flag rows, validated config, how it opens, its families): `source::sim`
//!   (the simulation) and [`source::log`] (the application's log: tail, template, labels,
//!   files, the check mode).
//! - [`metrics`]: families grouped by owner (widgets, http, log, textfile, process), each
//!   family's name, help, kind, atomics, encoding and carried state in one place; the
//!   snapshot; [`metrics::render`], which knows the exposition formats and none of the
//!   crate's families.
//! - [`output`]: the `Output` trait; [`output::textfile`] for node_exporter;
//!   [`output::http`] for Prometheus, with everything that contains tiny_http 0.12 under it
//!   (server, listener, body, guard, [`output::http::pool`], probe, restart).
//! - [`host`]: what talks to the operating system: `sys` (all `unsafe`), `/proc`, limits in
//!   force, the clock, systemd, the printed units and rules, the dashboard.
//! - [`error`] and [`log`]: used everywhere.
//!
//! Dependencies point one way, and a test below reads the files to keep it so: `config`,
//! `host`, `error` and `log` at the bottom; `source` and `metrics` above them; `output`
//! above those; `app` on top, then `main.rs`. Adding a source is one new file under
//! `source/` and one line in `source::KINDS`; adding an output, one file under `output/`
//! and one line in `Outputs::open`; adding a family, one owner's file under `metrics/`
//! (README, "Write your own source, output or family").

pub mod app;
pub mod config;
pub mod error;
pub mod host;
pub mod log;
pub mod metrics;
pub mod output;
pub mod source;
#[cfg(test)]
mod testing;

/// The module graph, read from the files: dependencies point one way.
#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::Path;

    /// Every file of the library (not `main.rs`) by module path (`""` for
    /// `lib.rs`, `"source::log"` for `source/log/mod.rs`), with its code: the test module at
    /// the bottom and every `//` comment (doc comments included) removed.
    fn library() -> BTreeMap<String, (String, String)> {
        fn walk(dir: &Path, files: &mut Vec<std::path::PathBuf>) {
            let entries = std::fs::read_dir(dir).expect("src/ is readable");
            for entry in entries {
                let path = entry.expect("a directory entry").path();
                if path.is_dir() {
                    walk(&path, files);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    files.push(path);
                }
            }
        }
        let root = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/src"));
        let mut files = Vec::new();
        walk(root, &mut files);
        let mut modules = BTreeMap::new();
        for path in files {
            let rel = path.strip_prefix(root).expect("under src/");
            let rel = rel.to_string_lossy().replace('\\', "/");
            if rel == "main.rs" {
                continue;
            }
            let stem = rel.trim_end_matches(".rs");
            let stem = stem.strip_suffix("/mod").unwrap_or(stem);
            let module = if stem == "lib" {
                String::new()
            } else {
                stem.replace('/', "::")
            };
            let text = std::fs::read_to_string(&path).expect("a source file");
            let code = text
                .split("\n#[cfg(test)]\nmod tests")
                .next()
                .unwrap_or_default()
                .lines()
                .map(|l| l.find("//").map_or(l, |i| &l[..i]))
                .collect::<Vec<_>>()
                .join("\n");
            modules.insert(module, (format!("src/{rel}"), code));
        }
        modules
    }

    /// Reads the `use` tree at `i` (after `crate::`, a child's `name::` or a `{`), adding every
    /// full path under `prefix` to `out`; returns where it stopped.
    fn tree(b: &[u8], mut i: usize, mut path: Vec<String>, out: &mut Vec<Vec<String>>) -> usize {
        let ws = |b: &[u8], mut i: usize| {
            while b.get(i).is_some_and(u8::is_ascii_whitespace) {
                i += 1;
            }
            i
        };
        loop {
            i = ws(b, i);
            if b.get(i) == Some(&b'{') {
                i += 1;
                loop {
                    i = tree(b, i, path.clone(), out);
                    // Past `as Name` or a `*` to the separator.
                    while i < b.len() && b[i] != b',' && b[i] != b'}' {
                        i += 1;
                    }
                    if b.get(i) == Some(&b',') {
                        i = ws(b, i + 1);
                    }
                    match b.get(i) {
                        Some(b'}') => return i + 1,
                        Some(_) => {}
                        None => return i,
                    }
                }
            }
            let start = i;
            while b
                .get(i)
                .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
            {
                i += 1;
            }
            if i > start {
                let ident = String::from_utf8_lossy(&b[start..i]).into_owned();
                if ident != "self" {
                    path.push(ident);
                }
                if b[i..].starts_with(b"::") {
                    i += 2;
                    continue;
                }
            }
            out.push(path);
            return i;
        }
    }

    /// The paths a file's code names: `crate::…` anywhere, and `child::…` for a module it
    /// declares with `mod child;` (a declaration alone is no dependency; naming is).
    fn references(module: &str, code: &str) -> Vec<Vec<String>> {
        let here: Vec<String> = module
            .split("::")
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        let mut starts = vec![("crate::".to_owned(), Vec::new())];
        for line in code.lines() {
            let line = line.trim();
            let decl = line
                .strip_prefix("pub mod ")
                .or_else(|| line.strip_prefix("pub(crate) mod "))
                .or_else(|| line.strip_prefix("mod "));
            if let Some(child) = decl.and_then(|d| d.strip_suffix(';')) {
                let mut prefix = here.clone();
                prefix.push(child.to_owned());
                starts.push((format!("{child}::"), prefix));
            }
        }
        let b = code.as_bytes();
        let mut out = Vec::new();
        for (needle, prefix) in starts {
            let mut from = 0;
            while let Some(at) = code[from..].find(&needle).map(|n| from + n) {
                from = at + needle.len();
                // A whole path start: not the tail of `other::needle` or `my_needle`.
                let before = at.checked_sub(1).map(|p| b[p]);
                if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b':') {
                    continue;
                }
                tree(b, from, prefix.clone(), &mut out);
            }
        }
        out
    }

    /// Which file each file depends on, by the longest module prefix of each path it names.
    fn graph() -> BTreeMap<String, BTreeSet<String>> {
        let modules = library();
        let mut edges = BTreeMap::new();
        for (module, (file, code)) in &modules {
            let targets: &mut BTreeSet<String> = edges.entry(file.clone()).or_default();
            for path in references(module, code) {
                let target = (0..=path.len())
                    .rev()
                    .find_map(|n| modules.get(&path[..n].join("::")))
                    .map(|(f, _)| f.clone());
                if let Some(target) = target.filter(|t| t != file) {
                    targets.insert(target);
                }
            }
        }
        edges
    }

    /// The groups of two or more files that depend on each other, each sorted.
    fn cycles(edges: &BTreeMap<String, BTreeSet<String>>) -> BTreeSet<Vec<String>> {
        let reach = |from: &String| {
            let mut seen = BTreeSet::new();
            let mut todo = vec![from.clone()];
            while let Some(f) = todo.pop() {
                for t in edges.get(&f).into_iter().flatten() {
                    if seen.insert(t.clone()) {
                        todo.push(t.clone());
                    }
                }
            }
            seen
        };
        let reaches: BTreeMap<_, _> = edges.keys().map(|f| (f.clone(), reach(f))).collect();
        edges
            .keys()
            .map(|f| {
                let mut group: Vec<String> = reaches[f]
                    .iter()
                    .filter(|g| reaches[*g].contains(f))
                    .cloned()
                    .collect();
                group.sort();
                group
            })
            .filter(|g| g.len() > 1)
            .collect()
    }

    /// Dependencies point one way: no file depends, directly or through others, on a file
    /// that depends on it. A file's test module is left out (tests may look anywhere), and
    /// so is `mod child;` alone; `use child::…`, `child::…` and `crate::…` paths count.
    #[test]
    fn no_module_cycles() {
        let edges = graph();
        // The reader must have found the graph, or the check proves nothing.
        let config = &edges["src/config/mod.rs"];
        assert!(config.contains("src/config/flags.rs"), "{config:?}");
        assert!(edges["src/source/mod.rs"].contains("src/source/sim.rs"));
        // `super::` would name a file this reader does not follow.
        for (module, (file, code)) in library() {
            assert!(!code.contains("super::"), "{file} ({module}) uses super::");
        }
        let describe = |group: &Vec<String>| {
            group
                .iter()
                .map(|f| {
                    let inside: Vec<_> = edges[f].iter().filter(|t| group.contains(t)).collect();
                    format!("  {f} -> {inside:?}")
                })
                .collect::<Vec<_>>()
                .join("\n")
        };
        let found: Vec<String> = cycles(&edges).iter().map(describe).collect();
        assert!(found.is_empty(), "module cycles:\n{}", found.join("\n"));
    }

    /// The reader itself: grouped, nested and renamed imports, child paths, and a cycle.
    #[test]
    fn the_reader_follows_use_trees() {
        let code = "use crate::{b::{self, C}, d::e as f};\nmod g;\nfn x() { g::y(); crate::h::I; }";
        let mut got: Vec<String> = references("a", code).iter().map(|p| p.join("::")).collect();
        got.sort();
        assert_eq!(got, ["a::g::y", "b", "b::C", "d::e", "h::I"]);
        let edge = |from: &str, to: &[&str]| {
            let to = to.iter().map(|t| (*t).to_owned()).collect();
            (from.to_owned(), to)
        };
        let edges = BTreeMap::from([
            edge("x", &["y"]),
            edge("y", &["x", "z"]),
            edge("z", &[]),
            edge("w", &["x"]),
        ]);
        let want = BTreeSet::from([vec!["x".to_owned(), "y".to_owned()]]);
        assert_eq!(cycles(&edges), want);
    }
}
