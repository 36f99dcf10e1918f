//! A partition's log: the producers' record batches kept as bytes, offsets assigned by patching
//! each batch's header (its CRC covers neither the base offset nor the leader epoch), and
//! optionally appended to a file from which the log is rebuilt on start.

use std::collections::{HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};

use crate::BrokerError;

/// Byte layout of a v2 record batch header (Kafka's `DefaultRecordBatch`).
const BASE_OFFSET: usize = 0;
const BATCH_LENGTH: usize = 8;
const LEADER_EPOCH: usize = 12;
const MAGIC: usize = 16;
const ATTRIBUTES: usize = 21;
const LAST_OFFSET_DELTA: usize = 23;
const BASE_TIMESTAMP: usize = 27;
const MAX_TIMESTAMP: usize = 35;
const PRODUCER_ID: usize = 43;
const PRODUCER_EPOCH: usize = 51;
const BASE_SEQUENCE: usize = 53;
pub(crate) const HEADER_BYTES: usize = 61;
/// The bytes before `batchLength`'s count starts (base offset and the length itself).
const LOG_OVERHEAD: usize = 12;
/// How many recent batches per producer are remembered to recognise a retried one.
const PRODUCER_WINDOW: usize = 5;

/// Why a produced batch was refused; each maps to a Kafka error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendError {
    /// Not a well-formed v2 record batch (CORRUPT_MESSAGE).
    Corrupt,
    /// An older message format (UNSUPPORTED_FOR_MESSAGE_FORMAT).
    OldFormat,
    /// An idempotent producer's batch arrived out of sequence (OUT_OF_ORDER_SEQUENCE_NUMBER).
    OutOfOrder,
    /// An idempotent producer's epoch went backwards (INVALID_PRODUCER_EPOCH).
    StaleEpoch,
    /// The log's file could not be written (KAFKA_STORAGE_ERROR).
    Storage,
}

impl AppendError {
    pub fn code(self) -> i16 {
        match self {
            AppendError::Corrupt => 2,
            AppendError::OldFormat => 43,
            AppendError::OutOfOrder => 45,
            AppendError::StaleEpoch => 47,
            AppendError::Storage => 56,
        }
    }
}

/// One stored batch and what lookups need of its header.
struct StoredBatch {
    base_offset: i64,
    last_offset: i64,
    max_timestamp: i64,
    bytes: Bytes,
}

/// An idempotent producer's recent batches on this partition.
struct ProducerState {
    epoch: i16,
    /// (first sequence, last sequence, base offset) of its newest batches.
    recent: VecDeque<(i32, i32, i64)>,
}

pub struct PartitionLog {
    batches: Vec<StoredBatch>,
    next_offset: i64,
    stored_bytes: usize,
    producers: HashMap<i64, ProducerState>,
    file: Option<File>,
}

fn read_i16(bytes: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([bytes[at], bytes[at + 1]])
}

