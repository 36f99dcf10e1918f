//! String and bytes functions (ksqlDB's "STRING" category, and its bytes conversions).
//!
//! Positions and lengths count UTF-16 code units, as ksqlDB's Java strings do (a character
//! outside the Basic Multilingual Plane counts two).

use std::sync::Arc;

use super::{overload, variadic, FunctionRegistry, SimpleFunction};
use crate::types::SqlType;
use crate::value::Value;

use SqlType::{BigInt, Bytes, Double, Integer, String as Str};

const STRING: &str = "STRING";

fn add(
    registry: &mut FunctionRegistry,
    name: &'static str,
    description: &'static str,
    overloads: Vec<super::Overload>,
) {
    registry.register(Arc::new(SimpleFunction {
        name,
        category: STRING,
        description,
        overloads,
    }));
}

pub(super) fn register(registry: &mut FunctionRegistry) {
    add(
        registry,
        "UCASE",
        "Returns the input string in upper case.",
        vec![overload(vec![Str], Str, |args| {
            Ok(map_string(&args[0], str::to_uppercase))
        })],
    );
    add(
        registry,
        "LCASE",
        "Returns the input string in lower case.",
        vec![overload(vec![Str], Str, |args| {
            Ok(map_string(&args[0], str::to_lowercase))
        })],
    );
    add(
        registry,
        "CONCAT",
        "Concatenate an arbitrary number of string or bytes fields together. NULL inputs are \
         ignored.",
        vec![
            variadic(vec![Str], Str, |args| {
                Ok(Value::String(
                    args.iter().filter_map(Value::as_str).collect(),
                ))
            }),
            variadic(vec![Bytes], Bytes, |args| {
                Ok(Value::Bytes(
                    args.iter()
                        .filter_map(as_bytes)
                        .flatten()
                        .copied()
                        .collect(),
                ))
            }),
        ],
    );
    add(
        registry,
        "CONCAT_WS",
        "Concatenates two or more string or bytes expressions, inserting a separator string \
         or bytes between each. NULL inputs are skipped; a NULL separator gives NULL.",
        vec![
            variadic(vec![Str, Str], Str, |args| {
                let Some(separator) = args[0].as_str() else {
                    return Ok(Value::Null);
                };
                let parts: Vec<&str> = args[1..].iter().filter_map(Value::as_str).collect();
                Ok(Value::String(parts.join(separator)))
            }),
            variadic(vec![Bytes, Bytes], Bytes, |args| {
                let Some(separator) = as_bytes(&args[0]) else {
                    return Ok(Value::Null);
                };
                let parts: Vec<&[u8]> = args[1..].iter().filter_map(as_bytes).collect();
                Ok(Value::Bytes(parts.join(separator)))
            }),
        ],
    );
    add(
        registry,
        "LEN",
        "Returns the length of a string in characters, or of bytes in bytes.",
        vec![
            overload(vec![Str], Integer, |args| {
                Ok(match &args[0] {
                    Value::String(s) => Value::Integer(java_length(s) as i32),
                    _ => Value::Null,
                })
            }),
            overload(vec![Bytes], Integer, |args| {
                Ok(match &args[0] {
                    Value::Bytes(b) => Value::Integer(b.len() as i32),
                    _ => Value::Null,
                })
            }),
        ],
    );
    add(
        registry,
        "SUBSTRING",
        "Returns the portion of the string or bytes from the given position (1-based; \
         negative counts from the end), to the end or for the given length.",
        vec![
            overload(vec![Str, Integer], Str, |args| {
                substring_call(
                    args,
                    |s| Value::String(String::from_utf16_lossy(s)),
                    utf16_of,
                )
            }),
            overload(vec![Str, Integer, Integer], Str, |args| {
                substring_call(
                    args,
                    |s| Value::String(String::from_utf16_lossy(s)),
                    utf16_of,
                )
            }),
            overload(vec![Bytes, Integer], Bytes, |args| {
                substring_call(args, |b| Value::Bytes(b.to_vec()), bytes_of)
            }),
            overload(vec![Bytes, Integer, Integer], Bytes, |args| {
                substring_call(args, |b| Value::Bytes(b.to_vec()), bytes_of)
            }),
        ],
    );
    add(
        registry,
        "TRIM",
        "Removes leading and trailing whitespace from the string.",
        vec![overload(vec![Str], Str, |args| {
            Ok(map_string(&args[0], |s| {
                s.trim_matches(is_java_space).to_string()
            }))
        })],
    );
    add(
        registry,
        "LTRIM",
        "Removes leading whitespace from the string.",
        vec![overload(vec![Str], Str, |args| {
            Ok(map_string(&args[0], |s| {
                s.trim_start_matches(is_java_space).to_string()
            }))
        })],
    );
    add(
        registry,
        "RTRIM",
        "Removes trailing whitespace from the string.",
        vec![overload(vec![Str], Str, |args| {
            Ok(map_string(&args[0], |s| {
                s.trim_end_matches(is_java_space).to_string()
            }))
        })],
    );
    add(
        registry,
        "LPAD",
        "Pads the input string or bytes, beginning from the left, with the specified padding \
         until the target length is reached. If the input is longer than the target it is \
         truncated; a NULL argument, a negative length or empty padding gives NULL.",
        vec![
            overload(vec![Str, Integer, Str], Str, |args| pad_string(args, true)),
            overload(vec![Bytes, Integer, Bytes], Bytes, |args| {
                pad_bytes(args, true)
            }),
        ],
    );
    add(
        registry,
        "RPAD",
        "Pads the input string or bytes, starting from the end, with the specified padding \
         until the target length is reached. If the input is longer than the target it is \
         truncated; a NULL argument, a negative length or empty padding gives NULL.",
        vec![
            overload(vec![Str, Integer, Str], Str, |args| pad_string(args, false)),
            overload(vec![Bytes, Integer, Bytes], Bytes, |args| {
                pad_bytes(args, false)
            }),
        ],
    );
    add(
        registry,
        "REPLACE",
        "Returns a new string with all occurences of oldStr in str with newStr",
        vec![overload(vec![Str, Str, Str], Str, |args| {
            match (args[0].as_str(), args[1].as_str(), args[2].as_str()) {
                (Some(s), Some(old), Some(new)) => Ok(Value::String(s.replace(old, new))),
                _ => Ok(Value::Null),
            }
        })],
    );
    add(
        registry,
        "INSTR",
        "Returns the position of substring in string (1-based), searching from position \
         (negative: backwards from the end) for the given occurrence; 0 when not found.",
        vec![
            overload(vec![Str, Str], Integer, instr),
            overload(vec![Str, Str, Integer], Integer, instr),
            overload(vec![Str, Str, Integer, Integer], Integer, instr),
        ],
    );
    add(
        registry,
        "INITCAP",
        "Capitalizes the first letter in each word and converts all other letters to \
         lowercase. Words are delimited by whitespace.",
        vec![overload(vec![Str], Str, |args| {
            Ok(map_string(&args[0], initcap))
        })],
    );
    add(
        registry,
        "SPLIT",
        "Splits a string into an array of substrings based on a delimiter. If the delimiter \
         is empty, every character becomes an element; bytes split the same way.",
        vec![
            overload(
                vec![Str, Str],
                SqlType::Array(Box::new(Str)),
                |args| match (args[0].as_str(), args[1].as_str()) {
                    (Some(s), Some(d)) => Ok(Value::Array(
                        split_string(s, d).into_iter().map(Value::String).collect(),
                    )),
                    _ => Ok(Value::Null),
                },
            ),
            overload(
                vec![Bytes, Bytes],
                SqlType::Array(Box::new(Bytes)),
                |args| match (as_bytes(&args[0]), as_bytes(&args[1])) {
                    (Some(b), Some(d)) => Ok(Value::Array(
                        split_bytes(b, d).into_iter().map(Value::Bytes).collect(),
                    )),
                    _ => Ok(Value::Null),
                },
            ),
        ],
    );
    add(
        registry,
        "SPLIT_TO_MAP",
        "Splits a string into key-value pairs and creates a map from them. The \
         'entryDelimiter' splits the string into key-value pairs which are then split by \
         'kvDelimiter'. If the same key is present multiple times in the input, the latest \
         value for that key is returned. Returns NULL if the input text or either of the \
         delimiters is NULL.",
        vec![overload(
            vec![Str, Str, Str],
            SqlType::Map(Box::new(Str), Box::new(Str)),
            split_to_map,
        )],
    );
    add(
        registry,
        "MASK",
        "Returns a masked version of the input string. All characters of the input will be \
         replaced according to the default masking rules (upper case X, lower case x, digits \
         n, others -) or the given replacements (NULL keeps that kind of character).",
        vec![
            overload(vec![Str], Str, |args| mask_call(args, MaskRange::All, 1)),
            overload(vec![Str, Str, Str, Str, Str], Str, |args| {
                mask_call(args, MaskRange::All, 1)
            }),
        ],
    );
    for (name, description, range) in [
        (
            "MASK_LEFT",
            "Returns a masked version of the input string. The first n characters will be \
             replaced according to the default masking rules.",
            MaskRange::Left,
        ),
        (
            "MASK_RIGHT",
            "Returns a masked version of the input string. The last n characters will be \
             replaced according to the default masking rules.",
            MaskRange::Right,
        ),
        (
            "MASK_KEEP_LEFT",
            "Returns a masked version of the input string. All characters except for the \
             first n will be replaced according to the default masking rules.",
            MaskRange::KeepLeft,
        ),
        (
            "MASK_KEEP_RIGHT",
            "Returns a masked version of the input string. All characters except for the \
             last n will be replaced according to the default masking rules.",
            MaskRange::KeepRight,
        ),
    ] {
        let call: fn(&[Value]) -> Result<Value, String> = match range {
            MaskRange::Left => |args| mask_call(args, MaskRange::Left, 2),
            MaskRange::Right => |args| mask_call(args, MaskRange::Right, 2),
            MaskRange::KeepLeft => |args| mask_call(args, MaskRange::KeepLeft, 2),
            MaskRange::KeepRight | MaskRange::All => {
                |args| mask_call(args, MaskRange::KeepRight, 2)
            }
        };
        add(
            registry,
            name,
            description,
            vec![
                overload(vec![Str, Integer], Str, call),
                overload(vec![Str, Integer, Str, Str, Str, Str], Str, call),
            ],
        );
    }
    add(
        registry,
        "ENCODE",
        "Takes an input string s, which is encoded as input_encoding, and encodes it as \
         output_encoding. The accepted input and output encodings are: hex, utf8, ascii and \
         base64. Throws exception if provided encodings are not supported.",
        vec![overload(vec![Str, Str, Str], Str, encode)],
    );
    add(
        registry,
        "CHR",
        "Returns a single-character string representing the Unicode code-point described by \
         the input. The input parameter can be either a decimal or string representation of \
         a code point (\\u-prefixed, surrogate pairs allowed).",
        vec![
            overload(vec![Integer], Str, |args| {
                Ok(match &args[0] {
                    Value::Integer(code) => u32::try_from(*code)
                        .ok()
                        .and_then(char::from_u32)
                        .map_or(Value::Null, |c| Value::String(c.to_string())),
                    _ => Value::Null,
                })
            }),
            overload(vec![Str], Str, |args| {
                Ok(args[0]
                    .as_str()
                    .and_then(chr_from_text)
                    .map_or(Value::Null, Value::String))
            }),
        ],
    );
    add(
        registry,
        "UUID",
        "Generates a random UUID (version 4) and returns it as a string, or converts 16 bytes \
         to the UUID's string form.",
        vec![
            overload(vec![], Str, |_| Ok(Value::String(random_uuid()))),
            overload(vec![Bytes], Str, |args| {
                Ok(match as_bytes(&args[0]) {
                    Some(b) if b.len() == 16 => Value::String(uuid_text(b)),
                    Some(_) => return Err("UUID bytes must be 16 bytes long".into()),
                    None => Value::Null,
                })
            }),
        ],
    );
    add(
        registry,
        "TO_BYTES",
        "Converts a STRING value in the specified encoding to BYTES. The accepted encoders \
         are 'hex', 'utf8', 'ascii' and 'base64'.",
        vec![overload(vec![Str, Str], Bytes, |args| {
            match (args[0].as_str(), args[1].as_str()) {
                (Some(s), Some(encoding)) => decode_text(s, encoding).map(Value::Bytes),
                _ => Ok(Value::Null),
            }
        })],
    );
    add(
        registry,
        "FROM_BYTES",
        "Converts a BYTES value to STRING in the specified encoding. The accepted encoders \
         are 'hex', 'utf8', 'ascii' and 'base64'.",
        vec![overload(vec![Bytes, Str], Str, |args| {
            match (as_bytes(&args[0]), args[1].as_str()) {
                (Some(b), Some(encoding)) => encode_bytes(b, encoding).map(Value::String),
                _ => Ok(Value::Null),
            }
        })],
    );
    for (name, returns, width, description) in [
        (
            "INT_FROM_BYTES",
            Integer,
            4,
            "Converts a BYTES value to an INT value according to the specified byte order. \
             BYTES must be 4 bytes long or a NULL value will be returned.",
        ),
        (
            "BIGINT_FROM_BYTES",
            BigInt,
            8,
            "Converts a BYTES value to a BIGINT value according to the specified byte order. \
             BYTES must be 8 bytes long or a NULL value will be returned.",
        ),
        (
            "DOUBLE_FROM_BYTES",
            Double,
            8,
            "Converts a BYTES value to a DOUBLE value according to the specified byte order. \
             BYTES must be 8 bytes long or a NULL value will be returned.",
        ),
    ] {
        let call: fn(&[Value]) -> Result<Value, String> = match width {
            4 => |args| number_from_bytes(args, 4, false),
            _ if returns == BigInt => |args| number_from_bytes(args, 8, false),
            _ => |args| number_from_bytes(args, 8, true),
        };
        registry.register(Arc::new(SimpleFunction {
            name,
            category: "CONVERSIONS",
            description,
            overloads: vec![
                overload(vec![Bytes], returns.clone(), call),
                overload(vec![Bytes, Str], returns, call),
            ],
        }));
    }
    add(
        registry,
        "MD5",
        "Returns the hex-encoded MD5 digest of the input string (of its UTF-8 bytes).",
        vec![overload(vec![Str], Str, |args| {
            Ok(map_string(&args[0], |s| {
                md5(s.as_bytes())
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect()
            }))
        })],
    );
    register_regex(registry);
}

