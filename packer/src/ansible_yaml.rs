//! YAML as Ansible reads it: PyYAML's YAML 1.1 resolution of plain scalars, Ansible's
//! `!unsafe` and `!vault` tags, `<<` merge keys, and duplicate keys where the last wins.
//!
//! Ansible loads every file (playbooks, task files, vars files, YAML inventories) with
//! `AnsibleLoader`: PyYAML's `SafeConstructor` and YAML 1.1 `Resolver`, plus constructors
//! for `!unsafe`, `!vault` and `!vault-encrypted`. A YAML 1.2 reader gives other values
//! for the same text (`yes` is a string there, `0755` is 755, `1:30` is a string), so
//! this module reads the event stream of a YAML parser (which keeps each scalar's style
//! and tag) and resolves scalars with PyYAML's own rules:
//!
//! - booleans: `yes/Yes/YES/no/No/NO/true/True/TRUE/false/False/FALSE/on/On/ON/off/Off/OFF`
//!   (not `y`/`n`, and not `tRue`);
//! - null: `~`, `null`, `Null`, `NULL` and the empty plain scalar;
//! - integers: `0b1010`, `0x1F`, `0755` (octal: 493), `1_000`, sexagesimal `1:30` (90);
//!   `09` matches none of them and stays a string;
//! - floats: `1.5`, `1.`, `.5`, `1.0e+3` (an exponent needs its sign: `1e3` is a string),
//!   `.inf`, `.nan`, sexagesimal `1:30.5`;
//! - timestamps: `2024-01-31` and `2001-12-14 21:59:43.10` become the text Python prints
//!   for the date or datetime PyYAML makes (`2001-12-14 21:59:43.100000`), which is what a
//!   template shows; the plan carries them as strings (Ansible keeps date objects).
//!
//! Quoted and block scalars are always strings. `!unsafe` is kept as a tagged value
//! (`Yaml::Tagged` with the tag `unsafe`) whose scalar is the text as written (Ansible
//! gives `!unsafe 12` as the string `12`); [`to_json`] turns it into the plan's unsafe
//! marker. `!vault`/`!vault-encrypted` stay tagged strings for the vault code to open;
//! one it leaves closed (no password) becomes the plan's encrypted-value marker.
//! Any other tag that Ansible's loader has no constructor for is refused with its line.
//!
//! One known difference: Ansible's loader empties a mapping or list nested inside a
//! `!unsafe` list or mapping (`!unsafe [{a: 1}]` gives `[{}]`, a quirk of how PyYAML
//! builds nested nodes); this loader keeps their content, unsafe.

use serde_json::Value;
use serde_norway::value::{Tag, TaggedValue};
use serde_norway::{Mapping, Number, Value as Yaml};
use std::collections::HashMap;
use std::sync::LazyLock;

/// The key of the plan's marker for text that must never be templated:
/// `{"__ansible_unsafe": "text"}` (the form Ansible's own JSON encoder uses).
pub const UNSAFE_KEY: &str = rustle_runner::plan::UNSAFE_KEY;

/// Mappings and lists nested deeper than this are refused: the tree is walked
/// recursively afterwards, and no real file comes near it.
const MAX_DEPTH: usize = 256;

/// The most values aliases may copy in one file. An alias copies its anchor's whole
/// value; a few lines of nested aliases could otherwise ask for billions of copies.
const MAX_ALIAS_NODES: usize = 1_000_000;

/// Why a YAML text could not be read, with the position (1-based) when known.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{msg}")]
pub struct LoadError {
    /// 1-based line.
    pub line: Option<usize>,
    /// 1-based column.
    pub column: Option<usize>,
    /// What is wrong.
    pub msg: String,
}

impl LoadError {
    fn at(mark: saphyr_parser::Marker, msg: impl Into<String>) -> LoadError {
        LoadError {
            line: Some(mark.line()),
            column: Some(mark.col() + 1),
            msg: msg.into(),
        }
    }
}

/// What a tag asks for, once its handle is expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
enum TagKind {
    /// No tag: plain scalars are resolved, others taken by kind.
    None,
    /// `!`: the non-specific tag, a string, list or mapping by kind.
    NonSpecific,
    /// `!!str`, `!!int`, ... (the part after `tag:yaml.org,2002:`).
    Core(String),
    /// `!unsafe`.
    Unsafe,
    /// `!vault` and `!vault-encrypted`.
    Vault,
    /// Anything else, as written.
    Other(String),
}

fn tag_kind(tag: Option<&saphyr_parser::Tag>) -> TagKind {
    let Some(tag) = tag else {
        return TagKind::None;
    };
    let full = if tag.handle == "!" {
        format!("!{}", tag.suffix)
    } else {
        format!("{}{}", tag.handle, tag.suffix)
    };
    match full.as_str() {
        "!" => TagKind::NonSpecific,
        "!unsafe" => TagKind::Unsafe,
        "!vault" | "!vault-encrypted" => TagKind::Vault,
        _ => match full.strip_prefix("tag:yaml.org,2002:") {
            Some(core) => TagKind::Core(core.to_string()),
            None => TagKind::Other(full),
        },
    }
}

/// A key of a mapping being built: `<<` (a plain, untagged `<<`) merges.
enum Key {
    Merge,
    Value(Yaml),
}

/// A list or mapping whose end has not been read yet.
enum Frame {
    Seq {
        items: Vec<Yaml>,
        anchor: usize,
        tag: TagKind,
        start: saphyr_parser::Marker,
    },
    Map {
        entries: Vec<(Key, Yaml)>,
        key: Option<Key>,
        anchor: usize,
        tag: TagKind,
        start: saphyr_parser::Marker,
    },
}

