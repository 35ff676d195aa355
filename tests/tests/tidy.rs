//! Project-wide facts checked as plain tests: what the runner may link, that every
//! source file says what it is for, and that Linux-only paths stay in Linux-only code.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// The runner's normal (linked) dependencies, by crate name, for a target triple.
fn runner_dependencies(triple: &str) -> Vec<String> {
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args([
            "tree",
            "--package",
            "rustle-runner",
            "--edges",
            "normal",
            "--prefix",
            "none",
            "--target",
            triple,
            "--offline",
        ])
        .current_dir(ROOT)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

#[test]
fn runner_links_no_async_runtime_no_ssh_and_no_c() {
    // Forbidden because the runner must stay small, synchronous, offline, and link for
    // any musl target with rustup alone (C code needs a cross C compiler there).
    let forbidden = [
        "tokio",
        "async-std",
        "mio",
        "russh",
        "russh-sftp",
        "ssh2",
        "zstd",
        "reqwest",
    ];
    for triple in ["x86_64-unknown-linux-musl", "aarch64-unknown-linux-musl"] {
        let deps = runner_dependencies(triple);
        assert!(
            deps.iter().any(|d| d == "ruzstd"),
            "dependency list looks wrong: {deps:?}"
        );
        for d in &deps {
            assert!(
                !forbidden.contains(&d.as_str()),
                "{triple}: runner depends on {d}"
            );
            // linux-raw-sys (under rustix's raw system calls) is generated Rust
            // declarations of the kernel's ABI: no C to compile or link.
            assert!(
                !d.ends_with("-sys") || d == "linux-raw-sys",
                "{triple}: runner links C through {d}"
            );
        }
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if path.is_dir() && name != "target" && name != "fixtures" && !name.starts_with('.') {
            rust_files(&path, out);
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_rust_file_opens_with_a_doc_line() {
    let mut files = Vec::new();
    for dir in ["runner", "packer", "xtask", "tests"] {
        rust_files(&Path::new(ROOT).join(dir), &mut files);
    }
    assert!(files.len() > 20, "found only {} files", files.len());
    let missing: Vec<_> = files
        .iter()
        .filter(|f| !std::fs::read_to_string(f).unwrap().starts_with("//!"))
        .collect();
    assert!(missing.is_empty(), "files without a //! line: {missing:?}");
}

// ---------------------------------------------------------------------------
// Linux-only paths (`/proc`, `/sys`) live only in code compiled for Linux.
//
// The runner also ships to macOS hosts and the packer runs on macOS controllers, where
// there is no procfs or sysfs: a read of `/proc/self/exe` there fails at run time, and
// it once made every cached deploy to macOS fail. So a string literal naming such a path
// must sit in an item or module compiled only for Linux (`#[cfg(target_os = "linux")]`,
// or any `cfg` that is false on every non-Linux build), or in test code
// (`#[cfg(test)]`): the tests only run on Linux, where CI runs them.
//
// Shell text the packer sends to hosts is not controller code: it runs on the host,
// whatever its OS, so it may read `/proc`, but only with its errors silenced
// (`2>/dev/null`) so that a host without procfs gets an empty answer or the command's
// `||` fallback instead of an error, or behind a test that it exists (`[ -d /proc/...`).
// Those texts are listed in `HOST_SHELL_TEXT`.
//
// The scan is lexical but honest about Rust: comments, char literals, lifetimes and raw
// strings are told apart from string literals; an attribute's gate covers the item it
// precedes, up to the `;` that ends it or the end of its first braced block (const,
// static, let, use and type items end only at their `;`); `mod x;` declared under such
// a gate gates the file `x.rs` and every module below it. Anything it cannot follow
// (a `#[path]` attribute, an `if cfg!()`) counts as not gated: it errs towards a
// failure, never towards a pass.

/// Top-level `const`/`static` items, by file and name, whose text is a shell script run
/// on hosts rather than code run on the controller.
const HOST_SHELL_TEXT: &[(&str, &str)] = &[
    // `sh -c` facts script of SSH mode: `cat /proc/sys/kernel/hostname 2>/dev/null ||
    // hostname`, and /proc/meminfo read as "maybe empty".
    ("packer/src/sshexec.rs", "FACTS"),
    // SSH mode's writes set attributes through `/proc/self/fd/N` when
    // `[ -d /proc/self/fd ]`, else by name with `-h`.
    ("packer/src/sshexec.rs", "PROC_FD"),
    // SSH mode's attribute changes go through `/proc/self/fd/5` when
    // `[ -d /proc/self/fd ]`, else by name after refusing a link.
    ("packer/src/sshexec.rs", "SETATTR"),
];

/// One lexical token of Rust source, as far as the scan needs to tell them apart.
#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Punct(char),
    /// A string literal's text, with `\n` escapes and line continuations applied.
    Str(String),
    /// A number, lifetime or anything else that only matters as "something".
    Other,
}

#[derive(Debug)]
struct Token {
    tok: Tok,
    line: usize,
}

fn ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Splits Rust source into tokens, dropping comments and whitespace.
fn lex(src: &str) -> Vec<Token> {
    let c: Vec<char> = src.chars().collect();
    let at = |k: usize| c.get(k).copied().unwrap_or('\0');
    let mut out = Vec::new();
    let mut i = 0;
    let mut line = 1;
    while i < c.len() {
        let ch = at(i);
        if ch == '\n' {
            line += 1;
            i += 1;
        } else if ch.is_whitespace() {
            i += 1;
        } else if ch == '/' && at(i + 1) == '/' {
            while i < c.len() && at(i) != '\n' {
                i += 1;
            }
        } else if ch == '/' && at(i + 1) == '*' {
            // Block comments nest in Rust.
            let mut depth = 0usize;
            while i < c.len() {
                if at(i) == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if at(i) == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    line += usize::from(at(i) == '\n');
                    i += 1;
                }
            }
        } else if let Some((body_start, hashes)) = raw_string_start(&c, i) {
            let start_line = line;
            let mut j = body_start;
            while j < c.len() && !(at(j) == '"' && (1..=hashes).all(|h| at(j + h) == '#')) {
                line += usize::from(at(j) == '\n');
                j += 1;
            }
            let text = c
                .get(body_start..j.min(c.len()))
                .unwrap_or_default()
                .iter()
                .collect();
            out.push(Token {
                tok: Tok::Str(text),
                line: start_line,
            });
            i = j + 1 + hashes;
        } else if ch == '"' || ((ch == 'b' || ch == 'c') && at(i + 1) == '"') {
            let start_line = line;
            let mut j = if ch == '"' { i + 1 } else { i + 2 };
            let mut text = String::new();
            while j < c.len() && at(j) != '"' {
                if at(j) == '\\' {
                    match at(j + 1) {
                        '\n' => {
                            // A line continuation drops the newline and the indent.
                            j += 1;
                            while j < c.len() && at(j).is_whitespace() {
                                line += usize::from(at(j) == '\n');
                                j += 1;
                            }
                            continue;
                        }
                        'n' => text.push('\n'),
                        't' => text.push('\t'),
                        other => text.push(other),
                    }
                    j += 2;
                } else {
                    line += usize::from(at(j) == '\n');
                    text.push(at(j));
                    j += 1;
                }
            }
            out.push(Token {
                tok: Tok::Str(text),
                line: start_line,
            });
            i = j + 1;
        } else if ch == '\'' {
            // A char literal ('x', '\n', '\'', '\u{..}'), or a lifetime or label ('a).
            if at(i + 1) == '\\' {
                let mut j = i + 3;
                while j < c.len() && at(j) != '\'' && at(j) != '\n' {
                    j += 1;
                }
                i = j + 1;
            } else if at(i + 2) == '\'' {
                i += 3;
            } else {
                i += 1;
                while ident_char(at(i)) {
                    i += 1;
                }
            }
            out.push(Token {
                tok: Tok::Other,
                line,
            });
        } else if ch.is_ascii_digit() {
            while ident_char(at(i)) {
                i += 1;
            }
            out.push(Token {
                tok: Tok::Other,
                line,
            });
        } else if ident_char(ch) {
            let start = i;
            // A raw identifier (r#match) is one identifier.
            if ch == 'r' && at(i + 1) == '#' && ident_char(at(i + 2)) {
                i += 2;
            }
            while ident_char(at(i)) {
                i += 1;
            }
            let word: String = c.get(start..i).unwrap_or_default().iter().collect();
            out.push(Token {
                tok: Tok::Ident(word.trim_start_matches("r#").to_string()),
                line,
            });
        } else {
            out.push(Token {
                tok: Tok::Punct(ch),
                line,
            });
            i += 1;
        }
    }
    out
}

/// At `r"`, `r#"`, `br"`, `cr##"`...: where the body starts and how many `#` close it.
fn raw_string_start(c: &[char], i: usize) -> Option<(usize, usize)> {
    let at = |k: usize| c.get(k).copied().unwrap_or('\0');
    // Not the tail of an identifier such as `bar"`.
    if i > 0 && ident_char(at(i - 1)) {
        return None;
    }
    let mut j = match (at(i), at(i + 1)) {
        ('r', _) => i + 1,
        ('b' | 'c', 'r') => i + 2,
        _ => return None,
    };
    let mut hashes = 0;
    while at(j) == '#' {
        hashes += 1;
        j += 1;
    }
    (at(j) == '"').then_some((j + 1, hashes))
}

/// Whether a `cfg` predicate holds on some non-Linux build that is not a test build:
/// `No` means the code it gates never reaches a macOS runner or controller.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Tri {
    Yes,
    No,
    Maybe,
}

/// Evaluates the predicate at `toks[*k]`, moving `k` past it.
fn eval_cfg(toks: &[Token], k: &mut usize) -> Tri {
    let tok = |k: usize| toks.get(k).map(|t| &t.tok);
    let Some(Tok::Ident(name)) = tok(*k) else {
        return Tri::Maybe;
    };
    *k += 1;
    match name.as_str() {
        "all" | "any" | "not" if tok(*k) == Some(&Tok::Punct('(')) => {
            *k += 1;
            let mut args = Vec::new();
            while !matches!(tok(*k), Some(Tok::Punct(')')) | None) {
                let before = *k;
                args.push(eval_cfg(toks, k));
                if tok(*k) == Some(&Tok::Punct(',')) {
                    *k += 1;
                }
                if *k == before {
                    // Something this evaluator does not know: skip it, unsure.
                    *k += 1;
                    args.push(Tri::Maybe);
                }
            }
            *k += 1;
            match name.as_str() {
                "all" if args.contains(&Tri::No) => Tri::No,
                "all" if args.iter().all(|a| *a == Tri::Yes) => Tri::Yes,
                "any" if args.contains(&Tri::Yes) => Tri::Yes,
                "any" if args.iter().all(|a| *a == Tri::No) => Tri::No,
                "not" => match args.as_slice() {
                    [Tri::Yes] => Tri::No,
                    [Tri::No] => Tri::Yes,
                    _ => Tri::Maybe,
                },
                _ => Tri::Maybe,
            }
        }
        _ => {
            let value = match (tok(*k), tok(*k + 1)) {
                (Some(Tok::Punct('=')), Some(Tok::Str(v))) => {
                    *k += 2;
                    Some(v.as_str())
                }
                _ => None,
            };
            match (name.as_str(), value) {
                ("test", None) | ("target_os", Some("linux")) => Tri::No,
                _ => Tri::Maybe,
            }
        }
    }
}

/// Whether a string literal names a Linux-only path: `/proc` or `/sys` as a path's
/// first component (so `/usr/sys/x`, `/sysctl.d` and `/processes` are not).
fn linux_path(text: &str) -> bool {
    ["/proc", "/sys"].iter().any(|p| {
        text.match_indices(p).any(|(i, _)| {
            let before = text[..i].chars().next_back();
            let after = text[i + p.len()..].chars().next();
            !before.is_some_and(|b| ident_char(b) || b == '.' || b == '-')
                && !after.is_some_and(|a| ident_char(a) || a == '.' || a == '-')
        })
    })
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum GateKind {
    /// Compiled only for Linux, or only for tests.
    Linux,
    /// Shell text run on hosts (`HOST_SHELL_TEXT`).
    HostShell,
}

/// The item an attribute (or the host-shell list) applies to, while the scan is in it.
#[derive(Debug)]
struct Gate {
    kind: GateKind,
    /// Bracket depth the item starts at.
    depth: usize,
    /// const/static/let/use/type: ends only at its `;`.
    semi_only: bool,
    /// Its first braced block is open.
    opened: bool,
}

/// What a scan of one file found.
#[derive(Debug, Default)]
struct Scan {
    /// (line, literal) of each Linux-only path outside Linux code.
    violations: Vec<(usize, String)>,
    /// How many such literals were inside Linux or host-shell code.
    gated: usize,
    /// Child modules declared `mod x;`: their inline module path, and whether the
    /// declaration is gated.
    mods: Vec<(Vec<String>, bool)>,
    /// Which `HOST_SHELL_TEXT` names were met.
    host_items: Vec<String>,
}

/// Scans one file's source. `file_gated`: the file itself is compiled only for Linux
/// (its `mod` declaration, or a parent's, is gated).
fn scan(src: &str, file_gated: bool, host_items: &[&str]) -> Scan {
    let toks = lex(src);
    let tok = |k: usize| toks.get(k).map(|t| &t.tok);
    let mut out = Scan::default();
    let mut file_gated = file_gated;
    let mut depth = 0usize;
    let mut pending = false;
    let mut gates: Vec<Gate> = Vec::new();
    // Inline `mod name { ... }`: name, and the depth inside its braces.
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut k = 0;
    while let Some(t) = toks.get(k) {
        // Attributes: `#[...]` gates the next item, `#![...]` at the top the whole file.
        if t.tok == Tok::Punct('#') {
            let inner = tok(k + 1) == Some(&Tok::Punct('!'));
            let open = if inner { k + 2 } else { k + 1 };
            if tok(open) == Some(&Tok::Punct('[')) {
                let mut end = open;
                let mut level = 0usize;
                while let Some(x) = tok(end) {
                    match x {
                        Tok::Punct('[') => level += 1,
                        Tok::Punct(']') => {
                            level -= 1;
                            if level == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                    end += 1;
                }
                if tok(open + 1) == Some(&Tok::Ident("cfg".into()))
                    && tok(open + 2) == Some(&Tok::Punct('('))
                {
                    let mut p = open + 3;
                    if eval_cfg(&toks, &mut p) == Tri::No {
                        if inner && depth == 0 {
                            file_gated = true;
                        } else if !inner {
                            pending = true;
                        }
                    }
                }
                k = end + 1;
                continue;
            }
        }
        if pending {
            pending = false;
            let mut f = k;
            // Skip `pub`, `pub(crate)` and the like to find the item's keyword.
            if tok(f) == Some(&Tok::Ident("pub".into())) {
                f += 1;
                if tok(f) == Some(&Tok::Punct('(')) {
                    while !matches!(tok(f), Some(Tok::Punct(')')) | None) {
                        f += 1;
                    }
                    f += 1;
                }
            }
            let semi_only = matches!(tok(f), Some(Tok::Ident(w))
                if ["const", "static", "let", "use", "type"].contains(&w.as_str()));
            gates.push(Gate {
                kind: GateKind::Linux,
                depth,
                semi_only,
                opened: false,
            });
        }
        let gated = file_gated || gates.iter().any(|g| g.kind == GateKind::Linux);
        match &t.tok {
            Tok::Ident(w) if w == "const" || w == "static" => {
                if let Some(Tok::Ident(name)) = tok(k + 1)
                    && depth == 0
                    && host_items.contains(&name.as_str())
                {
                    out.host_items.push(name.clone());
                    gates.push(Gate {
                        kind: GateKind::HostShell,
                        depth,
                        semi_only: true,
                        opened: false,
                    });
                }
            }
            Tok::Punct(open @ ('{' | '(' | '[')) => {
                if *open == '{' {
                    if let Some(g) = gates.last_mut()
                        && g.depth == depth
                        && !g.semi_only
                    {
                        g.opened = true;
                    }
                    if let (Some(Tok::Ident(m)), Some(Tok::Ident(name))) =
                        (tok(k.wrapping_sub(2)), tok(k.wrapping_sub(1)))
                        && m == "mod"
                    {
                        inline.push((name.clone(), depth + 1));
                    }
                }
                depth += 1;
            }
            Tok::Punct('}' | ')' | ']') => {
                depth = depth.saturating_sub(1);
                while gates
                    .last()
                    .is_some_and(|g| depth < g.depth || (g.opened && depth == g.depth))
                {
                    gates.pop();
                }
                while inline.last().is_some_and(|(_, d)| *d > depth) {
                    inline.pop();
                }
            }
            Tok::Punct(';') => {
                if let (Some(Tok::Ident(m)), Some(Tok::Ident(name))) =
                    (tok(k.wrapping_sub(2)), tok(k.wrapping_sub(1)))
                    && m == "mod"
                {
                    let mut path: Vec<String> = inline.iter().map(|(n, _)| n.clone()).collect();
                    path.push(name.clone());
                    out.mods.push((path, gated));
                }
                while gates.last().is_some_and(|g| !g.opened && depth == g.depth) {
                    gates.pop();
                }
            }
            Tok::Str(text) if linux_path(text) => {
                let host = gates.iter().any(|g| g.kind == GateKind::HostShell);
                if gated {
                    out.gated += 1;
                } else if host {
                    let unguarded = text
                        .lines()
                        .filter(|l| {
                            linux_path(l)
                                && !l.contains("2>/dev/null")
                                && !l.contains("[ -d /proc")
                                && !l.contains("[ -e /proc")
                        })
                        .collect::<Vec<_>>();
                    if unguarded.is_empty() {
                        out.gated += 1;
                    } else {
                        out.violations.push((
                            t.line,
                            format!("host shell text without 2>/dev/null: {unguarded:?}"),
                        ));
                    }
                } else {
                    out.violations.push((t.line, format!("{text:?}")));
                }
            }
            _ => {}
        }
        k += 1;
    }
    out
}

/// The file a `mod` path declared in `file` lives in, if there is one.
fn module_file(file: &Path, path: &[String]) -> Option<PathBuf> {
    let dir = file.parent()?;
    let stem = file.file_stem()?.to_string_lossy();
    let mut base = if ["mod", "lib", "main"].contains(&stem.as_ref()) {
        dir.to_path_buf()
    } else {
        dir.join(stem.as_ref())
    };
    let (name, parents) = path.split_last()?;
    for p in parents {
        base = base.join(p);
    }
    [
        base.join(format!("{name}.rs")),
        base.join(name).join("mod.rs"),
    ]
    .into_iter()
    .find(|p| p.is_file())
}

#[test]
fn linux_only_paths_are_only_in_linux_code() {
    let root = Path::new(ROOT);
    let mut files = Vec::new();
    for dir in ["runner/src", "packer/src"] {
        rust_files(&root.join(dir), &mut files);
    }
    assert!(files.len() > 20, "found only {} files", files.len());
    let rel = |f: &Path| f.strip_prefix(root).unwrap().to_string_lossy().into_owned();
    let hosts_of = |f: &Path| -> Vec<&str> {
        HOST_SHELL_TEXT
            .iter()
            .filter(|(file, _)| rel(f) == *file)
            .map(|(_, name)| *name)
            .collect()
    };
    let sources: Vec<(PathBuf, String)> = files
        .iter()
        .map(|f| (f.clone(), std::fs::read_to_string(f).unwrap()))
        .collect();

    // Which files are compiled only for Linux: declared under a gate, or below one.
    let mut edges = Vec::new();
    for (f, src) in &sources {
        for (path, gated) in scan(src, false, &[]).mods {
            if let Some(child) = module_file(f, &path) {
                edges.push((f.clone(), child, gated));
            }
        }
    }
    let mut gated_files = std::collections::BTreeSet::new();
    loop {
        let before = gated_files.len();
        for (parent, child, gated) in &edges {
            if *gated || gated_files.contains(parent) {
                gated_files.insert(child.clone());
            }
        }
        if gated_files.len() == before {
            break;
        }
    }

    let mut problems = Vec::new();
    let mut gated = 0;
    let mut host_items = Vec::new();
    for (f, src) in &sources {
        let s = scan(src, gated_files.contains(f), &hosts_of(f));
        gated += s.gated;
        host_items.extend(s.host_items.into_iter().map(|n| (rel(f), n)));
        problems.extend(
            s.violations
                .into_iter()
                .map(|(line, what)| format!("{}:{line}: {what}", rel(f))),
        );
    }
    assert!(
        problems.is_empty(),
        "Linux-only paths outside #[cfg(target_os = \"linux\")] code (the runner also runs on macOS, \
         the packer on macOS controllers):\n{}",
        problems.join("\n")
    );
    // The scan did see the Linux code it lets through, and every listed host script.
    assert!(
        gated > 0,
        "no gated /proc or /sys literal seen: is the scan reading anything?"
    );
    for (file, name) in HOST_SHELL_TEXT {
        assert!(
            host_items.iter().any(|(f, n)| f == file && n == name),
            "{file}: no top-level const or static {name} (HOST_SHELL_TEXT is stale)"
        );
    }
}

#[test]
fn the_linux_path_scanner_tells_gated_from_ungated_code() {
    let check = |src: &str, expect_lines: &[usize]| {
        let s = scan(src, false, &["SCRIPT"]);
        let lines: Vec<usize> = s.violations.iter().map(|(l, _)| *l).collect();
        assert_eq!(lines, expect_lines, "{src}\n{s:?}");
    };
    // Ungated: every form of literal is seen; comments are not literals.
    check("fn f() {\n    let p = \"/proc/self/exe\";\n}\n", &[2]);
    check(
        "// \"/proc/x\"\n/* \"/sys/x\" /* nested */ \"/proc\" */\n/// /proc\nfn f() {}\n",
        &[],
    );
    check(
        "const A: &[u8] = b\"/sys/class\";\nconst B: &str = r#\"x \"/proc\" y\"#;\n",
        &[1, 2],
    );
    check(
        "fn f() { let q = '\"'; let r = \"/proc/1\"; let l: &'static str = \"/sys/\"; }\n",
        &[1, 1],
    );
    check(
        "fn f() -> String { format!(\"/sys/class/net/{}/mtu\", 1) }\n",
        &[1],
    );
    // Not a Linux path.
    check(
        "const A: &str = \"/usr/sys/proc.d\"; const B: &str = \"/processes /sysctl.d\";\n",
        &[],
    );
    // Gated items, and the ungated item that follows each (its literal is still caught).
    check(
        "#[cfg(target_os = \"linux\")]\nfn f() -> [u8; 2] {\n    \"/proc\";\n    [0; 2]\n}\nfn g() { \"/proc/2\"; }\n",
        &[6],
    );
    check(
        "#[cfg(target_os = \"linux\")]\n#[allow(dead_code)]\npub(crate) const A: [&str; 2] = [\"/proc/a\", \"/sys/b\"];\nconst B: &str = \"/proc/b\";\n",
        &[4],
    );
    check(
        "#[cfg(target_os = \"linux\")]\nconst A: S = S { p: \"/proc/a\" };\nconst B: &str = \"/proc/b\";\n",
        &[3],
    );
    check(
        "#[cfg(test)]\nmod tests {\n    fn t() { \"/proc/x\"; }\n}\nfn h() { \"/sys/y\"; }\n",
        &[5],
    );
    check(
        "fn f() {\n    #[cfg(target_os = \"linux\")]\n    let p = \"/proc/a\";\n    let q = \"/proc/b\";\n}\n",
        &[4],
    );
    // cfg logic: only a predicate false on every non-Linux, non-test build gates.
    check(
        "#[cfg(any(target_os = \"linux\", test))]\nfn f() { \"/proc\"; }\n",
        &[],
    );
    check(
        "#[cfg(all(unix, target_os = \"linux\"))]\nfn f() { \"/proc\"; }\n",
        &[],
    );
    check(
        "#[cfg(not(target_os = \"linux\"))]\nfn f() { \"/proc\"; }\n",
        &[2],
    );
    check("#[cfg(unix)]\nfn f() { \"/proc\"; }\n", &[2]);
    check(
        "#[cfg(target_os = \"macos\")]\nfn f() { \"/proc\"; }\n",
        &[2],
    );
    check(
        "#[cfg(any(target_os = \"linux\", target_os = \"android\"))]\nfn f() { \"/proc\"; }\n",
        &[2],
    );
    check(
        "#![cfg(target_os = \"linux\")]\nfn f() { \"/proc\"; }\n",
        &[],
    );
    // A gated file is gated throughout.
    assert!(
        scan("fn f() { \"/proc\"; }", true, &[])
            .violations
            .is_empty()
    );
    // Host shell text: /proc reads only with their errors silenced.
    check(
        "const SCRIPT: &str = \"cat /proc/x 2>/dev/null || echo\\n\\\n    uname\";\n",
        &[],
    );
    check("const SCRIPT: &str = \"uname\\ncat /proc/x\\n\";\n", &[1]);
    check("const OTHER: &str = \"cat /proc/x 2>/dev/null\";\n", &[1]);

    // `mod x;` declarations, gated or not, inline module paths included.
    let s = scan(
        "#[cfg(target_os = \"linux\")]\nmod linux;\nmod other;\nmod inline {\n    mod deeper;\n}\n",
        false,
        &[],
    );
    assert_eq!(
        s.mods,
        vec![
            (vec!["linux".to_string()], true),
            (vec!["other".to_string()], false),
            (vec!["inline".to_string(), "deeper".to_string()], false),
        ]
    );
}

/// The runner modules the packer, xtask, the fuzz targets and the tests may use
/// (ARCHITECTURE.md, "runner/"). A module made public, or one no longer shared, changes
/// this list on purpose.
const RUNNER_SHARED: &[&str] = &[
    "atomic",
    "cli",
    "digest",
    "events",
    "exec",
    "exit",
    "facts",
    "fnmatch",
    "hex",
    "hostpattern",
    "install",
    "lazyvars",
    "locate",
    "lookups",
    "modules",
    "payload",
    "plan",
    "privilege",
    "random",
    "resolve",
    "tags",
    "template",
    "tree",
    "trust",
    "vault",
];

#[test]
fn the_runner_shares_only_the_modules_it_means_to() {
    let lib = std::fs::read_to_string(Path::new(ROOT).join("runner/src/lib.rs")).unwrap();
    let public: Vec<&str> = lib
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub mod "))
        .map(|rest| rest.trim_end_matches(';').trim())
        .collect();
    assert_eq!(
        public, RUNNER_SHARED,
        "runner/src/lib.rs's public modules changed: update RUNNER_SHARED and the \"runner/\" \
         part of ARCHITECTURE.md's code map together"
    );
}