/// RFC 1321's MD5 (no dependency for one function).
fn md5(input: &[u8]) -> [u8; 16] {
    const S: [u32; 64] = [
        7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 5, 9, 14, 20, 5, 9, 14, 20, 5,
        9, 14, 20, 5, 9, 14, 20, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 6, 10,
        15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21,
    ];
    let k: Vec<u32> = (0..64)
        .map(|i| ((i as f64 + 1.0).sin().abs() * 4_294_967_296.0) as u32)
        .collect();
    let mut message = input.to_vec();
    let bit_len = (input.len() as u64).wrapping_mul(8);
    message.push(0x80);
    while message.len() % 64 != 56 {
        message.push(0);
    }
    message.extend_from_slice(&bit_len.to_le_bytes());
    let mut state: [u32; 4] = [0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476];
    for chunk in message.chunks(64) {
        let m: Vec<u32> = chunk
            .chunks(4)
            .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
            .collect();
        let [mut a, mut b, mut c, mut d] = state;
        for i in 0..64 {
            let (f, g) = match i / 16 {
                0 => ((b & c) | (!b & d), i),
                1 => ((d & b) | (!d & c), (5 * i + 1) % 16),
                2 => (b ^ c ^ d, (3 * i + 5) % 16),
                _ => (c ^ (b | !d), (7 * i) % 16),
            };
            let rotated = a
                .wrapping_add(f)
                .wrapping_add(k[i])
                .wrapping_add(m[g])
                .rotate_left(S[i]);
            a = d;
            d = c;
            c = b;
            b = b.wrapping_add(rotated);
        }
        state[0] = state[0].wrapping_add(a);
        state[1] = state[1].wrapping_add(b);
        state[2] = state[2].wrapping_add(c);
        state[3] = state[3].wrapping_add(d);
    }
    let mut out = [0u8; 16];
    for (i, word) in state.iter().enumerate() {
        out[i * 4..i * 4 + 4].copy_from_slice(&word.to_le_bytes());
    }
    out
}

