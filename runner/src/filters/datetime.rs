//! Dates: core.py's `to_datetime` (Python's `datetime.strptime`) and `strftime`
//! (Python's `time.strftime` on the local time), without a date crate: the civil
//! calendar arithmetic is a few lines, and the local offset comes from the system's
//! TZif zone file (`TZ`, else `/etc/localtime`; UTC when there is none).
//!
//! A `to_datetime` result is a datetime object: it compares with another, prints as
//! Python does (`2020-03-26 18:32:02`), and has `year`..`microsecond`, `strftime()`,
//! `isoformat()` and `timestamp()`. Subtracting two of them (Python's timedelta) is not
//! available in the template engine.

use super::{Opts, add_filters, invalid, py_str, split};
use minijinja::value::{Object, ObjectRepr, Rest, Value as JValue, ValueKind};
use minijinja::{Environment, Error, State};
use std::fmt;
use std::sync::Arc;

/// Days since 1970-01-01 of a civil date (proleptic Gregorian).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day count since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if is_leap(y) => 29,
        _ => 28,
    }
}

/// A broken-down time (Python's `datetime`, naive or with a UTC offset).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DateTime {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    micro: u32,
    /// Seconds east of UTC, when known (`%z`, or a local time from `strftime`).
    offset: Option<i64>,
    /// The zone's abbreviation, for `%Z`.
    zone: Option<&'static str>,
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

impl DateTime {
    fn from_epoch(secs: f64, offset: i64, zone: Option<&'static str>) -> DateTime {
        let whole = secs.floor();
        let micro = ((secs - whole) * 1e6).round().min(999_999.0) as u32;
        let t = whole as i64 + offset;
        let days = t.div_euclid(86_400);
        let rem = t.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        DateTime {
            year,
            month,
            day,
            hour: (rem / 3600) as u32,
            minute: (rem % 3600 / 60) as u32,
            second: (rem % 60) as u32,
            micro,
            offset: Some(offset),
            zone,
        }
    }

    fn days(&self) -> i64 {
        days_from_civil(self.year, self.month, self.day)
    }

    /// Monday is 0, as Python's `weekday()`.
    fn weekday(&self) -> u32 {
        (self.days() + 3).rem_euclid(7) as u32
    }

    fn yday(&self) -> u32 {
        (self.days() - days_from_civil(self.year, 1, 1) + 1) as u32
    }

    /// Seconds since the epoch of the wall-clock time, as UTC (naive arithmetic).
    fn wall_seconds(&self) -> i64 {
        self.days() * 86_400
            + i64::from(self.hour) * 3600
            + i64::from(self.minute) * 60
            + i64::from(self.second)
    }

    fn month_name(&self) -> &'static str {
        MONTHS
            .get(self.month.saturating_sub(1) as usize)
            .copied()
            .unwrap_or("")
    }

    fn day_name(&self) -> &'static str {
        DAYS.get(self.weekday() as usize).copied().unwrap_or("")
    }

    /// C's `strftime` (glibc's directives that Python passes through).
    fn strftime(&self, fmt: &str) -> String {
        let mut out = String::new();
        let mut chars = fmt.chars().peekable();
        while let Some(c) = chars.next() {
            if c != '%' {
                out.push(c);
                continue;
            }
            let Some(d) = chars.next() else {
                out.push('%');
                break;
            };
            let hour12 = match self.hour % 12 {
                0 => 12,
                h => h,
            };
            let piece = match d {
                'a' => self.day_name().get(..3).unwrap_or("").to_string(),
                'A' => self.day_name().to_string(),
                'b' | 'h' => self.month_name().get(..3).unwrap_or("").to_string(),
                'B' => self.month_name().to_string(),
                'c' => self.strftime("%a %b %e %H:%M:%S %Y"),
                'C' => format!("{:02}", self.year.div_euclid(100)),
                'd' => format!("{:02}", self.day),
                'D' => self.strftime("%m/%d/%y"),
                'e' => format!("{:>2}", self.day),
                'F' => self.strftime("%Y-%m-%d"),
                'H' => format!("{:02}", self.hour),
                'I' => format!("{hour12:02}"),
                'j' => format!("{:03}", self.yday()),
                'k' => format!("{:>2}", self.hour),
                'l' => format!("{hour12:>2}"),
                'm' => format!("{:02}", self.month),
                'M' => format!("{:02}", self.minute),
                'n' => "\n".to_string(),
                'p' => if self.hour < 12 { "AM" } else { "PM" }.to_string(),
                'P' => if self.hour < 12 { "am" } else { "pm" }.to_string(),
                'r' => self.strftime("%I:%M:%S %p"),
                'R' => self.strftime("%H:%M"),
                's' => (self.wall_seconds() - self.offset.unwrap_or(0)).to_string(),
                'S' => format!("{:02}", self.second),
                't' => "\t".to_string(),
                'T' => self.strftime("%H:%M:%S"),
                'u' => (self.weekday() + 1).to_string(),
                'U' => {
                    let sunday_based = (self.weekday() + 1) % 7;
                    format!("{:02}", (self.yday() + 6 - sunday_based) / 7)
                }
                'w' => ((self.weekday() + 1) % 7).to_string(),
                'W' => format!("{:02}", (self.yday() + 6 - self.weekday()) / 7),
                'x' => self.strftime("%m/%d/%y"),
                'X' => self.strftime("%H:%M:%S"),
                'y' => format!("{:02}", self.year.rem_euclid(100)),
                'Y' => self.year.to_string(),
                'z' => match self.offset {
                    Some(o) => {
                        let sign = if o < 0 { '-' } else { '+' };
                        format!("{sign}{:02}{:02}", o.abs() / 3600, o.abs() % 3600 / 60)
                    }
                    None => String::new(),
                },
                'Z' => self.zone.unwrap_or("").to_string(),
                'f' => format!("{:06}", self.micro),
                '%' => "%".to_string(),
                other => format!("%{other}"),
            };
            out.push_str(&piece);
        }
        out
    }

    fn isoformat(&self) -> String {
        let mut s = format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        );
        if self.micro != 0 {
            s.push_str(&format!(".{:06}", self.micro));
        }
        if let Some(o) = self.offset.filter(|_| self.zone.is_none()) {
            let sign = if o < 0 { '-' } else { '+' };
            s.push_str(&format!(
                "{sign}{:02}:{:02}",
                o.abs() / 3600,
                o.abs() % 3600 / 60
            ));
        }
        s
    }
}

