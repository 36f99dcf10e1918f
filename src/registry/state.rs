//! The registry's state: a deterministic function of the `_schemas` records in log order.
//!
//! Every registry on a cluster applies the same records in the same order with [`State::apply`]
//! and so holds the same state. Writers never change the state directly: they decide on a
//! record here ([`State::prepare_registration`] and friends), append it to the log, and learn
//! the outcome when it comes back through `apply`.
//!
//! Whether a claim is accepted depends only on the claims before it, never on deletions or
//! configuration, because those records are compacted (their keys are rewritten) and may move
//! later in the log, while claims are never compacted (each has a unique key). A rejected
//! claim is rejected for a reason that never goes away (its version or id was taken), so a
//! registry replaying the log years later reaches the same verdict.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use apache_avro::Schema;
use serde_json::Value;

use super::avro;
use super::record::{Record, Reference};
use super::{Compatibility, Mode, RegistryError};

/// References are followed at most this deep (a guard against cycles in foreign data).
const MAX_REFERENCE_DEPTH: usize = 64;

#[derive(Debug, Clone)]
pub struct StoredSchema {
    pub id: u32,
    /// The text as registered (or normalised, for `normalize=true`).
    pub text: String,
    pub references: Vec<Reference>,
    /// Canonical text plus references: equal identities get the same id.
    identity: String,
    /// The identity of Avro's own view of the schema, for `normalize=true` look-ups.
    normalized_identity: Option<String>,
    /// None when the text is not an Avro schema this registry can parse (a foreign record).
    parsed: Option<Arc<Schema>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Deletion {
    Live,
    Soft,
    Permanent,
}

#[derive(Debug, Clone)]
struct SubjectVersion {
    id: u32,
    deleted: Deletion,
}

#[derive(Debug, Default, Clone)]
struct Subject {
    versions: BTreeMap<u32, SubjectVersion>,
    level: Option<Compatibility>,
    mode: Option<Mode>,
}

impl Subject {
    fn versions_where(&self, include_soft: bool) -> impl Iterator<Item = (u32, &SubjectVersion)> {
        self.versions
            .iter()
            .filter(move |(_, v)| {
                v.deleted == Deletion::Live || (include_soft && v.deleted == Deletion::Soft)
            })
            .map(|(n, v)| (*n, v))
    }

    fn has_versions(&self, include_soft: bool) -> bool {
        self.versions_where(include_soft).next().is_some()
    }

    /// The next version number: versions are never reused, even permanently deleted ones.
    fn next_version(&self) -> u32 {
        self.versions.keys().next_back().map_or(1, |v| v + 1)
    }
}

/// Which version of a subject a request names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionSpec {
    Latest,
    Number(u32),
}

impl VersionSpec {
    /// `latest`, `-1` (Confluent's alias for it) or a version number from 1 to 2^31-1.
    pub fn parse(text: &str) -> Result<Self, RegistryError> {
        if text == "latest" || text == "-1" {
            return Ok(VersionSpec::Latest);
        }
        match text.parse::<u32>() {
            Ok(n) if (1..=i32::MAX as u32).contains(&n) => Ok(VersionSpec::Number(n)),
            _ => Err(RegistryError::InvalidVersion(text.to_string())),
        }
    }
}

/// A subject's version as the API shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionInfo {
    pub subject: String,
    pub version: u32,
    pub id: u32,
    pub schema: String,
    pub references: Vec<Reference>,
}

/// What a registration comes to before anything is written.
#[derive(Debug, Clone, PartialEq)]
pub enum Registration {
    /// The subject already has this schema (a live version): nothing to write.
    Existing { id: u32, version: u32 },
    /// Append this claim; `subject`/`identity` find the outcome after it is applied.
    Claim(Record),
}

/// A schema a client sent, checked and parsed against the state's references.
struct Candidate {
    text: String,
    references: Vec<Reference>,
    identity: String,
    normalized_identity: Option<String>,
    parsed: Arc<Schema>,
}

