//! Java's date-time patterns (`DateTimeFormatter` / `SimpleDateFormat` letters, as ksqlDB's
//! date functions and `timestamp_format` take them) for formatting and parsing with chrono.
//!
//! Supported letters: `G` era, `y`/`u` year (`yy` two-digit, 2000-2099), `M`/`L` month (number,
//! `MMM` short name, `MMMM` full name), `d` day, `D` day of year, `E` day name, `a` AM/PM, `H`
//! `k` `K` `h` hours, `m` minutes, `s` seconds, `S` fraction of second, `n` nanos, `A` milli of
//! day, `X` `x` `Z` offsets, `z` zone name (short), `VV` zone id, `'quoted'` literals (`''` is a
//! quote), and `[` `]` optional sections (printed; optional when parsing). Parsing is
//! case-insensitive, as ksqlDB's formatters are, and missing fields default to 1970-01-01
//! 00:00:00.

use chrono::{Datelike, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeZone, Timelike};
use chrono_tz::{OffsetName, Tz};

/// A time zone as Java's `ZoneId`: a fixed offset or a region.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Zone {
    /// Seconds east of UTC; `utc_name` keeps how UTC was named (`Z`, `UTC`, `GMT`).
    Fixed {
        seconds: i32,
        utc_name: Option<&'static str>,
    },
    Region(Tz),
}

impl Zone {
    pub const UTC: Zone = Zone::Fixed {
        seconds: 0,
        utc_name: Some("UTC"),
    };

    /// `ZoneId.of`: `Z`, `UTC`, `GMT`, `+h`, `+hh`, `+hh:mm`, `+hhmm`, `UTC+hh:mm`, region ids
    /// (`America/Los_Angeles`) and the usual abbreviations (`PST`, `CET` ...).
    pub fn parse(text: &str) -> Result<Zone, String> {
        let unknown = || format!("Unknown time-zone ID: {text}");
        let trimmed = text.trim();
        match trimmed.to_ascii_uppercase().as_str() {
            "Z" => {
                return Ok(Zone::Fixed {
                    seconds: 0,
                    utc_name: Some("Z"),
                })
            }
            "UTC" | "UT" => return Ok(Zone::UTC),
            "GMT" => {
                return Ok(Zone::Fixed {
                    seconds: 0,
                    utc_name: Some("GMT"),
                })
            }
            _ => {}
        }
        if trimmed.starts_with('+') || trimmed.starts_with('-') {
            return parse_offset_text(trimmed)
                .map(|seconds| Zone::Fixed {
                    seconds,
                    utc_name: None,
                })
                .ok_or_else(unknown);
        }
        for prefix in ["UTC", "GMT", "UT"] {
            if let Some(rest) = trimmed.strip_prefix(prefix) {
                if rest.starts_with('+') || rest.starts_with('-') {
                    return parse_offset_text(rest)
                        .map(|seconds| Zone::Fixed {
                            seconds,
                            utc_name: None,
                        })
                        .ok_or_else(unknown);
                }
            }
        }
        if let Ok(tz) = trimmed.parse::<Tz>() {
            return Ok(Zone::Region(tz));
        }
        if let Some(tz) = abbreviation_zone(trimmed) {
            return Ok(Zone::Region(tz));
        }
        Err(unknown())
    }

    /// The offset (seconds east of UTC) at a UTC instant.
    pub fn offset_at_utc(&self, utc: &NaiveDateTime) -> i32 {
        match self {
            Zone::Fixed { seconds, .. } => *seconds,
            Zone::Region(tz) => tz.offset_from_utc_datetime(utc).fix().local_minus_utc(),
        }
    }

