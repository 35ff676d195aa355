//! Roles: finding them, their defaults, vars, meta dependencies, tasks and handlers, and
//! the files their `copy`/`template` tasks read.

use super::tasks::{self, Cx};
use super::yaml::{self, scalar_str, to_json};
use super::{Loader, NotFound, PlaybookError, Where, canonical};
use rustle_runner::plan::{Origin, RoleInstance, RoleRef, Task, Vars};
use serde_json::Value;
use serde_norway::Value as Yaml;
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// A role being read: its directory.
#[derive(Debug)]
pub(crate) struct RoleInfo {
    /// `roles/<name>`.
    pub(crate) dir: PathBuf,
}

/// A use of a role: from `roles:`, a meta dependency, or `import_role`/`include_role`.
#[derive(Debug, Clone)]
pub(crate) struct RoleEntry {
    /// The role's name.
    pub(crate) name: String,
    /// Role parameters (`vars:` of the entry and its other keys).
    pub(crate) params: Vars,
    /// Keywords of the entry (`when`, `tags`, `become`, ...), for a block around the role.
    pub(crate) wrapper: Task,
    /// `tasks_from`: a task file other than `main`.
    pub(crate) tasks_from: Option<String>,
    /// `vars_from`, `defaults_from`, `handlers_from`: other files than `main`.
    pub(crate) vars_from: Option<String>,
    pub(crate) defaults_from: Option<String>,
    pub(crate) handlers_from: Option<String>,
    /// Named by a task (`import_role`/`include_role`), not by `roles:` or a dependency.
    pub(crate) from_task: bool,
    /// `allow_duplicates` given on an `import_role` (which defaults to true); `None`:
    /// the role's meta decides.
    pub(crate) allow_duplicates: Option<bool>,
    /// Whether the role's argument spec is checked before its tasks (`rolespec_validate`
    /// of an `import_role`; true otherwise).
    pub(crate) validate: bool,
    /// `public` given on an `import_role`; `None`: [`private_role_vars`] decides.
    pub(crate) public: Option<bool>,
}

/// `ANSIBLE_PRIVATE_ROLE_VARS` (Ansible's `DEFAULT_PRIVATE_ROLE_VARS`) when it is set:
/// roles' variables are then private (true) or public (false) to the play, `roles:`,
/// `import_role` and `include_role` alike. Unset, `roles:` and `import_role` are public
/// and `include_role` private, as in Ansible. (`private_role_vars` in an `ansible.cfg`
/// is not read.)
pub(crate) fn private_role_vars() -> Option<bool> {
    private_role_vars_in(std::env::var(crate::lookups::PRIVATE_ROLE_VARS_ENV).ok())
}

/// [`private_role_vars`] from the variable's value, as Ansible reads a boolean setting.
pub(crate) fn private_role_vars_in(value: Option<String>) -> Option<bool> {
    value
        .filter(|v| !v.is_empty())
        .map(|v| rustle_runner::modules::args::truthy_str(&v).unwrap_or(false))
}

/// The file names Ansible tries for `main` in a role directory.
const MAIN: [&str; 3] = ["main.yml", "main.yaml", "main"];

/// How deep a role's `vars/main/` or `defaults/main/` directory is read (Ansible reads
/// it whole; a link leading back round stops the walk, not the deploy).
const MAX_VARS_DEPTH: usize = 64;

