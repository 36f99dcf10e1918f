//! The ceiling for consuming: librdkafka polls every message of a topic from the start to
//! the end offsets and touches its payload, decoding nothing. Used by benchmarks/.
//!
//!     cargo run --release --no-default-features --example raw_consume -- BOOTSTRAP TOPIC

use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

const BATCH: usize = 256;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (bootstrap, topic) = match args.as_slice() {
        [_, b, t] => (b.clone(), t.clone()),
        _ => return Err("usage: raw_consume BOOTSTRAP TOPIC".into()),
    };
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", "kafkaml-raw-ceiling")
        .set("enable.auto.commit", "false")
        .set("queued.max.messages.kbytes", "65536")
        .create()?;
    let timeout = Duration::from_secs(10);
    let metadata = consumer.fetch_metadata(Some(&topic), timeout)?;
    let mut assignment = TopicPartitionList::new();
    let mut remaining = 0i64;
    let mut ends = Vec::new();
    for partition in metadata.topics()[0].partitions() {
        let (low, high) = consumer.fetch_watermarks(&topic, partition.id(), timeout)?;
        assignment.add_partition_offset(&topic, partition.id(), Offset::Offset(low))?;
        remaining += high - low;
        ends.push(high);
    }
    let started = Instant::now();
    let cpu_before = cpu_seconds();
    consumer.assign(&assignment)?;
    let (mut messages, mut bytes) = (0u64, 0u64);
    let batch = std::env::var("RAW_PER_MESSAGE").is_err();
    if batch {
        // librdkafka's batch API: one lock and a few clock reads per batch, not per message.
        // Safety: the queue reference is released below; each message is destroyed after use.
        let queue = unsafe {
            rdkafka::bindings::rd_kafka_queue_get_consumer(consumer.client().native_ptr())
        };
        let mut polled: Vec<*mut rdkafka::bindings::rd_kafka_message_t> =
            vec![std::ptr::null_mut(); BATCH];
        while remaining > 0 {
            let mut count = unsafe {
                rdkafka::bindings::rd_kafka_consume_batch_queue(
                    queue,
                    0,
                    polled.as_mut_ptr(),
                    BATCH,
                )
            };
            if count <= 0 {
                count = unsafe {
                    rdkafka::bindings::rd_kafka_consume_batch_queue(
                        queue,
                        100,
                        polled.as_mut_ptr(),
                        1,
                    )
                };
            }
            for &message in &polled[..count.max(0) as usize] {
                let m = unsafe { &*message };
                if m.err == rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR
                    && m.offset < ends[m.partition as usize]
                {
                    bytes += m.len as u64;
                    messages += 1;
                    remaining -= 1;
                }
                unsafe { rdkafka::bindings::rd_kafka_message_destroy(message) };
            }
        }
        unsafe { rdkafka::bindings::rd_kafka_queue_destroy(queue) };
    }
    while !batch && remaining > 0 {
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(100)) {
            if message.offset() < ends[message.partition() as usize] {
                bytes += message.payload().map_or(0, |p| p.len()) as u64;
                messages += 1;
                remaining -= 1;
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu_before;
    println!(
        "{{\"messages\": {messages}, \"bytes\": {bytes}, \"seconds\": {seconds}, \"cpu_seconds\": {cpu}}}"
    );
    Ok(())
}

/// CPU time (user + system, all threads) this process has used so far.
fn cpu_seconds() -> f64 {
    // Safety: getrusage only writes the struct it is given.
    let usage = unsafe {
        let mut usage = std::mem::zeroed::<libc::rusage>();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}