/// Builds values from the parser's events.
struct Builder<'s> {
    stack: Vec<Frame>,
    anchors: HashMap<usize, Yaml>,
    alias_nodes: usize,
    root: Option<Yaml>,
    documents: usize,
    /// What to do with a key given twice, and the file named when saying so.
    duplicates: Duplicates,
    source: &'s str,
}

/// What Ansible does with a key given twice in one mapping (its
/// `DUPLICATE_YAML_DICT_KEY` setting): the last value is used in every case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Duplicates {
    /// Say so on standard error (Ansible's default).
    Warn,
    /// Refuse the file.
    Error,
    /// Say nothing.
    Ignore,
}

impl Duplicates {
    /// `ANSIBLE_DUPLICATE_YAML_DICT_KEY` as Ansible reads it: `warn` (the default),
    /// `error` or `ignore`; any other value is Ansible's default too.
    pub fn from_env() -> Duplicates {
        Duplicates::from_setting(
            std::env::var("ANSIBLE_DUPLICATE_YAML_DICT_KEY")
                .ok()
                .as_deref(),
        )
    }

    fn from_setting(value: Option<&str>) -> Duplicates {
        match value.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
            Some("error") => Duplicates::Error,
            Some("ignore") => Duplicates::Ignore,
            _ => Duplicates::Warn,
        }
    }
}

/// Reads one YAML document as Ansible's loader does. An empty text (or only comments)
/// is null; more than one document is refused, as `AnsibleLoader.get_single_data` does.
/// A key given twice keeps its last value, silently.
pub fn load(text: &str) -> Result<Yaml, LoadError> {
    load_from(text, "<unicode string>", Duplicates::Ignore)
}

/// [`load`] of the file `source`, doing with a key given twice what `duplicates` says,
/// in Ansible's words.
pub fn load_from(text: &str, source: &str, duplicates: Duplicates) -> Result<Yaml, LoadError> {
    let mut text = std::borrow::Cow::Borrowed(text);
    let mut first_error = None;
    for _ in 0..=MAX_FLOW_REINDENTS {
        match load_once(&text, source, duplicates) {
            Ok(v) => return Ok(v),
            Err(Reading::Stop(e)) => return Err(first_error.unwrap_or(e)),
            Err(Reading::FlowIndent(e, index)) => {
                // PyYAML does not check indentation inside `{...}` and `[...]` (its
                // scanner's `unwind_indent` returns at once in flow context); saphyr
                // wants flow content indented past the enclosing block, so a closing
                // `}` in the key's column is an error to it. Indentation means nothing
                // inside a flow collection (line breaks fold, leading spaces go), so the
                // offending line is moved one column right and the text read again.
                let at = line_start(&text, index);
                let mut shifted = text.into_owned();
                shifted.insert(at, ' ');
                text = std::borrow::Cow::Owned(shifted);
                first_error.get_or_insert(e);
            }
        }
    }
    Err(first_error.unwrap_or_else(|| LoadError {
        line: None,
        column: None,
        msg: "invalid indentation".into(),
    }))
}

/// How many columns, in all, flow content may be moved right to read as PyYAML reads it.
const MAX_FLOW_REINDENTS: usize = 256;

/// Why one reading stopped: an error, or saphyr's indentation check inside a flow
/// collection (with the character index of the offending token), which PyYAML skips.
enum Reading {
    Stop(LoadError),
    FlowIndent(LoadError, usize),
}

fn load_once(text: &str, source: &str, duplicates: Duplicates) -> Result<Yaml, Reading> {
    let mut b = Builder {
        stack: Vec::new(),
        anchors: HashMap::new(),
        alias_nodes: 0,
        root: None,
        documents: 0,
        duplicates,
        source,
    };
    for event in saphyr_parser::Parser::new_from_str(text) {
        let (event, span) = match event {
            Ok(ev) => ev,
            Err(e) => {
                let err = LoadError::at(*e.marker(), e.info());
                let in_flow = b.stack.last().is_some_and(|f| {
                    let start = match f {
                        Frame::Seq { start, .. } | Frame::Map { start, .. } => start.index(),
                    };
                    matches!(text.chars().nth(start), Some('{' | '['))
                });
                return Err(if in_flow && e.info().starts_with("invalid indentation") {
                    Reading::FlowIndent(err, e.marker().index())
                } else {
                    Reading::Stop(err)
                });
            }
        };
        b.event(event, span.start).map_err(Reading::Stop)?;
    }
    Ok(b.root.unwrap_or(Yaml::Null))
}

/// The byte offset where the line holding character `index` starts.
fn line_start(text: &str, index: usize) -> usize {
    let byte = text
        .char_indices()
        .nth(index)
        .map_or(text.len(), |(b, _)| b);
    text.get(..byte)
        .and_then(|t| t.rfind('\n'))
        .map_or(0, |nl| nl + 1)
}

