//! The engine on a Kafka cluster: topic administration, writing records, the threads that run
//! persistent queries (a consumer group per query, offsets committed after the sink's acks), the
//! readers behind push queries, and the command topic that makes statements survive a restart.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::ClientContext;
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::DeliveryResult;
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

use kafkaml_engine::engine::{Cluster, PersistentQuery, QueryRuntime};
use kafkaml_engine::topology::{InputRecord, OutputRecord, StreamTopology};

use crate::kafka::config::{client_config, QuietContext};
use crate::kafka::local::is_local_bootstrap;

/// How long admin requests and acknowledgements may take.
const TIMEOUT: Duration = Duration::from_secs(30);
/// How long a query thread blocks in one poll (also how soon it notices a stop).
const POLL: Duration = Duration::from_millis(100);
/// The most records a query processes between commits.
const BATCH: usize = 10_000;
/// How long a persistent query's batch gathers records once the first arrived (a push query,
/// where latency counts, gathers for `PUSH_GATHER`).
const GATHER: Duration = Duration::from_millis(30);
const PUSH_GATHER: Duration = Duration::from_millis(2);

/// Producer settings shared by sinks and INSERT VALUES: Java's partitioner, so a key lands in
/// the partition Kafka Streams would choose; acknowledged by all replicas.
fn producer_config(bootstrap: &str, user: &[(String, String)]) -> rdkafka::ClientConfig {
    client_config(
        bootstrap,
        &[
            ("partitioner", "murmur2_random".into()),
            ("acks", "all".into()),
            ("linger.ms", "5".into()),
            ("message.timeout.ms", TIMEOUT.as_millis().to_string()),
        ],
        user,
    )
}

/// Every reader here: once librdkafka's fetch queue is full it postpones fetching by
/// `fetch.queue.backoff.ms`, 1 s by default. A query drains the queue faster than that: a CSAS
/// over 1M records sat idle ~0.4 s of every 1.1 s (and ran at half its rate).
fn short_fetch_backoff() -> (&'static str, String) {
    ("fetch.queue.backoff.ms", "10".into())
}

/// How many batches a persistent query may have written and not yet seen acknowledged: it reads
/// and processes the next batch while the sink acknowledges the earlier ones.
const MAX_PENDING: usize = 3;
/// Delivery report counters, one per batch in flight (a record's opaque is its batch's slot).
/// More than `MAX_PENDING`, so a slot is reused only after its batch was committed.
const SLOTS: usize = 8;

/// Counts delivery reports per batch slot and failed deliveries (librdkafka reports a failure
/// only to this callback). Counting per batch, not in total, matters because partitions report
/// in their own order: a later batch's reports may arrive before an earlier batch's.
#[derive(Default)]
pub struct Deliveries {
    failed: AtomicU64,
    last_error: Mutex<Option<String>>,
    reported: [AtomicU64; SLOTS],
}

impl ClientContext for Deliveries {
    fn log(&self, _: rdkafka::config::RDKafkaLogLevel, _: &str, _: &str) {}
    fn error(&self, _: rdkafka::error::KafkaError, _: &str) {}
}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = usize;
    fn delivery(&self, result: &DeliveryResult<'_>, slot: usize) {
        if let Err((error, _)) = result {
            self.failed.fetch_add(1, Ordering::Relaxed);
            *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(error.to_string());
        }
        self.reported[slot % SLOTS].fetch_add(1, Ordering::AcqRel);
    }
}

impl Deliveries {
    fn reported(&self, slot: usize) -> u64 {
        self.reported[slot % SLOTS].load(Ordering::Acquire)
    }

    /// An error when any record failed since the failure count was `before`.
    fn check(&self, before: u64, what: &str) -> Result<(), String> {
        let failed = self.failed.load(Ordering::Relaxed);
        if failed > before {
            let last = self
                .last_error
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone()
                .unwrap_or_default();
            return Err(format!(
                "{what}: {} record(s) were not written: {last}",
                failed - before
            ));
        }
        Ok(())
    }
}

