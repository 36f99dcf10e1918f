//! Decoding while polling. Polling librdkafka's queue and decoding payloads each take a
//! core's worth of work; done one after the other, a read runs at the speed of their sum.
//! The poller hands each run of messages to decode threads as the addresses of their keys
//! and values (the poller keeps the messages themselves until the decode threads are done),
//! and the decode threads keep up on the other cores.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

use arrow_schema::SchemaRef;

use super::KafkaError;
use crate::formats::{empty_batch, BatchDecoder, Decoded, FormatError, Payload, SharedDecoder};
use crate::matrix::RowSink;

/// Messages per chunk handed to the decode thread: large enough that handing over is cheap,
/// small enough that the decoder starts soon after the poller.
pub const CHUNK_MESSAGES: usize = 1024;

/// Bytes owned by someone else, by address.
#[derive(Clone, Copy)]
struct HeldBytes {
    start: *const u8,
    len: usize,
}

impl HeldBytes {
    fn new(bytes: &[u8]) -> Self {
        HeldBytes {
            start: bytes.as_ptr(),
            len: bytes.len(),
        }
    }
}

/// The keys and values of a run of messages that the poller still holds, for a decode thread.
/// Not copies: copying them (and faulting in fresh memory for the copies) took a third of the
/// poller's time.
#[derive(Default)]
pub struct HeldPayloads {
    spans: Vec<(Option<HeldBytes>, Option<HeldBytes>)>,
}

// Safety: the bytes are only read, and `push`'s contract keeps them alive and unchanged while
// this value exists, on whichever thread it is.
unsafe impl Send for HeldPayloads {}

impl HeldPayloads {
    pub fn with_capacity(messages: usize) -> Self {
        HeldPayloads {
            spans: Vec::with_capacity(messages),
        }
    }

    /// Adds a message's key and value.
    ///
    /// # Safety
    /// The bytes must stay alive and unchanged for as long as this `HeldPayloads` exists:
    /// the poller keeps each message (librdkafka's buffer under it) until the decode thread
    /// that reads them has been joined.
    pub unsafe fn push(&mut self, key: Option<&[u8]>, value: Option<&[u8]>) {
        self.spans
            .push((key.map(HeldBytes::new), value.map(HeldBytes::new)));
    }

    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// Appends the payloads, borrowed for as long as `self`.
    fn extend_payloads<'a>(&'a self, payloads: &mut Vec<Payload<'a>>) {
        // Safety: `push`'s contract keeps every span's bytes valid while `self` lives.
        let bytes = |held: &HeldBytes| unsafe { std::slice::from_raw_parts(held.start, held.len) };
        payloads.extend(self.spans.iter().map(|(key, value)| Payload {
            key: key.as_ref().map(bytes),
            value: value.as_ref().map(bytes),
        }));
    }
}

/// Decodes chunks in arrival order until the sender hangs up, and returns them as one
/// [`Decoded`] whose failure indices count from the first message of the first chunk.
/// With `rows`, each decoded part goes there at once and the batch returned has no rows.
///
/// A decoder that several threads can share gets one thread per core (up to four):
/// decoding is a read's busiest thread (1.0 of ~1.85 CPU-s of a 1M-row CSV read here), and
/// a second one uses what room the other core has beside librdkafka's fetching (on this
/// 2-core machine, with the broker on it too, 1M JSON rows: 1.27 -> 1.21 s, median of 7).
/// On more cores, more of the decoding runs at once.
pub fn decode_chunks(
    decoder: &mut dyn BatchDecoder,
    chunks: Receiver<HeldPayloads>,
    mut rows: Option<&mut dyn RowSink>,
) -> Result<Decoded, KafkaError> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
    let schema = decoder.schema();
    // A float32 matrix takes rows that a shared decoder writes itself, where it can.
    let float32_columns = match (decoder.as_shared(), rows.as_deref_mut()) {
        (Some(_), Some(rows)) => rows.float32_columns(&schema),
        _ => None,
    };
    let out = RowsOut { rows, schema };
    let float32_columns = float32_columns.as_deref();
    match decoder.as_shared() {
        Some(shared) if threads > 1 => {
            decode_on_threads(shared, chunks, out, float32_columns, threads)
        }
        _ => decode_on_this_thread(decoder, chunks, out, float32_columns),
    }
}