impl Builder<'_> {
    fn event(
        &mut self,
        event: saphyr_parser::Event<'_>,
        mark: saphyr_parser::Marker,
    ) -> Result<(), LoadError> {
        use saphyr_parser::Event;
        match event {
            Event::DocumentStart(_) => {
                self.documents += 1;
                if self.documents > 1 {
                    return Err(LoadError::at(
                        mark,
                        "expected a single document in the stream, but found another document",
                    ));
                }
                // Anchors belong to their document.
                self.anchors.clear();
            }
            Event::Scalar(text, style, anchor, tag) => {
                let kind = tag_kind(tag.as_deref());
                let plain = style == saphyr_parser::ScalarStyle::Plain;
                // A plain, untagged `<<` in a key position merges.
                if plain
                    && kind == TagKind::None
                    && text == "<<"
                    && matches!(self.stack.last(), Some(Frame::Map { key: None, .. }))
                {
                    if let Some(Frame::Map { key, .. }) = self.stack.last_mut() {
                        *key = Some(Key::Merge);
                    }
                    return Ok(());
                }
                let value = scalar(&text, plain, &kind, mark)?;
                self.finish(value, anchor, mark)?;
            }
            Event::SequenceStart(anchor, tag) => {
                self.push(Frame::Seq {
                    items: Vec::new(),
                    anchor,
                    tag: tag_kind(tag.as_deref()),
                    start: mark,
                })?;
            }
            Event::MappingStart(anchor, tag) => {
                self.push(Frame::Map {
                    entries: Vec::new(),
                    key: None,
                    anchor,
                    tag: tag_kind(tag.as_deref()),
                    start: mark,
                })?;
            }
            Event::SequenceEnd => {
                if let Some(Frame::Seq {
                    items,
                    anchor,
                    tag,
                    start,
                }) = self.stack.pop()
                {
                    let value = collection(Yaml::Sequence(items), &tag, "a sequence", start)?;
                    self.finish(value, anchor, start)?;
                }
            }
            Event::MappingEnd => {
                if let Some(Frame::Map {
                    entries,
                    anchor,
                    tag,
                    start,
                    ..
                }) = self.stack.pop()
                {
                    let mut twice = Vec::new();
                    let map = flatten(entries, start, &mut twice)?;
                    for key in twice {
                        // AnsibleConstructor.construct_mapping's message, at the mapping.
                        let msg = format!(
                            "While constructing a mapping from {}, line {}, column {}, found a duplicate dict key ({key}). Using last defined value only.",
                            self.source,
                            start.line(),
                            start.col() + 1
                        );
                        match self.duplicates {
                            Duplicates::Warn => eprintln!("[WARNING]: {msg}"),
                            Duplicates::Error => return Err(LoadError::at(start, msg)),
                            Duplicates::Ignore => {}
                        }
                    }
                    let value = collection(Yaml::Mapping(map), &tag, "a mapping", start)?;
                    self.finish(value, anchor, start)?;
                }
            }
            Event::Alias(id) => {
                let Some(value) = self.anchors.get(&id) else {
                    return Err(LoadError::at(
                        mark,
                        "found an alias to an anchor that is not defined yet (or refers to itself)",
                    ));
                };
                self.alias_nodes += size(value);
                if self.alias_nodes > MAX_ALIAS_NODES {
                    return Err(LoadError::at(
                        mark,
                        format!(
                            "aliases copy more than {MAX_ALIAS_NODES} values; refusing to expand them"
                        ),
                    ));
                }
                let value = value.clone();
                self.finish(value, 0, mark)?;
            }
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd | Event::Nothing => {}
        }
        Ok(())
    }

    fn push(&mut self, frame: Frame) -> Result<(), LoadError> {
        if self.stack.len() >= MAX_DEPTH {
            let start = match &frame {
                Frame::Seq { start, .. } | Frame::Map { start, .. } => *start,
            };
            return Err(LoadError::at(
                start,
                format!("lists and mappings are nested more than {MAX_DEPTH} deep"),
            ));
        }
        self.stack.push(frame);
        Ok(())
    }

    /// A complete value: remembered under its anchor and placed in its parent.
    fn finish(
        &mut self,
        value: Yaml,
        anchor: usize,
        mark: saphyr_parser::Marker,
    ) -> Result<(), LoadError> {
        if anchor != 0 {
            self.anchors.insert(anchor, value.clone());
        }
        match self.stack.last_mut() {
            None => self.root = Some(value),
            Some(Frame::Seq { items, .. }) => items.push(value),
            Some(Frame::Map { entries, key, .. }) => match key.take() {
                None => {
                    if matches!(value, Yaml::Sequence(_) | Yaml::Mapping(_)) {
                        return Err(LoadError::at(
                            mark,
                            "found unhashable key: a list or mapping cannot be a mapping key",
                        ));
                    }
                    *key = Some(Key::Value(value));
                }
                Some(k) => entries.push((k, value)),
            },
        }
        Ok(())
    }
}

/// How many values `v` holds, itself included.
fn size(v: &Yaml) -> usize {
    match v {
        Yaml::Sequence(items) => 1 + items.iter().map(size).sum::<usize>(),
        Yaml::Mapping(m) => 1 + m.iter().map(|(k, v)| size(k) + size(v)).sum::<usize>(),
        Yaml::Tagged(t) => 1 + size(&t.value),
        _ => 1,
    }
}

/// PyYAML's `flatten_mapping` then `construct_mapping`: the pairs of merged mappings come
/// first (of a list of them, the first wins), then the mapping's own; later pairs replace
/// earlier ones' values, keeping the place of the first (as a Python dict does).
/// The mapping's own keys given more than once are added to `twice` (as text).
fn flatten(
    entries: Vec<(Key, Yaml)>,
    start: saphyr_parser::Marker,
    twice: &mut Vec<String>,
) -> Result<Mapping, LoadError> {
    let mut merged: Vec<(Yaml, Yaml)> = Vec::new();
    let mut own: Vec<(Yaml, Yaml)> = Vec::with_capacity(entries.len());
    for (key, value) in entries {
        match key {
            Key::Value(k) => {
                if own.iter().any(|(seen, _)| *seen == k) {
                    twice.push(key_text(&k).unwrap_or_else(|| format!("{k:?}")));
                }
                own.push((k, value));
            }
            Key::Merge => match value {
                Yaml::Mapping(m) => merged.extend(m),
                Yaml::Sequence(list) => {
                    let mut maps = Vec::with_capacity(list.len());
                    for item in list {
                        match item {
                            Yaml::Mapping(m) => maps.push(m),
                            other => {
                                return Err(LoadError::at(
                                    start,
                                    format!(
                                        "while constructing a mapping: expected a mapping for merging, but found {}",
                                        node_kind(&other)
                                    ),
                                ));
                            }
                        }
                    }
                    for m in maps.into_iter().rev() {
                        merged.extend(m);
                    }
                }
                other => {
                    return Err(LoadError::at(
                        start,
                        format!(
                            "while constructing a mapping: expected a mapping or list of mappings for merging, but found {}",
                            node_kind(&other)
                        ),
                    ));
                }
            },
        }
    }
    let mut map = Mapping::with_capacity(merged.len() + own.len());
    for (k, v) in merged.into_iter().chain(own) {
        map.insert(k, v);
    }
    Ok(map)
}