/// Waits until `slot` has `count` delivery reports, checking for failures since `before`.
/// (Not `flush`: rust-rdkafka's flush waits in 100 ms steps, which capped a query at one
/// batch per 100 ms.)
fn wait_for_reports(
    producer: &ThreadedProducer<Deliveries>,
    slot: usize,
    count: u64,
    before: u64,
    what: &str,
    timeout: Duration,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    let context = producer.context();
    while context.reported(slot) < count {
        context.check(before, what)?;
        if Instant::now() >= deadline {
            return Err(format!(
                "{what}: Kafka did not acknowledge within {timeout:?}"
            ));
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    context.check(before, what)
}

/// Queues `records` on a producer used from one thread at a time and waits for their acks.
fn write_and_wait(
    producer: &ThreadedProducer<Deliveries>,
    records: &[OutputRecord],
    what: &str,
) -> Result<(), String> {
    let (before, reported) = (
        producer.context().failed.load(Ordering::Relaxed),
        producer.context().reported(0),
    );
    for record in records {
        produce_one(producer, record, 0)?;
    }
    wait_for_reports(
        producer,
        0,
        reported + records.len() as u64,
        before,
        what,
        TIMEOUT,
    )
}

/// The cluster the engine administers and writes INSERT VALUES rows to.
pub struct KafkaCluster {
    bootstrap: String,
    config: Vec<(String, String)>,
    admin: AdminClient<DefaultClientContext>,
    metadata: BaseConsumer<QuietContext>,
    producer: ThreadedProducer<Deliveries>,
    /// INSERT VALUES statements write one at a time (they wait on one report counter).
    insert_lock: Mutex<()>,
    runtime: tokio::runtime::Runtime,
}

impl KafkaCluster {
    pub fn connect(bootstrap: &str, config: &[(String, String)]) -> Result<Self, String> {
        let admin = client_config(bootstrap, &[], config)
            .create()
            .map_err(|e| format!("cannot create a Kafka admin client: {e}"))?;
        let metadata = client_config(
            bootstrap,
            &[("group.id", "kafkaml-ksql-metadata".into())],
            config,
        )
        .create_with_context(QuietContext::default())
        .map_err(|e| format!("cannot create a Kafka client: {e}"))?;
        let producer = producer_config(bootstrap, config)
            .create_with_context(Deliveries::default())
            .map_err(|e| format!("cannot create a Kafka producer: {e}"))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .map_err(|e| e.to_string())?;
        let cluster = KafkaCluster {
            bootstrap: bootstrap.to_string(),
            config: config.to_vec(),
            admin,
            metadata,
            producer,
            insert_lock: Mutex::new(()),
            runtime,
        };
        // Fail now, with the broker's words, when nothing answers.
        cluster.topics()?;
        Ok(cluster)
    }

    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    pub fn config(&self) -> &[(String, String)] {
        &self.config
    }
}

impl KafkaCluster {
    /// Creates a topic with the given configuration (an existing one is left as it is).
    fn create(
        &self,
        topic: &str,
        partitions: i32,
        replicas: i16,
        config: &[(&str, &str)],
    ) -> Result<(), String> {
        if is_local_bootstrap(&self.bootstrap) {
            // librdkafka's mock cluster never answers CreateTopics; a producer's metadata
            // request creates the topic (with the mock's default partition count).
            self.producer
                .client()
                .fetch_metadata(Some(topic), TIMEOUT)
                .map_err(|e| format!("cannot create topic {topic} on LocalKafka: {e}"))?;
            return Ok(());
        }
        let mut new_topic =
            NewTopic::new(topic, partitions, TopicReplication::Fixed(replicas as i32));
        for (key, value) in config {
            new_topic = new_topic.set(key, value);
        }
        let options = AdminOptions::new().operation_timeout(Some(TIMEOUT));
        let results = self
            .runtime
            .block_on(self.admin.create_topics([&new_topic], &options))
            .map_err(|e| format!("cannot create topic {topic}: {e}"))?;
        for result in results {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((name, code)) => return Err(format!("cannot create topic {name}: {code}")),
            }
        }
        // Wait until the metadata shows it, so the query that follows finds its partitions.
        let deadline = Instant::now() + TIMEOUT;
        while self.partitions(topic)?.is_none() {
            if Instant::now() > deadline {
                return Err(format!("topic {topic} was created but did not appear in the metadata within {TIMEOUT:?}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }
}

impl Cluster for KafkaCluster {
    fn partitions(&self, topic: &str) -> Result<Option<i32>, String> {
        let metadata = self
            .metadata
            .fetch_metadata(Some(topic), TIMEOUT)
            .map_err(|e| format!("cannot read the metadata of topic {topic}: {e}"))?;
        Ok(metadata
            .topics()
            .iter()
            .find(|t| t.name() == topic)
            .filter(|t| t.error().is_none() && !t.partitions().is_empty())
            .map(|t| t.partitions().len() as i32))
    }

    fn create_compacted_topic(&self, topic: &str, partitions: i32) -> Result<(), String> {
        self.create(topic, partitions, 1, &[("cleanup.policy", "compact")])
    }

    fn create_topic(&self, topic: &str, partitions: i32, replicas: i16) -> Result<(), String> {
        self.create(topic, partitions, replicas, &[])
    }
    fn delete_topic(&self, topic: &str) -> Result<(), String> {
        let options = AdminOptions::new().operation_timeout(Some(TIMEOUT));
        let results = self
            .runtime
            .block_on(self.admin.delete_topics(&[topic], &options))
            .map_err(|e| format!("cannot delete topic {topic}: {e}"))?;
        for result in results {
            if let Err((name, code)) = result {
                if code != RDKafkaErrorCode::UnknownTopicOrPartition {
                    return Err(format!("cannot delete topic {name}: {code}"));
                }
            }
        }
        Ok(())
    }

    fn topics(&self) -> Result<Vec<(String, i32)>, String> {
        let metadata = self
            .metadata
            .fetch_metadata(None, TIMEOUT)
            .map_err(|e| format!("cannot reach Kafka at {}: {e}", self.bootstrap))?;
        let mut topics: Vec<(String, i32)> = metadata
            .topics()
            .iter()
            .map(|t| (t.name().to_string(), t.partitions().len() as i32))
            .collect();
        topics.sort();
        Ok(topics)
    }

    fn produce(&self, records: Vec<OutputRecord>) -> Result<(), String> {
        // One statement's rows at a time: the slot's count is not shared with another writer.
        let _one_writer = self.insert_lock.lock().unwrap_or_else(|e| e.into_inner());
        write_and_wait(&self.producer, &records, "INSERT INTO ... VALUES")
    }
}

/// Counters of one persistent query's thread.
#[derive(Debug, Default)]
pub struct QueryCounters {
    pub records_in: AtomicU64,
    pub records_out: AtomicU64,
    pub commits: AtomicU64,
    /// When the query last found every partition of its source read to the end (and all it
    /// read written); `None` since it read a record after that.
    pub caught_up: Mutex<Option<Instant>>,
}

/// One persistent query's progress, as `LocalKsql.stats()` reports it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueryProgress {
    pub records_in: u64,
    pub records_out: u64,
    pub caught_up: bool,
    /// How long ago the check that found it caught up was made: a caller that wants "caught
    /// up with what I wrote" waits for a check made after it wrote.
    pub caught_up_checked: Option<Duration>,
    /// The error the query stopped on, if it stopped on one.
    pub error: Option<String>,
}

struct RunningQuery {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    counters: Arc<QueryCounters>,
    error: Arc<Mutex<Option<String>>>,
}

/// Runs each persistent query in a thread of its own on the cluster.
pub struct KafkaRuntime {
    bootstrap: String,
    config: Vec<(String, String)>,
    service_id: String,
    /// `auto.offset.reset` etc. in effect when the next query starts (the server sets them from
    /// the request's and the session's properties before it executes a statement).
    properties: Mutex<BTreeMap<String, String>>,
    queries: Mutex<BTreeMap<String, RunningQuery>>,
    /// The command topic is being replayed: queries that start now resume (their state is
    /// read back first); a query a new statement starts begins empty, as ksqlDB's do, even
    /// when its sink topic holds rows from before.
    resuming: AtomicBool,
}

impl KafkaRuntime {
    pub fn new(bootstrap: &str, config: &[(String, String)], service_id: &str) -> Self {
        KafkaRuntime {
            bootstrap: bootstrap.to_string(),
            config: config.to_vec(),
            service_id: service_id.to_string(),
            properties: Mutex::new(BTreeMap::new()),
            queries: Mutex::new(BTreeMap::new()),
            resuming: AtomicBool::new(false),
        }
    }

    /// Whether queries that start from now on resume an earlier run's state.
    pub fn set_resuming(&self, resuming: bool) {
        self.resuming.store(resuming, Ordering::Relaxed);
    }

    pub fn set_properties(&self, properties: BTreeMap<String, String>) {
        *self.properties.lock().unwrap_or_else(|e| e.into_inner()) = properties;
    }

    /// Per query: records in, records out, and its failure if it stopped on one.
    pub fn stats(&self) -> BTreeMap<String, QueryProgress> {
        let queries = self.queries.lock().unwrap_or_else(|e| e.into_inner());
        queries
            .iter()
            .map(|(id, q)| {
                let checked = *q
                    .counters
                    .caught_up
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                let progress = QueryProgress {
                    records_in: q.counters.records_in.load(Ordering::Relaxed),
                    records_out: q.counters.records_out.load(Ordering::Relaxed),
                    caught_up: checked.is_some(),
                    caught_up_checked: checked.map(|at| at.elapsed()),
                    error: q.error.lock().unwrap_or_else(|e| e.into_inner()).clone(),
                };
                (id.clone(), progress)
            })
            .collect()
    }

    /// Stops every query thread.
    pub fn stop_all(&self) {
        let ids: Vec<String> = self
            .queries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect();
        for id in ids {
            self.stop(&id);
        }
    }
}

fn offset_reset(properties: &BTreeMap<String, String>) -> String {
    properties
        .get("auto.offset.reset")
        .or_else(|| properties.get("ksql.streams.auto.offset.reset"))
        .cloned()
        .unwrap_or_else(|| "latest".into())
}

impl QueryRuntime for KafkaRuntime {
    fn start(&self, query: &PersistentQuery) -> Result<(), String> {
        let properties = self
            .properties
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let group = format!("_confluent-ksql-{}query_{}", self.service_id, query.id);
        let consumer: BaseConsumer<QuietContext> = client_config(
            &self.bootstrap,
            &[
                ("group.id", group),
                ("enable.auto.commit", "false".into()),
                ("auto.offset.reset", offset_reset(&properties)),
                ("fetch.wait.max.ms", "50".into()),
                short_fetch_backoff(),
                // Ends of partitions tell `read_to_end` where a query at `latest` stands.
                ("enable.partition.eof", "true".into()),
            ],
            &self.config,
        )
        .create_with_context(QuietContext::default())
        .map_err(|e| format!("cannot create the consumer of query {}: {e}", query.id))?;
        // A stateful query rebuilds its state (changelog, a table's rows, a join's tables)
        // before it reads on from its committed offsets.
        {
            let mut topology = query
                .topology
                .lock()
                .map_err(|_| format!("query {} was poisoned by a panic", query.id))?;
            if let Some(changelog) = &query.changelog_topic {
                topology.keep_changelog(changelog);
                // Written when the query commits (every COMMIT_INTERVAL at most).
                topology.defer_changelog();
            }
            let topics = topology.restore_topics(self.resuming.load(Ordering::Relaxed));
            if !topics.is_empty() {
                restore_state(&self.bootstrap, &self.config, &topics, &mut topology)
                    .map_err(|e| format!("query {} cannot restore its state: {e}", query.id))?;
            }
        }
        let topics: Vec<&str> = query.source_topics.iter().map(String::as_str).collect();
        // A query resuming without its changelog (deleted meanwhile) would go on from its
        // committed offsets with empty state: counts silently short. It reads its sources again
        // from their start instead (the sink gets the results again; the last ones are right).
        if self.resuming.load(Ordering::Relaxed) && query.changelog_created {
            rewind(&consumer, &topics).map_err(|e| {
                format!(
                    "query {} lost its changelog and cannot rewind: {e}",
                    query.id
                )
            })?;
        }
        consumer.subscribe(&topics).map_err(|e| {
            format!(
                "query {} cannot subscribe to {}: {e}",
                query.id,
                topics.join(", ")
            )
        })?;
        let producer: ThreadedProducer<Deliveries> = producer_config(&self.bootstrap, &self.config)
            .create_with_context(Deliveries::default())
            .map_err(|e| format!("cannot create the producer of query {}: {e}", query.id))?;
        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(QueryCounters::default());
        let error = Arc::new(Mutex::new(None));
        let (thread_stop, thread_counters, thread_error, topology, id) = (
            stop.clone(),
            counters.clone(),
            error.clone(),
            query.topology.clone(),
            query.id.clone(),
        );
        let thread = std::thread::Builder::new()
            .name(format!("ksql-{}", query.id))
            .spawn(move || {
                if let Err(message) = run_query(
                    &consumer,
                    &producer,
                    &topology,
                    &thread_stop,
                    &thread_counters,
                ) {
                    *thread_error.lock().unwrap_or_else(|e| e.into_inner()) =
                        Some(format!("query {id} stopped: {message}"));
                }
            })
            .map_err(|e| format!("cannot start the thread of query {}: {e}", query.id))?;
        let running = RunningQuery {
            stop,
            thread: Some(thread),
            counters,
            error,
        };
        let previous = self
            .queries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(query.id.clone(), running);
        if let Some(mut previous) = previous {
            previous.stop.store(true, Ordering::Relaxed);
            if let Some(thread) = previous.thread.take() {
                let _ = thread.join();
            }
        }
        Ok(())
    }

    fn stop(&self, query_id: &str) {
        let running = self
            .queries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(query_id);
        if let Some(mut running) = running {
            running.stop.store(true, Ordering::Relaxed);
            if let Some(thread) = running.thread.take() {
                let _ = thread.join();
            }
        }
    }
}

impl Drop for KafkaRuntime {
    fn drop(&mut self) {
        self.stop_all();
    }
}

/// A message as the engine's input record.
fn input_record(message: &rdkafka::message::BorrowedMessage<'_>) -> InputRecord {
    InputRecord {
        topic: message.topic().to_string(),
        partition: message.partition(),
        offset: message.offset(),
        timestamp: message.timestamp().to_millis().unwrap_or(0),
        key: message.key().map(<[u8]>::to_vec),
        value: message.payload().map(<[u8]>::to_vec),
    }
}

/// Polls a batch: up to `BATCH` records, or what arrived within one poll interval. Partitions
/// whose end the fetcher reported (with `enable.partition.eof`) go into `at_end` until a
/// record of theirs comes.
fn poll_batch(
    consumer: &BaseConsumer<QuietContext>,
    gather: Duration,
    mut at_end: Option<&mut HashSet<i32>>,
) -> Result<Vec<InputRecord>, String> {
    let mut records = Vec::new();
    let idle_deadline = Instant::now() + POLL;
    // Once records flow, gather for a short while: every batch costs a flush and a commit, so
    // small batches (one fetch response each) would cap the query's rate.
    let mut gather_deadline: Option<Instant> = None;
    while records.len() < BATCH {
        let deadline = gather_deadline.unwrap_or(idle_deadline);
        let wait = deadline.saturating_duration_since(Instant::now());
        if wait.is_zero() {
            break;
        }
        match consumer.poll(wait) {
            Some(Ok(message)) => {
                if let Some(at_end) = at_end.as_deref_mut() {
                    at_end.remove(&message.partition());
                }
                records.push(input_record(&message));
                gather_deadline.get_or_insert_with(|| Instant::now() + gather);
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(partition))) => {
                if let Some(at_end) = at_end.as_deref_mut() {
                    at_end.insert(partition);
                }
                // At the end of a partition: what has been gathered is all there is for now.
                if !records.is_empty() {
                    break;
                }
            }
            // The brokers going away (a restart) is no reason to stop: librdkafka reconnects
            // and the query reads on from where it was.
            Some(Err(e)) if is_connection_loss(&e) => {
                std::thread::sleep(POLL);
                break;
            }
            Some(Err(e)) => return Err(format!("reading failed: {e}")),
            None => break,
        }
    }
    Ok(records)
}

/// Errors a consumer reports while it has no connection to the brokers.
fn is_connection_loss(error: &rdkafka::error::KafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::AllBrokersDown
                | RDKafkaErrorCode::BrokerTransportFailure
                | RDKafkaErrorCode::NetworkException
        )
    )
}

/// Reads `topics` from their beginning to their current end into the query's state. Gives up
/// when nothing arrives for `TIMEOUT` while records are still due.
fn restore_state(
    bootstrap: &str,
    config: &[(String, String)],
    topics: &[String],
    topology: &mut StreamTopology,
) -> Result<(), String> {
    let consumer: BaseConsumer<QuietContext> = client_config(
        bootstrap,
        &[
            ("group.id", "kafkaml-ksql-restore".into()),
            ("enable.auto.commit", "false".into()),
            short_fetch_backoff(),
        ],
        config,
    )
    .create_with_context(QuietContext::default())
    .map_err(|e| format!("cannot create the restoring consumer: {e}"))?;
    let mut assignment = TopicPartitionList::new();
    let mut ends: BTreeMap<(String, i32), i64> = BTreeMap::new();
    for topic in topics {
        let metadata = consumer
            .fetch_metadata(Some(topic), TIMEOUT)
            .map_err(|e| format!("cannot read the metadata of {topic}: {e}"))?;
        let partitions: Vec<i32> = metadata
            .topics()
            .iter()
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        for partition in partitions {
            // A topic created a moment ago may have no leader yet: asked again until it does.
            let deadline = Instant::now() + TIMEOUT;
            let (low, high) = loop {
                match consumer.fetch_watermarks(topic, partition, TIMEOUT) {
                    Ok(marks) => break marks,
                    Err(e) if Instant::now() < deadline && is_transient(&e) => {
                        std::thread::sleep(Duration::from_millis(100));
                    }
                    Err(e) => {
                        return Err(format!("cannot read the end of {topic}-{partition}: {e}"))
                    }
                }
            };
            if high > low {
                ends.insert((topic.clone(), partition), high);
                assignment
                    .add_partition_offset(topic, partition, Offset::Beginning)
                    .map_err(|e| e.to_string())?;
            }
        }
    }
    if ends.is_empty() {
        topology.finish_restore();
        return Ok(());
    }
    consumer.assign(&assignment).map_err(|e| e.to_string())?;
    let mut last_progress = Instant::now();
    while !ends.is_empty() {
        match consumer.poll(POLL) {
            Some(Ok(message)) => {
                last_progress = Instant::now();
                let record = input_record(&message);
                topology.restore(&record)?;
                let position = (record.topic.clone(), record.partition);
                if ends
                    .get(&position)
                    .is_some_and(|&end| record.offset + 1 >= end)
                {
                    ends.remove(&position);
                }
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) | None => {
                if last_progress.elapsed() > TIMEOUT {
                    let left: Vec<String> = ends.keys().map(|(t, p)| format!("{t}-{p}")).collect();
                    return Err(format!(
                        "nothing arrived for {TIMEOUT:?} while {} still had records to read",
                        left.join(", ")
                    ));
                }
            }
            Some(Err(e)) if is_connection_loss(&e) && last_progress.elapsed() <= TIMEOUT => {}
            Some(Err(e)) => return Err(format!("reading failed: {e}")),
        }
    }
    topology.finish_restore();
    Ok(())
}

/// Commits the start of every partition of `topics` as the consumer group's position.
fn rewind(consumer: &BaseConsumer<QuietContext>, topics: &[&str]) -> Result<(), String> {
    let mut positions = TopicPartitionList::new();
    for topic in topics {
        let metadata = consumer
            .fetch_metadata(Some(topic), TIMEOUT)
            .map_err(|e| format!("cannot read the metadata of {topic}: {e}"))?;
        for partition in metadata.topics().iter().flat_map(|t| t.partitions()) {
            let (low, _) = consumer
                .fetch_watermarks(topic, partition.id(), TIMEOUT)
                .map_err(|e| format!("cannot read the start of {topic}-{}: {e}", partition.id()))?;
            positions
                .add_partition_offset(topic, partition.id(), Offset::Offset(low))
                .map_err(|e| e.to_string())?;
        }
    }
    consumer
        .commit(&positions, CommitMode::Sync)
        .map_err(|e| format!("cannot commit the start offsets: {e}"))
}

/// Errors a broker answers while a new topic's partitions are still getting their leaders.
fn is_transient(error: &rdkafka::error::KafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::NotLeaderForPartition
                | RDKafkaErrorCode::LeaderNotAvailable
                | RDKafkaErrorCode::UnknownTopicOrPartition
                | RDKafkaErrorCode::UnknownPartition
                | RDKafkaErrorCode::UnknownTopic
        )
    )
}