#[derive(Debug, Default, Clone)]
pub struct State {
    schemas: BTreeMap<u32, StoredSchema>,
    by_identity: HashMap<String, u32>,
    subjects: BTreeMap<String, Subject>,
    level: Compatibility,
    mode: Mode,
    max_id: u32,
    claims_rejected: u64,
}

fn identity_of(canonical: &str, references: &[Reference]) -> String {
    if references.is_empty() {
        canonical.to_string()
    } else {
        // A Vec of plain structs always serialises.
        format!(
            "{canonical}|{}",
            serde_json::to_string(references).unwrap_or_default()
        )
    }
}

impl State {
    pub fn schema_count(&self) -> usize {
        self.schemas.len()
    }

    pub fn subject_count(&self) -> usize {
        self.subjects
            .values()
            .filter(|s| s.has_versions(false))
            .count()
    }

    pub fn claims_rejected(&self) -> u64 {
        self.claims_rejected
    }

    // --- applying the log ------------------------------------------------------------------

    /// Applies one record of the log. Returns whether a claim was accepted (true for the
    /// other records).
    pub fn apply(&mut self, record: &Record) -> bool {
        match record {
            Record::Claim {
                subject,
                version,
                id,
                schema,
                references,
                ..
            } => {
                let accepted = self.apply_claim(subject, *version, *id, schema, references);
                if !accepted {
                    self.claims_rejected += 1;
                }
                accepted
            }
            Record::DeleteVersion {
                subject,
                version,
                permanent,
            } => {
                let deletion = if *permanent {
                    Deletion::Permanent
                } else {
                    Deletion::Soft
                };
                if let Some(entry) = self
                    .subjects
                    .get_mut(subject)
                    .and_then(|s| s.versions.get_mut(version))
                {
                    // Deletion only moves forward: a late soft delete never revives.
                    entry.deleted = entry.deleted.max(deletion);
                }
                true
            }
            Record::Config { subject, level } => {
                match subject {
                    Some(name) => self.subjects.entry(name.clone()).or_default().level = *level,
                    None => self.level = level.unwrap_or_default(),
                }
                true
            }
            Record::Mode { subject, mode } => {
                match subject {
                    Some(name) => self.subjects.entry(name.clone()).or_default().mode = *mode,
                    None => self.mode = mode.unwrap_or_default(),
                }
                true
            }
            Record::Noop => true,
        }
    }

    fn apply_claim(
        &mut self,
        subject: &str,
        version: u32,
        id: u32,
        text: &str,
        references: &[Reference],
    ) -> bool {
        let Ok(value) = serde_json::from_str::<Value>(text) else {
            return false;
        };
        let identity = identity_of(&avro::canonical_json(&value), references);
        if id == 0
            || self
                .by_identity
                .get(&identity)
                .is_some_and(|&known| known != id)
            || self
                .schemas
                .get(&id)
                .is_some_and(|s| s.identity != identity)
        {
            return false;
        }
        let next_version = self.subjects.get(subject).map_or(1, Subject::next_version);
        if version != next_version {
            return false;
        }
        if !self.schemas.contains_key(&id) {
            let parsed = self
                .dependencies(references)
                .ok()
                .and_then(|deps| avro::parse(text, &deps).ok())
                .map(Arc::new);
            let normalized_identity = parsed
                .as_deref()
                .and_then(|p| avro::normalized_text(p).ok())
                .map(|n| identity_of(&n, references));
            self.schemas.insert(
                id,
                StoredSchema {
                    id,
                    text: text.to_string(),
                    references: references.to_vec(),
                    identity: identity.clone(),
                    normalized_identity,
                    parsed,
                },
            );
            self.by_identity.insert(identity, id);
        }
        self.max_id = self.max_id.max(id);
        self.subjects
            .entry(subject.to_string())
            .or_default()
            .versions
            .insert(
                version,
                SubjectVersion {
                    id,
                    deleted: Deletion::Live,
                },
            );
        true
    }

    // --- schemas sent by clients --------------------------------------------------------------

