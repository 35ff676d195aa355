//! The template module: render an embedded Jinja template with the task's variables
//! and write the result like copy does (same comparison, backup, atomic write, modes).
//!
//! The template gets Ansible's template variables (`ansible_managed`, `template_path`,
//! ...) and the module's Jinja settings (delimiters, `trim_blocks`, `lstrip_blocks`,
//! `newline_sequence`, and `output_encoding`: UTF-8, UTF-16, Latin-1, ASCII or
//! windows-1252).

use super::fsutil::{self, Attrs, Step, WriteReq, fail};
use super::{Ctx, ModuleError, Outcome, args};
use crate::plan::Vars;

/// The arguments template takes (SSH mode checks the same).
pub const KNOWN: &[&str] = &[
    "src",
    "dest",
    "mode",
    "owner",
    "group",
    "force",
    "backup",
    "follow",
    "attributes",
    "attr",
    "validate",
];

/// The module's Jinja settings, which the runner's template takes (SSH mode does not
/// yet, and refuses them).
const JINJA: &[&str] = &[
    "variable_start_string",
    "variable_end_string",
    "block_start_string",
    "block_end_string",
    "comment_start_string",
    "comment_end_string",
    "trim_blocks",
    "lstrip_blocks",
    "newline_sequence",
    "output_encoding",
];

pub(super) fn run(a: &Vars, ctx: &Ctx<'_>) -> Result<Outcome, ModuleError> {
    fsutil::finish(parse(a).and_then(|t| {
        let rendered = render(&t, ctx)?;
        write(&t, &rendered, ctx)
    }))
}

/// The template module with its text already rendered: what a runner process running as
/// another `become_user` does (see `asuser`), since rendering happens in the runner that
/// holds the variables, as Ansible renders on the controller and runs only the write as
/// that user. The arguments are checked exactly as [`run`] checks them.
pub(super) fn run_rendered(
    a: &Vars,
    rendered: &str,
    ctx: &Ctx<'_>,
) -> Result<Outcome, ModuleError> {
    fsutil::finish(parse(a).and_then(|t| write(&t, rendered, ctx)))
}

/// Template's checked arguments.
pub(super) struct Args {
    /// The embedded template's name.
    pub src: String,
    dest: String,
    force: bool,
    backup: bool,
    follow: bool,
    attrs: Attrs,
    /// Delimiters and block handling.
    setup: crate::ctlfiles::TemplateSetup,
    /// What each newline of the output becomes.
    newline: String,
    /// The codec the output is written in (`output_encoding`).
    encoding: String,
    /// A command that checks the new content first (`%s`: a file holding it), as the
    /// copy the template action hands over to.
    validate: Option<String>,
}

/// Checks the arguments, in the order (and with the messages) the module always had.
pub(super) fn parse(a: &Vars) -> Step<Args> {
    args::only(a, &[KNOWN, JINJA].concat())?;
    let src = args::req_str(a, "src")?;
    let dest = args::req_str(a, "dest")?;
    if dest.is_empty() {
        return Err(ModuleError::BadArgs("argument 'dest' must not be empty".into()).into());
    }
    let force = args::bool_or(a, "force", true)?;
    let backup = args::bool_or(a, "backup", false)?;
    let follow = args::bool_or(a, "follow", false)?;
    let attrs = Attrs::from_args(a)?;
    let validate = super::copy::validate_arg(a)?;
    let mut setup = crate::ctlfiles::TemplateSetup::default();
    let text = |k: &str, default: &str| -> Step<String> {
        Ok(args::opt_str(a, k)?.unwrap_or_else(|| default.to_string()))
    };
    setup.syntax = [
        text("variable_start_string", "{{")?,
        text("variable_end_string", "}}")?,
        text("comment_start_string", "{#")?,
        text("comment_end_string", "#}")?,
    ];
    setup.block = [
        text("block_start_string", "{%")?,
        text("block_end_string", "%}")?,
    ];
    setup.trim_blocks = args::bool_or(a, "trim_blocks", true)?;
    setup.lstrip_blocks = args::bool_or(a, "lstrip_blocks", false)?;
    // As the template action: an escaped sequence (`'\r\n'` in YAML's single quotes)
    // means the characters.
    let newline = match text("newline_sequence", "\n")?.as_str() {
        "\n" | "\\n" => "\n",
        "\r" | "\\r" => "\r",
        "\r\n" | "\\r\\n" => "\r\n",
        _ => return fail("newline_sequence needs to be one of: \n, \r or \r\n"),
    }
    .to_string();
    // An empty `output_encoding` is the default, as the template action reads it.
    let encoding = Some(text("output_encoding", "utf-8")?)
        .filter(|e| !e.is_empty())
        .unwrap_or_else(|| "utf-8".into());
    // A codec not written here fails before anything is rendered.
    if crate::filters::encode_text("", &encoding).is_err() {
        return fail(format!(
            "output_encoding {encoding} is not supported yet: rustle-deploy writes UTF-8, UTF-16, Latin-1, ASCII and windows-1252"
        ));
    }
    Ok(Args {
        src,
        dest,
        force,
        backup,
        follow,
        attrs,
        setup,
        newline,
        encoding,
        validate,
    })
}

