//! The controller files a play can name at run time, embedded and parsed ahead of time.
//!
//! Ansible finds an `include_tasks` file, an `include_vars` file, a `template`/`copy`
//! `src` or a lookup's file while the play runs, after templating the name, on the
//! controller. rustle-deploy's runner does the same on the host, among the files the
//! payload carries: for every tree a play reaches (each role it uses, and the play's own
//! playbook directory), the loader embeds the files under the directories Ansible's
//! search path looks in (a role's `tasks/`, `handlers/`, `vars/`, `defaults/`, `meta/`,
//! `files/` and `templates/`; a playbook directory's `tasks/`, `handlers/`, `vars/`,
//! `files/` and `templates/`), by controller path, and parses the YAML among them: a list
//! into tasks, a mapping into variables. A file that uses something the plan cannot carry
//! is stored as a refusal naming file, line and keyword, raised only on a host that
//! includes it. A file named literally by an `include_tasks` or `include_vars`, and the
//! files below a directory an `include_vars` `dir:` names literally (`role_path` and
//! `playbook_dir` are known while packing), are parsed wherever they are.
//!
//! What is not carried, so that nothing private travels unasked: the top level of a
//! playbook's directory (inventories, vault password files, other playbooks live there;
//! a file there is carried when a task names it literally) and vault-encrypted files
//! found by the walk (their plaintext would go to every host; a file a task names
//! literally is opened as before). Naming one at run time fails, saying so.
//!
//! Each play records the trees it reaches (`Play::reach`); the packer gives a host only
//! what its plays reach. Parsing a file may reach more trees (a role it imports), which
//! are then read too, for the same plays.

use super::roles::RoleInfo;
use super::tasks::Cx;
use super::{Loader, controller_path, yaml};
use rustle_runner::plan::{Library, Parsed, PlanFile, RoleDep, RoleSpec, Task};
use serde_json::Value;
use serde_norway::Value as Yaml;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// Subdirectories of a role that Ansible's search path looks in.
const ROLE_DIRS: [&str; 7] = [
    "tasks",
    "handlers",
    "vars",
    "defaults",
    "meta",
    "files",
    "templates",
];

/// Subdirectories of a playbook's directory that Ansible's search path looks in.
const PLAYBOOK_DIRS: [&str; 5] = ["tasks", "handlers", "vars", "files", "templates"];

/// How deep the walk goes below a tree's subdirectory (a symbolic link loop stops here).
const MAX_DEPTH: usize = 16;

/// A tree a play reaches: a role's directory or a playbook's.
#[derive(Debug, Clone)]
pub(crate) struct Root {
    /// The role, for a role's directory.
    role: Option<Rc<RoleInfo>>,
    /// The directory of the playbook that reached it.
    playbook_dir: PathBuf,
    /// The plays (by index in the plan) that reach it.
    plays: BTreeSet<usize>,
}

/// A task file an `include_tasks` names literally.
#[derive(Debug, Clone)]
pub(crate) struct StaticInclude {
    cx: Cx,
    plays: BTreeSet<usize>,
}

/// What the loader gathers for the library while reading plays.
#[derive(Debug, Default)]
pub(crate) struct Reach {
    /// Trees reached, by controller path.
    roots: BTreeMap<String, Root>,
    /// Files named literally by includes, by controller path.
    includes: BTreeMap<String, StaticInclude>,
    /// Roles whose meta could not be read, by directory, with the reason.
    unreadable: BTreeMap<String, String>,
    /// Variables files named literally by `include_vars`, by controller path, with the
    /// plays that name them.
    vars_files: BTreeMap<String, BTreeSet<usize>>,
    /// Directories named literally by `include_vars` `dir:`, by controller path, with
    /// the plays that name them.
    vars_dirs: BTreeMap<String, BTreeSet<usize>>,
    /// Files that lookups name literally, by controller path, with the plays that
    /// name them: carried even outside the directories a payload carries whole.
    lookup_files: BTreeMap<String, BTreeSet<usize>>,
    /// Roles an `include_role` may name, by directory.
    roles: BTreeMap<String, RoleSpec>,
    /// Roles an `include_role` names literally that are not found, by name, with
    /// Ansible's message.
    missing_roles: BTreeMap<String, String>,
    /// The plays whatever is read now belongs to.
    pub(crate) plays: BTreeSet<usize>,
}

