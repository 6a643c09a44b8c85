//! The layer rules of docs/ARCHITECTURE.md, checked on the source: a request flows
//! api -> domain -> store, and nothing reaches back up. A back-edge (the domain answering with
//! an HTTP status, the store knowing a domain type, a handler taking its state from the module
//! that builds the router) fails here, naming the file and what it mentions.

use std::path::{Path, PathBuf};

/// What no layer below the HTTP and socket edge may mention: the web framework, HTTP errors
/// and statuses (`crate::error` is `ApiError`), the server's shared state, and the edges.
const EDGE: &[&str] = &[
    "axum",
    "StatusCode",
    "ApiError",
    "ApiResult",
    "socketioxide",
    "crate::api",
    "crate::app",
    "crate::state",
    "crate::error",
    "crate::realtime",
];

/// What each layer may not mention: the edge, and every layer above it.
fn rules() -> Vec<(&'static str, Vec<&'static str>)> {
    let below_edge = |above: &[&'static str]| EDGE.iter().chain(above).copied().collect::<Vec<_>>();
    vec![
        ("domain", below_edge(&[])),
        ("store", below_edge(&["crate::domain"])),
        ("events", below_edge(&["crate::domain", "crate::store"])),
        ("api", vec!["crate::app"]),
        ("realtime", vec!["crate::app", "crate::api"]),
    ]
}

#[test]
fn no_layer_reaches_back_up() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut broken = Vec::new();
    for (layer, banned) in rules() {
        let files = rust_files(&src.join(layer));
        assert!(!files.is_empty(), "no source files under src/{layer}");
        for file in files {
            let source = std::fs::read_to_string(&file).expect("readable source");
            let mentioned = mentions(&source);
            for word in &banned {
                if contains_word(&mentioned, word) {
                    broken
                        .push(format!("src/{}: mentions `{word}`", file.strip_prefix(&src).unwrap_or(&file).display()));
                }
            }
        }
    }
    assert!(broken.is_empty(), "layer rules broken (docs/ARCHITECTURE.md, Invariants):\n{}", broken.join("\n"));
}

#[test]
fn grouped_imports_are_seen() {
    let source =
        "use crate::{\n    app::AppState, // a comment naming crate::api\n    domain::{self, chat::{ChatError}},\n};";
    let mentioned = mentions(source);
    assert!(contains_word(&mentioned, "crate::app"));
    assert!(contains_word(&mentioned, "crate::domain::chat::ChatError"));
    assert!(!contains_word(&mentioned, "crate::api"), "comments do not count");
    assert!(!contains_word("maximum", "axum"));
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// The source without its comments, followed by every path of its grouped `crate::{..}`
/// imports spelled out (`crate::{app::AppState}` also reads `crate::app::AppState`).
fn mentions(source: &str) -> String {
    let code: String = source.lines().map(|l| l.split("//").next().unwrap_or("")).collect::<Vec<_>>().join("\n");
    let mut out = code.clone();
    let mut rest = code.as_str();
    while let Some(at) = rest.find("crate::{") {
        let inner = &rest[at + "crate::{".len()..];
        let end = closing_brace(inner);
        for path in expand("crate", &inner[..end]) {
            out.push('\n');
            out.push_str(&path);
        }
        rest = &inner[end..];
    }
    out
}

/// Where the brace closing an opened group is, in `s` (which starts after the `{`).
fn closing_brace(s: &str) -> usize {
    let mut depth = 0;
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => return i,
            '}' => depth -= 1,
            _ => {}
        }
    }
    s.len()
}

/// `prefix::item` for each top-level item of a group, groups within it spelled out too.
fn expand(prefix: &str, group: &str) -> Vec<String> {
    let mut items = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&group[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&group[start..]);
    let mut paths = Vec::new();
    for item in items.into_iter().map(str::trim).filter(|i| !i.is_empty()) {
        match item.split_once("::{") {
            Some((head, tail)) => {
                let inner = &tail[..closing_brace(tail)];
                paths.extend(expand(&format!("{prefix}::{head}"), inner));
            }
            None if item == "self" => paths.push(prefix.to_owned()),
            None => paths.push(format!("{prefix}::{item}")),
        }
    }
    paths
}

/// `word` in `text`, not as part of a longer identifier (`axum` is not in `maximum`).
fn contains_word(text: &str, word: &str) -> bool {
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    text.match_indices(word).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + word.len()..].chars().next();
        !before.is_some_and(ident) && !after.is_some_and(ident)
    })
}