fn node_kind(v: &Yaml) -> &'static str {
    match v {
        Yaml::Sequence(_) => "sequence",
        Yaml::Mapping(_) => "mapping",
        _ => "scalar",
    }
}

/// A list or mapping under its tag.
fn collection(
    value: Yaml,
    tag: &TagKind,
    what: &str,
    start: saphyr_parser::Marker,
) -> Result<Yaml, LoadError> {
    match tag {
        TagKind::None | TagKind::NonSpecific => Ok(value),
        TagKind::Core(t) if (t == "seq" && what == "a sequence") => Ok(value),
        // Ansible's loader adds `!!python/dict` as a plain mapping.
        TagKind::Core(t) if (t == "map" || t == "python/dict") && what == "a mapping" => Ok(value),
        TagKind::Unsafe => Ok(Yaml::Tagged(Box::new(TaggedValue {
            tag: Tag::new("unsafe"),
            value,
        }))),
        other => Err(LoadError::at(start, refused_tag(other, what))),
    }
}

/// The error for a tag this loader (like Ansible's) has no constructor for.
fn refused_tag(tag: &TagKind, what: &str) -> String {
    let name = match tag {
        TagKind::Core(t) => format!("!!{t}"),
        TagKind::Other(t) => t.clone(),
        TagKind::Vault => "!vault".to_string(),
        TagKind::Unsafe => "!unsafe".to_string(),
        TagKind::None | TagKind::NonSpecific => "!".to_string(),
    };
    match tag {
        TagKind::Core(t) if ["binary", "set", "omap", "pairs"].contains(&t.as_str()) => format!(
            "the tag '{name}' makes a Python object that a plan cannot carry; write the value without it"
        ),
        TagKind::Vault => format!("a !vault value is a string, found {what}"),
        _ => format!("could not determine a constructor for the tag '{name}' on {what}"),
    }
}

/// Compiles one of PyYAML's resolver expressions (written for `re.X`).
fn pattern(re: &str) -> Option<regex::Regex> {
    regex::Regex::new(&format!("(?x){re}")).ok()
}

static BOOL: LazyLock<Option<regex::Regex>> = LazyLock::new(|| {
    pattern(
        r"^(?:yes|Yes|YES|no|No|NO
            |true|True|TRUE|false|False|FALSE
            |on|On|ON|off|Off|OFF)$",
    )
});
static FLOAT: LazyLock<Option<regex::Regex>> = LazyLock::new(|| {
    pattern(
        r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?
            |\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?
            |[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*
            |[-+]?\.(?:inf|Inf|INF)
            |\.(?:nan|NaN|NAN))$",
    )
});
static INT: LazyLock<Option<regex::Regex>> = LazyLock::new(|| {
    pattern(
        r"^(?:[-+]?0b[0-1_]+
            |[-+]?0[0-7_]+
            |[-+]?(?:0|[1-9][0-9_]*)
            |[-+]?0x[0-9a-fA-F_]+
            |[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$",
    )
});
static NULL: LazyLock<Option<regex::Regex>> = LazyLock::new(|| pattern(r"^(?:~|null|Null|NULL|)$"));
static TIMESTAMP: LazyLock<Option<regex::Regex>> = LazyLock::new(|| {
    pattern(
        r"^(?P<year>[0-9][0-9][0-9][0-9])
            -(?P<month>[0-9][0-9]?)
            -(?P<day>[0-9][0-9]?)
            (?:(?:[Tt]|[\ \t]+)
            (?P<hour>[0-9][0-9]?)
            :(?P<minute>[0-9][0-9])
            :(?P<second>[0-9][0-9])
            (?:\.(?P<fraction>[0-9]*))?
            (?:[\ \t]*(?P<tz>Z|(?P<tz_sign>[-+])(?P<tz_hour>[0-9][0-9]?)
            (?::(?P<tz_minute>[0-9][0-9]))?))?)?$",
    )
});
/// The resolver's timestamp expression (stricter than the constructor's: a date alone
/// needs two-digit month and day).
static TIMESTAMP_RESOLVE: LazyLock<Option<regex::Regex>> = LazyLock::new(|| {
    pattern(
        r"^(?:[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]
            |[0-9][0-9][0-9][0-9] -[0-9][0-9]? -[0-9][0-9]?
             (?:[Tt]|[\ \t]+)[0-9][0-9]?
             :[0-9][0-9] :[0-9][0-9] (?:\.[0-9]*)?
             (?:[\ \t]*(?:Z|[-+][0-9][0-9]?(?::[0-9][0-9])?))?)$",
    )
});

fn matches(re: &LazyLock<Option<regex::Regex>>, s: &str) -> bool {
    re.as_ref().is_some_and(|r| r.is_match(s))
}

