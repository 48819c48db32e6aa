//! No two modules of `src/` import each other: the crate's modules form a layered graph,
//! with `identity` (and `clock`) at the bottom. Read from the source, so that a new cycle
//! fails here, not in a review.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Top-level module → the top-level modules its code (not its comments) names.
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    read_imports().0
}

/// The graph, and the places that name an item through the crate root (`crate::Registry`)
/// instead of the module that owns it.
fn read_imports() -> (BTreeMap<String, BTreeSet<String>>, Vec<String>) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap();
    // `pub use module::{A, B};` at the root: `crate::A` means `module`.
    let mut root_items: BTreeMap<String, String> = BTreeMap::new();
    for line in lib.lines().map(str::trim) {
        let Some(rest) = line.strip_prefix("pub use ") else {
            continue;
        };
        let (module, items) = rest.trim_end_matches(';').split_once("::").unwrap();
        for item in items.trim_matches(|c| c == '{' || c == '}').split(',') {
            root_items.insert(item.trim().to_owned(), module.to_owned());
        }
    }
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut through_root = Vec::new();
    let mut files = vec![src.clone()];
    while let Some(path) = files.pop() {
        if path.is_dir() {
            files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        let relative = path.strip_prefix(&src).unwrap();
        let top = relative
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_str()
            .unwrap()
            .trim_end_matches(".rs")
            .to_owned();
        if top == "lib" {
            continue;
        }
        let code: String = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .filter(|line| !line.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        let mut names = BTreeSet::new();
        for (at, _) in code.match_indices("crate::") {
            let rest = &code[at + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                let group = &group[..group.find('}').unwrap()];
                names.extend(
                    group
                        .split(',')
                        .map(|item| item.trim().split("::").next().unwrap().to_owned()),
                );
            } else {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                names.insert(name);
            }
        }
        let deps = graph.entry(top.clone()).or_default();
        for name in names.into_iter().filter(|n| !n.is_empty()) {
            if root_items.contains_key(&name) {
                through_root.push(format!("{}: crate::{name}", relative.display()));
            }
            let module = root_items.get(&name).cloned().unwrap_or(name);
            if module != top {
                deps.insert(module);
            }
        }
    }
    (graph, through_root)
}

#[test]
fn no_two_modules_import_each_other() {
    let graph = imports();
    let mut cycles = Vec::new();
    for (module, deps) in &graph {
        for dep in deps {
            if module < dep && graph.get(dep).is_some_and(|back| back.contains(module)) {
                cycles.push(format!("{module} <-> {dep}"));
            }
        }
    }
    assert!(cycles.is_empty(), "module cycles: {cycles:?}\n{graph:#?}");
    assert!(
        graph["registry"].contains("store"),
        "the parser sees imports: {graph:#?}"
    );
}

#[test]
fn identity_and_clock_are_leaves() {
    let graph = imports();
    for leaf in ["identity", "clock"] {
        assert_eq!(
            graph.get(leaf),
            Some(&BTreeSet::new()),
            "{leaf} imports nothing"
        );
    }
}

#[test]
fn nothing_imports_the_crate_root_back() {
    let (_, through_root) = read_imports();
    assert!(
        through_root.is_empty(),
        "name these items by the module that owns them: {through_root:#?}"
    );
}

/// The boundaries of the crate's map (`lib.rs`): what each layer may not know.
#[test]
fn the_layers_keep_their_boundaries() {
    let graph = imports();
    let forbidden = [
        // Rendering a rejection knows nothing of who records it.
        ("reject", "activity"),
        // The registry verifies; answering requests is the layer's and reject's job.
        ("registry", "reject"),
        ("registry", "layer"),
        // A store keeps rows; it never calls back into the registry.
        ("store", "registry"),
        // The login routes share the JSON machinery (`api`), not the management API.
        ("exchange", "admin"),
        // The hot path never reaches the HTTP surfaces.
        ("registry", "admin"),
        ("registry", "exchange"),
        ("layer", "admin"),
        // Policies are what a key may do: a leaf that stores keep and the registry
        // meters, knowing neither.
        ("policy", "store"),
        ("policy", "registry"),
        ("policy", "layer"),
        // The scanning intake revokes through the registry; the hot path never knows it.
        ("registry", "scanning"),
        ("layer", "scanning"),
        ("scanning", "admin"),
    ];
    let broken: Vec<_> = forbidden
        .iter()
        .filter(|(from, to)| graph.get(*from).is_some_and(|deps| deps.contains(*to)))
        .collect();
    assert!(
        broken.is_empty(),
        "imports across a boundary: {broken:?}\n{graph:#?}"
    );
    // The rules see real edges: these exist.
    for (from, to) in [
        ("layer", "registry"),
        ("reject", "registry"),
        ("exchange", "api"),
        ("store", "policy"),
        ("registry", "policy"),
    ] {
        assert!(
            graph[from].contains(to),
            "{from} -> {to} expected: {graph:#?}"
        );
    }
}