    /// The texts of the named types `references` bring in (depth first, each once).
    fn dependencies(&self, references: &[Reference]) -> Result<Vec<String>, RegistryError> {
        let mut texts = Vec::new();
        let mut seen = BTreeSet::new();
        let mut path = Vec::new();
        self.collect_dependencies(references, &mut texts, &mut seen, &mut path)?;
        Ok(texts)
    }

    fn collect_dependencies(
        &self,
        references: &[Reference],
        texts: &mut Vec<String>,
        seen: &mut BTreeSet<u32>,
        path: &mut Vec<(String, u32)>,
    ) -> Result<(), RegistryError> {
        for reference in references {
            let at = (reference.subject.clone(), reference.version);
            if path.contains(&at) || path.len() >= MAX_REFERENCE_DEPTH {
                return Err(RegistryError::InvalidSchema(format!(
                    "reference {:?} (subject {:?} version {}) refers back to itself",
                    reference.name, reference.subject, reference.version
                )));
            }
            let schema = self
                .subjects
                .get(&reference.subject)
                .and_then(|s| s.versions.get(&reference.version))
                .filter(|v| v.deleted != Deletion::Permanent)
                .and_then(|v| self.schemas.get(&v.id))
                .ok_or_else(|| {
                    RegistryError::InvalidSchema(format!(
                        "reference {:?} names subject {:?} version {}, which is not registered",
                        reference.name, reference.subject, reference.version
                    ))
                })?;
            if !seen.insert(schema.id) {
                continue;
            }
            path.push(at);
            self.collect_dependencies(&schema.references, texts, seen, path)?;
            path.pop();
            texts.push(schema.text.clone());
        }
        Ok(())
    }

    fn candidate(
        &self,
        text: &str,
        references: &[Reference],
        normalize: bool,
    ) -> Result<Candidate, RegistryError> {
        let dependencies = self.dependencies(references)?;
        let parsed = avro::parse(text, &dependencies)?;
        let normalized = avro::normalized_text(&parsed)?;
        let text = if normalize {
            normalized.clone()
        } else {
            text.to_string()
        };
        // parse() succeeded, so the text is JSON.
        let value: Value = serde_json::from_str(&text)
            .map_err(|e| RegistryError::InvalidSchema(format!("the schema is not JSON: {e}")))?;
        Ok(Candidate {
            identity: identity_of(&avro::canonical_json(&value), references),
            normalized_identity: Some(identity_of(&normalized, references)),
            text,
            references: references.to_vec(),
            parsed: Arc::new(parsed),
        })
    }

    /// The live (or, with `deleted`, soft-deleted too) version of `subject` holding `candidate`.
    fn find_in_subject(
        &self,
        subject: &Subject,
        candidate: &Candidate,
        normalize: bool,
        deleted: bool,
    ) -> Option<(u32, u32)> {
        subject
            .versions_where(deleted)
            .find(|(_, v)| {
                self.schemas.get(&v.id).is_some_and(|s| {
                    s.identity == candidate.identity
                        || (normalize
                            && s.normalized_identity.is_some()
                            && s.normalized_identity == candidate.normalized_identity)
                })
            })
            .map(|(n, v)| (n, v.id))
    }

    fn effective_mode(&self, subject: &str) -> Mode {
        self.subjects
            .get(subject)
            .and_then(|s| s.mode)
            .unwrap_or(self.mode)
    }

    pub fn effective_level(&self, subject: &str) -> Compatibility {
        self.subjects
            .get(subject)
            .and_then(|s| s.level)
            .unwrap_or(self.level)
    }