/// What PyYAML's resolver makes of a plain scalar, as the tag it would give it. The
/// expressions are tried only for the first characters PyYAML registers them for.
fn resolve_plain(s: &str) -> &'static str {
    let first = s.chars().next();
    let starts = |set: &str| first.is_some_and(|c| set.contains(c));
    if starts("yYnNtTfFoO") && matches(&BOOL, s) {
        return "bool";
    }
    if starts("-+0123456789.") && matches(&FLOAT, s) {
        return "float";
    }
    if starts("-+0123456789") && matches(&INT, s) {
        return "int";
    }
    if (first.is_none() || starts("~nN")) && matches(&NULL, s) {
        return "null";
    }
    if starts("0123456789") && matches(&TIMESTAMP_RESOLVE, s) {
        return "timestamp";
    }
    if s == "=" {
        return "value";
    }
    "str"
}

/// One scalar, resolved and constructed as Ansible's loader does.
fn scalar(
    text: &str,
    plain: bool,
    tag: &TagKind,
    mark: saphyr_parser::Marker,
) -> Result<Yaml, LoadError> {
    let core = match tag {
        TagKind::None if plain => resolve_plain(text),
        TagKind::None | TagKind::NonSpecific => "str",
        TagKind::Unsafe => {
            // Ansible constructs the scalar as text, whatever it looks like.
            return Ok(Yaml::Tagged(Box::new(TaggedValue {
                tag: Tag::new("unsafe"),
                value: Yaml::String(text.to_string()),
            })));
        }
        TagKind::Vault => {
            return Ok(Yaml::Tagged(Box::new(TaggedValue {
                tag: Tag::new("vault"),
                value: Yaml::String(text.to_string()),
            })));
        }
        TagKind::Core(t) => match t.as_str() {
            "str" | "python/unicode" => "str",
            "int" => "int",
            "float" => "float",
            "bool" => "bool",
            "null" => "null",
            "timestamp" => "timestamp",
            "binary" => "binary",
            _ => return Err(LoadError::at(mark, refused_tag(tag, "a scalar"))),
        },
        TagKind::Other(_) => return Err(LoadError::at(mark, refused_tag(tag, "a scalar"))),
    };
    let bad = |what: &str| LoadError::at(mark, format!("'{text}' is not a valid {what}"));
    Ok(match core {
        "str" => Yaml::String(text.to_string()),
        "null" => Yaml::Null,
        "bool" => match text.to_ascii_lowercase().as_str() {
            "yes" | "true" | "on" => Yaml::Bool(true),
            "no" | "false" | "off" => Yaml::Bool(false),
            _ => return Err(bad("boolean")),
        },
        "int" => Yaml::Number(int(text).ok_or_else(|| {
            LoadError::at(
                mark,
                format!("'{text}' is not an integer a plan can carry (64 bits at most)"),
            )
        })?),
        "float" => Yaml::Number(Number::from(float(text).ok_or_else(|| bad("float"))?)),
        "timestamp" => Yaml::String(timestamp(text).ok_or_else(|| bad("date or time"))?),
        // Ansible's loader makes bytes, which modules take as the text they encode
        // (copy's `content`): a plan carries them as that text when it is UTF-8.
        "binary" => {
            use base64::Engine as _;
            let packed: String = text.chars().filter(|c| !c.is_whitespace()).collect();
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(packed)
                .map_err(|e| LoadError::at(mark, format!("invalid !!binary value: {e}")))?;
            Yaml::String(String::from_utf8(bytes).map_err(|_| {
                LoadError::at(
                    mark,
                    "the tag '!!binary' holds bytes that are not UTF-8 text, which a plan cannot carry",
                )
            })?)
        }
        // PyYAML has no constructor for `=` (the YAML 1.1 value key) either.
        _ => {
            return Err(LoadError::at(
                mark,
                "could not determine a constructor for the tag 'tag:yaml.org,2002:value' (a plain `=`); quote it",
            ));
        }
    })
}

/// PyYAML's `construct_yaml_int`: underscores dropped, `0b`, `0x`, a leading `0` for
/// octal, `:` for base 60. `None` when it does not fit 64 bits (or is not a number,
/// for an explicit `!!int`).
fn int(text: &str) -> Option<Number> {
    let cleaned: String = text.chars().filter(|c| *c != '_').collect();
    let (negative, digits) = match cleaned.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, cleaned.strip_prefix('+').unwrap_or(&cleaned)),
    };
    let magnitude: u128 = if digits == "0" {
        0
    } else if let Some(bin) = digits.strip_prefix("0b") {
        u128::from_str_radix(bin, 2).ok()?
    } else if let Some(hex) = digits.strip_prefix("0x") {
        u128::from_str_radix(hex, 16).ok()?
    } else if digits.starts_with('0') {
        u128::from_str_radix(digits, 8).ok()?
    } else if digits.contains(':') {
        let mut total: u128 = 0;
        for part in digits.split(':') {
            total = total
                .checked_mul(60)?
                .checked_add(part.parse::<u128>().ok()?)?;
        }
        total
    } else {
        digits.parse::<u128>().ok()?
    };
    if negative {
        let m = i128::try_from(magnitude).ok()?;
        i64::try_from(-m).ok().map(Number::from)
    } else {
        u64::try_from(magnitude).ok().map(Number::from)
    }
}

/// PyYAML's `construct_yaml_float`.
fn float(text: &str) -> Option<f64> {
    let cleaned: String = text
        .chars()
        .filter(|c| *c != '_')
        .collect::<String>()
        .to_ascii_lowercase();
    let (sign, body) = match cleaned.strip_prefix('-') {
        Some(rest) => (-1.0, rest),
        None => (1.0, cleaned.strip_prefix('+').unwrap_or(&cleaned)),
    };
    if body == ".inf" {
        return Some(sign * f64::INFINITY);
    }
    if body == ".nan" {
        return Some(f64::NAN);
    }
    if body.contains(':') {
        let mut total = 0.0;
        for part in body.split(':') {
            total = total * 60.0 + part.parse::<f64>().ok()?;
        }
        return Some(sign * total);
    }
    body.parse::<f64>().ok().map(|f| sign * f)
}

