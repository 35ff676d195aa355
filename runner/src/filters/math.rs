//! ansible-core's `plugins/filter/mathstuff.py` (logarithms and powers, set theory,
//! combinatorics, byte sizes, `rekey_on_member`, `zip`), and core.py's `random` and
//! `shuffle`, with Python's Mersenne Twister so a seeded `random` gives the number
//! Ansible gives (`{{ 59 | random(seed=inventory_hostname) }}` keeps a host's cron minute).

use super::core::{distinct, is_sequence, items};
use super::{Opts, add_filters, invalid, items_fit, opts, py_str, py_type, split};
use minijinja::value::{Rest, Value as JValue, ValueKind};
use minijinja::{Environment, Error};

fn number(v: &JValue, filter: &str) -> Result<f64, Error> {
    match v.kind() {
        ValueKind::Number | ValueKind::Bool => f64::try_from(v.clone())
            .map_err(|_| invalid(format!("{filter}() can only be used on numbers"))),
        _ => Err(invalid(format!(
            "{filter}() can only be used on numbers: must be real number, not {}",
            py_type(v)
        ))),
    }
}

fn log(x: JValue, base: Option<JValue>) -> Result<f64, Error> {
    let x = number(&x, "log")?;
    let r = match base {
        None => x.ln(),
        Some(b) => {
            let b = number(&b, "log")?;
            if b == 10.0 {
                x.log10()
            } else {
                x.ln() / b.ln()
            }
        }
    };
    if x <= 0.0 {
        return Err(invalid(
            "log() can only be used on numbers: math domain error",
        ));
    }
    Ok(r)
}

fn pow(x: JValue, y: JValue) -> Result<f64, Error> {
    Ok(number(&x, "pow")?.powf(number(&y, "pow")?))
}

fn root(x: JValue, base: Option<JValue>) -> Result<f64, Error> {
    let x = number(&x, "root")?;
    let base = match base {
        None => 2.0,
        Some(b) => number(&b, "root")?,
    };
    if base == 2.0 {
        if x < 0.0 {
            return Err(invalid(
                "root() can only be used on numbers: math domain error",
            ));
        }
        Ok(x.sqrt())
    } else {
        Ok(x.powf(1.0 / base))
    }
}

fn intersect(a: JValue, b: JValue) -> Result<JValue, Error> {
    let other = items(&b, "intersect")?;
    let both = items(&a, "intersect")?
        .into_iter()
        .filter(|x| other.contains(x));
    Ok(JValue::from(distinct(both)))
}

fn difference(a: JValue, b: JValue) -> Result<JValue, Error> {
    let other = items(&b, "difference")?;
    let only = items(&a, "difference")?
        .into_iter()
        .filter(|x| !other.contains(x));
    Ok(JValue::from(distinct(only)))
}

fn symmetric_difference(a: JValue, b: JValue) -> Result<JValue, Error> {
    let (xa, xb) = (
        items(&a, "symmetric_difference")?,
        items(&b, "symmetric_difference")?,
    );
    let left = xa.iter().filter(|x| !xb.contains(x)).cloned();
    let right = xb.iter().filter(|x| !xa.contains(x)).cloned();
    Ok(JValue::from(distinct(left.chain(right))))
}

fn union(a: JValue, b: JValue) -> Result<JValue, Error> {
    let mut all = items(&a, "union")?;
    all.extend(items(&b, "union")?);
    Ok(JValue::from(distinct(all)))
}

/// `itertools.product(*iterables, repeat=1)`.
fn product(a: JValue, rest: Rest<JValue>) -> Result<JValue, Error> {
    let o = Opts::new(rest.0)?;
    let repeat = o.kw.get::<Option<usize>>("repeat")?.unwrap_or(1);
    o.kw.assert_all_used()?;
    let mut pools = vec![items(&a, "product")?];
    for other in &o.pos {
        pools.push(items(other, "product")?);
    }
    // The count of tuples is the product of the pools' sizes, known before building.
    let count = (0..repeat)
        .flat_map(|_| pools.iter().map(Vec::len))
        .try_fold(1usize, |acc, n| acc.checked_mul(n));
    items_fit("product", count)?;
    let pools: Vec<Vec<JValue>> = (0..repeat).flat_map(|_| pools.clone()).collect();
    let mut acc: Vec<Vec<JValue>> = vec![Vec::new()];
    for pool in &pools {
        acc = acc
            .into_iter()
            .flat_map(|prefix| {
                pool.iter().map(move |x| {
                    let mut p = prefix.clone();
                    p.push(x.clone());
                    p
                })
            })
            .collect();
    }
    Ok(JValue::from(
        acc.into_iter().map(JValue::from).collect::<Vec<_>>(),
    ))
}