/// ksqlDB files the REGEXP_* functions under "REGULAR EXPRESSION".
fn add_regex(
    registry: &mut FunctionRegistry,
    name: &'static str,
    description: &'static str,
    overloads: Vec<super::Overload>,
) {
    registry.register(Arc::new(SimpleFunction {
        name,
        category: "REGULAR EXPRESSION",
        description,
        overloads,
    }));
}

fn register_regex(registry: &mut FunctionRegistry) {
    add_regex(
        registry,
        "REGEXP_EXTRACT",
        "extract the first subtring matched by a regex pattern",
        vec![
            overload(vec![Str, Str], Str, regexp_extract),
            overload(vec![Str, Str, Integer], Str, regexp_extract),
        ],
    );
    add_regex(
        registry,
        "REGEXP_EXTRACT_ALL",
        "extract all subtrings matched by a regex pattern",
        vec![
            overload(
                vec![Str, Str],
                SqlType::Array(Box::new(Str)),
                regexp_extract_all,
            ),
            overload(
                vec![Str, Str, Integer],
                SqlType::Array(Box::new(Str)),
                regexp_extract_all,
            ),
        ],
    );
    add_regex(
        registry,
        "REGEXP_REPLACE",
        "Replace all matches of a regex in an input string with a new string",
        vec![overload(vec![Str, Str, Str], Str, |args| {
            match (args[0].as_str(), args[1].as_str(), args[2].as_str()) {
                (Some(s), Some(pattern), Some(replacement)) => {
                    let regex = java_regex(pattern)?;
                    let replacement = java_replacement(replacement);
                    Ok(Value::String(
                        regex.replace_all(s, replacement.as_str()).into_owned(),
                    ))
                }
                _ => Ok(Value::Null),
            }
        })],
    );
    add_regex(
        registry,
        "REGEXP_SPLIT_TO_ARRAY",
        "Splits a string into an array of substrings based on a regular expression. If there \
         is no match, the original string is returned as the only element in the array. If \
         the regular expression is empty, then all characters in the string are split.",
        vec![overload(
            vec![Str, Str],
            SqlType::Array(Box::new(Str)),
            |args| match (args[0].as_str(), args[1].as_str()) {
                (Some(s), Some(pattern)) => {
                    let regex = java_regex(pattern)?;
                    let parts: Vec<Value> = if regex.is_match("") {
                        java_split(&regex, s)
                    } else {
                        regex.split(s).map(str::to_string).collect::<Vec<_>>()
                    }
                    .into_iter()
                    .map(Value::String)
                    .collect();
                    Ok(Value::Array(parts))
                }
                _ => Ok(Value::Null),
            },
        )],
    );
}

/// NULL in, NULL out; otherwise `f` of the string.
fn map_string(value: &Value, f: impl Fn(&str) -> String) -> Value {
    match value {
        Value::String(s) => Value::String(f(s)),
        _ => Value::Null,
    }
}

pub(crate) fn as_bytes(value: &Value) -> Option<&[u8]> {
    match value {
        Value::Bytes(b) => Some(b),
        _ => None,
    }
}

/// Java's `String.length()`: UTF-16 code units.
pub(crate) fn java_length(s: &str) -> usize {
    s.chars().map(char::len_utf16).sum()
}

/// Java regex's `\s`: `[ \t\n\x0B\f\r]`.
fn is_java_regex_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\u{b}' | '\u{c}' | '\r')
}

/// Java's `String.trim()` strips every char up to U+0020.
fn is_java_space(c: char) -> bool {
    c <= ' '
}

/// Java's view of a string: UTF-16 code units (a pair cut in two becomes U+FFFD).
fn utf16_of(value: &Value) -> Option<Vec<u16>> {
    value.as_str().map(|s| s.encode_utf16().collect())
}

