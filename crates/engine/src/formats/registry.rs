//! An in-process Schema Registry for the conformance runner and tests: ids are global and
//! start at 1, the same schema text under a subject keeps its id and version, a schema text
//! already known under another subject reuses its id (as Confluent's registry does).

use std::collections::HashMap;
use std::sync::Mutex;

use super::SchemaRegistry;

#[derive(Default)]
struct State {
    /// Schema text by id.
    schemas: Vec<String>,
    /// Id by schema text.
    ids: HashMap<String, i32>,
    /// Ids of each subject's versions, oldest first.
    subjects: HashMap<String, Vec<i32>>,
}

/// A Schema Registry held in memory.
#[derive(Default)]
pub struct MemoryRegistry {
    state: Mutex<State>,
}

impl MemoryRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `schema` under `subject` with a chosen id (as the corpus's `valueSchemaId`
    /// cases require); fails when the id already names another schema.
    pub fn register_with_id(&self, subject: &str, schema: &str, id: i32) -> Result<(), String> {
        if id < 1 {
            return Err(format!("Invalid schema id {id}"));
        }
        let mut state = self.lock();
        let index = (id - 1) as usize;
        if let Some(existing) = state.schemas.get(index) {
            if !existing.is_empty() && existing != schema {
                return Err(format!("Schema id {id} is already used by another schema"));
            }
        }
        if state.schemas.len() <= index {
            state.schemas.resize(index + 1, String::new());
        }
        state.schemas[index] = schema.to_string();
        state.ids.entry(schema.to_string()).or_insert(id);
        let versions = state.subjects.entry(subject.to_string()).or_default();
        if !versions.contains(&id) {
            versions.push(id);
        }
        Ok(())
    }

    /// The subjects with at least one version, sorted.
    pub fn subjects(&self) -> Vec<String> {
        let mut subjects: Vec<String> = self.lock().subjects.keys().cloned().collect();
        subjects.sort();
        subjects
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent data: every update is one step.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl SchemaRegistry for MemoryRegistry {
    fn register(&self, subject: &str, schema: &str) -> Result<i32, String> {
        let mut state = self.lock();
        let id = match state.ids.get(schema) {
            Some(id) => *id,
            None => {
                state.schemas.push(schema.to_string());
                let id = state.schemas.len() as i32;
                state.ids.insert(schema.to_string(), id);
                id
            }
        };
        let versions = state.subjects.entry(subject.to_string()).or_default();
        if !versions.contains(&id) {
            versions.push(id);
        }
        Ok(id)
    }

    fn schema_by_id(&self, id: i32) -> Result<String, String> {
        let state = self.lock();
        usize::try_from(id - 1)
            .ok()
            .and_then(|index| state.schemas.get(index))
            .filter(|schema| !schema.is_empty())
            .cloned()
            .ok_or_else(|| format!("Schema {id} not found"))
    }

    fn latest(&self, subject: &str) -> Result<Option<(i32, String)>, String> {
        let state = self.lock();
        Ok(state
            .subjects
            .get(subject)
            .and_then(|versions| versions.last())
            .map(|id| (*id, state.schemas[(*id - 1) as usize].clone())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_text_same_id_and_latest_version() {
        let registry = MemoryRegistry::new();
        let first = registry.register("t-value", "\"int\"").unwrap();
        assert_eq!(registry.register("t-value", "\"int\"").unwrap(), first);
        let second = registry.register("t-value", "\"long\"").unwrap();
        assert_ne!(first, second);
        assert_eq!(
            registry.latest("t-value").unwrap(),
            Some((second, "\"long\"".into()))
        );
        assert_eq!(registry.register("u-value", "\"int\"").unwrap(), first);
        assert_eq!(registry.schema_by_id(first).unwrap(), "\"int\"");
        assert!(registry.schema_by_id(99).is_err());
        assert_eq!(registry.latest("none").unwrap(), None);
        registry
            .register_with_id("m-value", "\"string\"", 102)
            .unwrap();
        assert_eq!(registry.schema_by_id(102).unwrap(), "\"string\"");
        assert!(registry
            .register_with_id("m-value", "\"bytes\"", 102)
            .is_err());
        assert_eq!(registry.subjects(), vec!["m-value", "t-value", "u-value"]);
    }
}