/// Where a read's decoded parts go: into the matrix, when there is one.
struct RowsOut<'r> {
    rows: Option<&'r mut dyn RowSink>,
    schema: SchemaRef,
}

/// A decoded run of messages.
enum Part {
    Decoded(Decoded),
    /// Row-major float32 rows for the matrix (every message a row, no failures).
    Float32Rows(Vec<f32>),
}

/// Decodes `payloads` as float32 rows of `float32_columns` when given and the decoder can,
/// else as a batch.
fn decode_part(
    decoder: &dyn SharedDecoder,
    payloads: &[Payload<'_>],
    float32_columns: Option<&[usize]>,
) -> Result<Part, KafkaError> {
    let rows = float32_columns.and_then(|columns| decoder.decode_float32_rows(payloads, columns));
    match rows {
        Some(rows) => Ok(Part::Float32Rows(rows)),
        None => Ok(Part::Decoded(decoder.decode_shared(payloads)?)),
    }
}

impl RowsOut<'_> {
    /// Appends the part's rows to the matrix (if any), and returns what stays: the
    /// failures, and the batch when there is no matrix.
    fn take(&mut self, part: Part) -> Result<Decoded, KafkaError> {
        match (part, self.rows.as_deref_mut()) {
            (Part::Decoded(decoded), Some(rows)) => move_rows(decoded, rows),
            (Part::Decoded(decoded), None) => Ok(decoded),
            (Part::Float32Rows(values), Some(rows)) => {
                rows.append_float32_rows(&values)?;
                Ok(Decoded {
                    batch: empty_batch(&self.schema),
                    failures: Vec::new(),
                })
            }
            (Part::Float32Rows(_), None) => Err(FormatError::Schema(
                "float32 rows decoded for a read without a matrix".into(),
            )
            .into()),
        }
    }
}

/// Decodes on this thread. Every chunk already waiting is decoded in one call, so the
/// backlog left when polling ends is decoded with all cores (decoders split large inputs
/// between threads).
fn decode_on_this_thread(
    decoder: &mut dyn BatchDecoder,
    chunks: Receiver<HeldPayloads>,
    mut out: RowsOut<'_>,
    float32_columns: Option<&[usize]>,
) -> Result<Decoded, KafkaError> {
    let mut parts = Vec::new();
    let mut decoded_messages = 0;
    while let Ok(first) = chunks.recv() {
        let mut waiting = vec![first];
        waiting.extend(chunks.try_iter());
        let payloads = joined_payloads(&waiting);
        // Only a float32 matrix's decoding goes through the shared decoder here: `decode`
        // may split a large backlog between threads.
        let as_rows = match decoder.as_shared() {
            Some(shared) if float32_columns.is_some() => {
                Some(decode_part(shared, &payloads, float32_columns)?)
            }
            _ => None,
        };
        let part = match as_rows {
            Some(part) => part,
            None => Part::Decoded(decoder.decode(&payloads)?),
        };
        parts.push((decoded_messages, out.take(part)?));
        decoded_messages += payloads.len();
    }
    Ok(Decoded::concat(&out.schema, parts)?)
}

/// Chunks one thread takes at a time when several decode: few, so that the backlog left
/// when polling ends is shared out between them.
const CHUNKS_PER_TAKE: usize = 2;

/// The decoded parts, kept in chunk order: a thread that finished early waits for its turn.
struct InOrder<'r> {
    /// The take whose part goes next.
    next_take: usize,
    parts: Vec<(usize, Decoded)>,
    out: RowsOut<'r>,
    failed: Option<KafkaError>,
}