/// `itertools.permutations(iterable, r=None)`, in its order.
fn permutations(a: JValue, r: Option<usize>) -> Result<JValue, Error> {
    let pool = items(&a, "permutations")?;
    let n = pool.len();
    let r = r.unwrap_or(n);
    let mut out = Vec::new();
    if r > n {
        return Ok(JValue::from(out));
    }
    // n! / (n - r)! tuples, counted before any is built.
    items_fit(
        "permutations",
        (n - r + 1..=n).try_fold(1usize, |acc, k| acc.checked_mul(k)),
    )?;
    let mut indices: Vec<usize> = (0..n).collect();
    let mut cycles: Vec<usize> = (n - r + 1..=n).rev().collect();
    let pick = |idx: &[usize]| {
        JValue::from(
            idx.iter()
                .take(r)
                .map(|&i| pool.get(i).cloned().unwrap_or_default())
                .collect::<Vec<_>>(),
        )
    };
    out.push(pick(&indices));
    'outer: loop {
        for i in (0..r).rev() {
            let Some(c) = cycles.get_mut(i) else {
                break 'outer;
            };
            *c -= 1;
            if *c == 0 {
                let moved = indices.remove(i);
                indices.push(moved);
                *c = n - i;
            } else {
                let j = n - *c;
                indices.swap(i, j);
                out.push(pick(&indices));
                continue 'outer;
            }
        }
        break;
    }
    Ok(JValue::from(out))
}

/// `itertools.combinations(iterable, r)`, in its order.
fn combinations(a: JValue, r: usize) -> Result<JValue, Error> {
    let pool = items(&a, "combinations")?;
    let n = pool.len();
    let mut out = Vec::new();
    if r > n {
        return Ok(JValue::from(out));
    }
    // C(n, r) tuples, counted before any is built; each step's partial product is
    // itself a binomial coefficient, so the division is exact.
    let k = r.min(n - r);
    items_fit(
        "combinations",
        (0..k).try_fold(1usize, |acc, i| acc.checked_mul(n - i).map(|p| p / (i + 1))),
    )?;
    let mut idx: Vec<usize> = (0..r).collect();
    let pick = |idx: &[usize]| {
        JValue::from(
            idx.iter()
                .map(|&i| pool.get(i).cloned().unwrap_or_default())
                .collect::<Vec<_>>(),
        )
    };
    out.push(pick(&idx));
    // The rightmost index that can still move right, as itertools does.
    while let Some(i) = (0..r)
        .rev()
        .find(|&i| idx.get(i).is_some_and(|&v| v != i + n - r))
    {
        if let Some(v) = idx.get_mut(i) {
            *v += 1;
        }
        for j in i + 1..r {
            let prev = idx.get(j - 1).copied().unwrap_or(0);
            if let Some(v) = idx.get_mut(j) {
                *v = prev + 1;
            }
        }
        out.push(pick(&idx));
    }
    Ok(JValue::from(out))
}

/// `zip(*iterables)` and `itertools.zip_longest(*iterables, fillvalue=None)`.
fn zip(a: JValue, rest: Rest<JValue>, longest: bool) -> Result<JValue, Error> {
    let o = Opts::new(rest.0)?;
    let fill = if longest {
        o.kw.get::<Option<JValue>>("fillvalue")?
            .unwrap_or(JValue::from(()))
    } else {
        JValue::from(())
    };
    o.kw.assert_all_used()?;
    let name = if longest { "zip_longest" } else { "zip" };
    let mut lists = vec![items(&a, name)?];
    for other in &o.pos {
        lists.push(items(other, name)?);
    }
    let len = if longest {
        lists.iter().map(Vec::len).max().unwrap_or(0)
    } else {
        lists.iter().map(Vec::len).min().unwrap_or(0)
    };
    Ok(JValue::from(
        (0..len)
            .map(|i| {
                JValue::from(
                    lists
                        .iter()
                        .map(|l| l.get(i).cloned().unwrap_or_else(|| fill.clone()))
                        .collect::<Vec<_>>(),
                )
            })
            .collect::<Vec<_>>(),
    ))
}

/// The byte-size units, largest first (`formatters.SIZE_RANGES`).
const SIZE_RANGES: [(char, u32); 9] = [
    ('Y', 80),
    ('Z', 70),
    ('E', 60),
    ('P', 50),
    ('T', 40),
    ('G', 30),
    ('M', 20),
    ('K', 10),
    ('B', 0),
];

/// Python's `'%.2f' % x`: the exact binary value rounded half to even.
pub(crate) fn fixed2(x: f64) -> String {
    format!("{x:.2}")
}

