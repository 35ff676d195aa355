//! Ansible's search paths over the controller's files, as pure functions of paths.
//!
//! Ansible finds the files a task names at run time on the controller: an included task
//! file, a `template`/`copy` `src`, an `include_vars` file, the file of a `file` or
//! `first_found` lookup. rustle-deploy's packer embeds the candidates (see
//! `docs/playbooks.md`) and the runner resolves the name after templating, in the same
//! order, against what the payload carries. The candidate lists are made here, from
//! ansible-core 2.18's `DataLoader.path_dwim_relative`, `path_dwim_relative_stack`,
//! `Task.get_search_path` and `IncludedFile.process_include_results`; the packer uses the
//! same functions to find statically named files while packing.

/// `base` joined with `rel` (unless `rel` is absolute), with `.` and `..` resolved
/// lexically, as Ansible's `unfrackpath(follow=False)` does.
pub fn join(base: &str, rel: &str) -> String {
    let joined = if rel.starts_with('/') || base.is_empty() {
        rel.to_string()
    } else {
        format!("{}/{rel}", base.trim_end_matches('/'))
    };
    normalize(&joined)
}

/// Whether `path` lies below the directory `dir` (both resolved lexically), as
/// Ansible's `is_subpath`.
pub fn is_within(path: &str, dir: &str) -> bool {
    let dir = normalize(dir);
    normalize(path).starts_with(&format!("{}/", dir.trim_end_matches('/')))
}

/// Ansible's words for a role's file (`tasks_from` and the like) found outside the
/// role's directory for it.
pub fn outside_role(found: &str, role: &str, dir: &str) -> String {
    format!(
        "Failed loading '{found}' for role ({role}) as it is not inside the expected role path: '{dir}'"
    )
}

/// A path with `.`, `..` and repeated `/` resolved lexically.
pub fn normalize(path: &str) -> String {
    let absolute = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !absolute {
                    parts.push("..");
                }
            }
            other => parts.push(other),
        }
    }
    let body = parts.join("/");
    if absolute {
        format!("/{body}")
    } else if body.is_empty() {
        ".".to_string()
    } else {
        body
    }
}

/// The directory part of a path (`/a/b/c.yml` -> `/a/b`).
pub fn dirname(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) => "/",
        Some(i) => path.get(..i).unwrap_or(""),
        None => "",
    }
}

/// The directory an `include_vars` `dir:` reads (ansible-core 2.18's
/// `ActionModule._set_root_dir`): in a role, `<role>/<dir>` when `dir` starts with `vars`
/// and that exists (else `dir` as given), otherwise `<role>/vars/<dir>`; outside a role,
/// relative to the directory of the task's file. An absolute `dir` stands alone.
pub fn include_vars_dir(
    dir: &str,
    role: Option<&str>,
    task_dir: &str,
    exists: impl Fn(&str) -> bool,
) -> String {
    match role {
        Some(role) if dir.split('/').next() == Some("vars") => {
            let p = join(role, dir);
            if exists(&p) { p } else { dir.to_string() }
        }
        Some(role) => join(&join(role, "vars"), dir),
        None => join(task_dir, dir),
    }
}

/// The files of a role's `main/` defaults or vars directory `dir`, among `files` (paths
/// of files below it), in the order ansible-core 2.18's `DataLoader._get_dir_vars_files`
/// reads them: each directory's names sorted, a subdirectory (one without an extension)
/// read in place, hidden names and backups (`~`) left out, files with no extension or
/// `.yml`, `.yaml`, `.json` kept.
pub fn role_vars_dir_files<'f>(dir: &str, files: impl IntoIterator<Item = &'f str>) -> Vec<String> {
    let prefix = format!("{}/", dir.trim_end_matches('/'));
    // Python's `os.path.splitext`: the extension after the last dot not leading the name.
    fn ext(name: &str) -> &str {
        let bare = name.trim_start_matches('.');
        bare.rfind('.').and_then(|i| bare.get(i..)).unwrap_or("")
    }
    let shown = |name: &str| !name.starts_with('.') && !name.ends_with('~');
    let mut kept: Vec<Vec<&str>> = files
        .into_iter()
        .filter_map(|f| f.strip_prefix(&prefix))
        .map(|rel| rel.split('/').collect::<Vec<_>>())
        .filter(|parts| match parts.split_last() {
            Some((file, dirs)) => {
                shown(file)
                    && matches!(ext(file), "" | ".yml" | ".yaml" | ".json")
                    && dirs.iter().all(|d| shown(d) && ext(d).is_empty())
            }
            None => false,
        })
        .collect();
    // Sorting by the names along the path is the walk's order: a directory's entries
    // sorted, each subdirectory's files where its name falls.
    kept.sort();
    kept.into_iter()
        .map(|parts| format!("{prefix}{}", parts.join("/")))
        .collect()
}