impl Loader<'_> {
    /// The play's `roles:` section.
    pub(crate) fn roles_section(
        &mut self,
        value: Option<&Yaml>,
        cx: &Cx,
        at: &Where,
    ) -> Result<Vec<Task>, PlaybookError> {
        let list = match value {
            None | Some(Yaml::Null) => return Ok(Vec::new()),
            Some(Yaml::Sequence(list)) => list,
            Some(other) => {
                return Err(at.invalid(
                    "roles",
                    format!("expected a list of roles, found {}", yaml::describe(other)),
                ));
            }
        };
        let mut out = Vec::new();
        for (i, item) in list.iter().enumerate() {
            let here = at.child(&format!("roles[{i}]"));
            let entry = self.role_entry(item, &here)?;
            self.play.play_roles.push(entry.name.clone());
            out.extend(self.role(entry, cx, &here, true)?);
        }
        Ok(out)
    }

    /// A role entry: `name`, or `{role: name, vars: {...}, when: ..., <param>: ...}`.
    pub(crate) fn role_entry(&self, item: &Yaml, at: &Where) -> Result<RoleEntry, PlaybookError> {
        let mut entry = RoleEntry {
            name: String::new(),
            params: Vars::new(),
            wrapper: Task::default(),
            tasks_from: None,
            vars_from: None,
            defaults_from: None,
            handlers_from: None,
            from_task: false,
            allow_duplicates: None,
            public: None,
            validate: true,
        };
        match item {
            Yaml::Mapping(map) => {
                for (k, v) in map {
                    let key = tasks::key_of(k, at)?;
                    match key.as_str() {
                        "role" | "name" => {
                            entry.name = scalar_str(v)
                                .ok_or_else(|| at.invalid(&key, "expected a role name"))?;
                        }
                        "vars" => entry.params.extend(tasks::vars(v, &at.child("vars"))?),
                        k if tasks::common(&mut entry.wrapper, k, v, at)? => {}
                        k if tasks::unsupported_reason(k).is_some() => {
                            return Err(tasks::bad_keyword(k, &[], at));
                        }
                        // Anything else is a role parameter, as in Ansible.
                        _ => {
                            entry
                                .params
                                .insert(key.clone(), to_json(v, &at.child(&key))?);
                        }
                    }
                }
            }
            other => {
                entry.name = scalar_str(other).ok_or_else(|| {
                    at.invalid(
                        "roles",
                        format!(
                            "expected a role name or mapping, found {}",
                            yaml::describe(other)
                        ),
                    )
                })?;
            }
        }
        if entry.name.is_empty() {
            return Err(at.invalid("role", "a role entry needs `role:` (the role's name)"));
        }
        entry.name = self.static_name("role", &entry.name, at)?;
        Ok(entry)
    }

    /// Expands a role: its dependencies first, then its tasks in a block carrying its
    /// variables and which use of the role it is ([`RoleInstance`]: the executor runs a
    /// use once per host and play unless duplicates are allowed, as Ansible does);
    /// registers its handlers with the play. `play_level` roles (from `roles:`) also
    /// expose their defaults and vars to the whole play, as Ansible does.
    pub(crate) fn role(
        &mut self,
        entry: RoleEntry,
        cx: &Cx,
        at: &Where,
        play_level: bool,
    ) -> Result<Vec<Task>, PlaybookError> {
        self.role_from(entry, cx, at, play_level, None)
    }

    /// [`Self::role`], for a role named by another role's meta dependencies: `basedir`
    /// is the directory holding that role, searched after the roles path as Ansible does.
    fn role_from(
        &mut self,
        entry: RoleEntry,
        cx: &Cx,
        at: &Where,
        play_level: bool,
        basedir: Option<&Path>,
    ) -> Result<Vec<Task>, PlaybookError> {
        let name = entry.name.clone();
        let at = at.named(Some(&name));
        let dir = self.find_role(&name, cx, &at, basedir)?;
        let canon = canonical(&dir);
        // A dependency cycle never ends; a role whose task imports the role again (another
        // of its task files) is not a cycle, and a file importing itself is caught as an
        // include cycle.
        if !entry.from_task && self.play.role_stack.contains(&canon) {
            return Err(at.invalid(
                "dependencies",
                format!("role '{name}' depends on itself (through meta dependencies)"),
            ));
        }
        let (meta_path, deps, meta_allows) = self.role_meta(&dir)?;
        // The same use of a role (Ansible's role cache: path, files, parameters, `when`,
        // `tags`, named by a task or not) is one instance, whichever entry names it.
        let instance = RoleInstance {
            key: RoleInstance::key_of(
                &super::controller_path(&dir),
                &[
                    entry.tasks_from.as_deref(),
                    entry.vars_from.as_deref(),
                    entry.defaults_from.as_deref(),
                    entry.handlers_from.as_deref(),
                ],
                &entry.params,
                Some(&entry.wrapper),
                entry.from_task,
            ),
            allow_duplicates: entry.allow_duplicates.unwrap_or(meta_allows),
        };
        self.play.role_stack.push(canon.clone());
        let result = self.role_body(
            entry, &dir, &canon, &meta_path, &deps, cx, &at, play_level, instance,
        );
        self.play.role_stack.pop();
        result
    }

    /// The directory of the role `name`, where Ansible looks for it.
    pub(crate) fn find_role(
        &self,
        name: &str,
        cx: &Cx,
        at: &Where,
        basedir: Option<&Path>,
    ) -> Result<PathBuf, PlaybookError> {
        let roles_path = std::env::var("ANSIBLE_ROLES_PATH").ok();
        let ansible_home = std::env::var("ANSIBLE_HOME").ok();
        let home = std::env::var("HOME").ok();
        let collections_path = std::env::var("ANSIBLE_COLLECTIONS_PATH")
            .or_else(|_| std::env::var("ANSIBLE_COLLECTIONS_PATHS"))
            .ok();
        let env = RoleSearchEnv {
            roles_path: roles_path.as_deref(),
            ansible_home: ansible_home.as_deref(),
            home: home.as_deref(),
            collections_path: collections_path.as_deref(),
        };
        // A role named by its collection (`ns.coll.role`) is looked for in that
        // collection first, then, as Ansible does, as a directory of that name.
        let searched: Vec<PathBuf> = collection_role_dirs(name, &cx.playbook_dir, &env)
            .into_iter()
            .chain(
                role_search_path(&cx.playbook_dir, &env, basedir)
                    .into_iter()
                    .map(|d| d.join(name)),
            )
            .collect();
        match searched.iter().find(|p| p.is_dir()) {
            Some(dir) => Ok(dir.clone()),
            None => Err(PlaybookError::NotFound(Box::new(NotFound {
                at: at.clone(),
                keyword: "role".to_string(),
                name: name.to_string(),
                searched,
            }))),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn role_body(
        &mut self,
        entry: RoleEntry,
        dir: &Path,
        canon: &Path,
        meta_path: &Path,
        deps: &[Yaml],
        cx: &Cx,
        at: &Where,
        play_level: bool,
        instance: RoleInstance,
    ) -> Result<Vec<Task>, PlaybookError> {
        let vault = self.opts.vault.as_ref();
        let defaults = role_vars_file(dir, "defaults", entry.defaults_from.as_deref(), at, vault)?;
        let own_vars = role_vars_file(dir, "vars", entry.vars_from.as_deref(), at, vault)?;
        // A role whose variables are public shows them to the whole play.
        let public = entry
            .public
            .or_else(|| private_role_vars().map(|private| !private))
            .unwrap_or(true);
        if play_level && public {
            self.play.role_defaults.extend(defaults.clone());
            self.play.role_vars.extend(own_vars.clone());
            self.play.fixed.extend(own_vars.keys().cloned());
        }
        let mut out = Vec::new();
        for (i, dep) in deps.iter().enumerate() {
            let dep_at = Where::new(meta_path, &format!("dependencies[{i}]"));
            let dep_entry = self.role_entry(dep, &dep_at)?;
            if play_level {
                self.play.dependent_roles.insert(dep_entry.name.clone());
            }
            out.extend(self.role_from(dep_entry, cx, &dep_at, play_level, dir.parent())?);
        }

        // Defaults rank below play-level variables: leave out the names those set.
        let mut block_vars: Vars = defaults
            .into_iter()
            .filter(|(k, _)| !self.play.fixed.contains(k))
            .collect();
        let from_defaults: Vec<String> = block_vars
            .keys()
            .filter(|k| !own_vars.contains_key(*k) && !entry.params.contains_key(*k))
            .cloned()
            .collect();
        block_vars.extend(own_vars);
        block_vars.extend(entry.params.clone());
        super::defaults::mark(&mut block_vars, from_defaults);

        let info = Rc::new(RoleInfo {
            dir: dir.to_path_buf(),
        });
        self.reach_root(dir, Some(Rc::clone(&info)), &cx.playbook_dir);
        let role_ref = RoleRef {
            name: entry.name.clone(),
            path: super::controller_path(dir),
            from_task: entry.from_task,
        };
        let tasks_dir = dir.join("tasks");
        let tasks_file = match &entry.tasks_from {
            None => MAIN.iter().map(|m| tasks_dir.join(m)).find(|p| p.is_file()),
            Some(from) => {
                let searched: Vec<PathBuf> =
                    [from.clone(), format!("{from}.yml"), format!("{from}.yaml")]
                        .iter()
                        .map(|f| tasks_dir.join(f))
                        .collect();
                match searched.iter().find(|p| p.is_file()) {
                    // Ansible's role loader refuses a file it finds outside the role's
                    // `tasks/` (an absolute name, or `..` climbing out).
                    Some(p)
                        if !rustle_runner::resolve::is_within(
                            &super::controller_path(p),
                            &super::controller_path(&tasks_dir),
                        ) =>
                    {
                        return Err(at.ansible(
                            "tasks_from",
                            rustle_runner::resolve::outside_role(
                                &super::controller_path(p),
                                &entry.name,
                                &super::controller_path(&tasks_dir),
                            ),
                        ));
                    }
                    Some(p) => Some(p.clone()),
                    None => {
                        return Err(PlaybookError::NotFound(Box::new(NotFound {
                            at: at.clone(),
                            keyword: "tasks_from".to_string(),
                            name: from.clone(),
                            searched,
                        })));
                    }
                }
            }
        };
        // Every use of the role has an origin, even one with no task file: the argument
        // check below may be its only task.
        let tasks_origin = Some(Origin {
            file: tasks_file.as_ref().map(|path| super::controller_path(path)),
            role: Some(role_ref.clone()),
            instance: Some(instance),
        });
        let mut tasks = match tasks_file {
            Some(path) => {
                let role_cx = Cx {
                    dir: tasks_dir.clone(),
                    playbook_dir: cx.playbook_dir.clone(),
                    role: Some(Rc::clone(&info)),
                    handler: false,
                    in_block: false,
                };
                self.task_file(&path, &role_cx)?
            }
            None => Vec::new(),
        };
        // Ansible checks the variables against the entry point's argument spec in a
        // task of its own before the role's first.
        let entry_point = entry.tasks_from.as_deref().unwrap_or("main");
        if let (true, Some(Value::Object(spec))) =
            (entry.validate, self.argument_specs(dir)?.get(entry_point))
        {
            tasks.insert(
                0,
                rustle_runner::modules::role_argument_check(
                    spec,
                    entry_point,
                    &entry.name,
                    &super::controller_path(dir),
                ),
            );
        }

        let handlers_key = canon.join(entry.handlers_from.as_deref().unwrap_or("main"));
        if self.play.roles_with_handlers.insert(handlers_key) {
            let handlers_dir = dir.join("handlers");
            if let Some(path) = role_file(dir, "handlers", entry.handlers_from.as_deref(), at)? {
                let handler_cx = Cx {
                    dir: handlers_dir.clone(),
                    playbook_dir: cx.playbook_dir.clone(),
                    role: Some(Rc::clone(&info)),
                    handler: true,
                    in_block: false,
                };
                for mut h in self.task_file(&path, &handler_cx)? {
                    // Handlers run outside the role's block: they carry its variables
                    // themselves, below their own.
                    let mut vars = block_vars.clone();
                    let own = std::mem::take(&mut h.vars);
                    super::defaults::unmark(&mut vars, own.keys());
                    vars.extend(own);
                    h.vars = vars;
                    // The role entry's privilege keywords reach its handlers too (Ansible's
                    // handlers inherit through the role), below the handler's own.
                    if h.become_.is_none() {
                        h.become_ = entry.wrapper.become_.clone();
                    }
                    if h.become_user.is_none() {
                        h.become_user = entry.wrapper.become_user.clone();
                    }
                    // The handler answers to `role : name` and `role : topic` too
                    // (the runner matches them by the role its origin names).
                    let origin = h.origin.get_or_insert_with(Origin::default);
                    if origin.file.is_none() {
                        origin.file = Some(super::controller_path(&path));
                    }
                    origin.role = Some(role_ref.clone());
                    self.play.handlers.push(h);
                }
            }
        }

        if !tasks.is_empty() {
            out.push(Task {
                block: Some(tasks),
                vars: block_vars,
                origin: tasks_origin,
                ..Task::default()
            });
        }
        if out.is_empty() || entry.wrapper == Task::default() {
            return Ok(out);
        }
        let mut wrapper = entry.wrapper;
        wrapper.block = Some(out);
        Ok(vec![wrapper])
    }

    /// A role's argument specs by entry point: `argument_specs` of
    /// `meta/argument_specs.yml` (or `.yaml`, `.json`, no extension) when there is one,
    /// else of `meta/main.yml`, as Ansible's role loader looks for them.
    pub(crate) fn argument_specs(
        &self,
        dir: &Path,
    ) -> Result<serde_json::Map<String, Value>, PlaybookError> {
        let meta = dir.join("meta");
        let own = [
            "argument_specs",
            "argument_specs.yml",
            "argument_specs.yaml",
            "argument_specs.json",
        ]
        .iter()
        .map(|n| meta.join(n))
        .find(|p| p.is_file());
        let Some(path) = own.or_else(|| MAIN.iter().map(|m| meta.join(m)).find(|p| p.is_file()))
        else {
            return Ok(serde_json::Map::new());
        };
        let at = Where::new(&path, "argument_specs");
        let doc = yaml::read(&path, self.opts.vault.as_ref())?;
        let Yaml::Mapping(map) = &doc else {
            return Ok(serde_json::Map::new());
        };
        match map.get("argument_specs") {
            None | Some(Yaml::Null) => Ok(serde_json::Map::new()),
            Some(specs @ Yaml::Mapping(_)) => match to_json(specs, &at)? {
                Value::Object(m) => Ok(m),
                _ => Ok(serde_json::Map::new()),
            },
            Some(other) => Err(at.invalid(
                "argument_specs",
                format!(
                    "expected a mapping of entry points, found {}",
                    yaml::describe(other)
                ),
            )),
        }
    }

    /// `meta/main.yml`: its path, `dependencies` and `allow_duplicates`.
    pub(crate) fn role_meta(
        &self,
        dir: &Path,
    ) -> Result<(PathBuf, Vec<Yaml>, bool), PlaybookError> {
        let meta_dir = dir.join("meta");
        let Some(path) = MAIN.iter().map(|m| meta_dir.join(m)).find(|p| p.is_file()) else {
            return Ok((meta_dir.join("main.yml"), Vec::new(), false));
        };
        let at = Where::new(&path, "");
        let mut deps = Vec::new();
        let mut allow_duplicates = false;
        match yaml::read(&path, self.opts.vault.as_ref())? {
            Yaml::Null => {}
            Yaml::Mapping(map) => {
                for (k, v) in &map {
                    let key = tasks::key_of(k, &at)?;
                    match key.as_str() {
                        "dependencies" => match v {
                            Yaml::Null => {}
                            Yaml::Sequence(list) => deps.extend(list.iter().cloned()),
                            other => {
                                return Err(at.invalid(
                                    "dependencies",
                                    format!(
                                        "expected a list of roles, found {}",
                                        yaml::describe(other)
                                    ),
                                ));
                            }
                        },
                        "allow_duplicates" => {
                            allow_duplicates = tasks::boolean(v, &at, "allow_duplicates")?;
                        }
                        // Descriptions for Galaxy and argument checks: nothing to run.
                        "galaxy_info" | "argument_specs" => {}
                        other => {
                            return Err(tasks::bad_keyword(
                                other,
                                &[
                                    "dependencies",
                                    "allow_duplicates",
                                    "galaxy_info",
                                    "argument_specs",
                                ],
                                &at,
                            ));
                        }
                    }
                }
            }
            other => {
                return Err(at.invalid(
                    "",
                    format!("role meta is a mapping, found {}", yaml::describe(&other)),
                ));
            }
        }
        Ok((path, deps, allow_duplicates))
    }

    /// Resolves a role's (or another directory's playbook's) `copy`/`template` `src` the
    /// way Ansible searches, embeds the file under its path relative to the top
    /// playbook's directory, and rewrites `src` to that key. A file only found beside the
    /// top playbook is left to [`crate::plan::attach_files`], which finds it the same way.
    pub(crate) fn embed_src(&mut self, task: &mut Task, cx: &Cx) -> Result<(), PlaybookError> {
        // patch's `patchfile` is its `src` under another name: one name to resolve.
        if task.module_name() == "patch"
            && !task.args.contains_key("src")
            && let Some(file) = task.args.shift_remove("patchfile")
        {
            task.args.insert("src".into(), file);
        }
        let module = task.module_name();
        let sub = match module {
            "template" => "templates",
            "copy" | "script" => "files",
            // synchronize pushes a controller file or directory, found as copy's.
            "synchronize" if crate::plan::synchronize_pushes(task) => "files",
            // patch's file is a controller file unless `remote_src`.
            "patch"
                if !task
                    .args
                    .get("remote_src")
                    .is_some_and(crate::plan::is_truthy) =>
            {
                "files"
            }
            // assemble's fragments are a controller directory when `remote_src` is
            // false, found as copy finds a directory.
            "assemble"
                if task
                    .args
                    .get("remote_src")
                    .is_some_and(|v| !crate::plan::is_truthy(v)) =>
            {
                "files"
            }
            _ => return Ok(()),
        };
        // `script`'s file is the first word of its command line (`cmd` or free-form),
        // found where `copy` finds its `src`, as Ansible's script action does.
        if module == "script" {
            let key = if task.args.contains_key("cmd") {
                "cmd"
            } else {
                "_raw_params"
            };
            let Some(Value::String(line)) = task.args.get(key) else {
                return Ok(());
            };
            // The first shell word, unquoted (`'space path/test.sh' arg`), as the
            // runner reads it.
            let Ok((first, rest)) = rustle_runner::modules::script_first_word(line) else {
                return Ok(());
            };
            if first.is_empty() {
                return Ok(());
            }
            let mut probe = task.clone();
            probe
                .args
                .insert("src".into(), Value::String(first.clone()));
            probe.module = "copy".into();
            self.embed_src(&mut probe, cx)?;
            if let Some(Value::String(found)) = probe.args.get("src")
                && *found != first
            {
                let word =
                    if found.contains(|c: char| !(c.is_alphanumeric() || "/._-+:@%".contains(c))) {
                        rustle_runner::modules::sh_quote(found)
                    } else {
                        found.clone()
                    };
                let line = if rest.is_empty() {
                    word
                } else {
                    format!("{word} {rest}")
                };
                task.args.insert(key.into(), Value::String(line));
            }
            return Ok(());
        }
        if module == "copy"
            && task
                .args
                .get("remote_src")
                .is_some_and(crate::plan::is_truthy)
        {
            return Ok(());
        }
        let Some(Value::String(src)) = task.args.get("src") else {
            return Ok(());
        };
        if src.is_empty() || Path::new(src).is_absolute() {
            return Ok(());
        }
        // A templated name is the runner's to resolve, among the trees' files.
        if src.contains("{{") || src.contains("{%") {
            return Ok(());
        }
        let mut searched = Vec::new();
        if let Some(role) = &cx.role {
            for d in [role.dir.clone(), role.dir.join("tasks")] {
                searched.push(d.join(sub).join(src));
                searched.push(d.join(src));
            }
        }
        let role_hits = searched.len();
        searched.push(cx.playbook_dir.join(sub).join(src));
        searched.push(cx.playbook_dir.join(src));
        // Not found here: the task fails where it runs, naming where it looked, as in
        // Ansible (it may never run: a `when` may hold it back).
        let Some((i, hit)) = searched.iter().enumerate().find(|(_, p)| p.exists()) else {
            return Ok(());
        };
        if i >= role_hits && canonical(&cx.playbook_dir) == canonical(&self.base) {
            return Ok(());
        }
        // A directory is carried with its tree's files; the runner finds it there. A
        // role's directory is named by its controller path, so that the name is not
        // also looked for beside the top playbook (`copy: src=./` there would be the
        // whole playbook directory, vaulted files and all).
        if !hit.is_file() {
            if i < role_hits && hit.is_dir() {
                let mut name = super::controller_path(hit);
                if src.ends_with('/') {
                    name.push('/');
                }
                task.args.insert("src".to_string(), Value::String(name));
            }
            return Ok(());
        }
        let key = match hit.strip_prefix(&self.base) {
            Ok(rel) => rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/"),
            Err(_) => hit.display().to_string(),
        };
        if !self.files.contains_key(&key) {
            let file = crate::plan::plan_file(hit).map_err(|source| PlaybookError::Io {
                path: hit.to_path_buf(),
                source,
            })?;
            self.files.insert(key.clone(), file);
        }
        task.args.insert("src".to_string(), Value::String(key));
        Ok(())
    }
}

/// What the role search path is made of besides the playbook: the environment's
/// `ANSIBLE_ROLES_PATH`, `ANSIBLE_HOME` and `HOME` (passed in, so tests need not set them).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RoleSearchEnv<'a> {
    pub(crate) roles_path: Option<&'a str>,
    pub(crate) ansible_home: Option<&'a str>,
    pub(crate) home: Option<&'a str>,
    /// `ANSIBLE_COLLECTIONS_PATH` (or the older `ANSIBLE_COLLECTIONS_PATHS`).
    pub(crate) collections_path: Option<&'a str>,
}