impl fmt::Display for DateTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.isoformat().replacen('T', " ", 1))
    }
}

impl Object for DateTime {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }

    fn get_value(self: &Arc<Self>, key: &JValue) -> Option<JValue> {
        Some(match key.as_str()? {
            "year" => JValue::from(self.year),
            "month" => JValue::from(self.month),
            "day" => JValue::from(self.day),
            "hour" => JValue::from(self.hour),
            "minute" => JValue::from(self.minute),
            "second" => JValue::from(self.second),
            "microsecond" => JValue::from(self.micro),
            _ => return None,
        })
    }

    fn call_method(
        self: &Arc<Self>,
        _state: &State<'_, '_>,
        method: &str,
        args: &[JValue],
    ) -> Result<JValue, Error> {
        match method {
            "strftime" => {
                let fmt = args.first().map(py_str).unwrap_or_default();
                Ok(JValue::from(self.strftime(&fmt)))
            }
            "isoformat" => Ok(JValue::from(self.isoformat())),
            "weekday" => Ok(JValue::from(self.weekday())),
            "isoweekday" => Ok(JValue::from(self.weekday() + 1)),
            "timestamp" => {
                // A naive datetime is local time, as Python takes it.
                let offset = match self.offset {
                    Some(o) => o,
                    None => local_offset(self.wall_seconds()).0,
                };
                Ok(JValue::from(
                    (self.wall_seconds() - offset) as f64 + f64::from(self.micro) / 1e6,
                ))
            }
            other => Err(invalid(format!(
                "'datetime.datetime' object has no attribute '{other}'"
            ))),
        }
    }

    fn custom_cmp(
        self: &Arc<Self>,
        other: &minijinja::value::DynObject,
    ) -> Option<std::cmp::Ordering> {
        let other = other.downcast_ref::<DateTime>()?;
        let key = |d: &DateTime| (d.wall_seconds() - d.offset.unwrap_or(0), d.micro);
        Some(key(self).cmp(&key(other)))
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result
    where
        Self: Sized + 'static,
    {
        fmt::Display::fmt(self.as_ref(), f)
    }
}