/// Renders the embedded template `t.src` with the task's variables and the module's
/// Jinja settings.
pub(super) fn render(t: &Args, ctx: &Ctx<'_>) -> Step<String> {
    let src = t.src.as_str();
    let file = fsutil::embedded(ctx, src)?;
    let Ok(text) = std::str::from_utf8(&file.content) else {
        return fail(format!("template {src} is not valid UTF-8"));
    };
    let mut setup = t.setup.clone();
    let text = match overrides(text, &mut setup) {
        Ok(body) => body,
        Err(msg) => return fail(msg),
    };
    let vars = crate::ctlfiles::layered(ctx.vars, &template_vars(src, &t.dest));
    // Only a template that can include another needs the loader (and its copy of the
    // environment): the template action's search path, as the template lookup's.
    // Only a template that can include another, or has settings of its own, needs the
    // loader (and its copy of the environment): the template action's search path, as
    // the template lookup's.
    let rendered = if ["include", "import", "extends"]
        .iter()
        .any(|w| text.contains(w))
        || !is_default(&setup)
    {
        let place = crate::ctlfiles::LookupPlace::from_vars(ctx.vars);
        let mut search = vec![crate::resolve::dirname(src).to_string()];
        for p in &place.search {
            search.push(crate::resolve::join(p, "templates"));
            search.push(p.clone());
        }
        let setup = crate::ctlfiles::TemplateSetup { search, ..setup };
        ctx.engine.render_with_setup(text, &vars, &setup)
    } else {
        // Jinja2 drops the source's final newline, which trim_blocks would otherwise
        // eat after a closing block tag; Ansible then gives the source's trailing
        // newlines back (preserve_trailing_newlines).
        ctx.engine
            .render_str(text, &vars)
            .map(|r| crate::template::with_trailing_newlines(text, r))
    };
    match rendered {
        // Jinja's newline_sequence: every line of the output ends with it.
        Ok(r) if t.newline != "\n" => Ok(r.replace('\n', &t.newline)),
        Ok(r) => Ok(r),
        // The error's detail, not its Display: that would repeat the whole template.
        Err(e) => fail(format!("error templating {src}: {}", e.detail)),
    }
}

/// The first line of a template that starts `#jinja2:` sets Jinja's options for it
/// (`#jinja2: trim_blocks: False, lstrip_blocks: True`), as ansible-core's
/// `do_template` reads it: comma-separated `key: value` pairs whose values are Python
/// literals; the line is not part of the template. Gives the template without it, or
/// ansible-core's error for a pair without a colon. Options Jinja has but this engine
/// does not (`newline_sequence`, ...) are left as the module set them.
fn overrides<'a>(
    text: &'a str,
    setup: &mut crate::ctlfiles::TemplateSetup,
) -> Result<&'a str, String> {
    const PREFIX: &str = "#jinja2:";
    let Some(rest) = text.strip_prefix(PREFIX) else {
        return Ok(text);
    };
    // Python's `data.find('\n')`: with no newline, -1 drops the last character of the
    // line and keeps the whole text.
    let (line, body) = match rest.find('\n') {
        Some(eol) => (rest.get(..eol), rest.get(eol + 1..)),
        None => (rest.get(..rest.len().saturating_sub(1)), Some(text)),
    };
    let (line, body) = (line.unwrap_or_default(), body.unwrap_or_default());
    for pair in line.split(',') {
        let Some((key, value)) = pair.split_once(':') else {
            return Err(format!(
                "failed to parse jinja2 override '{}'. Did you use something different from colon as key-value separator?",
                pair.trim()
            ));
        };
        let value = value.trim();
        let text = || {
            value
                .strip_prefix('\'')
                .and_then(|v| v.strip_suffix('\''))
                .or_else(|| value.strip_prefix('"').and_then(|v| v.strip_suffix('"')))
                .map(str::to_string)
                .ok_or_else(|| format!("malformed node or string: {value}"))
        };
        let flag = || match value {
            "True" => Ok(true),
            "False" => Ok(false),
            _ => Err(format!("malformed node or string: {value}")),
        };
        match key.trim() {
            "trim_blocks" => setup.trim_blocks = flag()?,
            "lstrip_blocks" => setup.lstrip_blocks = flag()?,
            "variable_start_string" => setup.syntax[0] = text()?,
            "variable_end_string" => setup.syntax[1] = text()?,
            "comment_start_string" => setup.syntax[2] = text()?,
            "comment_end_string" => setup.syntax[3] = text()?,
            "block_start_string" => setup.block[0] = text()?,
            "block_end_string" => setup.block[1] = text()?,
            "line_statement_prefix" => setup.line_prefixes[0] = Some(text()?),
            "line_comment_prefix" => setup.line_prefixes[1] = Some(text()?),
            _ => {}
        }
    }
    Ok(body)
}