/// A batch written to the sink whose offsets are committed once the sink acknowledged it.
struct PendingBatch {
    slot: usize,
    /// Every record written for the batch (sink and changelog): all must be acknowledged.
    records_out: u64,
    /// Those of them written to the sink (what `stats()` counts).
    sink_records: u64,
    /// The offsets to commit once it is acknowledged (`None`: the batch's state is not in the
    /// changelog yet; a later batch's commit covers it).
    positions: Option<TopicPartitionList>,
}

/// What a query's reader hands its loop, in the order it polled.
enum Polled {
    Records(Vec<InputRecord>),
    /// A poll found no record. `read_to_end` is whether the sources had been read to their
    /// end, when the reader asked the broker (at most twice a second).
    Idle {
        read_to_end: Option<bool>,
    },
}

/// Batches a query's reader may poll ahead of the one being processed: reading then overlaps
/// processing (a third of a 1M-row CSAS's time on one thread), and the bound keeps the memory
/// held and the records re-read after a crash small.
const READ_AHEAD: usize = 2;

/// The query loop: poll, process, write, and commit each batch's offsets once the sink has
/// acknowledged all of it, oldest batch first. A reader thread polls the next batches while
/// this one processes; up to `MAX_PENDING` batches wait for their acks meanwhile. A crash
/// before a batch's commit re-processes it (at-least-once, as ksqlDB's default).
fn run_query(
    consumer: &BaseConsumer<QuietContext>,
    producer: &ThreadedProducer<Deliveries>,
    topology: &Arc<Mutex<StreamTopology>>,
    stop: &AtomicBool,
    counters: &QueryCounters,
) -> Result<(), String> {
    let finished = AtomicBool::new(false);
    let (batches, polled) = std::sync::mpsc::sync_channel(READ_AHEAD);
    std::thread::scope(|scope| {
        let stopped = || stop.load(Ordering::Relaxed) || finished.load(Ordering::Relaxed);
        std::thread::Builder::new()
            .name(format!(
                "{}-read",
                std::thread::current().name().unwrap_or("ksql")
            ))
            .spawn_scoped(scope, move || read_batches(consumer, stopped, batches))
            .map_err(|e| format!("cannot start the query's reader: {e}"))?;
        let result = process_batches(consumer, producer, topology, stop, counters, &polled);
        // The reader stops at its next poll, or at once when blocked handing over a batch.
        finished.store(true, Ordering::Relaxed);
        drop(polled);
        result
    })
}