/// Where a task runs from, for finding the files it names: the roles it is in (the
/// innermost last) and the file it was read from.
#[derive(Debug, Clone, Default)]
pub struct Place<'a> {
    /// The directories of the enclosing roles, outermost first (Ansible's dependency
    /// chain).
    pub roles: Vec<&'a str>,
    /// The directory of the file the task was read from.
    pub task_dir: &'a str,
    /// The playbook's directory (Ansible's loader base directory).
    pub playbook_dir: &'a str,
}

impl Place<'_> {
    /// `ansible_search_path`: the roles' directories, innermost first, then the task's
    /// directory (`Task.get_search_path`), then the playbook's directory, which Ansible
    /// appends when it hands the list to lookups and includes.
    pub fn search_path(&self) -> Vec<String> {
        let mut out: Vec<String> = self.roles.iter().rev().map(|r| r.to_string()).collect();
        for extra in [self.task_dir, self.playbook_dir] {
            if !extra.is_empty() && !out.iter().any(|p| p == extra) {
                out.push(extra.to_string());
            }
        }
        out
    }

    /// Candidates for a file named `source` in subdirectory `subdir` (`files`,
    /// `templates`, `vars`) of the search path, in Ansible's order
    /// (`path_dwim_relative_stack` over [`Self::search_path`], basedir last). An
    /// absolute `source` is its own only candidate.
    pub fn stack_candidates(&self, subdir: &str, source: &str) -> Vec<String> {
        stack_candidates(
            &self.search_path(),
            subdir,
            source,
            !self.roles.is_empty(),
            self.playbook_dir,
        )
    }

    /// Candidates for the task file an `include_tasks` names (`target`, after
    /// templating), in Ansible's order: inside a role, the role's `tasks/` (`handlers/`
    /// then `tasks/` for a handler) and the role directory, then the playbook's; outside, the
    /// including file's directory, then the playbook's. The including file's directory
    /// comes last inside a role, for a file that includes its neighbour.
    pub fn include_candidates(&self, target: &str, handler: bool) -> Vec<String> {
        if target.starts_with('/') {
            return vec![normalize(target)];
        }
        let sub = if handler { "handlers" } else { "tasks" };
        let mut out = Vec::new();
        match self.roles.last() {
            Some(role) => {
                out.push(join(role, &format!("{sub}/{target}")));
                // `path_dwim_relative` looks in the role's `tasks/` for a handler too.
                out.push(join(role, &format!("tasks/{target}")));
                out.push(join(role, target));
                out.push(join(self.playbook_dir, &format!("{sub}/{target}")));
                out.push(join(self.playbook_dir, target));
                out.push(join(self.task_dir, target));
            }
            None => {
                out.push(join(self.task_dir, target));
                out.push(join(self.playbook_dir, target));
            }
        }
        dedup(out)
    }
}