    /// What registering `text` under `subject` comes to: the existing version, or the claim
    /// to append (its key unique through `claim`). Refuses invalid and incompatible schemas.
    pub fn prepare_registration(
        &self,
        claim: String,
        subject: &str,
        text: &str,
        references: &[Reference],
        normalize: bool,
    ) -> Result<Registration, RegistryError> {
        let candidate = self.candidate(text, references, normalize)?;
        let existing = self.subjects.get(subject);
        if let Some(found) =
            existing.and_then(|s| self.find_in_subject(s, &candidate, normalize, false))
        {
            return Ok(Registration::Existing {
                version: found.0,
                id: found.1,
            });
        }
        if self.effective_mode(subject) == Mode::ReadOnly {
            return Err(RegistryError::NotPermitted(format!(
                "subject {subject:?} is in READONLY mode"
            )));
        }
        let level = self.effective_level(subject);
        let problems = self.compatibility_problems(subject, None, &candidate, level);
        if !problems.is_empty() {
            return Err(RegistryError::Incompatible(format!(
                "Schema being registered is incompatible with an earlier schema for subject \
                 {subject:?} ({}): {}",
                level.as_str(),
                problems.join("; ")
            )));
        }
        let id = self
            .by_identity
            .get(&candidate.identity)
            .copied()
            .unwrap_or(self.max_id + 1);
        Ok(Registration::Claim(Record::Claim {
            claim,
            subject: subject.to_string(),
            version: existing.map_or(1, Subject::next_version),
            id,
            schema: candidate.text,
            references: candidate.references,
        }))
    }

    /// After a claim was applied: the subject's live version holding this schema, if any
    /// (ours, or an equal one another registry got in first).
    pub fn registered(
        &self,
        subject: &str,
        text: &str,
        references: &[Reference],
    ) -> Option<(u32, u32)> {
        let value: Value = serde_json::from_str(text).ok()?;
        let identity = identity_of(&avro::canonical_json(&value), references);
        let id = *self.by_identity.get(&identity)?;
        self.subjects
            .get(subject)?
            .versions_where(false)
            .find(|(_, v)| v.id == id)
            .map(|(n, v)| (n, v.id))
    }

    /// Reasons `candidate` may not join `subject` at `level` (against `only` if given).
    fn compatibility_problems(
        &self,
        subject: &str,
        only: Option<u32>,
        candidate: &Candidate,
        level: Compatibility,
    ) -> Vec<String> {
        let Some(subject) = self.subjects.get(subject) else {
            return Vec::new();
        };
        let live: Vec<(u32, u32)> = subject
            .versions_where(false)
            .map(|(n, v)| (n, v.id))
            .collect();
        let against: Vec<(u32, u32)> = match only {
            Some(version) => live.into_iter().filter(|(n, _)| *n == version).collect(),
            None if level.transitive() => live,
            None => live.last().copied().into_iter().collect(),
        };
        let mut problems = Vec::new();
        for (version, id) in against {
            let Some(existing) = self.schemas.get(&id).and_then(|s| s.parsed.clone()) else {
                continue;
            };
            let new = &candidate.parsed;
            if level.backward() {
                if let Some(reason) = avro::cannot_read(&existing, new) {
                    problems.push(format!(
                        "the new schema cannot read data written with version {version}: {reason}"
                    ));
                }
            }
            if level.forward() {
                if let Some(reason) = avro::cannot_read(new, &existing) {
                    problems.push(format!(
                        "version {version} cannot read data written with the new schema: {reason}"
                    ));
                }
            }
        }
        problems
    }

    /// `POST /compatibility/subjects/{s}/versions[/{v}]`: the reasons the schema is not
    /// compatible (empty: it is).
    pub fn check_compatibility(
        &self,
        subject: &str,
        version: Option<VersionSpec>,
        text: &str,
        references: &[Reference],
        normalize: bool,
    ) -> Result<Vec<String>, RegistryError> {
        let candidate = self.candidate(text, references, normalize)?;
        let only = match version {
            None => {
                if !self
                    .subjects
                    .get(subject)
                    .is_some_and(|s| s.has_versions(false))
                {
                    return Ok(Vec::new()); // nothing to be incompatible with
                }
                None
            }
            Some(spec) => Some(self.version(subject, spec, false)?.version),
        };
        Ok(self.compatibility_problems(subject, only, &candidate, self.effective_level(subject)))
    }

    // --- reading ---------------------------------------------------------------------------

