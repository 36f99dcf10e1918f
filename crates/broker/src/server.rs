//! The network side: one task per connection reading size-prefixed requests in order and
//! answering each (Kafka answers a connection's requests in the order they came).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponsePartition, OffsetFetchResponseTopic,
};
use kafka_protocol::messages::offset_for_leader_epoch_response::OffsetForLeaderTopicResult;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::groups::{self, Committed, JoinRequest};
use crate::log::{split_batches, AppendError};
use crate::state::{lock, valid_topic_name, State};
use crate::BrokerError;

const NODE_ID: i32 = 1;
const CLUSTER_ID: &str = "kafkaml-local";
/// The largest request accepted (Kafka's `socket.request.max.bytes`).
const MAX_REQUEST_BYTES: usize = 100 << 20;

const UNKNOWN_SERVER_ERROR: i16 = -1;
const OFFSET_OUT_OF_RANGE: i16 = 1;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const MESSAGE_TOO_LARGE: i16 = 10;
const INVALID_TOPIC_EXCEPTION: i16 = 17;
const INVALID_REQUIRED_ACKS: i16 = 21;
const UNSUPPORTED_VERSION: i16 = 35;
const TOPIC_ALREADY_EXISTS: i16 = 36;
const INVALID_PARTITIONS: i16 = 37;
const INVALID_REPLICATION_FACTOR: i16 = 38;
const INVALID_REQUEST: i16 = 42;
const TRANSACTIONAL_ID_AUTHORIZATION_FAILED: i16 = 53;
const GROUP_ID_NOT_FOUND: i16 = 69;

/// The versions served of each API: (key, min, max). Each is within what kafka-protocol
/// decodes, and below the versions that address topics by id only.
const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 9),
    (ApiKey::Fetch, 4, 12),
    (ApiKey::ListOffsets, 1, 7),
    (ApiKey::Metadata, 0, 9),
    (ApiKey::OffsetCommit, 2, 8),
    (ApiKey::OffsetFetch, 1, 7),
    (ApiKey::FindCoordinator, 0, 3),
    (ApiKey::JoinGroup, 0, 7),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 4),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::DescribeGroups, 0, 5),
    (ApiKey::ListGroups, 0, 4),
    (ApiKey::ApiVersions, 0, 3),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 5),
    (ApiKey::InitProducerId, 0, 4),
    (ApiKey::OffsetForLeaderEpoch, 2, 4),
    (ApiKey::DescribeConfigs, 1, 4),
];

pub async fn serve(listener: TcpListener, state: Arc<State>) {
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        tokio::spawn(async move {
            let _ = Connection {
                state,
                client_host: format!("/{}", peer.ip()),
            }
            .run(stream)
            .await;
        });
    }
}

/// Ends expired sessions and overdue rebalances.
pub async fn expire_sessions(state: Arc<State>) {
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tick.tick().await;
        lock(&state.coordinator).expire(Instant::now());
    }
}