fn human_readable(size: JValue, rest: Rest<JValue>) -> Result<String, Error> {
    let o = Opts::new(rest.0)?;
    let isbits = o.flag(0, "isbits")?;
    let unit = o
        .arg(1, "unit")?
        .filter(|u| !u.is_none())
        .map(|u| py_str(&u));
    o.done("human_readable", 2)?;
    let n = match size.kind() {
        ValueKind::Number | ValueKind::Bool => f64::try_from(size.clone()).unwrap_or(0.0),
        _ => {
            return Err(invalid(format!(
                "human_readable() failed on bad input: '>=' not supported between instances of '{}' and 'int'",
                py_type(&size)
            )));
        }
    };
    let base = if isbits { "bits" } else { "Bytes" };
    let mut chosen = ('B', 0u32);
    for (suffix, shift) in SIZE_RANGES {
        chosen = (suffix, shift);
        let limit = 2f64.powi(shift as i32);
        let wanted = match &unit {
            None => n >= limit,
            Some(u) => u.to_uppercase().starts_with(suffix),
        };
        if wanted {
            break;
        }
    }
    let (suffix, shift) = chosen;
    let suffix = if shift != 0 {
        format!("{suffix}{}", base.chars().next().unwrap_or('B'))
    } else {
        base.to_string()
    };
    Ok(format!("{} {suffix}", fixed2(n / 2f64.powi(shift as i32))))
}

fn human_to_bytes(v: JValue, rest: Rest<JValue>) -> Result<i64, Error> {
    let o = Opts::new(rest.0)?;
    let default_unit = o
        .arg(0, "default_unit")?
        .filter(|u| !u.is_none())
        .map(|u| py_str(&u));
    let isbits = o.flag(1, "isbits")?;
    o.done("human_to_bytes", 2)?;
    let text = py_str(&v);
    let cant = || {
        invalid(format!(
            "human_to_bytes() can't interpret following string: {text}"
        ))
    };
    let re = regex::Regex::new(r"^([0-9]*\.?[0-9]+)(?:\s*([A-Za-z]+))?\s*$").map_err(|_| cant())?;
    // Python's `$` also matches before a final newline.
    let caps = re
        .captures(text.strip_suffix('\n').unwrap_or(&text))
        .ok_or_else(cant)?;
    let num: f64 = caps
        .get(1)
        .map_or("", |m| m.as_str())
        .parse()
        .map_err(|_| cant())?;
    let Some(unit) = caps.get(2).map(|m| m.as_str().to_string()).or(default_unit) else {
        return Ok(num.round_ties_even() as i64);
    };
    let range_key = unit
        .chars()
        .next()
        .map(|c| c.to_ascii_uppercase())
        .unwrap_or('B');
    let Some((_, shift)) = SIZE_RANGES.iter().find(|(k, _)| *k == range_key) else {
        return Err(cant());
    };
    let class = if isbits { 'b' } else { 'B' };
    if unit.chars().count() > 1 {
        let names = [
            ('B', "byte", "bit"),
            ('K', "kilobyte", "kilobit"),
            ('M', "megabyte", "megabit"),
            ('G', "gigabyte", "gigabit"),
            ('T', "terabyte", "terabit"),
            ('P', "petabyte", "petabit"),
            ('E', "exabyte", "exabit"),
            ('Z', "zetabyte", "zetabit"),
            ('Y', "yottabyte", "yottabit"),
        ];
        let long = names
            .iter()
            .find(|(k, _, _)| *k == range_key)
            .map(|(_, b, bit)| if isbits { *bit } else { *b })
            .unwrap_or("");
        let short = if range_key == 'B' {
            class.to_string()
        } else {
            format!("{range_key}{class}")
        };
        // Ansible's filter reports every conversion failure with the same message.
        if unit.to_lowercase() != long && unit != short {
            return Err(cant());
        }
    }
    Ok((num * 2f64.powi(*shift as i32)).round_ties_even() as i64)
}

