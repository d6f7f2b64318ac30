//! The crate's layers, checked: every module is in [`LAYERS`], imports only from its own layer
//! or lower ones, and no two modules import each other, directly or around a circle. Handlers
//! under `api/` import the shared helpers of `api/` but never another handler. See
//! `docs/ARCHITECTURE.md`.
//!
//! The graph is read from the sources: `use` items and paths written in code (`crate::x`,
//! `super::x`, a child module named from its parent), tests excluded.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Each module (by path below the crate; `crate` is lib.rs and main.rs) and its layer. A
/// prefix ending in `::` covers every module below it.
const LAYERS: &[(&str, u8)] = &[
    // 0: parts that know nothing of a request or of the application's state.
    ("http", 0),
    ("http::", 0),
    ("config", 0),
    ("deployment", 0),
    ("authz", 0),
    ("actors", 0),
    ("archive", 0),
    ("proxy", 0),
    ("tls", 0),
    ("traces", 0),
    ("version", 0),
    ("search", 0),
    ("tailnet", 0),
    ("derp", 0),
    ("derp_mesh", 0),
    ("metrics", 0),
    ("ratelimit", 0),
    ("watch", 0),
    ("template_stats", 0),
    ("render_cache", 0),
    ("layers", 0),
    // 1: what every request and task shares.
    ("state", 1),
    // 2: below HTTP: what the server does, and how rows become answers.
    ("domain", 2),
    ("domain::", 2),
    ("views", 2),
    ("views::", 2),
    // 3: HTTP in and out, the agent API, and the background executors.
    ("auth", 3),
    ("csrf", 3),
    ("middleware", 3),
    ("binaries", 3),
    ("swagger", 3),
    ("agentapi", 3),
    ("lifecycle", 3),
    ("reaper", 3),
    ("api", 3),
    ("api::", 3),
    // 4: puts it all together.
    ("server", 4),
    ("crate", 4),
];

/// Modules of `api/` that handlers share; any other `api::x` is a handler, which only `api`
/// itself (and the composition root) imports.
const API_SHARED: &[&str] = &[
    "api::resolve",
    "api::sessions",
    "api::job_endpoints",
    "api::acl",
    "api::examples",
    "api::routes",
    "api::openapi",
];

fn layer(module: &str) -> Option<u8> {
    LAYERS
        .iter()
        .find(|(name, _)| *name == module || (name.ends_with("::") && module.starts_with(name)))
        .map(|(_, layer)| *layer)
}

/// Module name (`api::workspaces`) → source, tests left out.
fn modules(src: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut dirs = vec![src.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("the source directory is readable") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path
                .strip_prefix(src)
                .expect("below src")
                .with_extension("");
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
            let name = if parts.is_empty() {
                "crate".to_string()
            } else {
                parts.join("::")
            };
            let text = std::fs::read_to_string(&path).expect("a readable source file");
            let code = text.split("#[cfg(test)]\nmod tests").next().unwrap_or("");
            let code: String = code
                .lines()
                .map(|l| l.split("//").next().unwrap_or(""))
                .collect::<Vec<_>>()
                .join("\n");
            out.entry(name).or_insert_with(String::new).push_str(&code);
        }
    }
    out
}

/// The paths (`crate::a::b`, `super::c`, `d::e`) written in `code`, with `use` groups
/// (`a::{b, c::d}`) expanded.
fn paths(code: &str) -> Vec<String> {
    fn expand(prefix: &str, tree: &str, out: &mut Vec<String>) {
        let tree = tree.trim();
        if let Some(open) = tree.find('{') {
            let head = format!("{prefix}{}", &tree[..open]);
            let Some(close) = tree.rfind('}').filter(|&c| c > open) else {
                return;
            };
            let inner = &tree[open + 1..close];
            let (mut depth, mut start) = (0, 0);
            for (i, ch) in inner.char_indices() {
                match ch {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        expand(&head, &inner[start..i], out);
                        start = i + 1;
                    }
                    _ => {}
                }
            }
            expand(&head, &inner[start..], out);
        } else if !tree.is_empty() {
            out.push(format!("{prefix}{tree}"));
        }
    }
    let mut out = Vec::new();
    // `use` items start a line (perhaps after `pub` or `pub(crate)`).
    let uses = code.lines().enumerate().filter_map(|(n, line)| {
        let line = line.trim_start();
        let line = line
            .strip_prefix("pub(crate) ")
            .or(line.strip_prefix("pub "))
            .unwrap_or(line);
        line.starts_with("use ").then_some(n)
    });
    let lines: Vec<&str> = code.lines().collect();
    for n in uses {
        let item = lines[n..].join("\n");
        let item = item.trim_start();
        let item = item[item.find("use ").unwrap_or(0) + 4..].to_string();
        if let Some(end) = item.find(';') {
            let tree: String = item[..end].chars().filter(|c| !c.is_whitespace()).collect();
            expand("", &tree, &mut out);
        }
    }
    // Paths in code: identifier chains joined by `::`.
    let bytes = code.as_bytes();
    let is_ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut i = 0;
    while i < bytes.len() {
        if is_ident(bytes[i]) && (i == 0 || !(is_ident(bytes[i - 1]) || bytes[i - 1] == b':')) {
            let start = i;
            while i < bytes.len() && (is_ident(bytes[i]) || bytes[i] == b':') {
                i += 1;
            }
            let chain = &code[start..i];
            if chain.contains("::") {
                out.push(chain.trim_end_matches(':').to_string());
            }
        } else {
            i += 1;
        }
    }
    out
}