fn str_bytes(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

fn error_code(error: &BrokerError) -> i16 {
    match error {
        BrokerError::InvalidTopic(_) => INVALID_TOPIC_EXCEPTION,
        BrokerError::TopicExists(_) => TOPIC_ALREADY_EXISTS,
        BrokerError::UnknownTopic(_) => UNKNOWN_TOPIC_OR_PARTITION,
        BrokerError::InvalidPartitions { .. } => INVALID_PARTITIONS,
        BrokerError::Io { .. } | BrokerError::Stopped => UNKNOWN_SERVER_ERROR,
    }
}

struct Connection {
    state: Arc<State>,
    client_host: String,
}

/// A decoded request's answer: the encoded body, or nothing (acks=0 produce).
type Answer = Option<BytesMut>;

fn encode<T: Encodable>(response: &T, version: i16) -> anyhow_free::Result<BytesMut> {
    let mut body = BytesMut::new();
    response
        .encode(&mut body, version)
        .map_err(|_| anyhow_free::Error)?;
    Ok(body)
}

/// A request that could not be decoded or an answer not encoded: the connection is closed,
/// as Kafka does.
mod anyhow_free {
    #[derive(Debug)]
    pub struct Error;
    pub type Result<T> = std::result::Result<T, Error>;
}

impl Connection {
    async fn run(self, mut stream: TcpStream) -> std::io::Result<()> {
        let (mut reader, mut writer) = stream.split();
        loop {
            let size = match reader.read_i32().await {
                Ok(size) => size,
                Err(_) => return Ok(()),
            };
            if size < 8 || size as usize > MAX_REQUEST_BYTES {
                return Ok(());
            }
            let mut frame = BytesMut::zeroed(size as usize);
            reader.read_exact(&mut frame).await?;
            let mut frame = frame.freeze();
            let api_key = i16::from_be_bytes([frame[0], frame[1]]);
            let version = i16::from_be_bytes([frame[2], frame[3]]);
            let Ok(key) = ApiKey::try_from(api_key) else {
                return Ok(());
            };
            let supported = SUPPORTED.iter().find(|(k, _, _)| *k == key);
            if key == ApiKey::ApiVersions && supported.is_some_and(|(_, _, max)| version > *max) {
                // Too new: the answer is a v0 ApiVersions error listing what is served.
                let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
                let response = api_versions(UNSUPPORTED_VERSION);
                let Ok(body) = encode(&response, 0) else {
                    return Ok(());
                };
                write_response(&mut writer, correlation_id, 0, body).await?;
                continue;
            }
            let Some(&(_, min, max)) = supported else {
                return Ok(());
            };
            if version < min || version > max {
                return Ok(());
            }
            let header_version = key.request_header_version(version);
            let Ok(header) = RequestHeader::decode(&mut frame, header_version) else {
                return Ok(());
            };
            let client_id = header
                .client_id
                .as_ref()
                .map(|c| c.to_string())
                .unwrap_or_default();
            let answer = match self.handle(key, version, &mut frame, client_id).await {
                Ok(answer) => answer,
                Err(_) => return Ok(()),
            };
            if let Some(body) = answer {
                let response_header_version = key.response_header_version(version);
                write_response(
                    &mut writer,
                    header.correlation_id,
                    response_header_version,
                    body,
                )
                .await?;
            }
        }
    }

    async fn handle(
        &self,
        key: ApiKey,
        version: i16,
        frame: &mut Bytes,
        client_id: String,
    ) -> anyhow_free::Result<Answer> {
        fn decode<T: Decodable>(frame: &mut Bytes, version: i16) -> anyhow_free::Result<T> {
            T::decode(frame, version).map_err(|_| anyhow_free::Error)
        }
        let body = match key {
            ApiKey::ApiVersions => encode(&api_versions(0), version)?,
            ApiKey::Metadata => encode(&self.metadata(decode(frame, version)?, version), version)?,
            ApiKey::Produce => {
                let request: ProduceRequest = decode(frame, version)?;
                let acks = request.acks;
                let response = self.produce(request);
                if acks == 0 {
                    return Ok(None);
                }
                encode(&response, version)?
            }
            ApiKey::Fetch => encode(&self.fetch(decode(frame, version)?).await, version)?,
            ApiKey::ListOffsets => encode(&self.list_offsets(decode(frame, version)?), version)?,
            ApiKey::CreateTopics => encode(&self.create_topics(decode(frame, version)?), version)?,
            ApiKey::DeleteTopics => encode(
                &self.delete_topics(decode(frame, version)?, version),
                version,
            )?,
            ApiKey::InitProducerId => {
                let request: InitProducerIdRequest = decode(frame, version)?;
                let response = if request.transactional_id.is_some() {
                    // No transactions here: refused at once (librdkafka makes it a fatal
                    // error) rather than a producer whose first commit times out.
                    InitProducerIdResponse::default()
                        .with_error_code(TRANSACTIONAL_ID_AUTHORIZATION_FAILED)
                        .with_producer_id((-1).into())
                        .with_producer_epoch(-1)
                } else {
                    InitProducerIdResponse::default()
                        .with_producer_id(self.state.new_producer_id().into())
                        .with_producer_epoch(0)
                };
                encode(&response, version)?
            }
            ApiKey::FindCoordinator => {
                let _: FindCoordinatorRequest = decode(frame, version)?;
                encode(
                    &FindCoordinatorResponse::default()
                        .with_node_id(NODE_ID.into())
                        .with_host(str_bytes(self.state.host.clone()))
                        .with_port(self.state.port),
                    version,
                )?
            }
            ApiKey::JoinGroup => encode(
                &self.join_group(decode(frame, version)?, client_id).await,
                version,
            )?,
            ApiKey::SyncGroup => encode(&self.sync_group(decode(frame, version)?).await, version)?,
            ApiKey::Heartbeat => {
                let request: HeartbeatRequest = decode(frame, version)?;
                let error = lock(&self.state.coordinator).heartbeat(
                    &request.group_id,
                    request.generation_id,
                    &request.member_id,
                );
                encode(
                    &HeartbeatResponse::default().with_error_code(error),
                    version,
                )?
            }
            ApiKey::LeaveGroup => encode(&self.leave_group(decode(frame, version)?), version)?,
            ApiKey::OffsetCommit => encode(&self.offset_commit(decode(frame, version)?), version)?,
            ApiKey::OffsetFetch => encode(&self.offset_fetch(decode(frame, version)?), version)?,
            ApiKey::ListGroups => {
                let _: ListGroupsRequest = decode(frame, version)?;
                let coordinator = lock(&self.state.coordinator);
                let mut names: Vec<&String> = coordinator
                    .groups
                    .keys()
                    .chain(coordinator.offsets.keys())
                    .collect();
                names.sort();
                names.dedup();
                let groups = names
                    .into_iter()
                    .map(|name| {
                        let group = coordinator.groups.get(name);
                        ListedGroup::default()
                            .with_group_id(str_bytes(name.clone()).into())
                            .with_protocol_type(str_bytes(
                                group.map_or("consumer".into(), |g| g.protocol_type.clone()),
                            ))
                            .with_group_state(str_bytes(group.map_or("Empty", |g| g.state.name())))
                    })
                    .collect();
                encode(&ListGroupsResponse::default().with_groups(groups), version)?
            }
            ApiKey::DescribeGroups => {
                encode(&self.describe_groups(decode(frame, version)?), version)?
            }
            ApiKey::OffsetForLeaderEpoch => {
                let request: OffsetForLeaderEpochRequest = decode(frame, version)?;
                let topics = request
                    .topics
                    .into_iter()
                    .map(|t| {
                        let topic = self.state.topic(&t.topic);
                        let partitions = t
                            .partitions
                            .iter()
                            .map(|p| {
                                let log = topic
                                    .as_ref()
                                    .and_then(|t| t.partitions.get(p.partition as usize));
                                let result =
                                    offset_for_leader_epoch_response::EpochEndOffset::default()
                                        .with_partition(p.partition);
                                match log {
                                    Some(log) => result
                                        .with_leader_epoch(0)
                                        .with_end_offset(lock(log).end_offset()),
                                    None => result.with_error_code(UNKNOWN_TOPIC_OR_PARTITION),
                                }
                            })
                            .collect();
                        OffsetForLeaderTopicResult::default()
                            .with_topic(t.topic)
                            .with_partitions(partitions)
                    })
                    .collect();
                encode(
                    &OffsetForLeaderEpochResponse::default().with_topics(topics),
                    version,
                )?
            }
            ApiKey::DescribeConfigs => {
                encode(&self.describe_configs(decode(frame, version)?), version)?
            }
            _ => return Err(anyhow_free::Error),
        };
        Ok(Some(body))
    }

    fn metadata(&self, request: MetadataRequest, version: i16) -> MetadataResponse {
        // Before v4 a request could not say; Kafka auto-created then.
        let may_create = version < 4 || request.allow_auto_topic_creation;
        let names: Vec<String> = match &request.topics {
            None => self
                .state
                .topic_infos()
                .into_iter()
                .map(|t| t.name)
                .collect(),
            Some(topics) if topics.is_empty() && version == 0 => self
                .state
                .topic_infos()
                .into_iter()
                .map(|t| t.name)
                .collect(),
            Some(topics) => topics
                .iter()
                .filter_map(|t| t.name.as_ref().map(|n| n.to_string()))
                .collect(),
        };
        let topics = names
            .into_iter()
            .map(|name| {
                let response = MetadataResponseTopic::default()
                    .with_name(Some(str_bytes(name.clone()).into()));
                if !valid_topic_name(&name) {
                    return response.with_error_code(INVALID_TOPIC_EXCEPTION);
                }
                let topic = if may_create {
                    self.state.topic_or_create(&name)
                } else {
                    self.state.topic(&name)
                };
                let Some(topic) = topic else {
                    return response.with_error_code(UNKNOWN_TOPIC_OR_PARTITION);
                };
                let partitions = (0..topic.partitions.len() as i32)
                    .map(|index| {
                        MetadataResponsePartition::default()
                            .with_partition_index(index)
                            .with_leader_id(NODE_ID.into())
                            .with_leader_epoch(0)
                            .with_replica_nodes(vec![NODE_ID.into()])
                            .with_isr_nodes(vec![NODE_ID.into()])
                    })
                    .collect();
                response.with_partitions(partitions)
            })
            .collect();
        MetadataResponse::default()
            .with_brokers(vec![MetadataResponseBroker::default()
                .with_node_id(NODE_ID.into())
                .with_host(str_bytes(self.state.host.clone()))
                .with_port(self.state.port)])
            .with_cluster_id(Some(str_bytes(CLUSTER_ID)))
            .with_controller_id(NODE_ID.into())
            .with_topics(topics)
    }

    fn produce(&self, request: ProduceRequest) -> ProduceResponse {
        let acks_valid = matches!(request.acks, -1..=1);
        let mut appended = false;
        let responses = request
            .topic_data
            .into_iter()
            .map(|topic_data| {
                let topic = self.state.topic_or_create(&topic_data.name);
                let partition_responses = topic_data
                    .partition_data
                    .into_iter()
                    .map(|data| {
                        let response = PartitionProduceResponse::default()
                            .with_index(data.index)
                            .with_log_append_time_ms(-1)
                            .with_log_start_offset(0);
                        if !acks_valid {
                            return response.with_error_code(INVALID_REQUIRED_ACKS);
                        }
                        let log = topic.as_ref().and_then(|t| {
                            usize::try_from(data.index)
                                .ok()
                                .and_then(|i| t.partitions.get(i))
                        });
                        let Some(log) = log else {
                            return response.with_error_code(UNKNOWN_TOPIC_OR_PARTITION);
                        };
                        let batches = match data.records.as_ref().map(split_batches) {
                            Some(Ok(batches)) => batches,
                            Some(Err(e)) => return response.with_error_code(e.code()),
                            None => return response.with_error_code(AppendError::Corrupt.code()),
                        };
                        let limit = topic.as_ref().map_or(usize::MAX, |t| t.max_message_bytes());
                        if batches.iter().any(|b| b.len() > limit) {
                            return response.with_error_code(MESSAGE_TOO_LARGE);
                        }
                        let mut log = lock(log);
                        let mut base_offset = None;
                        for batch in batches {
                            match log.append(batch) {
                                Ok(offset) => {
                                    base_offset.get_or_insert(offset);
                                }
                                Err(e) => return response.with_error_code(e.code()),
                            }
                        }
                        appended = true;
                        response.with_base_offset(base_offset.unwrap_or(-1))
                    })
                    .collect();
                TopicProduceResponse::default()
                    .with_name(topic_data.name)
                    .with_partition_responses(partition_responses)
            })
            .collect();
        if appended {
            self.state.appended.notify_waiters();
        }
        ProduceResponse::default().with_responses(responses)
    }

    /// Answers at once when `min_bytes` are there, otherwise waits for appends until
    /// `max_wait_ms` (long polling: idle consumers do not spin).
    async fn fetch(&self, request: FetchRequest) -> FetchResponse {
        let deadline = Instant::now() + Duration::from_millis(request.max_wait_ms.max(0) as u64);
        loop {
            let notified = self.state.appended.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            let (response, bytes) = self.fetch_once(&request);
            let now = Instant::now();
            if bytes >= request.min_bytes.max(1) as usize
                || now >= deadline
                || bytes > 0 && request.min_bytes <= 1
            {
                return response;
            }
            if tokio::time::timeout(deadline - now, notified)
                .await
                .is_err()
            {
                return self.fetch_once(&request).0;
            }
        }
    }

    fn fetch_once(&self, request: &FetchRequest) -> (FetchResponse, usize) {
        let mut total = 0usize;
        let max_bytes = if request.max_bytes > 0 {
            request.max_bytes as usize
        } else {
            usize::MAX
        };
        let responses = request
            .topics
            .iter()
            .map(|fetch_topic| {
                let topic = self.state.topic(&fetch_topic.topic);
                let partitions = fetch_topic
                    .partitions
                    .iter()
                    .map(|p| {
                        let data = PartitionData::default()
                            .with_partition_index(p.partition)
                            .with_aborted_transactions(None);
                        let log = topic.as_ref().and_then(|t| {
                            usize::try_from(p.partition)
                                .ok()
                                .and_then(|i| t.partitions.get(i))
                        });
                        let Some(log) = log else {
                            return data
                                .with_error_code(UNKNOWN_TOPIC_OR_PARTITION)
                                .with_high_watermark(-1)
                                .with_records(None);
                        };
                        let log = lock(log);
                        let (start, end) = (log.start_offset(), log.end_offset());
                        let data = data
                            .with_high_watermark(end)
                            .with_last_stable_offset(end)
                            .with_log_start_offset(start);
                        if p.fetch_offset < start || p.fetch_offset > end {
                            return data.with_error_code(OFFSET_OUT_OF_RANGE).with_records(None);
                        }
                        let room = max_bytes.saturating_sub(total);
                        let limit = room.min(p.partition_max_bytes.max(0) as usize);
                        let batches = log.read(p.fetch_offset, limit, total == 0);
                        drop(log);
                        let size: usize = batches.iter().map(|b| b.len()).sum();
                        total += size;
                        let records = if batches.len() == 1 {
                            batches.into_iter().next().unwrap_or_default()
                        } else {
                            let mut joined = BytesMut::with_capacity(size);
                            for batch in batches {
                                joined.put_slice(&batch);
                            }
                            joined.freeze()
                        };
                        data.with_records(Some(records))
                    })
                    .collect();
                FetchableTopicResponse::default()
                    .with_topic(fetch_topic.topic.clone())
                    .with_partitions(partitions)
            })
            .collect();
        (FetchResponse::default().with_responses(responses), total)
    }

    fn list_offsets(&self, request: ListOffsetsRequest) -> ListOffsetsResponse {
        let topics = request
            .topics
            .into_iter()
            .map(|t| {
                let topic = self.state.topic(&t.name);
                let partitions = t
                    .partitions
                    .iter()
                    .map(|p| {
                        let response = ListOffsetsPartitionResponse::default()
                            .with_partition_index(p.partition_index)
                            .with_timestamp(-1)
                            .with_offset(-1)
                            .with_leader_epoch(0);
                        let log = topic.as_ref().and_then(|t| {
                            usize::try_from(p.partition_index)
                                .ok()
                                .and_then(|i| t.partitions.get(i))
                        });
                        let Some(log) = log else {
                            return response.with_error_code(UNKNOWN_TOPIC_OR_PARTITION);
                        };
                        let log = lock(log);
                        match p.timestamp {
                            -1 => response.with_offset(log.end_offset()),
                            -2 => response.with_offset(log.start_offset()),
                            -3 => match log.max_timestamp() {
                                Some((offset, ts)) => {
                                    response.with_offset(offset).with_timestamp(ts)
                                }
                                None => response,
                            },
                            ts if ts >= 0 => match log.offset_for_time(ts) {
                                Some((offset, found)) => {
                                    response.with_offset(offset).with_timestamp(found)
                                }
                                None => response,
                            },
                            _ => response.with_error_code(INVALID_REQUEST),
                        }
                    })
                    .collect();
                ListOffsetsTopicResponse::default()
                    .with_name(t.name)
                    .with_partitions(partitions)
            })
            .collect();
        ListOffsetsResponse::default().with_topics(topics)
    }

    fn create_topics(&self, request: CreateTopicsRequest) -> CreateTopicsResponse {
        let topics = request
            .topics
            .into_iter()
            .map(|t| {
                let name = t.name.to_string();
                let partitions = if !t.assignments.is_empty() {
                    t.assignments.len() as i32
                } else if t.num_partitions == -1 {
                    self.state.config.default_partitions
                } else {
                    t.num_partitions
                };
                let result = CreatableTopicResult::default()
                    .with_name(t.name.clone())
                    .with_num_partitions(partitions)
                    .with_replication_factor(1);
                if !matches!(t.replication_factor, -1 | 1)
                    || t.assignments.iter().any(|a| a.broker_ids.len() != 1)
                {
                    return result
                        .with_error_code(INVALID_REPLICATION_FACTOR)
                        .with_error_message(Some(str_bytes(format!(
                            "replication factor {} is more than the 1 broker of LocalKafka",
                            t.replication_factor
                        ))));
                }
                let configs: Vec<(String, String)> = t
                    .configs
                    .iter()
                    .filter_map(|c| {
                        c.value
                            .as_ref()
                            .map(|v| (c.name.to_string(), v.to_string()))
                    })
                    .collect();
                let outcome = if request.validate_only {
                    match self.state.topic(&name) {
                        Some(_) => Err(BrokerError::TopicExists(name.clone())),
                        None if !valid_topic_name(&name) => {
                            Err(BrokerError::InvalidTopic(name.clone()))
                        }
                        None if partitions < 1 => Err(BrokerError::InvalidPartitions {
                            topic: name.clone(),
                            partitions,
                        }),
                        None => Ok(()),
                    }
                } else {
                    self.state.create_topic(&name, partitions, configs)
                };
                match outcome {
                    Ok(()) => result,
                    Err(e) => result
                        .with_error_code(error_code(&e))
                        .with_error_message(Some(str_bytes(e.to_string()))),
                }
            })
            .collect();
        CreateTopicsResponse::default().with_topics(topics)
    }

    fn delete_topics(&self, request: DeleteTopicsRequest, version: i16) -> DeleteTopicsResponse {
        let names: Vec<TopicName> = if version >= 6 {
            request.topics.into_iter().filter_map(|t| t.name).collect()
        } else {
            request.topic_names
        };
        let responses = names
            .into_iter()
            .map(|name| {
                let result = DeletableTopicResult::default().with_name(Some(name.clone()));
                match self.state.delete_topic(&name) {
                    Ok(()) => result,
                    Err(e) => result
                        .with_error_code(error_code(&e))
                        .with_error_message(Some(str_bytes(e.to_string()))),
                }
            })
            .collect();
        DeleteTopicsResponse::default().with_responses(responses)
    }

    async fn join_group(&self, request: JoinGroupRequest, client_id: String) -> JoinGroupResponse {
        let answer = lock(&self.state.coordinator).join(JoinRequest {
            group_id: request.group_id.to_string(),
            member_id: request.member_id.to_string(),
            client_id,
            client_host: self.client_host.clone(),
            session_timeout: Duration::from_millis(request.session_timeout_ms.max(0) as u64),
            rebalance_timeout: Duration::from_millis(
                request
                    .rebalance_timeout_ms
                    .max(request.session_timeout_ms)
                    .max(0) as u64,
            ),
            protocol_type: request.protocol_type.to_string(),
            protocols: request
                .protocols
                .into_iter()
                .map(|p| (p.name.to_string(), p.metadata))
                .collect(),
        });
        let outcome = answer.await.unwrap_or_else(|_| groups::JoinOutcome {
            error: groups::REBALANCE_IN_PROGRESS,
            ..Default::default()
        });
        JoinGroupResponse::default()
            .with_error_code(outcome.error)
            .with_generation_id(if outcome.error == 0 {
                outcome.generation
            } else {
                -1
            })
            .with_protocol_type(Some(str_bytes(outcome.protocol_type)))
            .with_protocol_name(Some(str_bytes(outcome.protocol_name)))
            .with_leader(str_bytes(outcome.leader))
            .with_member_id(str_bytes(outcome.member_id))
            .with_members(
                outcome
                    .members
                    .into_iter()
                    .map(|(id, metadata)| {
                        JoinGroupResponseMember::default()
                            .with_member_id(str_bytes(id))
                            .with_metadata(metadata)
                    })
                    .collect(),
            )
    }

    async fn sync_group(&self, request: SyncGroupRequest) -> SyncGroupResponse {
        let (answer, protocol_type, protocol_name) = {
            let mut coordinator = lock(&self.state.coordinator);
            let answer = coordinator.sync(
                &request.group_id,
                request.generation_id,
                &request.member_id,
                request
                    .assignments
                    .into_iter()
                    .map(|a| (a.member_id.to_string(), a.assignment))
                    .collect(),
            );
            let group = coordinator.groups.get(request.group_id.as_str());
            (
                answer,
                group.map(|g| g.protocol_type.clone()).unwrap_or_default(),
                group.map(|g| g.protocol_name.clone()).unwrap_or_default(),
            )
        };
        let (error, assignment) = answer
            .await
            .unwrap_or((groups::REBALANCE_IN_PROGRESS, Bytes::new()));
        SyncGroupResponse::default()
            .with_error_code(error)
            .with_protocol_type(Some(str_bytes(protocol_type)))
            .with_protocol_name(Some(str_bytes(protocol_name)))
            .with_assignment(assignment)
    }

    fn leave_group(&self, request: LeaveGroupRequest) -> LeaveGroupResponse {
        let mut coordinator = lock(&self.state.coordinator);
        if request.members.is_empty() {
            let error = coordinator.leave(&request.group_id, &request.member_id);
            return LeaveGroupResponse::default().with_error_code(error);
        }
        let members = request
            .members
            .into_iter()
            .map(|m| {
                let error = coordinator.leave(&request.group_id, &m.member_id);
                leave_group_response::MemberResponse::default()
                    .with_member_id(m.member_id)
                    .with_group_instance_id(m.group_instance_id)
                    .with_error_code(error)
            })
            .collect();
        LeaveGroupResponse::default().with_members(members)
    }

    fn offset_commit(&self, request: OffsetCommitRequest) -> OffsetCommitResponse {
        let mut coordinator = lock(&self.state.coordinator);
        let allowed = coordinator.may_commit(
            &request.group_id,
            request.generation_id_or_member_epoch,
            &request.member_id,
        );
        let topics = request
            .topics
            .into_iter()
            .map(|t| {
                let topic = self.state.topic(&t.name);
                let partitions = t
                    .partitions
                    .into_iter()
                    .map(|p| {
                        let known = topic.as_ref().is_some_and(|t| {
                            (0..t.partitions.len() as i32).contains(&p.partition_index)
                        });
                        let error = if allowed != 0 {
                            allowed
                        } else if !known {
                            UNKNOWN_TOPIC_OR_PARTITION
                        } else {
                            self.state.commit(
                                &mut coordinator,
                                &request.group_id,
                                &t.name,
                                p.partition_index,
                                Committed {
                                    offset: p.committed_offset,
                                    metadata: p.committed_metadata.map(|m| m.to_string()),
                                },
                            );
                            0
                        };
                        OffsetCommitResponsePartition::default()
                            .with_partition_index(p.partition_index)
                            .with_error_code(error)
                    })
                    .collect();
                OffsetCommitResponseTopic::default()
                    .with_name(t.name)
                    .with_partitions(partitions)
            })
            .collect();
        OffsetCommitResponse::default().with_topics(topics)
    }

    fn offset_fetch(&self, request: OffsetFetchRequest) -> OffsetFetchResponse {
        let coordinator = lock(&self.state.coordinator);
        let committed = coordinator.offsets.get(request.group_id.as_str());
        let wanted: Vec<(String, Vec<i32>)> = match request.topics {
            Some(topics) => topics
                .into_iter()
                .map(|t| (t.name.to_string(), t.partition_indexes))
                .collect(),
            None => {
                let mut all: Vec<(String, Vec<i32>)> = Vec::new();
                for (topic, partition) in committed.into_iter().flat_map(|c| c.keys()) {
                    match all.last_mut() {
                        Some((name, partitions)) if name == topic => partitions.push(*partition),
                        _ => all.push((topic.clone(), vec![*partition])),
                    }
                }
                all
            }
        };
        let topics = wanted
            .into_iter()
            .map(|(name, partitions)| {
                let partitions = partitions
                    .into_iter()
                    .map(|partition| {
                        let found = committed.and_then(|c| c.get(&(name.clone(), partition)));
                        OffsetFetchResponsePartition::default()
                            .with_partition_index(partition)
                            .with_committed_offset(found.map_or(-1, |c| c.offset))
                            .with_committed_leader_epoch(-1)
                            .with_metadata(Some(str_bytes(
                                found.and_then(|c| c.metadata.clone()).unwrap_or_default(),
                            )))
                    })
                    .collect();
                OffsetFetchResponseTopic::default()
                    .with_name(str_bytes(name).into())
                    .with_partitions(partitions)
            })
            .collect();
        OffsetFetchResponse::default().with_topics(topics)
    }

    fn describe_groups(&self, request: DescribeGroupsRequest) -> DescribeGroupsResponse {
        let coordinator = lock(&self.state.coordinator);
        let groups = request
            .groups
            .into_iter()
            .map(|id| {
                let described = DescribedGroup::default().with_group_id(id.clone());
                match coordinator.groups.get(id.as_str()) {
                    Some(group) => described
                        .with_group_state(str_bytes(group.state.name()))
                        .with_protocol_type(str_bytes(group.protocol_type.clone()))
                        .with_protocol_data(str_bytes(group.protocol_name.clone()))
                        .with_members(
                            group
                                .members
                                .iter()
                                .map(|(member_id, m)| {
                                    let metadata = m
                                        .protocols
                                        .iter()
                                        .find(|(n, _)| *n == group.protocol_name)
                                        .map(|(_, md)| md.clone())
                                        .unwrap_or_default();
                                    DescribedGroupMember::default()
                                        .with_member_id(str_bytes(member_id.clone()))
                                        .with_client_id(str_bytes(m.client_id.clone()))
                                        .with_client_host(str_bytes(m.client_host.clone()))
                                        .with_member_metadata(metadata)
                                        .with_member_assignment(m.assignment.clone())
                                })
                                .collect(),
                        ),
                    None if coordinator.offsets.contains_key(id.as_str()) => {
                        described.with_group_state(str_bytes("Empty"))
                    }
                    None => described
                        .with_group_state(str_bytes("Dead"))
                        .with_error_code(GROUP_ID_NOT_FOUND),
                }
            })
            .collect();
        DescribeGroupsResponse::default().with_groups(groups)
    }

    fn describe_configs(&self, request: DescribeConfigsRequest) -> DescribeConfigsResponse {
        const TOPIC: i8 = 2;
        const BROKER: i8 = 4;
        let results = request
            .resources
            .into_iter()
            .map(|resource| {
                let result = DescribeConfigsResult::default()
                    .with_resource_type(resource.resource_type)
                    .with_resource_name(resource.resource_name.clone());
                let mut configs: Vec<(String, String, bool)> = match resource.resource_type {
                    TOPIC => match self.state.topic(&resource.resource_name) {
                        Some(topic) => {
                            let mut configs: Vec<(String, String, bool)> = topic
                                .configs
                                .iter()
                                .map(|(k, v)| (k.clone(), v.clone(), false))
                                .collect();
                            for (key, value) in
                                [("cleanup.policy", "delete"), ("retention.ms", "-1")]
                            {
                                if !configs.iter().any(|(k, _, _)| k == key) {
                                    configs.push((key.into(), value.into(), true));
                                }
                            }
                            configs
                        }
                        None => {
                            return result
                                .with_error_code(UNKNOWN_TOPIC_OR_PARTITION)
                                .with_error_message(Some(str_bytes(format!(
                                    "topic {:?} does not exist",
                                    resource.resource_name.as_str()
                                ))))
                        }
                    },
                    BROKER => vec![
                        (
                            "num.partitions".into(),
                            self.state.config.default_partitions.to_string(),
                            true,
                        ),
                        (
                            "auto.create.topics.enable".into(),
                            self.state.config.auto_create_topics.to_string(),
                            true,
                        ),
                    ],
                    _ => return result.with_error_code(INVALID_REQUEST),
                };
                if let Some(keys) = &resource.configuration_keys {
                    configs.retain(|(k, _, _)| keys.iter().any(|key| key.as_str() == k));
                }
                result.with_configs(
                    configs
                        .into_iter()
                        .map(|(name, value, default)| {
                            DescribeConfigsResourceResult::default()
                                .with_name(str_bytes(name))
                                .with_value(Some(str_bytes(value)))
                                // DEFAULT_CONFIG (5) or DYNAMIC_TOPIC_CONFIG (1)
                                .with_config_source(if default { 5 } else { 1 })
                        })
                        .collect(),
                )
            })
            .collect();
        DescribeConfigsResponse::default().with_results(results)
    }
}

fn api_versions(error_code: i16) -> ApiVersionsResponse {
    ApiVersionsResponse::default()
        .with_error_code(error_code)
        .with_api_keys(
            SUPPORTED
                .iter()
                .map(|(key, min, max)| {
                    api_versions_response::ApiVersion::default()
                        .with_api_key(*key as i16)
                        .with_min_version(*min)
                        .with_max_version(*max)
                })
                .collect(),
        )
}

async fn write_response<W: AsyncWriteExt + Unpin>(
    writer: &mut W,
    correlation_id: i32,
    header_version: i16,
    body: BytesMut,
) -> std::io::Result<()> {
    let mut header = BytesMut::new();
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut header, header_version)
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let size = (header.len() + body.len()) as i32;
    let mut out = BytesMut::with_capacity(4 + header.len());
    out.put_i32(size);
    out.extend_from_slice(&header);
    writer.write_all(&out).await?;
    writer.write_all(&body).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::tests::batch;
    use crate::{Broker, BrokerConfig};
    use kafka_protocol::messages::create_topics_request::CreatableTopic;
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::protocol::Request;

    /// A protocol client over one connection, one request at a time.
    struct Client {
        stream: TcpStream,
        correlation_id: i32,
    }

    impl Client {
        async fn connect(bootstrap: &str) -> Client {
            Client {
                stream: TcpStream::connect(bootstrap).await.unwrap(),
                correlation_id: 0,
            }
        }

        async fn call<R: Request + Encodable>(&mut self, request: &R, version: i16) -> Bytes
        where
            R::Response: Decodable,
        {
            self.correlation_id += 1;
            let mut frame = BytesMut::new();
            RequestHeader::default()
                .with_request_api_key(R::KEY)
                .with_request_api_version(version)
                .with_correlation_id(self.correlation_id)
                .with_client_id(Some(str_bytes("test")))
                .encode(&mut frame, R::header_version(version))
                .unwrap();
            request.encode(&mut frame, version).unwrap();
            self.stream.write_i32(frame.len() as i32).await.unwrap();
            self.stream.write_all(&frame).await.unwrap();
            let size = self.stream.read_i32().await.unwrap();
            let mut answer = BytesMut::zeroed(size as usize);
            self.stream.read_exact(&mut answer).await.unwrap();
            let mut answer = answer.freeze();
            let key = ApiKey::try_from(R::KEY).unwrap();
            let header =
                ResponseHeader::decode(&mut answer, key.response_header_version(version)).unwrap();
            assert_eq!(header.correlation_id, self.correlation_id);
            answer
        }

        async fn send<R: Request + Encodable>(&mut self, request: &R, version: i16) -> R::Response
        where
            R::Response: Decodable,
        {
            let mut answer = self.call(request, version).await;
            R::Response::decode(&mut answer, version).unwrap()
        }
    }

    fn produce_request(topic: &str, timestamps: &[i64]) -> ProduceRequest {
        ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(1000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(str_bytes(topic).into())
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(batch(timestamps, None)))])])
    }

    fn fetch_request(topic: &str, offset: i64, max_wait_ms: i32) -> FetchRequest {
        FetchRequest::default()
            .with_max_wait_ms(max_wait_ms)
            .with_min_bytes(1)
            .with_max_bytes(1 << 20)
            .with_topics(vec![FetchTopic::default()
                .with_topic(str_bytes(topic).into())
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(0)
                    .with_fetch_offset(offset)
                    .with_partition_max_bytes(1 << 20)])])
    }

    #[test]
    fn a_batch_over_the_topics_max_message_bytes_is_refused() {
        use kafka_protocol::messages::create_topics_request::CreatableTopicConfig;
        let broker = Broker::start(BrokerConfig::default()).unwrap();
        let bootstrap = broker.bootstrap().to_string();
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let mut client = Client::connect(&bootstrap).await;
            let create =
                CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
                    .with_name(str_bytes("small").into())
                    .with_num_partitions(1)
                    .with_replication_factor(-1)
                    .with_configs(vec![CreatableTopicConfig::default()
                        .with_name(str_bytes("max.message.bytes"))
                        .with_value(Some(str_bytes("80")))])]);
            assert_eq!(client.send(&create, 7).await.topics[0].error_code, 0);
            let big = client
                .send(&produce_request("small", &[1, 2, 3, 4]), 9)
                .await;
            let refused = &big.responses[0].partition_responses[0];
            assert_eq!(refused.error_code, MESSAGE_TOO_LARGE);
            let small = client.send(&produce_request("small", &[1]), 9).await;
            assert_eq!(small.responses[0].partition_responses[0].base_offset, 0);
        });
        drop(runtime);
        broker.stop();
    }

    #[test]
    fn a_client_creates_produces_long_polls_and_looks_up_times() {
        let broker = Broker::start(BrokerConfig {
            auto_create_topics: false,
            ..BrokerConfig::default()
        })
        .unwrap();
        let bootstrap = broker.bootstrap().to_string();
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let mut client = Client::connect(&bootstrap).await;
            let versions = client.send(&ApiVersionsRequest::default(), 3).await;
            assert_eq!(versions.error_code, 0);
            assert!(versions
                .api_keys
                .iter()
                .any(|k| k.api_key == 0 && k.max_version == 9));
            // a newer ApiVersions than served: a v0 answer with UNSUPPORTED_VERSION
            let mut too_new = client.call(&ApiVersionsRequest::default(), 4).await;
            let v0 = ApiVersionsResponse::decode(&mut too_new, 0).unwrap();
            assert_eq!(v0.error_code, UNSUPPORTED_VERSION);

            let ask = MetadataRequest::default().with_topics(Some(vec![
                MetadataRequestTopic::default().with_name(Some(str_bytes("t").into())),
            ]));
            let metadata = client.send(&ask, 9).await;
            assert_eq!(metadata.topics[0].error_code, UNKNOWN_TOPIC_OR_PARTITION);
            let create =
                CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
                    .with_name(str_bytes("t").into())
                    .with_num_partitions(2)
                    .with_replication_factor(1)]);
            assert_eq!(client.send(&create, 7).await.topics[0].error_code, 0);
            assert_eq!(
                client.send(&create, 7).await.topics[0].error_code,
                TOPIC_ALREADY_EXISTS
            );
            assert_eq!(client.send(&ask, 9).await.topics[0].partitions.len(), 2);

            let produced = client
                .send(&produce_request("t", &[100, 110, 120]), 9)
                .await;
            let partition = &produced.responses[0].partition_responses[0];
            assert_eq!((partition.error_code, partition.base_offset), (0, 0));
            let produced = client.send(&produce_request("t", &[200, 210]), 9).await;
            assert_eq!(produced.responses[0].partition_responses[0].base_offset, 3);

            // a fetch at the end waits for the next append instead of answering empty
            let waiting = tokio::spawn({
                let bootstrap = bootstrap.clone();
                async move {
                    let mut fetcher = Client::connect(&bootstrap).await;
                    let started = Instant::now();
                    let fetched = fetcher.send(&fetch_request("t", 5, 10_000), 12).await;
                    (fetched, started.elapsed())
                }
            });
            tokio::time::sleep(Duration::from_millis(300)).await;
            client.send(&produce_request("t", &[300]), 9).await;
            let (fetched, waited) = waiting.await.unwrap();
            let data = &fetched.responses[0].partitions[0];
            assert_eq!(data.high_watermark, 6);
            let records = data.records.as_ref().unwrap();
            assert_eq!(i64::from_be_bytes(records[..8].try_into().unwrap()), 5);
            assert!(waited >= Duration::from_millis(250), "{waited:?}");
            assert!(waited < Duration::from_secs(9), "{waited:?}");

            let everything = client.send(&fetch_request("t", 4, 0), 12).await;
            let records = everything.responses[0].partitions[0]
                .records
                .clone()
                .unwrap();
            // from the batch holding offset 4 (base 3) on: two batches
            assert_eq!(i64::from_be_bytes(records[..8].try_into().unwrap()), 3);
            let beyond = client.send(&fetch_request("t", 99, 0), 12).await;
            assert_eq!(
                beyond.responses[0].partitions[0].error_code,
                OFFSET_OUT_OF_RANGE
            );

            let by_time = |timestamp| {
                ListOffsetsRequest::default().with_topics(vec![ListOffsetsTopic::default()
                    .with_name(str_bytes("t").into())
                    .with_partitions(vec![ListOffsetsPartition::default()
                        .with_partition_index(0)
                        .with_timestamp(timestamp)])])
            };
            let mut offsets = Vec::new();
            for timestamp in [-2, -1, 105, 200, 301] {
                let answer = client.send(&by_time(timestamp), 7).await;
                offsets.push(answer.topics[0].partitions[0].offset);
            }
            assert_eq!(offsets, vec![0, 6, 1, 3, -1]);
        });
        drop(runtime);
        broker.stop();
    }
}