fn rekey_on_member(data: JValue, key: JValue, rest: Rest<JValue>) -> Result<JValue, Error> {
    let o = Opts::new(rest.0)?;
    let duplicates = o
        .arg(0, "duplicates")?
        .map(|d| py_str(&d))
        .unwrap_or_else(|| "error".into());
    o.done("rekey_on_member", 1)?;
    if duplicates != "error" && duplicates != "overwrite" {
        return Err(invalid(format!(
            "duplicates parameter to rekey_on_member has unknown value: {duplicates}"
        )));
    }
    if data.is_undefined() || key.is_undefined() {
        return Err(Error::new(
            minijinja::ErrorKind::UndefinedError,
            "rekey_on_member: an argument is undefined",
        ));
    }
    let members: Vec<JValue> = match data.kind() {
        ValueKind::Map => data
            .try_iter()?
            .map(|k| data.get_item(&k).unwrap_or_default())
            .collect(),
        ValueKind::Seq | ValueKind::Iterable => data.try_iter()?.collect(),
        _ => return Err(invalid("Type is not a valid list, set, or dict")),
    };
    let mut out: Vec<(JValue, JValue)> = Vec::new();
    for item in members {
        if item.kind() != ValueKind::Map {
            return Err(invalid("List item is not a valid dict"));
        }
        let k = item.get_item(&key)?;
        if k.is_undefined() {
            return Err(invalid(format!("Key {} was not found", py_str(&key))));
        }
        match out.iter_mut().find(|(existing, _)| *existing == k) {
            Some(_) if duplicates == "error" => {
                return Err(invalid(format!(
                    "Key {} is not unique, cannot correctly turn into dict",
                    py_str(&k)
                )));
            }
            Some(slot) => slot.1 = item,
            None => out.push((k, item)),
        }
    }
    Ok(JValue::from_iter(out))
}

// ---------------------------------------------------------------------------
// Python's `random` module: MT19937 seeded as CPython seeds it.

/// CPython's `random.Random`: the Mersenne Twister with CPython's seeding and its
/// `_randbelow`, `randrange`, `choice` and `shuffle`.
pub(crate) struct PyRandom {
    mt: [u32; 624],
    index: usize,
}

impl PyRandom {
    fn init_genrand(s: u32) -> PyRandom {
        let mut mt = [0u32; 624];
        let mut prev = s;
        for (i, slot) in mt.iter_mut().enumerate() {
            if i == 0 {
                *slot = s;
            } else {
                prev = 1_812_433_253u32
                    .wrapping_mul(prev ^ (prev >> 30))
                    .wrapping_add(i as u32);
                *slot = prev;
            }
        }
        PyRandom { mt, index: 624 }
    }

    /// `init_by_array`, as `random.seed` calls it with the seed's 32-bit words.
    fn from_key(key: &[u32]) -> PyRandom {
        let mut r = PyRandom::init_genrand(19_650_218);
        let n = 624usize;
        let len = key.len().max(1);
        let (mut i, mut j) = (1usize, 0usize);
        let at = |mt: &[u32; 624], k: usize| mt.get(k).copied().unwrap_or(0);
        for _ in 0..n.max(len) {
            let prev = at(&r.mt, i - 1);
            let v = (at(&r.mt, i) ^ (prev ^ (prev >> 30)).wrapping_mul(1_664_525))
                .wrapping_add(key.get(j).copied().unwrap_or(0))
                .wrapping_add(j as u32);
            if let Some(s) = r.mt.get_mut(i) {
                *s = v;
            }
            i += 1;
            j += 1;
            if i >= n {
                let last = at(&r.mt, n - 1);
                r.mt[0] = last;
                i = 1;
            }
            if j >= len {
                j = 0;
            }
        }
        for _ in 0..n - 1 {
            let prev = at(&r.mt, i - 1);
            let v = (at(&r.mt, i) ^ (prev ^ (prev >> 30)).wrapping_mul(1_566_083_941))
                .wrapping_sub(i as u32);
            if let Some(s) = r.mt.get_mut(i) {
                *s = v;
            }
            i += 1;
            if i >= n {
                let last = at(&r.mt, n - 1);
                r.mt[0] = last;
                i = 1;
            }
        }
        r.mt[0] = 0x8000_0000;
        r
    }

    /// `random.Random(seed)` for an int, a string (version 2: the text's UTF-8 bytes
    /// followed by their SHA-512, as one big-endian number) or anything else by its text.
    pub(crate) fn seeded(seed: &JValue) -> PyRandom {
        let bytes_be: Vec<u8> = if let Some(n) = seed.as_i64().filter(|_| seed.is_integer()) {
            n.unsigned_abs().to_be_bytes().to_vec()
        } else {
            use sha2::Digest as _;
            let text = py_str(seed);
            let mut b = text.as_bytes().to_vec();
            b.extend_from_slice(&sha2::Sha512::digest(text.as_bytes()));
            b
        };
        // The number's 32-bit words, least significant first; zero is one zero word.
        let mut key: Vec<u32> = bytes_be
            .rchunks(4)
            .map(|c| c.iter().fold(0u32, |acc, &b| (acc << 8) | u32::from(b)))
            .collect();
        while key.len() > 1 && key.last() == Some(&0) {
            key.pop();
        }
        PyRandom::from_key(&key)
    }