/// Whether `setup` is Jinja's delimiters with Ansible's block handling.
fn is_default(setup: &crate::ctlfiles::TemplateSetup) -> bool {
    let d = crate::ctlfiles::TemplateSetup::default();
    setup.syntax == d.syntax
        && setup.block == d.block
        && setup.trim_blocks == d.trim_blocks
        && setup.lstrip_blocks == d.lstrip_blocks
        && setup.line_prefixes == d.line_prefixes
}

/// The variables Ansible's `generate_ansible_template_vars` adds for a template. The
/// payload carries no file times or owners, so `template_mtime` is the time of the run
/// and `template_uid` the user the runner runs as; `template_host` is this host's name
/// (Ansible's is the controller's); `template_path` is the controller path found for
/// `src`, as is `template_fullpath`; `template_destpath` is `dest` as the task gives it.
fn template_vars(src: &str, dest: &str) -> Vars {
    let now = crate::facts::format_time(std::time::SystemTime::now());
    let mut v = Vars::new();
    v.insert(
        "template_host".into(),
        crate::facts::host_name().unwrap_or_default().into(),
    );
    v.insert("template_path".into(), src.into());
    v.insert("template_fullpath".into(), src.into());
    v.insert("template_destpath".into(), dest.into());
    v.insert(
        "template_uid".into(),
        crate::facts::current_user().unwrap_or_default().into(),
    );
    v.insert("template_mtime".into(), now.clone().into());
    v.insert("template_run_date".into(), now.into());
    // DEFAULT_MANAGED_STR, which no configuration here changes.
    v.insert("ansible_managed".into(), "Ansible managed".into());
    v
}

/// Writes the rendered text to dest like copy does.
fn write(t: &Args, rendered: &str, ctx: &Ctx<'_>) -> Step<Outcome> {
    let dest = fsutil::resolve_dest(&t.dest, Some(&t.src))?;
    let content = match crate::filters::encode_text(rendered, &t.encoding) {
        Ok(c) => c,
        Err(e) => return fail(format!("error writing {}: {e}", t.src)),
    };
    if let Some(v) = &t.validate {
        super::copy::validate_content(v, &dest, &content, t.follow, ctx)?;
    }
    let req = WriteReq {
        dest: &dest,
        content: &content,
        attrs: t.attrs.clone(),
        force: t.force,
        backup: t.backup,
        follow: t.follow,
        src: Some(&t.src),
        new_mode: None,
    };
    fsutil::write_file(&req, ctx)
}

#[cfg(test)]
mod tests {
    use super::super::{ModuleError, Outcome};
    use crate::plan::HostFile;
    use serde_json::{Value, json};
    use std::collections::BTreeMap;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    /// Runs template with `args` (`{p}` replaced by the temp dir), a few embedded
    /// templates and the variables `vars`.
    fn check(
        dir: &Path,
        args: Value,
        vars: Value,
        check_mode: bool,
    ) -> Result<Outcome, ModuleError> {
        let args = crate::modules::args_in(dir, &args);
        let mut files = BTreeMap::new();
        for (name, body) in [
            (
                "templates/motd.j2",
                "Welcome to {{ host }}\n{% for u in users %}- {{ u }}\n{% endfor %}",
            ),
            ("templates/broken.j2", "{{ nope }}"),
            (
                "templates/override.j2",
                "#jinja2: trim_blocks: False, variable_start_string: '[[', variable_end_string: ']]'\n{% if true %}\n[[ host ]] {{ host }}\n{% endif %}\n",
            ),
            (
                "templates/bad_override.j2",
                "#jinja2: lstrip_blocks=True\n{{ host }}\n",
            ),
            (
                "templates/line_statements.j2",
                "#jinja2: line_statement_prefix:\":\"\n: if true\nfoo\n: endif\n",
            ),
            ("templates/syntax.j2", "{% if %}"),
            (
                "templates/managed.j2",
                "{{ ansible_managed }}|{{ template_path }}|{{ template_fullpath }}|{{ template_destpath }}|{{ template_run_date is string }}|{{ template_uid is string }}|{{ template_host is string }}|{{ template_mtime is defined }}",
            ),
        ] {
            let f = HostFile {
                content: body.as_bytes().to_vec(),
                mode: None,
            };
            files.insert(name.to_string(), f);
        }
        crate::modules::run_for_test("template", &args, &files, &vars, check_mode)
    }