/// Python's `datetime.strptime(text, format)`.
fn strptime(text: &str, fmt: &str) -> Result<DateTime, String> {
    let bad = || format!("time data '{text}' does not match format '{fmt}'");
    let t: Vec<char> = text.chars().collect();
    let mut i = 0usize;
    let (mut year, mut month, mut day) = (1900i64, 1u32, 1u32);
    let (mut hour, mut minute, mut second, mut micro) = (0u32, 0u32, 0u32, 0u32);
    let mut pm: Option<bool> = None;
    let mut offset = None;
    let mut yday: Option<u32> = None;
    let number = |i: &mut usize, max: usize| -> Result<u32, String> {
        let start = *i;
        while *i < t.len() && *i - start < max && t.get(*i).is_some_and(char::is_ascii_digit) {
            *i += 1;
        }
        if *i == start {
            return Err(bad());
        }
        t.get(start..*i)
            .map(|d| d.iter().collect::<String>())
            .and_then(|d| d.parse().ok())
            .ok_or_else(bad)
    };
    let word = |i: &mut usize, names: &[&str], min_len: usize| -> Result<u32, String> {
        let rest: String = t
            .get(*i..)
            .unwrap_or_default()
            .iter()
            .collect::<String>()
            .to_lowercase();
        for (n, name) in names.iter().enumerate() {
            let full = name.to_lowercase();
            let short: String = full.chars().take(min_len).collect();
            for cand in [full.clone(), short] {
                if rest.starts_with(&cand) {
                    *i += cand.chars().count();
                    return Ok(n as u32 + 1);
                }
            }
        }
        Err(bad())
    };
    let mut f = fmt.chars().peekable();
    while let Some(c) = f.next() {
        if c == '%' {
            let Some(d) = f.next() else {
                return Err("stray % in format".into());
            };
            match d {
                'Y' => year = i64::from(number(&mut i, 4)?),
                'y' => {
                    let y = number(&mut i, 2)?;
                    year = if y < 69 {
                        2000 + i64::from(y)
                    } else {
                        1900 + i64::from(y)
                    };
                }
                'm' => month = number(&mut i, 2)?,
                'd' => day = number(&mut i, 2)?,
                'H' => hour = number(&mut i, 2)?,
                'I' => hour = number(&mut i, 2)?,
                'M' => minute = number(&mut i, 2)?,
                'S' => second = number(&mut i, 2)?,
                'j' => yday = Some(number(&mut i, 3)?),
                'f' => {
                    let start = i;
                    let n = number(&mut i, 6)?;
                    let digits = (i - start) as u32;
                    micro = n * 10u32.pow(6 - digits);
                }
                'b' | 'B' | 'h' => month = word(&mut i, &MONTHS, 3)?,
                'a' | 'A' => {
                    word(&mut i, &DAYS, 3)?;
                }
                'p' => {
                    let rest: String = t.get(i..i + 2).unwrap_or_default().iter().collect();
                    pm = match rest.to_lowercase().as_str() {
                        "am" => Some(false),
                        "pm" => Some(true),
                        _ => return Err(bad()),
                    };
                    i += 2;
                }
                'z' => {
                    if t.get(i) == Some(&'Z') {
                        i += 1;
                        offset = Some(0);
                    } else {
                        let sign = match t.get(i) {
                            Some('+') => 1,
                            Some('-') => -1,
                            _ => return Err(bad()),
                        };
                        i += 1;
                        let h = number(&mut i, 2)?;
                        if t.get(i) == Some(&':') {
                            i += 1;
                        }
                        let m = number(&mut i, 2)?;
                        offset = Some(sign * (i64::from(h) * 3600 + i64::from(m) * 60));
                    }
                }
                '%' => {
                    if t.get(i) != Some(&'%') {
                        return Err(bad());
                    }
                    i += 1;
                }
                other => return Err(format!("'{other}' is a bad directive in format '%{other}'")),
            }
        } else if c.is_whitespace() {
            while t.get(i).is_some_and(|x| x.is_whitespace()) {
                i += 1;
            }
        } else {
            if t.get(i) != Some(&c) {
                return Err(bad());
            }
            i += 1;
        }
    }
    if i != t.len() {
        let rest: String = t.get(i..).unwrap_or_default().iter().collect();
        return Err(format!("unconverted data remains: {rest}"));
    }
    if let Some(p) = pm {
        if hour == 0 || hour > 12 {
            return Err(bad());
        }
        hour = match (p, hour) {
            (false, 12) => 0,
            (true, 12) => 12,
            (true, h) => h + 12,
            (false, h) => h,
        };
    }
    if let Some(yd) = yday {
        let (y, m, d) = civil_from_days(days_from_civil(year, 1, 1) + i64::from(yd) - 1);
        (year, month, day) = (y, m, d);
    }
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return Err("day is out of range for month".into());
    }
    if hour > 23 || minute > 59 || second > 61 {
        return Err(bad());
    }
    Ok(DateTime {
        year,
        month,
        day,
        hour,
        minute,
        second: second.min(59),
        micro,
        offset,
        zone: None,
    })
}

