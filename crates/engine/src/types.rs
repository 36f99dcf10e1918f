//! ksqlDB's SQL types, written and parsed as ksqlDB writes them (`DECIMAL(4, 2)`,
//! `STRUCT<`A` INTEGER>`, `MAP<STRING, BIGINT>`).

use std::fmt;

/// A ksqlDB column type.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SqlType {
    Boolean,
    /// 32-bit signed integer (`INT`, `INTEGER`).
    Integer,
    /// 64-bit signed integer.
    BigInt,
    /// 64-bit IEEE float (`DOUBLE`; ksqlDB has no 32-bit float).
    Double,
    /// Fixed-point with `precision` digits of which `scale` are after the point.
    Decimal {
        precision: u8,
        scale: u8,
    },
    /// `STRING` / `VARCHAR`.
    String,
    Bytes,
    /// Days since 1970-01-01.
    Date,
    /// Milliseconds since midnight.
    Time,
    /// Milliseconds since the epoch, UTC.
    Timestamp,
    Array(Box<SqlType>),
    /// ksqlDB's maps are keyed by any primitive type (STRING mostly).
    Map(Box<SqlType>, Box<SqlType>),
    /// Fields in declaration order; names as declared (case kept when quoted, else upper case).
    Struct(Vec<(String, SqlType)>),
}

impl SqlType {
    /// A decimal's (precision, scale), or `None` for other types.
    pub fn decimal_parts(&self) -> Option<(u8, u8)> {
        match self {
            SqlType::Decimal { precision, scale } => Some((*precision, *scale)),
            _ => None,
        }
    }

    /// INTEGER, BIGINT, DECIMAL and DOUBLE.
    pub fn is_numeric(&self) -> bool {
        matches!(
            self,
            SqlType::Integer | SqlType::BigInt | SqlType::Double | SqlType::Decimal { .. }
        )
    }

    /// Types with no inner types.
    pub fn is_primitive(&self) -> bool {
        !matches!(
            self,
            SqlType::Array(_) | SqlType::Map(..) | SqlType::Struct(_)
        )
    }

    /// The precision and scale ksqlDB gives an integer type when it takes part in decimal
    /// arithmetic (INTEGER -> DECIMAL(10, 0), BIGINT -> DECIMAL(19, 0)).
    pub fn as_decimal(&self) -> Option<(u8, u8)> {
        match self {
            SqlType::Integer => Some((10, 0)),
            SqlType::BigInt => Some((19, 0)),
            SqlType::Decimal { precision, scale } => Some((*precision, *scale)),
            _ => None,
        }
    }
}

/// Identifiers inside STRUCT types are back-quoted, as ksqlDB prints them.
impl fmt::Display for SqlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SqlType::Boolean => f.write_str("BOOLEAN"),
            SqlType::Integer => f.write_str("INTEGER"),
            SqlType::BigInt => f.write_str("BIGINT"),
            SqlType::Double => f.write_str("DOUBLE"),
            SqlType::Decimal { precision, scale } => write!(f, "DECIMAL({precision}, {scale})"),
            SqlType::String => f.write_str("STRING"),
            SqlType::Bytes => f.write_str("BYTES"),
            SqlType::Date => f.write_str("DATE"),
            SqlType::Time => f.write_str("TIME"),
            SqlType::Timestamp => f.write_str("TIMESTAMP"),
            SqlType::Array(inner) => write!(f, "ARRAY<{inner}>"),
            SqlType::Map(key, value) => write!(f, "MAP<{key}, {value}>"),
            SqlType::Struct(fields) => {
                f.write_str("STRUCT<")?;
                for (i, (name, ty)) in fields.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "`{name}` {ty}")?;
                }
                f.write_str(">")
            }
        }
    }
}

/// A named column of a source or a query's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub sql_type: SqlType,
    pub kind: ColumnKind,
}

/// Where a column lives in a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ColumnKind {
    /// In the record's key (`KEY` in a stream, `PRIMARY KEY` in a table).
    Key,
    /// In the record's value.
    Value,
    /// `ROWTIME`, `ROWPARTITION`, `ROWOFFSET`, `WINDOWSTART`, `WINDOWEND`: from the record's
    /// metadata, never serialised.
    Pseudo,
}

impl Column {
    pub fn new(name: impl Into<String>, sql_type: SqlType, kind: ColumnKind) -> Self {
        Column {
            name: name.into(),
            sql_type,
            kind,
        }
    }
}