fn bytes_of(value: &Value) -> Option<Vec<u8>> {
    as_bytes(value).map(<[u8]>::to_vec)
}

/// ksqlDB's SUBSTRING: 1-based start, negative from the end, clamped to the value.
fn substring_call<T>(
    args: &[Value],
    make: impl Fn(&[T]) -> Value,
    items: impl Fn(&Value) -> Option<Vec<T>>,
) -> Result<Value, String> {
    let Some(items) = items(&args[0]) else {
        return Ok(Value::Null);
    };
    let Some(pos) = args[1].as_i64() else {
        return Ok(Value::Null);
    };
    let length = items.len() as i64;
    let start = if pos >= 0 {
        (pos - 1).max(0).min(length)
    } else {
        (length + pos).max(0)
    };
    let end = match args.get(2) {
        None => length,
        Some(len) => match len.as_i64() {
            Some(len) => (start + len).min(length).max(start),
            None => return Ok(Value::Null),
        },
    };
    Ok(make(&items[start as usize..end as usize]))
}

fn pad_string(args: &[Value], left: bool) -> Result<Value, String> {
    let (Some(input), Some(target), Some(padding)) =
        (args[0].as_str(), args[1].as_i64(), args[2].as_str())
    else {
        return Ok(Value::Null);
    };
    let input: Vec<u16> = input.encode_utf16().collect();
    let padding: Vec<u16> = padding.encode_utf16().collect();
    Ok(
        pad(&input, target, &padding, left).map_or(Value::Null, |out| {
            Value::String(String::from_utf16_lossy(&out))
        }),
    )
}

fn pad_bytes(args: &[Value], left: bool) -> Result<Value, String> {
    let (Some(input), Some(target), Some(padding)) =
        (as_bytes(&args[0]), args[1].as_i64(), as_bytes(&args[2]))
    else {
        return Ok(Value::Null);
    };
    Ok(pad(input, target, padding, left).map_or(Value::Null, Value::Bytes))
}

/// Longest padded value (units); beyond it a pad is refused rather than exhausting memory.
const MAX_PAD: i64 = 1 << 26;

fn pad<T: Clone>(input: &[T], target: i64, padding: &[T], left: bool) -> Option<Vec<T>> {
    if !(0..=MAX_PAD).contains(&target) || padding.is_empty() {
        return None;
    }
    let target = target as usize;
    if target <= input.len() {
        return Some(input[..target].to_vec());
    }
    let fill: Vec<T> = padding
        .iter()
        .cycle()
        .take(target - input.len())
        .cloned()
        .collect();
    Some(if left {
        [fill.as_slice(), input].concat()
    } else {
        [input, fill.as_slice()].concat()
    })
}

fn instr(args: &[Value]) -> Result<Value, String> {
    let (Some(s), Some(sub)) = (args[0].as_str(), args[1].as_str()) else {
        return Ok(Value::Integer(0));
    };
    let position = args.get(2).map_or(Some(1), Value::as_i64);
    let occurrence = args.get(3).map_or(Some(1), Value::as_i64);
    let (Some(position), Some(occurrence)) = (position, occurrence) else {
        return Ok(Value::Integer(0));
    };
    let hay: Vec<u16> = s.encode_utf16().collect();
    let needle: Vec<u16> = sub.encode_utf16().collect();
    let matches_at = |i: usize| i + needle.len() <= hay.len() && hay[i..i + needle.len()] == needle;
    if occurrence <= 0 || position == 0 {
        return Ok(Value::Integer(0));
    }
    let mut found = 0;
    if position > 0 {
        let mut i = (position - 1) as usize;
        while i <= hay.len() {
            if matches_at(i) {
                found += 1;
                if found == occurrence {
                    return Ok(Value::Integer(i as i32 + 1));
                }
            }
            i += 1;
        }
    } else {
        let start = hay.len() as i64 + position;
        if start < 0 {
            return Ok(Value::Integer(0));
        }
        let mut i = start;
        while i >= 0 {
            if matches_at(i as usize) {
                found += 1;
                if found == occurrence {
                    return Ok(Value::Integer(i as i32 + 1));
                }
            }
            i -= 1;
        }
    }
    Ok(Value::Integer(0))
}

/// ksqlDB's INITCAP: lower case, then each `[^\s]+\s*` run capitalised; whitespace before the
/// first word is dropped (the runs never include it).
fn initcap(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut word_start = true;
    for c in s.trim_start_matches(is_java_regex_space).chars() {
        if is_java_regex_space(c) {
            word_start = true;
            out.push(c);
        } else if word_start {
            out.extend(c.to_uppercase());
            word_start = false;
        } else {
            out.extend(c.to_lowercase());
        }
    }
    out
}

/// Guava's `Splitter.on(delimiter)`: every separator splits, empty pieces kept; an empty
/// delimiter splits into characters.
fn split_string(s: &str, delimiter: &str) -> Vec<String> {
    if delimiter.is_empty() {
        if s.is_empty() {
            return vec![String::new()];
        }
        return s.chars().map(String::from).collect();
    }
    s.split(delimiter).map(str::to_string).collect()
}

fn split_bytes(b: &[u8], delimiter: &[u8]) -> Vec<Vec<u8>> {
    if delimiter.is_empty() {
        if b.is_empty() {
            return vec![Vec::new()];
        }
        return b.iter().map(|byte| vec![*byte]).collect();
    }
    let mut parts = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i + delimiter.len() <= b.len() {
        if &b[i..i + delimiter.len()] == delimiter {
            parts.push(b[start..i].to_vec());
            i += delimiter.len();
            start = i;
        } else {
            i += 1;
        }
    }
    parts.push(b[start..].to_vec());
    parts
}

fn split_to_map(args: &[Value]) -> Result<Value, String> {
    let (Some(input), Some(entry_delimiter), Some(kv_delimiter)) =
        (args[0].as_str(), args[1].as_str(), args[2].as_str())
    else {
        return Ok(Value::Null);
    };
    if entry_delimiter.is_empty() || kv_delimiter.is_empty() || entry_delimiter == kv_delimiter {
        return Ok(Value::Null);
    }
    let mut entries: Vec<(Value, Value)> = Vec::new();
    for entry in input.split(entry_delimiter).filter(|e| !e.is_empty()) {
        if !entry.contains(kv_delimiter) {
            continue;
        }
        let mut parts = entry.split(kv_delimiter);
        let key = Value::String(parts.next().unwrap_or_default().to_string());
        let value = Value::String(parts.next().unwrap_or_default().to_string());
        if let Some(existing) = entries.iter_mut().find(|(k, _)| *k == key) {
            existing.1 = value;
        } else {
            entries.push((key, value));
        }
    }
    Ok(Value::Map(entries))
}

