//! What the consumer parts' tests share: topics written on an in-process cluster, and
//! options for reading them.

use std::sync::Arc;
use std::time::Duration;

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

use super::{ArrowConsumer, ConsumerOptions, ReadFormat, StopAt};
use crate::kafka::KafkaError;

/// Writes each value to its partition (`values[p]` to partition p).
pub fn produce(bootstrap: &str, topic: &str, values: &[Vec<String>]) {
    let producer: BaseProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    for (partition, values) in values.iter().enumerate() {
        for value in values {
            let record = BaseRecord::<(), _>::to(topic)
                .partition(partition as i32)
                .payload(value);
            producer.send(record).map_err(|(e, _)| e).unwrap();
            producer.poll(Duration::ZERO);
        }
    }
    producer.flush(Duration::from_secs(10)).unwrap();
}

/// Writes `{"id": i}` for the ids of each partition's range.
pub fn produce_ids(bootstrap: &str, topic: &str, partitions: &[std::ops::Range<i64>]) {
    let values: Vec<Vec<String>> = partitions
        .iter()
        .map(|ids| ids.clone().map(|id| format!("{{\"id\": {id}}}")).collect())
        .collect();
    produce(bootstrap, topic, &values);
}

/// `produce_ids` into a one-partition topic.
pub fn produce_id_range(bootstrap: &str, topic: &str, ids: std::ops::Range<i64>) {
    produce_ids(bootstrap, topic, std::slice::from_ref(&ids));
}

/// The schema of `produce_ids`' messages.
pub fn id_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true)]))
}

/// A snapshot read (`stop="end"`) of `topic`'s ids.
pub fn id_snapshot(bootstrap: &str, topic: &str) -> ConsumerOptions {
    ConsumerOptions {
        stop: StopAt::End,
        ..ConsumerOptions::new(
            bootstrap,
            [topic],
            ReadFormat::Json {
                schema: Some(id_schema()),
                parse_dates: Vec::new(),
            },
        )
    }
}

/// Every batch's `id` column (the first), batch by batch, until the stop.
pub fn read_id_batches(consumer: &mut ArrowConsumer) -> Result<Vec<Vec<i64>>, KafkaError> {
    let never = &mut || false;
    let mut batches = Vec::new();
    while let Some(batch) = consumer.next_batch(never)? {
        let ids = batch.column(0).as_primitive::<Int64Type>();
        batches.push(ids.values().to_vec());
    }
    Ok(batches)
}
