//! `WINDOW TUMBLING | HOPPING | SESSION (...)`: which windows a record falls in, and when a
//! window closes, as Kafka Streams decides both for ksqlDB.

use crate::topology::KeyWindow;

/// A day: Kafka Streams' grace period for windows declared without one is a day less the
/// window's size (its deprecated `TimeWindows.of`, which ksqlDB still uses then).
const DEFAULT_GRACE_BASE_MS: i64 = 86_400_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowKind {
    Tumbling {
        size_ms: i64,
    },
    Hopping {
        size_ms: i64,
        advance_ms: i64,
    },
    /// Records of a key less than `gap_ms` apart share a session.
    Session {
        gap_ms: i64,
    },
}

impl WindowKind {
    /// The window type as `WINDOW_TYPE` and `DESCRIBE` name it.
    pub fn name(self) -> &'static str {
        match self {
            WindowKind::Tumbling { .. } => "TUMBLING",
            WindowKind::Hopping { .. } => "HOPPING",
            WindowKind::Session { .. } => "SESSION",
        }
    }
}

/// A query's window clause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowSpec {
    pub kind: WindowKind,
    /// `GRACE PERIOD`: how long after its end a window still takes late records.
    pub grace_ms: i64,
    /// `RETENTION`, when given: how long a closed window stays queryable.
    pub retention_ms: Option<i64>,
}

impl WindowSpec {
    /// Parses the clause as written after `WINDOW`, e.g. `TUMBLING (SIZE 30 SECONDS, GRACE
    /// PERIOD 1 MINUTE)`.
    pub fn parse(text: &str) -> Result<WindowSpec, String> {
        let text = text.trim();
        let open = text
            .find('(')
            .ok_or_else(|| format!("Invalid window: {text}"))?;
        let close = text
            .rfind(')')
            .filter(|&c| c > open)
            .ok_or_else(|| format!("Invalid window: {text}"))?;
        let kind_name = text[..open].trim().to_ascii_uppercase();
        let mut size = None;
        let mut advance = None;
        let mut grace = None;
        let mut retention = None;
        for (index, part) in text[open + 1..close].split(',').enumerate() {
            let words: Vec<String> = part
                .split_whitespace()
                .map(|w| w.to_ascii_uppercase())
                .collect();
            let words: Vec<&str> = words.iter().map(String::as_str).collect();
            match words.as_slice() {
                ["SIZE", amount, unit] => size = Some(duration_ms(amount, unit)?),
                ["ADVANCE", "BY", amount, unit] => advance = Some(duration_ms(amount, unit)?),
                ["GRACE", "PERIOD", amount, unit] => grace = Some(duration_ms(amount, unit)?),
                ["RETENTION", amount, unit] => retention = Some(duration_ms(amount, unit)?),
                // A session window's gap comes first, without a keyword.
                [amount, unit] if index == 0 && kind_name == "SESSION" => {
                    size = Some(duration_ms(amount, unit)?)
                }
                _ => return Err(format!("Invalid window: {text}")),
            }
        }
        let size_ms = size.ok_or_else(|| format!("Window size is missing: {text}"))?;
        if size_ms <= 0 {
            return Err(format!("Window size must be positive: {text}"));
        }
        let kind = match kind_name.as_str() {
            "TUMBLING" => WindowKind::Tumbling { size_ms },
            "HOPPING" => {
                let advance_ms =
                    advance.ok_or_else(|| format!("A HOPPING window needs ADVANCE BY: {text}"))?;
                if advance_ms <= 0 || advance_ms > size_ms {
                    return Err(format!(
                        "Window advance must be positive and at most the window size: {text}"
                    ));
                }
                WindowKind::Hopping {
                    size_ms,
                    advance_ms,
                }
            }
            "SESSION" => WindowKind::Session { gap_ms: size_ms },
            other => return Err(format!("Unknown window type: {other}")),
        };
        Ok(WindowSpec {
            kind,
            grace_ms: grace.unwrap_or((DEFAULT_GRACE_BASE_MS - size_ms).max(0)),
            retention_ms: retention,
        })
    }

    /// How the window travels in the sink's keys.
    pub fn key_window(&self) -> KeyWindow {
        match self.kind {
            WindowKind::Tumbling { size_ms } | WindowKind::Hopping { size_ms, .. } => {
                KeyWindow::Time { size_ms }
            }
            WindowKind::Session { .. } => KeyWindow::Session,
        }
    }

    /// The (start, end) of every time window holding `timestamp`, earliest first (Kafka
    /// Streams' `TimeWindows.windowsFor`). Empty for session windows.
    pub fn time_windows(&self, timestamp: i64) -> impl Iterator<Item = (i64, i64)> {
        let (size, advance) = match self.kind {
            WindowKind::Tumbling { size_ms } => (size_ms, size_ms),
            WindowKind::Hopping {
                size_ms,
                advance_ms,
            } => (size_ms, advance_ms),
            // No window: a range that is empty.
            WindowKind::Session { .. } => (1, 1),
        };
        // The first window holding the timestamp starts at a multiple of the advance.
        let first = match self.kind {
            WindowKind::Session { .. } => timestamp.saturating_add(1),
            _ => (timestamp - size + advance).max(0) / advance * advance,
        };
        (first..=timestamp)
            .step_by(advance.max(1) as usize)
            .map(move |start| (start, start.saturating_add(size)))
    }