/// The query's reader: polls batches and hands them over until `stopped()`, or until a poll
/// fails (the error is handed over too).
fn read_batches(
    consumer: &BaseConsumer<QuietContext>,
    stopped: impl Fn() -> bool,
    batches: std::sync::mpsc::SyncSender<Result<Polled, String>>,
) {
    let mut at_end: HashSet<i32> = HashSet::new();
    let mut last_check = Instant::now() - Duration::from_secs(1);
    while !stopped() {
        let polled = poll_batch(consumer, GATHER, Some(&mut at_end)).map(|records| {
            if !records.is_empty() {
                return Polled::Records(records);
            }
            // Idle: is that because the sources have been read to their end? The reader
            // knows, since what it polled has all been handed over. (It asks the broker.)
            let due = last_check.elapsed() >= Duration::from_millis(500);
            if due {
                last_check = Instant::now();
            }
            Polled::Idle {
                read_to_end: due.then(|| read_to_end(consumer, &at_end)),
            }
        });
        let failed = polled.is_err();
        if batches.send(polled).is_err() || failed {
            return;
        }
    }
}

/// Processes, writes and commits what the reader hands over, in its order.
fn process_batches(
    consumer: &BaseConsumer<QuietContext>,
    producer: &ThreadedProducer<Deliveries>,
    topology: &Arc<Mutex<StreamTopology>>,
    stop: &AtomicBool,
    counters: &QueryCounters,
    polled: &std::sync::mpsc::Receiver<Result<Polled, String>>,
) -> Result<(), String> {
    let mut pending = PendingCommits {
        consumer,
        producer,
        counters,
        failed_before: producer.context().failed.load(Ordering::Relaxed),
        batches: VecDeque::new(),
        written: 0,
        unflushed: BTreeMap::new(),
        last_flush: Instant::now(),
    };
    while !stop.load(Ordering::Relaxed) {
        let full = pending.batches.len() >= MAX_PENDING;
        pending.commit_acknowledged(full)?;
        let records = match polled.recv_timeout(POLL) {
            Ok(Ok(Polled::Records(records))) => records,
            Ok(Ok(Polled::Idle { read_to_end })) => {
                // Nothing new: the state goes to the changelog, and the sink's
                // acknowledgements get a moment to catch up, so that being at the end of the
                // sources can mean everything read was committed.
                pending.flush(topology)?;
                pending.commit_until(Instant::now() + POLL)?;
                if let (Some(found), true) = (read_to_end, pending.batches.is_empty()) {
                    *counters.caught_up.lock().unwrap_or_else(|e| e.into_inner()) =
                        found.then(Instant::now);
                }
                continue;
            }
            Ok(Err(reason)) => return Err(reason),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => continue,
            // The reader stopped: the query is stopping.
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        };
        *counters.caught_up.lock().unwrap_or_else(|e| e.into_inner()) = None;
        counters
            .records_in
            .fetch_add(records.len() as u64, Ordering::Relaxed);
        let (outputs, sink_records, done, commits) = {
            let mut topology = topology
                .lock()
                .map_err(|_| "the query's state was poisoned by a panic".to_string())?;
            let mut outputs = topology.process(&records);
            // A record the query must not skip (ksql.timestamp.throw.on.invalid, say) stops it;
            // the batch's offsets stay uncommitted, so a restart reads it again.
            if let Some(reason) = &topology.failed {
                return Err(reason.clone());
            }
            let sink_records = outputs.len();
            let done = topology.is_done();
            // A query without a changelog commits every batch; one with commits when it
            // writes the state (the records read since then are counted in it).
            let commits = !topology.changelog_deferred
                || done
                || pending.last_flush.elapsed() >= COMMIT_INTERVAL;
            if commits && topology.changelog_deferred {
                outputs.extend(topology.take_changelog_records());
                pending.last_flush = Instant::now();
            }
            (outputs, sink_records, done, commits)
        };
        pending.read(&records);
        pending.write(&outputs, sink_records, commits)?;
        if done {
            break;
        }
    }
    // Stopping: the state goes to the changelog, and what the sink acknowledges within a few
    // seconds is committed; the rest is read again.
    pending.flush(topology)?;
    pending.commit_until(Instant::now() + STOP_WAIT)
}

