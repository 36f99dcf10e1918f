//! A compact, self-describing, versioned byte encoding of a [`Value`], for the accumulator
//! snapshots ([`super::udaf::Accumulator::snapshot`]) a runtime writes to its changelog topic
//! and reads back at start. Hand-written rather than serde: the layout is the on-disk format,
//! so it must not move with a library's choices, and every double must come back bit-exact.
//!
//! Layout: one format-version byte ([`FORMAT_VERSION`]), then one value. A value is a tag byte
//! and its payload, integers little-endian:
//!
//! | tag  | variant   | payload                                           |
//! |------|-----------|---------------------------------------------------|
//! | 0x00 | Null      | none                                              |
//! | 0x01 | Boolean   | one byte, 0 or 1                                  |
//! | 0x02 | Integer   | i32                                               |
//! | 0x03 | BigInt    | i64                                               |
//! | 0x04 | Double    | the f64's bits as u64 (-0.0 and NaN payloads kept) |
//! | 0x05 | Decimal   | unscaled i128, then the scale as one byte         |
//! | 0x06 | String    | u32 byte length, then UTF-8                       |
//! | 0x07 | Bytes     | u32 length, then the bytes                        |
//! | 0x08 | Date      | i32 (days)                                        |
//! | 0x09 | Time      | i64 (milliseconds)                                |
//! | 0x0A | Timestamp | i64 (milliseconds)                                |
//! | 0x0B | Array     | u32 count, then that many values                  |
//! | 0x0C | Map       | u32 count, then that many key, value pairs        |
//! | 0x0D | Struct    | u32 count, then that many values                  |
//!
//! Decoding checks everything (lengths against the bytes left, UTF-8, the boolean byte, no
//! bytes after the value, nesting depth) and never panics: garbage gives an `Err` that names
//! the byte offset where it stopped making sense.

use crate::value::Value;

/// The layout above. A later layout takes a new number, and the decoder keeps reading this one.
pub const FORMAT_VERSION: u8 = 1;

/// Containers nested deeper than this are refused: no SQL type nests anywhere near it, and the
/// limit keeps a garbage run of container tags from overflowing the decoder's stack.
pub const MAX_DEPTH: usize = 256;

const NULL: u8 = 0x00;
const BOOLEAN: u8 = 0x01;
const INTEGER: u8 = 0x02;
const BIGINT: u8 = 0x03;
const DOUBLE: u8 = 0x04;
const DECIMAL: u8 = 0x05;
const STRING: u8 = 0x06;
const BYTES: u8 = 0x07;
const DATE: u8 = 0x08;
const TIME: u8 = 0x09;
const TIMESTAMP: u8 = 0x0A;
const ARRAY: u8 = 0x0B;
const MAP: u8 = 0x0C;
const STRUCT: u8 = 0x0D;

/// The value's bytes: the format version, then the value.
pub fn encode_value(value: &Value) -> Vec<u8> {
    let mut out = vec![FORMAT_VERSION];
    write_value(value, &mut out);
    out
}

/// Appends one value in the layout above (no version byte): with the header functions below,
/// a larger value is written part by part, the bytes `encode_value` gives for its tree,
/// without building the tree.
pub fn write(value: &Value, out: &mut Vec<u8>) {
    write_value(value, out);
}

/// Appends what a `STRUCT` of `fields` values writes before them.
pub fn write_struct_header(fields: usize, out: &mut Vec<u8>) {
    out.push(STRUCT);
    write_length(fields, out);
}

/// Appends what an `ARRAY` of `items` values writes before them.
pub fn write_array_header(items: usize, out: &mut Vec<u8>) {
    out.push(ARRAY);
    write_length(items, out);
}

/// Appends a `STRING` value.
pub fn write_str(text: &str, out: &mut Vec<u8>) {
    out.push(STRING);
    write_length(text.len(), out);
    out.extend_from_slice(text.as_bytes());
}

fn write_value(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.push(NULL),
        Value::Boolean(b) => out.extend_from_slice(&[BOOLEAN, *b as u8]),
        Value::Integer(v) => {
            out.push(INTEGER);
            out.extend_from_slice(&v.to_le_bytes());
        }
        Value::BigInt(v) => {
            out.push(BIGINT);
            out.extend_from_slice(&v.to_le_bytes());
        }
        Value::Double(v) => {
            out.push(DOUBLE);
            out.extend_from_slice(&v.to_bits().to_le_bytes());
        }
        Value::Decimal { unscaled, scale } => {
            out.push(DECIMAL);
            out.extend_from_slice(&unscaled.to_le_bytes());
            out.push(*scale);
        }
        Value::String(s) => write_str(s, out),
        Value::Bytes(b) => {
            out.push(BYTES);
            write_length(b.len(), out);
            out.extend_from_slice(b);
        }
        Value::Date(v) => {
            out.push(DATE);
            out.extend_from_slice(&v.to_le_bytes());
        }
        Value::Time(v) => {
            out.push(TIME);
            out.extend_from_slice(&v.to_le_bytes());
        }
        Value::Timestamp(v) => {
            out.push(TIMESTAMP);
            out.extend_from_slice(&v.to_le_bytes());
        }
        Value::Array(items) | Value::Struct(items) => {
            out.push(if matches!(value, Value::Array(_)) {
                ARRAY
            } else {
                STRUCT
            });
            write_length(items.len(), out);
            for item in items {
                write_value(item, out);
            }
        }
        Value::Map(entries) => {
            out.push(MAP);
            write_length(entries.len(), out);
            for (key, value) in entries {
                write_value(key, out);
                write_value(value, out);
            }
        }
    }
}