#[derive(Clone, Copy)]
enum MaskRange {
    All,
    Left,
    Right,
    KeepLeft,
    KeepRight,
}

/// `first_mask_arg` is where the replacement characters start (after the input and count).
fn mask_call(args: &[Value], range: MaskRange, first_mask_arg: usize) -> Result<Value, String> {
    let Some(input) = args[0].as_str() else {
        return Ok(Value::Null);
    };
    let count = if matches!(range, MaskRange::All) {
        0
    } else {
        match args[1].as_i64() {
            Some(n) if n < 0 => {
                return Err(format!(
                    "function {} requires a non-negative number",
                    match range {
                        MaskRange::Left => "mask_left",
                        MaskRange::Right => "mask_right",
                        MaskRange::KeepLeft => "mask_keep_left",
                        _ => "mask_keep_right",
                    }
                ))
            }
            Some(n) => n as usize,
            None => return Ok(Value::Null),
        }
    };
    let replacement = |i: usize, default: char| -> Option<char> {
        if args.len() > first_mask_arg {
            args[first_mask_arg + i]
                .as_str()
                .and_then(|s| s.chars().next())
        } else {
            Some(default)
        }
    };
    let upper = replacement(0, 'X');
    let lower = replacement(1, 'x');
    let digit = replacement(2, 'n');
    let other = replacement(3, '-');
    let chars: Vec<char> = input.chars().collect();
    let len = chars.len();
    let masked = |i: usize| match range {
        MaskRange::All => true,
        MaskRange::Left => i < count,
        MaskRange::Right => i + count >= len,
        MaskRange::KeepLeft => i >= count,
        MaskRange::KeepRight => i + count < len,
    };
    let out: String = chars
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            if !masked(i) {
                return c;
            }
            let with = if c.is_uppercase() {
                upper
            } else if c.is_lowercase() {
                lower
            } else if c.is_ascii_digit() {
                digit
            } else {
                other
            };
            with.unwrap_or(c)
        })
        .collect();
    Ok(Value::String(out))
}

fn encode(args: &[Value]) -> Result<Value, String> {
    let (Some(s), Some(from), Some(to)) = (args[0].as_str(), args[1].as_str(), args[2].as_str())
    else {
        return Ok(Value::Null);
    };
    let known = ["hex", "utf8", "ascii", "base64"];
    if !known.contains(&from.to_ascii_lowercase().as_str())
        || !known.contains(&to.to_ascii_lowercase().as_str())
    {
        return Ok(Value::Null);
    }
    let bytes = decode_text(s, from)?;
    encode_bytes_as(&bytes, to, false).map(Value::String)
}

fn encoding_error(encoding: &str) -> String {
    format!("Unsupported encoding {encoding}. Supported encodings are: hex, utf8, ascii and base64")
}

/// A string in `encoding` to its bytes (TO_BYTES; ENCODE's input side).
pub(crate) fn decode_text(s: &str, encoding: &str) -> Result<Vec<u8>, String> {
    match encoding.to_ascii_lowercase().as_str() {
        "hex" => decode_hex(s),
        "utf8" => Ok(s.as_bytes().to_vec()),
        "ascii" => Ok(s
            .chars()
            .map(|c| if c.is_ascii() { c as u8 } else { b'?' })
            .collect()),
        "base64" => decode_base64(s),
        _ => Err(encoding_error(encoding)),
    }
}

/// Bytes to a string in `encoding` (FROM_BYTES writes hex in upper case, ENCODE in lower).
pub(crate) fn encode_bytes(b: &[u8], encoding: &str) -> Result<String, String> {
    encode_bytes_as(b, encoding, true)
}

fn encode_bytes_as(b: &[u8], encoding: &str, upper_hex: bool) -> Result<String, String> {
    match encoding.to_ascii_lowercase().as_str() {
        "hex" if upper_hex => Ok(b.iter().map(|byte| format!("{byte:02X}")).collect()),
        "hex" => Ok(b.iter().map(|byte| format!("{byte:02x}")).collect()),
        "utf8" => Ok(String::from_utf8_lossy(b).into_owned()),
        "ascii" => Ok(b
            .iter()
            .map(|&byte| {
                if byte.is_ascii() {
                    byte as char
                } else {
                    '\u{fffd}'
                }
            })
            .collect()),
        "base64" => Ok(encode_base64(b)),
        _ => Err(encoding_error(encoding)),
    }
}

/// Hex digits, optionally as `0x...` or `X'...'` (ksqlDB's literal forms).
fn decode_hex(s: &str) -> Result<Vec<u8>, String> {
    let quoted = (s.starts_with("X'") || s.starts_with("x'")) && s.ends_with('\'') && s.len() >= 3;
    let digits = if let Some(rest) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        rest
    } else if quoted {
        &s[2..s.len() - 1]
    } else {
        s
    };
    // An odd count is padded with a leading zero in the 0x form only.
    if !s.starts_with("0x") && !s.starts_with("0X") && digits.len() % 2 == 1 {
        return Err(format!("Invalid hex string (odd length): {s}"));
    }
    let text = if digits.len() % 2 == 1 {
        format!("0{digits}")
    } else {
        digits.to_string()
    };
    (0..text.len())
        .step_by(2)
        .map(|i| {
            u8::from_str_radix(text.get(i..i + 2).unwrap_or("zz"), 16)
                .map_err(|_| format!("Invalid hex string: {s}"))
        })
        .collect()
}

/// A case-insensitive encoding name as the tests send it.
const BASE64_ALPHABET: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

