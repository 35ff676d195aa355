//! A controller directory as ansible-core 2.18's copy action walks it (`_walk_dirs`):
//! its files with symbolic links followed, and besides them its directories and its
//! links, so that a `copy` of the directory can make empty directories and, with
//! `local_follow: false` (or for a link that cannot be followed), links as links.
//!
//! The packer walks the trees it carries with it, and the runner walks a local host's
//! own directories (the controller's, read when the task runs) with it, so both see a
//! tree alike.

use crate::plan::Layout;
use std::collections::HashSet;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

/// What [`walk`] found below a directory.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Walked {
    /// Every regular file, links followed, sorted per directory.
    pub files: Vec<PathBuf>,
    /// Every directory below the top (a followed link to one too) and every symbolic
    /// link with the text it holds, by path.
    pub layout: Layout,
}

/// Walks `top` (not beyond `max_depth` levels): files through links, as the action
/// does by default, and every directory and link met. A link to a directory is walked
/// unless it points at one of the directories it lies in (a circle: the action then
/// copies it as a link); a link to nothing walkable is only a link. Unreadable
/// directories are skipped; `top` itself must be readable.
pub fn walk(top: &Path, max_depth: usize) -> std::io::Result<Walked> {
    let meta = std::fs::metadata(top)?;
    let mut out = Walked::default();
    let mut ancestors = HashSet::from([(meta.dev(), meta.ino())]);
    visit(top, 1, max_depth, &mut ancestors, &mut out, true)?;
    Ok(out)
}

fn visit(
    dir: &Path,
    level: usize,
    max_depth: usize,
    ancestors: &mut HashSet<(u64, u64)>,
    out: &mut Walked,
    top: bool,
) -> std::io::Result<()> {
    if level > max_depth {
        return Ok(());
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if top => return Err(e),
        Err(_) => return Ok(()),
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        let Ok(lmeta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        let key = path.to_string_lossy().into_owned();
        if lmeta.file_type().is_symlink()
            && let Ok(target) = std::fs::read_link(&path)
        {
            out.layout
                .links
                .insert(key.clone(), target.to_string_lossy().into_owned());
        }
        let Ok(meta) = std::fs::metadata(&path) else {
            // A dangling link: only a link.
            continue;
        };
        if meta.is_file() {
            out.files.push(path);
        } else if meta.is_dir() {
            let id = (meta.dev(), meta.ino());
            if ancestors.contains(&id) {
                // A link back to a directory it lies in: only a link.
                continue;
            }
            out.layout.dirs.insert(key);
            ancestors.insert(id);
            let walked = visit(&path, level + 1, max_depth, ancestors, out, false);
            ancestors.remove(&id);
            walked?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn files_through_links_and_every_directory_and_link_besides() {
        let t = tempfile::tempdir().unwrap();
        let top = t.path().join("top");
        std::fs::create_dir_all(top.join("a/empty")).unwrap();
        std::fs::create_dir_all(top.join("b")).unwrap();
        std::fs::write(top.join("a/f"), "f").unwrap();
        std::fs::write(top.join("b/g"), "g").unwrap();
        let outside = t.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("o"), "o").unwrap();
        symlink("../b/g", top.join("a/to_g")).unwrap();
        symlink("../b", top.join("a/to_b")).unwrap();
        symlink(&outside, top.join("a/out")).unwrap();
        symlink("../", top.join("a/up")).unwrap();
        symlink("nothing", top.join("a/dangling")).unwrap();
        let w = walk(&top, 16).unwrap();
        let rel = |p: &Path| p.strip_prefix(&top).unwrap().to_string_lossy().into_owned();
        let files: Vec<String> = w.files.iter().map(|p| rel(p)).collect();
        assert_eq!(
            files,
            ["a/f", "a/out/o", "a/to_b/g", "a/to_g", "b/g"],
            "links to files and to directories elsewhere are followed"
        );
        let dirs: Vec<String> = w.layout.dirs.iter().map(|p| rel(Path::new(p))).collect();
        assert_eq!(dirs, ["a", "a/empty", "a/out", "a/to_b", "b"]);
        let links: Vec<(String, String)> = w
            .layout
            .links
            .iter()
            .map(|(k, v)| (rel(Path::new(k)), v.clone()))
            .collect();
        assert_eq!(
            links,
            [
                ("a/dangling".to_string(), "nothing".to_string()),
                ("a/out".to_string(), outside.to_string_lossy().into_owned()),
                ("a/to_b".to_string(), "../b".to_string()),
                ("a/to_g".to_string(), "../b/g".to_string()),
                ("a/up".to_string(), "../".to_string()),
            ]
        );
        assert!(walk(&t.path().join("missing"), 16).is_err());
    }
}