/// The namespace, collection and role of a collection's role name (`ns.coll.role`);
/// `None` for any other name.
fn collection_role(name: &str) -> Option<(&str, &str, &str)> {
    let mut parts = name.split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(ns), Some(coll), Some(role), None)
            if !name.contains('/') && ![ns, coll, role].iter().any(|p| p.is_empty()) =>
        {
            Some((ns, coll, role))
        }
        _ => None,
    }
}

/// Where the role of a collection (`namespace.collection.role`) may be, in the order
/// Ansible's collection loader looks: the playbook's own `collections/`, then each entry
/// of the collections path (`ANSIBLE_COLLECTIONS_PATH`, colon-separated, or Ansible's
/// default `~/.ansible/collections:/usr/share/ansible/collections`), each as
/// `ansible_collections/<namespace>/<collection>/roles/<role>`. Nothing for a name that
/// is not a collection's.
pub(crate) fn collection_role_dirs(
    name: &str,
    playbook_dir: &Path,
    env: &RoleSearchEnv<'_>,
) -> Vec<PathBuf> {
    let Some((namespace, collection, role)) = collection_role(name) else {
        return Vec::new();
    };
    let home = env.home.unwrap_or("");
    let default_path;
    let configured = match env.collections_path {
        Some(p) => p,
        None => {
            let ansible_home = env.ansible_home.unwrap_or("~/.ansible");
            default_path = format!("{ansible_home}/collections:/usr/share/ansible/collections");
            &default_path
        }
    };
    std::iter::once(playbook_dir.join("collections"))
        .chain(
            configured
                .split(':')
                .filter(|e| !e.is_empty())
                .map(|e| PathBuf::from(expand_user(&expand_vars(e), home))),
        )
        // An entry may name the `ansible_collections` directory itself.
        .map(|root| match root.file_name() {
            Some(n) if n == "ansible_collections" => {
                root.parent().map(Path::to_path_buf).unwrap_or(root)
            }
            _ => root,
        })
        .map(|root| {
            root.join("ansible_collections")
                .join(namespace)
                .join(collection)
                .join("roles")
                .join(role)
        })
        .collect()
}