fn write_length(n: usize, out: &mut Vec<u8>) {
    // A snapshot is one Kafka record (a megabyte by default), nowhere near 4 GiB: a u32 holds
    // every length a record can carry.
    let n = u32::try_from(n).expect("a snapshot part of 4 GiB or more cannot be a Kafka record");
    out.extend_from_slice(&n.to_le_bytes());
}

/// The value [`encode_value`] wrote, or what did not fit and at which byte.
pub fn decode_value(bytes: &[u8]) -> Result<Value, String> {
    let mut reader = Reader { bytes, offset: 0 };
    let version = reader.byte("the format version")?;
    if version != FORMAT_VERSION {
        return Err(format!(
            "byte 0: unknown snapshot format version {version} (this engine reads version \
             {FORMAT_VERSION})"
        ));
    }
    let value = reader.value(0)?;
    if reader.offset != bytes.len() {
        return Err(format!(
            "byte {}: {} bytes left over after the value",
            reader.offset,
            bytes.len() - reader.offset
        ));
    }
    Ok(value)
}

struct Reader<'a> {
    bytes: &'a [u8],
    offset: usize,
}

impl<'a> Reader<'a> {
    fn left(&self) -> usize {
        self.bytes.len() - self.offset
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], String> {
        if n > self.left() {
            return Err(format!(
                "byte {}: truncated: {what} needs {n} bytes, {} left",
                self.offset,
                self.left()
            ));
        }
        let part = &self.bytes[self.offset..self.offset + n];
        self.offset += n;
        Ok(part)
    }

    fn fixed<const N: usize>(&mut self, what: &str) -> Result<[u8; N], String> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    fn byte(&mut self, what: &str) -> Result<u8, String> {
        Ok(self.fixed::<1>(what)?[0])
    }

    fn length(&mut self, what: &str) -> Result<usize, String> {
        Ok(u32::from_le_bytes(self.fixed(what)?) as usize)
    }

