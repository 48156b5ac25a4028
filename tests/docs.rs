//! The documentation stays true to the repository: every reference to a document resolves
//! (file and anchor), every test `docs/upstream.md` names exists, the README's embedding excerpt
//! is code from `examples/embed.rs`, and CI runs the README's test command.
//!
//! Files this test reads may be absent from a packaged crate; checks that need them are skipped
//! with a message.

extern crate alloc;

use alloc::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> Option<String> {
    fs::read_to_string(path).ok()
}

/// Every file under `dir` (recursively) whose name ends with `ext`.
fn files_under(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if path.is_dir() {
            if name != "target" && name != "node_modules" && !name.starts_with('.') {
                files_under(&path, ext, out);
            }
        } else if name.ends_with(ext) {
            out.push(path);
        }
    }
}

/// The documents and sources whose references must resolve.
fn checked_files() -> Vec<PathBuf> {
    let root = root();
    let mut files = Vec::new();
    for dir in ["src", "tests", "benches", "examples"] {
        files_under(&root.join(dir), ".rs", &mut files);
    }
    files_under(&root.join("docs"), ".md", &mut files);
    for name in ["README.md", "BENCHMARKS.md", "CHANGELOG.md"] {
        let path = root.join(name);
        if path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens.
fn anchor_of(heading: &str) -> String {
    heading
        .trim()
        .chars()
        .filter_map(|c| {
            if c.is_alphanumeric() || c == '-' || c == '_' {
                Some(c.to_ascii_lowercase())
            } else if c == ' ' {
                Some('-')
            } else {
                None
            }
        })
        .collect()
}

/// The anchors of a markdown document (headings outside code fences).
fn anchors(markdown: &str) -> BTreeSet<String> {
    let mut in_fence = false;
    let mut out = BTreeSet::new();
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
        } else if !in_fence && line.starts_with('#') {
            out.insert(anchor_of(line.trim_start_matches('#')));
        }
    }
    out
}

fn is_path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/')
}

fn is_anchor_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-')
}

/// Every markdown file name (with an optional `#anchor`) mentioned in `text`.
fn md_references(text: &str) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(pos) = rest.find(".md") {
        let before = &rest[..pos];
        let start = before
            .char_indices()
            .rev()
            .take_while(|&(_, c)| is_path_char(c))
            .last()
            .map_or(pos, |(i, _)| i);
        let after = &rest[pos + 3..];
        // `.md` ends the name unless a name character follows (a sentence's full stop does not).
        let mut next = after.chars();
        let continues = match next.next() {
            Some('.') => next.next().is_some_and(|c| c.is_ascii_alphanumeric()),
            Some(c) => is_path_char(c),
            None => false,
        };
        if start < pos && !continues {
            let path = rest[start..pos + 3].trim_start_matches("./").to_string();
            let anchor = after.strip_prefix('#').map(|a| {
                a.chars()
                    .take_while(|&c| is_anchor_char(c))
                    .collect::<String>()
            });
            out.push((path, anchor.filter(|a| !a.is_empty())));
        }
        rest = &rest[pos + 3..];
    }
    out
}

/// Where a reference written in `from` points: relative to the crate root, or to `from`'s
/// directory (markdown links).
fn resolve(from: &Path, reference: &str) -> Option<PathBuf> {
    let root = root();
    [root.join(reference), from.parent()?.join(reference)]
        .into_iter()
        .find(|p| p.is_file())
}

#[test]
fn every_document_reference_resolves() {
    let root = root();
    if !root.join("docs").is_dir() {
        eprintln!("docs/ is absent (packaged crate?): skipping the reference check");
        return;
    }
    let mut dead = Vec::new();
    for file in checked_files() {
        let Some(text) = read(&file) else { continue };
        for (path, anchor) in md_references(&text) {
            if path.starts_with("http") || path.contains("//") {
                continue;
            }
            let shown = file.strip_prefix(&root).unwrap_or(&file).display();
            let Some(target) = resolve(&file, &path) else {
                dead.push(format!("{shown}: {path} does not exist"));
                continue;
            };
            if let Some(anchor) = anchor {
                let known = anchors(&read(&target).unwrap_or_default());
                if !known.contains(&anchor) {
                    dead.push(format!("{shown}: {path}#{anchor} has no such heading"));
                }
            }
        }
        // In-document links `](#anchor)` of markdown files.
        if file.extension().is_some_and(|e| e == "md") {
            let own = anchors(&text);
            for part in text.split("](#").skip(1) {
                let anchor: String = part.chars().take_while(|&c| is_anchor_char(c)).collect();
                if !own.contains(&anchor) {
                    let shown = file.strip_prefix(&root).unwrap_or(&file).display();
                    dead.push(format!("{shown}: #{anchor} has no such heading"));
                }
            }
        }
    }
    assert!(dead.is_empty(), "dead references:\n{}", dead.join("\n"));
}