/// The module of `names` that `path`, written in `from`, refers to (the longest that
/// matches), if it is one of this crate's.
fn target(from: &str, path: &str, names: &BTreeSet<String>) -> Option<String> {
    let segs: Vec<&str> = path.split("::").collect();
    let here: Vec<&str> = if from == "crate" {
        Vec::new()
    } else {
        from.split("::").collect()
    };
    let (mut base, rest): (Vec<&str>, &[&str]) = match segs.first() {
        Some(&"crate") => (Vec::new(), &segs[1..]),
        Some(&"super") => {
            let mut base = here.clone();
            base.pop();
            let mut rest = &segs[1..];
            while rest.first() == Some(&"super") {
                base.pop();
                rest = &rest[1..];
            }
            (base, rest)
        }
        Some(&"self") => (here.clone(), &segs[1..]),
        // A child of `from`, named plainly.
        Some(_) => (here.clone(), &segs[..]),
        None => return None,
    };
    let mut found = None;
    for seg in rest {
        base.push(seg);
        let name = base.join("::");
        if names.contains(&name) {
            found = Some(name);
        }
    }
    found
}

/// Module → the modules it imports.
fn graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let modules = modules(src);
    let names: BTreeSet<String> = modules.keys().cloned().collect();
    let mut graph = BTreeMap::new();
    for (name, code) in &modules {
        let mut deps = BTreeSet::new();
        for path in paths(code) {
            if let Some(t) = target(name, &path, &names) {
                let inside = name.starts_with(&format!("{t}::"));
                if t != *name && !inside {
                    deps.insert(t);
                }
            }
        }
        graph.insert(name.clone(), deps);
    }
    graph
}

/// A path from `to` back to `from`, if one exists.
fn path_back(
    graph: &BTreeMap<String, BTreeSet<String>>,
    from: &str,
    to: &str,
) -> Option<Vec<String>> {
    let mut seen = BTreeSet::new();
    let mut stack = vec![vec![to.to_string()]];
    while let Some(path) = stack.pop() {
        let last = path.last().expect("paths are not empty").clone();
        if last == from {
            return Some(path);
        }
        if !seen.insert(last.clone()) {
            continue;
        }
        for next in graph.get(&last).into_iter().flatten() {
            let mut longer = path.clone();
            longer.push(next.clone());
            stack.push(longer);
        }
    }
    None
}

fn problems(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    let mut out = Vec::new();
    for (module, deps) in graph {
        let Some(mine) = layer(module) else {
            out.push(format!(
                "{module} has no layer: add it to LAYERS in layers.rs"
            ));
            continue;
        };
        for dep in deps {
            if let Some(theirs) = layer(dep) {
                if theirs > mine {
                    out.push(format!(
                        "{module} (layer {mine}) imports {dep} (layer {theirs}), a higher layer"
                    ));
                }
            }
            let handler = dep.starts_with("api::") && !API_SHARED.contains(&dep.as_str());
            // `api` mounts the handlers; layer 4 mounts some again (the metrics listener).
            if handler && module != "api" && mine < 4 {
                out.push(format!(
                    "{module} imports the handler module {dep}: move what they share into \
                     views, domain or a shared api module"
                ));
            }
            if let Some(back) = path_back(graph, module, dep) {
                out.push(format!(
                    "{module} imports {dep}, which imports it back: {}",
                    back.join(" -> ")
                ));
            }
        }
    }
    out
}

#[test]
fn modules_keep_to_their_layers_without_cycles() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = graph(&src);
    assert!(graph.len() > 40, "the sources were read: {graph:?}");
    assert!(graph["api::workspaces"].contains("views::workspaces"));
    let problems = problems(&graph);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn a_cycle_a_climb_and_a_handler_import_are_each_found() {
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut edge = |a: &str, b: &str| {
        g.entry(a.into()).or_default().insert(b.into());
        g.entry(b.into()).or_default();
    };
    edge("views::jobs", "views::builds");
    edge("views::builds", "views::jobs");
    edge("state", "api::resolve");
    edge("api::builds", "api::workspaces");
    edge("nowhere", "state");
    let found = problems(&g).join("\n");
    for expected in [
        "views::jobs imports views::builds, which imports it back",
        "state (layer 1) imports api::resolve (layer 3)",
        "api::builds imports the handler module api::workspaces",
        "nowhere has no layer",
    ] {
        assert!(
            found.contains(expected),
            "{expected:?} missing from:\n{found}"
        );
    }
}

#[test]
fn paths_are_read_from_use_groups_and_code() {
    let code = "use crate::{a::b, c::{d, e::F}};\nfn f() { super::g::h(); x::y }";
    let p = paths(code);
    for expected in [
        "crate::a::b",
        "crate::c::d",
        "crate::c::e::F",
        "super::g::h",
        "x::y",
    ] {
        assert!(p.iter().any(|x| x == expected), "{expected} in {p:?}");
    }
}