    /// `validate` checks the rendered text before it replaces dest, as copy's does.
    #[test]
    fn validate_keeps_a_rendering_its_command_rejects_out() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("motd");
        let vars = json!({"host": "web1", "users": []});
        let args =
            |cmd: &str| json!({"src": "templates/motd.j2", "dest": "{p}/motd", "validate": cmd});
        let o = check(t.path(), args("grep -q web2 %s"), vars.clone(), false).unwrap();
        assert!(
            o.failed && o.msg.as_deref() == Some("failed to validate"),
            "{o:?}"
        );
        assert!(!f.exists(), "a rejected rendering is not written");
        let o = check(t.path(), args("grep -q web1 %s"), vars.clone(), false).unwrap();
        assert!(o.changed && !o.failed, "{o:?}");
        assert_eq!(fs::read_to_string(&f).unwrap(), "Welcome to web1\n");
        let e = check(t.path(), args("true"), vars, false).unwrap_err();
        assert!(e.to_string().contains("must contain %s"), "{e}");
    }

    #[test]
    fn renders_writes_once_and_rewrites_when_vars_change() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("motd");
        let args = json!({"src": "templates/motd.j2", "dest": "{p}/motd", "mode": "0644"});
        let vars = json!({"host": "web1", "users": ["ann", "bob"]});
        let dry = check(t.path(), args.clone(), vars.clone(), true).unwrap();
        assert!(dry.changed && !f.exists());
        let out = check(t.path(), args.clone(), vars.clone(), false).unwrap();
        assert!(out.changed, "{out:?}");
        let want = "Welcome to web1\n- ann\n- bob\n";
        assert_eq!(fs::read_to_string(&f).unwrap(), want);
        assert_eq!(out.diff[0].after, want);
        assert_eq!(
            fs::metadata(&f).unwrap().permissions().mode() & 0o7777,
            0o644
        );
        assert!(!check(t.path(), args.clone(), vars, false).unwrap().changed);

        let vars2 = json!({"host": "web2", "users": []});
        let dry = check(t.path(), args.clone(), vars2.clone(), true).unwrap();
        assert!(dry.changed);
        assert_eq!(fs::read_to_string(&f).unwrap(), want, "check mode wrote");
        assert_eq!(dry.diff[0].before, want);
        assert_eq!(dry.diff[0].after, "Welcome to web2\n");
        assert!(check(t.path(), args, vars2, false).unwrap().changed);
        assert_eq!(fs::read_to_string(&f).unwrap(), "Welcome to web2\n");
    }

    #[test]
    fn a_jinja2_override_line_sets_the_templates_options() {
        // template target (override_separator.j2); the output is ansible-core 2.18's for
        // the same template.
        let t = tempfile::tempdir().unwrap();
        let args = json!({"src": "templates/override.j2", "dest": "{p}/out"});
        check(t.path(), args, json!({"host": "web1"}), false).unwrap();
        assert_eq!(
            fs::read_to_string(t.path().join("out")).unwrap(),
            "\nweb1 {{ host }}\n"
        );
        let args = json!({"src": "templates/bad_override.j2", "dest": "{p}/bad"});
        let out = check(t.path(), args, json!({"host": "web1"}), false).unwrap();
        assert!(out.failed);
        assert_eq!(
            out.msg.as_deref(),
            Some(
                "failed to parse jinja2 override 'lstrip_blocks=True'. Did you use something different from colon as key-value separator?"
            )
        );
        assert!(!t.path().join("bad").exists());
        // override_colon_value.j2: a value holding a colon, line statements.
        let args = json!({"src": "templates/line_statements.j2", "dest": "{p}/lines"});
        check(t.path(), args, json!({}), false).unwrap();
        assert_eq!(fs::read_to_string(t.path().join("lines")).unwrap(), "foo\n");
    }

    #[test]
    fn ansibles_template_variables_are_defined() {
        // special_vars renders these into a file and reads them back.
        let t = tempfile::tempdir().unwrap();
        let args = json!({"src": "templates/managed.j2", "dest": "{p}/out"});
        check(t.path(), args, json!({}), false).unwrap();
        // template_destpath is dest as the task gives it (template target,
        // template_destpath_test.j2).
        let dest = t.path().join("out");
        assert_eq!(
            fs::read_to_string(&dest).unwrap(),
            format!(
                "Ansible managed|templates/managed.j2|templates/managed.j2|{}|True|True|True|True",
                dest.display()
            )
        );
    }

    #[test]
    fn a_directory_dest_takes_the_template_name() {
        let t = tempfile::tempdir().unwrap();
        let vars = json!({"host": "h", "users": []});
        let out = check(
            t.path(),
            json!({"src": "templates/motd.j2", "dest": "{p}"}),
            vars,
            false,
        )
        .unwrap();
        assert!(out.changed);
        assert!(t.path().join("motd.j2").is_file());
    }

    #[test]
    fn template_errors_fail_naming_the_src() {
        let t = tempfile::tempdir().unwrap();
        for src in ["templates/broken.j2", "templates/syntax.j2"] {
            let args = json!({"src": src, "dest": "{p}/x"});
            let out = check(t.path(), args, json!({}), false).unwrap();
            assert!(out.failed);
            assert!(out.msg.unwrap().contains(src));
            assert!(!t.path().join("x").exists());
        }
        let out = check(
            t.path(),
            json!({"src": "missing.j2", "dest": "{p}/x"}),
            json!({}),
            false,
        )
        .unwrap();
        assert!(out.failed && out.msg.unwrap().contains("missing.j2"));
        let vars = json!({"host": "h", "users": []});
        let out = check(
            t.path(),
            json!({"src": "templates/motd.j2", "dest": "{p}/none/x"}),
            vars,
            false,
        )
        .unwrap();
        assert!(out.failed && out.msg.unwrap().contains("does not exist"));
    }

    #[test]
    fn bad_arguments_name_the_argument() {
        let t = tempfile::tempdir().unwrap();
        let cases = [
            (json!({"dest": "{p}/x"}), "src"),
            (json!({"src": "templates/motd.j2"}), "dest"),
            (
                json!({"src": "templates/motd.j2", "dest": "{p}/x", "content": "y"}),
                "content",
            ),
            (
                json!({"src": "templates/motd.j2", "dest": "{p}/x", "force": "perhaps"}),
                "force",
            ),
        ];
        for (args, name) in cases {
            match check(t.path(), args.clone(), json!({}), false) {
                Err(ModuleError::BadArgs(m)) => assert!(m.contains(name), "{args}: {m}"),
                other => panic!("{args}: expected BadArgs, got {other:?}"),
            }
        }
    }

    /// `output_encoding` writes the rendered text in that codec, as Python's encodes
    /// it (template target, encoding_1252_*): empty is UTF-8; windows-1252 has its own
    /// bytes at 0x80..0x9f; a character the codec lacks fails the task.
    #[test]
    fn output_encoding_writes_the_text_in_that_codec() {
        let t = tempfile::tempdir().unwrap();
        let vars = json!({"host": "caf\u{e9} \u{20ac}\u{2026}", "users": []});
        let write = |enc: &str| {
            let args = json!({"src": "templates/motd.j2", "dest": format!("{{p}}/out-{enc}"),
                              "output_encoding": enc});
            check(t.path(), args, vars.clone(), false).unwrap()
        };
        let read = |enc: &str| fs::read(t.path().join(format!("out-{enc}"))).unwrap();
        assert!(write("").changed);
        assert_eq!(
            read(""),
            "Welcome to caf\u{e9} \u{20ac}\u{2026}\n".as_bytes()
        );
        assert!(write("windows-1252").changed);
        assert_eq!(read("windows-1252"), b"Welcome to caf\xe9 \x80\x85\n");
        let out = write("latin-1");
        assert!(out.failed, "{out:?}");
        assert!(
            out.msg
                .unwrap()
                .contains("can't encode character '\\u20ac'"),
            "Python's words"
        );
        assert!(!t.path().join("out-latin-1").exists());
        let out = write("klingon");
        assert!(
            out.failed
                && out
                    .msg
                    .unwrap()
                    .contains("output_encoding klingon is not supported")
        );
    }
}