/// The test functions named after `Test:`/`Tests:` in each paragraph of `docs/upstream.md`.
fn named_tests(markdown: &str) -> Vec<String> {
    let mut out = Vec::new();
    for paragraph in markdown.split("\n\n") {
        let Some(pos) = paragraph.find("Test") else {
            continue;
        };
        for (i, part) in paragraph[pos..].split('`').enumerate() {
            let is_ident = !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
            if i % 2 == 1 && is_ident && part.contains('_') {
                out.push(part.to_string());
            }
        }
    }
    out
}

#[test]
fn every_test_named_in_the_upstream_comparison_exists() {
    let root = root();
    let Some(upstream) = read(&root.join("docs/upstream.md")) else {
        eprintln!("docs/upstream.md is absent (packaged crate?): skipping");
        return;
    };
    let mut sources = String::new();
    let mut files = Vec::new();
    files_under(&root.join("tests"), ".rs", &mut files);
    files_under(&root.join("src"), ".rs", &mut files);
    for file in files {
        sources.push_str(&read(&file).unwrap_or_default());
    }
    let names = named_tests(&upstream);
    assert!(names.len() >= 20, "too few tests found: {names:?}");
    let missing: Vec<&String> = names
        .iter()
        .filter(|n| !sources.contains(&format!("fn {n}(")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/upstream.md names missing tests: {missing:?}"
    );
}

/// `code` without comments, whitespace and trailing commas, so that a one-line excerpt matches
/// the same code formatted over several lines.
fn normalized(code: &str) -> String {
    let mut out = String::new();
    for line in code.lines() {
        let line = line.find("//").map_or(line, |i| &line[..i]);
        out.extend(line.chars().filter(|c| !c.is_whitespace()));
    }
    out.replace(",}", "}").replace(",)", ")").replace(",]", "]")
}

/// The first fenced `rust` block after the `## Embedding` heading.
fn embedding_excerpt(readme: &str) -> Option<&str> {
    let section = &readme[readme.find("## Embedding")?..];
    let start = section.find("```rust")?;
    let body = &section[start..];
    let body = &body[body.find('\n')? + 1..];
    Some(&body[..body.find("```")?])
}

#[test]
fn readme_embedding_excerpt_is_code_from_examples_embed() {
    let root = root();
    let (Some(readme), Some(example)) = (
        read(&root.join("README.md")),
        read(&root.join("examples/embed.rs")),
    ) else {
        eprintln!("README.md or examples/embed.rs is absent: skipping");
        return;
    };
    let excerpt = embedding_excerpt(&readme).expect("README has a rust block under ## Embedding");
    let example = normalized(&example);
    let missing: Vec<&str> = excerpt
        .lines()
        .filter(|line| !example.contains(&normalized(line)))
        .collect();
    assert!(
        missing.is_empty(),
        "README embedding lines not in examples/embed.rs:\n{}",
        missing.join("\n")
    );
}

#[test]
fn ci_runs_the_readme_test_command() {
    let root = root();
    let (Some(readme), Some(ci)) = (read(&root.join("README.md")), read(&root.join(".ci/run")))
    else {
        eprintln!("README.md or .ci/run is absent (packaged crate?): skipping");
        return;
    };
    let command = "cargo test --all-features";
    assert!(readme.contains(command), "README lost its test command");
    assert!(
        ci.lines().any(|l| l.trim() == command),
        ".ci/run does not run the README's test command"
    );
}

#[test]
fn anchors_follow_github() {
    assert_eq!(anchor_of(" Persist, then ack"), "persist-then-ack");
    assert_eq!(
        anchor_of("Re-ack heals lost acks"),
        "re-ack-heals-lost-acks"
    );
    assert_eq!(
        anchor_of("Preconditions: what the embedder must provide"),
        "preconditions-what-the-embedder-must-provide"
    );
    assert_eq!(
        md_references("see `docs/design.md#defaults`, and README.md."),
        [
            ("docs/design.md".to_string(), Some("defaults".to_string())),
            ("README.md".to_string(), None)
        ]
    );
}
