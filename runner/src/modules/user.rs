//! user and group: local accounts with ansible.builtin.user's and group's arguments and
//! registered results, through the shadow tools (useradd/usermod/userdel,
//! groupadd/groupmod/groupdel) run with argument vectors, never a shell.
//!
//! Accounts are read with `getent` (so NSS sources count, as Ansible's pwd/grp lookups
//! do), or from /etc/passwd, /etc/group and /etc/shadow when getent is missing. The
//! tools take the passwd lock; another process holding it makes them fail with
//! "cannot lock", so those failures are retried a few times before being reported.
//!
//! `expires` and `password_lock` follow Ansible's comparisons (the expiry day in UTC; the
//! hash without its `!`), the password itself going through chpasswd, never argv.
//! Password ages (`password_expire_min`/`_max`/`_warn`) go through chage.
//! `generate_ssh_key` runs ssh-keygen as Ansible does; a `ssh_key_passphrase` reaches it
//! through a pipe (its stdin, read by a fixed askpass helper script: `SSH_ASKPASS` with
//! `SSH_ASKPASS_REQUIRE=force`), never its command line.
//! Not supported (refused as unknown arguments): `local`, `umask`, login classes and
//! other platform-specific options.

use super::fsutil::{self, Step, Stop, fail, failed};
use super::tools;
use super::{Ctx, ModuleError, Outcome, args};
use crate::plan::Vars;
use serde_json::Value;
use std::collections::BTreeSet;
use std::fs;

const USER_ARGS: &[&str] = &[
    "name",
    "state",
    "uid",
    "group",
    "groups",
    "append",
    "shell",
    "home",
    "create_home",
    "createhome",
    "skeleton",
    "system",
    "comment",
    "password",
    "update_password",
    "remove",
    "force",
    "move_home",
    "non_unique",
    "expires",
    "password_lock",
    "password_expire_min",
    "password_expire_max",
    "password_expire_warn",
    "generate_ssh_key",
    "ssh_key_bits",
    "ssh_key_type",
    "ssh_key_file",
    "ssh_key_comment",
    "ssh_key_passphrase",
];

const GROUP_ARGS: &[&str] = &[
    "name",
    "gid",
    "state",
    "system",
    "non_unique",
    "force",
    "local",
    "gid_min",
    "gid_max",
];

use crate::passwd::{Group as GroupEnt, User as Account, parse_group, parse_user as parse_account};

/// The lines of database `db` (passwd, group, shadow), all of them or those for
/// `key` (a name, or an id for passwd/group). getent when present; the /etc file
/// otherwise, or when getent itself fails for another reason than "not found".
fn entries(db: &str, key: Option<&str>) -> Vec<String> {
    if let Some(getent) = tools::find_bin("getent") {
        let mut argv = vec![db.to_string()];
        argv.extend(key.map(str::to_string));
        if let Ok(out) = tools::run(&getent, &argv, None) {
            // 0: found; 2: no such key. Anything else (1: bad database, 3: no
            // enumeration) falls through to the file.
            if out.rc == 0 || out.rc == 2 {
                return out.stdout.lines().map(str::to_string).collect();
            }
        }
    }
    let text = std::fs::read_to_string(format!("/etc/{db}")).unwrap_or_default();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter(|l| match key {
            None => true,
            Some(k) => {
                let mut f = l.split(':');
                let name = f.next();
                let id = f.nth(1);
                name == Some(k) || (db != "shadow" && id == Some(k))
            }
        })
        .map(str::to_string)
        .collect()
}

/// The account named `name` (by name only: a numeric name is not read as a uid).
fn account(name: &str) -> Option<Account> {
    entries("passwd", Some(name))
        .iter()
        .filter_map(|l| parse_account(l))
        .find(|a| a.name == name)
}

/// The group named `name`, or with gid `name` when it is a number and no group has
/// that name (Ansible accepts either for `group`/`groups`).
fn group(name_or_gid: &str) -> Option<GroupEnt> {
    let found: Vec<GroupEnt> = entries("group", Some(name_or_gid))
        .iter()
        .filter_map(|l| parse_group(l))
        .collect();
    let by_name = found.iter().find(|g| g.name == name_or_gid).cloned();
    by_name.or_else(|| {
        let gid: u32 = name_or_gid.parse().ok()?;
        found.into_iter().find(|g| g.gid == gid)
    })
}

fn all_groups() -> Vec<GroupEnt> {
    entries("group", None)
        .iter()
        .filter_map(|l| parse_group(l))
        .collect()
}

/// The password hash in the shadow database; `None` when unreadable (not root).
fn shadow_hash(name: &str) -> Option<String> {
    entries("shadow", Some(name)).iter().find_map(|l| {
        let mut f = l.split(':');
        (f.next() == Some(name)).then(|| f.next().unwrap_or_default().to_string())
    })
}

/// The account's expiry in the shadow database, in days since the epoch; -1 when the
/// field is empty, as Ansible's `user_password` reads it (`None`: no readable entry).
fn shadow_expires(name: &str) -> Option<i64> {
    entries("shadow", Some(name)).iter().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.first() == Some(&name))
            .then(|| f.get(7).and_then(|e| e.trim().parse().ok()).unwrap_or(-1))
    })
}

/// `expires` as useradd/usermod's `-e` takes it: the UTC date of the instant, or
/// empty (no expiry) for an instant before the epoch.
fn expire_date(expires: f64) -> String {
    if expires < 0.0 {
        return String::new();
    }
    let (y, m, d) = crate::facts::civil((expires / 86_400.0).floor() as i64);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Refuses names the tools would misread (an option) or that cannot be in the
/// colon-separated databases.
fn check_name(arg: &str, name: &str) -> Result<(), ModuleError> {
    if name.is_empty()
        || name.starts_with('-')
        || name
            .chars()
            .any(|c| c == ':' || c == ',' || c.is_whitespace() || c.is_control())
    {
        return Err(ModuleError::BadArgs(format!(
            "argument '{arg}' is not a valid user or group name: '{name}'"
        )));
    }
    Ok(())
}

fn opt_id(a: &Vars, name: &str) -> Result<Option<u32>, ModuleError> {
    match args::opt_str(a, name)? {
        None => Ok(None),
        Some(s) => s.trim().parse().map(Some).map_err(|_| {
            ModuleError::BadArgs(format!("argument '{name}' must be a number, got '{s}'"))
        }),
    }
}

/// A number of days (may be -1, which chage reads as "none").
fn opt_days(a: &Vars, name: &str) -> Result<Option<i64>, ModuleError> {
    match args::opt_str(a, name)? {
        None => Ok(None),
        Some(s) => s.trim().parse().map(Some).map_err(|_| {
            ModuleError::BadArgs(format!("argument '{name}' must be an integer, got '{s}'"))
        }),
    }
}

/// Ansible's `set_password_expire`: the password ages that differ from the shadow
/// entry's (an empty field is -1) are set with chage; an account with no readable
/// entry (check mode, before it exists) is left alone. True when something changed.
fn password_ages(u: &UserArgs, ctx: &Ctx<'_>) -> Step<bool> {
    if u.ages.iter().all(Option::is_none) {
        return Ok(false);
    }
    let Some(have) = entries("shadow", Some(&u.name)).iter().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.first() == Some(&u.name.as_str())).then(|| {
            [3, 4, 5].map(|i| {
                f.get(i)
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(-1i64)
            })
        })
    }) else {
        return Ok(false);
    };
    let mut argv = Vec::new();
    for ((flag, want), have) in ["-m", "-M", "-W"].iter().zip(u.ages).zip(have) {
        if let Some(w) = want.filter(|w| *w != have) {
            argv.extend([flag.to_string(), w.to_string()]);
        }
    }
    if argv.is_empty() {
        return Ok(false);
    }
    if !ctx.check_mode {
        argv.push(u.name.clone());
        change("chage", &argv, &u.name)?;
    }
    Ok(true)
}

fn state_arg(a: &Vars) -> Result<bool, ModuleError> {
    match args::opt_str(a, "state")?.as_deref() {
        None | Some("present") => Ok(true),
        Some("absent") => Ok(false),
        Some(other) => Err(ModuleError::BadArgs(format!(
            "argument 'state' must be one of: present, absent; got '{other}'"
        ))),
    }
}