/// The directories a role name is looked up in, in Ansible's order
/// (`RoleDefinition._load_role_path` in ansible-core 2.18): the playbook's `roles/`, then
/// each entry of the roles path (`ANSIBLE_ROLES_PATH`, colon-separated, or Ansible's
/// default `~/.ansible/roles:/usr/share/ansible/roles:/etc/ansible/roles` when it is not
/// set), then the directory of the role whose dependency this is, then the playbook's own
/// directory. Roles-path entries are expanded as Ansible's `unfrackpath` does: `$VAR`,
/// then `~`, and a relative entry is relative to the current directory.
pub(crate) fn role_search_path(
    playbook_dir: &Path,
    env: &RoleSearchEnv<'_>,
    basedir: Option<&Path>,
) -> Vec<PathBuf> {
    let home = env.home.unwrap_or("");
    let default_path;
    let configured = match env.roles_path {
        Some(p) => p,
        None => {
            let ansible_home = env
                .ansible_home
                .map(str::to_string)
                .unwrap_or_else(|| "~/.ansible".to_string());
            default_path =
                format!("{ansible_home}/roles:/usr/share/ansible/roles:/etc/ansible/roles");
            &default_path
        }
    };
    let mut out = vec![playbook_dir.join("roles")];
    for entry in configured.split(':').filter(|e| !e.is_empty()) {
        let expanded = expand_user(&expand_vars(entry), home);
        let path = PathBuf::from(expanded);
        if path.is_absolute() {
            out.push(path);
        } else {
            // Ansible resolves a relative entry against the current directory; when that
            // is unknown the entry is kept relative, which the process resolves the same way.
            out.push(std::env::current_dir().map_or(path.clone(), |cwd| cwd.join(&path)));
        }
    }
    if let Some(b) = basedir {
        out.push(b.to_path_buf());
    }
    out.push(playbook_dir.to_path_buf());
    out
}

