//! Date and time functions (ksqlDB's "DATE / TIME" category). Patterns are Java's
//! (`java_time_pattern`); zones are Java zone ids; time units arrive as STRING arguments
//! (`'DAYS'`, `'MILLISECONDS'` ...: the parser passes the unit keyword that way).

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use chrono::{NaiveDate, NaiveDateTime, NaiveTime, Timelike};

use super::java_time_pattern::{JavaPattern, Parsed, Zone};
use super::{
    overload, BindError, BoundFunction, BoundGenericPublic, FunctionRegistry, ScalarFunction,
    SimpleFunction,
};
use crate::types::SqlType;
use crate::value::Value;

use SqlType::{BigInt, Date, Integer, String as Str, Time, Timestamp};

const CATEGORY: &str = "DATE / TIME";
const DAY_MILLIS: i64 = 86_400_000;

fn add(
    registry: &mut FunctionRegistry,
    name: &'static str,
    description: &'static str,
    overloads: Vec<super::Overload>,
) {
    registry.register(Arc::new(SimpleFunction {
        name,
        category: CATEGORY,
        description,
        overloads,
    }));
}

/// Compiled patterns, per thread: the pattern is nearly always a literal.
fn pattern(text: &str) -> Result<Arc<JavaPattern>, String> {
    thread_local! {
        static CACHE: RefCell<HashMap<String, Arc<JavaPattern>>> = RefCell::new(HashMap::new());
    }
    CACHE.with(|cache| {
        let mut cache = cache.borrow_mut();
        if let Some(found) = cache.get(text) {
            return Ok(found.clone());
        }
        let compiled = Arc::new(
            JavaPattern::compile(text).map_err(|e| format!("Unknown date format pattern: {e}"))?,
        );
        if cache.len() > 256 {
            cache.clear();
        }
        cache.insert(text.to_string(), compiled.clone());
        Ok(compiled)
    })
}

fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn zone_arg(args: &[Value], index: usize) -> Result<Option<Zone>, String> {
    match args.get(index) {
        None => Ok(Some(Zone::UTC)),
        Some(Value::String(z)) => Zone::parse(z).map(Some),
        Some(_) => Ok(None),
    }
}

/// Parses `text` with a Java pattern to epoch milliseconds, in the zone the text names or else
/// `zone`.
pub fn parse_timestamp_millis(text: &str, pattern_text: &str, zone: &Zone) -> Result<i64, String> {
    let parsed = pattern(pattern_text)?.parse(text).map_err(|e| {
        format!("Failed to parse timestamp '{text}' with formatter '{pattern_text}': {e}")
    })?;
    let local = local_of(&parsed)?;
    let zone = parsed.zone.unwrap_or(*zone);
    let offset = zone.offset_for_local(&local);
    local
        .checked_sub_signed(chrono::Duration::seconds(offset as i64))
        .map(|utc| utc.and_utc().timestamp_millis())
        .ok_or_else(|| format!("Timestamp out of range: {text}"))
}

fn local_of(parsed: &Parsed) -> Result<NaiveDateTime, String> {
    Ok(parsed.date()?.and_time(parsed.time()?))
}

/// Formats epoch milliseconds with a Java pattern in `zone`.
pub fn format_timestamp_millis(
    millis: i64,
    pattern_text: &str,
    zone: &Zone,
) -> Result<String, String> {
    pattern(pattern_text)?.format_millis(millis, zone)
}

fn epoch() -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default()
}

fn format_days(days: i32, pattern_text: &str) -> Result<String, String> {
    let date = epoch()
        .checked_add_signed(chrono::Duration::days(days as i64))
        .ok_or("Date out of range")?;
    pattern(pattern_text)?.format(&date.and_time(NaiveTime::MIN), None)
}

fn parse_days(text: &str, pattern_text: &str) -> Result<i32, String> {
    let parsed = pattern(pattern_text)?.parse_prefix(text).map_err(|e| {
        format!("Failed to parse date '{text}' with formatter '{pattern_text}': {e}")
    })?;
    Ok((parsed.date()? - epoch()).num_days() as i32)
}

fn format_time_millis(millis: i64, pattern_text: &str) -> Result<String, String> {
    let time = NaiveTime::from_num_seconds_from_midnight_opt(
        (millis.rem_euclid(DAY_MILLIS) / 1000) as u32,
        (millis.rem_euclid(1000) * 1_000_000) as u32,
    )
    .ok_or("Time out of range")?;
    pattern(pattern_text)?.format(&epoch().and_time(time), None)
}