/// Runs an account tool, retrying while another process holds the passwd/group lock.
/// A failure is a failed outcome with the tool's message, rc and command, as Ansible's.
fn change(tool: &str, argv: &[String], name: &str) -> Step<tools::Output> {
    change_with_input(tool, argv, None, name)
}

/// Sets `name`'s password hash with `chpasswd -e`, which reads `name:hash` on stdin:
/// unlike `useradd -p`/`usermod -p` (what Ansible runs), the hash never appears in the
/// command line, which every local user can read in /proc while the tool runs.
fn set_password(name: &str, hash: &str) -> Step<tools::Output> {
    let line = format!("{name}:{hash}\n");
    change_with_input("chpasswd", &["-e".to_string()], Some(line.as_bytes()), name)
}

#[cfg(test)]
thread_local! {
    /// Every command line this thread's account changes ran, for the tests to inspect.
    static RAN: std::cell::RefCell<Vec<String>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// [`change`] with `input` on the tool's stdin.
fn change_with_input(
    tool: &str,
    argv: &[String],
    input: Option<&[u8]>,
    name: &str,
) -> Step<tools::Output> {
    let Some(bin) = tools::find_bin(tool) else {
        return fail(format!(
            "Failed to find required executable \"{tool}\" in paths: $PATH, /usr/sbin, /sbin"
        ));
    };
    #[cfg(test)]
    RAN.with(|r| r.borrow_mut().push(tools::shown(&bin, argv)));
    let mut attempt = 0u32;
    loop {
        let out = tools::run(&bin, argv, input)
            .map_err(|e| failed(Outcome::fail(format!("could not run {tool}: {e}"))))?;
        if out.rc == 0 {
            return Ok(out);
        }
        // Exit 10 is "can't update group file"; both it and "cannot lock" are what a
        // concurrent holder of the lock causes, and go away when it is released.
        let locked = out.rc == 10 || out.stderr.to_ascii_lowercase().contains("lock");
        if locked && attempt < 6 {
            attempt += 1;
            std::thread::sleep(std::time::Duration::from_millis(150 * u64::from(attempt)));
            continue;
        }
        let msg = match out.stderr.trim() {
            "" => format!("{tool} failed with return code {}", out.rc),
            e => e.to_string(),
        };
        return Err(failed(
            Outcome::fail(msg)
                .with("name", name)
                .with("rc", out.rc)
                .with("cmd", tools::shown(&bin, argv))
                .with("stdout", out.stdout.clone())
                .with("stderr", out.stderr.clone()),
        ));
    }
}

/// The `user` module.
pub(super) fn user(a: &Vars, ctx: &Ctx<'_>) -> Result<Outcome, ModuleError> {
    let out = fsutil::finish(user_inner(a, ctx))?;
    let password = args::opt_str(a, "password")?;
    Ok(match password.as_deref().filter(|p| !looks_hashed(p)) {
        Some(_) => out.warn(
            "The input password appears not to have been hashed. The 'password' argument must be encrypted for this module to work properly.",
        ),
        None => out,
    })
}

/// Ansible's `check_password_encrypted`: a password given to useradd/usermod must be a
/// crypt(3) hash (`$id$...$hash` of the right length for md5, sha256, sha512 and
/// yescrypt, in the crypt alphabet) or one of the lock markers; anything else is
/// warned about (it is most likely a plain text password, stored as is).
fn looks_hashed(p: &str) -> bool {
    if p.is_empty() || ["*", "!", "*************"].contains(&p) {
        return true;
    }
    if p.contains([':', '*', '!']) || !p.contains('$') {
        return false;
    }
    let fields: Vec<&str> = p.split('$').collect();
    let (Some(id), Some(hash)) = (fields.get(1), fields.last()) else {
        return false;
    };
    if fields.len() < 3
        || !hash
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "./=".contains(c))
    {
        return false;
    }
    let want = match *id {
        "1" => Some(22),
        "5" | "y" => Some(43),
        "6" => Some(86),
        _ => None,
    };
    want.is_none_or(|n| hash.len() == n)
}

/// The user's arguments, decoded.
struct UserArgs {
    name: String,
    uid: Option<u32>,
    group: Option<String>,
    /// `None` when not given; an empty list for `groups: ""` (leave all groups).
    groups: Option<Vec<String>>,
    append: bool,
    shell: Option<String>,
    home: Option<String>,
    create_home: bool,
    skeleton: Option<String>,
    system: bool,
    comment: Option<String>,
    password: Option<String>,
    update_always: bool,
    /// `expires`: the account's expiry as epoch seconds (negative: none).
    expires: Option<f64>,
    /// `password_lock`: lock (`!` before the hash) or unlock the password.
    password_lock: Option<bool>,
    /// `password_expire_min`/`_max`/`_warn`: the shadow ages, in days (chage -m/-M/-W).
    ages: [Option<i64>; 3],
    move_home: bool,
    non_unique: bool,
}

fn user_args(a: &Vars) -> Result<UserArgs, ModuleError> {
    let name = args::req_str(a, "name")?;
    check_name("name", &name)?;
    let group = args::opt_str(a, "group")?;
    if let Some(g) = &group {
        check_name("group", g)?;
    }
    let groups = match a.get("groups") {
        None | Some(Value::Null) => None,
        Some(_) => {
            let mut out = Vec::new();
            for item in args::str_list(a, "groups")? {
                for g in item.split(',').map(str::trim).filter(|g| !g.is_empty()) {
                    check_name("groups", g)?;
                    out.push(g.to_string());
                }
            }
            Some(out)
        }
    };
    let create_home = match args::opt_bool(a, "create_home")? {
        Some(b) => b,
        None => args::bool_or(a, "createhome", true)?,
    };
    let update_always = match args::opt_str(a, "update_password")?.as_deref() {
        None | Some("always") => true,
        Some("on_create") => false,
        Some(other) => {
            return Err(ModuleError::BadArgs(format!(
                "argument 'update_password' must be one of: always, on_create; got '{other}'"
            )));
        }
    };
    let no_newline = |arg: &str, v: Option<String>| match v {
        Some(s) if s.contains(['\n', ':']) => Err(ModuleError::BadArgs(format!(
            "argument '{arg}' must not contain ':' or a newline"
        ))),
        v => Ok(v),
    };
    Ok(UserArgs {
        name,
        uid: opt_id(a, "uid")?,
        group,
        groups,
        append: args::bool_or(a, "append", false)?,
        shell: no_newline("shell", args::opt_str(a, "shell")?)?,
        home: no_newline("home", args::opt_str(a, "home")?)?,
        create_home,
        skeleton: args::opt_str(a, "skeleton")?,
        system: args::bool_or(a, "system", false)?,
        comment: no_newline("comment", args::opt_str(a, "comment")?)?,
        password: no_newline("password", args::opt_str(a, "password")?)?,
        update_always,
        expires: match a.get("expires") {
            None | Some(serde_json::Value::Null) => None,
            Some(v) => Some(
                v.as_f64()
                    .or_else(|| v.as_str().and_then(|t| t.trim().parse().ok()))
                    .filter(|f| f.is_finite())
                    .ok_or_else(|| {
                        ModuleError::BadArgs(format!("Invalid value for 'expires' {v}"))
                    })?,
            ),
        },
        password_lock: args::opt_bool(a, "password_lock")?,
        ages: [
            opt_days(a, "password_expire_min")?,
            opt_days(a, "password_expire_max")?,
            opt_days(a, "password_expire_warn")?,
        ],
        move_home: args::bool_or(a, "move_home", false)?,
        non_unique: args::bool_or(a, "non_unique", false)?,
    })
}