    /// The offset for a local date-time: the earlier offset in an overlap, and in a gap the
    /// offset before it (so the time moves forward by the gap, as Java's `ZonedDateTime.of`).
    pub fn offset_for_local(&self, local: &NaiveDateTime) -> i32 {
        match self {
            Zone::Fixed { seconds, .. } => *seconds,
            Zone::Region(tz) => match tz.offset_from_local_datetime(local) {
                chrono::LocalResult::Single(o) => o.fix().local_minus_utc(),
                chrono::LocalResult::Ambiguous(a, b) => {
                    a.fix().local_minus_utc().max(b.fix().local_minus_utc())
                }
                chrono::LocalResult::None => {
                    let before = local
                        .checked_sub_signed(chrono::Duration::hours(3))
                        .unwrap_or(*local);
                    tz.offset_from_utc_datetime(&before).fix().local_minus_utc()
                }
            },
        }
    }

    /// The short name Java's `z` prints at a UTC instant (`PDT`, `BST`, `UTC`, `+02:00`).
    fn short_name(&self, utc: &NaiveDateTime) -> String {
        match self {
            Zone::Fixed {
                utc_name: Some(name),
                ..
            } => name.to_string(),
            Zone::Fixed { seconds, .. } => offset_text(*seconds, true, "Z", false),
            Zone::Region(tz) => {
                let offset = tz.offset_from_utc_datetime(utc);
                match offset.abbreviation() {
                    Some(abbr) if abbr.starts_with(['+', '-']) => {
                        format!(
                            "GMT{}",
                            offset_text(offset.fix().local_minus_utc(), true, "", false)
                        )
                    }
                    Some(abbr) => abbr.to_string(),
                    None => offset_text(offset.fix().local_minus_utc(), true, "Z", false),
                }
            }
        }
    }

    fn id(&self) -> String {
        match self {
            Zone::Fixed {
                utc_name: Some(name),
                ..
            } => name.to_string(),
            Zone::Fixed { seconds, .. } => offset_text(*seconds, true, "Z", false),
            Zone::Region(tz) => tz.name().to_string(),
        }
    }
}

/// Common abbreviations Java's `z` parses (it resolves them to these regions).
fn abbreviation_zone(text: &str) -> Option<Tz> {
    use chrono_tz::*;
    Some(match text.to_ascii_uppercase().as_str() {
        "PST" | "PDT" | "PT" => America::Los_Angeles,
        "MST" | "MDT" | "MT" => America::Denver,
        "CST" | "CDT" | "CT" => America::Chicago,
        "EST" | "EDT" | "ET" => America::New_York,
        "AKST" | "AKDT" => America::Anchorage,
        "HST" => Pacific::Honolulu,
        "BST" => Europe::London,
        "WET" | "WEST" => Europe::Lisbon,
        "CET" | "CEST" => Europe::Paris,
        "EET" | "EEST" => Europe::Athens,
        "MSK" => Europe::Moscow,
        "IST" => Asia::Kolkata,
        "JST" => Asia::Tokyo,
        "KST" => Asia::Seoul,
        "HKT" => Asia::Hong_Kong,
        "SGT" => Asia::Singapore,
        "AEST" | "AEDT" => Australia::Sydney,
        "ACST" | "ACDT" => Australia::Adelaide,
        "AWST" => Australia::Perth,
        "NZST" | "NZDT" => Pacific::Auckland,
        _ => return None,
    })
}

/// `+h`, `+hh`, `+hh:mm`, `+hhmm`, `+hh:mm:ss` to seconds.
fn parse_offset_text(text: &str) -> Option<i32> {
    let (sign, rest) = match text.as_bytes().first()? {
        b'+' => (1, &text[1..]),
        b'-' => (-1, &text[1..]),
        _ => return None,
    };
    let digits: String = rest.chars().filter(|c| *c != ':').collect();
    if !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let (h, m, s): (i32, i32, i32) = match digits.len() {
        1 | 2 => (digits.parse().ok()?, 0, 0),
        4 => (digits[..2].parse().ok()?, digits[2..].parse().ok()?, 0),
        6 => (
            digits[..2].parse().ok()?,
            digits[2..4].parse().ok()?,
            digits[4..].parse().ok()?,
        ),
        _ => return None,
    };
    if h > 18 || m > 59 || s > 59 {
        return None;
    }
    Some(sign * (h * 3600 + m * 60 + s))
}

