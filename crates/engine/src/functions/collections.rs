//! Array and map functions (ksqlDB's "ARRAY" and "MAP" categories). They are generic over the
//! element type: each binds to `ARRAY<T>` / `MAP<K, V>` and returns types built from them.
//! (The ARRAY[...] and MAP(...) constructors and the lambda functions are the evaluator's.)

use std::sync::Arc;

use super::math::compare_values;
use super::{common_type, row_fn, FunctionRegistry, GenericFunction, RowFn};
use crate::types::SqlType;
use crate::value::{decimal_to_string, java_double_to_string, Value};

use SqlType::{Array, BigInt, Boolean, Integer, Map, String as Str};

fn items(value: &Value) -> Option<&[Value]> {
    match value {
        Value::Array(items) => Some(items),
        _ => None,
    }
}

fn distinct(values: impl IntoIterator<Item = Value>) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::new();
    for v in values {
        if !out.contains(&v) {
            out.push(v);
        }
    }
    out
}

/// Two arrays of one (common) element type: returns `ARRAY<common>` and a row function over the
/// two coerced lists (either NULL gives NULL).
fn two_arrays(
    types: &[SqlType],
    f: fn(Vec<Value>, Vec<Value>) -> Vec<Value>,
) -> Option<(SqlType, RowFn)> {
    let [a @ Array(_), b @ Array(_)] = types else {
        return None;
    };
    let common = common_type(&[a.clone(), b.clone()])?;
    let target = common.clone();
    Some((
        common,
        row_fn(move |args| {
            let (Value::Array(_), Value::Array(_)) = (&args[0], &args[1]) else {
                return Ok(Value::Null);
            };
            let left = super::coerce(&args[0], &target);
            let right = super::coerce(&args[1], &target);
            match (left, right) {
                (Value::Array(l), Value::Array(r)) => Ok(Value::Array(f(l, r))),
                _ => Ok(Value::Null),
            }
        }),
    ))
}

/// Java's `String.valueOf` of a primitive element (ARRAY_JOIN).
fn java_text(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Boolean(b) => b.to_string(),
        Value::Integer(v) => v.to_string(),
        Value::BigInt(v) => v.to_string(),
        Value::Double(v) => java_double_to_string(*v),
        Value::Decimal { unscaled, scale } => decimal_to_string(*unscaled, *scale),
        Value::String(s) => s.clone(),
        other => format!("{other:?}"),
    }
}

fn add(registry: &mut FunctionRegistry, function: GenericFunction) {
    registry.register(Arc::new(function));
}