/// How often a query that keeps a changelog writes its state there and commits, at most
/// (ksqlDB's `ksql.streams.commit.interval.ms`); also whenever its sources are read to their
/// end, and when it stops. Its sink gets every result at once.
const COMMIT_INTERVAL: Duration = Duration::from_secs(2);

/// How long a stopping query waits for its sink's outstanding acknowledgements.
const STOP_WAIT: Duration = Duration::from_secs(5);

/// The batches a query has written and not yet committed, and what commits them: the sink's
/// acknowledgements, then the consumer's offsets.
struct PendingCommits<'a> {
    consumer: &'a BaseConsumer<QuietContext>,
    producer: &'a ThreadedProducer<Deliveries>,
    counters: &'a QueryCounters,
    /// Failed deliveries counted before the query started: any later one stops it.
    failed_before: u64,
    /// Oldest first.
    batches: VecDeque<PendingBatch>,
    /// Batches written so far (a batch's slot is its number modulo SLOTS).
    written: usize,
    /// The offset after the last record read of each partition, since the last commit point.
    unflushed: BTreeMap<(String, i32), i64>,
    /// When the changelog was last written (a commit point).
    last_flush: Instant,
}

impl PendingCommits<'_> {
    /// Commits the oldest batches whose records the sink has all acknowledged; with `wait`,
    /// first waits for the oldest one. Any failed delivery stops the query (its batch and the
    /// later ones stay uncommitted).
    fn commit_acknowledged(&mut self, wait: bool) -> Result<(), String> {
        let deliveries = self.producer.context();
        deliveries.check(self.failed_before, "the sink")?;
        if let (true, Some(oldest)) = (wait, self.batches.front()) {
            wait_for_reports(
                self.producer,
                oldest.slot,
                oldest.records_out,
                self.failed_before,
                "the sink",
                TIMEOUT,
            )?;
        }
        while let Some(oldest) = self.batches.front() {
            if deliveries.reported(oldest.slot) < oldest.records_out {
                break;
            }
            if let Some(positions) = &oldest.positions {
                self.consumer
                    // Asynchronous: the sink has acknowledged everything before it, and a
                    // later commit supersedes a lost one (at-least-once either way).
                    .commit(positions, CommitMode::Async)
                    .map_err(|e| format!("cannot commit offsets: {e}"))?;
                self.counters.commits.fetch_add(1, Ordering::Relaxed);
            }
            self.counters
                .records_out
                .fetch_add(oldest.sink_records, Ordering::Relaxed);
            self.batches.pop_front();
        }
        Ok(())
    }

    /// Notes where the records leave their partitions: the next commit's offsets.
    fn read(&mut self, records: &[InputRecord]) {
        // The batch's last offset per partition first: a topic name is copied once a batch.
        let mut last: BTreeMap<(&str, i32), i64> = BTreeMap::new();
        for record in records {
            last.insert((record.topic.as_str(), record.partition), record.offset);
        }
        for ((topic, partition), offset) in last {
            self.unflushed
                .insert((topic.to_string(), partition), offset + 1);
        }
    }

    /// Writes the changelog's pending records (if any state or read offset awaits a commit) as
    /// a batch of its own that commits.
    fn flush(&mut self, topology: &Arc<Mutex<StreamTopology>>) -> Result<(), String> {
        if self.unflushed.is_empty() {
            return Ok(());
        }
        let outputs = topology
            .lock()
            .map_err(|_| "the query's state was poisoned by a panic".to_string())?
            .take_changelog_records();
        self.last_flush = Instant::now();
        self.write(&outputs, 0, true)
    }

    /// Writes a batch's records (`sink_records` of them to the sink, the rest to the
    /// changelog); with `commits`, its offsets (and those read since the last commit) are
    /// committed once all of it is acknowledged.
    fn write(
        &mut self,
        outputs: &[OutputRecord],
        sink_records: usize,
        commits: bool,
    ) -> Result<(), String> {
        // At most MAX_PENDING < SLOTS batches are pending: the slot's last batch is done.
        self.commit_acknowledged(self.batches.len() >= MAX_PENDING)?;
        let slot = self.written % SLOTS;
        self.written += 1;
        self.producer.context().reported[slot].store(0, Ordering::Release);
        for output in outputs {
            produce_one(self.producer, output, slot)?;
        }
        let positions = match commits {
            true => Some(self.take_positions()?),
            false => None,
        };
        self.batches.push_back(PendingBatch {
            slot,
            records_out: outputs.len() as u64,
            sink_records: sink_records as u64,
            positions,
        });
        Ok(())
    }

    /// The offsets read since the last commit point, as a commit's list.
    fn take_positions(&mut self) -> Result<TopicPartitionList, String> {
        let mut positions = TopicPartitionList::new();
        for ((topic, partition), offset) in std::mem::take(&mut self.unflushed) {
            positions
                .add_partition_offset(&topic, partition, Offset::Offset(offset))
                .map_err(|e| e.to_string())?;
        }
        Ok(positions)
    }

    /// Commits batches as the sink acknowledges them, until none is left or `deadline`.
    fn commit_until(&mut self, deadline: Instant) -> Result<(), String> {
        loop {
            self.commit_acknowledged(false)?;
            if self.batches.is_empty() || Instant::now() >= deadline {
                return Ok(());
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }
}

/// Whether the consumer's position is at the end of every partition assigned to it.
fn read_to_end(consumer: &BaseConsumer<QuietContext>, at_end: &HashSet<i32>) -> bool {
    let Ok(positions) = consumer.position() else {
        return false;
    };
    if positions.elements().is_empty() {
        return false;
    }
    // Before it has read a record of a partition, the consumer knows no position there: the
    // group's committed offset (a query resumed after a restart) says where it stands.
    let committed = consumer
        .committed_offsets(positions.clone(), Duration::from_secs(5))
        .ok();
    positions.elements().iter().all(|element| {
        let Ok((low, high)) =
            consumer.fetch_watermarks(element.topic(), element.partition(), Duration::from_secs(5))
        else {
            return false;
        };
        let position = match element.offset() {
            Offset::Offset(position) => Some(position),
            _ => committed
                .as_ref()
                .and_then(|c| c.find_partition(element.topic(), element.partition()))
                .and_then(|p| match p.offset() {
                    Offset::Offset(offset) => Some(offset),
                    _ => None,
                }),
        };
        match position {
            Some(position) => position >= high,
            // Nothing read and nothing committed: caught up if there is nothing to read, or if
            // the fetcher reported the partition's end (a query started at `latest` on a topic
            // that holds older records).
            None => low >= high || at_end.contains(&element.partition()),
        }
    })
}

/// Queues one record, waiting for room when the producer's queue is full.
fn produce_one(
    producer: &ThreadedProducer<Deliveries>,
    record: &OutputRecord,
    slot: usize,
) -> Result<(), String> {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let mut base: BaseRecord<'_, [u8], [u8], usize> =
            BaseRecord::with_opaque_to(&record.topic, slot).timestamp(record.timestamp);
        if let Some(key) = &record.key {
            base = base.key(key.as_slice());
        }
        if let Some(value) = &record.value {
            base = base.payload(value.as_slice());
        }
        match producer.send(base) {
            Ok(()) => return Ok(()),
            Err((
                rdkafka::error::KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull),
                _,
            )) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err((e, _)) => return Err(format!("cannot write to {}: {e}", record.topic)),
        }
    }
}