fn user_inner(a: &Vars, ctx: &Ctx<'_>) -> Step<Outcome> {
    args::only(a, USER_ARGS)?;
    let present = state_arg(a)?;
    let remove = args::bool_or(a, "remove", false)?;
    let force = args::bool_or(a, "force", false)?;
    let u = user_args(a)?;
    let existing = account(&u.name);
    if !present {
        let base = Outcome::ok()
            .with("name", u.name.clone())
            .with("state", "absent");
        if existing.is_none() {
            return Ok(base);
        }
        let mut o = base.with("force", force).with("remove", remove);
        o.changed = true;
        if ctx.check_mode {
            return Ok(o);
        }
        let mut argv = Vec::new();
        if force {
            argv.push("-f".to_string());
        }
        if remove {
            argv.push("-r".to_string());
        }
        argv.push(u.name.clone());
        let out = change("userdel", &argv, &u.name)?;
        return Ok(o
            .with("stdout", out.stdout)
            .with("stderr", out.stderr.trim_end().to_string()));
    }

    // Ansible's module ends a check-mode run for an account that is not there yet
    // before it looks at the groups (an earlier checked task may create them).
    let missing_group = u
        .group
        .iter()
        .chain(u.groups.iter().flatten())
        .any(|g| group(g).is_none());
    if existing.is_none() && ctx.check_mode && missing_group {
        return Ok(Outcome::changed(true));
    }
    // Every named group must exist, as useradd would refuse otherwise.
    let primary = match &u.group {
        Some(g) => match group(g) {
            Some(ent) => Some(ent),
            None => return fail(format!("Group {g} does not exist")),
        },
        None => None,
    };
    let mut wanted = Vec::new();
    for g in u.groups.iter().flatten() {
        match group(g) {
            Some(ent) => wanted.push(ent),
            None => return fail(format!("Group {g} does not exist")),
        }
    }
    let mut o = match &existing {
        None => create_user(&u, primary.as_ref(), &wanted, ctx)?,
        Some(acct) => modify_user(&u, acct, primary.as_ref(), &wanted, ctx)?,
    };
    o.changed |= password_ages(&u, ctx)?;
    // Ansible's "handle missing homedirs": an account whose home is missing gets one.
    if u.create_home
        && let Some(acct) = account(&u.name)
    {
        let home = u.home.clone().unwrap_or_else(|| acct.home.clone());
        if !home.is_empty() && fs::symlink_metadata(&home).is_err() {
            if !ctx.check_mode {
                make_home(&u, std::path::Path::new(&home), acct.uid, acct.gid)?;
            }
            o.changed = true;
        }
    }
    let key = match ssh_key_args(a)? {
        Some(k) => Some(ssh_key(&u, &k, force, ctx)?),
        None => None,
    };
    // Report the account as it now is (in check mode: as it was, or what was asked).
    let now = if ctx.check_mode {
        existing
    } else {
        account(&u.name)
    };
    o = o.with("name", u.name.clone()).with("state", "present");
    match now {
        Some(acct) => {
            o = o
                .with("uid", acct.uid)
                .with("group", acct.gid)
                .with("comment", acct.gecos)
                .with("home", acct.home)
                .with("shell", acct.shell);
        }
        None => {
            // Check mode, new user: what was asked for.
            for (k, v) in [
                ("comment", &u.comment),
                ("home", &u.home),
                ("shell", &u.shell),
            ] {
                if let Some(v) = v {
                    o = o.with(k, v.clone());
                }
            }
            if let Some(uid) = u.uid {
                o = o.with("uid", uid);
            }
            if let Some(g) = &primary {
                o = o.with("group", g.gid);
            }
        }
    }
    if let Some(groups) = &u.groups {
        o = o.with("groups", groups.join(","));
    }
    if u.password.is_some() {
        o = o.with("password", "NOT_LOGGING_PASSWORD");
    }
    if let Some(k) = key {
        o.changed |= k.changed;
        for w in k.warnings {
            o = o.warn(w);
        }
        o = o
            .with("ssh_fingerprint", k.fingerprint)
            .with("ssh_key_file", k.file)
            .with(
                "ssh_public_key",
                k.public_key.map_or(Value::Null, Value::String),
            );
    }
    Ok(o)
}

/// `generate_ssh_key` and its options.
struct SshKeyArgs {
    kind: String,
    bits: u64,
    /// As given: relative to the user's home unless absolute.
    file: String,
    comment: String,
    passphrase: Option<String>,
}

fn ssh_key_args(a: &Vars) -> Result<Option<SshKeyArgs>, ModuleError> {
    if !args::bool_or(a, "generate_ssh_key", false)? {
        return Ok(None);
    }
    let kind = args::opt_str(a, "ssh_key_type")?.unwrap_or_else(|| "rsa".into());
    let bits = match a.get("ssh_key_bits") {
        None | Some(Value::Null) => 0,
        Some(v) => v
            .as_u64()
            .or_else(|| v.as_str().and_then(|t| t.trim().parse().ok()))
            .ok_or_else(|| {
                ModuleError::BadArgs(format!(
                    "argument 'ssh_key_bits' must be an integer, got {v}"
                ))
            })?,
    };
    let passphrase = args::opt_str(a, "ssh_key_passphrase")?;
    if passphrase
        .as_deref()
        .is_some_and(|p| p.contains(['\n', '\r']))
    {
        // The askpass helper hands ssh-keygen one line.
        return Err(ModuleError::BadArgs(
            "argument 'ssh_key_passphrase' must not contain a line break".into(),
        ));
    }
    Ok(Some(SshKeyArgs {
        file: args::opt_str(a, "ssh_key_file")?.unwrap_or_else(|| format!(".ssh/id_{kind}")),
        comment: args::opt_str(a, "ssh_key_comment")?.unwrap_or_else(|| {
            format!(
                "ansible-generated on {}",
                crate::facts::host_name().unwrap_or_default()
            )
        }),
        kind,
        bits,
        passphrase,
    }))
}

/// What `generate_ssh_key` did and found.
struct SshKey {
    changed: bool,
    warnings: Vec<String>,
    fingerprint: String,
    file: String,
    public_key: Option<String>,
}

/// Reads the passphrase ssh-keygen asks for (twice) from the helper's stdin, which it
/// shares with ssh-keygen: one line per question. `read` takes one byte at a time from
/// a pipe, so the second question gets the second line.
const ASKPASS: &str = "#!/bin/sh\nIFS= read -r p || exit 1\nprintf '%s\\n' \"$p\"\n";

/// Ansible's `ssh_key_gen`, then the fingerprint and public key it reports: a key made
/// only when there is none (or `force`), its files given to the user.
fn ssh_key(u: &UserArgs, k: &SshKeyArgs, force: bool, ctx: &Ctx<'_>) -> Step<SshKey> {
    use std::path::Path;
    let acct = account(&u.name);
    let mut out = SshKey {
        changed: false,
        warnings: Vec::new(),
        fingerprint: String::new(),
        file: k.file.clone(),
        public_key: None,
    };
    let Some(acct) = acct else {
        // Check mode, an account still to make: its key would be made too.
        out.changed = true;
        return Ok(out);
    };
    let path = if Path::new(&k.file).is_absolute() {
        k.file.clone()
    } else {
        if !Path::new(&acct.home).exists() {
            return Err(failed(
                Outcome::fail(format!("User {} home directory does not exist", u.name))
                    .with("name", u.name.clone())
                    .with("rc", 1),
            ));
        }
        format!("{}/{}", acct.home.trim_end_matches('/'), k.file)
    };
    out.file = path.clone();
    let public = format!("{path}.pub");
    let generated = generate(u, k, &acct, &path, &public, force, ctx, &mut out.warnings)?;
    out.changed = generated;
    // The fingerprint and public key as they now are (also in check mode).
    if Path::new(&path).exists()
        && let Some(bin) = tools::find_bin("ssh-keygen")
    {
        let args = ["-l".to_string(), "-f".to_string(), path.clone()];
        if let Ok(o) = tools::run(&bin, &args, None) {
            out.fingerprint = if o.rc == 0 { o.stdout } else { o.stderr }
                .trim()
                .to_string();
        }
    }
    out.public_key = fs::read_to_string(&public)
        .ok()
        .map(|t| t.trim().to_string());
    Ok(out)
}

