//! Name patterns: host ranges in inventory names (`web[01:03]`) and `name:port`. Host
//! patterns (`web:&prod:!web2`) are `rustle_runner::hostpattern`'s, shared with the
//! runner, which matches a play's hosts again after `group_by`.

/// Most hosts one written name may expand to; a typo like `h[0:99999999]` must not
/// exhaust memory.
const MAX_EXPANSION: usize = 100_000;

/// ASCII letters in the order Ansible's alphabetic ranges use (`[x:B]` runs through `z`, `A`).
const LETTERS: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// Splits `name:port` into the name and the port, leaving IPv6 addresses (several colons
/// outside brackets) and range brackets (`web[1:3]`) alone.
pub(super) fn split_port(name: &str) -> Result<(&str, Option<u16>), String> {
    let mut depth = 0usize;
    let mut colons = Vec::new();
    for (i, c) in name.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            ':' if depth == 0 => colons.push(i),
            _ => {}
        }
    }
    let [colon] = colons.as_slice() else {
        return Ok((name, None));
    };
    let (host, port) = (
        name.get(..*colon).unwrap_or(name),
        name.get(colon + 1..).unwrap_or(""),
    );
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("port '{port}' after ':' is not a number"));
    }
    match port.parse::<u16>() {
        Ok(p) if p != 0 => Ok((host, Some(p))),
        _ => Err(format!("port {port} is not between 1 and 65535")),
    }
}

/// Expands every `[...]` range in a host name: `a:b` or `a:b:step` over numbers (zero
/// padding kept when `a` has a leading zero) or single letters, or a comma list
/// `[red,blue]`. Several ranges expand as a product, leftmost varying slowest.
pub(super) fn expand_host_range(name: &str) -> Result<Vec<String>, String> {
    let mut results = vec![String::new()];
    let mut rest = name;
    while let Some(open) = rest.find('[') {
        let literal = rest.get(..open).unwrap_or_default();
        let after = rest.get(open + 1..).unwrap_or_default();
        let close = after.find(']').ok_or("'[' without a closing ']'")?;
        let inner = after.get(..close).unwrap_or_default();
        if inner.contains('[') {
            return Err("nested '[' inside a range".into());
        }
        let choices = expand_one(inner)?;
        let total = results.len().saturating_mul(choices.len());
        if total > MAX_EXPANSION {
            return Err(format!("expands to more than {MAX_EXPANSION} hosts"));
        }
        let mut next = Vec::with_capacity(total);
        for prefix in &results {
            for choice in &choices {
                next.push(format!("{prefix}{literal}{choice}"));
            }
        }
        results = next;
        rest = after.get(close + 1..).unwrap_or_default();
    }
    if rest.contains(']') {
        return Err("']' without an opening '['".into());
    }
    for r in &mut results {
        r.push_str(rest);
    }
    Ok(results)
}

/// The values of one bracket: `[01:03]`, `[a:c]`, `[1:10:2]`, `[1,3,5]`.
fn expand_one(inner: &str) -> Result<Vec<String>, String> {
    if inner.contains(',') {
        let items: Vec<String> = inner.split(',').map(|s| s.trim().to_owned()).collect();
        if items.iter().any(String::is_empty) {
            return Err(format!("empty item in list [{inner}]"));
        }
        return Ok(items);
    }
    let bounds: Vec<&str> = inner.split(':').collect();
    let (begin, end, step) = match bounds.as_slice() {
        [b, e] => (*b, *e, "1"),
        [b, e, s] => (*b, *e, *s),
        _ => {
            return Err(format!(
                "[{inner}] must be begin:end, begin:end:step or a,b,c"
            ));
        }
    };
    // Ansible reads an empty begin as 0, as in `[:3]`.
    let begin = if begin.is_empty() { "0" } else { begin };
    if end.is_empty() {
        return Err(format!("[{inner}] has no end value"));
    }
    let step: usize = match step.parse() {
        Ok(s) if s > 0 => s,
        _ => return Err(format!("step '{step}' must be a positive integer")),
    };
    let letter_index = |s: &str| -> Option<usize> {
        let mut chars = s.chars();
        let c = chars.next()?;
        if chars.next().is_some() {
            return None;
        }
        LETTERS.find(c)
    };
    if let (Some(b), Some(e)) = (letter_index(begin), letter_index(end)) {
        if b > e {
            return Err(format!("end '{end}' comes before start '{begin}'"));
        }
        let letters = LETTERS.get(b..=e).unwrap_or_default();
        return Ok(letters.chars().step_by(step).map(String::from).collect());
    }
    let number = |s: &str| -> Result<u64, String> {
        if s.bytes().all(|b| b.is_ascii_digit()) {
            s.parse().map_err(|_| format!("'{s}' is too large"))
        } else {
            Err(format!("'{s}' is neither a number nor a single letter"))
        }
    };
    let (b, e) = (number(begin)?, number(end)?);
    if b > e {
        return Err(format!("end {end} comes before start {begin}"));
    }
    let width = if begin.len() > 1 && begin.starts_with('0') {
        if begin.len() != end.len() {
            return Err(format!(
                "zero-padded start '{begin}' and end '{end}' must have the same width"
            ));
        }
        begin.len()
    } else {
        0
    };
    let count = (e - b) / step as u64 + 1;
    if count > MAX_EXPANSION as u64 {
        return Err(format!("expands to more than {MAX_EXPANSION} hosts"));
    }
    Ok((b..=e)
        .step_by(step)
        .map(|n| format!("{n:0width$}"))
        .collect())
}
