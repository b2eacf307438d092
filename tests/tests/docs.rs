//! The repository stands on its own: a user who clones it gets every document it points to.
//!
//! - No file of the repository refers to files outside it (design notes, references or paths of
//!   the machine it was written on).
//! - Every relative link in a Markdown file (from the file's directory, or from the repository's
//!   root when it starts with `/`) leads to a file or directory of the repository, and a link to a
//!   heading (`file.md#heading`) to a heading that exists.
//! - Every repository path that docs/*.md quotes in backticks exists.
//! - README.md links to docs/architecture.md.
//!
//! Pure: needs neither root nor a cluster.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};

/// Texts that point outside the repository. Each is spelled in two pieces so that this file,
/// which is checked too, does not match itself.
const OUTSIDE: &[&str] = &[
    concat!("../", "shared"),
    concat!("shared/", "DESIGN"),
    concat!("shared/", "STYLE"),
    concat!("shared/", "reference"),
    concat!("shared/", "seeds"),
    concat!("DESIGN", ".md"),
    concat!("STYLE", ".md"),
    concat!("k8s-", "behaviour"),
    concat!("reference/", "anchors"),
    concat!("anchors", ".md"),
    concat!("reference ", "§"),
    concat!("/work", "/"),
];

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

/// The repository's files, relative to its root: what git tracks plus new files it does not
/// ignore; without git (an unpacked archive), every file of the tree outside `target/` and `.git/`.
fn repo_files(root: &Path) -> Vec<PathBuf> {
    let listed = std::process::Command::new("git")
        .arg("-C")
        .arg(root)
        .args(["ls-files", "-z", "--cached", "--others", "--exclude-standard"])
        .output();
    let mut files: Vec<PathBuf> = match listed {
        Ok(out) if out.status.success() => out
            .stdout
            .split(|b| *b == 0)
            .filter(|p| !p.is_empty())
            .map(|p| PathBuf::from(String::from_utf8_lossy(p).into_owned()))
            .collect(),
        _ => {
            let mut found = Vec::new();
            walk(root, Path::new(""), &mut found);
            found
        }
    };
    // Listed but deleted in the work tree: nothing to read.
    files.retain(|f| root.join(f).is_file());
    files.sort();
    files.dedup();
    assert!(files.iter().any(|f| f == Path::new("README.md")), "found no README.md under {}", root.display());
    files
}

fn walk(root: &Path, rel: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(root.join(rel)) else { return };
    for e in entries.flatten() {
        let name = e.file_name();
        let path = rel.join(&name);
        match e.file_type() {
            Ok(t) if t.is_dir() => {
                if rel.as_os_str().is_empty() && (name == "target" || name == ".git") {
                    continue;
                }
                walk(root, &path, out);
            }
            Ok(t) if t.is_file() => out.push(path),
            _ => {}
        }
    }
}

/// The file's text, or None for a binary file.
fn text_of(root: &Path, file: &Path) -> Option<String> {
    let bytes = std::fs::read(root.join(file)).unwrap_or_else(|e| panic!("reading {}: {e}", file.display()));
    (!bytes.contains(&0)).then(|| String::from_utf8_lossy(&bytes).into_owned())
}

fn markdown_files(files: &[PathBuf]) -> Vec<&PathBuf> {
    files.iter().filter(|f| f.extension().is_some_and(|e| e == "md")).collect()
}

/// Each line of a Markdown text outside fenced code blocks, with inline code spans blanked out
/// (`keep_code`: kept), and its line number.
fn prose_lines(text: &str, keep_code: bool) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut fence: Option<&str> = None;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        let marker = ["```", "~~~"].into_iter().find(|m| trimmed.starts_with(m));
        match (fence, marker) {
            (None, Some(m)) => fence = Some(m),
            (Some(f), Some(m)) if f == m => fence = None,
            (None, None) if keep_code => out.push((i + 1, line.to_string())),
            (None, None) => out.push((i + 1, without_code_spans(line))),
            _ => {}
        }
    }
    out
}

fn without_code_spans(line: &str) -> String {
    line.split('`').enumerate().map(|(i, part)| if i % 2 == 0 { part } else { "" }).collect::<Vec<_>>().join("")
}

