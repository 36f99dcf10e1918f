//! Partition planning and stop positions: which partitions a consumer reads, where each
//! starts (earliest, latest, offsets, a time) and where it stops (never, the end offsets
//! taken at start, a time), and when the whole read is finished.

use std::collections::HashMap;

use rdkafka::consumer::Consumer;
use rdkafka::{Offset, TopicPartitionList};

use super::options::{StartAt, StopAt};
use super::{now_ms, ArrowConsumer, PartitionKey};
use crate::kafka::local::is_local_bootstrap;
use crate::kafka::KafkaError;

#[derive(Debug, Clone)]
pub(super) struct PartitionProgress {
    /// Where reading stops (exclusive) for `StopAt::End`.
    pub(super) end: i64,
    /// The high watermark when the read started: an end-of-partition event below it is
    /// not trusted (a fresh broker can report one before the data is visible).
    pub(super) high_at_start: i64,
    /// The next offset to read, as far as known (-1: the group decides).
    pub(super) next: i64,
    /// Caught up with the partition's end (until the next message arrives).
    pub(super) at_eof: bool,
    pub(super) done: bool,
}

impl ArrowConsumer {
    /// Looks the topics up, takes the watermarks, and assigns or subscribes.
    pub(super) fn start(&mut self) -> Result<(), KafkaError> {
        let timeout = self.options.timeout;
        let local = is_local_bootstrap(&self.options.bootstrap);
        let mut start_positions = TopicPartitionList::new();
        let mut high_watermarks: HashMap<PartitionKey, i64> = HashMap::new();
        for topic in self.options.topics.clone() {
            let metadata = self
                .consumer
                .fetch_metadata(Some(&topic), timeout)
                .map_err(|e| self.unreachable(e))?;
            let topic_meta = metadata
                .topics()
                .iter()
                .find(|t| t.name() == topic)
                .ok_or_else(|| self.unreachable("no metadata returned"))?;
            if topic_meta.error().is_some() || topic_meta.partitions().is_empty() {
                let hint = self.unknown_topic_hint(&topic);
                return Err(KafkaError::UnknownTopic {
                    topic,
                    bootstrap: self.options.bootstrap.clone(),
                    hint,
                });
            }
            for partition in topic_meta.partitions() {
                let id = partition.id();
                let (low, high) = self
                    .consumer
                    .fetch_watermarks(&topic, id, timeout)
                    .map_err(|e| self.unreachable(e))?;
                if local && low > 0 && matches!(self.options.start, StartAt::Earliest) {
                    self.warnings.push(format!(
                        "LocalKafka(engine=\"mock\") dropped the oldest {low} messages of {topic}[{id}]: it keeps \
                         only the newest ~100,000 messages / 5 MiB per partition; use more partitions, \
                         LocalKafka() (which keeps every message) or a real broker"
                    ));
                }
                let start = match &self.options.start {
                    StartAt::Earliest => low,
                    StartAt::Latest => high,
                    StartAt::Offsets(offsets) => {
                        let wanted = *offsets.get(&id).unwrap_or(&low);
                        if wanted < low {
                            self.warnings.push(format!(
                                "{topic}[{id}] starts at offset {low}: offsets {wanted}..{low} are gone (retention)"
                            ));
                        }
                        wanted.clamp(low, high)
                    }
                    StartAt::Time(_) => low, // replaced below by offsets_for_times
                };
                start_positions.add_partition_offset(&topic, id, Offset::Offset(start))?;
                let end = match self.options.stop {
                    StopAt::End => high,
                    _ => i64::MAX,
                };
                self.progress.insert(
                    (topic.clone(), id),
                    PartitionProgress {
                        end,
                        high_at_start: high,
                        next: -1,
                        at_eof: false,
                        done: false,
                    },
                );
                high_watermarks.insert((topic.clone(), id), high);
            }
        }

        if let StartAt::Time(ms) = self.options.start {
            if local {
                return Err(KafkaError::Unsupported(
                    "LocalKafka(engine=\"mock\") cannot look up offsets by time (librdkafka's mock cluster \
                     ignores timestamps); start by offset, or use LocalKafka() or a real broker"
                        .into(),
                ));
            }
            let mut query = TopicPartitionList::new();
            for (topic, id) in self.progress.keys() {
                query.add_partition_offset(topic, *id, Offset::Offset(ms))?;
            }
            let found = self
                .consumer
                .offsets_for_times(query, timeout)
                .map_err(|e| self.unreachable(e))?;
            for element in found.elements() {
                // No message at or after the time: start at the end of the partition, as an
                // offset (the high watermark taken above), so that `stop="end"` sees the
                // partition is already done instead of waiting for a message forever.
                let key = (element.topic().to_string(), element.partition());
                if let Err(error) = element.error() {
                    return Err(KafkaError::Client(format!(
                        "looking up the offset for the start time in {}[{}] failed: {error}",
                        key.0, key.1
                    )));
                }
                let offset = match element.offset() {
                    Offset::Offset(o) => Offset::Offset(o),
                    _ => match high_watermarks.get(&key) {
                        Some(high) => Offset::Offset(*high),
                        None => Offset::End,
                    },
                };
                start_positions.set_partition_offset(
                    element.topic(),
                    element.partition(),
                    offset,
                )?;
            }
        }

        if self.is_subscribed() {
            // A real group member: committed offsets win, partitions are shared with the group.
            if self.options.stop == StopAt::End {
                self.mark_already_done_from_committed(&start_positions)?;
            }
            let topics: Vec<&str> = self.options.topics.iter().map(String::as_str).collect();
            self.consumer.subscribe(&topics)?;
        } else {
            for element in start_positions.elements() {
                if let Offset::Offset(start) = element.offset() {
                    let key = (element.topic().to_string(), element.partition());
                    if let Some(progress) = self.progress.get_mut(&key) {
                        progress.next = start;
                    }
                    self.mark_done_if_at_end(&key, start);
                }
            }
            if self.options.stop == StopAt::End {
                let size = self
                    .progress
                    .values()
                    .map(|p| (p.end - p.next).max(0))
                    .sum();
                self.snapshot_size = Some(size);
            }
            if self.options.ordered {
                let mut queue: Vec<(PartitionKey, i64)> = start_positions
                    .elements()
                    .iter()
                    .filter_map(|e| match e.offset() {
                        Offset::Offset(o) => Some(((e.topic().to_string(), e.partition()), o)),
                        _ => None,
                    })
                    .collect();
                queue.sort();
                self.ordered_queue = queue.into();
                self.assign_next_ordered()?;
            } else {
                self.consumer.assign(&start_positions)?;
            }
        }
        self.check_finished();
        Ok(())
    }