/// Reads a source topic for a push query: every partition, from its end (or its beginning
/// with `auto.offset.reset=earliest`), without a consumer group.
pub struct PushReader {
    consumer: BaseConsumer<QuietContext>,
}

impl PushReader {
    pub fn open(cluster: &KafkaCluster, topic: &str, from_beginning: bool) -> Result<Self, String> {
        let consumer: BaseConsumer<QuietContext> = client_config(
            cluster.bootstrap(),
            &[
                ("group.id", "kafkaml-ksql-push".into()),
                ("enable.auto.commit", "false".into()),
                ("fetch.wait.max.ms", "20".into()),
                short_fetch_backoff(),
            ],
            cluster.config(),
        )
        .create_with_context(QuietContext::default())
        .map_err(|e| format!("cannot create a consumer: {e}"))?;
        let partitions = cluster
            .partitions(topic)?
            .ok_or_else(|| format!("topic {topic} does not exist"))?;
        let mut assignment = TopicPartitionList::new();
        for partition in 0..partitions {
            // The end as of now, resolved here: a record written once the client has the
            // header must be in the results, however late the first fetch happens.
            let start = if from_beginning {
                Offset::Beginning
            } else {
                let (_, high) = consumer
                    .fetch_watermarks(topic, partition, TIMEOUT)
                    .map_err(|e| format!("cannot read the end of {topic}[{partition}]: {e}"))?;
                Offset::Offset(high)
            };
            assignment
                .add_partition_offset(topic, partition, start)
                .map_err(|e| e.to_string())?;
        }
        consumer
            .assign(&assignment)
            .map_err(|e| format!("cannot read topic {topic}: {e}"))?;
        Ok(PushReader { consumer })
    }

