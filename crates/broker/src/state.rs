//! The broker's state: topics and their partition logs, the group coordinator, producer ids,
//! and the directory that keeps them.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use tokio::sync::Notify;

use crate::groups::{Committed, Coordinator};
use crate::log::{partition_path, PartitionLog};
use crate::{BrokerConfig, BrokerError};

/// Locks, carrying on past a panicked holder (the data is append-only and stays usable).
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

pub struct Topic {
    pub partitions: Vec<Mutex<PartitionLog>>,
    /// Configs given when the topic was created (reported back by DescribeConfigs).
    pub configs: Vec<(String, String)>,
}

/// Kafka's default `max.message.bytes`: the largest record batch a topic takes.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 1_048_588;

impl Topic {
    /// The largest record batch this topic takes (its `max.message.bytes`).
    pub fn max_message_bytes(&self) -> usize {
        self.configs
            .iter()
            .find(|(key, _)| key == "max.message.bytes")
            .and_then(|(_, value)| value.parse().ok())
            .unwrap_or(DEFAULT_MAX_MESSAGE_BYTES)
    }
}

/// A topic as [`crate::Broker::topics`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    pub name: String,
    /// Each partition's (start offset, end offset).
    pub partitions: Vec<(i64, i64)>,
    pub stored_bytes: usize,
}

pub struct State {
    pub config: BrokerConfig,
    pub host: String,
    pub port: i32,
    pub topics: RwLock<BTreeMap<String, Arc<Topic>>>,
    pub coordinator: Mutex<Coordinator>,
    /// Woken on every append, for fetches waiting for data.
    pub appended: Notify,
    next_producer_id: AtomicI64,
    offsets_file: Mutex<Option<File>>,
}

/// Kafka's rule for topic names.
pub fn valid_topic_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 249
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

fn io_error(context: String) -> impl FnOnce(std::io::Error) -> BrokerError {
    move |source| BrokerError::Io { context, source }
}

impl State {
    pub fn load(config: BrokerConfig, host: String, port: i32) -> Result<State, BrokerError> {
        let mut topics = BTreeMap::new();
        let mut coordinator = Coordinator::new(config.initial_rebalance_delay);
        let mut offsets_file = None;
        // Producer ids only need to differ from those of an earlier run on the same files.
        let first_producer_id = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_millis() as i64 * 1000);
        if let Some(root) = &config.path {
            let topics_dir = root.join("topics");
            std::fs::create_dir_all(&topics_dir)
                .map_err(io_error(format!("creating {}", topics_dir.display())))?;
            let entries = std::fs::read_dir(&topics_dir)
                .map_err(io_error(format!("reading {}", topics_dir.display())))?;
            for entry in entries {
                let entry = entry.map_err(io_error(format!("reading {}", topics_dir.display())))?;
                let name = entry.file_name().to_string_lossy().into_owned();
                if !valid_topic_name(&name) || !entry.path().is_dir() {
                    continue;
                }
                if let Some(topic) = load_topic(&entry.path())? {
                    topics.insert(name, Arc::new(topic));
                }
            }
            let offsets_path = root.join("consumer-offsets");
            if let Ok(data) = std::fs::read(&offsets_path) {
                for (group, topic, partition, committed) in read_commits(&data) {
                    coordinator
                        .offsets
                        .entry(group)
                        .or_default()
                        .insert((topic, partition), committed);
                }
            }
            offsets_file = Some(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&offsets_path)
                    .map_err(io_error(format!("opening {}", offsets_path.display())))?,
            );
        }
        Ok(State {
            config,
            host,
            port,
            topics: RwLock::new(topics),
            coordinator: Mutex::new(coordinator),
            appended: Notify::new(),
            next_producer_id: AtomicI64::new(first_producer_id),
            offsets_file: Mutex::new(offsets_file),
        })
    }

    pub fn topic(&self, name: &str) -> Option<Arc<Topic>> {
        self.topics
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    fn topic_dir(&self, name: &str) -> Option<PathBuf> {
        self.config
            .path
            .as_ref()
            .map(|root| root.join("topics").join(name))
    }

    pub fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        configs: Vec<(String, String)>,
    ) -> Result<(), BrokerError> {
        if !valid_topic_name(name) {
            return Err(BrokerError::InvalidTopic(name.to_string()));
        }
        if partitions < 1 {
            return Err(BrokerError::InvalidPartitions {
                topic: name.to_string(),
                partitions,
            });
        }
        let mut topics = self.topics.write().unwrap_or_else(|e| e.into_inner());
        if topics.contains_key(name) {
            return Err(BrokerError::TopicExists(name.to_string()));
        }
        let logs = match self.topic_dir(name) {
            None => (0..partitions)
                .map(|_| Mutex::new(PartitionLog::in_memory()))
                .collect(),
            Some(dir) => {
                std::fs::create_dir_all(&dir)
                    .map_err(io_error(format!("creating {}", dir.display())))?;
                let mut text = String::new();
                for (key, value) in &configs {
                    text.push_str(&format!("{key}={value}\n"));
                }
                std::fs::write(dir.join("configs"), text)
                    .map_err(io_error(format!("writing {}", dir.display())))?;
                let mut logs = Vec::new();
                for partition in 0..partitions {
                    logs.push(Mutex::new(PartitionLog::open(&partition_path(
                        &dir, partition,
                    ))?));
                }
                logs
            }
        };
        topics.insert(
            name.to_string(),
            Arc::new(Topic {
                partitions: logs,
                configs,
            }),
        );
        Ok(())
    }

    /// The topic, created with the default partitions first if auto-creation allows it.
    pub fn topic_or_create(&self, name: &str) -> Option<Arc<Topic>> {
        if let Some(topic) = self.topic(name) {
            return Some(topic);
        }
        if !self.config.auto_create_topics {
            return None;
        }
        match self.create_topic(name, self.config.default_partitions, Vec::new()) {
            Ok(()) | Err(BrokerError::TopicExists(_)) => self.topic(name),
            Err(_) => None,
        }
    }

    pub fn delete_topic(&self, name: &str) -> Result<(), BrokerError> {
        let removed = self
            .topics
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
        if removed.is_none() {
            return Err(BrokerError::UnknownTopic(name.to_string()));
        }
        for offsets in lock(&self.coordinator).offsets.values_mut() {
            offsets.retain(|(topic, _), _| topic != name);
        }
        if let Some(dir) = self.topic_dir(name) {
            std::fs::remove_dir_all(&dir)
                .map_err(io_error(format!("removing {}", dir.display())))?;
        }
        Ok(())
    }

    pub fn topic_infos(&self) -> Vec<TopicInfo> {
        let topics = self.topics.read().unwrap_or_else(|e| e.into_inner());
        topics
            .iter()
            .map(|(name, topic)| {
                let mut stored_bytes = 0;
                let partitions = topic
                    .partitions
                    .iter()
                    .map(|p| {
                        let log = lock(p);
                        stored_bytes += log.stored_bytes();
                        (log.start_offset(), log.end_offset())
                    })
                    .collect();
                TopicInfo {
                    name: name.clone(),
                    partitions,
                    stored_bytes,
                }
            })
            .collect()
    }

    pub fn new_producer_id(&self) -> i64 {
        self.next_producer_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Stores a group's committed offset (and appends it to the offsets file, if any).
    pub fn commit(
        &self,
        coordinator: &mut Coordinator,
        group: &str,
        topic: &str,
        partition: i32,
        committed: Committed,
    ) {
        if let Some(file) = lock(&self.offsets_file).as_mut() {
            // A failed write loses the commit on restart only; the in-memory one stands.
            let _ = file.write_all(&encode_commit(group, topic, partition, &committed));
        }
        coordinator
            .offsets
            .entry(group.to_string())
            .or_default()
            .insert((topic.to_string(), partition), committed);
    }

    pub fn flush(&self) {
        if let Some(file) = lock(&self.offsets_file).as_mut() {
            let _ = file.flush();
        }
    }
}