fn parse_time_millis(text: &str, pattern_text: &str) -> Result<i64, String> {
    let parsed = pattern(pattern_text)?.parse(text).map_err(|e| {
        format!("Failed to parse time '{text}' with formatter '{pattern_text}': {e}")
    })?;
    let time = parsed.time()?;
    Ok(time.num_seconds_from_midnight() as i64 * 1000 + time.nanosecond() as i64 / 1_000_000)
}

/// A STRING standing for a DATE (`2022-06-14`, or a prefix such as `2022-06`), TIME
/// (`09:16`, `09:16:00`, `09:16:00.5`) or TIMESTAMP (`2022-06-14T09:16:00.000`, any prefix down to
/// the year, optionally with an offset `Z`/`+hh:mm`), as ksqlDB's casts and comparisons read
/// them; missing fields are the start of their period.
pub fn parse_temporal_literal(text: &str, to: &SqlType) -> Result<Value, String> {
    let text = text.trim();
    let full = |patterns: &[&str], f: &dyn Fn(&str) -> Result<Value, String>| {
        patterns
            .iter()
            .find_map(|p| f(p).ok())
            .ok_or_else(|| format!("Cannot parse {to}: {text}"))
    };
    match to {
        SqlType::Date => full(&["yyyy-MM-dd", "yyyy-MM", "yyyy"], &|p| {
            let parsed = pattern(p)?.parse(text)?;
            Ok(Value::Date((parsed.date()? - epoch()).num_days() as i32))
        }),
        SqlType::Time => full(&["HH:mm:ss.S", "HH:mm:ss", "HH:mm", "HH"], &|p| {
            let parsed = pattern(p)?.parse(text)?;
            let time = parsed.time()?;
            Ok(Value::Time(
                time.num_seconds_from_midnight() as i64 * 1000
                    + time.nanosecond() as i64 / 1_000_000,
            ))
        }),
        SqlType::Timestamp => {
            const PATTERNS: [&str; 14] = [
                "yyyy-MM-dd'T'HH:mm:ss.S",
                "yyyy-MM-dd'T'HH:mm:ss.SX",
                "yyyy-MM-dd'T'HH:mm:ss",
                "yyyy-MM-dd'T'HH:mm:ssX",
                "yyyy-MM-dd'T'HH:mm",
                "yyyy-MM-dd'T'HH:mmX",
                "yyyy-MM-dd'T'HH",
                "yyyy-MM-dd'T'HHX",
                "yyyy-MM-dd",
                "yyyy-MM-ddX",
                "yyyy-MM",
                "yyyy-MMX",
                "yyyy",
                "yyyyX",
            ];
            full(&PATTERNS, &|p| {
                parse_timestamp_millis(text, p, &Zone::UTC).map(Value::Timestamp)
            })
        }
        _ => Err(format!("Not a temporal type: {to}")),
    }
}

/// Java's `TimeUnit` names as ksqlDB's interval functions take them, in milliseconds.
fn unit_millis(unit: &str) -> Result<i64, String> {
    Ok(match unit.to_ascii_uppercase().as_str() {
        "MILLISECONDS" | "MILLISECOND" => 1,
        "SECONDS" | "SECOND" => 1000,
        "MINUTES" | "MINUTE" => 60_000,
        "HOURS" | "HOUR" => 3_600_000,
        "DAYS" | "DAY" => DAY_MILLIS,
        // TimeUnit's sub-millisecond units truncate to zero milliseconds per unit.
        "MICROSECONDS" | "NANOSECONDS" => 0,
        other => return Err(format!("Unknown time unit: {other}")),
    })
}

fn unit_amount(unit: &str, amount: i64) -> Result<i64, String> {
    let upper = unit.to_ascii_uppercase();
    if upper.starts_with("MICRO") {
        return Ok(amount / 1000);
    }
    if upper.starts_with("NANO") {
        return Ok(amount / 1_000_000);
    }
    Ok(amount.wrapping_mul(unit_millis(unit)?))
}