    /// The next records (empty after one poll interval without any).
    pub fn poll(&self) -> Result<Vec<InputRecord>, String> {
        poll_batch(&self.consumer, PUSH_GATHER, None)
    }
}

/// A statement from the command topic, with the properties it ran with.
pub type Command = (String, BTreeMap<String, String>);

/// Statements kept on a topic of their own, as ksqlDB's command topic: replayed at start, so
/// streams and persistent queries come back after a restart.
pub struct CommandLog {
    topic: String,
    producer: ThreadedProducer<Deliveries>,
    bootstrap: String,
    config: Vec<(String, String)>,
}

impl CommandLog {
    /// Opens (creating if needed) `_confluent-ksql-<service_id>_command_topic`.
    pub fn open(cluster: &KafkaCluster, service_id: &str) -> Result<Self, String> {
        let topic = format!("_confluent-ksql-{service_id}_command_topic");
        if cluster.partitions(&topic)?.is_none() {
            cluster.create_topic(&topic, 1, 1)?;
        }
        let producer = client_config(
            cluster.bootstrap(),
            &[
                ("acks", "all".into()),
                ("enable.idempotence", "true".into()),
                ("linger.ms", "0".into()),
            ],
            cluster.config(),
        )
        .create_with_context(Deliveries::default())
        .map_err(|e| format!("cannot create the command topic's producer: {e}"))?;
        Ok(CommandLog {
            topic,
            producer,
            bootstrap: cluster.bootstrap().to_string(),
            config: cluster.config().to_vec(),
        })
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Appends a statement (with the properties it ran with) and waits for the ack.
    pub fn append(
        &self,
        statement: &str,
        properties: &BTreeMap<String, String>,
    ) -> Result<(), String> {
        let value = serde_json::json!({ "statement": statement, "streamsProperties": properties })
            .to_string();
        let record = OutputRecord {
            topic: self.topic.clone(),
            timestamp: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64),
            key: Some(b"command".to_vec()),
            value: Some(value.into_bytes()),
        };
        write_and_wait(&self.producer, &[record], "the command topic")
    }