fn to_datetime(v: JValue, rest: Rest<JValue>) -> Result<JValue, Error> {
    let o = Opts::new(rest.0)?;
    let fmt = o
        .arg(0, "format")?
        .map(|f| py_str(&f))
        .unwrap_or_else(|| "%Y-%m-%d %H:%M:%S".into());
    o.done("to_datetime", 1)?;
    if v.kind() != ValueKind::String {
        return Err(invalid(format!(
            "strptime() argument 1 must be str, not {}",
            super::py_type(&v)
        )));
    }
    let dt = strptime(v.as_str().unwrap_or_default(), &fmt).map_err(invalid)?;
    Ok(JValue::from_object(dt))
}

/// Python's `time.mktime(time.strptime(text, fmt))`: `text` read with `fmt` as a local
/// time (the host's zone), as seconds since the epoch. The file module's
/// `modification_time` and `access_time`.
pub(crate) fn local_epoch(text: &str, fmt: &str) -> Result<i64, String> {
    let dt = strptime(text, fmt)?;
    let naive = dt.days() * 86_400
        + i64::from(dt.hour) * 3600
        + i64::from(dt.minute) * 60
        + i64::from(dt.second);
    // The offset in force at the instant meant: guessed from the naive time, then
    // corrected once (enough away from the hour a clock change skips or repeats).
    let first = naive - local_offset(naive).0;
    Ok(naive - local_offset(first).0)
}

// ---------------------------------------------------------------------------
// The local time zone.

/// The zone file for `TZ` (or `/etc/localtime`), read once.
fn zone_file() -> Option<&'static [u8]> {
    static ZONE: std::sync::OnceLock<Option<Vec<u8>>> = std::sync::OnceLock::new();
    ZONE.get_or_init(|| {
        let path = match std::env::var("TZ") {
            Ok(tz) if tz.is_empty() || tz == "UTC" || tz == "UTC0" => return None,
            Ok(tz) => {
                let name = tz.trim_start_matches(':');
                if name.starts_with('/') {
                    name.to_string()
                } else {
                    format!("/usr/share/zoneinfo/{name}")
                }
            }
            Err(_) => "/etc/localtime".to_string(),
        };
        std::fs::read(path).ok()
    })
    .as_deref()
}

/// Leaks a zone abbreviation once per distinct name (there are only a handful).
fn intern(name: &str) -> &'static str {
    static NAMES: std::sync::Mutex<Vec<&'static str>> = std::sync::Mutex::new(Vec::new());
    let Ok(mut names) = NAMES.lock() else {
        return "";
    };
    if let Some(n) = names.iter().find(|n| **n == name) {
        return n;
    }
    let leaked: &'static str = Box::leak(name.to_string().into_boxed_str());
    names.push(leaked);
    leaked
}

/// The UTC offset and abbreviation in force at `t` (seconds since the epoch), from a
/// TZif file's transitions; UTC when the file cannot be read.
fn local_offset(t: i64) -> (i64, &'static str) {
    zone_file()
        .and_then(|data| tzif_offset(data, t))
        .unwrap_or((0, "UTC"))
}

