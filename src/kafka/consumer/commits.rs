//! Commits and lag: where a commit would leave the group, committing it, and how far this
//! consumer is behind the partitions' ends.

use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use super::{ArrowConsumer, CommitPoint};
use crate::kafka::KafkaError;

impl ArrowConsumer {
    /// Messages between this consumer's positions and the ends of the partitions it is
    /// assigned now; `None` while unknown (not assigned yet, or no fetch answered yet).
    ///
    /// Uses the watermarks librdkafka caches from its fetch responses, as consumer-lag
    /// metrics do: no request to the broker (a watermark query from a busy group member
    /// timed out on the in-process cluster), and fresh for every partition being fetched.
    pub fn lag(&self) -> Option<i64> {
        let positions = self.consumer.position().ok()?;
        if positions.count() == 0 {
            return None; // not assigned yet (a group still joining): unknown, not zero
        }
        let mut total = 0;
        for element in positions.elements() {
            let (low, high) = self.cached_watermarks(element.topic(), element.partition())?;
            let key = (element.topic().to_string(), element.partition());
            let position = match element.offset() {
                Offset::Offset(o) => o,
                // Nothing consumed here yet: at its end if the fetcher said so, else unknown
                // (librdkafka caches the low watermark only with statistics on).
                _ if self.at_end.contains(&key) => high,
                _ if low >= 0 => low,
                _ => return None,
            };
            // Messages the batch poller took but did not hand out yet are not read.
            let pending = self
                .batch_poller
                .as_ref()
                .map_or(0, |p| p.pending_in(element.topic(), element.partition()));
            total += (high - position).max(0) + pending;
        }
        Some(total)
    }

    /// The (low, high) watermarks of the last fetch response, if one arrived; low is
    /// negative when unknown.
    fn cached_watermarks(&self, topic: &str, partition: i32) -> Option<(i64, i64)> {
        let topic = std::ffi::CString::new(topic).ok()?;
        let (mut low, mut high) = (-1_i64, -1_i64);
        // SAFETY: the client pointer lives as long as `self.consumer`; the call only reads
        // librdkafka's partition state into the two locals.
        let error = unsafe {
            rdkafka::bindings::rd_kafka_get_watermark_offsets(
                self.consumer.client().native_ptr(),
                topic.as_ptr(),
                partition,
                &mut low,
                &mut high,
            )
        };
        let known = error == rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR
            && high >= 0;
        known.then_some((low, high))
    }

    /// Where a commit now would leave the group: the offset after the last message handed
    /// out, per partition. A pipeline keeps it to commit later, once the batch's results
    /// are safe.
    pub fn commit_point(&self) -> CommitPoint {
        CommitPoint(self.state.handed_out.clone())
    }

    /// Commits the offsets after every message handed out so far (synchronously).
    pub fn commit(&mut self) -> Result<usize, KafkaError> {
        let point = self.commit_point();
        self.commit_at(&point, CommitMode::Sync)
    }

    /// Commits the offsets of `point`; with `CommitMode::Async` the call returns at once and
    /// a failure goes unreported (the next commit covers it).
    pub fn commit_at(
        &mut self,
        point: &CommitPoint,
        mode: CommitMode,
    ) -> Result<usize, KafkaError> {
        if self.options.group_id.is_none() {
            return Err(KafkaError::Config("commit() needs a group_id".into()));
        }
        if point.0.is_empty() {
            return Ok(0);
        }
        let mut tpl = TopicPartitionList::new();
        for ((topic, partition), next) in &point.0 {
            tpl.add_partition_offset(topic, *partition, Offset::Offset(*next))?;
        }
        self.consumer
            .commit(&tpl, mode)
            .map_err(|e| KafkaError::Client(format!("commit failed: {e}")))?;
        Ok(point.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{id_snapshot, produce_id_range, read_id_batches};
    use super::*;
    use crate::kafka::consumer::ConsumerOptions;
    use crate::kafka::local::LocalCluster;

    #[test]
    fn a_group_resumes_after_what_it_committed() {
        let cluster = LocalCluster::start(1).unwrap();
        cluster.create_topic("ids", 1).unwrap();
        produce_id_range(cluster.bootstrap_servers(), "ids", 0..50);
        let member = || {
            ArrowConsumer::new(ConsumerOptions {
                group_id: Some("g".into()),
                ..id_snapshot(cluster.bootstrap_servers(), "ids")
            })
            .unwrap()
        };
        let mut first = member();
        assert_eq!(
            read_id_batches(&mut first).unwrap().concat(),
            (0..50).collect::<Vec<i64>>()
        );
        assert_eq!(first.commit_point().0.get(&("ids".into(), 0)), Some(&50));
        assert_eq!(first.commit().unwrap(), 1);
        first.close();
        produce_id_range(cluster.bootstrap_servers(), "ids", 50..60);
        let mut second = member();
        assert_eq!(
            read_id_batches(&mut second).unwrap().concat(),
            (50..60).collect::<Vec<i64>>()
        );
        assert_eq!(second.lag(), Some(0));
    }

    #[test]
    fn committing_needs_a_group() {
        let cluster = LocalCluster::start(1).unwrap();
        cluster.create_topic("ids", 1).unwrap();
        let mut reader =
            ArrowConsumer::new(id_snapshot(cluster.bootstrap_servers(), "ids")).unwrap();
        assert!(matches!(reader.commit(), Err(KafkaError::Config(_))));
    }
}
