//! The records of the `_schemas` topic: keys and values as JSON, in the shape Confluent's
//! registry writes (`keytype`, `subject`, `version`, `magic`), plus what kafkaml needs.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{Compatibility, Mode};

/// A schema reference: the named type `name` comes from version `version` of `subject`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Reference {
    pub name: String,
    pub subject: String,
    pub version: u32,
}

/// One entry of the log. State is a deterministic function of these records in log order.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// "Version `version` of `subject` is schema `id`". Accepted only if it fits the state
    /// built from the claims before it (see `State::apply`); rejected claims stay harmless.
    /// `claim` makes every claim's key unique (writer instance + sequence), so compaction
    /// never drops or moves a claim and every reader sees the same claims in the same order.
    Claim {
        claim: String,
        subject: String,
        version: u32,
        id: u32,
        schema: String,
        references: Vec<Reference>,
    },
    /// Soft (`permanent == false`) or permanent deletion of a subject's version.
    DeleteVersion {
        subject: String,
        version: u32,
        permanent: bool,
    },
    /// The compatibility level of a subject (`None`: the global level); `None` level clears it.
    Config {
        subject: Option<String>,
        level: Option<Compatibility>,
    },
    /// The mode of a subject or of the registry; `None` clears a subject's mode.
    Mode {
        subject: Option<String>,
        mode: Option<Mode>,
    },
    /// Written once to create the topic on clusters that only create topics when produced to.
    Noop,
}

impl Record {
    /// The record as a Kafka key and value (None: a tombstone).
    pub fn encode(&self) -> (String, Option<String>) {
        match self {
            Record::Claim {
                claim,
                subject,
                version,
                id,
                schema,
                references,
            } => {
                let key = json!({"keytype": "SCHEMA", "subject": subject, "version": version,
                                 "magic": 1, "claim": claim});
                let mut value = json!({"subject": subject, "version": version, "id": id,
                                       "schema": schema, "deleted": false});
                if !references.is_empty() {
                    value["references"] = json!(references);
                }
                (key.to_string(), Some(value.to_string()))
            }
            Record::DeleteVersion {
                subject,
                version,
                permanent,
            } => {
                let key = json!({"keytype": "DELETE_VERSION", "subject": subject,
                                 "version": version, "magic": 0});
                let value = json!({"subject": subject, "version": version, "permanent": permanent});
                (key.to_string(), Some(value.to_string()))
            }
            Record::Config { subject, level } => {
                let key = json!({"keytype": "CONFIG", "subject": subject, "magic": 0});
                let value = level.map(|l| json!({"compatibilityLevel": l.as_str()}).to_string());
                (key.to_string(), value)
            }
            Record::Mode { subject, mode } => {
                let key = json!({"keytype": "MODE", "subject": subject, "magic": 0});
                let value = mode.map(|m| json!({"mode": m.as_str()}).to_string());
                (key.to_string(), value)
            }
            Record::Noop => (json!({"keytype": "NOOP", "magic": 0}).to_string(), None),
        }
    }

    /// Reads a record back; `None` for keys this registry does not act on (a Confluent
    /// registry's other record types, say), which are skipped.
    pub fn decode(key: &[u8], value: Option<&[u8]>) -> Option<Record> {
        let key: Value = serde_json::from_slice(key).ok()?;
        let value: Option<Value> = value.and_then(|v| serde_json::from_slice(v).ok());
        let subject = key
            .get("subject")
            .and_then(Value::as_str)
            .map(str::to_string);
        match key.get("keytype")?.as_str()? {
            "SCHEMA" => {
                let value = value?;
                let version = u32::try_from(key.get("version")?.as_u64()?).ok()?;
                // Confluent's own records have no claim id: their key is unique per version.
                let subject = subject?;
                let claim = key
                    .get("claim")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("confluent:{subject}:{version}"));
                let references = value
                    .get("references")
                    .and_then(|r| serde_json::from_value(r.clone()).ok())
                    .unwrap_or_default();
                Some(Record::Claim {
                    claim,
                    subject,
                    version,
                    id: u32::try_from(value.get("id")?.as_u64()?).ok()?,
                    schema: value.get("schema")?.as_str()?.to_string(),
                    references,
                })
            }
            "DELETE_VERSION" => Some(Record::DeleteVersion {
                subject: subject?,
                version: u32::try_from(key.get("version")?.as_u64()?).ok()?,
                permanent: value?.get("permanent")?.as_bool()?,
            }),
            "CONFIG" => Some(Record::Config {
                subject,
                level: value
                    .as_ref()
                    .and_then(|v| v.get("compatibilityLevel"))
                    .and_then(Value::as_str)
                    .and_then(|l| Compatibility::parse(l).ok()),
            }),
            "MODE" => Some(Record::Mode {
                subject,
                mode: value
                    .as_ref()
                    .and_then(|v| v.get("mode"))
                    .and_then(Value::as_str)
                    .and_then(|m| Mode::parse(m).ok()),
            }),
            "NOOP" => Some(Record::Noop),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_survive_encoding() {
        let records = [
            Record::Claim {
                claim: "a-1".into(),
                subject: "s".into(),
                version: 3,
                id: 7,
                schema: "\"long\"".into(),
                references: vec![Reference {
                    name: "x.Y".into(),
                    subject: "y".into(),
                    version: 1,
                }],
            },
            Record::DeleteVersion {
                subject: "s".into(),
                version: 3,
                permanent: true,
            },
            Record::Config {
                subject: None,
                level: Some(Compatibility::FullTransitive),
            },
            Record::Config {
                subject: Some("s".into()),
                level: None,
            },
            Record::Mode {
                subject: None,
                mode: Some(Mode::ReadOnly),
            },
            Record::Noop,
        ];
        for record in records {
            let (key, value) = record.encode();
            let back = Record::decode(key.as_bytes(), value.as_deref().map(str::as_bytes));
            assert_eq!(back, Some(record));
        }
    }

    #[test]
    fn unknown_or_broken_records_are_skipped() {
        assert_eq!(Record::decode(b"not json", None), None);
        assert_eq!(
            Record::decode(br#"{"keytype":"SOMETHING_NEW"}"#, Some(b"{}")),
            None
        );
        assert_eq!(
            Record::decode(br#"{"keytype":"SCHEMA","subject":"s","version":1}"#, None),
            None
        );
    }
}