    /// Every statement written so far, in order, with its properties.
    pub fn read_all(&self) -> Result<Vec<Command>, String> {
        let consumer: BaseConsumer<QuietContext> = client_config(
            &self.bootstrap,
            &[
                ("group.id", "kafkaml-ksql-replay".into()),
                ("enable.auto.commit", "false".into()),
            ],
            &self.config,
        )
        .create_with_context(QuietContext::default())
        .map_err(|e| format!("cannot read the command topic: {e}"))?;
        let (_, high) = consumer
            .fetch_watermarks(&self.topic, 0, TIMEOUT)
            .map_err(|e| format!("cannot read the command topic: {e}"))?;
        let mut assignment = TopicPartitionList::new();
        assignment
            .add_partition_offset(&self.topic, 0, Offset::Beginning)
            .map_err(|e| e.to_string())?;
        consumer.assign(&assignment).map_err(|e| e.to_string())?;
        let mut commands = Vec::new();
        let deadline = Instant::now() + TIMEOUT;
        let mut next = 0i64;
        while next < high {
            if Instant::now() > deadline {
                return Err(format!("the command topic {} was not read to its end ({next} of {high}) within {TIMEOUT:?}", self.topic));
            }
            match consumer.poll(POLL) {
                Some(Ok(message)) => {
                    next = message.offset() + 1;
                    let Some(payload) = message.payload() else {
                        continue;
                    };
                    let parsed: serde_json::Value = serde_json::from_slice(payload)
                        .map_err(|e| format!("command topic offset {}: {e}", message.offset()))?;
                    let statement = parsed
                        .get("statement")
                        .and_then(|s| s.as_str())
                        .unwrap_or_default()
                        .to_string();
                    let properties = parsed
                        .get("streamsProperties")
                        .and_then(|p| p.as_object())
                        .map(|p| {
                            p.iter()
                                .map(|(k, v)| {
                                    (
                                        k.clone(),
                                        v.as_str()
                                            .map(str::to_string)
                                            .unwrap_or_else(|| v.to_string()),
                                    )
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    commands.push((statement, properties));
                }
                Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) | None => {}
                Some(Err(e)) => return Err(format!("cannot read the command topic: {e}")),
            }
        }
        Ok(commands)
    }
}