/// Makes the key pair unless one is there (or with `force`): true when it did (or
/// would, in check mode).
#[allow(clippy::too_many_arguments)]
fn generate(
    u: &UserArgs,
    k: &SshKeyArgs,
    acct: &Account,
    path: &str,
    public: &str,
    force: bool,
    ctx: &Ctx<'_>,
    warnings: &mut Vec<String>,
) -> Step<bool> {
    use std::os::unix::fs::DirBuilderExt as _;
    use std::path::Path;
    let fail_rc = |msg: String, rc: i32| {
        failed(
            Outcome::fail(msg)
                .with("name", u.name.clone())
                .with("rc", rc),
        )
    };
    let mut changed = false;
    if let Some(dir) = Path::new(path).parent()
        && !dir.exists()
    {
        if ctx.check_mode {
            return Ok(true);
        }
        fs::DirBuilder::new()
            .mode(0o700)
            .create(dir)
            .and_then(|()| std::os::unix::fs::chown(dir, Some(acct.uid), Some(acct.gid)))
            .map_err(|e| fail_rc(format!("Failed to create {}: {e}", dir.display()), 1))?;
        changed = true;
    }
    let overwrite = Path::new(path).exists();
    // An existing key is left alone without `force`; with it, the public file goes
    // first (ssh-keygen is asked to replace the private one).
    for (kind, file) in [("private", path), ("public", public)] {
        if !Path::new(file).exists() {
            continue;
        }
        if !force {
            warnings.push(format!(
                "Found existing ssh key {kind} file \"{file}\", no force, so skipping ssh-keygen generation"
            ));
            return Ok(changed);
        }
        warnings.push(format!(
            "Overwriting existing ssh key {kind} file \"{file}\""
        ));
        if kind == "public" && !ctx.check_mode {
            fs::remove_file(file).map_err(|e| fail_rc(format!("{file}: {e}"), 1))?;
        }
    }
    if ctx.check_mode {
        return Ok(true);
    }
    let Some(bin) = tools::find_bin("ssh-keygen") else {
        return fail(
            "Failed to find required executable \"ssh-keygen\" in paths: $PATH, /usr/sbin, /sbin",
        );
    };
    let mut argv = vec!["-t".to_string(), k.kind.clone()];
    if k.bits > 0 {
        argv.extend(["-b".to_string(), k.bits.to_string()]);
    }
    argv.extend([
        "-C".to_string(),
        k.comment.clone(),
        "-f".to_string(),
        path.to_string(),
    ]);
    let mut cmd = ctx.command(&bin);
    let helper;
    let input = match &k.passphrase {
        None => {
            argv.extend(["-N".to_string(), String::new()]);
            // ssh-keygen asks before replacing a key: yes.
            overwrite.then(|| b"y\n".to_vec())
        }
        Some(p) => {
            // The helper shares ssh-keygen's stdin, which can then hold nothing but the
            // passphrase: the old key goes first, so ssh-keygen asks no question of
            // its own.
            if overwrite {
                fs::remove_file(path).map_err(|e| fail_rc(format!("{path}: {e}"), 1))?;
            }
            helper = tools::PrivateDir::new("askpass")
                .and_then(|d| {
                    d.write("askpass", ASKPASS.as_bytes(), 0o700)
                        .map(|p| (d, p))
                })
                .map_err(|e| fail_rc(format!("cannot make the askpass helper: {e}"), 1))?;
            cmd.env("SSH_ASKPASS", &helper.1)
                .env("SSH_ASKPASS_REQUIRE", "force")
                .env("DISPLAY", ":0");
            Some(format!("{p}\n{p}\n").into_bytes())
        }
    };
    let o = tools::run_command(cmd, &argv, input.as_deref())
        .map_err(|e| fail_rc(format!("could not run ssh-keygen: {e}"), 1))?;
    if o.rc != 0 {
        return Err(fail_rc(o.stderr.trim().to_string(), o.rc));
    }
    for f in [path, public] {
        std::os::unix::fs::chown(f, Some(acct.uid), Some(acct.gid))
            .map_err(|e| fail_rc(format!("{f}: {e}"), 1))?;
    }
    Ok(true)
}

fn create_user(
    u: &UserArgs,
    primary: Option<&GroupEnt>,
    wanted: &[GroupEnt],
    ctx: &Ctx<'_>,
) -> Step<Outcome> {
    let mut argv: Vec<String> = Vec::new();
    let mut opt = |flag: &str, v: &Option<String>| {
        if let Some(v) = v {
            argv.push(flag.to_string());
            argv.push(v.clone());
        }
    };
    opt("-c", &u.comment);
    opt("-d", &u.home);
    opt("-s", &u.shell);
    if let Some(uid) = u.uid {
        argv.extend(["-u".to_string(), uid.to_string()]);
        if u.non_unique {
            argv.push("-o".into());
        }
    }
    match primary {
        Some(g) => argv.extend(["-g".to_string(), g.name.clone()]),
        // A group already named like the user would make useradd (with
        // USERGROUPS_ENAB) fail creating it; -N leaves it alone, as Ansible does.
        None if group(&u.name).is_some() => argv.push("-N".into()),
        None => {}
    }
    if !wanted.is_empty() {
        let names: Vec<&str> = wanted.iter().map(|g| g.name.as_str()).collect();
        argv.extend(["-G".to_string(), names.join(",")]);
    }
    if u.system {
        argv.push("-r".into());
    }
    if let Some(e) = u.expires {
        argv.extend(["-e".to_string(), expire_date(e)]);
    }
    if u.create_home {
        argv.push("-m".into());
        if let Some(skel) = &u.skeleton {
            argv.extend(["-k".to_string(), skel.clone()]);
        }
    } else {
        argv.push("-M".into());
    }
    argv.push(u.name.clone());
    let o = Outcome::changed(true)
        .with("create_home", u.create_home)
        .with("system", u.system);
    if ctx.check_mode {
        return Ok(o);
    }
    // Whether useradd makes the home directory, or finds it there (and must then leave
    // it, should the account be taken back below).
    let home = u
        .home
        .clone()
        .unwrap_or_else(|| format!("{}/{}", useradd_home_base(), u.name));
    let home_was_there = std::path::Path::new(&home).exists();
    let out = change("useradd", &argv, &u.name)?;
    // A locked password is the hash behind `!`, as Ansible's useradd -p '!hash'.
    let password = u.password.as_ref().map(|pw| match u.password_lock {
        Some(true) => format!("!{pw}"),
        _ => pw.clone(),
    });
    if let Some(pw) = &password
        && let Err(stop) = set_password(&u.name, pw)
    {
        return Err(take_back(u, &home, home_was_there, stop));
    }
    Ok(o.with("stderr", out.stderr.trim_end().to_string()))
}

/// The account `u` was just created and its password could not be set (`stop` says
/// why). Left so, it would stay without a password for good under
/// `update_password: on_create` (a later run does not set the password of an account
/// that exists), so it is removed again, with the home directory useradd made for it,
/// and the task fails saying so: the next run creates it again, password included.
fn take_back(u: &UserArgs, home: &str, home_was_there: bool, stop: Stop) -> Stop {
    let Stop::Failed(mut failed_outcome) = stop else {
        return stop;
    };
    let why = failed_outcome.msg.take().unwrap_or_default();
    let made_home =
        u.create_home && !home_was_there && account(&u.name).is_some_and(|a| a.home == home);
    let mut argv = Vec::new();
    if made_home {
        argv.push("-r".to_string());
    }
    argv.push(u.name.clone());
    let msg = match change("userdel", &argv, &u.name) {
        Ok(_) => format!(
            "{why}: the account {} was created but its password could not be set, so it was removed again; the next run creates it with its password",
            u.name
        ),
        Err(_) => format!(
            "{why}: the account {} was created but its password could not be set, and removing it again failed too: set its password or remove it by hand",
            u.name
        ),
    };
    failed_outcome.msg = Some(msg);
    Stop::Failed(failed_outcome)
}

/// Ansible's `create_homedir` and `chown_homedir` for an existing account: the
/// skeleton (`skeleton`, else /etc/skel) copied with its symlinks as links, or an empty
/// directory; the mode login.defs gives homes (HOME_MODE, else 0777 less UMASK, else
/// 0755); everything owned by the account (links themselves, never what they name).
fn make_home(u: &UserArgs, home: &std::path::Path, uid: u32, gid: u32) -> Step<()> {
    let skel = u.skeleton.as_deref().unwrap_or("/etc/skel");
    let made = if skel != "/dev/null" && std::path::Path::new(skel).is_dir() {
        copy_tree(std::path::Path::new(skel), home)
    } else {
        fs::create_dir_all(home)
    };
    made.map_err(|e| fsutil::io_fail("create the home directory", home, &e))?;
    let mut mode = 0o755;
    if let Ok(defs) = fs::read_to_string("/etc/login.defs") {
        for line in defs.lines() {
            let mut f = line.split_whitespace();
            let (key, value) = (
                f.next(),
                f.next().and_then(|v| u32::from_str_radix(v, 8).ok()),
            );
            match (key, value, f.next()) {
                (Some("HOME_MODE"), Some(m), None) => {
                    mode = m;
                    break;
                }
                (Some("UMASK"), Some(m), None) => mode = 0o777 & !m,
                _ => {}
            }
        }
    }
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(home, fs::Permissions::from_mode(mode))
        .map_err(|e| fsutil::io_fail("set the mode of", home, &e))?;
    chown_tree(home, uid, gid).map_err(|e| fsutil::io_fail("change the owner of", home, &e))
}