/// An offset as `+HH:MM` (colon) or `+HHMM`; `zero` is printed for 0; `hours_only` drops
/// zero minutes (`X`).
fn offset_text(seconds: i32, colon: bool, zero: &str, hours_only: bool) -> String {
    if seconds == 0 && !zero.is_empty() {
        return zero.to_string();
    }
    let sign = if seconds < 0 { '-' } else { '+' };
    let abs = seconds.abs();
    let (h, m) = (abs / 3600, abs / 60 % 60);
    if hours_only && m == 0 {
        format!("{sign}{h:02}")
    } else if colon {
        format!("{sign}{h:02}:{m:02}")
    } else {
        format!("{sign}{h:02}{m:02}")
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Item {
    Literal(String),
    Field(char, usize),
    OptionalStart,
    OptionalEnd,
}

/// A compiled Java pattern.
#[derive(Debug, Clone)]
pub struct JavaPattern {
    items: Vec<Item>,
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

/// The fields a parse found; `None` where the text did not say.
#[derive(Debug, Default, Clone)]
pub struct Parsed {
    pub year: Option<i32>,
    pub month: Option<u32>,
    pub day: Option<u32>,
    pub day_of_year: Option<u32>,
    pub hour: Option<u32>,
    pub hour12: Option<u32>,
    pub pm: Option<bool>,
    pub minute: Option<u32>,
    pub second: Option<u32>,
    pub nano: Option<u32>,
    pub milli_of_day: Option<u32>,
    pub zone: Option<Zone>,
}

impl Parsed {
    pub fn date(&self) -> Result<NaiveDate, String> {
        let year = self.year.unwrap_or(1970);
        if let Some(doy) = self.day_of_year {
            return NaiveDate::from_yo_opt(year, doy).ok_or_else(|| "Invalid day of year".into());
        }
        NaiveDate::from_ymd_opt(year, self.month.unwrap_or(1), self.day.unwrap_or(1))
            .ok_or_else(|| "Invalid date".to_string())
    }

    pub fn time(&self) -> Result<NaiveTime, String> {
        if let Some(ms) = self.milli_of_day {
            return NaiveTime::from_num_seconds_from_midnight_opt(ms / 1000, ms % 1000 * 1_000_000)
                .ok_or_else(|| "Invalid milli of day".into());
        }
        let hour = match (self.hour, self.hour12, self.pm) {
            (Some(h), _, _) => h,
            (None, Some(h), pm) => h % 12 + if pm == Some(true) { 12 } else { 0 },
            (None, None, Some(true)) => 12,
            _ => 0,
        };
        NaiveTime::from_hms_nano_opt(
            hour,
            self.minute.unwrap_or(0),
            self.second.unwrap_or(0),
            self.nano.unwrap_or(0),
        )
        .ok_or_else(|| "Invalid time".to_string())
    }
}

impl JavaPattern {
    pub fn compile(pattern: &str) -> Result<JavaPattern, String> {
        let chars: Vec<char> = pattern.chars().collect();
        let mut items = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            if c == '\'' {
                let mut literal = String::new();
                i += 1;
                if i < chars.len() && chars[i] == '\'' {
                    items.push(Item::Literal("'".into()));
                    i += 1;
                    continue;
                }
                loop {
                    match chars.get(i) {
                        None => {
                            return Err(format!(
                                "Pattern ends with an incomplete string literal: {pattern}"
                            ))
                        }
                        Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                            literal.push('\'');
                            i += 2;
                        }
                        Some('\'') => {
                            i += 1;
                            break;
                        }
                        Some(ch) => {
                            literal.push(*ch);
                            i += 1;
                        }
                    }
                }
                items.push(Item::Literal(literal));
            } else if c.is_ascii_alphabetic() {
                let mut count = 1;
                while chars.get(i + count) == Some(&c) {
                    count += 1;
                }
                if !"GyuYMLdDEeaHkKhmsSnAXxZzVOQqw".contains(c) {
                    return Err(format!("Unknown pattern letter: {c}"));
                }
                items.push(Item::Field(c, count));
                i += count;
            } else if c == '[' {
                items.push(Item::OptionalStart);
                i += 1;
            } else if c == ']' {
                items.push(Item::OptionalEnd);
                i += 1;
            } else {
                items.push(Item::Literal(c.to_string()));
                i += 1;
            }
        }
        Ok(JavaPattern { items })
    }

    /// Formats a UTC instant (milliseconds since the epoch) in `zone`.
    pub fn format_millis(&self, millis: i64, zone: &Zone) -> Result<String, String> {
        let utc = chrono::DateTime::from_timestamp_millis(millis)
            .ok_or_else(|| format!("Timestamp out of range: {millis}"))?
            .naive_utc();
        let offset = zone.offset_at_utc(&utc);
        let local = utc
            .checked_add_signed(chrono::Duration::seconds(offset as i64))
            .ok_or_else(|| format!("Timestamp out of range: {millis}"))?;
        self.format(&local, Some((zone, offset, &utc)))
    }

    /// Formats a local date-time; `zone` is needed only by zone and offset letters.
    pub fn format(
        &self,
        local: &NaiveDateTime,
        zone: Option<(&Zone, i32, &NaiveDateTime)>,
    ) -> Result<String, String> {
        let mut out = String::new();
        let pad = |v: i64, n: usize| {
            if v < 0 {
                format!("-{:0n$}", -v)
            } else {
                format!("{v:0n$}")
            }
        };
        let need_zone = || zone.ok_or_else(|| "Unable to format a zone without a zone".to_string());
        for item in &self.items {
            match item {
                Item::Literal(text) => out.push_str(text),
                Item::OptionalStart | Item::OptionalEnd => {}
                Item::Field(c, n) => {
                    let n = *n;
                    match c {
                        'G' => out.push_str(if local.year() > 0 { "AD" } else { "BC" }),
                        // `Y` (week-based year) differs from the year only around New Year.
                        'y' | 'u' | 'Y' => {
                            let year = local.year() as i64;
                            if n == 2 {
                                out.push_str(&pad(year.rem_euclid(100), 2));
                            } else {
                                out.push_str(&pad(year, n));
                            }
                        }
                        'M' | 'L' => match n {
                            1 | 2 => out.push_str(&pad(local.month() as i64, n)),
                            3 => out.push_str(&MONTHS[local.month0() as usize][..3]),
                            4 => out.push_str(MONTHS[local.month0() as usize]),
                            _ => out.push_str(&MONTHS[local.month0() as usize][..1]),
                        },
                        'd' => out.push_str(&pad(local.day() as i64, n)),
                        'D' => out.push_str(&pad(local.ordinal() as i64, n)),
                        'E' | 'e' => {
                            let name = DAYS[local.weekday().num_days_from_monday() as usize];
                            if *c == 'e' && n <= 2 {
                                let num = local.weekday().num_days_from_sunday() + 1;
                                out.push_str(&pad(num as i64, n));
                            } else if n >= 4 {
                                out.push_str(name);
                            } else {
                                out.push_str(&name[..3]);
                            }
                        }
                        'a' => out.push_str(if local.hour() < 12 { "AM" } else { "PM" }),
                        'H' => out.push_str(&pad(local.hour() as i64, n)),
                        'k' => {
                            let h = if local.hour() == 0 { 24 } else { local.hour() };
                            out.push_str(&pad(h as i64, n));
                        }
                        'K' => out.push_str(&pad((local.hour() % 12) as i64, n)),
                        'h' => {
                            let h = match local.hour() % 12 {
                                0 => 12,
                                h => h,
                            };
                            out.push_str(&pad(h as i64, n));
                        }
                        'm' => out.push_str(&pad(local.minute() as i64, n)),
                        's' => out.push_str(&pad(local.second() as i64, n)),
                        'S' => {
                            let nanos = format!("{:09}", local.nanosecond() % 1_000_000_000);
                            if n <= 9 {
                                out.push_str(&nanos[..n]);
                            } else {
                                out.push_str(&nanos);
                                out.extend(std::iter::repeat_n('0', n - 9));
                            }
                        }
                        'n' => out.push_str(&pad(local.nanosecond() as i64, n)),
                        'A' => {
                            let ms = local.num_seconds_from_midnight() as i64 * 1000
                                + local.nanosecond() as i64 / 1_000_000;
                            out.push_str(&pad(ms, n));
                        }
                        'X' | 'x' => {
                            let (_, offset, _) = need_zone()?;
                            let zero = if *c == 'X' { "Z" } else { "" };
                            out.push_str(&match n {
                                1 => offset_text(offset, false, zero, true),
                                2 | 4 => offset_text(offset, false, zero, false),
                                _ => offset_text(offset, true, zero, false),
                            });
                        }
                        'Z' => {
                            let (_, offset, _) = need_zone()?;
                            out.push_str(&match n {
                                1..=3 => offset_text(offset, false, "", false),
                                4 => {
                                    if offset == 0 {
                                        "GMT".to_string()
                                    } else {
                                        format!("GMT{}", offset_text(offset, true, "", false))
                                    }
                                }
                                _ => offset_text(offset, true, "Z", false),
                            });
                        }
                        'O' => {
                            let (_, offset, _) = need_zone()?;
                            if offset == 0 {
                                out.push_str("GMT");
                            } else {
                                out.push_str(&format!(
                                    "GMT{}",
                                    offset_text(offset, true, "", false)
                                ));
                            }
                        }
                        'z' => {
                            let (zone, _, utc) = need_zone()?;
                            out.push_str(&zone.short_name(utc));
                        }
                        'V' => {
                            let (zone, _, _) = need_zone()?;
                            out.push_str(&zone.id());
                        }
                        'Q' | 'q' => out.push_str(&((local.month0() / 3 + 1).to_string())),
                        'w' => out.push_str(&pad(local.iso_week().week() as i64, n)),
                        _ => return Err(format!("Unsupported pattern letter: {c}")),
                    }
                }
            }
        }
        Ok(out)
    }

    /// Parses the whole of `text` (case-insensitively) into its fields.
    pub fn parse(&self, text: &str) -> Result<Parsed, String> {
        let chars: Vec<char> = text.chars().collect();
        let mut parsed = Parsed::default();
        let end = self
            .parse_items(&self.items, &chars, 0, &mut parsed)
            .ok_or_else(|| format!("Text '{text}' could not be parsed"))?;
        if end != chars.len() {
            return Err(format!(
                "Text '{text}' could not be parsed, unparsed text found at index {end}"
            ));
        }
        Ok(parsed)
    }

    /// Parses the start of `text`, ignoring what follows, as `SimpleDateFormat.parse(String)`
    /// does (ksqlDB's PARSE_DATE and STRINGTODATE use it).
    pub fn parse_prefix(&self, text: &str) -> Result<Parsed, String> {
        let chars: Vec<char> = text.chars().collect();
        let mut parsed = Parsed::default();
        self.parse_items(&self.items, &chars, 0, &mut parsed)
            .ok_or_else(|| format!("Unparseable date: \"{text}\""))?;
        Ok(parsed)
    }

    fn parse_items(
        &self,
        items: &[Item],
        text: &[char],
        mut pos: usize,
        parsed: &mut Parsed,
    ) -> Option<usize> {
        let mut i = 0;
        while i < items.len() {
            match &items[i] {
                Item::OptionalStart => {
                    // The section runs to its matching end; it may be absent from the text.
                    let mut depth = 0;
                    let mut j = i;
                    loop {
                        match items.get(j) {
                            Some(Item::OptionalStart) => depth += 1,
                            Some(Item::OptionalEnd) => {
                                depth -= 1;
                                if depth == 0 {
                                    break;
                                }
                            }
                            None => break,
                            _ => {}
                        }
                        j += 1;
                    }
                    let section = &items[i + 1..j.min(items.len())];
                    let mut attempt = parsed.clone();
                    if let Some(next) = self.parse_items(section, text, pos, &mut attempt) {
                        *parsed = attempt;
                        pos = next;
                    }
                    i = j + 1;
                    continue;
                }
                Item::OptionalEnd => {}
                Item::Literal(literal) => {
                    for expected in literal.chars() {
                        let actual = *text.get(pos)?;
                        if !actual.to_lowercase().eq(expected.to_lowercase()) {
                            return None;
                        }
                        pos += 1;
                    }
                }
                Item::Field(c, n) => {
                    let adjacent_number = matches!(
                        items.get(i + 1),
                        Some(Item::Field(next, m)) if is_numeric_field(*next, *m)
                    );
                    pos = parse_field(*c, *n, adjacent_number, text, pos, parsed)?;
                }
            }
            i += 1;
        }
        Some(pos)
    }
}

fn is_numeric_field(c: char, n: usize) -> bool {
    match c {
        'M' | 'L' => n <= 2,
        'E' | 'a' | 'z' | 'V' | 'X' | 'x' | 'Z' | 'O' | 'G' => false,
        _ => true,
    }
}

/// Reads digits: exactly `n` when the field is followed by another number or asks for a fixed
/// width of 2 or more, else 1..=`max`.
fn read_number(text: &[char], pos: usize, min: usize, max: usize) -> Option<(i64, usize)> {
    let mut end = pos;
    let mut negative = false;
    if text.get(pos) == Some(&'-') && min > 3 {
        negative = true;
        end += 1;
    }
    let start = end;
    while end < text.len() && end - start < max && text[end].is_ascii_digit() {
        end += 1;
    }
    if end - start < min {
        return None;
    }
    let digits: String = text[start..end].iter().collect();
    let value: i64 = digits.parse().ok()?;
    Some((if negative { -value } else { value }, end))
}

fn match_name(
    text: &[char],
    pos: usize,
    names: &[&str],
    len: Option<usize>,
) -> Option<(usize, usize)> {
    // Longest match first, so "May" does not shadow nothing and "June" beats "Jun".
    let mut best: Option<(usize, usize)> = None;
    for (index, name) in names.iter().enumerate() {
        let candidate: Vec<char> = match len {
            Some(l) => name.chars().take(l).collect(),
            None => name.chars().collect(),
        };
        let fits = candidate.iter().enumerate().all(|(k, ch)| {
            text.get(pos + k)
                .is_some_and(|t| t.to_lowercase().eq(ch.to_lowercase()))
        });
        if fits && best.is_none_or(|(_, l)| candidate.len() > l) {
            best = Some((index, candidate.len()));
        }
    }
    best.map(|(index, l)| (index, pos + l))
}

fn parse_field(
    c: char,
    n: usize,
    adjacent_number: bool,
    text: &[char],
    pos: usize,
    parsed: &mut Parsed,
) -> Option<usize> {
    let (min, max) = if adjacent_number || n >= 2 {
        (n, n)
    } else {
        (1, 2)
    };
    let number = |min: usize, max: usize| read_number(text, pos, min, max);
    match c {
        'y' | 'u' | 'Y' => {
            if n == 2 {
                let (v, end) = number(2, 2)?;
                parsed.year = Some(2000 + v as i32);
                Some(end)
            } else {
                let (min, max) = if adjacent_number {
                    (n, n)
                } else {
                    (n.max(1), 9)
                };
                let (v, end) = number(min, max)?;
                parsed.year = Some(v as i32);
                Some(end)
            }
        }
        'M' | 'L' => {
            if n >= 3 {
                let len = if n == 3 { Some(3) } else { None };
                let (index, end) = match_name(text, pos, &MONTHS, len)?;
                parsed.month = Some(index as u32 + 1);
                Some(end)
            } else {
                let (v, end) = number(min, max)?;
                parsed.month = Some(v as u32);
                Some(end)
            }
        }
        'd' => {
            let (v, end) = number(min, max)?;
            parsed.day = Some(v as u32);
            Some(end)
        }
        'D' => {
            let (v, end) = number(if n >= 2 { n } else { 1 }, 3)?;
            parsed.day_of_year = Some(v as u32);
            Some(end)
        }
        'E' | 'e' => {
            let len = if n >= 4 { None } else { Some(3) };
            let (_, end) = match_name(text, pos, &DAYS, len)?;
            Some(end)
        }
        'a' => {
            let (index, end) = match_name(text, pos, &["AM", "PM"], None)?;
            parsed.pm = Some(index == 1);
            Some(end)
        }
        'G' => {
            let (_, end) = match_name(text, pos, &["AD", "BC"], None)?;
            Some(end)
        }
        'H' | 'k' => {
            let (v, end) = number(min, max)?;
            parsed.hour = Some(if c == 'k' && v == 24 { 0 } else { v as u32 });
            Some(end)
        }
        'h' | 'K' => {
            let (v, end) = number(min, max)?;
            parsed.hour12 = Some(v as u32);
            Some(end)
        }
        'm' => {
            let (v, end) = number(min, max)?;
            parsed.minute = Some(v as u32);
            Some(end)
        }
        's' => {
            let (v, end) = number(min, max)?;
            parsed.second = Some(v as u32);
            Some(end)
        }
        'S' => {
            let (min, max) = if adjacent_number {
                (n, n)
            } else {
                (n.min(9), 9.max(n))
            };
            let start = pos;
            let (_, end) = number(min.max(1), max)?;
            let digits: String = text[start..end].iter().collect();
            let mut padded = digits.clone();
            while padded.len() < 9 {
                padded.push('0');
            }
            parsed.nano = Some(padded[..9].parse().ok()?);
            Some(end)
        }
        'n' => {
            let (v, end) = number(1, 9)?;
            parsed.nano = Some(v as u32);
            Some(end)
        }
        'A' => {
            let (v, end) = number(1, 8)?;
            parsed.milli_of_day = Some(v as u32);
            Some(end)
        }
        'X' | 'x' | 'Z' | 'O' => {
            let rest: String = text[pos..].iter().collect();
            let upper = rest.to_ascii_uppercase();
            if upper.starts_with('Z') && c != 'x' {
                parsed.zone = Some(Zone::Fixed {
                    seconds: 0,
                    utc_name: Some("Z"),
                });
                return Some(pos + 1);
            }
            let mut offset_start = 0;
            if upper.starts_with("GMT") || upper.starts_with("UTC") {
                offset_start = 3;
                if !rest[3..].starts_with(['+', '-']) {
                    parsed.zone = Some(Zone::UTC);
                    return Some(pos + 3);
                }
            }
            let body: String = rest[offset_start..]
                .chars()
                .take_while(|ch| ch.is_ascii_digit() || matches!(ch, '+' | '-' | ':'))
                .enumerate()
                .take_while(|(k, ch)| *k == 0 || !matches!(ch, '+' | '-'))
                .map(|(_, ch)| ch)
                .collect();
            let seconds = parse_offset_text(&body)?;
            parsed.zone = Some(Zone::Fixed {
                seconds,
                utc_name: None,
            });
            Some(pos + offset_start + body.chars().count())
        }
        'z' | 'V' => {
            let word: String = text[pos..]
                .iter()
                .take_while(|ch| ch.is_alphanumeric() || matches!(ch, '/' | '_' | '+' | '-' | ':'))
                .collect();
            // Longest prefix that names a zone.
            let chars: Vec<char> = word.chars().collect();
            for len in (1..=chars.len()).rev() {
                let candidate: String = chars[..len].iter().collect();
                if let Ok(zone) = Zone::parse(&candidate) {
                    parsed.zone = Some(zone);
                    return Some(pos + len);
                }
            }
            None
        }
        'Q' | 'q' | 'w' => number(1, 2).map(|(_, end)| end),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn millis(pattern: &str, text: &str) -> i64 {
        let parsed = JavaPattern::compile(pattern).unwrap().parse(text).unwrap();
        let local = parsed.date().unwrap().and_time(parsed.time().unwrap());
        let zone = parsed.zone.unwrap_or(Zone::UTC);
        (local - chrono::Duration::seconds(zone.offset_for_local(&local) as i64))
            .and_utc()
            .timestamp_millis()
    }

    #[test]
    fn formats_with_java_letters_and_zones() {
        let pattern = JavaPattern::compile("yyyy-MM-dd'T'HH:mm:ss.SSS zzz 'o''clock'").unwrap();
        let la = Zone::parse("America/Los_Angeles").unwrap();
        assert_eq!(
            pattern.format_millis(1_526_075_913_042, &la).unwrap(),
            "2018-05-11T14:58:33.042 PDT o'clock"
        );
        let short = JavaPattern::compile("dd-MMM-yy EEE hh a X").unwrap();
        assert_eq!(
            short
                .format_millis(0, &Zone::parse("+0530").unwrap())
                .unwrap(),
            "01-Jan-70 Thu 05 AM +0530"
        );
        assert_eq!(
            JavaPattern::compile("XXX")
                .unwrap()
                .format_millis(0, &Zone::UTC)
                .unwrap(),
            "Z"
        );
    }

    #[test]
    fn parses_case_insensitively_with_defaults() {
        assert_eq!(
            millis("yyyy-MM-dd'T'HH:mm:ssX", "1970-01-02T00:00:01z"),
            86_401_000
        );
        assert_eq!(
            millis("yyyy-MM-dd HH:mm:ss zzz", "2020-01-01 00:00:00 PST"),
            1_577_865_600_000
        );
        assert_eq!(millis("MMM-yyyy", "FEB-1970"), 31 * 86_400_000);
        assert_eq!(millis("yyyyMMddHHmmss", "19700101000102"), 62_000);
        assert_eq!(millis("hh:mm a", "01:30 pm"), 13 * 3_600_000 + 30 * 60_000);
        assert_eq!(millis("HH:mm:ss.SSS", "00:00:01.500"), 1_500);
        assert_eq!(millis("HH:mm:ss.SX", "00:00:01.5+0100"), 1_500 - 3_600_000);
        assert_eq!(millis("yyyy-MM-dd['T'HH:mm]", "1970-01-02"), 86_400_000);
        assert!(JavaPattern::compile("yyyy")
            .unwrap()
            .parse("1970-")
            .is_err());
        assert!(JavaPattern::compile("'open").is_err());
    }

    #[test]
    fn zones_parse_as_java_zone_ids() {
        assert_eq!(
            Zone::parse("+02:00").unwrap(),
            Zone::Fixed {
                seconds: 7200,
                utc_name: None
            }
        );
        assert_eq!(
            Zone::parse("UTC-3")
                .unwrap()
                .offset_at_utc(&NaiveDateTime::default()),
            -10_800
        );
        assert!(Zone::parse("Mars/Olympus").is_err());
    }
}