    /// Whether a time window ending at `end` takes no more records at `stream_time`.
    pub fn time_window_closed(&self, end: i64, stream_time: i64) -> bool {
        end.saturating_add(self.grace_ms) <= stream_time
    }

    /// Whether a session ending at `end` takes no more records at `stream_time`: Kafka Streams
    /// closes a session a gap and the grace period after its end, and compares strictly.
    pub fn session_closed(&self, end: i64, stream_time: i64) -> bool {
        let gap = match self.kind {
            WindowKind::Session { gap_ms } => gap_ms,
            _ => 0,
        };
        end.saturating_add(gap).saturating_add(self.grace_ms) < stream_time
    }

    /// `EMIT FINAL` without a `GRACE PERIOD` closes windows at their end (ksqlDB's suppression
    /// takes no default grace, unlike its window stores).
    pub fn with_grace_for_final(mut self, declared: bool) -> WindowSpec {
        if !declared {
            self.grace_ms = 0;
        }
        self
    }

    /// Whether the clause declares a grace period.
    pub fn declares_grace(text: &str) -> bool {
        text.to_ascii_uppercase().contains("GRACE")
    }
}

/// `30 SECONDS`, `1 MINUTE`, `500 MILLISECONDS`, ... in milliseconds.
pub fn duration_ms(amount: &str, unit: &str) -> Result<i64, String> {
    let amount: i64 = amount
        .parse()
        .map_err(|_| format!("Invalid duration: {amount} {unit}"))?;
    let unit_ms = match unit.to_ascii_uppercase().trim_end_matches('S') {
        "MILLISECOND" => 1,
        "SECOND" => 1000,
        "MINUTE" => 60_000,
        "HOUR" => 3_600_000,
        "DAY" => 86_400_000,
        _ => return Err(format!("Invalid duration unit: {unit}")),
    };
    Ok(amount.saturating_mul(unit_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clauses_parse_with_ksqldbs_default_grace() {
        let tumbling = WindowSpec::parse("TUMBLING (SIZE 30 SECONDS)").unwrap();
        assert_eq!(tumbling.kind, WindowKind::Tumbling { size_ms: 30_000 });
        assert_eq!(tumbling.grace_ms, 86_400_000 - 30_000);
        let hopping = WindowSpec::parse(
            "hopping(size 10 milliseconds,advance by 5 milliseconds, grace period 2 milliseconds)",
        )
        .unwrap();
        assert_eq!(
            hopping.kind,
            WindowKind::Hopping {
                size_ms: 10,
                advance_ms: 5
            }
        );
        assert_eq!(hopping.grace_ms, 2);
        let session = WindowSpec::parse("SESSION (30 SECONDS, RETENTION 2 DAYS)").unwrap();
        assert_eq!(session.kind, WindowKind::Session { gap_ms: 30_000 });
        assert_eq!(session.retention_ms, Some(2 * 86_400_000));
        assert!(WindowSpec::parse("HOPPING (SIZE 5 SECONDS)").is_err());
        assert!(WindowSpec::parse("TUMBLING (SIZE 5 FORTNIGHTS)").is_err());
    }

    #[test]
    fn a_record_falls_in_every_hopping_window_that_holds_it() {
        let hopping =
            WindowSpec::parse("HOPPING (SIZE 30 SECONDS, ADVANCE BY 10 SECONDS)").unwrap();
        assert_eq!(
            hopping.time_windows(25_000).collect::<Vec<_>>(),
            vec![(0, 30_000), (10_000, 40_000), (20_000, 50_000)]
        );
        // Windows never start before the epoch.
        assert_eq!(
            hopping.time_windows(5_000).collect::<Vec<_>>(),
            vec![(0, 30_000)]
        );
        let tumbling = WindowSpec::parse("TUMBLING (SIZE 30 SECONDS)").unwrap();
        assert_eq!(
            tumbling.time_windows(89_999).collect::<Vec<_>>(),
            vec![(60_000, 90_000)]
        );
        assert_eq!(
            tumbling.time_windows(90_000).collect::<Vec<_>>(),
            vec![(90_000, 120_000)]
        );
    }

    #[test]
    fn windows_close_after_their_grace() {
        let spec =
            WindowSpec::parse("TUMBLING (SIZE 10 MILLISECONDS, GRACE PERIOD 5 MILLISECONDS)")
                .unwrap();
        assert!(!spec.time_window_closed(10, 14));
        assert!(spec.time_window_closed(10, 15));
        let session =
            WindowSpec::parse("SESSION (3 MILLISECONDS, GRACE PERIOD 5 MILLISECONDS)").unwrap();
        assert!(!session.session_closed(10, 18));
        assert!(session.session_closed(10, 19));
    }
}