/// Copies the directory `from` to the new directory `to`, symlinks as symlinks.
fn copy_tree(from: &std::path::Path, to: &std::path::Path) -> std::io::Result<()> {
    fs::create_dir_all(to)?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let t = entry.file_type()?;
        if t.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(&src)?, &dst)?;
        } else if t.is_dir() {
            copy_tree(&src, &dst)?;
        } else {
            fs::copy(&src, &dst)?;
        }
    }
    Ok(())
}

/// Gives `path` and everything below it to `uid`/`gid`, links themselves (lchown).
fn chown_tree(path: &std::path::Path, uid: u32, gid: u32) -> std::io::Result<()> {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid))?;
    if fs::symlink_metadata(path)?.is_dir() {
        for entry in fs::read_dir(path)? {
            chown_tree(&entry?.path(), uid, gid)?;
        }
    }
    Ok(())
}

/// The directory useradd puts new homes in (`HOME=` in /etc/default/useradd, else /home).
fn useradd_home_base() -> String {
    std::fs::read_to_string("/etc/default/useradd")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.trim().strip_prefix("HOME="))
                .map(|v| v.trim().trim_matches('"').to_string())
        })
        .filter(|h| h.starts_with('/'))
        .unwrap_or_else(|| "/home".to_string())
}

fn modify_user(
    u: &UserArgs,
    acct: &Account,
    primary: Option<&GroupEnt>,
    wanted: &[GroupEnt],
    ctx: &Ctx<'_>,
) -> Step<Outcome> {
    let mut argv: Vec<String> = Vec::new();
    if let Some(uid) = u.uid
        && uid != acct.uid
    {
        argv.extend(["-u".to_string(), uid.to_string()]);
        if u.non_unique {
            argv.push("-o".into());
        }
    }
    let target_gid = primary.map_or(acct.gid, |g| g.gid);
    if let Some(g) = primary
        && g.gid != acct.gid
    {
        argv.extend(["-g".to_string(), g.name.clone()]);
    }
    if u.groups.is_some() {
        // Supplementary groups only: the primary group is membership by gid.
        let current = all_groups_of(&acct.name, target_gid);
        let want: BTreeSet<String> = wanted
            .iter()
            .filter(|g| g.gid != target_gid)
            .map(|g| g.name.clone())
            .collect();
        let names: Vec<&str> = want.iter().map(String::as_str).collect();
        if u.append {
            if !want.is_subset(&current) {
                argv.extend(["-a".to_string(), "-G".to_string(), names.join(",")]);
            }
        } else if want != current {
            argv.extend(["-G".to_string(), names.join(",")]);
        }
    }
    for (flag, want, have) in [
        ("-c", &u.comment, &acct.gecos),
        ("-s", &u.shell, &acct.shell),
    ] {
        if let Some(w) = want
            && w != have
        {
            argv.extend([flag.to_string(), w.clone()]);
        }
    }
    if let Some(home) = &u.home
        && *home != acct.home
    {
        argv.extend(["-d".to_string(), home.clone()]);
        if u.move_home {
            argv.push("-m".into());
        }
    }
    if let Some(want) = u.expires {
        // Ansible compares the day (UTC) only, and clears an expiry that is set.
        // No shadow entry reads as day 0, as Ansible's `user_password()[1] or 0`.
        let have = shadow_expires(&acct.name).unwrap_or(0);
        let differs = if want < 0.0 {
            have >= 0
        } else {
            have < 0 || expire_date(want) != expire_date(have as f64 * 86_400.0)
        };
        if differs {
            argv.extend(["-e".to_string(), expire_date(want)]);
        }
    }
    let current = shadow_hash(&acct.name).unwrap_or_default();
    let locked = current.starts_with('!');
    // Ansible's comparison ignores the lock marker on both sides.
    let new_password = u
        .password
        .as_ref()
        .filter(|pw| {
            u.update_always && current.trim_start_matches('!') != pw.trim_start_matches('!')
        })
        .map(|pw| match u.password_lock {
            Some(true) => format!("!{pw}"),
            _ => pw.clone(),
        });
    // Lock or unlock with usermod, unless a new password is set (with its lock) anyway.
    if new_password.is_none() {
        match u.password_lock {
            Some(true) if !locked => argv.push("-L".into()),
            Some(false) if locked => argv.push("-U".into()),
            _ => {}
        }
    }
    let mut o = Outcome::ok()
        .with("append", u.append)
        .with("move_home", u.move_home);
    if argv.is_empty() && new_password.is_none() {
        return Ok(o);
    }
    o.changed = true;
    if ctx.check_mode {
        return Ok(o);
    }
    let mut stderr = String::new();
    if !argv.is_empty() {
        argv.push(acct.name.clone());
        stderr = change("usermod", &argv, &acct.name)?.stderr;
    }
    if let Some(pw) = new_password {
        set_password(&acct.name, &pw)?;
    }
    Ok(o.with("stderr", stderr.trim_end().to_string()))
}

/// The names of the groups that list `user` as a member, other than the one with
/// `primary_gid`.
fn all_groups_of(user: &str, primary_gid: u32) -> BTreeSet<String> {
    all_groups()
        .into_iter()
        .filter(|g| g.gid != primary_gid && g.members.iter().any(|m| m == user))
        .map(|g| g.name)
        .collect()
}

/// The `group` module.
pub(super) fn group_module(a: &Vars, ctx: &Ctx<'_>) -> Result<Outcome, ModuleError> {
    fsutil::finish(group_inner(a, ctx))
}