impl Loader<'_> {
    /// Records that the plays being read reach the tree at `dir`.
    pub(crate) fn reach_root(
        &mut self,
        dir: &Path,
        role: Option<Rc<RoleInfo>>,
        playbook_dir: &Path,
    ) {
        let plays = self.reach.plays.clone();
        let root = self
            .reach
            .roots
            .entry(controller_path(dir))
            .or_insert_with(|| Root {
                role,
                playbook_dir: playbook_dir.to_path_buf(),
                plays: BTreeSet::new(),
            });
        root.plays.extend(plays);
    }

    /// Records an `include_tasks` of the literal `name` from the file being read (`cx`):
    /// the file it finds, in the runner's order, is parsed into the library.
    pub(crate) fn register_static_include(&mut self, name: &str, cx: &Cx) {
        let found = in_place(cx, |place| {
            (place.include_candidates(name, cx.handler).into_iter())
                .find(|c| Path::new(c).is_file())
        });
        let Some(found) = found else {
            return;
        };
        let plays = self.reach.plays.clone();
        let entry = self
            .reach
            .includes
            .entry(found.clone())
            .or_insert_with(|| StaticInclude {
                cx: Cx {
                    dir: Path::new(&found)
                        .parent()
                        .map(Path::to_path_buf)
                        .unwrap_or_default(),
                    in_block: false,
                    ..cx.clone()
                },
                plays: BTreeSet::new(),
            });
        entry.plays.extend(plays);
    }

    /// Records the role `name` in `dir` (and its dependencies) for `include_role`: its
    /// tree is reached, its meta read. A role whose meta cannot be read is recorded as
    /// unreadable, with the reason, for the host that includes it.
    pub(crate) fn register_role(&mut self, name: &str, dir: &Path, cx: &Cx) {
        let key = controller_path(dir);
        let info = Rc::new(RoleInfo {
            dir: dir.to_path_buf(),
        });
        self.reach_root(dir, Some(info), &cx.playbook_dir);
        if self.reach.roles.contains_key(&key) {
            return;
        }
        // Recorded before its dependencies are read, so a cycle ends here.
        self.reach.roles.insert(
            key.clone(),
            RoleSpec {
                name: name.to_string(),
                path: key.clone(),
                ..RoleSpec::default()
            },
        );
        match self.role_spec(name, dir, &key, cx) {
            Ok(spec) => {
                self.reach.roles.insert(key, spec);
            }
            Err(e) => {
                self.reach.roles.remove(&key);
                self.reach
                    .unreadable
                    .insert(key, format!("role '{name}': {}", e.with_line()));
            }
        }
    }

    /// Records that `include_role` names the role `name`, found in none of the
    /// `searched` directories: the host that reaches the include fails with Ansible's
    /// message (Ansible looks for an included role only then).
    pub(crate) fn register_missing_role(&mut self, name: &str, searched: &[PathBuf]) {
        let mut dirs: Vec<String> = Vec::new();
        for p in searched {
            let dir = p.parent().map(controller_path).unwrap_or_default();
            if !dirs.contains(&dir) {
                dirs.push(dir);
            }
        }
        self.reach.missing_roles.insert(
            name.to_string(),
            format!("the role '{name}' was not found in {}", dirs.join(":")),
        );
    }

    fn role_spec(
        &mut self,
        name: &str,
        dir: &Path,
        key: &str,
        cx: &Cx,
    ) -> Result<RoleSpec, super::PlaybookError> {
        let (meta_path, deps, allow_duplicates) = self.role_meta(dir)?;
        let mut dependencies = Vec::new();
        for (i, dep) in deps.iter().enumerate() {
            let at = super::Where::new(&meta_path, &format!("dependencies[{i}]"));
            let entry = self.role_entry(dep, &at)?;
            let dep_dir = self.find_role(&entry.name, cx, &at, dir.parent())?;
            self.register_role(&entry.name, &dep_dir, cx);
            dependencies.push(RoleDep {
                path: controller_path(&dep_dir),
                params: entry.params,
                keywords: (entry.wrapper != Task::default()).then(|| Box::new(entry.wrapper)),
            });
        }
        // Its argument checks, by entry point, for the runner to put before the tasks
        // of the entry point an include names.
        let argument_checks = self
            .argument_specs(dir)?
            .iter()
            .filter_map(|(entry, spec)| {
                let spec = spec.as_object()?;
                Some((
                    entry.clone(),
                    rustle_runner::modules::role_argument_check(spec, entry, name, key),
                ))
            })
            .collect();
        Ok(RoleSpec {
            name: name.to_string(),
            path: key.to_string(),
            dependencies,
            allow_duplicates,
            argument_checks,
        })
    }

    /// Records an `include_vars` of the literal `name` from the file being read (`cx`):
    /// the file it finds, in the runner's order, is parsed into the library.
    pub(crate) fn register_static_vars(&mut self, name: &str, cx: &Cx) {
        let Some(found) = stack_file(cx, "vars", name) else {
            return;
        };
        let plays = self.reach.plays.clone();
        self.reach
            .vars_files
            .entry(found)
            .or_default()
            .extend(plays);
    }

    /// Records a file a lookup of the task being read (`cx`) names literally: the file
    /// Ansible would read (the task's `files/` directories and the directories above,
    /// as the runner searches them) travels with the plays that name it.
    pub(crate) fn register_lookup_file(&mut self, name: &str, cx: &Cx) {
        let Some(found) = stack_file(cx, "files", name) else {
            return;
        };
        let plays = self.reach.plays.clone();
        self.reach
            .lookup_files
            .entry(found)
            .or_default()
            .extend(plays);
    }

    /// Records an `include_vars` `dir:` named literally from the file being read (`cx`):
    /// the files below the directory it reads, as the runner finds it, travel with their
    /// variables parsed.
    pub(crate) fn register_static_vars_dir(&mut self, dir: &str, cx: &Cx) {
        let task_dir = controller_path(&cx.dir);
        let role = cx.role.as_ref().map(|r| controller_path(&r.dir));
        let source =
            rustle_runner::resolve::include_vars_dir(dir, role.as_deref(), &task_dir, |p| {
                Path::new(p).exists()
            });
        if !Path::new(&source).is_dir() {
            return;
        }
        let plays = self.reach.plays.clone();
        self.reach
            .vars_dirs
            .entry(source.trim_end_matches('/').to_string())
            .or_default()
            .extend(plays);
    }

    /// Reads every reached tree into `files` (by controller path) and the library, and
    /// returns the library with each play's reach (by play index). Parsing may reach
    /// more trees; they are read in turn.
    pub(crate) fn build_library(&mut self) -> (Library, BTreeMap<usize, Vec<String>>) {
        let mut library = Library::default();
        let mut done_roots: BTreeSet<String> = BTreeSet::new();
        let mut done_files: BTreeSet<String> = BTreeSet::new();
        loop {
            let root = self
                .reach
                .roots
                .iter()
                .find(|(k, _)| !done_roots.contains(*k))
                .map(|(k, r)| (k.clone(), r.clone()));
            if let Some((key, root)) = root {
                done_roots.insert(key.clone());
                self.read_root(&key, &root, &mut library);
                continue;
            }
            let include = self
                .reach
                .includes
                .iter()
                .find(|(k, _)| !done_files.contains(*k) && !library.tasks.contains_key(*k))
                .map(|(k, i)| (k.clone(), i.clone()));
            let Some((path, include)) = include else {
                break;
            };
            done_files.insert(path.clone());
            self.reach.plays = include.plays.clone();
            self.parse_tasks(Path::new(&path), &include.cx, &path, &mut library);
        }
        let dirs = self.reach.vars_dirs.clone();
        for (dir, plays) in &dirs {
            for path in walk(Path::new(dir)).files {
                let name = controller_path(&path);
                if !self.files.contains_key(&name) && !self.carry(&path, &name, &mut library) {
                    continue;
                }
                // The runner decides by extension which files it reads as variables.
                self.reach
                    .vars_files
                    .entry(name)
                    .or_default()
                    .extend(plays.iter().copied());
            }
        }
        let looked_up = self.reach.lookup_files.clone();
        for path in looked_up.keys() {
            if !self.files.contains_key(path) {
                self.carry_looked_up(path, &mut library);
            }
        }
        let named = self.reach.vars_files.clone();
        for path in named.keys() {
            if library.vars.contains_key(path) {
                continue;
            }
            // Named literally: a vaulted file is opened, as Ansible opens it.
            let parsed = match super::tasks::vars_file(Path::new(path), self.opts.vault.as_ref()) {
                Ok(vars) => Parsed::Ok(Value::Object(vars)),
                Err(e) => Parsed::Refused(e.with_line().to_string()),
            };
            library.vars.insert(path.clone(), parsed);
            library.unreadable.remove(path);
        }
        library.roles = self.reach.roles.clone();
        library.missing_roles = self.reach.missing_roles.clone();
        library.unreadable.extend(
            self.reach
                .unreadable
                .iter()
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        let mut reach: BTreeMap<usize, Vec<String>> = BTreeMap::new();
        for (key, plays) in named.iter().chain(&dirs).chain(&looked_up) {
            for p in plays {
                reach.entry(*p).or_default().push(key.clone());
            }
        }
        for (key, root) in &self.reach.roots {
            // A playbook directory reaches its search subdirectories only: the roles
            // below it are trees of their own, reached by the plays that use them.
            let entries: Vec<String> = match root.role {
                Some(_) => vec![key.clone()],
                None => PLAYBOOK_DIRS.iter().map(|d| format!("{key}/{d}")).collect(),
            };
            for p in &root.plays {
                reach.entry(*p).or_default().extend(entries.iter().cloned());
            }
        }
        for (key, include) in &self.reach.includes {
            for p in &include.plays {
                reach.entry(*p).or_default().push(key.clone());
            }
        }
        (library, reach)
    }

    /// Carries the file at `path` as `name`; false (and `name` recorded as unreadable,
    /// for the host that reaches it) when it cannot be read.
    fn carry(&mut self, path: &Path, name: &str, library: &mut Library) -> bool {
        match read_file(path) {
            Ok(file) => {
                self.files.insert(name.to_string(), file);
                true
            }
            Err(why) => {
                library.unreadable.insert(name.to_string(), why);
                false
            }
        }
    }

    /// Carries a file a lookup names literally. Named so, a vault-encrypted one is
    /// opened with the vault password, as Ansible's file lookups open it; without a
    /// password it is recorded as unreadable, saying why.
    fn carry_looked_up(&mut self, path: &str, library: &mut Library) {
        let mut file = match crate::plan::plan_file(Path::new(path)) {
            Ok(f) => f,
            Err(e) => {
                library
                    .unreadable
                    .insert(path.to_string(), format!("cannot read it: {e}"));
                return;
            }
        };
        if let Err(e) = super::open_vaulted(&mut file, path, self.opts.vault.as_ref()) {
            library.unreadable.insert(path.to_string(), e.to_string());
            return;
        }
        self.files.insert(path.to_string(), file);
    }

    /// Embeds and parses the files of one tree.
    fn read_root(&mut self, key: &str, root: &Root, library: &mut Library) {
        let dir = PathBuf::from(key);
        let subdirs: &[&str] = if root.role.is_some() {
            &ROLE_DIRS
        } else {
            &PLAYBOOK_DIRS
        };
        let mut found = Vec::new();
        for sub in subdirs {
            let walked = walk(&dir.join(sub));
            found.extend(walked.files);
            // A copy of one of its directories makes its directories and links too.
            library.layout.extend(walked.layout);
        }
        self.reach.plays = root.plays.clone();
        for path in found {
            let name = controller_path(&path);
            if self.files.contains_key(&name)
                || library.unreadable.contains_key(&name)
                || !self.carry(&path, &name, library)
            {
                continue;
            }
            if !is_yaml_name(&path, &dir) {
                continue;
            }
            let in_handlers = path.starts_with(dir.join("handlers"));
            let cx = Cx {
                dir: path.parent().map(Path::to_path_buf).unwrap_or_default(),
                playbook_dir: root.playbook_dir.clone(),
                role: root.role.clone(),
                handler: in_handlers,
                in_block: false,
            };
            match yaml::read(&path, self.opts.vault.as_ref()) {
                Ok(Yaml::Sequence(_)) => self.parse_tasks(&path, &cx, &name, library),
                Ok(Yaml::Mapping(_) | Yaml::Null) => {
                    let parsed = match super::tasks::vars_file(&path, self.opts.vault.as_ref()) {
                        Ok(vars) => Parsed::Ok(Value::Object(vars)),
                        Err(e) => Parsed::Refused(e.with_line().to_string()),
                    };
                    library.vars.insert(name, parsed);
                }
                // Neither tasks nor variables (a scalar document): nothing to parse.
                Ok(_) => {}
                Err(e) => {
                    let why = e.with_line().to_string();
                    library
                        .tasks
                        .insert(name.clone(), Parsed::Refused(why.clone()));
                    library.vars.insert(name, Parsed::Refused(why));
                }
            }
        }
    }

    /// Records a task file under `name` in plan form, or why it cannot be; extra vars
    /// win over the variables its tasks set, as for the plays' own tasks. The handlers
    /// of the roles it imports are recorded with it: they join the play's when it is
    /// included, as Ansible adds them to the play when it reads the import.
    fn parse_tasks(&mut self, path: &Path, cx: &Cx, name: &str, library: &mut Library) {
        // A file read for the library is read outside any play: what a play gathers
        // (role handlers, role deduplication) does not leak into the one being read.
        let saved = std::mem::take(&mut self.play);
        let tasks = self.task_file(path, cx);
        let mut handlers = std::mem::replace(&mut self.play, saved).handlers;
        let parsed = match tasks {
            Ok(mut tasks) => {
                // Not filtered by tags here: which tags an included task inherits depends
                // on where it is included, so the runner filters it there.
                super::override_vars(&mut tasks, &self.opts.extra_vars);
                if !handlers.is_empty() {
                    super::override_vars(&mut handlers, &self.opts.extra_vars);
                    library.handlers.insert(name.to_string(), handlers);
                }
                Parsed::Ok(tasks)
            }
            Err(e @ super::PlaybookError::Ansible(_)) => Parsed::Ansible(e.with_line().to_string()),
            Err(e) => Parsed::Refused(e.with_line().to_string()),
        };
        library.tasks.insert(name.to_string(), parsed);
    }
}