pub(super) fn register(registry: &mut FunctionRegistry) {
    add(
        registry,
        "UNIX_TIMESTAMP",
        "Gets the Unix timestamp in milliseconds, represented as a BIGINT: now, or of the \
         given TIMESTAMP.",
        vec![
            overload(vec![], BigInt, |_| Ok(Value::BigInt(now_millis()))),
            overload(vec![Timestamp], BigInt, |a| {
                Ok(match a[0] {
                    Value::Timestamp(t) => Value::BigInt(t),
                    _ => Value::Null,
                })
            }),
        ],
    );
    add(
        registry,
        "UNIX_DATE",
        "Gets an integer representing days since epoch: today, or of the given DATE.",
        vec![
            overload(vec![], Integer, |_| {
                Ok(Value::Integer(now_millis().div_euclid(DAY_MILLIS) as i32))
            }),
            overload(vec![Date], Integer, |a| {
                Ok(match a[0] {
                    Value::Date(d) => Value::Integer(d),
                    _ => Value::Null,
                })
            }),
        ],
    );
    add(
        registry,
        "FROM_UNIXTIME",
        "Converts a BIGINT millisecond timestamp value into a TIMESTAMP value.",
        vec![overload(vec![BigInt], Timestamp, |a| {
            Ok(a[0].as_i64().map_or(Value::Null, Value::Timestamp))
        })],
    );
    add(
        registry,
        "FROM_DAYS",
        "Converts an INT number of days since epoch to a DATE value.",
        vec![overload(vec![Integer], Date, |a| {
            Ok(match a[0] {
                Value::Integer(d) => Value::Date(d),
                _ => Value::Null,
            })
        })],
    );
    add(
        registry,
        "STRINGTOTIMESTAMP",
        "Converts a string value in the given format into the BIGINT value that represents \
         the millisecond timestamp.",
        vec![
            overload(vec![Str, Str], BigInt, |a| {
                string_to_millis(a).map(wrap(Value::BigInt))
            }),
            overload(vec![Str, Str, Str], BigInt, |a| {
                string_to_millis(a).map(wrap(Value::BigInt))
            }),
        ],
    );
    add(
        registry,
        "PARSE_TIMESTAMP",
        "Converts a string value in the given format into the TIMESTAMP value.",
        vec![
            overload(vec![Str, Str], Timestamp, |a| {
                string_to_millis(a).map(wrap(Value::Timestamp))
            }),
            overload(vec![Str, Str, Str], Timestamp, |a| {
                string_to_millis(a).map(wrap(Value::Timestamp))
            }),
        ],
    );
    add(
        registry,
        "TIMESTAMPTOSTRING",
        "Converts a BIGINT millisecond timestamp value into the string representation of the \
         timestamp in the given format.",
        vec![
            overload(vec![BigInt, Str], Str, millis_to_string),
            overload(vec![BigInt, Str, Str], Str, millis_to_string),
        ],
    );
    add(
        registry,
        "FORMAT_TIMESTAMP",
        "Converts a TIMESTAMP value into the string representation of the timestamp in the \
         given format.",
        vec![
            overload(vec![Timestamp, Str], Str, millis_to_string),
            overload(vec![Timestamp, Str, Str], Str, millis_to_string),
        ],
    );
    add(
        registry,
        "STRINGTODATE",
        "Converts a string representation of a date into an integer representing days since \
         epoch using the given format pattern.",
        vec![overload(vec![Str, Str], Integer, |a| {
            match (a[0].as_str(), a[1].as_str()) {
                (Some(text), Some(p)) => parse_days(text, p).map(Value::Integer),
                _ => Ok(Value::Null),
            }
        })],
    );
    add(
        registry,
        "PARSE_DATE",
        "Converts a string representation of a date in the given format into a DATE value.",
        vec![overload(vec![Str, Str], Date, |a| {
            match (a[0].as_str(), a[1].as_str()) {
                (Some(text), Some(p)) => parse_days(text, p).map(Value::Date),
                _ => Ok(Value::Null),
            }
        })],
    );
    add(
        registry,
        "DATETOSTRING",
        "Converts an integer representation of a date into a string representing the date in \
         the given format.",
        vec![overload(vec![Integer, Str], Str, |a| {
            match (&a[0], a[1].as_str()) {
                (Value::Integer(d), Some(p)) => format_days(*d, p).map(Value::String),
                _ => Ok(Value::Null),
            }
        })],
    );
    add(
        registry,
        "FORMAT_DATE",
        "Converts a DATE value into a string representing the date in the given format.",
        vec![overload(vec![Date, Str], Str, |a| {
            match (&a[0], a[1].as_str()) {
                (Value::Date(d), Some(p)) => format_days(*d, p).map(Value::String),
                _ => Ok(Value::Null),
            }
        })],
    );
    add(
        registry,
        "FORMAT_TIME",
        "Converts a TIME value into a string representing the time in the given format.",
        vec![overload(vec![Time, Str], Str, |a| {
            match (&a[0], a[1].as_str()) {
                (Value::Time(t), Some(p)) => format_time_millis(*t, p).map(Value::String),
                _ => Ok(Value::Null),
            }
        })],
    );
    add(
        registry,
        "PARSE_TIME",
        "Converts a string value in the given format into a TIME value.",
        vec![overload(vec![Str, Str], Time, |a| {
            match (a[0].as_str(), a[1].as_str()) {
                (Some(text), Some(p)) => parse_time_millis(text, p).map(Value::Time),
                _ => Ok(Value::Null),
            }
        })],
    );
    add(
        registry,
        "CONVERT_TZ",
        "Converts a TIMESTAMP value from one time zone to another.",
        vec![overload(vec![Timestamp, Str, Str], Timestamp, |a| {
            match (&a[0], a[1].as_str(), a[2].as_str()) {
                (Value::Timestamp(t), Some(from), Some(to)) => {
                    let from = Zone::parse(from)?;
                    let to = Zone::parse(to)?;
                    let utc = chrono::DateTime::from_timestamp_millis(*t)
                        .ok_or("Timestamp out of range")?
                        .naive_utc();
                    let shift = to.offset_at_utc(&utc) as i64 - from.offset_at_utc(&utc) as i64;
                    Ok(Value::Timestamp(t + shift * 1000))
                }
                _ => Ok(Value::Null),
            }
        })],
    );
    for (name, target, sign, description) in [
        (
            "TIMESTAMPADD",
            Timestamp,
            1,
            "Adds a duration to a TIMESTAMP value.",
        ),
        (
            "TIMESTAMPSUB",
            Timestamp,
            -1,
            "Subtracts a duration from a TIMESTAMP value.",
        ),
        ("DATEADD", Date, 1, "Adds a duration to a DATE value."),
        (
            "DATESUB",
            Date,
            -1,
            "Subtracts a duration from a DATE value.",
        ),
        ("TIMEADD", Time, 1, "Adds a duration to a TIME value."),
        (
            "TIMESUB",
            Time,
            -1,
            "Subtracts a duration from a TIME value.",
        ),
    ] {
        registry.register(Arc::new(IntervalArithmetic {
            name,
            target,
            sign,
            description,
        }));
    }
}