/// The targets of a line's inline links and images (`[text](target "title")`) and of a
/// reference definition (`[label]: target`).
fn link_targets(line: &str) -> Vec<String> {
    let mut targets = Vec::new();
    let trimmed = line.trim_start();
    if trimmed.starts_with('[') {
        if let Some((_, rest)) = trimmed.split_once("]:") {
            if let Some(t) = rest.split_whitespace().next() {
                targets.push(t.trim_matches(|c| c == '<' || c == '>').to_string());
            }
        }
    }
    let mut rest = line;
    while let Some(at) = rest.find("](") {
        let after = &rest[at + 2..];
        let Some(end) = after.find(')') else { break };
        let inside = after[..end].trim();
        let target = inside.split_whitespace().next().unwrap_or("");
        targets.push(target.trim_matches(|c| c == '<' || c == '>').to_string());
        rest = &after[end..];
    }
    targets
}

fn is_external(target: &str) -> bool {
    target.contains("://") || target.starts_with("mailto:")
}

/// `base.join(rel)` with `.` and `..` resolved without touching the disk; None when it climbs
/// above the repository's root.
fn normalize(base: &Path, rel: &str) -> Option<PathBuf> {
    let mut parts: Vec<String> = Vec::new();
    for c in base.join(rel).components() {
        match c {
            Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(parts.iter().collect())
}

/// GitHub's anchor for a heading: lower case, punctuation dropped (`-` and `_` kept), spaces
/// turned into `-`; link syntax counts as its text.
fn slug(heading: &str) -> String {
    let mut text = String::new();
    let mut rest = heading;
    while let Some(open) = rest.find('[') {
        let Some(mid) = rest[open..].find("](") else { break };
        let Some(close) = rest[open + mid..].find(')') else { break };
        text.push_str(&rest[..open]);
        text.push_str(&rest[open + 1..open + mid]);
        rest = &rest[open + mid + close + 1..];
    }
    text.push_str(rest);
    text.trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | ' '))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors of a Markdown text's headings, with GitHub's `-1`, `-2` suffixes for repeats.
fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut out = BTreeSet::new();
    for (_, line) in prose_lines(text, true) {
        let hashes = line.chars().take_while(|c| *c == '#').count();
        if !(1..=6).contains(&hashes) || !line[hashes..].starts_with(' ') {
            continue;
        }
        let base = slug(line[hashes..].trim().trim_end_matches('#'));
        let n = seen.entry(base.clone()).or_insert(0);
        out.insert(if *n == 0 { base.clone() } else { format!("{base}-{n}") });
        *n += 1;
    }
    out
}