    /// What to do about a topic that does not exist: the closest existing name, or what
    /// topics there are.
    fn unknown_topic_hint(&self, topic: &str) -> String {
        let Ok(metadata) = self.consumer.fetch_metadata(None, self.options.timeout) else {
            return String::new();
        };
        let mut names: Vec<&str> = metadata
            .topics()
            .iter()
            .map(|t| t.name())
            .filter(|name| !name.starts_with("__"))
            .collect();
        names.sort_unstable();
        if let Some(close) = closest_name(topic, &names) {
            return format!("; did you mean {close:?}?");
        }
        match names.len() {
            0 => "; the cluster has no topics yet: write to it first (write_topic creates the topic) \
                  or create it"
                .into(),
            1..=20 => format!("; its topics: {}", names.join(", ")),
            n => format!("; it has {n} other topics"),
        }
    }

    /// A group member without an explicit start subscribes (the group assigns partitions and
    /// committed offsets win); every other reader assigns its partitions itself.
    pub(super) fn is_subscribed(&self) -> bool {
        let explicit_start = matches!(self.options.start, StartAt::Offsets(_) | StartAt::Time(_));
        self.options.group_id.is_some() && !explicit_start
    }

    /// With a group, reading starts at the committed offsets; partitions already committed
    /// up to their end have nothing to read.
    fn mark_already_done_from_committed(
        &mut self,
        positions: &TopicPartitionList,
    ) -> Result<(), KafkaError> {
        let committed = self
            .consumer
            .committed_offsets(positions.clone(), self.options.timeout)
            .map_err(|e| self.unreachable(e))?;
        for element in committed.elements() {
            let key = (element.topic().to_string(), element.partition());
            let start = match element.offset() {
                Offset::Offset(o) => o,
                _ => match positions
                    .find_partition(element.topic(), element.partition())
                    .map(|p| p.offset())
                {
                    Some(Offset::Offset(o)) => o,
                    _ => continue,
                },
            };
            self.mark_done_if_at_end(&key, start);
        }
        Ok(())
    }