    /// Seeded from the operating system's randomness (Python's `SystemRandom` in spirit).
    pub(crate) fn from_os() -> Result<PyRandom, Error> {
        let bytes = os_random(64)?;
        let key: Vec<u32> = bytes
            .chunks(4)
            .map(|c| c.iter().fold(0u32, |acc, &b| (acc << 8) | u32::from(b)))
            .collect();
        Ok(PyRandom::from_key(&key))
    }

    fn genrand_u32(&mut self) -> u32 {
        if self.index >= 624 {
            for k in 0..624 {
                let cur = self.mt.get(k).copied().unwrap_or(0);
                let next = self.mt.get((k + 1) % 624).copied().unwrap_or(0);
                let far = self.mt.get((k + 397) % 624).copied().unwrap_or(0);
                let y = (cur & 0x8000_0000) | (next & 0x7fff_ffff);
                let mut v = far ^ (y >> 1);
                if y & 1 != 0 {
                    v ^= 0x9908_b0df;
                }
                if let Some(s) = self.mt.get_mut(k) {
                    *s = v;
                }
            }
            self.index = 0;
        }
        let mut y = self.mt.get(self.index).copied().unwrap_or(0);
        self.index += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    /// `getrandbits(k)`.
    fn getrandbits(&mut self, k: u32) -> u64 {
        if k <= 32 {
            return u64::from(self.genrand_u32() >> (32 - k));
        }
        let low = u64::from(self.genrand_u32());
        let high = u64::from(self.genrand_u32() >> (64 - k.min(64)));
        low | (high << 32)
    }

    /// `_randbelow(n)`: rejection sampling on `n.bit_length()` bits.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        let k = 64 - n.leading_zeros();
        loop {
            let r = self.getrandbits(k);
            if r < n {
                return r;
            }
        }
    }

    /// `shuffle(x)`.
    pub(crate) fn shuffle<T>(&mut self, x: &mut [T]) {
        for i in (1..x.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            x.swap(i, j);
        }
    }
}

/// Bytes from the operating system's random source, read through std.
pub(crate) fn os_random(n: usize) -> Result<Vec<u8>, Error> {
    use std::io::Read as _;
    let mut buf = vec![0u8; n];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(|e| invalid(format!("cannot read /dev/urandom: {e}")))?;
    Ok(buf)
}

/// `random`: a number in `range(start, end, step)`, or an item of a sequence.
pub(crate) fn random(end: JValue, rest: Rest<JValue>) -> Result<JValue, Error> {
    let o = Opts::new(rest.0)?;
    let start = o.arg(0, "start")?.filter(|v| !v.is_none());
    let step = o.arg(1, "step")?.filter(|v| !v.is_none());
    let seed = o.arg(2, "seed")?.filter(|v| !v.is_none());
    o.done("random", 3)?;
    let mut r = match &seed {
        Some(s) => PyRandom::seeded(s),
        None => PyRandom::from_os()?,
    };
    if end.is_integer() {
        let end = end.as_i64().unwrap_or(0);
        let start = start
            .and_then(|s| s.as_i64())
            .filter(|s| *s != 0)
            .unwrap_or(0);
        let step = step
            .and_then(|s| s.as_i64())
            .filter(|s| *s != 0)
            .unwrap_or(1);
        let width = end - start;
        let n = if step > 0 {
            (width + step - 1).div_euclid(step)
        } else {
            (width + step + 1).div_euclid(step)
        };
        if n <= 0 {
            return Err(invalid(format!(
                "empty range in randrange({start}, {end}, {step})"
            )));
        }
        return Ok(JValue::from(start + step * r.below(n as u64) as i64));
    }
    if matches!(
        end.kind(),
        ValueKind::Seq | ValueKind::Iterable | ValueKind::Map | ValueKind::String
    ) {
        if start.is_some_and(|s| s.is_true()) || step.is_some_and(|s| s.is_true()) {
            return Err(invalid(
                "start and step can only be used with integer values",
            ));
        }
        let all = items(&end, "random")?;
        if all.is_empty() {
            return Err(invalid("Cannot choose from an empty sequence"));
        }
        let i = r.below(all.len() as u64) as usize;
        return Ok(all.get(i).cloned().unwrap_or_default());
    }
    Err(invalid("random can only be used on sequences and integers"))
}

