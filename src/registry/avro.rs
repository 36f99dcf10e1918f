//! Avro schemas as the registry sees them: parsing with references, the canonical text that
//! decides "same schema, same id", and compatibility by Avro's schema-resolution rules.

use std::fmt::Write as _;

use apache_avro::schema_compatibility::SchemaCompatibility;
use apache_avro::Schema;
use serde_json::Value;

use super::RegistryError;

/// Compatibility messages quote both schemas in full for a type mismatch; a registry answer
/// should stay readable.
const MAX_REASON_CHARS: usize = 300;

/// The canonical text of a JSON schema: compact, object keys sorted, so whitespace and the
/// order of attributes never make two equal schemas differ (Confluent's registry gets the same
/// effect by re-printing schemas through Avro's own printer).
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                // A string always serialises.
                let _ = write!(out, "{}", Value::String(key.clone()));
                out.push(':');
                write_canonical(&map[key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        other => {
            let _ = write!(out, "{other}");
        }
    }
}

/// Parses `text` as an Avro schema; `dependencies` are the texts of the named types its
/// references bring in, in dependency order.
pub fn parse(text: &str, dependencies: &[String]) -> Result<Schema, RegistryError> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| RegistryError::InvalidSchema(format!("the schema is not JSON: {e}")))?;
    let parsed = if dependencies.is_empty() {
        Schema::parse(&value)
    } else {
        Schema::parse_str_with_list(text, dependencies).map(|(schema, _)| schema)
    };
    let schema =
        parsed.map_err(|e| RegistryError::InvalidSchema(format!("invalid Avro schema: {e}")))?;
    if let Some(name) = endless_record(&schema) {
        return Err(RegistryError::InvalidSchema(format!(
            "record {name} contains itself with no way to end (make the field a union with \
             null, an array or a map): no finite value has this schema"
        )));
    }
    Ok(schema)
}

/// The name of a record that must contain itself (through required fields only), if any:
/// Avro parses such a schema, but no value of it can be written.
fn endless_record(schema: &Schema) -> Option<String> {
    fn visit<'a>(schema: &'a Schema, path: &mut Vec<&'a str>) -> Option<String> {
        match schema {
            Schema::Record(record) => {
                let name = record.name.name.as_str();
                if path.contains(&name) {
                    return None; // already being checked higher up
                }
                path.push(name);
                for field in &record.fields {
                    if let Some(found) = required_self(&field.schema, path) {
                        return Some(found);
                    }
                    if let Some(found) = visit(&field.schema, path) {
                        return Some(found);
                    }
                }
                path.pop();
                None
            }
            Schema::Union(union) => union.variants().iter().find_map(|v| visit(v, path)),
            Schema::Array(array) => visit(&array.items, path),
            Schema::Map(map) => visit(&map.types, path),
            _ => None,
        }
    }
    /// A field whose type is a reference to a record on the current path: that record can
    /// only be written by writing itself again.
    fn required_self(schema: &Schema, path: &[&str]) -> Option<String> {
        match schema {
            Schema::Ref { name } if path.contains(&name.name.as_str()) => Some(name.fullname(None)),
            _ => None,
        }
    }
    visit(schema, &mut Vec::new())
}

/// The text stored for a schema registered with `normalize=true`: Avro's own view of it
/// (names resolved against their namespaces), in canonical JSON.
pub fn normalized_text(schema: &Schema) -> Result<String, RegistryError> {
    let value = serde_json::to_value(schema)
        .map_err(|e| RegistryError::InvalidSchema(format!("cannot print the schema: {e}")))?;
    Ok(canonical_json(&value))
}

/// Why data written with `writer` cannot be read with `reader`, or `None` if it can.
pub fn cannot_read(writer: &Schema, reader: &Schema) -> Option<String> {
    SchemaCompatibility::can_read(writer, reader)
        .err()
        .map(|e| shorten(e.to_string()))
}

fn shorten(mut text: String) -> String {
    if text.chars().count() > MAX_REASON_CHARS {
        text = text.chars().take(MAX_REASON_CHARS).collect::<String>() + "...";
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(text: &str) -> Schema {
        parse(text, &[]).unwrap()
    }

    #[test]
    fn canonical_json_ignores_whitespace_and_attribute_order() {
        let a: Value = serde_json::from_str(
            r#"{"type": "record", "name": "R", "fields": [{"name": "a", "type": "long"}]}"#,
        )
        .unwrap();
        let b: Value = serde_json::from_str(
            r#"{"name":"R","fields":[{"type":"long","name":"a"}],"type":"record"}"#,
        )
        .unwrap();
        assert_eq!(canonical_json(&a), canonical_json(&b));
        let c: Value = serde_json::from_str(
            r#"{"name":"R","fields":[{"type":"int","name":"a"}],"type":"record"}"#,
        )
        .unwrap();
        assert_ne!(canonical_json(&a), canonical_json(&c));
    }

    #[test]
    fn invalid_schemas_are_refused_with_a_reason() {
        let not_json = parse("{not json", &[]).unwrap_err();
        assert!(matches!(not_json, RegistryError::InvalidSchema(ref m) if m.contains("not JSON")));
        let bad_type = parse(r#"{"type": "recordz", "name": "R"}"#, &[]).unwrap_err();
        assert!(matches!(bad_type, RegistryError::InvalidSchema(ref m) if m.contains("Avro")));
        let unknown_name = parse(
            r#"{"type":"record","name":"R","fields":[{"name":"a","type":"Nope"}]}"#,
            &[],
        );
        assert!(unknown_name.is_err());
    }

    #[test]
    fn a_record_that_must_contain_itself_is_refused_but_a_linked_list_is_fine() {
        let endless = parse(
            r#"{"type":"record","name":"Node","fields":[{"name":"next","type":"Node"}]}"#,
            &[],
        )
        .unwrap_err();
        assert!(matches!(endless, RegistryError::InvalidSchema(ref m) if m.contains("Node")));
        parse(
            r#"{"type":"record","name":"Node","fields":[{"name":"next","type":["null","Node"]}]}"#,
            &[],
        )
        .unwrap();
    }

    #[test]
    fn resolution_rules_decide_what_can_be_read() {
        let v1 = schema(r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"}]}"#);
        let with_default = schema(
            r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"},
                {"name":"b","type":"string","default":""}]}"#,
        );
        let without_default = schema(
            r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"},
                {"name":"b","type":"string"}]}"#,
        );
        let promoted =
            schema(r#"{"type":"record","name":"R","fields":[{"name":"a","type":"long"}]}"#);
        assert_eq!(cannot_read(&v1, &with_default), None);
        assert!(cannot_read(&v1, &without_default).is_some());
        assert_eq!(cannot_read(&without_default, &v1), None); // extra writer fields are skipped
        assert_eq!(cannot_read(&v1, &promoted), None); // int promotes to long
        assert!(cannot_read(&promoted, &v1).is_some()); // long does not narrow to int
    }

    #[test]
    fn references_resolve_named_types_from_other_subjects() {
        let address = r#"{"type":"record","name":"Address","namespace":"x","fields":[{"name":"city","type":"string"}]}"#;
        let person = r#"{"type":"record","name":"Person","namespace":"x","fields":[{"name":"home","type":"x.Address"}]}"#;
        assert!(parse(person, &[]).is_err());
        parse(person, &[address.to_string()]).unwrap();
    }
}