    /// Ordered reads: once the current partition is done, assign the next one not done.
    pub(super) fn assign_next_ordered(&mut self) -> Result<(), KafkaError> {
        if let Some(current) = &self.ordered_current {
            if !self.progress.get(current).is_some_and(|p| p.done) {
                return Ok(());
            }
        }
        self.ordered_current = None;
        while let Some((key, start)) = self.ordered_queue.pop_front() {
            if self.progress.get(&key).is_some_and(|p| p.done) {
                continue;
            }
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition_offset(&key.0, key.1, Offset::Offset(start))?;
            self.consumer.assign(&tpl)?;
            self.ordered_current = Some(key);
            break;
        }
        Ok(())
    }

    /// Is the reading of what is assigned now over? (In ordered mode: the current partition.)
    fn assigned_done(&self) -> bool {
        assigned_done(&self.progress, &self.ordered_current)
    }

    fn mark_done_if_at_end(&mut self, key: &PartitionKey, next_offset: i64) {
        if let Some(progress) = self.progress.get_mut(key) {
            if next_offset >= progress.end {
                progress.done = true;
            }
        }
    }

    /// Finished when a stop is set and every partition this consumer reads is done.
    pub(super) fn check_finished(&mut self) {
        if self.options.stop == StopAt::Never || self.finished {
            return;
        }
        if self.ordered_current.is_some() {
            // Ordered reads finish with the last partition of the queue, not the current one.
            let is_done = |key: &PartitionKey| self.progress.get(key).is_none_or(|p| p.done);
            self.finished =
                self.assigned_done() && self.ordered_queue.iter().all(|(key, _)| is_done(key));
            return;
        }
        let assigned: Vec<PartitionKey> = match self.consumer.assignment() {
            Ok(tpl) => tpl
                .elements()
                .iter()
                .map(|e| (e.topic().to_string(), e.partition()))
                .collect(),
            Err(_) => return,
        };
        let keys: Vec<&PartitionKey> = if assigned.is_empty() {
            // Not yet assigned by the group: finished only if nothing at all is left.
            self.progress.keys().collect()
        } else {
            assigned.iter().collect()
        };
        self.finished = keys
            .iter()
            .all(|k| self.progress.get(*k).is_none_or(|p| p.done));
    }

    /// On end-of-partition, partitions whose position reached their end are done.
    pub(super) fn on_partition_eof(&mut self, partition: i32) {
        let positions = match self.consumer.position() {
            Ok(p) => p,
            Err(_) => return,
        };
        for element in positions.elements() {
            if element.partition() != partition {
                continue;
            }
            let key = (element.topic().to_string(), partition);
            match (self.options.stop, element.offset()) {
                (StopAt::End, Offset::Offset(o)) => self.mark_done_if_at_end(&key, o),
                // Reached the end and the stop time has passed: nothing more can come before it.
                (StopAt::Time(_), position) => {
                    if let Some(p) = self.progress.get_mut(&key) {
                        let position = match position {
                            Offset::Offset(o) => o.max(p.next),
                            _ => p.next,
                        };
                        p.at_eof = position >= p.high_at_start;
                    }
                }
                _ => {}
            }
            // A single topic has one partition with this number: the EOF is unambiguous.
            if self.options.topics.len() == 1 && self.options.stop == StopAt::End {
                let handed = self.state.handed_out.get(&key).copied();
                if let (Some(p), Some(next)) = (self.progress.get_mut(&key), handed) {
                    // transactional control records can hide the last offsets
                    p.done |= next >= p.end - 1;
                }
            }
        }
        self.check_finished();
    }

    /// A stop time that has passed ends every partition that is caught up: nothing earlier
    /// can arrive there any more.
    pub(super) fn apply_time_stop(&mut self) {
        if let StopAt::Time(stop_ms) = self.options.stop {
            if now_ms() >= stop_ms {
                for progress in self.progress.values_mut() {
                    progress.done |= progress.at_eof;
                }
                self.check_finished();
            }
        }
    }
}

/// The name in `names` closest to `wanted` when it is close enough to be a typo: the same
/// but for case, or at most a third of its letters apart (edits, a swap counting as one).
fn closest_name<'n>(wanted: &str, names: &[&'n str]) -> Option<&'n str> {
    let lower = wanted.to_lowercase();
    if let Some(same) = names.iter().find(|n| n.to_lowercase() == lower) {
        return Some(same);
    }
    let limit = (wanted.chars().count() / 3).max(1);
    names
        .iter()
        .map(|name| (edit_distance(&lower, &name.to_lowercase()), *name))
        .filter(|(distance, _)| *distance <= limit)
        .min()
        .map(|(_, name)| name)
}