#[test]
fn no_file_refers_to_files_outside_the_repository() {
    let root = repo_root();
    let mut found = Vec::new();
    for file in repo_files(&root) {
        let Some(text) = text_of(&root, &file) else { continue };
        for (i, line) in text.lines().enumerate() {
            if let Some(marker) = OUTSIDE.iter().find(|m| line.contains(**m)) {
                found.push(format!("{}:{}: {marker:?} in: {}", file.display(), i + 1, line.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "these lines refer to files outside the repository, which a user who clones emu does not have; \
         point to docs/architecture.md or another file of the repository instead, or say it in place:\n{}",
        found.join("\n")
    );
}

#[test]
fn markdown_links_lead_to_files_and_headings_of_the_repository() {
    let root = repo_root();
    let files = repo_files(&root);
    let mut broken = Vec::new();
    let mut checked = 0;
    for md in markdown_files(&files) {
        let text = text_of(&root, md).unwrap_or_default();
        let dir = md.parent().unwrap_or(Path::new(""));
        for (line_no, line) in prose_lines(&text, false) {
            for target in link_targets(&line) {
                if target.is_empty() || is_external(&target) {
                    continue;
                }
                checked += 1;
                let (path, fragment) = match target.split_once('#') {
                    Some((p, f)) => (p, Some(f)),
                    None => (target.as_str(), None),
                };
                let at = format!("{}:{line_no}: link {target:?}", md.display());
                // A link from the repository's root (`/api/src/typed.rs`), as GitHub resolves it,
                // or from the document's directory.
                let resolved = match path.strip_prefix('/') {
                    _ if path.is_empty() => Some(md.to_path_buf()),
                    Some(from_root) => normalize(Path::new(""), from_root),
                    None => normalize(dir, path),
                };
                let Some(resolved) = resolved else {
                    broken.push(format!("{at} leaves the repository"));
                    continue;
                };
                if !root.join(&resolved).exists() {
                    broken.push(format!("{at}: {} does not exist", resolved.display()));
                    continue;
                }
                if let Some(fragment) = fragment.filter(|f| !f.is_empty() && resolved.extension().is_some_and(|e| e == "md")) {
                    let headings = anchors(&std::fs::read_to_string(root.join(&resolved)).unwrap_or_default());
                    if !headings.contains(fragment) {
                        broken.push(format!(
                            "{at}: {} has no heading #{fragment} (it has: {})",
                            resolved.display(),
                            headings.into_iter().collect::<Vec<_>>().join(", ")
                        ));
                    }
                }
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
    assert!(checked > 0, "no relative link found in the Markdown files: is the link parser broken?");
}

#[test]
fn the_architecture_document_names_only_paths_that_exist() {
    let root = repo_root();
    let files = repo_files(&root);
    // Top-level directories of the repository: a backticked `dir/...` under one of them is a path.
    let top: BTreeSet<String> = files
        .iter()
        .filter(|f| f.components().count() > 1)
        .filter_map(|f| f.components().next())
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let docs: Vec<&PathBuf> = markdown_files(&files).into_iter().filter(|f| f.starts_with("docs")).collect();
    assert!(docs.iter().any(|d| d.as_path() == Path::new("docs/architecture.md")), "docs/architecture.md is missing");
    let mut missing = Vec::new();
    for doc in docs {
        let text = text_of(&root, doc).unwrap_or_default();
        for (line_no, line) in prose_lines(&text, true) {
            for span in line.split('`').skip(1).step_by(2) {
                let is_path = span.contains('/')
                    && span.chars().all(|c| c.is_ascii_alphanumeric() || "_./-".contains(c))
                    && span.split('/').next().is_some_and(|first| top.contains(first));
                if is_path && !root.join(span).exists() {
                    missing.push(format!("{}:{line_no}: `{span}` does not exist", doc.display()));
                }
            }
        }
    }
    assert!(missing.is_empty(), "docs name paths that are not in the repository (update the docs with the code):\n{}", missing.join("\n"));
}

#[test]
fn readme_links_to_the_architecture_document() {
    let root = repo_root();
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let links: Vec<String> = prose_lines(&readme, false).iter().flat_map(|(_, l)| link_targets(l)).collect();
    assert!(
        links
            .iter()
            .any(|t| normalize(Path::new(""), t.split('#').next().unwrap_or("")).is_some_and(|p| p == Path::new("docs/architecture.md"))),
        "README.md must link to docs/architecture.md; its links are: {links:?}"
    );
}

#[test]
fn the_link_and_anchor_parsers_read_markdown_as_github_does() {
    assert_eq!(link_targets("see [a](docs/a.md#x \"t\") and ![i](<img.png>)"), ["docs/a.md#x", "img.png"]);
    assert_eq!(link_targets("[ref]: ../x.md"), ["../x.md"]);
    assert_eq!(without_code_spans("a `[x](y)` b"), "a  b");
    assert_eq!(prose_lines("```\n[a](b)\n```\n[c](d)\n", false), [(4, "[c](d)".to_string())]);
    assert_eq!(slug("The control plane (emu-controller)"), "the-control-plane-emu-controller");
    assert_eq!(slug("Pod → ClusterIP"), "pod--clusterip");
    assert_eq!(slug("[Link](x.md) and `code`_here"), "link-and-code_here");
    assert_eq!(anchors("# A\n## A\n```\n# B\n```\n"), BTreeSet::from(["a".to_string(), "a-1".to_string()]));
    assert_eq!(normalize(Path::new("docs"), "../core/src/lib.rs"), Some(PathBuf::from("core/src/lib.rs")));
    assert_eq!(normalize(Path::new("docs"), "../../x"), None);
}