/// Decodes on `threads` threads (this one among them), each taking the next chunks waiting.
fn decode_on_threads(
    decoder: &dyn SharedDecoder,
    chunks: Receiver<HeldPayloads>,
    out: RowsOut<'_>,
    float32_columns: Option<&[usize]>,
    threads: usize,
) -> Result<Decoded, KafkaError> {
    // The receiver, the number of the next take and the messages taken before it.
    let intake = Mutex::new((chunks, 0usize, 0usize));
    let in_order = Mutex::new(InOrder {
        next_take: 0,
        parts: Vec::new(),
        out,
        failed: None,
    });
    let turn_taken = Condvar::new();
    // Once a part has failed, the chunks still coming are not decoded (nothing will use them).
    let failed = AtomicBool::new(false);
    let work = || loop {
        let (take, first_message, waiting) = {
            let mut intake = lock(&intake);
            let (receiver, next_take, taken_messages) = &mut *intake;
            let Ok(first) = receiver.recv() else { break };
            let mut waiting = vec![first];
            waiting.extend(receiver.try_iter().take(CHUNKS_PER_TAKE - 1));
            let this = (*next_take, *taken_messages, waiting);
            *next_take += 1;
            *taken_messages += this.2.iter().map(HeldPayloads::len).sum::<usize>();
            this
        };
        let payloads = joined_payloads(&waiting);
        let decoded = if failed.load(Ordering::Relaxed) {
            Err(FormatError::Schema("not decoded: an earlier part failed".into()).into())
        } else {
            without_panic(|| decode_part(decoder, &payloads, float32_columns))
        };
        let mut state = lock(&in_order);
        while state.next_take != take {
            state = turn_taken
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        if state.failed.is_none() {
            let moved = decoded.and_then(|part| without_panic(|| state.out.take(part)));
            match moved {
                Ok(part) => state.parts.push((first_message, part)),
                Err(error) => {
                    failed.store(true, Ordering::Relaxed);
                    state.failed = Some(error);
                }
            }
        }
        state.next_take += 1;
        turn_taken.notify_all();
    };
    std::thread::scope(|scope| {
        for _ in 1..threads {
            // A thread the system refuses is one fewer decoding.
            let _ = std::thread::Builder::new().spawn_scoped(scope, work);
        }
        work();
    });
    let state = in_order
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner);
    match state.failed {
        Some(error) => Err(error),
        None => Ok(Decoded::concat(&state.out.schema, state.parts)?),
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs `step`, turning a panic into an error: a thread that panicked would never take its
/// turn, and the others would wait for it forever.
fn without_panic<T>(step: impl FnOnce() -> Result<T, KafkaError>) -> Result<T, KafkaError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(step))
        .unwrap_or_else(|_| Err(FormatError::Schema("a decoder thread panicked".into()).into()))
}

/// The payloads of `chunks`, in order, borrowed from them.
fn joined_payloads(chunks: &[HeldPayloads]) -> Vec<Payload<'_>> {
    let mut payloads = Vec::with_capacity(chunks.iter().map(HeldPayloads::len).sum());
    for chunk in chunks {
        chunk.extend_payloads(&mut payloads);
    }
    payloads
}