/// PyYAML's `construct_yaml_timestamp`, printed as Python prints the date or datetime
/// it makes: `2024-01-31`, `2001-12-14 21:59:43.100000-05:00`.
fn timestamp(text: &str) -> Option<String> {
    let caps = TIMESTAMP.as_ref()?.captures(text)?;
    let num = |name: &str| caps.name(name).and_then(|m| m.as_str().parse::<u32>().ok());
    let (year, month, day) = (num("year")?, num("month")?, num("day")?);
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if year == 0 || day == 0 || day > days {
        return None;
    }
    let date = format!("{year:04}-{month:02}-{day:02}");
    let Some(hour) = num("hour") else {
        return Some(date);
    };
    let (minute, second) = (num("minute")?, num("second")?);
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let mut out = format!("{date} {hour:02}:{minute:02}:{second:02}");
    if let Some(f) = caps.name("fraction").map(|m| m.as_str())
        && !f.is_empty()
    {
        let mut micro: String = f.chars().take(6).collect();
        while micro.len() < 6 {
            micro.push('0');
        }
        // Python leaves out a zero fraction.
        if micro != "000000" {
            out.push('.');
            out.push_str(&micro);
        }
    }
    if let Some(sign) = caps.name("tz_sign").map(|m| m.as_str()) {
        let (h, m) = (num("tz_hour")?, num("tz_minute").unwrap_or(0));
        if h > 23 || m > 59 {
            return None;
        }
        // Python prints a zero offset as +00:00 whatever its sign.
        let sign = if h == 0 && m == 0 { "+" } else { sign };
        out.push_str(&format!("{sign}{h:02}:{m:02}"));
    } else if caps.name("tz").is_some() {
        out.push_str("+00:00");
    }
    Some(out)
}

/// Converts a loaded value to the JSON the plan carries. `!unsafe` text becomes the
/// marker `{"__ansible_unsafe": "text"}` (inside an unsafe list or mapping, every string
/// does); a `!vault` value left closed becomes `{"__ansible_vault": "vault text"}`;
/// numbers JSON cannot hold (NaN, infinities) and other tags are refused, naming the tag
/// or value.
pub fn to_json(value: &Yaml) -> Result<Value, String> {
    convert(value, false)
}

fn convert(value: &Yaml, unsafe_: bool) -> Result<Value, String> {
    Ok(match value {
        Yaml::Null => Value::Null,
        Yaml::Bool(b) => Value::Bool(*b),
        Yaml::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                serde_json::Number::from_f64(f).map(Value::Number).ok_or_else(|| {
                    format!("the number {n} cannot be carried in a plan (JSON has no NaN or infinity)")
                })?
            }
        }
        Yaml::String(s) if unsafe_ => unsafe_marker(s),
        Yaml::String(s) => Value::String(s.clone()),
        Yaml::Sequence(items) => Value::Array(
            items
                .iter()
                .map(|v| convert(v, unsafe_))
                .collect::<Result<_, _>>()?,
        ),
        Yaml::Mapping(map) => {
            let mut out = serde_json::Map::new();
            for (k, v) in map {
                let key = key_text(k).ok_or_else(|| {
                    "mapping keys must be strings, numbers or booleans, found a null, list or mapping as a key"
                        .to_string()
                })?;
                out.insert(key, convert(v, unsafe_)?);
            }
            Value::Object(out)
        }
        Yaml::Tagged(t) if t.tag == "unsafe" => convert(&t.value, true)?,
        // A `!vault` value the vault code did not open (no password): carried encrypted.
        Yaml::Tagged(t) if t.tag == "vault" => match &t.value {
            Yaml::String(text) => rustle_runner::template::vault_marker(text),
            _ => return Err("a !vault value is a string".to_string()),
        },
        // A `!vault` value the vault code opened: its plaintext and its vault text.
        Yaml::Tagged(t) if t.tag == OPENED_VAULT_TAG => match &t.value {
            Yaml::Sequence(pair) => match pair.as_slice() {
                [Yaml::String(plain), Yaml::String(text)] => {
                    rustle_runner::template::opened_vault_marker(plain, text)
                }
                _ => return Err("an opened !vault value is its text and its vault".into()),
            },
            _ => return Err("an opened !vault value is its text and its vault".into()),
        },
        Yaml::Tagged(t) => return Err(format!("the YAML tag {} is not supported", t.tag)),
    })
}

/// The tag of a `!vault` value opened with the vault password ([`opened_vault`]), a tag
/// of our own that no Ansible file uses (one that wrote it would get a string that reads
/// as `vault_encrypted`, nothing more).
const OPENED_VAULT_TAG: &str = "rustle-opened-vault";

/// A `!vault` value opened with the vault password: its plaintext, tagged with its vault
/// text, which the plan carries as `rustle_runner::template::opened_vault_marker`.
pub fn opened_vault(plain: String, text: String) -> Yaml {
    Yaml::Tagged(Box::new(TaggedValue {
        tag: Tag::new(OPENED_VAULT_TAG),
        value: Yaml::Sequence(vec![Yaml::String(plain), Yaml::String(text)]),
    }))
}

/// The marker for text that must never be templated.
pub fn unsafe_marker(text: &str) -> Value {
    let mut m = serde_json::Map::new();
    m.insert(UNSAFE_KEY.to_string(), Value::String(text.to_string()));
    Value::Object(m)
}