fn tzif_offset(data: &[u8], t: i64) -> Option<(i64, &'static str)> {
    let be32 = |b: &[u8], at: usize| -> Option<i64> {
        let s: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
        Some(i64::from(i32::from_be_bytes(s)))
    };
    let be64 = |b: &[u8], at: usize| -> Option<i64> {
        let s: [u8; 8] = b.get(at..at + 8)?.try_into().ok()?;
        Some(i64::from_be_bytes(s))
    };
    if data.get(..4)? != b"TZif" {
        return None;
    }
    let counts = |b: &[u8]| -> Option<[usize; 6]> {
        let mut c = [0usize; 6];
        for (k, slot) in c.iter_mut().enumerate() {
            *slot = usize::try_from(be32(b, 20 + 4 * k)?).ok()?;
        }
        Some(c)
    };
    let [isutc, isstd, leap, timecnt, typecnt, charcnt] = counts(data)?;
    let v1_len = 44 + timecnt * 5 + typecnt * 6 + charcnt + leap * 8 + isstd + isutc;
    // Version 2+ files repeat the data with 64-bit times after the first block.
    let (body, time_size, counts) = if data.get(4).is_some_and(|v| *v >= b'2') {
        let second = data.get(v1_len..)?;
        (second, 8usize, counts(second)?)
    } else {
        (
            data,
            4usize,
            [isutc, isstd, leap, timecnt, typecnt, charcnt],
        )
    };
    let [_, _, _, timecnt, typecnt, charcnt] = counts;
    let times_at = 44;
    let idx_at = times_at + timecnt * time_size;
    let types_at = idx_at + timecnt;
    let chars_at = types_at + typecnt * 6;
    let mut type_index = 0usize;
    // The first non-DST type applies before the first transition.
    for k in 0..typecnt {
        if body.get(types_at + k * 6 + 4) == Some(&0) {
            type_index = k;
            break;
        }
    }
    for k in 0..timecnt {
        let when = if time_size == 8 {
            be64(body, times_at + k * 8)?
        } else {
            be32(body, times_at + k * 4)?
        };
        if when > t {
            break;
        }
        type_index = usize::from(*body.get(idx_at + k)?);
    }
    let at = types_at + type_index * 6;
    let offset = be32(body, at)?;
    let abbr_at = usize::from(*body.get(at + 5)?);
    let chars = body.get(chars_at..chars_at + charcnt)?;
    let name_bytes = chars.get(abbr_at..)?;
    let end = name_bytes
        .iter()
        .position(|b| *b == 0)
        .unwrap_or(name_bytes.len());
    let name = std::str::from_utf8(name_bytes.get(..end)?).ok()?;
    Some((offset, intern(name)))
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn strftime(v: JValue, rest: Rest<JValue>) -> Result<String, Error> {
    let o = Opts::new(rest.0)?;
    let second = o.arg(0, "second")?.filter(|s| !s.is_none());
    let utc = o.flag(1, "utc")?;
    o.done("strftime", 2)?;
    let secs = match second {
        None => now(),
        Some(s) => {
            let parsed = match s.kind() {
                ValueKind::Number | ValueKind::Bool => f64::try_from(s.clone()).ok(),
                ValueKind::String => super::jinja::py_float_text(s.as_str().unwrap_or_default()),
                _ => None,
            };
            parsed
                .ok_or_else(|| invalid(format!("Invalid value for epoch value ({})", py_str(&s))))?
        }
    };
    let (offset, zone) = if utc {
        (0, "UTC")
    } else {
        local_offset(secs.floor() as i64)
    };
    let dt = DateTime::from_epoch(secs, offset, Some(zone));
    Ok(dt.strftime(&py_str(&v)))
}

/// Registers `to_datetime` and `strftime`.
/// Ansible's `now(utc=False, fmt=None)` global: the current local (or UTC) time as a
/// naive datetime, or that time formatted with `fmt` as `strftime` does.
fn now_global(rest: Rest<JValue>) -> Result<JValue, Error> {
    let o = Opts::new(rest.0)?;
    let utc = o.flag(0, "utc")?;
    let fmt = o.arg(1, "fmt")?.filter(|f| !f.is_none());
    o.done("now", 2)?;
    let secs = now();
    let (offset, zone) = if utc {
        (0, "UTC")
    } else {
        local_offset(secs.floor() as i64)
    };
    let mut dt = DateTime::from_epoch(secs, offset, Some(zone));
    match fmt {
        Some(f) => Ok(JValue::from(dt.strftime(&py_str(&f)))),
        None => {
            // `datetime.now()` and `datetime.utcnow()` carry no zone.
            dt.offset = None;
            dt.zone = None;
            Ok(JValue::from_object(dt))
        }
    }
}

pub(crate) fn register(env: &mut Environment<'static>) {
    env.add_function("now", now_global);
    add_filters(
        env,
        &[
            ("to_datetime", |a| {
                split(a).and_then(|(v, r)| to_datetime(v, r))
            }),
            ("strftime", |a| {
                split(a).and_then(|(v, r)| strftime(v, r)).map(JValue::from)
            }),
        ],
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// loops: `now(fmt='%s.%f')` is the epoch with microseconds, `now(utc=true)` a
    /// datetime whose year is this one.
    #[test]
    fn now_global_formats_the_current_time() {
        let e = crate::template::Engine::new();
        let c = JValue::from_serialize(serde_json::json!({}));
        let before = now();
        let got = e.render_str("{{ now(fmt='%s.%f') }}", &c).unwrap();
        let after = now();
        let t: f64 = got.parse().unwrap();
        assert!(t >= before.floor() && t <= after + 0.001, "{got}");
        assert_eq!(got.split('.').nth(1).map(str::len), Some(6), "{got}");
        let year = e.render_str("{{ now(utc=true).year }}", &c).unwrap();
        let this_year = DateTime::from_epoch(after, 0, None).year;
        assert!(year == this_year.to_string() || year == (this_year - 1).to_string());
        assert_eq!(e.render_str("{{ now(True, '%Z') }}", &c).unwrap(), "UTC");
    }

    #[test]
    fn civil_days_round_trip() {
        for days in [-719_468, -1, 0, 1, 10_957, 18_347, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
        assert_eq!(civil_from_days(18_347), (2020, 3, 26));
    }
}
