//! Decoding while polling. Polling librdkafka's queue and decoding payloads each take a
//! core's worth of work; done one after the other, a read runs at the speed of their sum.
//! The poller copies each run of messages into an owned chunk (librdkafka's buffers belong
//! to the consumer's thread) and hands it to a decode thread, which keeps up on the other core.

use std::ops::Range;
use std::sync::mpsc::Receiver;

use crate::formats::{BatchDecoder, Decoded, FormatError, Payload};

/// Messages per chunk handed to the decode thread: large enough that handing over is cheap,
/// small enough that the decoder starts soon after the poller.
pub const CHUNK_MESSAGES: usize = 1024;

/// Keys and values copied out of librdkafka's buffers, so that another thread may decode them.
#[derive(Default)]
pub struct OwnedPayloads {
    bytes: Vec<u8>,
    spans: Vec<(Option<Range<usize>>, Option<Range<usize>>)>,
}

impl OwnedPayloads {
    pub fn with_capacity(messages: usize, bytes: usize) -> Self {
        OwnedPayloads {
            bytes: Vec::with_capacity(bytes),
            spans: Vec::with_capacity(messages),
        }
    }

    /// Bytes of keys and values held.
    pub fn bytes_len(&self) -> usize {
        self.bytes.len()
    }

    pub fn push(&mut self, key: Option<&[u8]>, value: Option<&[u8]>) {
        let key = key.map(|k| self.copy(k));
        let value = value.map(|v| self.copy(v));
        self.spans.push((key, value));
    }

    fn copy(&mut self, bytes: &[u8]) -> Range<usize> {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(bytes);
        start..self.bytes.len()
    }

    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    pub fn payloads(&self) -> Vec<Payload<'_>> {
        self.spans
            .iter()
            .map(|(key, value)| Payload {
                key: key.clone().map(|r| &self.bytes[r]),
                value: value.clone().map(|r| &self.bytes[r]),
            })
            .collect()
    }
}

/// Decodes chunks in arrival order until the sender hangs up, and returns them as one
/// [`Decoded`] whose failure indices count from the first message of the first chunk.
/// Every chunk already waiting is decoded in one call, so the backlog left when polling
/// ends is decoded with all cores (decoders split large inputs between threads).
pub fn decode_chunks(
    decoder: &mut dyn BatchDecoder,
    chunks: Receiver<OwnedPayloads>,
) -> Result<Decoded, FormatError> {
    let mut parts = Vec::new();
    let mut decoded_messages = 0;
    while let Ok(first) = chunks.recv() {
        let mut waiting = vec![first];
        waiting.extend(chunks.try_iter());
        let payloads: Vec<Payload<'_>> = waiting.iter().flat_map(|c| c.payloads()).collect();
        parts.push((decoded_messages, decoder.decode(&payloads)?));
        decoded_messages += payloads.len();
    }
    Decoded::concat(&decoder.schema(), parts)
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
        for chunk in 0..5 {
            let mut owned = OwnedPayloads::default();
            for i in 0..3 {
                let n = chunk * 3 + i;
                // message 7 is malformed; message 4 has a key, which the csv decoder ignores
                let value = if n == 7 {
                    "x".to_string()
                } else {
                    n.to_string()
                };
                owned.push((n == 4).then_some(b"k".as_slice()), Some(value.as_bytes()));
                if n != 7 {
                    expected.push(n as f64);
                }
            }
            sender.send(owned).unwrap();
        }
        drop(sender);
        let decoded = decode_chunks(&mut decoder, receiver).unwrap();
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
    fn owned_payloads_keep_absent_and_empty_apart() {
        let mut owned = OwnedPayloads::with_capacity(3, 16);
        owned.push(None, Some(b"a"));
        owned.push(Some(b""), None);
        owned.push(Some(b"key"), Some(b""));
        let p = owned.payloads();
        assert_eq!(owned.len(), 3);
        assert_eq!((p[0].key, p[0].value), (None, Some(b"a".as_slice())));
        assert_eq!((p[1].key, p[1].value), (Some(b"".as_slice()), None));
        assert_eq!(
            (p[2].key, p[2].value),
            (Some(b"key".as_slice()), Some(b"".as_slice()))
        );
    }
}