fn wrap(make: fn(i64) -> Value) -> impl Fn(Option<i64>) -> Value {
    move |v| v.map_or(Value::Null, make)
}

fn string_to_millis(a: &[Value]) -> Result<Option<i64>, String> {
    let (Some(text), Some(p)) = (a[0].as_str(), a[1].as_str()) else {
        return Ok(None);
    };
    let Some(zone) = zone_arg(a, 2)? else {
        return Ok(None);
    };
    parse_timestamp_millis(text, p, &zone).map(Some)
}

fn millis_to_string(a: &[Value]) -> Result<Value, String> {
    let millis = match a[0] {
        Value::Timestamp(t) | Value::BigInt(t) => t,
        _ => return Ok(Value::Null),
    };
    let Some(p) = a[1].as_str() else {
        return Ok(Value::Null);
    };
    let Some(zone) = zone_arg(a, 2)? else {
        return Ok(Value::Null);
    };
    format_timestamp_millis(millis, p, &zone).map(Value::String)
}

/// TIMESTAMPADD/SUB, DATEADD/SUB, TIMEADD/SUB: `(unit STRING, interval INTEGER|BIGINT,
/// value)`; ksqlDB names them in lower case in its errors.
struct IntervalArithmetic {
    name: &'static str,
    target: SqlType,
    sign: i64,
    description: &'static str,
}