    fn live_subject(&self, subject: &str, deleted: bool) -> Result<&Subject, RegistryError> {
        self.subjects
            .get(subject)
            .filter(|s| s.has_versions(deleted))
            .ok_or_else(|| RegistryError::SubjectNotFound(subject.to_string()))
    }

    pub fn subjects(&self, deleted: bool, prefix: &str) -> Vec<String> {
        self.subjects
            .iter()
            .filter(|(name, s)| name.starts_with(prefix) && s.has_versions(deleted))
            .map(|(name, _)| name.clone())
            .collect()
    }

    pub fn versions(&self, subject: &str, deleted: bool) -> Result<Vec<u32>, RegistryError> {
        Ok(self
            .live_subject(subject, deleted)?
            .versions_where(deleted)
            .map(|(n, _)| n)
            .collect())
    }

    pub fn version(
        &self,
        subject: &str,
        spec: VersionSpec,
        deleted: bool,
    ) -> Result<VersionInfo, RegistryError> {
        let entry = self.live_subject(subject, deleted)?;
        let not_found = || RegistryError::VersionNotFound {
            subject: subject.to_string(),
            version: spec,
        };
        let (version, id) = match spec {
            VersionSpec::Latest => entry
                .versions_where(deleted)
                .last()
                .map(|(n, v)| (n, v.id))
                .ok_or_else(not_found)?,
            VersionSpec::Number(n) => entry
                .versions_where(deleted)
                .find(|(m, _)| *m == n)
                .map(|(n, v)| (n, v.id))
                .ok_or_else(not_found)?,
        };
        let schema = self.schema(id)?;
        Ok(VersionInfo {
            subject: subject.to_string(),
            version,
            id,
            schema: schema.text.clone(),
            references: schema.references.clone(),
        })
    }

    /// `POST /subjects/{s}`: the version of `subject` that holds this schema.
    pub fn lookup(
        &self,
        subject: &str,
        text: &str,
        references: &[Reference],
        normalize: bool,
        deleted: bool,
    ) -> Result<VersionInfo, RegistryError> {
        let entry = self.live_subject(subject, deleted)?;
        let candidate = self.candidate(text, references, normalize)?;
        let (version, _) = self
            .find_in_subject(entry, &candidate, normalize, deleted)
            .ok_or_else(|| RegistryError::SchemaNotFound(format!("in subject {subject:?}")))?;
        self.version(subject, VersionSpec::Number(version), deleted)
    }

    pub fn schema(&self, id: u32) -> Result<&StoredSchema, RegistryError> {
        self.schemas
            .get(&id)
            .ok_or_else(|| RegistryError::SchemaNotFound(format!("id {id}")))
    }

    /// The (subject, version) pairs that hold schema `id`.
    pub fn usages(&self, id: u32, deleted: bool) -> Result<Vec<(String, u32)>, RegistryError> {
        self.schema(id)?;
        Ok(self
            .subjects
            .iter()
            .flat_map(|(name, s)| {
                s.versions_where(deleted)
                    .filter(|(_, v)| v.id == id)
                    .map(move |(n, _)| (name.clone(), n))
            })
            .collect())
    }

    pub fn level(
        &self,
        subject: Option<&str>,
        default_to_global: bool,
    ) -> Result<Compatibility, RegistryError> {
        match subject {
            None => Ok(self.level),
            Some(name) => match self.subjects.get(name).and_then(|s| s.level) {
                Some(level) => Ok(level),
                None if default_to_global => Ok(self.level),
                None => Err(RegistryError::SubjectLevelNotFound(name.to_string())),
            },
        }
    }

    pub fn mode(&self, subject: Option<&str>) -> Mode {
        match subject {
            None => self.mode,
            Some(name) => self.effective_mode(name),
        }
    }

    pub fn max_id(&self) -> u32 {
        self.max_id
    }

    // --- deleting --------------------------------------------------------------------------