/// `DataLoader.path_dwim_relative_stack`: for each path of `paths`, `path/subdir/source`
/// and `path/source` (and for a path that is a role's `tasks/` directory, the role's
/// `subdir/source` and `tasks/source` first), then `basedir/subdir/source` and
/// `basedir/source`. `subdir` is not added when `source` already starts with it.
pub fn stack_candidates(
    paths: &[String],
    subdir: &str,
    source: &str,
    is_role: bool,
    basedir: &str,
) -> Vec<String> {
    if source.starts_with('/') {
        return vec![normalize(source)];
    }
    let names_subdir = source.split('/').next() == Some(subdir);
    let mut out = Vec::new();
    for path in paths {
        let upath = normalize(path);
        let parent = dirname(&upath);
        if is_role && parent.ends_with("/tasks") {
            out.push(join(dirname(parent), &format!("{subdir}/{source}")));
            out.push(join(parent, source));
        }
        if !names_subdir {
            out.push(join(&upath, &format!("{subdir}/{source}")));
        }
        out.push(join(&upath, source));
    }
    if !names_subdir {
        out.push(join(basedir, &format!("{subdir}/{source}")));
    }
    out.push(join(basedir, source));
    dedup(out)
}

/// The list without repeats, first occurrence kept.
fn dedup(list: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(list.len());
    for p in list {
        if !out.contains(&p) {
            out.push(p);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_joined_and_normalised_lexically() {
        assert_eq!(join("/a/b", "c/../d.yml"), "/a/b/d.yml");
        assert_eq!(join("/a/b", "/x/./y"), "/x/y");
        assert_eq!(join("/a", "../../x"), "/x");
        assert_eq!(normalize("a//b/./c/.."), "a/b");
        assert_eq!(dirname("/a/b/c.yml"), "/a/b");
        assert_eq!(dirname("/c.yml"), "/");
    }

    #[test]
    fn search_path_is_roles_innermost_first_then_task_dir_then_playbook() {
        let place = Place {
            roles: vec!["/p/roles/a", "/p/roles/b"],
            task_dir: "/p/roles/b/tasks",
            playbook_dir: "/p",
        };
        assert_eq!(
            place.search_path(),
            ["/p/roles/b", "/p/roles/a", "/p/roles/b/tasks", "/p"]
        );
    }

    #[test]
    fn stack_candidates_follow_path_dwim_relative_stack() {
        // setup_remote_tmp_dir's `first_found` of `default.yml`: the role directory,
        // then its tasks directory (where the file is), then the playbook's.
        let place = Place {
            roles: vec!["/t/setup_remote_tmp_dir"],
            task_dir: "/t/setup_remote_tmp_dir/tasks",
            playbook_dir: "/i",
        };
        assert_eq!(
            place.stack_candidates("files", "default.yml"),
            [
                "/t/setup_remote_tmp_dir/files/default.yml",
                "/t/setup_remote_tmp_dir/default.yml",
                "/t/setup_remote_tmp_dir/tasks/files/default.yml",
                "/t/setup_remote_tmp_dir/tasks/default.yml",
                "/i/files/default.yml",
                "/i/default.yml",
            ]
        );
        // A name that starts with the subdirectory does not get it twice.
        assert_eq!(
            stack_candidates(&["/p".into()], "vars", "vars/a.yml", false, "/p"),
            ["/p/vars/a.yml"]
        );
        assert_eq!(
            stack_candidates(&["/p".into()], "files", "/etc/x", false, "/p"),
            ["/etc/x"]
        );
    }

    #[test]
    fn include_candidates_inside_and_outside_roles() {
        let role = Place {
            roles: vec!["/p/roles/r"],
            task_dir: "/p/roles/r/tasks/sub",
            playbook_dir: "/p",
        };
        assert_eq!(
            role.include_candidates("x.yml", false),
            [
                "/p/roles/r/tasks/x.yml",
                "/p/roles/r/x.yml",
                "/p/tasks/x.yml",
                "/p/x.yml",
                "/p/roles/r/tasks/sub/x.yml",
            ]
        );
        assert_eq!(
            role.include_candidates("x.yml", true)[..2],
            ["/p/roles/r/handlers/x.yml", "/p/roles/r/tasks/x.yml"]
        );
        let play = Place {
            roles: vec![],
            task_dir: "/p/inc",
            playbook_dir: "/p",
        };
        assert_eq!(
            play.include_candidates("x.yml", false),
            ["/p/inc/x.yml", "/p/x.yml"]
        );
        assert_eq!(play.include_candidates("/abs/y.yml", false), ["/abs/y.yml"]);
    }
}