/// Python's `os.path.expandvars`: `$NAME` and `${NAME}` replaced by the environment's
/// value; unknown names and malformed references are left as they are.
fn expand_vars(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(rest.get(..i).unwrap_or_default());
        let after = rest.get(i + 1..).unwrap_or_default();
        let (name, tail, braced) = match after.strip_prefix('{') {
            Some(b) => match b.find('}') {
                Some(end) => (
                    b.get(..end).unwrap_or_default(),
                    b.get(end + 1..).unwrap_or_default(),
                    true,
                ),
                None => ("", after, false),
            },
            None => {
                let end = after
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(after.len());
                (
                    after.get(..end).unwrap_or_default(),
                    after.get(end..).unwrap_or_default(),
                    false,
                )
            }
        };
        match std::env::var(name) {
            Ok(v) if !name.is_empty() => out.push_str(&v),
            _ => {
                out.push('$');
                if braced {
                    out.push('{');
                    out.push_str(name);
                    out.push('}');
                } else {
                    out.push_str(name);
                }
            }
        }
        rest = tail;
    }
    out.push_str(rest);
    out
}

/// `~` and `~/...` with the user's home directory (other users' `~name` stays as is).
fn expand_user(s: &str, home: &str) -> String {
    if home.is_empty() {
        return s.to_string();
    }
    if s == "~" {
        home.to_string()
    } else if let Some(rest) = s.strip_prefix("~/") {
        format!("{}/{rest}", home.trim_end_matches('/'))
    } else {
        s.to_string()
    }
}

