//! Decoding while polling. Polling librdkafka's queue and decoding payloads each take a
//! core's worth of work; done one after the other, a read runs at the speed of their sum.
//! The poller hands each run of messages to a decode thread as the addresses of their keys
//! and values (the poller keeps the messages themselves until the decode thread is done), and
//! the decode thread keeps up on the other core.

use std::sync::mpsc::Receiver;

use super::KafkaError;
use crate::formats::{BatchDecoder, Decoded, Payload};
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
/// Every chunk already waiting is decoded in one call, so the backlog left when polling
/// ends is decoded with all cores (decoders split large inputs between threads).
/// With `rows`, each decoded part goes there at once and the batch returned has no rows.
pub fn decode_chunks(
    decoder: &mut dyn BatchDecoder,
    chunks: Receiver<HeldPayloads>,
    mut rows: Option<&mut dyn RowSink>,
) -> Result<Decoded, KafkaError> {
    let mut parts = Vec::new();
    let mut decoded_messages = 0;
    while let Ok(first) = chunks.recv() {
        let mut waiting = vec![first];
        waiting.extend(chunks.try_iter());
        let mut payloads = Vec::with_capacity(waiting.iter().map(HeldPayloads::len).sum());
        for chunk in &waiting {
            chunk.extend_payloads(&mut payloads);
        }
        let mut part = decoder.decode(&payloads)?;
        if let Some(rows) = rows.as_deref_mut() {
            part = move_rows(part, rows)?;
        }
        parts.push((decoded_messages, part));
        decoded_messages += payloads.len();
    }
    Ok(Decoded::concat(&decoder.schema(), parts)?)
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

    #[test]
    fn chunks_decode_in_order_with_failures_counted_from_the_first_message() {
        let schema = Arc::new(crate::formats::parse_column_declarations(&["V DOUBLE"]).unwrap());
        let mut decoder = CsvDecoder::new(schema, b',');
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
        let decoded = decode_chunks(&mut decoder, receiver, None).unwrap();
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