/// Every regular file below `dir` (symbolic links followed), sorted per directory, with
/// the directories and links met (an unreadable `dir` holds nothing).
fn walk(dir: &Path) -> rustle_runner::tree::Walked {
    rustle_runner::tree::walk(dir, MAX_DEPTH + 1).unwrap_or_default()
}

/// Whether a file of a tree may hold tasks or variables: `.yml`, `.yaml`, `.json`, or
/// no extension inside `tasks/`, `handlers/`, `vars/` or `defaults/` (Ansible tries
/// `main` without one).
fn is_yaml_name(path: &Path, root: &Path) -> bool {
    match path.extension().and_then(|e| e.to_str()) {
        Some("yml" | "yaml" | "json") => true,
        Some(_) => false,
        None => ["tasks", "handlers", "vars", "defaults"]
            .iter()
            .any(|d| path.starts_with(root.join(d))),
    }
}

/// The file `name` a task read from `cx` finds in Ansible's search stack under `sub`
/// (`vars`, `files`), in the runner's order, if there is one.
fn stack_file(cx: &Cx, sub: &str, name: &str) -> Option<String> {
    in_place(cx, |place| {
        (place.stack_candidates(sub, name).into_iter()).find(|c| Path::new(c).is_file())
    })
}

/// Calls `f` with the runner's search place of a task read from `cx` (its file's
/// directory, its role, the playbook's directory, as controller paths).
fn in_place<T>(cx: &Cx, f: impl FnOnce(&rustle_runner::resolve::Place) -> T) -> T {
    let dir = controller_path(&cx.dir);
    let playbook_dir = controller_path(&cx.playbook_dir);
    let role = cx.role.as_ref().map(|r| controller_path(&r.dir));
    f(&rustle_runner::resolve::Place {
        roles: role.iter().map(String::as_str).collect(),
        task_dir: &dir,
        playbook_dir: &playbook_dir,
    })
}

/// A file's plan form. A vault-encrypted file is not carried: only files a task names
/// literally are opened with the vault password.
fn read_file(path: &Path) -> Result<PlanFile, String> {
    let file = crate::plan::plan_file(path).map_err(|e| format!("cannot read it: {e}"))?;
    if file.content.as_deref().is_some_and(yaml::is_vault) {
        return Err(
            "it is vault-encrypted, and such a file travels only when a task names it \
             literally (a name templated on the host could be any file of the tree, and \
             its plaintext would go to every host)"
                .to_string(),
        );
    }
    Ok(file)
}