/// A scalar mapping key as text (numbers and booleans as their text).
pub fn key_text(key: &Yaml) -> Option<String> {
    match key {
        Yaml::String(s) => Some(s.clone()),
        Yaml::Number(n) => Some(n.to_string()),
        Yaml::Bool(b) => Some(b.to_string()),
        Yaml::Tagged(t) => key_text(&t.value),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Loads `k: <text>` and returns the JSON value of `k`.
    fn k(text: &str) -> Value {
        let doc = load(&format!("k: {text}")).unwrap_or_else(|e| panic!("{text}: {e}"));
        let json = to_json(&doc).unwrap_or_else(|e| panic!("{text}: {e}"));
        json["k"].clone()
    }

    /// Expected values below were produced by ansible-core 2.18.19's `AnsibleLoader`
    /// (PyYAML 6.0 SafeConstructor + Resolver) on the same text.
    #[test]
    fn plain_scalars_resolve_as_pyyaml_yaml_1_1() {
        let cases: &[(&str, Value)] = &[
            ("yes", json!(true)),
            ("Yes", json!(true)),
            ("YES", json!(true)),
            ("yEs", json!("yEs")),
            ("no", json!(false)),
            ("on", json!(true)),
            ("Off", json!(false)),
            ("y", json!("y")),
            ("n", json!("n")),
            ("Y", json!("Y")),
            ("true", json!(true)),
            ("True", json!(true)),
            ("tRue", json!("tRue")),
            ("~", json!(null)),
            ("null", json!(null)),
            ("Null", json!(null)),
            ("NULL", json!(null)),
            ("", json!(null)),
            ("''", json!("")),
            ("\"\"", json!("")),
            ("nUll", json!("nUll")),
            ("0755", json!(493)),
            ("0o755", json!("0o755")),
            ("0x1F", json!(31)),
            ("0b101", json!(5)),
            ("1_000", json!(1000)),
            ("09", json!("09")),
            ("08", json!("08")),
            ("0", json!(0)),
            ("-0", json!(0)),
            ("+12", json!(12)),
            ("00", json!(0)),
            ("0_7", json!(7)),
            ("1:30", json!(90)),
            ("190:20:30", json!(685230)),
            ("-1:30", json!(-90)),
            ("2:3:4", json!(7384)),
            ("1:60", json!("1:60")),
            ("1:5", json!(65)),
            ("0x_1F", json!(31)),
            ("0b_1", json!(1)),
            ("+0x1F", json!(31)),
            ("-0b11", json!(-3)),
            ("0o17", json!("0o17")),
            ("1__0", json!(10)),
            ("_1", json!("_1")),
            ("1.5", json!(1.5)),
            ("1.", json!(1.0)),
            (".5", json!(0.5)),
            ("1e3", json!("1e3")),
            ("1.0e3", json!("1.0e3")),
            ("1.0e+3", json!(1000.0)),
            ("1e+3", json!("1e+3")),
            ("12e03", json!("12e03")),
            ("1_0.5", json!(10.5)),
            ("1:30.5", json!(90.5)),
            ("6.8523015e+5", json!(685230.15)),
            ("2024-01-31", json!("2024-01-31")),
            (
                "2001-12-14t21:59:43.10-05:00",
                json!("2001-12-14 21:59:43.100000-05:00"),
            ),
            (
                "2001-12-14 21:59:43.10",
                json!("2001-12-14 21:59:43.100000"),
            ),
            ("'2024-01-31'", json!("2024-01-31")),
            ("!!str 12", json!("12")),
            ("!!int '12'", json!(12)),
            ("!!float 1", json!(1.0)),
            ("!!bool yes", json!(true)),
            ("!!null ''", json!(null)),
            ("'yes'", json!("yes")),
            ("\"on\"", json!("on")),
            ("|\n  yes\n", json!("yes\n")),
        ];
        for (text, want) in cases {
            assert_eq!(&k(text), want, "k: {text}");
        }
    }

    #[test]
    fn infinities_load_but_cannot_enter_a_plan() {
        for text in [".inf", "-.Inf", ".NaN"] {
            let doc = load(&format!("k: {text}")).unwrap();
            assert!(
                to_json(&doc).unwrap_err().contains("NaN or infinity"),
                "{text}"
            );
        }
    }

    /// `!unsafe`: a scalar stays the text as written (Ansible: `!unsafe 12` is '12',
    /// `!unsafe yes` is 'yes', an empty one is ''); in a mapping, values resolve as usual
    /// and every string is unsafe.
    #[test]
    fn unsafe_values_become_markers() {
        let u = |s: &str| json!({ "__ansible_unsafe": s });
        assert_eq!(k("!unsafe '{{ x }}'"), u("{{ x }}"));
        assert_eq!(k("!unsafe 12"), u("12"));
        assert_eq!(k("!unsafe yes"), u("yes"));
        assert_eq!(k("!unsafe"), u(""));
        assert_eq!(
            k("!unsafe {a: '{{ x }}', b: yes, c: 3}"),
            json!({"a": u("{{ x }}"), "b": true, "c": 3})
        );
        assert_eq!(k("!unsafe [1, '{{ a }}']"), json!([1, u("{{ a }}")]));
    }

    #[test]
    fn merge_keys_as_pyyaml_flattens_them() {
        let doc = |t: &str| to_json(&load(t).unwrap()).unwrap();
        assert_eq!(
            doc("a: &x {p: 1, q: 2}\nb:\n  <<: *x\n  q: 3"),
            json!({"a": {"p": 1, "q": 2}, "b": {"p": 1, "q": 3}})
        );
        // Of a list of merged mappings, the first wins; the mapping's own keys beat both.
        assert_eq!(
            doc("a: &x {p: 1}\nc: &y {p: 2, r: 5}\nb:\n  <<: [*x, *y]\n  s: 1")["b"],
            json!({"p": 1, "r": 5, "s": 1})
        );
        assert_eq!(
            doc("b:\n  q: 3\n  <<: {q: 9, z: 1}")["b"],
            json!({"q": 3, "z": 1})
        );
        // A quoted `<<` is an ordinary key.
        assert_eq!(doc("'<<': {a: 1}"), json!({"<<": {"a": 1}}));
        assert!(
            load("b:\n  <<: 3\n")
                .unwrap_err()
                .msg
                .contains("for merging")
        );
    }

    #[test]
    fn binary_values_that_are_utf8_text_load_as_that_text() {
        // ini_file's target writes its UTF-8 fixture as `content: !!binary |` over lines.
        let v = load("k: !!binary |\n  aGVs\n  bG8=\n").unwrap();
        assert_eq!(to_json(&v).unwrap(), json!({"k": "hello"}));
        assert!(
            load("k: !!binary '%%'\n")
                .unwrap_err()
                .msg
                .contains("!!binary")
        );
    }

    #[test]
    fn duplicate_keys_keep_the_last_value_in_the_first_place() {
        let v = load("a: 1\nb: 2\na: 3\n").unwrap();
        let keys: Vec<String> = v
            .as_mapping()
            .unwrap()
            .keys()
            .map(|k| key_text(k).unwrap())
            .collect();
        assert_eq!(keys, ["a", "b"]);
        assert_eq!(to_json(&v).unwrap(), json!({"a": 3, "b": 2}));
    }

    #[test]
    fn flow_collections_ignore_indentation_as_pyyaml_does() {
        // filter_core's vars/main.yml: a JSON object as a value, closed in the key's column.
        let text = "a: 1\nexample: {\n    \"k\": [\n        1,\n  2\n],\n    \"s\": \"x\n  y\"\n}\nb:\n  c: [1,\n2]\n";
        let v = to_json(&load(text).unwrap()).unwrap();
        assert_eq!(
            v,
            json!({"a": 1, "example": {"k": [1, 2], "s": "x y"}, "b": {"c": [1, 2]}})
        );
        // Block structure keeps its rules: a badly indented block line is still refused.
        let err = load("a:\n  b: 1\n c: 2\n").unwrap_err();
        assert_eq!(err.line, Some(3), "{err:?}");
    }

    #[test]
    fn a_key_given_twice_is_refused_or_passed_as_ansible_is_told() {
        // yaml_parsing: ANSIBLE_DUPLICATE_YAML_DICT_KEY=error makes the file an error
        // naming the key; warn and ignore keep the last value.
        let text = "x: 1\nvars:\n  foo: bar\n  foo: baz\n";
        let e = load_from(text, "p.yml", Duplicates::Error).unwrap_err();
        assert!(
            e.msg
                .contains("While constructing a mapping from p.yml, line 3, column 3, found a duplicate dict key (foo)"),
            "{}",
            e.msg
        );
        for d in [Duplicates::Warn, Duplicates::Ignore] {
            let v = load_from(text, "p.yml", d).unwrap();
            assert_eq!(
                to_json(&v).unwrap(),
                json!({"x": 1, "vars": {"foo": "baz"}})
            );
        }
        assert!(load_from("a: {b: 1}\nc: {b: 2}\n", "p.yml", Duplicates::Error).is_ok());
        assert_eq!(Duplicates::from_setting(None), Duplicates::Warn);
        assert_eq!(Duplicates::from_setting(Some("ERROR")), Duplicates::Error);
        assert_eq!(Duplicates::from_setting(Some("ignore")), Duplicates::Ignore);
    }

    #[test]
    fn refusals_name_the_line() {
        let e = load("a: 1\nk: !custom x\n").unwrap_err();
        assert_eq!(e.line, Some(2));
        assert!(e.msg.contains("'!custom'"), "{}", e.msg);
        let e = load("k: =\n").unwrap_err();
        assert!(e.msg.contains("tag:yaml.org,2002:value"), "{}", e.msg);
        let e = load("? [1, 2]\n: x\n").unwrap_err();
        assert!(e.msg.contains("unhashable key"), "{}", e.msg);
        let e = load("k: &a [1, *a]\n").unwrap_err();
        assert!(e.msg.contains("alias"), "{}", e.msg);
        let e = load("a: 1\n---\nb: 2\n").unwrap_err();
        assert!(e.msg.contains("single document"), "{}", e.msg);
        assert_eq!(e.line, Some(2));
        let e = load("k: !!binary //4=\n").unwrap_err();
        assert!(e.msg.contains("!!binary"), "{}", e.msg);
        let e = load("k: 99999999999999999999999\n").unwrap_err();
        assert!(e.msg.contains("64 bits"), "{}", e.msg);
        let e = load("k: [1, 2\n").unwrap_err();
        assert!(e.line.is_some());
    }

    #[test]
    fn empty_text_is_null_and_vault_stays_tagged() {
        assert_eq!(load("").unwrap(), Yaml::Null);
        assert_eq!(load("# only a comment\n").unwrap(), Yaml::Null);
        let v = load("k: !vault |\n  $ANSIBLE_VAULT;1.1;AES256\n  00\n").unwrap();
        let Some(Yaml::Tagged(t)) = v.get("k") else {
            panic!("{v:?}")
        };
        assert_eq!(t.tag, "vault");
    }

    #[test]
    fn aliases_cannot_explode() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let prev = format!("*a{}", i - 1);
            text.push_str(&format!(
                "a{i}: &a{i} [{}]\n",
                [prev.as_str(); 10].join(", ")
            ));
        }
        let e = load(&text).unwrap_err();
        assert!(e.msg.contains("aliases copy more than"), "{}", e.msg);
        let deep = format!("{}{}", "[".repeat(1000), "]".repeat(1000));
        // The parser's own limit or ours: refused either way, never a stack overflow.
        let e = load(&deep).unwrap_err();
        assert!(
            e.msg.contains("nested more than") || e.msg.contains("recursion limit"),
            "{}",
            e.msg
        );
    }
}