/// `shuffle`: a list's items in random (or seeded) order; anything else as it is.
pub(crate) fn shuffle(v: JValue, rest: Rest<JValue>) -> Result<JValue, Error> {
    let o = Opts::new(rest.0)?;
    let seed = o.arg(0, "seed")?.filter(|s| s.is_true());
    o.done("shuffle", 1)?;
    if !(is_sequence(&v) || matches!(v.kind(), ValueKind::Map | ValueKind::String)) {
        return Ok(v);
    }
    let mut all = items(&v, "shuffle")?;
    let mut r = match &seed {
        Some(s) => PyRandom::seeded(s),
        None => PyRandom::from_os()?,
    };
    r.shuffle(&mut all);
    Ok(JValue::from(all))
}

/// A filter's value and its one optional positional argument (by position or `name`).
fn one_opt(args: &[JValue], name: &str, filter: &str) -> Result<(JValue, Option<JValue>), Error> {
    let (v, o) = opts(args)?;
    let x = o.arg(0, name)?;
    o.done(filter, 1)?;
    Ok((v, x))
}

/// A filter's value and its one required positional argument.
fn one_req(args: &[JValue], name: &str, filter: &str) -> Result<(JValue, JValue), Error> {
    let (v, o) = opts(args)?;
    let x = o.req(0, name, filter)?;
    o.done(filter, 1)?;
    Ok((v, x))
}

/// Registers the filters of mathstuff.py.
pub(crate) fn register(env: &mut Environment<'static>) {
    add_filters(
        env,
        &[
            ("log", |a| {
                let (x, base) = one_opt(a, "base", "log")?;
                log(x, base).map(JValue::from)
            }),
            ("pow", |a| {
                let (x, y) = one_req(a, "y", "pow")?;
                pow(x, y).map(JValue::from)
            }),
            ("root", |a| {
                let (x, base) = one_opt(a, "base", "root")?;
                root(x, base).map(JValue::from)
            }),
            ("intersect", |a| {
                let (x, y) = one_req(a, "b", "intersect")?;
                intersect(x, y)
            }),
            ("difference", |a| {
                let (x, y) = one_req(a, "b", "difference")?;
                difference(x, y)
            }),
            ("symmetric_difference", |a| {
                let (x, y) = one_req(a, "b", "symmetric_difference")?;
                symmetric_difference(x, y)
            }),
            ("union", |a| {
                let (x, y) = one_req(a, "b", "union")?;
                union(x, y)
            }),
            ("product", |a| split(a).and_then(|(v, r)| product(v, r))),
            ("permutations", |a| {
                let (v, r) = one_opt(a, "r", "permutations")?;
                permutations(v, r.and_then(|r| r.as_usize()))
            }),
            ("combinations", |a| {
                let (v, r) = one_req(a, "r", "combinations")?;
                let r = r
                    .as_usize()
                    .ok_or_else(|| invalid("combinations: r must be a non-negative integer"))?;
                combinations(v, r)
            }),
            ("human_readable", |a| {
                split(a)
                    .and_then(|(v, r)| human_readable(v, r))
                    .map(JValue::from)
            }),
            ("human_to_bytes", |a| {
                split(a)
                    .and_then(|(v, r)| human_to_bytes(v, r))
                    .map(JValue::from)
            }),
            ("rekey_on_member", |a| {
                let (v, mut r) = split(a)?;
                let key = super::first_positional(&mut r, "key", "rekey_on_member")?;
                rekey_on_member(v, key, r)
            }),
            ("zip", |a| split(a).and_then(|(v, r)| zip(v, r, false))),
            ("zip_longest", |a| {
                split(a).and_then(|(v, r)| zip(v, r, true))
            }),
        ],
    );
}

#[cfg(test)]
mod tests {
    use super::super::check::{errors, table};
    use serde_json::json;