pub(super) fn register(registry: &mut FunctionRegistry) {
    add(
        registry,
        GenericFunction {
            name: "ARRAY_CONTAINS",
            category: "ARRAY",
            description: "Returns true if the array is non-null and contains the supplied value.",
            signatures: &["ARRAY_CONTAINS(ARRAY<T>, T) => BOOLEAN"],
            bind: |types| {
                let [Array(inner), value] = types else {
                    return None;
                };
                let common = common_type(&[inner.as_ref().clone(), value.clone()])?;
                Some((
                    Boolean,
                    row_fn(move |args| {
                        let Some(list) = items(&args[0]) else {
                            return Ok(Value::Boolean(false));
                        };
                        let needle = super::coerce(&args[1], &common);
                        Ok(Value::Boolean(
                            list.iter().any(|v| super::coerce(v, &common) == needle),
                        ))
                    }),
                ))
            },
        },
    );
    add(
        registry,
        GenericFunction {
            name: "ARRAY_LENGTH",
            category: "ARRAY",
            description: "Returns the number of elements in the array. If the supplied parameter \
                      is NULL the method returns NULL.",
            signatures: &["ARRAY_LENGTH(ARRAY<T>) => INTEGER"],
            bind: |types| match types {
                [Array(_)] => Some((
                    Integer,
                    row_fn(|a| {
                        Ok(items(&a[0]).map_or(Value::Null, |l| Value::Integer(l.len() as i32)))
                    }),
                )),
                _ => None,
            },
        },
    );
    add(
        registry,
        GenericFunction {
            name: "ARRAY_DISTINCT",
            category: "ARRAY",
            description: "Returns an array of all the distinct values, including NULL if present, \
                      from the input array. The output array elements will be in order of \
                      their first occurrence in the input.",
            signatures: &["ARRAY_DISTINCT(ARRAY<T>) => ARRAY<T>"],
            bind: |types| match types {
                [t @ Array(_)] => Some((
                    t.clone(),
                    row_fn(|a| {
                        Ok(items(&a[0])
                            .map_or(Value::Null, |l| Value::Array(distinct(l.iter().cloned()))))
                    }),
                )),
                _ => None,
            },
        },
    );
    add(
        registry,
        GenericFunction {
            name: "ARRAY_EXCEPT",
            category: "ARRAY",
            description: "Returns an array of all the distinct elements from an array, except for \
                      those also present in a second array. The order of entries in the first \
                      array is preserved.",
            signatures: &["ARRAY_EXCEPT(ARRAY<T>, ARRAY<T>) => ARRAY<T>"],
            bind: |types| {
                two_arrays(types, |l, r| {
                    distinct(l.into_iter().filter(|v| !r.contains(v)))
                })
            },
        },
    );
    add(
        registry,
        GenericFunction {
            name: "ARRAY_INTERSECT",
            category: "ARRAY",
            description: "Returns an array of all the distinct elements from the intersection of \
                      both input arrays. The order of entries in the output is the same as in \
                      the first input array.",
            signatures: &["ARRAY_INTERSECT(ARRAY<T>, ARRAY<T>) => ARRAY<T>"],
            bind: |types| {
                two_arrays(types, |l, r| {
                    distinct(l.into_iter().filter(|v| r.contains(v)))
                })
            },
        },
    );
    add(
        registry,
        GenericFunction {
            name: "ARRAY_UNION",
            category: "ARRAY",
            description:
                "Returns an array of all the distinct elements from both input arrays, in \
                      the order they are encountered.",
            signatures: &["ARRAY_UNION(ARRAY<T>, ARRAY<T>) => ARRAY<T>"],
            bind: |types| two_arrays(types, |l, r| distinct(l.into_iter().chain(r))),
        },
    );
    add(
        registry,
        GenericFunction {
            name: "ARRAY_CONCAT",
            category: "ARRAY",
            description: "Returns an array representing the concatenation of both input arrays; a \
                      NULL array counts as empty unless both are NULL.",
            signatures: &["ARRAY_CONCAT(ARRAY<T>, ARRAY<T>) => ARRAY<T>"],
            bind: |types| {
                let [a @ Array(_), b @ Array(_)] = types else {
                    return None;
                };
                let common = common_type(&[a.clone(), b.clone()])?;
                let target = common.clone();
                Some((
                    common,
                    row_fn(move |args| {
                        if args[0].is_null() && args[1].is_null() {
                            return Ok(Value::Null);
                        }
                        let mut out = Vec::new();
                        for arg in &args[..2] {
                            if let Value::Array(list) = super::coerce(arg, &target) {
                                out.extend(list);
                            }
                        }
                        Ok(Value::Array(out))
                    }),
                ))
            },
        },
    );
    add(
        registry,
        GenericFunction {
            name: "ARRAY_REMOVE",
            category: "ARRAY",
            description: "Removes all elements from the input array equal to the second argument \
                      (NULL removes NULLs).",
            signatures: &["ARRAY_REMOVE(ARRAY<T>, T) => ARRAY<T>"],
            bind: |types| {
                let [t @ Array(inner), value] = types else {
                    return None;
                };
                let common = common_type(&[inner.as_ref().clone(), value.clone()])?;
                Some((
                    t.clone(),
                    row_fn(move |args| {
                        let Some(list) = items(&args[0]) else {
                            return Ok(Value::Null);
                        };
                        let victim = super::coerce(&args[1], &common);
                        Ok(Value::Array(
                            list.iter()
                                .filter(|v| super::coerce(v, &common) != victim)
                                .cloned()
                                .collect(),
                        ))
                    }),
                ))
            },
        },
    );
    add(
        registry,
        GenericFunction {
            name: "ARRAY_JOIN",
            category: "ARRAY",
            description: "Creates a flat string representation of all the primitive elements \
                      contained in the given array, separated by the delimiter (a comma by \
                      default; NULL joins with nothing).",
            signatures: &[
                "ARRAY_JOIN(ARRAY<T>) => STRING",
                "ARRAY_JOIN(ARRAY<T>, STRING) => STRING",
            ],
            bind: |types| match types {
                [Array(inner)] | [Array(inner), Str] if inner.is_primitive() => Some((
                    Str,
                    row_fn(|a| {
                        let Some(list) = items(&a[0]) else {
                            return Ok(Value::Null);
                        };
                        let delimiter = match a.get(1) {
                            None => ",",
                            Some(Value::String(d)) => d.as_str(),
                            Some(_) => "",
                        };
                        let parts: Vec<String> = list.iter().map(java_text).collect();
                        Ok(Value::String(parts.join(delimiter)))
                    }),
                )),
                _ => None,
            },
        },
    );
    for (name, greatest) in [("ARRAY_MAX", true), ("ARRAY_MIN", false)] {
        add(
            registry,
            GenericFunction {
                name,
                category: "ARRAY",
                description: if greatest {
                    "Return the maximum value from within an array of primitive values, according \
                 to their natural sort order. If the array is NULL, or contains only NULLs, \
                 return NULL."
                } else {
                    "Return the minimum value from within an array of primitive values, according \
                 to their natural sort order. If the array is NULL, or contains only NULLs, \
                 return NULL."
                },
                signatures: if greatest {
                    &["ARRAY_MAX(ARRAY<T>) => T"]
                } else {
                    &["ARRAY_MIN(ARRAY<T>) => T"]
                },
                bind: if greatest {
                    |types| bind_extreme(types, std::cmp::Ordering::Greater)
                } else {
                    |types| bind_extreme(types, std::cmp::Ordering::Less)
                },
            },
        );
    }
    add(
        registry,
        GenericFunction {
            name: "ARRAY_SORT",
            category: "ARRAY",
            description: "Sorts an array of primitive values, according to their natural sort \
                      order. Any NULLs in the array will be placed at the end. The optional \
                      direction is 'ASC' (default) or 'DESC'.",
            signatures: &[
                "ARRAY_SORT(ARRAY<T>) => ARRAY<T>",
                "ARRAY_SORT(ARRAY<T>, STRING) => ARRAY<T>",
            ],
            bind: |types| match types {
                [t @ Array(inner)] | [t @ Array(inner), Str] if inner.is_primitive() => Some((
                    t.clone(),
                    row_fn(|a| {
                        let Some(list) = items(&a[0]) else {
                            return Ok(Value::Null);
                        };
                        let descending = match a.get(1) {
                            None => false,
                            Some(Value::String(d)) if d.eq_ignore_ascii_case("ASC") => false,
                            Some(Value::String(d)) if d.eq_ignore_ascii_case("DESC") => true,
                            Some(_) => return Ok(Value::Null),
                        };
                        let (mut present, nulls): (Vec<Value>, Vec<Value>) =
                            list.iter().cloned().partition(|v| !v.is_null());
                        present.sort_by(compare_values);
                        if descending {
                            present.reverse();
                        }
                        present.extend(nulls);
                        Ok(Value::Array(present))
                    }),
                )),
                _ => None,
            },
        },
    );
    add(
        registry,
        GenericFunction {
            name: "SLICE",
            category: "ARRAY",
            description: "Returns a subset of the array from the start to the end position \
                      (1-based, both inclusive); NULL when out of bounds.",
            signatures: &["SLICE(ARRAY<T>, INTEGER, INTEGER) => ARRAY<T>"],
            bind: |types| match types {
                [t @ Array(_), Integer, Integer] => Some((
                    t.clone(),
                    row_fn(|a| {
                        let Some(list) = items(&a[0]) else {
                            return Ok(Value::Null);
                        };
                        let start = a[1].as_i64().map_or(0, |f| f - 1);
                        let end = a[2].as_i64().unwrap_or(list.len() as i64);
                        if start < 0 || end > list.len() as i64 || start > end {
                            return Ok(Value::Null);
                        }
                        Ok(Value::Array(list[start as usize..end as usize].to_vec()))
                    }),
                )),
                _ => None,
            },
        },
    );
    add(
        registry,
        GenericFunction {
            name: "ELT",
            category: "STRING",
            description:
                "ELT(n, a, b, c) returns the nth string in the list (1-based), or NULL if \
                      n is out of range.",
            signatures: &["ELT(INTEGER, STRING...) => STRING"],
            bind: |types| match types {
                [Integer, rest @ ..] if rest.iter().all(|t| *t == Str) => Some((
                    Str,
                    row_fn(|a| {
                        Ok(match a[0].as_i64() {
                            Some(n) if n >= 1 && (n as usize) < a.len() => a[n as usize].clone(),
                            _ => Value::Null,
                        })
                    }),
                )),
                _ => None,
            },
        },
    );
    add(
        registry,
        GenericFunction {
            name: "FIELD",
            category: "STRING",
            description: "FIELD(str, args...) returns the 1-indexed position of str in args, or 0 \
                      if not found. If str is NULL, the return value is 0.",
            signatures: &["FIELD(STRING, STRING...) => INTEGER"],
            bind: |types| match types {
                [Str, rest @ ..] if rest.iter().all(|t| *t == Str) => Some((
                    Integer,
                    row_fn(|a| {
                        if a[0].is_null() {
                            return Ok(Value::Integer(0));
                        }
                        Ok(Value::Integer(
                            a[1..]
                                .iter()
                                .position(|v| *v == a[0])
                                .map_or(0, |i| i as i32 + 1),
                        ))
                    }),
                )),
                _ => None,
            },
        },
    );
    add(
        registry,
        GenericFunction {
            name: "GENERATE_SERIES",
            category: "ARRAY",
            description: "Constructs an array of values between start and end (inclusive), \
                      stepping by step (1 by default).",
            signatures: &[
                "GENERATE_SERIES(INTEGER, INTEGER) => ARRAY<INTEGER>",
                "GENERATE_SERIES(INTEGER, INTEGER, INTEGER) => ARRAY<INTEGER>",
                "GENERATE_SERIES(BIGINT, BIGINT) => ARRAY<BIGINT>",
                "GENERATE_SERIES(BIGINT, BIGINT, INTEGER) => ARRAY<BIGINT>",
            ],
            bind: |types| {
                let big = match types {
                    [Integer, Integer] | [Integer, Integer, Integer] => false,
                    [Integer | BigInt, Integer | BigInt]
                    | [Integer | BigInt, Integer | BigInt, Integer] => true,
                    _ => return None,
                };
                let element = if big { BigInt } else { Integer };
                Some((
                    Array(Box::new(element)),
                    row_fn(move |a| {
                        let (Some(start), Some(end)) = (a[0].as_i64(), a[1].as_i64()) else {
                            return Ok(Value::Null);
                        };
                        let step = match a.get(2) {
                            None => {
                                if end >= start {
                                    1
                                } else {
                                    -1
                                }
                            }
                            Some(v) => match v.as_i64() {
                                Some(s) => s,
                                None => return Ok(Value::Null),
                            },
                        };
                        if step == 0 {
                            return Err("GENERATE_SERIES step cannot be zero".into());
                        }
                        if (end > start && step < 0) || (end < start && step > 0) {
                            return Err("GENERATE_SERIES has invalid step: if start < end, step \
                                    must be positive; if start > end, step must be negative"
                                .into());
                        }
                        let count = (end as i128 - start as i128) / step as i128 + 1;
                        if count > 10_000_000 {
                            return Err("GENERATE_SERIES would create too many elements".into());
                        }
                        let count = count as i64;
                        Ok(Value::Array(
                            (0..count)
                                .map(|i| {
                                    let v = start + i * step;
                                    if big {
                                        Value::BigInt(v)
                                    } else {
                                        Value::Integer(v as i32)
                                    }
                                })
                                .collect(),
                        ))
                    }),
                ))
            },
        },
    );
    register_maps(registry);
}