pub(crate) fn encode_base64(b: &[u8]) -> String {
    let mut out = String::with_capacity(b.len().div_ceil(3) * 4);
    for chunk in b.chunks(3) {
        let n = (chunk[0] as u32) << 16
            | (*chunk.get(1).unwrap_or(&0) as u32) << 8
            | *chunk.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(BASE64_ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

pub(crate) fn decode_base64(s: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    let mut buffer = 0u32;
    let mut bits = 0;
    for c in s.bytes() {
        if c == b'=' {
            break;
        }
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return Err(format!("Illegal base64 character in: {s}")),
        };
        buffer = buffer << 6 | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    Ok(out)
}

/// `\uXXXX` (one, or a surrogate pair) as CHR takes it; anything else is NULL.
fn chr_from_text(s: &str) -> Option<String> {
    let units: Option<Vec<u16>> = s
        .split("\\u")
        .skip(1)
        .map(|hex| u16::from_str_radix(hex, 16).ok().filter(|_| hex.len() == 4))
        .collect();
    let units = units?;
    if !s.starts_with("\\u") || units.is_empty() || units.len() > 2 {
        return None;
    }
    String::from_utf16(&units).ok()
}

fn number_from_bytes(args: &[Value], width: usize, double: bool) -> Result<Value, String> {
    let Some(b) = as_bytes(&args[0]) else {
        return Ok(Value::Null);
    };
    let little = match args.get(1) {
        None => false,
        Some(Value::String(order)) => match order.to_ascii_uppercase().as_str() {
            "LITTLE_ENDIAN" => true,
            "BIG_ENDIAN" => false,
            other => return Err(format!("Unknown byte order '{other}'")),
        },
        Some(_) => return Ok(Value::Null),
    };
    if b.len() != width {
        return Err(format!(
            "Number of bytes must be equal to {width}, but found {}",
            b.len()
        ));
    }
    let mut buf = [0u8; 8];
    buf[..width].copy_from_slice(b);
    Ok(match (width, double) {
        (4, _) => {
            let four = [buf[0], buf[1], buf[2], buf[3]];
            Value::Integer(if little {
                i32::from_le_bytes(four)
            } else {
                i32::from_be_bytes(four)
            })
        }
        (_, false) => Value::BigInt(if little {
            i64::from_le_bytes(buf)
        } else {
            i64::from_be_bytes(buf)
        }),
        (_, true) => Value::Double(if little {
            f64::from_le_bytes(buf)
        } else {
            f64::from_be_bytes(buf)
        }),
    })
}

/// Random bits without a dependency: the std hasher's per-process random keys, stirred with a
/// counter and the clock.
pub(crate) fn random_u64() -> u64 {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    hasher.write_u64(nanos);
    hasher.finish()
}

fn random_uuid() -> String {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&random_u64().to_le_bytes());
    b[8..].copy_from_slice(&random_u64().to_le_bytes());
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    uuid_text(&b)
}

fn uuid_text(b: &[u8]) -> String {
    let hex: String = b.iter().map(|byte| format!("{byte:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Compiles a Java regular expression (compiled patterns are cached per thread: the pattern is
/// nearly always a literal). Java's syntax is translated where Rust's differs (see
/// `translate_java_regex`); look-around and back-references do not exist in Rust's engine, so
/// such a pattern is a processing error rather than a different match.
pub(crate) fn java_regex(pattern: &str) -> Result<regex::Regex, String> {
    use std::cell::RefCell;
    use std::collections::HashMap;
    thread_local! {
        static CACHE: RefCell<HashMap<String, regex::Regex>> = RefCell::new(HashMap::new());
    }
    CACHE.with(|cache| {
        if let Some(found) = cache.borrow().get(pattern) {
            return Ok(found.clone());
        }
        let compiled = regex::Regex::new(&translate_java_regex(pattern))
            .map_err(|e| format!("Invalid regular expression pattern: {e}"))?;
        let mut cache = cache.borrow_mut();
        if cache.len() > 256 {
            cache.clear();
        }
        cache.insert(pattern.to_string(), compiled.clone());
        Ok(compiled)
    })
}

/// Java's regex dialect in Rust's: `\w`, `\d`, `\s` and `\b` are ASCII-only in Java; the POSIX
/// classes `\p{Alpha}` ... are Java names; `\Q...\E` quotes; possessive quantifiers (`a*+`)
/// become greedy ones (the same matches whenever backtracking would not change them).
pub fn translate_java_regex(pattern: &str) -> String {
    const POSIX: [(&str, &str); 13] = [
        ("Lower", "lower"),
        ("Upper", "upper"),
        ("ASCII", "ascii"),
        ("Alpha", "alpha"),
        ("Digit", "digit"),
        ("Alnum", "alnum"),
        ("Punct", "punct"),
        ("Graph", "graph"),
        ("Print", "print"),
        ("Blank", "blank"),
        ("Cntrl", "cntrl"),
        ("XDigit", "xdigit"),
        ("Space", "space"),
    ];
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::with_capacity(pattern.len() + 8);
    let mut class_depth = 0usize;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\\' if i + 1 < chars.len() => {
                let next = chars[i + 1];
                match next {
                    'Q' => {
                        let mut j = i + 2;
                        while j < chars.len()
                            && !(chars[j] == '\\' && chars.get(j + 1) == Some(&'E'))
                        {
                            out.push_str(&regex::escape(&chars[j].to_string()));
                            j += 1;
                        }
                        i = j + 2;
                        continue;
                    }
                    'w' | 'd' | 's' if class_depth > 0 => out.push_str(match next {
                        'w' => "0-9A-Za-z_",
                        'd' => "0-9",
                        _ => "\\t\\n\\x0B\\x0C\\r ",
                    }),
                    'w' | 'd' | 's' | 'b' | 'B' if class_depth == 0 => {
                        out.push_str("(?-u:\\");
                        out.push(next);
                        out.push(')');
                    }
                    'W' | 'D' | 'S' if class_depth == 0 => out.push_str(match next {
                        'W' => "[^0-9A-Za-z_]",
                        'D' => "[^0-9]",
                        _ => "[^\\t\\n\\x0B\\x0C\\r ]",
                    }),
                    'p' | 'P' if chars.get(i + 2) == Some(&'{') => {
                        let close = chars[i + 3..].iter().position(|&ch| ch == '}');
                        let name: String = close
                            .map(|n| chars[i + 3..i + 3 + n].iter().collect())
                            .unwrap_or_default();
                        let posix = POSIX.iter().find(|(java, _)| *java == name);
                        match (posix, close) {
                            (Some((_, rust)), Some(n)) => {
                                let negate = if next == 'P' { "^" } else { "" };
                                if class_depth > 0 {
                                    out.push_str(&format!("[:{negate}{rust}:]"));
                                } else {
                                    out.push_str(&format!("[[:{negate}{rust}:]]"));
                                }
                                i += 4 + n;
                                continue;
                            }
                            _ => {
                                out.push('\\');
                                out.push(next);
                            }
                        }
                    }
                    other => {
                        out.push('\\');
                        out.push(other);
                    }
                }
                i += 2;
                continue;
            }
            '[' => {
                class_depth += 1;
                out.push('[');
                // A `]` or `^]` right after the opening bracket is a literal in both dialects.
                if chars.get(i + 1) == Some(&'^') {
                    out.push('^');
                    i += 1;
                }
                if chars.get(i + 1) == Some(&']') {
                    out.push_str("\\]");
                    i += 1;
                }
            }
            ']' if class_depth > 0 => {
                class_depth -= 1;
                out.push(']');
            }
            '+' if class_depth == 0
                && i > 0
                && matches!(chars[i - 1], '*' | '+' | '?' | '}')
                && !(i > 1 && chars[i - 2] == '\\') =>
            {
                // Possessive quantifier: keep the greedy one.
            }
            other => out.push(other),
        }
        i += 1;
    }
    out
}

/// Java's `Matcher.replaceAll` replacement syntax (`$1`, `${name}`, `\$`) in Rust's.
fn java_replacement(replacement: &str) -> String {
    let mut out = String::with_capacity(replacement.len());
    let mut chars = replacement.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('$') => out.push_str("$$"),
                Some(other) => out.push(other),
                None => {}
            },
            '$' => {
                if chars.peek() == Some(&'{') {
                    out.push('$');
                } else {
                    let mut digits = String::new();
                    while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                        digits.push(*d);
                        chars.next();
                    }
                    out.push_str(&format!("${{{digits}}}"));
                }
            }
            other => out.push(other),
        }
    }
    out
}