fn group_inner(a: &Vars, ctx: &Ctx<'_>) -> Step<Outcome> {
    args::only(a, GROUP_ARGS)?;
    let name = args::req_str(a, "name")?;
    check_name("name", &name)?;
    let present = state_arg(a)?;
    let gid = opt_id(a, "gid")?;
    let system = args::bool_or(a, "system", false)?;
    let non_unique = args::bool_or(a, "non_unique", false)?;
    // The module's `required_if`, checked before anything is looked at.
    if non_unique && gid.is_none() {
        return Err(ModuleError::BadArgs(
            "non_unique is True but all of the following are missing: gid".into(),
        )
        .into());
    }
    let force = args::bool_or(a, "force", false)?;
    let local = args::bool_or(a, "local", false)?;
    let gid_min = opt_id(a, "gid_min")?;
    let gid_max = opt_id(a, "gid_max")?;
    // The module's own checks, in its order.
    if force && local {
        return fsutil::fail(
            "force is not a valid option for local, force=True and local=True are mutually exclusive",
        );
    }
    if local && gid_min.is_some() {
        return fsutil::fail("'gid_min' can not be used with 'local'");
    }
    if local && gid_max.is_some() {
        return fsutil::fail("'gid_max' can not be used with 'local'");
    }
    if local {
        return fsutil::fail(
            "local: groups in the local files through libuser's lgroupadd/lgroupmod/lgroupdel are not supported yet",
        );
    }
    let existing = group(&name).filter(|g| g.name == name);
    let base = Outcome::ok().with("name", name.clone());
    if !present {
        let mut o = base.with("state", "absent");
        if existing.is_none() {
            return Ok(o);
        }
        o.changed = true;
        if !ctx.check_mode {
            let mut argv = Vec::new();
            if force {
                argv.push("-f".to_string());
            }
            argv.push(name.clone());
            change("groupdel", &argv, &name)?;
        }
        return Ok(o);
    }
    let mut o = base.with("state", "present").with("system", system);
    let mut argv: Vec<String> = Vec::new();
    let tool = match &existing {
        None => {
            if let Some(g) = gid {
                argv.extend(["-g".to_string(), g.to_string()]);
                if non_unique {
                    argv.push("-o".into());
                }
            }
            if system {
                argv.push("-r".into());
            }
            // The range groupadd picks a new gid from (login.defs' keys).
            for (key, v) in [("GID_MIN", gid_min), ("GID_MAX", gid_max)] {
                if let Some(v) = v {
                    argv.extend(["-K".to_string(), format!("{key}={v}")]);
                }
            }
            "groupadd"
        }
        Some(g) => {
            if let Some(want) = gid
                && want != g.gid
            {
                argv.extend(["-g".to_string(), want.to_string()]);
                if non_unique {
                    argv.push("-o".into());
                }
            }
            "groupmod"
        }
    };
    if existing.is_none() || !argv.is_empty() {
        o.changed = true;
        if !ctx.check_mode {
            argv.push(name.clone());
            change(tool, &argv, &name)?;
        }
    }
    let now = if ctx.check_mode {
        existing.map(|g| g.gid).or(gid).map(|g| gid.unwrap_or(g))
    } else {
        group(&name).filter(|g| g.name == name).map(|g| g.gid)
    };
    if let Some(g) = now {
        o = o.with("gid", g);
    }
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    /// Account tests change the one passwd database: one at a time.
    static LOCK: Mutex<()> = Mutex::new(());

    fn run(module: &str, args: Value, check_mode: bool) -> Result<Outcome, ModuleError> {
        let args = args.as_object().unwrap();
        crate::modules::run_for_test(module, args, &BTreeMap::new(), &json!({}), check_mode)
    }

    /// Removes the test's users and groups even when an assertion fails.
    struct Cleanup {
        users: Vec<String>,
        groups: Vec<String>,
    }

    impl Drop for Cleanup {
        fn drop(&mut self) {
            for u in &self.users {
                if account(u).is_some() {
                    let _ = change("userdel", &["-r".into(), u.clone()], u);
                }
            }
            for g in &self.groups {
                if group(g).is_some_and(|e| &e.name == g) {
                    let _ = change("groupdel", std::slice::from_ref(g), g);
                }
            }
        }
    }

    fn cleanup(users: &[&str], groups: &[&str]) -> Cleanup {
        let c = Cleanup {
            users: users.iter().map(|s| s.to_string()).collect(),
            groups: groups.iter().map(|s| s.to_string()).collect(),
        };
        // Leftovers of an earlier, killed run would make the first step "ok".
        drop(Cleanup {
            users: c.users.clone(),
            groups: c.groups.clone(),
        });
        c
    }

    fn members_of(g: &str) -> Vec<String> {
        group(g).unwrap().members
    }

    #[test]
    fn gid_range_and_local() {
        // group's test_create_group_min_max.yml.
        let _l = LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let _c = cleanup(&[], &["rustletestg7", "rustletestg8", "rustletestg6"]);
        let o = run(
            "group",
            json!({"name": "rustletestg7", "gid_min": 47400, "gid_max": 47401}),
            false,
        )
        .unwrap();
        assert!(o.changed && !o.failed, "{o:?}");
        let g7 = group("rustletestg7").unwrap().gid;
        assert!((47400..=47401).contains(&g7), "{g7}");
        let o = run(
            "group",
            json!({"name": "rustletestg8", "gid_min": 47400, "gid_max": 47401}),
            false,
        )
        .unwrap();
        assert!(!o.failed, "{o:?}");
        let o = run(
            "group",
            json!({"name": "rustletestg6", "gid_min": 47400, "gid_max": 47401}),
            false,
        )
        .unwrap();
        assert!(o.failed, "the range is used up: {o:?}");
        let o = run(
            "group",
            json!({"name": "rustletestg6", "gid_min": 1000, "local": true}),
            true,
        )
        .unwrap();
        assert_eq!(
            (o.failed, o.msg.as_deref()),
            (true, Some("'gid_min' can not be used with 'local'"))
        );
    }

    #[test]
    fn non_unique_needs_a_gid() {
        // group's required_if: ['non_unique', True, ['gid']].
        let e = run(
            "group",
            json!({"name": "rustletestg9", "non_unique": true}),
            true,
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("non_unique is True but all of the following are missing: gid"),
            "{e}"
        );
    }

    #[test]
    fn finds_accounts_and_groups_by_name_or_gid() {
        assert_eq!(account("root").unwrap().uid, 0);
        assert_eq!(group("0").unwrap().name, "root");
    }

    #[test]
    fn group_lifecycle() {
        let _l = LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let _c = cleanup(&[], &["rustletestg1"]);
        let check = run("group", json!({"name": "rustletestg1", "gid": 47311}), true).unwrap();
        assert!(check.changed);
        assert!(
            group("rustletestg1").is_none(),
            "check mode created nothing"
        );

        let o = run(
            "group",
            json!({"name": "rustletestg1", "gid": 47311}),
            false,
        )
        .unwrap();
        assert!(o.changed && !o.failed, "{o:?}");
        assert_eq!(o.data["gid"], 47311);
        assert_eq!(o.data["state"], "present");
        assert_eq!(group("rustletestg1").unwrap().gid, 47311);

        let again = run(
            "group",
            json!({"name": "rustletestg1", "gid": 47311}),
            false,
        )
        .unwrap();
        assert!(!again.changed);

        let moved = run(
            "group",
            json!({"name": "rustletestg1", "gid": 47312}),
            false,
        )
        .unwrap();
        assert!(moved.changed);
        assert_eq!(group("rustletestg1").unwrap().gid, 47312);

        let gone = run(
            "group",
            json!({"name": "rustletestg1", "state": "absent"}),
            false,
        )
        .unwrap();
        assert!(gone.changed);
        assert!(group("rustletestg1").is_none());
        let again = run(
            "group",
            json!({"name": "rustletestg1", "state": "absent"}),
            false,
        )
        .unwrap();
        assert!(!again.changed);
    }

    #[test]
    fn user_lifecycle() {
        let _l = LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let _c = cleanup(&["rustletestu1"], &["rustletestg2", "rustletestg3"]);
        for g in ["rustletestg2", "rustletestg3"] {
            assert!(run("group", json!({"name": g}), false).unwrap().changed);
        }
        let home = "/tmp/rustletestu1-home";
        let want = json!({
            "name": "rustletestu1", "uid": 47321, "shell": "/bin/sh", "home": home,
            "comment": "Rustle Test", "groups": "rustletestg2",
            "password": "$6$salt$abcdefghijklmnop",
        });
        let check = run("user", want.clone(), true).unwrap();
        assert!(check.changed);
        assert!(
            account("rustletestu1").is_none(),
            "check mode created nothing"
        );

        let o = run("user", want.clone(), false).unwrap();
        assert!(o.changed && !o.failed, "{o:?}");
        assert_eq!(o.data["uid"], 47321);
        assert_eq!(o.data["home"], home);
        assert_eq!(o.data["shell"], "/bin/sh");
        assert_eq!(o.data["state"], "present");
        assert_eq!(o.data["password"], "NOT_LOGGING_PASSWORD");
        assert!(o.data["group"].is_u64());
        assert!(
            std::path::Path::new(home).is_dir(),
            "create_home made the home"
        );
        assert_eq!(
            shadow_hash("rustletestu1").unwrap(),
            "$6$salt$abcdefghijklmnop"
        );
        assert!(members_of("rustletestg2").contains(&"rustletestu1".to_string()));

        let again = run("user", want.clone(), false).unwrap();
        assert!(!again.changed, "second run is ok: {again:?}");

        // Append a group: the other stays.
        let add = json!({"name": "rustletestu1", "groups": ["rustletestg3"], "append": true});
        let check = run("user", add.clone(), true).unwrap();
        assert!(check.changed);
        assert!(!members_of("rustletestg3").contains(&"rustletestu1".to_string()));
        assert!(run("user", add.clone(), false).unwrap().changed);
        assert!(members_of("rustletestg2").contains(&"rustletestu1".to_string()));
        assert!(members_of("rustletestg3").contains(&"rustletestu1".to_string()));
        assert!(!run("user", add, false).unwrap().changed);

        // Without append, the list is exact.
        let exact = json!({"name": "rustletestu1", "groups": "rustletestg3", "shell": "/bin/bash"});
        let o = run("user", exact.clone(), false).unwrap();
        assert!(o.changed);
        assert_eq!(o.data["shell"], "/bin/bash");
        assert!(!members_of("rustletestg2").contains(&"rustletestu1".to_string()));
        assert!(!run("user", exact, false).unwrap().changed);

        let bad = run(
            "user",
            json!({"name": "rustletestu1", "group": "rustletest-nogroup"}),
            false,
        )
        .unwrap();
        assert!(bad.failed);
        assert_eq!(
            bad.msg.as_deref(),
            Some("Group rustletest-nogroup does not exist")
        );
        // Check mode for an account not there yet does not look at its groups (an
        // earlier checked task may create them); for one that exists it does.
        let new = json!({"name": "rustletest-newuser", "group": "rustletest-nogroup"});
        let o = run("user", new, true).unwrap();
        assert!(o.changed && !o.failed, "{o:?}");
        assert!(account("rustletest-newuser").is_none());
        let o = run(
            "user",
            json!({"name": "rustletestu1", "group": "rustletest-nogroup"}),
            true,
        )
        .unwrap();
        assert!(o.failed, "{o:?}");

        let absent = json!({"name": "rustletestu1", "state": "absent", "remove": true});
        assert!(run("user", absent.clone(), true).unwrap().changed);
        assert!(
            account("rustletestu1").is_some(),
            "check mode removed nothing"
        );
        let o = run("user", absent.clone(), false).unwrap();
        assert!(o.changed && !o.failed, "{o:?}");
        assert!(account("rustletestu1").is_none());
        assert!(!std::path::Path::new(home).exists(), "remove took the home");
        assert!(!run("user", absent, false).unwrap().changed);
    }

    /// `useradd -p HASH` / `usermod -p HASH` showed the hash to every local user (in
    /// /proc/*/cmdline) while the tool ran; it goes on chpasswd's stdin instead, on
    /// creation and on update, and stays idempotent.
    #[test]
    fn password_hashes_never_reach_a_command_line() {
        let _l = LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let _c = cleanup(&["rustletestu2"], &[]);
        RAN.with(|r| r.borrow_mut().clear());
        let first = "$6$rustlesalt$firsthashfirsthashfirsthash";
        let second = "$6$rustlesalt$secondhashsecondhashsecond";
        let create = json!({"name": "rustletestu2", "password": first, "create_home": false});
        let o = run("user", create.clone(), false).unwrap();
        assert!(o.changed && !o.failed, "{o:?}");
        assert_eq!(shadow_hash("rustletestu2").unwrap(), first);
        assert!(
            !run("user", create, false).unwrap().changed,
            "second run is ok"
        );
        // Only the password differs: a change, through chpasswd alone.
        let update = json!({"name": "rustletestu2", "password": second});
        assert!(run("user", update.clone(), true).unwrap().changed);
        assert_eq!(shadow_hash("rustletestu2").unwrap(), first, "check mode");
        let o = run("user", update.clone(), false).unwrap();
        assert!(o.changed && !o.failed, "{o:?}");
        assert_eq!(shadow_hash("rustletestu2").unwrap(), second);
        assert!(!run("user", update, false).unwrap().changed);
        // With another change at once, both happen.
        let both = json!({"name": "rustletestu2", "password": first, "shell": "/bin/sh"});
        assert!(run("user", both.clone(), false).unwrap().changed);
        assert_eq!(shadow_hash("rustletestu2").unwrap(), first);
        assert_eq!(account("rustletestu2").unwrap().shell, "/bin/sh");
        let ran = RAN.with(|r| r.borrow().clone());
        for cmd in &ran {
            assert!(
                !cmd.contains("hash") && !cmd.contains("rustlesalt"),
                "a hash in a command line: {cmd}"
            );
        }
        assert!(ran.iter().any(|c| c.contains("chpasswd")), "{ran:?}");
    }

    /// useradd and then chpasswd: when chpasswd failed, the account stayed without its
    /// password, and with `update_password: on_create` no later run would ever set it.
    /// The account is taken back, the task fails saying so, and the next run creates it
    /// with its password. (chpasswd refuses a line longer than its buffer.)
    #[test]
    fn an_account_whose_password_cannot_be_set_is_not_left_without_one() {
        let _l = LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let _c = cleanup(&["rustletestu3"], &[]);
        let home = "/tmp/rustletestu3-home";
        let _ = std::fs::remove_dir_all(home);
        let refused = format!("$6$rustlesalt${}", "x".repeat(9000));
        let create = |pw: &str| {
            json!({"name": "rustletestu3", "password": pw, "home": home,
                   "update_password": "on_create"})
        };
        let o = run("user", create(&refused), false).unwrap();
        assert!(o.failed, "{o:?}");
        let msg = o.msg.as_deref().unwrap();
        assert!(
            msg.contains("line too long") && msg.contains("removed again"),
            "{msg}"
        );
        assert!(account("rustletestu3").is_none(), "the account was left");
        assert!(
            !std::path::Path::new(home).exists(),
            "its new home was left"
        );

        let good = "$6$rustlesalt$goodhashgoodhashgoodhash";
        let o = run("user", create(good), false).unwrap();
        assert!(o.changed && !o.failed, "{o:?}");
        assert_eq!(shadow_hash("rustletestu3").unwrap(), good);
    }

    /// A home that was there before the account is not the account's to take back.
    #[test]
    fn taking_an_account_back_leaves_a_home_that_was_already_there() {
        let _l = LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let _c = cleanup(&["rustletestu4"], &[]);
        let home = tempfile::tempdir().unwrap();
        std::fs::write(home.path().join("keep"), "mine").unwrap();
        let refused = format!("$6$rustlesalt${}", "x".repeat(9000));
        let o = run(
            "user",
            json!({"name": "rustletestu4", "password": refused,
                   "home": home.path().display().to_string()}),
            false,
        )
        .unwrap();
        assert!(o.failed, "{o:?}");
        assert!(account("rustletestu4").is_none());
        assert_eq!(
            std::fs::read_to_string(home.path().join("keep")).unwrap(),
            "mine"
        );
    }

    #[test]
    fn bad_arguments_are_named() {
        for (args, word) in [
            (json!({"name": "-o"}), "name"),
            (json!({"name": "a:b"}), "name"),
            (json!({"name": "x", "uid": "abc"}), "uid"),
            (json!({"name": "x", "state": "gone"}), "state"),
            (json!({"name": "x", "shel": "/bin/sh"}), "shel"),
            (
                json!({"name": "x", "update_password": "never"}),
                "update_password",
            ),
        ] {
            let e = run("user", args, false).unwrap_err();
            assert!(e.to_string().contains(word), "{e}");
        }
        assert!(run("group", json!({"name": "g", "gid": "x"}), false).is_err());
    }

    /// The user target's passwords: a sha512 crypt hash passes, plain text and a hash
    /// with characters outside crypt's alphabet are warned about, lock markers pass.
    #[test]
    fn plain_text_passwords_are_told_from_hashes() {
        use super::looks_hashed;
        assert!(looks_hashed(
            "$6$rounds=656000$TT4O7jz2M57npccl$33LF6FcUMSW11qrESXL1HX0BS.bsiT6aenFLLiVpsQh6hDtI9pJh5iY7x8J7ePkN4fP8hmElidHXaeD51pbGS."
        ));
        assert!(!looks_hashed("plaintextpassword"));
        assert!(!looks_hashed(
            "$6$rounds=656000$tgK3gYTyRLUmhyv2$lAFrYUQwn7E6VsjPOwQwoSx30lmpiU9r/E0Al7tzKrR9mkodcMEZGe9OXD0H/clOn6qdsUnaL4zefy5fG+++++"
        ));
        assert!(!looks_hashed("$6$salt$short"));
        for marker in ["!", "*", "*************", ""] {
            assert!(looks_hashed(marker), "{marker}");
        }
    }

    /// The user target's expiry and lock: `expires` sets the shadow day (2529881062 is
    /// day 29281, 2050-03-03), the same day again is no change, a negative one clears
    /// it; `password_lock` puts `!` before the hash once, and unlocking takes it away.
    #[test]
    fn expiry_and_password_lock_as_ansible_compares_them() {
        let _l = LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let _c = cleanup(&["rustletestu4"], &[]);
        let hash = "$6$rustlesalt$lockhashlockhashlockhash";
        let with = |extra: Value| {
            let mut a = json!({"name": "rustletestu4", "create_home": false});
            for (k, v) in extra.as_object().unwrap() {
                a[k] = v.clone();
            }
            a
        };
        let create =
            with(json!({"password": hash, "password_lock": true, "expires": 2529881062u64}));
        assert!(run("user", create.clone(), false).unwrap().changed);
        assert_eq!(shadow_hash("rustletestu4").unwrap(), format!("!{hash}"));
        assert_eq!(shadow_expires("rustletestu4"), Some(29281));
        let again = run("user", create, false).unwrap();
        assert!(!again.changed, "{again:?}");
        // Later the same day: no change.
        let same_day = with(json!({"expires": 2529881062u64 + 3600}));
        assert!(!run("user", same_day, false).unwrap().changed);
        let unexpire = with(json!({"expires": -1}));
        assert!(run("user", unexpire.clone(), false).unwrap().changed);
        assert_eq!(shadow_expires("rustletestu4"), Some(-1));
        assert!(!run("user", unexpire, false).unwrap().changed);
        let unlock = with(json!({"password_lock": false}));
        assert!(run("user", unlock.clone(), false).unwrap().changed);
        assert_eq!(shadow_hash("rustletestu4").unwrap(), hash);
        assert!(!run("user", unlock, false).unwrap().changed);
        let lock = with(json!({"password_lock": true}));
        assert!(run("user", lock.clone(), true).unwrap().changed);
        assert_eq!(shadow_hash("rustletestu4").unwrap(), hash, "check mode");
        assert!(run("user", lock.clone(), false).unwrap().changed);
        assert_eq!(shadow_hash("rustletestu4").unwrap(), format!("!{hash}"));
        assert!(!run("user", lock, false).unwrap().changed);
    }

    /// The user target's password ages: each is set once with chage (the shadow
    /// entry's fields 4 to 6), again is no change, 0 is a value like any other.
    #[test]
    fn password_ages_are_set_once() {
        let _l = LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let _c = cleanup(&["rustletestu5"], &[]);
        let user = |extra: Value| {
            let mut a = json!({"name": "rustletestu5", "create_home": false});
            for (k, v) in extra.as_object().unwrap() {
                a[k] = v.clone();
            }
            run("user", a, false).unwrap()
        };
        assert!(user(json!({})).changed);
        let fields = || {
            let line = entries("shadow", Some("rustletestu5")).concat();
            line.split(':').map(str::to_string).collect::<Vec<_>>()
        };
        for (args, field, value) in [
            (json!({"password_expire_max": 10}), 4, "10"),
            (json!({"password_expire_min": 5}), 3, "5"),
            (json!({"password_expire_warn": 28}), 5, "28"),
            (
                json!({"password_expire_min": 0, "password_expire_max": 0}),
                3,
                "0",
            ),
        ] {
            assert!(user(args.clone()).changed, "{args}");
            assert_eq!(fields()[field], value, "{args}: {:?}", fields());
            assert!(!user(args.clone()).changed, "{args} again");
        }
        assert_eq!(fields()[4], "0");
    }

    /// The user target's no_home_fallback: an account made without its home gets one
    /// when a later task has create_home (the default), owned by the account; the next
    /// run changes nothing.
    #[test]
    fn a_missing_home_is_made_for_an_existing_account() {
        use std::os::unix::fs::MetadataExt;
        let _l = LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let _c = cleanup(&["rustletestu6"], &[]);
        let home = "/tmp/rustletestu6-home";
        let _ = std::fs::remove_dir_all(home);
        let without = json!({"name": "rustletestu6", "home": home, "create_home": false});
        assert!(run("user", without, false).unwrap().changed);
        assert!(!std::path::Path::new(home).exists());
        let with = json!({"name": "rustletestu6", "home": home});
        assert!(run("user", with.clone(), true).unwrap().changed);
        assert!(!std::path::Path::new(home).exists(), "check mode");
        let o = run("user", with.clone(), false).unwrap();
        assert!(o.changed && !o.failed, "{o:?}");
        let m = std::fs::metadata(home).unwrap();
        assert!(m.is_dir());
        assert_eq!(m.uid(), account("rustletestu6").unwrap().uid);
        assert!(!run("user", with, false).unwrap().changed);
        let _ = std::fs::remove_dir_all(home);
    }

    /// The user target's ssh key tasks: a key made once (then left alone), replaced
    /// only with `force`, a passphrase that ssh-keygen really set (it unlocks the key,
    /// another does not) and that no process's command line showed.
    #[test]
    fn ssh_keys_are_generated_once_with_a_passphrase_off_the_command_line() {
        let _l = LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let _c = cleanup(&["rustletestu7"], &[]);
        let keygen = |args: &[&str]| {
            std::process::Command::new("ssh-keygen")
                .args(args)
                .output()
                .unwrap()
        };
        let key = json!({"name": "rustletestu7", "generate_ssh_key": true,
                         "ssh_key_file": ".ssh/test_id_rsa", "ssh_key_bits": 2048,
                         "ssh_key_comment": "made by rustle",
                         "ssh_key_passphrase": "secret passphrase"});
        let check = run("user", key.clone(), true).unwrap();
        assert!(check.changed && account("rustletestu7").is_none());
        // Watch every process's command line while the key is made.
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let watch = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
                        if let Ok(c) = std::fs::read(e.path().join("cmdline"))
                            && c.windows(6).any(|w| w == b"secret")
                        {
                            seen.push(String::from_utf8_lossy(&c).into_owned());
                        }
                    }
                }
                seen
            })
        };
        let o = run("user", key.clone(), false).unwrap();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let seen = watch.join().unwrap();
        assert!(
            seen.is_empty(),
            "the passphrase was on a command line: {seen:?}"
        );
        assert!(o.changed && !o.failed, "{o:?}");
        let acct = account("rustletestu7").unwrap();
        let file = format!("{}/.ssh/test_id_rsa", acct.home);
        assert_eq!(o.data["ssh_key_file"], file.as_str());
        let public = std::fs::read_to_string(format!("{file}.pub")).unwrap();
        assert_eq!(o.data["ssh_public_key"], public.trim());
        assert!(public.trim().ends_with("made by rustle"), "{public}");
        let fp = keygen(&["-l", "-f", &file]);
        assert_eq!(
            o.data["ssh_fingerprint"],
            String::from_utf8_lossy(&fp.stdout).trim()
        );
        assert!(
            o.data["ssh_fingerprint"]
                .as_str()
                .unwrap()
                .starts_with("2048 SHA256:")
        );
        assert!(
            keygen(&["-y", "-f", &file, "-P", "secret passphrase"])
                .status
                .success()
        );
        assert!(!keygen(&["-y", "-f", &file, "-P", "other"]).status.success());
        use std::os::unix::fs::MetadataExt as _;
        for f in [file.clone(), format!("{file}.pub")] {
            assert_eq!(std::fs::metadata(&f).unwrap().uid(), acct.uid, "{f}");
        }
        // Made once: a second run leaves it, warning; `force` replaces it.
        let again = run("user", key.clone(), false).unwrap();
        assert!(!again.changed, "{again:?}");
        assert_eq!(
            std::fs::read_to_string(format!("{file}.pub")).unwrap(),
            public
        );
        let mut forced = key.clone();
        forced["force"] = json!(true);
        forced["ssh_key_passphrase"] = Value::Null;
        let o = run("user", forced, false).unwrap();
        assert!(o.changed && !o.failed, "{o:?}");
        assert_ne!(
            std::fs::read_to_string(format!("{file}.pub")).unwrap(),
            public
        );
        assert!(keygen(&["-y", "-f", &file, "-P", ""]).status.success());
        let bad = run(
            "user",
            json!({"name": "rustletestu7", "generate_ssh_key": true,
                   "ssh_key_passphrase": "two\nlines"}),
            false,
        );
        assert!(matches!(bad, Err(ModuleError::BadArgs(m)) if m.contains("ssh_key_passphrase")));
    }
}