fn load_topic(dir: &Path) -> Result<Option<Topic>, BrokerError> {
    let mut partitions = Vec::new();
    while partition_path(dir, partitions.len() as i32).exists() {
        partitions.push(Mutex::new(PartitionLog::open(&partition_path(
            dir,
            partitions.len() as i32,
        ))?));
    }
    if partitions.is_empty() {
        return Ok(None);
    }
    let configs = std::fs::read_to_string(dir.join("configs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Ok(Some(Topic {
        partitions,
        configs,
    }))
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend((s.len() as u32).to_be_bytes());
    out.extend(s.as_bytes());
}

/// One commit as a record of the offsets file: length-prefixed strings and big-endian numbers,
/// the whole prefixed by its length so a torn last record is recognised.
fn encode_commit(group: &str, topic: &str, partition: i32, committed: &Committed) -> Vec<u8> {
    let mut body = Vec::new();
    put_str(&mut body, group);
    put_str(&mut body, topic);
    body.extend(partition.to_be_bytes());
    body.extend(committed.offset.to_be_bytes());
    match &committed.metadata {
        Some(m) => {
            body.push(1);
            put_str(&mut body, m);
        }
        None => body.push(0),
    }
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend(body);
    out
}

struct Reader<'a> {
    data: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let slice = self.data.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(slice)
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }
    fn string(&mut self) -> Option<String> {
        let n = self.u32()? as usize;
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
}

fn read_commits(data: &[u8]) -> Vec<(String, String, i32, Committed)> {
    let mut out = Vec::new();
    let mut reader = Reader { data, at: 0 };
    while let Some(length) = reader.u32() {
        let Some(body) = reader.take(length as usize) else {
            break;
        };
        let mut r = Reader { data: body, at: 0 };
        let parsed = (|| {
            let group = r.string()?;
            let topic = r.string()?;
            let partition = i32::from_be_bytes(r.take(4)?.try_into().ok()?);
            let offset = i64::from_be_bytes(r.take(8)?.try_into().ok()?);
            let metadata = match r.take(1)?[0] {
                1 => Some(r.string()?),
                _ => None,
            };
            Some((group, topic, partition, Committed { offset, metadata }))
        })();
        match parsed {
            Some(commit) => out.push(commit),
            None => break,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_read_back_and_a_torn_tail_is_ignored() {
        let first = Committed {
            offset: 42,
            metadata: Some("m".into()),
        };
        let second = Committed {
            offset: 7,
            metadata: None,
        };
        let mut data = encode_commit("g", "t", 2, &first);
        data.extend(encode_commit("g2", "t", 0, &second));
        data.extend(&encode_commit("g3", "t", 0, &second)[..9]);
        let commits = read_commits(&data);
        assert_eq!(
            commits,
            vec![
                ("g".into(), "t".into(), 2, first),
                ("g2".into(), "t".into(), 0, second)
            ]
        );
    }

    #[test]
    fn topic_names_follow_kafka() {
        assert!(valid_topic_name("credit-card_v1.2"));
        for bad in ["", ".", "..", "a/b", "ä", &"x".repeat(250)] {
            assert!(!valid_topic_name(bad), "{bad:?}");
        }
    }
}