fn read_i32(bytes: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

fn read_i64(bytes: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

/// Splits a produce request's records into its batches, checking each one's framing.
pub fn split_batches(records: &Bytes) -> Result<Vec<Bytes>, AppendError> {
    let mut batches = Vec::new();
    let mut at = 0;
    while at < records.len() {
        if records.len() - at < HEADER_BYTES {
            return Err(if records.len() - at > MAGIC && records[at + MAGIC] < 2 {
                AppendError::OldFormat
            } else {
                AppendError::Corrupt
            });
        }
        if records[at + MAGIC] != 2 {
            return Err(AppendError::OldFormat);
        }
        let length = read_i32(records, at + BATCH_LENGTH);
        let total = LOG_OVERHEAD as i64 + i64::from(length);
        if total < HEADER_BYTES as i64 || at as i64 + total > records.len() as i64 {
            return Err(AppendError::Corrupt);
        }
        let total = total as usize;
        batches.push(records.slice(at..at + total));
        at += total;
    }
    if batches.is_empty() {
        return Err(AppendError::Corrupt);
    }
    Ok(batches)
}

impl PartitionLog {
    pub fn in_memory() -> Self {
        PartitionLog {
            batches: Vec::new(),
            next_offset: 0,
            stored_bytes: 0,
            producers: HashMap::new(),
            file: None,
        }
    }

    /// Opens (creating it if needed) the log file at `path` and rebuilds the log from it. A
    /// torn batch at the end (a crash mid-write) is cut off.
    pub fn open(path: &Path) -> Result<Self, BrokerError> {
        let io = |source| BrokerError::Io {
            context: format!("opening the log {}", path.display()),
            source,
        };
        let data = match std::fs::read(path) {
            Ok(data) => data,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(io(e)),
        };
        let data = Bytes::from(data);
        let mut log = PartitionLog::in_memory();
        let mut at = 0;
        while data.len() - at >= HEADER_BYTES {
            let total = LOG_OVERHEAD as i64 + i64::from(read_i32(&data, at + BATCH_LENGTH));
            if total < HEADER_BYTES as i64 || at as i64 + total > data.len() as i64 {
                break;
            }
            let batch = data.slice(at..at + total as usize);
            log.index(batch);
            at += total as usize;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(io)?;
        if at < data.len() {
            file.set_len(at as u64).map_err(io)?;
        }
        log.file = Some(file);
        Ok(log)
    }

    fn index(&mut self, bytes: Bytes) {
        let base_offset = read_i64(&bytes, BASE_OFFSET);
        let last_offset = base_offset + i64::from(read_i32(&bytes, LAST_OFFSET_DELTA));
        let max_timestamp = read_i64(&bytes, MAX_TIMESTAMP);
        self.next_offset = last_offset + 1;
        self.stored_bytes += bytes.len();
        self.batches.push(StoredBatch {
            base_offset,
            last_offset,
            max_timestamp,
            bytes,
        });
    }

    /// The offset the next message gets (Kafka's high watermark: one broker, no replicas).
    pub fn end_offset(&self) -> i64 {
        self.next_offset
    }

    pub fn start_offset(&self) -> i64 {
        self.batches
            .first()
            .map_or(self.next_offset, |b| b.base_offset)
    }

    pub fn stored_bytes(&self) -> usize {
        self.stored_bytes
    }

    /// Appends one producer batch and returns its base offset (for a retried batch of an
    /// idempotent producer, the offset it got the first time, without storing it again).
    pub fn append(&mut self, batch: Bytes) -> Result<i64, AppendError> {
        let header = &batch[..HEADER_BYTES];
        let last_delta = read_i32(header, LAST_OFFSET_DELTA);
        if last_delta < 0 {
            return Err(AppendError::Corrupt);
        }
        let producer_id = read_i64(header, PRODUCER_ID);
        let epoch = read_i16(header, PRODUCER_EPOCH);
        let first_sequence = read_i32(header, BASE_SEQUENCE);
        let control = read_i16(header, ATTRIBUTES) & 0x20 != 0;
        let idempotent = producer_id >= 0 && first_sequence >= 0 && !control;
        let last_sequence = first_sequence.wrapping_add(last_delta) & i32::MAX;
        if idempotent {
            if let Some(state) = self.producers.get(&producer_id) {
                if epoch < state.epoch {
                    return Err(AppendError::StaleEpoch);
                }
                if epoch == state.epoch {
                    if let Some(&(_, _, offset)) = state
                        .recent
                        .iter()
                        .find(|(first, last, _)| *first == first_sequence && *last == last_sequence)
                    {
                        return Ok(offset);
                    }
                    let expected = state
                        .recent
                        .back()
                        .map_or(0, |(_, last, _)| last.wrapping_add(1) & i32::MAX);
                    if first_sequence != expected {
                        return Err(AppendError::OutOfOrder);
                    }
                }
            }
        }
        let base_offset = self.next_offset;
        let mut patched = BytesMut::from(&batch[..]);
        patched[BASE_OFFSET..BASE_OFFSET + 8].copy_from_slice(&base_offset.to_be_bytes());
        patched[LEADER_EPOCH..LEADER_EPOCH + 4].copy_from_slice(&0i32.to_be_bytes());
        let patched = patched.freeze();
        if let Some(file) = self.file.as_mut() {
            file.write_all(&patched).map_err(|_| AppendError::Storage)?;
        }
        self.index(patched);
        if idempotent {
            let state = self
                .producers
                .entry(producer_id)
                .or_insert_with(|| ProducerState {
                    epoch,
                    recent: VecDeque::new(),
                });
            if state.epoch != epoch {
                state.epoch = epoch;
                state.recent.clear();
            }
            if state.recent.len() == PRODUCER_WINDOW {
                state.recent.pop_front();
            }
            state
                .recent
                .push_back((first_sequence, last_sequence, base_offset));
        }
        Ok(base_offset)
    }

    /// The index of the batch holding `offset` (or the first one after it).
    fn batch_at(&self, offset: i64) -> usize {
        self.batches.partition_point(|b| b.last_offset < offset)
    }

    /// The stored batches from the one holding `offset` on, up to `max_bytes` (at least one
    /// batch when `at_least_one`, so that a batch larger than the limit is still served).
    pub fn read(&self, offset: i64, max_bytes: usize, at_least_one: bool) -> Vec<Bytes> {
        let mut out = Vec::new();
        let mut total = 0;
        for batch in &self.batches[self.batch_at(offset)..] {
            if total + batch.bytes.len() > max_bytes && !(at_least_one && out.is_empty()) {
                break;
            }
            total += batch.bytes.len();
            out.push(batch.bytes.clone());
        }
        out
    }

    /// The first offset whose record's timestamp is `timestamp` or later, with that timestamp,
    /// or None when every record is older. Uncompressed batches are searched record by
    /// record; in a compressed one the batch's first offset is the answer.
    pub fn offset_for_time(&self, timestamp: i64) -> Option<(i64, i64)> {
        let batch = self.batches.iter().find(|b| b.max_timestamp >= timestamp)?;
        let bytes = &batch.bytes;
        let compressed = read_i16(bytes, ATTRIBUTES) & 0x07 != 0;
        if !compressed {
            if let Some(found) = first_record_at_or_after(bytes, timestamp) {
                return Some(found);
            }
        }
        Some((batch.base_offset, batch.max_timestamp))
    }

    /// The newest offset with the largest timestamp (ListOffsets' MAX_TIMESTAMP), batch-wise.
    pub fn max_timestamp(&self) -> Option<(i64, i64)> {
        let batch = self.batches.iter().rev().max_by_key(|b| b.max_timestamp)?;
        Some((batch.last_offset, batch.max_timestamp))
    }
}

/// Reads a zigzag varint at `*at`, moving past it.
fn read_varint(bytes: &[u8], at: &mut usize) -> Option<i64> {
    let mut value: u64 = 0;
    for shift in (0..64).step_by(7) {
        let byte = *bytes.get(*at)?;
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some((value >> 1) as i64 ^ -((value & 1) as i64));
        }
    }
    None
}

/// In an uncompressed batch: the first record with a timestamp of `timestamp` or later.
fn first_record_at_or_after(batch: &[u8], timestamp: i64) -> Option<(i64, i64)> {
    let base_offset = read_i64(batch, BASE_OFFSET);
    let base_timestamp = read_i64(batch, BASE_TIMESTAMP);
    let mut at = HEADER_BYTES;
    while at < batch.len() {
        let length = read_varint(batch, &mut at)?;
        let body = at;
        at += 1; // attributes
        let timestamp_delta = read_varint(batch, &mut at)?;
        let offset_delta = read_varint(batch, &mut at)?;
        let record_timestamp = base_timestamp + timestamp_delta;
        if record_timestamp >= timestamp {
            return Some((base_offset + offset_delta, record_timestamp));
        }
        at = body.checked_add(usize::try_from(length).ok()?)?;
    }
    None
}

/// Where a topic's partition logs live under the broker's directory.
pub fn partition_path(topic_dir: &Path, partition: i32) -> PathBuf {
    topic_dir.join(format!("{partition}.log"))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn put_varint(out: &mut Vec<u8>, value: i64) {
        let mut v = ((value << 1) ^ (value >> 63)) as u64;
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }

    /// A v2 batch of `timestamps.len()` empty-keyed records (CRC left zero: not checked).
    pub(crate) fn batch(timestamps: &[i64], producer: Option<(i64, i16, i32)>) -> Bytes {
        let mut records = Vec::new();
        for (i, ts) in timestamps.iter().enumerate() {
            let mut record = vec![0u8];
            put_varint(&mut record, ts - timestamps[0]);
            put_varint(&mut record, i as i64);
            put_varint(&mut record, -1); // key
            put_varint(&mut record, 1); // value length
            record.push(b'x');
            put_varint(&mut record, 0); // headers
            put_varint(&mut records, record.len() as i64);
            records.extend(record);
        }
        let (pid, epoch, seq) = producer.unwrap_or((-1, -1, -1));
        let mut out = Vec::new();
        out.extend(0i64.to_be_bytes());
        out.extend(((HEADER_BYTES - LOG_OVERHEAD + records.len()) as i32).to_be_bytes());
        out.extend(0i32.to_be_bytes());
        out.push(2);
        out.extend(0u32.to_be_bytes());
        out.extend(0i16.to_be_bytes());
        out.extend((timestamps.len() as i32 - 1).to_be_bytes());
        out.extend(timestamps[0].to_be_bytes());
        out.extend(timestamps.iter().max().unwrap().to_be_bytes());
        out.extend(pid.to_be_bytes());
        out.extend(epoch.to_be_bytes());
        out.extend(seq.to_be_bytes());
        out.extend((timestamps.len() as i32).to_be_bytes());
        out.extend(records);
        Bytes::from(out)
    }

    #[test]
    fn offsets_are_assigned_and_found_by_time() {
        let mut log = PartitionLog::in_memory();
        assert_eq!(log.append(batch(&[100, 110, 120], None)), Ok(0));
        assert_eq!(log.append(batch(&[200, 210], None)), Ok(3));
        assert_eq!(log.end_offset(), 5);
        assert_eq!(log.offset_for_time(0), Some((0, 100)));
        assert_eq!(log.offset_for_time(111), Some((2, 120)));
        assert_eq!(log.offset_for_time(121), Some((3, 200)));
        assert_eq!(log.offset_for_time(210), Some((4, 210)));
        assert_eq!(log.offset_for_time(211), None);
        let read = log.read(4, 1, true);
        assert_eq!(read.len(), 1);
        assert_eq!(read_i64(&read[0], BASE_OFFSET), 3);
        assert_eq!(log.read(0, usize::MAX, false).len(), 2);
        assert!(log.read(5, usize::MAX, true).is_empty());
    }

    #[test]
    fn idempotent_retries_are_stored_once_and_gaps_refused() {
        let mut log = PartitionLog::in_memory();
        assert_eq!(log.append(batch(&[1, 2], Some((7, 0, 0)))), Ok(0));
        assert_eq!(log.append(batch(&[3], Some((7, 0, 2)))), Ok(2));
        // the same batch again (a retry after a lost response)
        assert_eq!(log.append(batch(&[1, 2], Some((7, 0, 0)))), Ok(0));
        assert_eq!(log.end_offset(), 3);
        assert_eq!(
            log.append(batch(&[4], Some((7, 0, 5)))),
            Err(AppendError::OutOfOrder)
        );
        assert_eq!(
            log.append(batch(&[4], Some((7, -1, 3)))),
            Err(AppendError::StaleEpoch)
        );
        assert_eq!(log.append(batch(&[4], Some((7, 1, 0)))), Ok(3));
    }

    #[test]
    fn a_file_log_is_rebuilt_and_a_torn_tail_cut() {
        let dir = std::env::temp_dir().join(format!("kafkaml-broker-log-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = partition_path(&dir, 0);
        let _ = std::fs::remove_file(&path);
        {
            let mut log = PartitionLog::open(&path).unwrap();
            log.append(batch(&[1, 2], None)).unwrap();
            log.append(batch(&[3], None)).unwrap();
        }
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(&batch(&[9], None)[..20]).unwrap();
        drop(file);
        let mut log = PartitionLog::open(&path).unwrap();
        assert_eq!(log.end_offset(), 3);
        assert_eq!(log.append(batch(&[4], None)), Ok(3));
        drop(log);
        let log = PartitionLog::open(&path).unwrap();
        assert_eq!(log.end_offset(), 4);
        assert_eq!(log.offset_for_time(4), Some((3, 4)));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn malformed_batches_are_refused() {
        assert_eq!(
            split_batches(&Bytes::from_static(b"short")),
            Err(AppendError::Corrupt)
        );
        let mut old = batch(&[1], None).to_vec();
        old[MAGIC] = 1;
        assert_eq!(
            split_batches(&Bytes::from(old)),
            Err(AppendError::OldFormat)
        );
        let two = [batch(&[1], None), batch(&[2, 3], None)].concat();
        assert_eq!(split_batches(&Bytes::from(two)).unwrap().len(), 2);
    }
}