/// Edit distance over characters, a swap of two neighbours counting as one edit (optimal
/// string alignment): "creditcrad" is one edit from "creditcard".
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut rows = vec![vec![0; b.len() + 1]; a.len() + 1];
    for (i, row) in rows.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in rows[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (rows[i - 1][j] + 1)
                .min(rows[i][j - 1] + 1)
                .min(rows[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(rows[i - 2][j - 2] + 1);
            }
            rows[i][j] = best;
        }
    }
    rows[a.len()][b.len()]
}

/// Is the reading of what is assigned now over? (In ordered mode: the current partition.)
pub(super) fn assigned_done(
    progress: &HashMap<PartitionKey, PartitionProgress>,
    ordered_current: &Option<PartitionKey>,
) -> bool {
    match ordered_current {
        Some(current) => progress.get(current).is_none_or(|p| p.done),
        None => progress.values().all(|p| p.done),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::super::test_support::{id_snapshot, produce_ids, read_id_batches};
    use super::*;
    use crate::kafka::consumer::ConsumerOptions;
    use crate::kafka::local::LocalCluster;

    fn cluster_with_ids() -> LocalCluster {
        let cluster = LocalCluster::start(1).unwrap();
        cluster.create_topic("ids", 3).unwrap();
        produce_ids(
            cluster.bootstrap_servers(),
            "ids",
            &[0..100, 100..250, 250..300],
        );
        cluster
    }

    #[test]
    fn ordered_snapshots_read_partition_after_partition_and_know_their_size() {
        let cluster = cluster_with_ids();
        let mut consumer = ArrowConsumer::new(ConsumerOptions {
            ordered: true,
            ..id_snapshot(cluster.bootstrap_servers(), "ids")
        })
        .unwrap();
        assert_eq!(consumer.snapshot_size(), Some(300));
        let ids = read_id_batches(&mut consumer).unwrap().concat();
        assert_eq!(ids, (0..300).collect::<Vec<i64>>());
        assert!(consumer.is_finished());
    }

    #[test]
    fn explicit_offsets_start_each_partition_there_and_are_clamped_to_its_end() {
        let cluster = cluster_with_ids();
        let offsets = HashMap::from([(0, 90), (1, 1_000)]); // partition 2 from its start
        let mut consumer = ArrowConsumer::new(ConsumerOptions {
            start: StartAt::Offsets(offsets),
            ordered: true,
            ..id_snapshot(cluster.bootstrap_servers(), "ids")
        })
        .unwrap();
        assert_eq!(consumer.snapshot_size(), Some(10 + 50));
        let ids = read_id_batches(&mut consumer).unwrap().concat();
        let expected: Vec<i64> = (90..100).chain(250..300).collect();
        assert_eq!(ids, expected);
    }

    #[test]
    fn a_snapshot_from_the_latest_offsets_is_empty_and_finished_at_once() {
        let cluster = cluster_with_ids();
        let mut consumer = ArrowConsumer::new(ConsumerOptions {
            start: StartAt::Latest,
            ..id_snapshot(cluster.bootstrap_servers(), "ids")
        })
        .unwrap();
        assert!(consumer.is_finished());
        assert!(read_id_batches(&mut consumer).unwrap().is_empty());
    }

    #[test]
    fn close_names_are_suggested_and_far_ones_are_not() {
        let names = ["creditcard", "payments", "sensors"];
        assert_eq!(closest_name("creditcrad", &names), Some("creditcard"));
        assert_eq!(closest_name("CREDITCARD", &names), Some("creditcard"));
        assert_eq!(closest_name("sensor", &names), Some("sensors"));
        assert_eq!(closest_name("orders", &names), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("isd", "ids"), 1);
    }

    #[test]
    fn an_unknown_topic_and_a_time_start_on_the_mock_are_errors() {
        let cluster = cluster_with_ids();
        let unknown = ArrowConsumer::new(id_snapshot(cluster.bootstrap_servers(), "nope"));
        assert!(matches!(unknown, Err(KafkaError::UnknownTopic { .. })));
        let typo = ArrowConsumer::new(id_snapshot(cluster.bootstrap_servers(), "isd")).err();
        let message = typo.map(|e| e.to_string()).unwrap_or_default();
        assert!(message.contains("did you mean \"ids\"?"), "{message}");
        let by_time = ArrowConsumer::new(ConsumerOptions {
            start: StartAt::Time(0),
            ..id_snapshot(cluster.bootstrap_servers(), "ids")
        });
        assert!(matches!(by_time, Err(KafkaError::Unsupported(_))));
    }
}
