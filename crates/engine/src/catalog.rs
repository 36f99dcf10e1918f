//! The engine's metastore: the streams and tables that statements declared.

use std::collections::BTreeMap;

use crate::formats::FormatSpec;
use crate::sql::ast::SourceKind;
use crate::types::{Column, ColumnKind, SqlType};

/// How a source's record timestamp is taken (`WITH (timestamp='col', timestamp_format='...')`).
#[derive(Debug, Clone, PartialEq)]
pub struct TimestampColumn {
    pub column: String,
    pub format: Option<String>,
}

/// A declared stream or table.
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    pub kind: SourceKind,
    pub name: String,
    pub topic: String,
    pub key_format: FormatSpec,
    pub value_format: FormatSpec,
    /// Key columns first, then value columns, each in declaration order.
    pub columns: Vec<Column>,
    pub timestamp: Option<TimestampColumn>,
    pub partitions: i32,
    pub replicas: i16,
    /// `CREATE SOURCE STREAM`: no INSERT, no DROP of the topic.
    pub read_only: bool,
    /// The statement that made it.
    pub sql: String,
    /// The persistent query writing it (`CREATE ... AS SELECT`), if any.
    pub writer: Option<String>,
    /// The key format was written in the statement (an implicit NONE for a keyless stream
    /// does not carry over to a sink that has keys).
    pub key_format_declared: bool,
    /// `WINDOW_TYPE` of a source whose keys are windowed (`SESSION`, `TUMBLING`, `HOPPING`).
    pub window_type: Option<String>,
    /// How its keys carry their window (`WINDOW_SIZE` for time windows).
    pub key_window: Option<crate::topology::KeyWindow>,
}

/// What a single-source query's expressions see: the source's scope and the names (the source's
/// and its alias) its columns may be qualified with.
pub struct QueryScope {
    pub columns: Vec<(String, SqlType)>,
    pub qualifiers: Vec<String>,
}

impl QueryScope {
    /// The scope to compile in.
    pub fn scope<'a>(
        &'a self,
        functions: &'a crate::functions::FunctionRegistry,
    ) -> crate::expr::Scope<'a> {
        crate::expr::Scope {
            columns: &self.columns,
            qualifiers: &self.qualifiers,
            functions,
            column_sides: &[],
            sides: &[],
        }
    }

    /// The expression with the source's own qualifier dropped (`INPUT.ID` is `ID`), so that
    /// expressions written either way compare equal.
    pub fn unqualified(&self, expr: &crate::sql::ast::Expr) -> crate::sql::ast::Expr {
        expr.map_columns(&|qualifier, name| crate::sql::ast::Expr::Column {
            qualifier: qualifier
                .filter(|q| !self.qualifiers.iter().any(|s| s == q))
                .map(str::to_string),
            name: name.to_string(),
        })
    }
}

/// Pseudo-columns every stream has, in ksqlDB's order.
pub const PSEUDO_COLUMNS: [(&str, SqlType); 3] = [
    ("ROWTIME", SqlType::BigInt),
    ("ROWPARTITION", SqlType::Integer),
    ("ROWOFFSET", SqlType::BigInt),
];

/// The window bounds of a windowed source's records.
pub const WINDOW_COLUMNS: [(&str, SqlType); 2] = [
    ("WINDOWSTART", SqlType::BigInt),
    ("WINDOWEND", SqlType::BigInt),
];

impl Source {
    /// A query's scope over this source, read `FROM source [alias]`.
    pub fn query_scope(&self, alias: Option<&String>) -> QueryScope {
        let mut qualifiers = vec![self.name.clone()];
        qualifiers.extend(alias.cloned());
        QueryScope {
            columns: self.scope_columns(),
            qualifiers,
        }
    }

    pub fn key_columns(&self) -> impl Iterator<Item = &Column> {
        self.columns.iter().filter(|c| c.kind == ColumnKind::Key)
    }

    pub fn value_columns(&self) -> impl Iterator<Item = &Column> {
        self.columns.iter().filter(|c| c.kind == ColumnKind::Value)
    }

    /// The columns an expression over this source can name: the declared ones, then the
    /// pseudo-columns (and a windowed source's window bounds after them).
    pub fn scope_columns(&self) -> Vec<(String, SqlType)> {
        let window = self
            .window_type
            .as_ref()
            .map(|_| WINDOW_COLUMNS.iter())
            .into_iter()
            .flatten();
        self.columns
            .iter()
            .map(|c| (c.name.clone(), c.sql_type.clone()))
            .chain(
                PSEUDO_COLUMNS
                    .iter()
                    .chain(window)
                    .map(|(n, t)| (n.to_string(), t.clone())),
            )
            .collect()
    }

    /// The schema as `DESCRIBE` and ksqlDB's tests write it: `ID INT KEY, NAME STRING`.
    pub fn schema_text(&self) -> String {
        self.columns
            .iter()
            .map(|c| {
                let suffix = match (c.kind, self.kind) {
                    (ColumnKind::Key, SourceKind::Stream) => " KEY",
                    (ColumnKind::Key, SourceKind::Table) => " PRIMARY KEY",
                    _ => "",
                };
                format!("{} {}{suffix}", quote_if_needed(&c.name), c.sql_type)
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A name as ksqlDB writes it in schemas: bare when it is upper-case letters, digits and `_`.
pub fn quote_if_needed(name: &str) -> String {
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_uppercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    if plain {
        name.to_string()
    } else {
        format!("`{name}`")
    }
}

/// The sources by name.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub sources: BTreeMap<String, Source>,
}