/// Appends the decoded rows to `rows` and leaves the batch without them (the failures stay).
pub fn move_rows(decoded: Decoded, rows: &mut dyn RowSink) -> Result<Decoded, KafkaError> {
    rows.append(&decoded.batch)?;
    let batch = decoded.batch.slice(0, 0);
    Ok(Decoded { batch, ..decoded })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::cast::AsArray;
    use arrow_array::types::Float64Type;

    use super::*;
    use crate::formats::csv::CsvDecoder;
    use crate::matrix::{MatrixError, MatrixRows};

    #[test]
    fn chunks_decode_in_order_with_failures_counted_from_the_first_message() {
        let schema = one_double_column();
        let mut decoder = CsvDecoder::new(schema.clone(), b',');
        let (sender, receiver) = std::sync::mpsc::channel();
        let mut expected = Vec::new();
        // message 7 is malformed; message 4 has a key, which the csv decoder ignores
        let values: Vec<String> = (0..15)
            .map(|n| if n == 7 { "x".into() } else { n.to_string() })
            .collect();
        for chunk in 0..5 {
            let mut held = HeldPayloads::default();
            for i in 0..3 {
                let n = chunk * 3 + i;
                // Safety: `values` outlives every chunk (decoded below, before it is dropped).
                unsafe {
                    held.push(
                        (n == 4).then_some(b"k".as_slice()),
                        Some(values[n].as_bytes()),
                    )
                };
                if n != 7 {
                    expected.push(n as f64);
                }
            }
            sender.send(held).unwrap();
        }
        drop(sender);
        // On this thread: decode_chunks would take the threads' path for a flat csv decoder.
        let decoded =
            decode_on_this_thread(&mut decoder, receiver, no_matrix(&schema), None).unwrap();
        let values: Vec<f64> = decoded
            .batch
            .column(0)
            .as_primitive::<Float64Type>()
            .values()
            .to_vec();
        assert_eq!(values, expected);
        assert_eq!(decoded.failures.len(), 1);
        assert_eq!(decoded.failures[0].index, 7);
    }

    /// `values` in chunks of `chunk_len`, all sent before decoding starts.
    fn sent_in_chunks(values: &[String], chunk_len: usize) -> Receiver<HeldPayloads> {
        let (sender, receiver) = std::sync::mpsc::channel();
        for chunk in values.chunks(chunk_len) {
            let mut held = HeldPayloads::with_capacity(chunk.len());
            for value in chunk {
                // Safety: every test keeps `values` until decoding has returned.
                unsafe { held.push(None, Some(value.as_bytes())) };
            }
            sender.send(held).unwrap();
        }
        receiver
    }

    fn no_matrix(schema: &SchemaRef) -> RowsOut<'static> {
        RowsOut {
            rows: None,
            schema: schema.clone(),
        }
    }

    fn into_matrix<'r>(rows: &'r mut dyn RowSink, schema: &SchemaRef) -> RowsOut<'r> {
        RowsOut {
            rows: Some(rows),
            schema: schema.clone(),
        }
    }

    #[test]
    fn float32_rows_and_decoded_batches_join_the_matrix_in_order() {
        // A malformed line sends its chunk down the batch path; an exponent only its line
        // to the scalar parser; the matrix takes W before V.
        let bad = |n: usize| n % 997 == 5;
        let values: Vec<String> = (0..20_000)
            .map(|n| match n {
                _ if bad(n) => "x,1".to_string(),
                _ if n % 13 == 0 => format!("{n}e-3,-{n}"),
                _ => format!("{n}.1,-{n}"),
            })
            .collect();
        let mut rows = MatrixRows::<f32>::new(Some(vec!["W".into(), "V".into()]), None, 0);
        let decoded = v_and_w_into_float32_matrix(&values, &mut rows, [1, 0], 3).unwrap();
        let (matrix, count, width) = rows.finish(None).unwrap();
        let expected: Vec<f32> = (0..20_000)
            .filter(|n| !bad(*n))
            .flat_map(|n| {
                let v: f64 = match n % 13 {
                    0 => format!("{n}e-3").parse().unwrap(),
                    _ => format!("{n}.1").parse().unwrap(),
                };
                [-(n as f64) as f32, v as f32]
            })
            .collect();
        assert_eq!((count, width), (expected.len() / 2, 2));
        assert_eq!(matrix, expected);
        let failed: Vec<usize> = decoded.failures.iter().map(|f| f.index).collect();
        assert_eq!(failed, (0..20_000).filter(|n| bad(*n)).collect::<Vec<_>>());
    }

    /// `values`, csv lines of columns V and W, decoded on `threads` threads into `rows`, a
    /// float32 matrix that must first say it takes float32 rows of `expected_columns`.
    fn v_and_w_into_float32_matrix(
        values: &[String],
        rows: &mut MatrixRows<f32>,
        expected_columns: [usize; 2],
        threads: usize,
    ) -> Result<Decoded, KafkaError> {
        let schema =
            Arc::new(crate::formats::parse_column_declarations(&["V DOUBLE", "W DOUBLE"]).unwrap());
        let decoder = CsvDecoder::new(schema.clone(), b',');
        let columns = rows.float32_columns(&schema);
        assert_eq!(columns.as_deref(), Some(expected_columns.as_slice()));
        decode_on_threads(
            decoder.as_shared().expect("flat csv is shared"),
            sent_in_chunks(values, 100),
            into_matrix(rows, &schema),
            columns.as_deref(),
            threads,
        )
    }

    fn one_double_column() -> SchemaRef {
        Arc::new(crate::formats::parse_column_declarations(&["V DOUBLE"]).unwrap())
    }

    #[test]
    fn threads_append_rows_in_chunk_order_with_failures_counted_from_the_first_message() {
        let schema = one_double_column();
        let decoder = CsvDecoder::new(schema.clone(), b',');
        let bad = |n: usize| n % 997 == 5;
        let values: Vec<String> = (0..20_000)
            .map(|n| if bad(n) { "x".into() } else { n.to_string() })
            .collect();
        let mut rows = MatrixRows::<f64>::new(None, None, 0);
        assert_eq!(rows.float32_columns(&schema), None);
        let decoded = decode_on_threads(
            decoder.as_shared().expect("flat csv is shared"),
            sent_in_chunks(&values, 100),
            into_matrix(&mut rows, &schema),
            None,
            3,
        )
        .unwrap();
        let (matrix, count, width) = rows.finish(None).unwrap();
        let expected: Vec<f64> = (0..20_000).filter(|n| !bad(*n)).map(|n| n as f64).collect();
        assert_eq!((count, width), (expected.len(), 1));
        assert_eq!(matrix, expected);
        assert_eq!(decoded.batch.num_rows(), 0);
        let failed: Vec<usize> = decoded.failures.iter().map(|f| f.index).collect();
        assert_eq!(failed, (0..20_000).filter(|n| bad(*n)).collect::<Vec<_>>());
    }

    #[test]
    fn a_null_stops_the_threads_with_its_row_in_the_whole_matrix() {
        // Message 12,345 has no V: a null, which a matrix without `fill` refuses.
        let values: Vec<String> = (0..20_000)
            .map(|n| match n {
                12_345 => ",1".to_string(),
                _ => format!("{n},1"),
            })
            .collect();
        // Float32: the chunks without the null go into the matrix as float32 rows.
        let mut rows = MatrixRows::<f32>::new(None, None, 0);
        let error = v_and_w_into_float32_matrix(&values, &mut rows, [0, 1], 2).unwrap_err();
        assert!(
            matches!(
                &error,
                KafkaError::Matrix(MatrixError::Null { row: 12_345, .. })
            ),
            "{error}"
        );
    }

    /// Decodes as csv, but panics at the message "boom".
    struct PanicsAtBoom(CsvDecoder);

    impl SharedDecoder for PanicsAtBoom {
        fn decode_shared(&self, payloads: &[Payload<'_>]) -> Result<Decoded, FormatError> {
            assert!(
                payloads.iter().all(|p| p.value != Some(b"boom".as_slice())),
                "boom"
            );
            self.0
                .as_shared()
                .expect("flat csv is shared")
                .decode_shared(payloads)
        }
    }

    #[test]
    fn a_panicking_decoder_is_an_error_not_a_hang() {
        let schema = one_double_column();
        let decoder = PanicsAtBoom(CsvDecoder::new(schema.clone(), b','));
        let values: Vec<String> = (0..5_000)
            .map(|n| {
                if n == 2_500 {
                    "boom".into()
                } else {
                    n.to_string()
                }
            })
            .collect();
        let result = decode_on_threads(
            &decoder,
            sent_in_chunks(&values, 100),
            no_matrix(&schema),
            None,
            2,
        );
        assert!(matches!(result, Err(e) if e.to_string().contains("panicked")));
    }

    #[test]
    fn held_payloads_keep_absent_and_empty_apart() {
        let mut held = HeldPayloads::with_capacity(3);
        // Safety: static bytes.
        unsafe {
            held.push(None, Some(b"a"));
            held.push(Some(b""), None);
            held.push(Some(b"key"), Some(b""));
        }
        let mut p = Vec::new();
        held.extend_payloads(&mut p);
        assert_eq!(held.len(), 3);
        assert_eq!((p[0].key, p[0].value), (None, Some(b"a".as_slice())));
        assert_eq!((p[1].key, p[1].value), (Some(b"".as_slice()), None));
        assert_eq!(
            (p[2].key, p[2].value),
            (Some(b"key".as_slice()), Some(b"".as_slice()))
        );
    }
}