/// A role's file in `sub`: `from` (as given, or with `.yml`, `.yaml` or `.json`) when it
/// is given (missing, that is an error naming where it looked), else `main`.
fn role_file(
    dir: &Path,
    sub: &str,
    from: Option<&str>,
    at: &Where,
) -> Result<Option<PathBuf>, PlaybookError> {
    let sub_dir = dir.join(sub);
    let Some(from) = from else {
        return Ok(MAIN.iter().map(|m| sub_dir.join(m)).find(|p| p.is_file()));
    };
    let searched: Vec<PathBuf> = ["", ".yml", ".yaml", ".json"]
        .iter()
        .map(|ext| sub_dir.join(format!("{from}{ext}")))
        .collect();
    match searched.iter().find(|p| p.is_file()) {
        Some(p) => Ok(Some(p.clone())),
        None => Err(PlaybookError::NotFound(Box::new(NotFound {
            at: at.clone(),
            keyword: format!("{sub}_from"),
            name: from.to_string(),
            searched,
        }))),
    }
}

/// A role's defaults or vars (`sub`): the file `from` names, else `main` as Ansible's
/// role loader finds it (`main.yml`, `main.yaml`, `main.json`, then `main`, the first
/// that exists), where a directory `main/` stands for every file in it (empty when there
/// is none).
fn role_vars_file(
    dir: &Path,
    sub: &str,
    from: Option<&str>,
    at: &Where,
    vault: Option<&crate::vault::Vault>,
) -> Result<Vars, PlaybookError> {
    if from.is_some() {
        return match role_file(dir, sub, from, at)? {
            Some(path) => tasks::vars_file(&path, vault),
            None => Ok(Vars::new()),
        };
    }
    let sub_dir = dir.join(sub);
    let Some(main) = ["main.yml", "main.yaml", "main.json", "main"]
        .iter()
        .map(|m| sub_dir.join(m))
        .find(|p| p.exists())
    else {
        return Ok(Vars::new());
    };
    let files = if main.is_dir() {
        let found: Vec<String> = rustle_runner::tree::walk(&main, MAX_VARS_DEPTH)
            .map_err(|e| at.invalid(sub, format!("cannot list {}: {e}", main.display())))?
            .files
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        rustle_runner::resolve::role_vars_dir_files(
            &main.to_string_lossy(),
            found.iter().map(String::as_str),
        )
        .into_iter()
        .map(PathBuf::from)
        .collect()
    } else {
        vec![main]
    };
    // Each file over the ones before it, a top-level key replacing the earlier one
    // (Ansible's `combine_vars` with its default `hash_behaviour`).
    let mut vars = Vars::new();
    for path in files {
        vars.extend(tasks::vars_file(&path, vault)?);
    }
    Ok(vars)
}