/// Java's `Pattern.split` for patterns that match the empty string: no leading empty piece
/// from a zero-width match at the start, trailing empty pieces dropped.
fn java_split(regex: &regex::Regex, s: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut last = 0;
    for m in regex.find_iter(s) {
        if m.end() == 0 {
            continue;
        }
        parts.push(s[last..m.start()].to_string());
        last = m.end();
    }
    parts.push(s[last..].to_string());
    if s.is_empty() {
        return vec![String::new()];
    }
    while parts.len() > 1 && parts.last().is_some_and(String::is_empty) {
        parts.pop();
    }
    parts
}

fn regexp_extract(args: &[Value]) -> Result<Value, String> {
    let (Some(pattern), Some(input)) = (args[0].as_str(), args[1].as_str()) else {
        return Ok(Value::Null);
    };
    let group = match args.get(2) {
        None => 0,
        Some(v) => match v.as_i64() {
            Some(g) => g,
            None => return Ok(Value::Null),
        },
    };
    let regex = java_regex(pattern)?;
    let Some(captures) = regex.captures(input) else {
        return Ok(Value::Null);
    };
    if group < 0 || group as usize >= captures.len() {
        return Err(format!("No group {group}"));
    }
    Ok(captures
        .get(group as usize)
        .map_or(Value::Null, |m| Value::String(m.as_str().to_string())))
}

fn regexp_extract_all(args: &[Value]) -> Result<Value, String> {
    let (Some(pattern), Some(input)) = (args[0].as_str(), args[1].as_str()) else {
        return Ok(Value::Null);
    };
    let group = match args.get(2) {
        None => 0,
        Some(v) => match v.as_i64() {
            Some(g) => g,
            None => return Ok(Value::Null),
        },
    };
    let regex = java_regex(pattern)?;
    if group < 0 || group as usize >= regex.captures_len() {
        return Err(format!("No group {group}"));
    }
    Ok(Value::Array(
        regex
            .captures_iter(input)
            .map(|c| {
                c.get(group as usize)
                    .map_or(Value::Null, |m| Value::String(m.as_str().to_string()))
            })
            .collect(),
    ))
}

#[cfg(test)]
mod tests {
    use crate::functions::FunctionRegistry;
    use crate::types::SqlType;
    use crate::value::Value;

    fn s(text: &str) -> Value {
        Value::String(text.into())
    }

    pub(crate) fn call(name: &str, types: &[SqlType], args: &[Value]) -> Value {
        let registry = FunctionRegistry::builtin();
        let bound = registry.get(name).unwrap().bind(types).unwrap();
        bound.call(args).unwrap()
    }

    #[test]
    fn ucase_binds_to_strings_only_and_keeps_null() {
        let registry = FunctionRegistry::builtin();
        let ucase = registry.get("ucase").unwrap();
        let bound = ucase.bind(&[SqlType::String]).unwrap();
        assert_eq!(bound.call(&[s("abc")]).unwrap(), s("ABC"));
        assert_eq!(bound.call(&[Value::Null]).unwrap(), Value::Null);
        let refused = ucase.bind(&[SqlType::Integer]).err().unwrap();
        assert_eq!(
            refused.0,
            "Function 'ucase' does not accept parameters (INTEGER)."
        );
    }

    #[test]
    fn substring_counts_from_one_and_from_the_end() {
        let t2 = [SqlType::String, SqlType::Integer];
        let t3 = [SqlType::String, SqlType::Integer, SqlType::Integer];
        assert_eq!(
            call("SUBSTRING", &t2, &[s("hello_world"), Value::Integer(7)]),
            s("world")
        );
        assert_eq!(
            call("SUBSTRING", &t2, &[s("tiny"), Value::Integer(9)]),
            s("")
        );
        assert_eq!(
            call("SUBSTRING", &t2, &[s("hello"), Value::Integer(-3)]),
            s("llo")
        );
        assert_eq!(
            call(
                "SUBSTRING",
                &t3,
                &[s("hello_world"), Value::Integer(0), Value::Integer(2)]
            ),
            s("he")
        );
        assert_eq!(
            call(
                "SUBSTRING",
                &t3,
                &[s("hello"), Value::Integer(2), Value::Null]
            ),
            Value::Null
        );
        assert_eq!(
            call(
                "SUBSTRING",
                &[SqlType::Bytes, SqlType::Integer],
                &[Value::Bytes(b"abcdef".to_vec()), Value::Integer(4)]
            ),
            Value::Bytes(b"def".to_vec())
        );
    }

    #[test]
    fn pads_truncate_repeat_and_refuse_bad_arguments() {
        let t = [SqlType::String, SqlType::Integer, SqlType::String];
        assert_eq!(
            call("LPAD", &t, &[s("ab"), Value::Integer(6), s("xyz")]),
            s("xyzxab")
        );
        assert_eq!(
            call("RPAD", &t, &[s("ab"), Value::Integer(5), s("-")]),
            s("ab---")
        );
        assert_eq!(
            call("LPAD", &t, &[s("abcd"), Value::Integer(3), s("-")]),
            s("abc")
        );
        assert_eq!(
            call("RPAD", &t, &[s("ab"), Value::Integer(-2), s("-")]),
            Value::Null
        );
        assert_eq!(
            call("RPAD", &t, &[s("ab"), Value::Integer(4), s("")]),
            Value::Null
        );
    }

    #[test]
    fn split_keeps_empty_pieces_and_splits_characters_on_empty() {
        let t = [SqlType::String, SqlType::String];
        let arr = |items: &[&str]| Value::Array(items.iter().map(|i| s(i)).collect());
        assert_eq!(
            call("SPLIT", &t, &[s("|x||"), s("|")]),
            arr(&["", "x", "", ""])
        );
        assert_eq!(call("SPLIT", &t, &[s("xy"), s("")]), arr(&["x", "y"]));
        assert_eq!(call("SPLIT", &t, &[s(""), s("")]), arr(&[""]));
        assert_eq!(
            call("REGEXP_SPLIT_TO_ARRAY", &t, &[s("1x2yy3"), s("x|y")]),
            arr(&["1", "2", "", "3"])
        );
        assert_eq!(
            call("REGEXP_SPLIT_TO_ARRAY", &t, &[s("abc"), s("")]),
            arr(&["a", "b", "c"])
        );
        let bytes = call(
            "SPLIT",
            &[SqlType::Bytes, SqlType::Bytes],
            &[Value::Bytes(b"a--b".to_vec()), Value::Bytes(b"--".to_vec())],
        );
        assert_eq!(
            bytes,
            Value::Array(vec![
                Value::Bytes(b"a".to_vec()),
                Value::Bytes(b"b".to_vec())
            ])
        );
    }

