//! A custom module for rustle-deploy: writes `text`, upper-cased, to the file `dest`.
//! Idempotent (a file that already holds the text reports ok) and check-mode aware.

use serde_json::{Map, Value};

pub fn run(args: &Map<String, Value>, check_mode: bool) -> Result<Map<String, Value>, String> {
    if let Some(k) = args.keys().find(|k| !matches!(k.as_str(), "text" | "dest")) {
        return Err(format!("unsupported argument '{k}' (known: text, dest)"));
    }
    let text = args
        .get("text")
        .and_then(Value::as_str)
        .ok_or("argument 'text' (a string) is required")?;
    let dest = args
        .get("dest")
        .and_then(Value::as_str)
        .ok_or("argument 'dest' (a path) is required")?;
    let wanted = text.to_uppercase();
    let changed = std::fs::read_to_string(dest).map_or(true, |now| now != wanted);
    if changed && !check_mode {
        std::fs::write(dest, &wanted).map_err(|e| format!("cannot write {dest}: {e}"))?;
    }
    let mut result = Map::new();
    result.insert("changed".into(), changed.into());
    result.insert("dest".into(), dest.into());
    Ok(result)
}