    /// Live versions of other subjects whose references use `subject` (at `version`, or any).
    fn referenced_by(&self, subject: &str, version: Option<u32>) -> Vec<String> {
        let mut users = Vec::new();
        for (name, s) in &self.subjects {
            for (n, v) in s.versions_where(false) {
                let Some(schema) = self.schemas.get(&v.id) else {
                    continue;
                };
                if schema.references.iter().any(|r| {
                    r.subject == subject && version.is_none_or(|wanted| r.version == wanted)
                }) {
                    users.push(format!("{name} version {n}"));
                }
            }
        }
        users
    }

    /// The records deleting `subject` (soft, or permanently after a soft delete) and the
    /// versions they delete.
    pub fn prepare_subject_deletion(
        &self,
        subject: &str,
        permanent: bool,
    ) -> Result<(Vec<Record>, Vec<u32>), RegistryError> {
        let entry = self
            .subjects
            .get(subject)
            .filter(|s| s.has_versions(true))
            .ok_or_else(|| RegistryError::SubjectNotFound(subject.to_string()))?;
        let (wanted, mut records) = if permanent {
            if entry.has_versions(false) {
                return Err(RegistryError::SubjectNotSoftDeleted(subject.to_string()));
            }
            let clear = entry.level.map(|_| Record::Config {
                subject: Some(subject.to_string()),
                level: None,
            });
            (Deletion::Soft, clear.into_iter().collect::<Vec<_>>())
        } else {
            if !entry.has_versions(false) {
                return Err(RegistryError::SubjectSoftDeleted(subject.to_string()));
            }
            let users = self.referenced_by(subject, None);
            if !users.is_empty() {
                return Err(RegistryError::ReferenceExists(format!(
                    "subject {subject:?} is referenced by {}",
                    users.join(", ")
                )));
            }
            (Deletion::Live, Vec::new())
        };
        let versions: Vec<u32> = entry
            .versions
            .iter()
            .filter(|(_, v)| v.deleted == wanted)
            .map(|(n, _)| *n)
            .collect();
        records.extend(versions.iter().map(|&version| Record::DeleteVersion {
            subject: subject.to_string(),
            version,
            permanent,
        }));
        Ok((records, versions))
    }

    /// The record deleting one version (soft, or permanently after a soft delete).
    pub fn prepare_version_deletion(
        &self,
        subject: &str,
        spec: VersionSpec,
        permanent: bool,
    ) -> Result<(Record, u32), RegistryError> {
        let entry = self
            .subjects
            .get(subject)
            .filter(|s| s.has_versions(true))
            .ok_or_else(|| RegistryError::SubjectNotFound(subject.to_string()))?;
        let not_found = || RegistryError::VersionNotFound {
            subject: subject.to_string(),
            version: spec,
        };
        let (version, state) = match spec {
            // Confluent: "latest" is the newest live version (or soft-deleted one, when
            // deleting permanently).
            VersionSpec::Latest => entry
                .versions_where(permanent)
                .last()
                .map(|(n, v)| (n, v.deleted))
                .ok_or_else(not_found)?,
            VersionSpec::Number(n) => entry
                .versions
                .get(&n)
                .map(|v| (n, v.deleted))
                .ok_or_else(not_found)?,
        };
        match (state, permanent) {
            (Deletion::Permanent, _) => return Err(not_found()),
            (Deletion::Soft, false) => {
                return Err(RegistryError::VersionSoftDeleted {
                    subject: subject.to_string(),
                    version,
                })
            }
            (Deletion::Live, true) => {
                return Err(RegistryError::VersionNotSoftDeleted {
                    subject: subject.to_string(),
                    version,
                })
            }
            (Deletion::Live, false) => {
                let users = self.referenced_by(subject, Some(version));
                if !users.is_empty() {
                    return Err(RegistryError::ReferenceExists(format!(
                        "subject {subject:?} version {version} is referenced by {}",
                        users.join(", ")
                    )));
                }
            }
            (Deletion::Soft, true) => {}
        }
        Ok((
            Record::DeleteVersion {
                subject: subject.to_string(),
                version,
                permanent,
            },
            version,
        ))
    }
}

#[cfg(test)]
mod tests;