    // Expected values: ansible-core 2.18.19 (ansible 11.13.0, with netaddr 1.3.0 and
    // jmespath 1.1.0 for the collections), each expression evaluated as
    //   init_plugin_loader(); Templar(loader=DataLoader(), variables={'nl': '\n'})
    //       .template('{{ (EXPR) | to_json }}')
    // and an error's text matched by the part of Ansible's message shown.
    #[test]
    fn math_filters_match_ansible() {
        let vars = json!({"nl": "\n"});
        table(
            &vars,
            &[
                (r#"1|log"#, r#"0.0"#),
                (r#"100|log(10)"#, r#"2.0"#),
                (r#"21|log(21)"#, r#"1.0"#),
                (r#"2.3|log(42)"#, r#"0.22284182605675062"#),
                (r#"8|log(2)"#, r#"3.0"#),
                (r#"2|pow(4)"#, r#"16.0"#),
                (r#"2|pow(0.5)"#, r#"1.4142135623730951"#),
                (r#"4|root"#, r#"2.0"#),
                (r#"4|root(2)"#, r#"2.0"#),
                (r#"9|root(1)"#, r#"9.0"#),
                (r#"9|root(6)"#, r#"1.4422495703074083"#),
                (r#"[1,2,3]|intersect([4,5,6])"#, r#"[]"#),
                (r#"[1,2,3]|intersect([3,4,5,6])"#, r#"[3]"#),
                (r#"["a","A","b"]|intersect(["b","B","c","C"])"#, r#"["b"]"#),
                (r#"[1,2,3]|difference([3,4,5,6])|sort"#, r#"[1, 2]"#),
                (
                    r#"[1,2,3]|symmetric_difference([3,4,5,6])|sort"#,
                    r#"[1, 2, 4, 5, 6]"#,
                ),
                (r#"[1,2,3]|union([3,4,5,6])"#, r#"[1, 2, 3, 4, 5, 6]"#),
                (r#"[1,2,3]|union([{}])"#, r#"[1, 2, 3, {}]"#),
                (r#"'abc'|union('cd')|sort"#, r#"["a", "b", "c", "d"]"#),
                (
                    r#"[1,2]|product(['a','b'])|list"#,
                    r#"[[1, "a"], [1, "b"], [2, "a"], [2, "b"]]"#,
                ),
                (
                    r#"[1,2]|product(repeat=2)|list"#,
                    r#"[[1, 1], [1, 2], [2, 1], [2, 2]]"#,
                ),
                (
                    r#"[1,2,3]|permutations|list"#,
                    r#"[[1, 2, 3], [1, 3, 2], [2, 1, 3], [2, 3, 1], [3, 1, 2], [3, 2, 1]]"#,
                ),
                (
                    r#"[1,2,3]|permutations(2)|list"#,
                    r#"[[1, 2], [1, 3], [2, 1], [2, 3], [3, 1], [3, 2]]"#,
                ),
                (
                    r#"[1,2,3,4]|combinations(2)|list"#,
                    r#"[[1, 2], [1, 3], [1, 4], [2, 3], [2, 4], [3, 4]]"#,
                ),
                (r#"[1,2,3]|combinations(0)|list"#, r#"[[]]"#),
                (r#"[1,2]|combinations(3)|list"#, r#"[]"#),
                (r#"1|human_readable"#, r#""1.00 Bytes""#),
                (r#"1|human_readable(isbits=True)"#, r#""1.00 bits""#),
                (r#"10240|human_readable"#, r#""10.00 KB""#),
                (r#"102400000|human_readable"#, r#""97.66 MB""#),
                (r#"102400000|human_readable(unit="G")"#, r#""0.10 GB""#),
                (
                    r#"102400000|human_readable(isbits=True, unit="G")"#,
                    r#""0.10 Gb""#,
                ),
                (r#"1536|human_readable"#, r#""1.50 KB""#),
                (r#"0|human_readable"#, r#""0.00 Bytes""#),
                (r#"1125899906842624|human_readable"#, r#""1.00 PB""#),
                (r#"'0'|human_to_bytes"#, r#"0"#),
                (r#"'0.1'|human_to_bytes"#, r#"0"#),
                (r#"'0.9'|human_to_bytes"#, r#"1"#),
                (r#"'1'|human_to_bytes"#, r#"1"#),
                (r#"'10.00 KB'|human_to_bytes"#, r#"10240"#),
                (r#"'11 MB'|human_to_bytes"#, r#"11534336"#),
                (r#"'1.1 GB'|human_to_bytes"#, r#"1181116006"#),
                (r#"'10.00 Kb'|human_to_bytes(isbits=True)"#, r#"10240"#),
                (r#"'2K'|human_to_bytes"#, r#"2048"#),
                (r#"'2'|human_to_bytes('K')"#, r#"2048"#),
                (r#"'2 kilobyte'|human_to_bytes"#, r#"2048"#),
                (r#"'1.5 b'|human_to_bytes"#, r#"2"#),
                (r#"'2.5'|human_to_bytes"#, r#"2"#),
                (r#"'3.5'|human_to_bytes"#, r#"4"#),
                (
                    r#"[{"proto": "eigrp", "state": "enabled"}, {"proto": "ospf", "state": "enabled"}]|rekey_on_member("proto")"#,
                    r#"{"eigrp": {"proto": "eigrp", "state": "enabled"}, "ospf": {"proto": "ospf", "state": "enabled"}}"#,
                ),
                (
                    r#"{"a": {"proto": "eigrp", "state": "enabled"}, "b": {"proto": "ospf", "state": "enabled"}}|rekey_on_member("proto")"#,
                    r#"{"eigrp": {"proto": "eigrp", "state": "enabled"}, "ospf": {"proto": "ospf", "state": "enabled"}}"#,
                ),
                (
                    r#"[{"proto": "eigrp", "state": "x"}, {"proto": "eigrp", "state": "y"}]|rekey_on_member("proto", duplicates="overwrite")"#,
                    r#"{"eigrp": {"proto": "eigrp", "state": "y"}}"#,
                ),
                (r#"[1,3]|zip([2,4])|list"#, r#"[[1, 2], [3, 4]]"#),
                (r#"[1,3,5]|zip([2,4])|list"#, r#"[[1, 2], [3, 4]]"#),
                (
                    r#"[1,3]|zip([2,4],[5,6])|list"#,
                    r#"[[1, 2, 5], [3, 4, 6]]"#,
                ),
                (
                    r#"[1,3,5]|zip_longest([2,4])|list"#,
                    r#"[[1, 2], [3, 4], [5, null]]"#,
                ),
                (
                    r#"[1,3,5]|zip_longest([2,4], fillvalue='x')|list"#,
                    r#"[[1, 2], [3, 4], [5, "x"]]"#,
                ),
                (r#"[1,2,3]|random(seed=1337)"#, r#"3"#),
                (r#"20|random(seed=1)"#, r#"4"#),
                (r#"59|random(seed='web01')"#, r#"22"#),
                (r#"59|random(seed='db1.example.com')"#, r#"39"#),
                (r#"100|random(start=10, step=5, seed=3)"#, r#"45"#),
                (r#"20|random(start=10, seed=7)"#, r#"15"#),
                (r#"['a','b','c','d']|random(seed='x')"#, r#""c""#),
                (r#"[1,3,5,7,9]|shuffle(seed=1337)"#, r#"[3, 1, 7, 5, 9]"#),
                (r#"[1,3,5,7,9]|shuffle(seed='abc')"#, r#"[1, 3, 5, 7, 9]"#),
                (r#"22|shuffle"#, r#"22"#),
                (r#"'abc'|shuffle(seed=2)"#, r#"["b", "c", "a"]"#),
                (r#"2**40|random(seed=5)"#, r#"549755813888"#),
            ],
        );
        errors(
            &vars,
            &[
                (
                    r#""yo"|log"#,
                    "log() can only be used on numbers: must be real number, not str",
                ),
                (r#"0|log"#, "math domain error"),
                (
                    r#""yo"|pow(4)"#,
                    "pow() can only be used on numbers: must be real number, not str",
                ),
                (
                    r#""yo"|root"#,
                    "root() can only be used on numbers: must be real number, not str",
                ),
                (
                    r#""monkeys"|human_readable"#,
                    "human_readable() failed on bad input: '>=' not supported between instances of 'str' and 'int'",
                ),
                (
                    r#"'1024'|human_readable"#,
                    "human_readable() failed on bad input: '>=' not supported between instances of 'str' and 'int'",
                ),
                (
                    r#"'10.00 foo'|human_to_bytes"#,
                    "human_to_bytes() can't interpret following string: 10.00 foo",
                ),
                (
                    r#"'10 MB'|human_to_bytes(isbits=True)"#,
                    "human_to_bytes() can't interpret following string: 10 MB",
                ),
                (
                    r#"'10 Mb'|human_to_bytes"#,
                    "human_to_bytes() can't interpret following string: 10 Mb",
                ),
                (
                    r#"[]|rekey_on_member("asdf", duplicates="boo")"#,
                    "duplicates parameter to rekey_on_member has unknown value: boo",
                ),
                (
                    r#""minkeys"|rekey_on_member("asdf")"#,
                    "Type is not a valid list, set, or dict",
                ),
                (
                    r#"[True]|rekey_on_member("asdf")"#,
                    "List item is not a valid dict",
                ),
                (
                    r#"[{"foo": "bar", "baz": "buzz"}, {"hello": 8, "different": "haha"}]|rekey_on_member("foo")"#,
                    "Key foo was not found",
                ),
                (
                    r#"[{"proto": "eigrp", "state": "enabled"}, {"proto": "eigrp", "state": "enabled"}]|rekey_on_member("proto", duplicates="error")"#,
                    "Key eigrp is not unique, cannot correctly turn into dict",
                ),
                (
                    r#"None|random"#,
                    "random can only be used on sequences and integers",
                ),
                (
                    r#"[1,2,3]|random(start=2)"#,
                    "start and step can only be used with integer values",
                ),
                (
                    r#"[1,2,3]|random(step=2)"#,
                    "start and step can only be used with integer values",
                ),
            ],
        );
    }
}