fn bind_extreme(types: &[SqlType], wanted: std::cmp::Ordering) -> Option<(SqlType, RowFn)> {
    let [Array(inner)] = types else {
        return None;
    };
    if !inner.is_primitive() {
        return None;
    }
    Some((
        inner.as_ref().clone(),
        row_fn(move |a| {
            let Some(list) = items(&a[0]) else {
                return Ok(Value::Null);
            };
            let mut best: Option<&Value> = None;
            for v in list.iter().filter(|v| !v.is_null()) {
                if best.is_none_or(|b| compare_values(v, b) == wanted) {
                    best = Some(v);
                }
            }
            Ok(best.cloned().unwrap_or(Value::Null))
        }),
    ))
}

fn register_maps(registry: &mut FunctionRegistry) {
    add(
        registry,
        GenericFunction {
            name: "MAP_KEYS",
            category: "MAP",
            description: "Returns an array that contains all of the keys from the specified map.",
            signatures: &["MAP_KEYS(MAP<K, V>) => ARRAY<K>"],
            bind: |types| match types {
                [Map(k, _)] => Some((
                    Array(k.clone()),
                    row_fn(|a| {
                        Ok(match &a[0] {
                            Value::Map(entries) => {
                                Value::Array(entries.iter().map(|(k, _)| k.clone()).collect())
                            }
                            _ => Value::Null,
                        })
                    }),
                )),
                _ => None,
            },
        },
    );
    add(
        registry,
        GenericFunction {
            name: "MAP_VALUES",
            category: "MAP",
            description: "Returns an array that contains all of the values from the specified map.",
            signatures: &["MAP_VALUES(MAP<K, V>) => ARRAY<V>"],
            bind: |types| match types {
                [Map(_, v)] => Some((
                    Array(v.clone()),
                    row_fn(|a| {
                        Ok(match &a[0] {
                            Value::Map(entries) => {
                                Value::Array(entries.iter().map(|(_, v)| v.clone()).collect())
                            }
                            _ => Value::Null,
                        })
                    }),
                )),
                _ => None,
            },
        },
    );
    add(
        registry,
        GenericFunction {
            name: "MAP_UNION",
            category: "MAP",
            description: "Returns a new map containing the union of all entries from both input \
                      maps. If a key is present in both input maps, the corresponding value \
                      from the second map is returned.",
            signatures: &["MAP_UNION(MAP<K, V>, MAP<K, V>) => MAP<K, V>"],
            bind: |types| {
                let [a @ Map(..), b @ Map(..)] = types else {
                    return None;
                };
                let common = common_type(&[a.clone(), b.clone()])?;
                let target = common.clone();
                Some((
                    common,
                    row_fn(move |args| {
                        if args[0].is_null() && args[1].is_null() {
                            return Ok(Value::Null);
                        }
                        let mut merged: Vec<(Value, Value)> = Vec::new();
                        for arg in &args[..2] {
                            if let Value::Map(entries) = super::coerce(arg, &target) {
                                for (k, v) in entries {
                                    match merged.iter_mut().find(|(key, _)| *key == k) {
                                        Some(existing) => existing.1 = v,
                                        None => merged.push((k, v)),
                                    }
                                }
                            }
                        }
                        Ok(Value::Map(merged))
                    }),
                ))
            },
        },
    );
    add(
        registry,
        GenericFunction {
            name: "AS_MAP",
            category: "MAP",
            description: "Construct a map from a list of keys and a list of values.",
            signatures: &["AS_MAP(ARRAY<STRING>, ARRAY<V>) => MAP<STRING, V>"],
            bind: |types| match types {
                [Array(k), Array(v)] if **k == Str => Some((
                    Map(Box::new(Str), v.clone()),
                    row_fn(|a| {
                        let (Some(keys), Some(values)) = (items(&a[0]), items(&a[1])) else {
                            return Ok(Value::Null);
                        };
                        let mut entries: Vec<(Value, Value)> = Vec::new();
                        for (i, key) in keys.iter().enumerate() {
                            let value = values.get(i).cloned().unwrap_or(Value::Null);
                            match entries.iter_mut().find(|(k, _)| k == key) {
                                Some(existing) => existing.1 = value,
                                None => entries.push((key.clone(), value)),
                            }
                        }
                        Ok(Value::Map(entries))
                    }),
                )),
                _ => None,
            },
        },
    );
    add(
        registry,
        GenericFunction {
            name: "ENTRIES",
            category: "MAP",
            description: "Construct an array of structs (K, V) from the entries of a map, sorted \
                      by key when the second argument is true.",
            signatures: &["ENTRIES(MAP<STRING, V>, BOOLEAN) => ARRAY<STRUCT<K STRING, V V>>"],
            bind: |types| match types {
                [Map(k, v), Boolean] if **k == Str => Some((
                    Array(Box::new(SqlType::Struct(vec![
                        ("K".into(), Str),
                        ("V".into(), v.as_ref().clone()),
                    ]))),
                    row_fn(|a| {
                        let Value::Map(entries) = &a[0] else {
                            return Ok(Value::Null);
                        };
                        let mut entries = entries.clone();
                        if a[1] == Value::Boolean(true) {
                            entries.sort_by(|(x, _), (y, _)| compare_values(x, y));
                        }
                        Ok(Value::Array(
                            entries
                                .into_iter()
                                .map(|(k, v)| Value::Struct(vec![k, v]))
                                .collect(),
                        ))
                    }),
                )),
                _ => None,
            },
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::functions::FunctionRegistry;

    fn call(name: &str, types: &[SqlType], args: &[Value]) -> Result<Value, String> {
        let registry = FunctionRegistry::builtin();
        registry.get(name).unwrap().bind(types).unwrap().call(args)
    }

    fn ints(values: &[Option<i32>]) -> Value {
        Value::Array(
            values
                .iter()
                .map(|v| v.map_or(Value::Null, Value::Integer))
                .collect(),
        )
    }

    fn s(text: &str) -> Value {
        Value::String(text.into())
    }

    #[test]
    fn set_functions_keep_first_occurrence_order() {
        let t = Array(Box::new(Integer));
        let a = ints(&[Some(3), None, Some(3), Some(1)]);
        let b = ints(&[Some(1), Some(4)]);
        assert_eq!(
            call(
                "ARRAY_DISTINCT",
                std::slice::from_ref(&t),
                std::slice::from_ref(&a)
            ),
            Ok(ints(&[Some(3), None, Some(1)]))
        );
        let two = [t.clone(), t.clone()];
        assert_eq!(
            call("ARRAY_EXCEPT", &two, &[a.clone(), b.clone()]),
            Ok(ints(&[Some(3), None]))
        );
        assert_eq!(
            call("ARRAY_INTERSECT", &two, &[a.clone(), b.clone()]),
            Ok(ints(&[Some(1)]))
        );
        assert_eq!(
            call("ARRAY_UNION", &two, &[a.clone(), b.clone()]),
            Ok(ints(&[Some(3), None, Some(1), Some(4)]))
        );
        assert_eq!(
            call("ARRAY_CONCAT", &two, &[Value::Null, b.clone()]),
            Ok(b.clone())
        );
        assert_eq!(
            call("ARRAY_UNION", &two, &[Value::Null, b]),
            Ok(Value::Null)
        );
        let widened = FunctionRegistry::builtin()
            .get("ARRAY_UNION")
            .unwrap()
            .bind(&[t.clone(), Array(Box::new(BigInt))])
            .unwrap();
        assert_eq!(widened.return_type(), Array(Box::new(BigInt)));
    }

    #[test]
    fn sort_min_max_join_and_remove() {
        let t = Array(Box::new(Integer));
        let a = ints(&[Some(2), None, Some(-1), Some(7)]);
        assert_eq!(
            call("ARRAY_SORT", &[t.clone(), Str], &[a.clone(), s("desc")]),
            Ok(ints(&[Some(7), Some(2), Some(-1), None]))
        );
        assert_eq!(
            call(
                "ARRAY_MIN",
                std::slice::from_ref(&t),
                std::slice::from_ref(&a)
            ),
            Ok(Value::Integer(-1))
        );
        assert_eq!(
            call("ARRAY_MAX", std::slice::from_ref(&t), &[ints(&[None])]),
            Ok(Value::Null)
        );
        assert_eq!(
            call(
                "ARRAY_JOIN",
                std::slice::from_ref(&t),
                std::slice::from_ref(&a)
            ),
            Ok(s("2,null,-1,7"))
        );
        assert_eq!(
            call("ARRAY_JOIN", &[t.clone(), Str], &[a.clone(), Value::Null]),
            Ok(s("2null-17"))
        );
        assert_eq!(
            call(
                "ARRAY_REMOVE",
                &[t.clone(), Integer],
                &[a.clone(), Value::Null]
            ),
            Ok(ints(&[Some(2), Some(-1), Some(7)]))
        );
        assert_eq!(
            call(
                "ARRAY_CONTAINS",
                &[t.clone(), BigInt],
                &[a.clone(), Value::BigInt(7)]
            ),
            Ok(Value::Boolean(true))
        );
        assert_eq!(
            call("ARRAY_LENGTH", std::slice::from_ref(&t), &[Value::Null]),
            Ok(Value::Null)
        );
        assert_eq!(
            call(
                "SLICE",
                &[t.clone(), Integer, Integer],
                &[a.clone(), Value::Integer(2), Value::Integer(3)]
            ),
            Ok(ints(&[None, Some(-1)]))
        );
        assert_eq!(
            call(
                "SLICE",
                &[t, Integer, Integer],
                &[a, Value::Integer(2), Value::Integer(9)]
            ),
            Ok(Value::Null)
        );
    }

    #[test]
    fn elt_field_series_and_maps() {
        assert_eq!(
            call(
                "ELT",
                &[Integer, Str, Str],
                &[Value::Integer(2), s("a"), s("b")]
            ),
            Ok(s("b"))
        );
        assert_eq!(
            call("FIELD", &[Str, Str, Str], &[s("b"), s("a"), s("b")]),
            Ok(Value::Integer(2))
        );
        assert_eq!(
            call(
                "GENERATE_SERIES",
                &[Integer, Integer, Integer],
                &[Value::Integer(5), Value::Integer(0), Value::Integer(-2)]
            ),
            Ok(ints(&[Some(5), Some(3), Some(1)]))
        );
        assert!(call(
            "GENERATE_SERIES",
            &[Integer, Integer, Integer],
            &[Value::Integer(0), Value::Integer(5), Value::Integer(0)]
        )
        .is_err());
        let m = Map(Box::new(Str), Box::new(Integer));
        let left = Value::Map(vec![
            (s("b"), Value::Integer(1)),
            (s("a"), Value::Integer(2)),
        ]);
        let right = Value::Map(vec![(s("a"), Value::Integer(9))]);
        assert_eq!(
            call("MAP_UNION", &[m.clone(), m.clone()], &[left.clone(), right]),
            Ok(Value::Map(vec![
                (s("b"), Value::Integer(1)),
                (s("a"), Value::Integer(9))
            ]))
        );
        assert_eq!(
            call(
                "MAP_KEYS",
                std::slice::from_ref(&m),
                std::slice::from_ref(&left)
            ),
            Ok(Value::Array(vec![s("b"), s("a")]))
        );
        assert_eq!(
            call("ENTRIES", &[m, Boolean], &[left, Value::Boolean(true)]),
            Ok(Value::Array(vec![
                Value::Struct(vec![s("a"), Value::Integer(2)]),
                Value::Struct(vec![s("b"), Value::Integer(1)]),
            ]))
        );
        assert_eq!(
            call(
                "AS_MAP",
                &[Array(Box::new(Str)), Array(Box::new(Integer))],
                &[Value::Array(vec![s("k"), s("j")]), ints(&[Some(1)])]
            ),
            Ok(Value::Map(vec![
                (s("k"), Value::Integer(1)),
                (s("j"), Value::Null)
            ]))
        );
    }
}