    #[test]
    fn regexp_extract_finds_groups_and_null_when_absent() {
        let t = [SqlType::String, SqlType::String, SqlType::Integer];
        assert_eq!(
            call(
                "REGEXP_EXTRACT",
                &t,
                &[
                    s("(\\w+)@(\\w+)"),
                    s("mail bob@host now"),
                    Value::Integer(2)
                ]
            ),
            s("host")
        );
        assert_eq!(
            call("REGEXP_EXTRACT", &t[..2], &[s("z+"), s("abc")]),
            Value::Null
        );
        assert_eq!(
            call("REGEXP_EXTRACT_ALL", &t[..2], &[s("\\d"), s("a1b2")]),
            Value::Array(vec![s("1"), s("2")])
        );
        assert_eq!(
            call(
                "REGEXP_REPLACE",
                &[SqlType::String, SqlType::String, SqlType::String],
                &[s("2024-05"), s("(\\d+)-(\\d+)"), s("$2/$1")]
            ),
            s("05/2024")
        );
    }

    #[test]
    fn java_regexes_translate_to_rust() {
        use super::translate_java_regex as t;
        assert_eq!(t("\\w+"), "(?-u:\\w)+");
        assert_eq!(t("[\\w.-]+"), "[0-9A-Za-z_.-]+");
        assert_eq!(t("\\p{Alpha}\\P{Digit}"), "[[:alpha:]][[:^digit:]]");
        assert_eq!(t("[\\p{Upper}x]"), "[[:upper:]x]");
        assert_eq!(t("\\Qa.b\\E+"), "a\\.b+");
        assert_eq!(t("a*+b++"), "a*b+");
        assert_eq!(t("\\++"), "\\++");
        assert_eq!(t("[]a]"), "[\\]a]");
        assert_eq!(t("\\p{L}"), "\\p{L}");
        for java in ["\\b\\w\\B", "\\W\\D\\S", "[\\s\\d]"] {
            assert!(super::java_regex(java).is_ok(), "{java}");
        }
        assert!(super::java_regex("\\Wx").unwrap().is_match("éx"));
        let regex = super::java_regex("\\w+").unwrap();
        assert_eq!(regex.find("é_ab").map(|m| m.as_str()), Some("_ab"));
    }

    #[test]
    fn instr_searches_forwards_and_backwards() {
        let t = [
            SqlType::String,
            SqlType::String,
            SqlType::Integer,
            SqlType::Integer,
        ];
        let instr = |pos: i32, occ: i32| {
            call(
                "INSTR",
                &t,
                &[
                    s("abXabXab"),
                    s("ab"),
                    Value::Integer(pos),
                    Value::Integer(occ),
                ],
            )
        };
        assert_eq!(instr(1, 1), Value::Integer(1));
        assert_eq!(instr(2, 1), Value::Integer(4));
        assert_eq!(instr(1, 3), Value::Integer(7));
        assert_eq!(instr(-1, 1), Value::Integer(7));
        assert_eq!(instr(-3, 2), Value::Integer(1));
        assert_eq!(instr(1, 4), Value::Integer(0));
    }

    #[test]
    fn masks_initcap_split_to_map_and_encodings() {
        assert_eq!(call("MASK", &[SqlType::String], &[s("Ab1-z")]), s("Xxn-x"));
        assert_eq!(
            call(
                "MASK_KEEP_RIGHT",
                &[SqlType::String, SqlType::Integer],
                &[s("AbCd"), Value::Integer(1)]
            ),
            s("XxXd")
        );
        assert_eq!(
            call("INITCAP", &[SqlType::String], &[s(" hELLO  wide_world\t")]),
            s("Hello  Wide_world\t")
        );
        assert_eq!(
            call(
                "SUBSTRING",
                &[SqlType::String, SqlType::Integer],
                &[s("a\u{1F600}b"), Value::Integer(4)]
            ),
            s("b")
        );
        assert_eq!(
            call("LEN", &[SqlType::String], &[s("a\u{1F600}")]),
            Value::Integer(3)
        );
        assert_eq!(
            call(
                "SPLIT_TO_MAP",
                &[SqlType::String, SqlType::String, SqlType::String],
                &[s("a=1;;b=2;c;a=3"), s(";"), s("=")]
            ),
            Value::Map(vec![(s("a"), s("3")), (s("b"), s("2"))])
        );
        assert_eq!(
            call(
                "ENCODE",
                &[SqlType::String, SqlType::String, SqlType::String],
                &[s("0x4869"), s("hex"), s("base64")]
            ),
            s("SGk=")
        );
        assert_eq!(
            call(
                "FROM_BYTES",
                &[SqlType::Bytes, SqlType::String],
                &[Value::Bytes(vec![0x1a, 0xb2]), s("hex")]
            ),
            s("1AB2")
        );
        assert_eq!(
            call("CHR", &[SqlType::String], &[s("\\ud83d\\ude00")]),
            s("\u{1F600}")
        );
        assert_eq!(
            call("CHR", &[SqlType::Integer], &[Value::Integer(-1)]),
            Value::Null
        );
        assert_eq!(
            super::decode_base64(&super::encode_base64(b"hello!?")).unwrap(),
            b"hello!?"
        );
    }

    #[test]
    fn md5_digests_as_hex() {
        assert_eq!(
            call("MD5", &[SqlType::String], &[s("")]),
            s("d41d8cd98f00b204e9800998ecf8427e")
        );
        assert_eq!(
            call(
                "MD5",
                &[SqlType::String],
                &[s("The quick brown fox jumps over the lazy dog")]
            ),
            s("9e107d9d372bb6826bd81d3542a419d6")
        );
        assert_eq!(call("MD5", &[SqlType::String], &[Value::Null]), Value::Null);
    }

    #[test]
    fn concat_skips_nulls_and_uuid_is_version_4() {
        assert_eq!(
            call(
                "CONCAT",
                &[SqlType::String, SqlType::String, SqlType::String],
                &[s("a"), Value::Null, s("b")]
            ),
            s("ab")
        );
        assert_eq!(
            call(
                "CONCAT_WS",
                &[SqlType::String, SqlType::String, SqlType::String],
                &[s(", "), s("a"), s("b")]
            ),
            s("a, b")
        );
        let Value::String(uuid) = call("UUID", &[], &[]) else {
            panic!("not a string")
        };
        assert_eq!(uuid.len(), 36);
        assert_eq!(&uuid[14..15], "4");
    }
}