impl ScalarFunction for IntervalArithmetic {
    fn name(&self) -> &str {
        self.name
    }
    fn category(&self) -> &str {
        CATEGORY
    }
    fn description(&self) -> &str {
        self.description
    }
    fn signatures(&self) -> Vec<String> {
        vec![
            format!(
                "{}(unit, INTEGER, {}) => {}",
                self.name, self.target, self.target
            ),
            format!(
                "{}(unit, BIGINT, {}) => {}",
                self.name, self.target, self.target
            ),
        ]
    }
    fn bind(&self, arg_types: &[SqlType]) -> Result<Arc<dyn BoundFunction>, BindError> {
        let fits = matches!(arg_types, [Str, Integer | BigInt, t] if *t == self.target);
        if !fits {
            let shown: Vec<String> = arg_types.iter().map(ToString::to_string).collect();
            return Err(BindError(format!(
                "Function '{}' does not accept parameters ({}).",
                self.name.to_ascii_lowercase(),
                shown.join(", ")
            )));
        }
        let sign = self.sign;
        let target = self.target.clone();
        Ok(Arc::new(BoundGenericPublic::new(
            self.target.clone(),
            super::row_fn(move |args| {
                let (Some(unit), Some(amount)) = (args[0].as_str(), args[1].as_i64()) else {
                    return Ok(Value::Null);
                };
                let delta = unit_amount(unit, amount)?.wrapping_mul(sign);
                Ok(match (&args[2], &target) {
                    (Value::Timestamp(t), _) => Value::Timestamp(t.wrapping_add(delta)),
                    (Value::Date(d), _) => {
                        let millis = (*d as i64 * DAY_MILLIS).wrapping_add(delta);
                        // TimeUnit.toDays truncates toward zero, as ksqlDB's DATEADD does.
                        Value::Date((millis / DAY_MILLIS) as i32)
                    }
                    (Value::Time(t), _) => {
                        Value::Time(t.wrapping_add(delta).rem_euclid(DAY_MILLIS))
                    }
                    _ => Value::Null,
                })
            }),
        )))
    }
}

/// `yyyy-MM-dd`, as ksqlDB writes a DATE in text.
pub fn format_date_iso(days: i32) -> Result<String, String> {
    format_days(days, "yyyy-MM-dd")
}

/// `HH:mm:ss`, with `.SSS` only when there are milliseconds, as ksqlDB writes a TIME.
pub fn format_time_iso(millis: i64) -> String {
    let p = if millis % 1000 == 0 {
        "HH:mm:ss"
    } else {
        "HH:mm:ss.SSS"
    };
    format_time_millis(millis, p).unwrap_or_default()
}

/// `yyyy-MM-ddTHH:mm:ss.SSS` in UTC, as ksqlDB writes a TIMESTAMP.
pub fn format_timestamp_iso(millis: i64) -> Result<String, String> {
    format_timestamp_millis(millis, "yyyy-MM-dd'T'HH:mm:ss.SSS", &Zone::UTC)
}

#[cfg(test)]
mod tests {
    use crate::functions::FunctionRegistry;
    use crate::types::SqlType;
    use crate::value::Value;

    fn s(text: &str) -> Value {
        Value::String(text.into())
    }

    fn call(name: &str, types: &[SqlType], args: &[Value]) -> Result<Value, String> {
        let registry = FunctionRegistry::builtin();
        registry.get(name).unwrap().bind(types).unwrap().call(args)
    }

    use SqlType::{BigInt, Date, Integer, String as Str, Time, Timestamp};

    #[test]
    fn timestamps_parse_and_format_in_zones() {
        assert_eq!(
            call(
                "STRINGTOTIMESTAMP",
                &[Str, Str],
                &[s("2000-01-01T00:00:00+0100"), s("yyyy-MM-dd'T'HH:mm:ssX")]
            ),
            Ok(Value::BigInt(946_681_200_000))
        );
        assert_eq!(
            call(
                "PARSE_TIMESTAMP",
                &[Str, Str, Str],
                &[
                    s("2000-07-01 12:00"),
                    s("yyyy-MM-dd HH:mm"),
                    s("Europe/Berlin")
                ]
            ),
            Ok(Value::Timestamp(962_445_600_000))
        );
        assert_eq!(
            call(
                "FORMAT_TIMESTAMP",
                &[Timestamp, Str, Str],
                &[
                    Value::Timestamp(962_445_600_000),
                    s("yyyy-MM-dd HH:mm zzz"),
                    s("Europe/London")
                ]
            ),
            Ok(s("2000-07-01 11:00 BST"))
        );
        assert_eq!(
            call(
                "TIMESTAMPTOSTRING",
                &[BigInt, Str],
                &[Value::BigInt(0), s("yyyy-MM-dd HH:mm:ss.SSS")]
            ),
            Ok(s("1970-01-01 00:00:00.000"))
        );
        assert!(call(
            "PARSE_TIMESTAMP",
            &[Str, Str],
            &[s("not a time"), s("yyyy")]
        )
        .is_err());
    }