    fn value(&mut self, depth: usize) -> Result<Value, String> {
        let at = self.offset;
        let tag = self.byte("a value's tag")?;
        Ok(match tag {
            NULL => Value::Null,
            BOOLEAN => match self.byte("a BOOLEAN")? {
                0 => Value::Boolean(false),
                1 => Value::Boolean(true),
                other => return Err(format!("byte {}: a BOOLEAN is 0 or 1, not {other}", at + 1)),
            },
            INTEGER => Value::Integer(i32::from_le_bytes(self.fixed("an INTEGER")?)),
            BIGINT => Value::BigInt(i64::from_le_bytes(self.fixed("a BIGINT")?)),
            DOUBLE => Value::Double(f64::from_bits(u64::from_le_bytes(self.fixed("a DOUBLE")?))),
            DECIMAL => {
                let unscaled = i128::from_le_bytes(self.fixed("a DECIMAL")?);
                let scale = self.byte("a DECIMAL's scale")?;
                Value::Decimal { unscaled, scale }
            }
            STRING => {
                let length = self.length("a STRING's length")?;
                let start = self.offset;
                let text = self.take(length, "a STRING")?;
                let text = std::str::from_utf8(text).map_err(|e| {
                    format!(
                        "byte {}: a STRING is not UTF-8 ({e})",
                        start + e.valid_up_to()
                    )
                })?;
                Value::String(text.to_owned())
            }
            BYTES => {
                let length = self.length("a BYTES length")?;
                Value::Bytes(self.take(length, "a BYTES value")?.to_vec())
            }
            DATE => Value::Date(i32::from_le_bytes(self.fixed("a DATE")?)),
            TIME => Value::Time(i64::from_le_bytes(self.fixed("a TIME")?)),
            TIMESTAMP => Value::Timestamp(i64::from_le_bytes(self.fixed("a TIMESTAMP")?)),
            ARRAY | MAP | STRUCT => {
                let (kind, count) = match tag {
                    ARRAY => ("an ARRAY", "an ARRAY's count"),
                    MAP => ("a MAP", "a MAP's count"),
                    _ => ("a STRUCT", "a STRUCT's count"),
                };
                if depth >= MAX_DEPTH {
                    return Err(format!(
                        "byte {at}: {kind} nested more than {MAX_DEPTH} deep"
                    ));
                }
                let count = self.length(count)?;
                // Every value takes a byte at least: a count the bytes left cannot hold is
                // garbage, and checking first keeps it from reserving gigabytes.
                let needs = if tag == MAP { count * 2 } else { count };
                if needs > self.left() {
                    return Err(format!(
                        "byte {at}: {kind} of {count} cannot fit in the {} bytes left",
                        self.left()
                    ));
                }
                if tag == MAP {
                    let mut entries = Vec::with_capacity(count);
                    for _ in 0..count {
                        let key = self.value(depth + 1)?;
                        entries.push((key, self.value(depth + 1)?));
                    }
                    Value::Map(entries)
                } else {
                    let mut items = Vec::with_capacity(count);
                    for _ in 0..count {
                        items.push(self.value(depth + 1)?);
                    }
                    if tag == ARRAY {
                        Value::Array(items)
                    } else {
                        Value::Struct(items)
                    }
                }
            }
            other => return Err(format!("byte {at}: unknown value tag 0x{other:02X}")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn every_variant() -> Vec<Value> {
        vec![
            Value::Null,
            Value::Boolean(false),
            Value::Boolean(true),
            Value::Integer(0),
            Value::Integer(i32::MIN),
            Value::Integer(i32::MAX),
            Value::BigInt(i64::MIN),
            Value::BigInt(-1),
            Value::BigInt(i64::MAX),
            Value::Double(0.1 + 0.2),
            Value::Double(-0.0),
            Value::Double(f64::INFINITY),
            Value::Double(f64::NEG_INFINITY),
            Value::Double(f64::MIN_POSITIVE / 2.0),
            Value::Double(f64::from_bits(0x7FF8_0000_0000_0001)),
            Value::Double(-f64::NAN),
            Value::Decimal {
                unscaled: i128::MIN,
                scale: 0,
            },
            Value::Decimal {
                unscaled: i128::MAX,
                scale: 38,
            },
            Value::Decimal {
                unscaled: -12345,
                scale: 2,
            },
            Value::String(String::new()),
            Value::String("grüße, 世界 🦀".into()),
            Value::Bytes(vec![]),
            Value::Bytes(vec![0, 0x80, 0xFF]),
            Value::Date(-719_162),
            Value::Time(86_399_999),
            Value::Timestamp(i64::MIN),
            Value::Timestamp(1_700_000_000_000),
            Value::Array(vec![]),
            Value::Map(vec![]),
            Value::Struct(vec![]),
        ]
    }

    fn nested() -> Value {
        Value::Struct(vec![
            Value::String("AVG".into()),
            Value::Array(every_variant()),
            Value::Map(vec![
                (Value::String("b".into()), Value::BigInt(2)),
                (
                    Value::Null,
                    Value::Array(vec![Value::Null, Value::Double(1.5)]),
                ),
                (
                    Value::Struct(vec![Value::Integer(1)]),
                    Value::Map(vec![(Value::Date(3), Value::Struct(vec![]))]),
                ),
            ]),
            Value::Array(vec![Value::Array(vec![Value::Array(vec![Value::Null])])]),
        ])
    }

    /// Bit-exact equality: `Value`'s `==` has NaN unequal to itself and -0.0 equal to 0.0.
    fn assert_same(a: &Value, b: &Value) {
        assert_eq!(format!("{a:?}"), format!("{b:?}"));
        assert_eq!(encode_value(a), encode_value(b));
        if let (Value::Double(x), Value::Double(y)) = (a, b) {
            assert_eq!(x.to_bits(), y.to_bits());
        }
    }

    #[test]
    fn every_variant_round_trips_bit_exactly() {
        for value in every_variant().into_iter().chain([nested()]) {
            let bytes = encode_value(&value);
            assert_eq!(bytes[0], FORMAT_VERSION);
            let decoded = decode_value(&bytes).unwrap();
            assert_same(&decoded, &value);
            // NaN aside (never `==` itself), `==` agrees too.
            if !format!("{value:?}").contains("NaN") {
                assert_eq!(decoded, value);
            }
        }
        let nan = decode_value(&encode_value(&Value::Double(f64::from_bits(
            0x7FF8_0000_0000_0001,
        ))))
        .unwrap();
        assert!(matches!(nan, Value::Double(x) if x.to_bits() == 0x7FF8_0000_0000_0001));
    }

    #[test]
    fn the_layout_is_the_documented_one() {
        assert_eq!(encode_value(&Value::Null), [1, 0x00]);
        assert_eq!(encode_value(&Value::Boolean(true)), [1, 0x01, 1]);
        assert_eq!(
            encode_value(&Value::Integer(-2)),
            [1, 0x02, 0xFE, 0xFF, 0xFF, 0xFF]
        );
        assert_eq!(
            encode_value(&Value::Double(1.0)),
            [1, 0x04, 0, 0, 0, 0, 0, 0, 0xF0, 0x3F]
        );
        let mut decimal = vec![1, 0x05, 5];
        decimal.extend_from_slice(&[0; 15]);
        decimal.push(1);
        assert_eq!(
            encode_value(&Value::Decimal {
                unscaled: 5,
                scale: 1
            }),
            decimal
        );
        assert_eq!(
            encode_value(&Value::String("ab".into())),
            [1, 0x06, 2, 0, 0, 0, b'a', b'b']
        );
        assert_eq!(
            encode_value(&Value::Map(vec![(Value::Null, Value::Boolean(false))])),
            [1, 0x0C, 1, 0, 0, 0, 0x00, 0x01, 0]
        );
        assert_eq!(
            encode_value(&Value::Struct(vec![Value::Array(vec![])])),
            [1, 0x0D, 1, 0, 0, 0, 0x0B, 0, 0, 0, 0]
        );
    }

    #[test]
    fn every_truncation_is_an_error() {
        let bytes = encode_value(&nested());
        for end in 0..bytes.len() {
            let error = decode_value(&bytes[..end]).unwrap_err();
            assert!(error.starts_with("byte "), "{end}: {error}");
        }
        assert_eq!(
            decode_value(&[]).unwrap_err(),
            "byte 0: truncated: the format version needs 1 bytes, 0 left"
        );
        assert_eq!(
            decode_value(&[1, 0x03, 1, 2]).unwrap_err(),
            "byte 2: truncated: a BIGINT needs 8 bytes, 2 left"
        );
    }

    #[test]
    fn garbage_is_an_error_naming_its_offset() {
        let cases: &[(&[u8], &str)] = &[
            (&[2, 0x00], "byte 0: unknown snapshot format version 2"),
            (&[1, 0x0E], "byte 1: unknown value tag 0x0E"),
            (&[1, 0x01, 2], "byte 2: a BOOLEAN is 0 or 1, not 2"),
            (
                &[1, 0x00, 0x00],
                "byte 2: 1 bytes left over after the value",
            ),
            (
                &[1, 0x06, 3, 0, 0, 0, b'a', 0xC3, 0x28],
                "byte 7: a STRING is not UTF-8",
            ),
            (
                &[1, 0x07, 0xFF, 0xFF, 0xFF, 0xFF, 1],
                "byte 6: truncated: a BYTES value needs 4294967295 bytes, 1 left",
            ),
            (
                &[1, 0x0B, 0xFF, 0xFF, 0xFF, 0xFF, 0],
                "byte 1: an ARRAY of 4294967295 cannot fit in the 1 bytes left",
            ),
            (
                &[1, 0x0C, 1, 0, 0, 0, 0],
                "byte 1: a MAP of 1 cannot fit in the 1 bytes left",
            ),
            (
                &[1, 0x0D, 2, 0, 0, 0, 0, 0x42],
                "byte 7: unknown value tag 0x42",
            ),
        ];
        for (bytes, expected) in cases {
            let error = decode_value(bytes).unwrap_err();
            assert!(error.starts_with(expected), "{bytes:?}: {error}");
        }
    }

    #[test]
    fn deep_nesting_is_refused_not_a_stack_overflow() {
        let mut bytes = vec![FORMAT_VERSION];
        for _ in 0..100_000 {
            bytes.extend_from_slice(&[ARRAY, 1, 0, 0, 0]);
        }
        bytes.push(NULL);
        let error = decode_value(&bytes).unwrap_err();
        assert_eq!(
            error,
            format!(
                "byte {}: an ARRAY nested more than {MAX_DEPTH} deep",
                1 + 5 * MAX_DEPTH
            )
        );

        let mut deepest = Value::Null;
        for _ in 0..MAX_DEPTH {
            deepest = Value::Array(vec![deepest]);
        }
        assert_same(&decode_value(&encode_value(&deepest)).unwrap(), &deepest);
    }

    #[test]
    fn mutated_bytes_never_panic() {
        let original = encode_value(&nested());
        // A small linear congruential generator: deterministic, no dependency.
        let mut state: u64 = 0x2545_F491_4F6C_DD1D;
        let mut next = move || {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) as usize
        };
        for _ in 0..5_000 {
            let mut bytes = original.clone();
            for _ in 0..1 + next() % 4 {
                let at = next() % bytes.len();
                bytes[at] = next() as u8;
            }
            let end = bytes.len() - next() % 3;
            // Ok or Err both do; a panic fails the test.
            let _ = decode_value(&bytes[..end]);
        }
    }
}
