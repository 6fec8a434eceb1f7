//! The layout rule of `src/` and `train/src/` (docs/layout.md): no module imports another that
//! imports it back, directly or through others. Checked on the source text: every `crate::…`
//! path outside `#[cfg(test)]` modules is an edge from the file it appears in to the file that
//! defines the module it names, and both the file graph and the graph of top-level modules
//! (`nn`, `energy`, …) must be acyclic.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `src/nn/conv.rs` → `["nn", "conv"]`; `src/nn/mod.rs` → `["nn"]`; `src/lib.rs` → `[]`.
fn module_of(root: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(root).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

/// The code before the first `#[cfg(test)]` module (unit tests may reach anywhere), without
/// comment lines (a doc link is not an import).
fn non_test_code(text: &str) -> String {
    let code = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => text,
    };
    code.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every `crate::a::b::…` path, as its segments (identifiers only), including the paths inside
/// `use crate::{a, b::c}` groups.
fn crate_paths(text: &str) -> Vec<Vec<String>> {
    let mut out = vec![];
    for (i, _) in text.match_indices("crate::") {
        // Only the keyword, not the end of a longer identifier.
        if i > 0 && text[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let rest = &text[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                out.push(segments(item.trim()));
            }
        } else {
            out.push(segments(rest));
        }
    }
    out.retain(|p| !p.is_empty());
    out
}

fn segments(s: &str) -> Vec<String> {
    let mut parts = vec![];
    let mut rest = s;
    loop {
        let end = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        if end == 0 {
            break;
        }
        parts.push(rest[..end].to_string());
        match rest[end..].strip_prefix("::") {
            Some(r) if !r.starts_with('{') => rest = r,
            _ => break,
        }
    }
    parts
}

/// The longest prefix of `path` that names a module of `modules`.
fn target(modules: &BTreeSet<Vec<String>>, path: &[String]) -> Option<Vec<String>> {
    (1..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|p| modules.contains(p))
}

/// A cycle in `graph`, if there is one (depth-first search with colours).
fn find_cycle(graph: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>) -> Option<Vec<String>> {
    fn visit(
        node: &Vec<String>,
        graph: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        state: &mut BTreeMap<Vec<String>, u8>,
        stack: &mut Vec<Vec<String>>,
    ) -> Option<Vec<String>> {
        state.insert(node.clone(), 1);
        stack.push(node.clone());
        for next in graph.get(node).into_iter().flatten() {
            match state.get(next).copied().unwrap_or(0) {
                1 => {
                    let start = stack.iter().position(|n| n == next).unwrap();
                    let mut cycle: Vec<String> =
                        stack[start..].iter().map(|n| n.join("::")).collect();
                    cycle.push(next.join("::"));
                    return Some(cycle);
                }
                0 => {
                    if let Some(c) = visit(next, graph, state, stack) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(node.clone(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for node in graph.keys() {
        if state.get(node).copied().unwrap_or(0) == 0 {
            if let Some(c) = visit(node, graph, &mut state, &mut vec![]) {
                return Some(c);
            }
        }
    }
    None
}

/// Checks the crate rooted at `root` (`src/` of a package).
fn check_crate(root: &Path) {
    let mut files = vec![];
    rust_files(root, &mut files);
    let modules: BTreeSet<Vec<String>> = files.iter().map(|f| module_of(root, f)).collect();
    let mut file_graph: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    let mut top_graph: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for file in &files {
        let from = module_of(root, file);
        if from.is_empty() {
            continue; // lib.rs / main.rs declare and re-export everything
        }
        let text = std::fs::read_to_string(file).unwrap();
        for path in crate_paths(&non_test_code(&text)) {
            let Some(to) = target(&modules, &path) else {
                continue; // an item re-exported by lib.rs, e.g. crate::Error
            };
            // A module may use its own children (mod.rs declaring them) without a cycle.
            if to == from || to.starts_with(&from) {
                continue;
            }
            file_graph
                .entry(from.clone())
                .or_default()
                .insert(to.clone());
            if from[0] != to[0] {
                top_graph
                    .entry(vec![from[0].clone()])
                    .or_default()
                    .insert(vec![to[0].clone()]);
            }
        }
    }
    assert!(
        file_graph.values().map(BTreeSet::len).sum::<usize>() > 3,
        "{}: found too few imports to be checking anything",
        root.display()
    );
    if let Some(cycle) = find_cycle(&file_graph) {
        panic!("{}: module cycle {}", root.display(), cycle.join(" -> "));
    }
    if let Some(cycle) = find_cycle(&top_graph) {
        panic!(
            "{}: top-level module cycle {}",
            root.display(),
            cycle.join(" -> ")
        );
    }
}

#[test]
fn library_modules_form_no_cycle() {
    check_crate(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
}

#[test]
fn trainer_modules_form_no_cycle() {
    check_crate(&Path::new(env!("CARGO_MANIFEST_DIR")).join("train/src"));
}

#[test]
fn the_checker_finds_a_cycle() {
    let mut graph: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    let a = vec!["a".to_string()];
    let b = vec!["b".to_string()];
    graph.entry(a.clone()).or_default().insert(b.clone());
    assert!(find_cycle(&graph).is_none());
    graph.entry(b).or_default().insert(a);
    assert_eq!(find_cycle(&graph).unwrap(), ["a", "b", "a"]);
    assert_eq!(
        crate_paths("use crate::{x::y, z};\nlet _ = crate::w::v::f();"),
        [vec!["x", "y"], vec!["z"], vec!["w", "v", "f"]]
    );
}