    #[test]
    fn dates_and_times_round_trip() {
        assert_eq!(
            call(
                "PARSE_DATE",
                &[Str, Str],
                &[s("02-Jan-1970"), s("dd-MMM-yyyy")]
            ),
            Ok(Value::Date(1))
        );
        assert_eq!(
            call(
                "FORMAT_DATE",
                &[Date, Str],
                &[Value::Date(-1), s("yyyy/MM/dd")]
            ),
            Ok(s("1969/12/31"))
        );
        assert_eq!(
            call(
                "STRINGTODATE",
                &[Str, Str],
                &[s("1970-01-11"), s("yyyy-MM-dd")]
            ),
            Ok(Value::Integer(10))
        );
        assert_eq!(
            call("PARSE_TIME", &[Str, Str], &[s("01:02 PM"), s("hh:mm a")]),
            Ok(Value::Time(46_920_000))
        );
        assert_eq!(
            call(
                "FORMAT_TIME",
                &[Time, Str],
                &[Value::Time(3_723_004), s("HH.mm.ss.SSS")]
            ),
            Ok(s("01.02.03.004"))
        );
    }

    #[test]
    fn dates_parse_like_simple_date_format_ignoring_trailing_text() {
        assert_eq!(
            call(
                "PARSE_DATE",
                &[Str, Str],
                &[s("1970-01-02-01-01"), s("yyyy-MM-dd")]
            ),
            Ok(Value::Date(1))
        );
        assert!(call("PARSE_DATE", &[Str, Str], &[s("1970-01"), s("yyyy-MM-dd")]).is_err());
    }

    #[test]
    fn temporal_text_reads_and_writes_as_ksqldb_casts() {
        use super::parse_temporal_literal as parse;
        use super::{format_date_iso, format_time_iso, format_timestamp_iso};
        assert_eq!(parse("1970-01-10", &Date), Ok(Value::Date(9)));
        assert_eq!(parse("1970-01", &Date), Ok(Value::Date(0)));
        assert!(parse("foo", &Date).is_err());
        assert_eq!(parse("00:00:00.010", &Time), Ok(Value::Time(10)));
        assert_eq!(parse("00:01", &Time), Ok(Value::Time(60_000)));
        assert_eq!(
            parse("1970-01-01T00:00:00.01", &Timestamp),
            Ok(Value::Timestamp(10))
        );
        assert_eq!(
            parse("2018", &Timestamp),
            Ok(Value::Timestamp(1_514_764_800_000))
        );
        assert_eq!(
            parse("1970-01-01T01:00:00+01:00", &Timestamp),
            Ok(Value::Timestamp(0))
        );
        assert_eq!(
            parse("1970-01-01T04:45:00+0445", &Timestamp),
            Ok(Value::Timestamp(0))
        );
        assert_eq!(
            parse("1970-01-01T00:00:00.001+0000", &Timestamp),
            Ok(Value::Timestamp(1))
        );
        assert_eq!(format_date_iso(-1), Ok("1969-12-31".to_string()));
        assert_eq!(format_time_iso(5_000), "00:00:05");
        assert_eq!(format_time_iso(5_010), "00:00:05.010");
        assert_eq!(
            format_timestamp_iso(10),
            Ok("1970-01-01T00:00:00.010".to_string())
        );
    }

    #[test]
    fn intervals_take_unit_strings_and_wrap_times() {
        assert_eq!(
            call(
                "DATEADD",
                &[Str, Integer, Date],
                &[s("DAYS"), Value::Integer(-3), Value::Date(1)]
            ),
            Ok(Value::Date(-2))
        );
        assert_eq!(
            call(
                "TIMESUB",
                &[Str, Integer, Time],
                &[s("MILLISECONDS"), Value::Integer(10), Value::Time(5)]
            ),
            Ok(Value::Time(86_399_995))
        );
        assert_eq!(
            call(
                "TIMESTAMPADD",
                &[Str, BigInt, Timestamp],
                &[s("HOURS"), Value::BigInt(1), Value::Timestamp(0)]
            ),
            Ok(Value::Timestamp(3_600_000))
        );
        let registry = FunctionRegistry::builtin();
        assert_eq!(
            registry
                .get("DATEADD")
                .unwrap()
                .bind(&[Date, Integer, Date])
                .err()
                .unwrap()
                .0,
            "Function 'dateadd' does not accept parameters (DATE, INTEGER, DATE)."
        );
        assert_eq!(
            call(
                "CONVERT_TZ",
                &[Timestamp, Str, Str],
                &[Value::Timestamp(100), s("+0200"), s("+0500")]
            ),
            Ok(Value::Timestamp(10_800_100))
        );
    }
}
