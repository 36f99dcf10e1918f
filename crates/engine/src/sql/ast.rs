//! The statement tree of ksqlDB's dialect. Identifiers are stored resolved: unquoted ones upper
//! case, quoted ones as written.

use std::collections::BTreeMap;

use crate::types::SqlType;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    Stream,
    Table,
}

impl SourceKind {
    pub fn name(self) -> &'static str {
        match self {
            SourceKind::Stream => "STREAM",
            SourceKind::Table => "TABLE",
        }
    }
}

/// A `WITH (...)` property value.
#[derive(Debug, Clone, PartialEq)]
pub enum PropertyValue {
    Str(String),
    Number(String),
    Bool(bool),
}

impl PropertyValue {
    /// The value as text, as ksqlDB reads it for string-typed properties.
    pub fn text(&self) -> String {
        match self {
            PropertyValue::Str(s) | PropertyValue::Number(s) => s.clone(),
            PropertyValue::Bool(b) => b.to_string(),
        }
    }
}

/// `WITH (...)`: keys upper case.
pub type Properties = BTreeMap<String, PropertyValue>;

#[derive(Debug, Clone, PartialEq)]
pub struct ColumnDef {
    pub name: String,
    pub sql_type: SqlType,
    pub constraint: ColumnConstraint,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnConstraint {
    None,
    Key,
    PrimaryKey,
    /// `HEADERS` or `HEADER('key')` columns (refused for now).
    Headers,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Statement {
    CreateSource {
        kind: SourceKind,
        or_replace: bool,
        if_not_exists: bool,
        /// `CREATE SOURCE STREAM|TABLE`: read-only.
        read_only: bool,
        name: String,
        columns: Vec<ColumnDef>,
        properties: Properties,
    },
    CreateAsSelect {
        kind: SourceKind,
        or_replace: bool,
        if_not_exists: bool,
        name: String,
        properties: Properties,
        query: Box<Query>,
    },
    InsertInto {
        target: String,
        properties: Properties,
        query: Box<Query>,
    },
    InsertValues {
        target: String,
        columns: Option<Vec<String>>,
        values: Vec<Expr>,
    },
    Drop {
        kind: SourceKind,
        if_exists: bool,
        name: String,
        delete_topic: bool,
    },
    Show(ShowWhat),
    Describe {
        name: String,
        extended: bool,
    },
    /// `DESCRIBE STREAMS|TABLES [EXTENDED]`.
    DescribeAll {
        kind: SourceKind,
        extended: bool,
    },
    DescribeFunction(String),
    /// `EXPLAIN <query id>` or `EXPLAIN <statement>`.
    ExplainQuery(String),
    ExplainStatement(Box<Statement>),
    Terminate(Option<String>),
    Set {
        name: String,
        value: String,
    },
    Unset(String),
    Define {
        name: String,
        value: String,
    },
    Undefine(String),
    /// `ALTER STREAM name ADD [COLUMN] col type, ...`
    Alter {
        kind: SourceKind,
        name: String,
        columns: Vec<(String, SqlType)>,
    },
    Print {
        topic: String,
        from_beginning: bool,
        interval: Option<u64>,
        limit: Option<u64>,
    },
    Select(Box<Query>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShowWhat {
    Streams { extended: bool },
    Tables { extended: bool },
    Topics { extended: bool, all: bool },
    Queries { extended: bool },
    Functions,
    Properties,
    Variables,
    Types,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SelectItem {
    /// `*`.
    All,
    /// `alias.*`.
    AllOf(String),
    /// `struct->*`: the struct's fields as columns.
    StructAll(Expr),
    Expr {
        expr: Expr,
        alias: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Relation {
    pub name: String,
    pub alias: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JoinKind {
    Inner,
    Left,
    Right,
    Full,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Join {
    pub kind: JoinKind,
    pub relation: Relation,
    pub within: Option<String>,
    pub on: Expr,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub select: Vec<SelectItem>,
    pub from: Relation,
    pub joins: Vec<Join>,
    /// `WINDOW ...` as written (`aggregate::window::WindowSpec` reads it).
    pub window: Option<String>,
    pub filter: Option<Expr>,
    pub group_by: Vec<Expr>,
    pub partition_by: Vec<Expr>,
    pub having: Option<Expr>,
    pub emit: Option<Emit>,
    pub limit: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Emit {
    Changes,
    Final,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    Add,
    Subtract,
    Multiply,
    Divide,
    Modulo,
    Concat,
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
    And,
    Or,
}

impl BinaryOp {
    /// `=`, `<>`, `<`, `<=`, `>`, `>=`.
    pub fn is_comparison(self) -> bool {
        matches!(
            self,
            BinaryOp::Eq
                | BinaryOp::NotEq
                | BinaryOp::Lt
                | BinaryOp::LtEq
                | BinaryOp::Gt
                | BinaryOp::GtEq
        )
    }

    pub fn symbol(self) -> &'static str {
        match self {
            BinaryOp::Add => "+",
            BinaryOp::Subtract => "-",
            BinaryOp::Multiply => "*",
            BinaryOp::Divide => "/",
            BinaryOp::Modulo => "%",
            BinaryOp::Concat => "||",
            BinaryOp::Eq => "=",
            BinaryOp::NotEq => "<>",
            BinaryOp::Lt => "<",
            BinaryOp::LtEq => "<=",
            BinaryOp::Gt => ">",
            BinaryOp::GtEq => ">=",
            BinaryOp::And => "AND",
            BinaryOp::Or => "OR",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Null,
    Boolean(bool),
    /// Digits only: INTEGER if it fits, else BIGINT.
    Integer(String),
    /// With a point and no exponent: DECIMAL.
    Decimal(String),
    /// With an exponent: DOUBLE.
    Double(String),
    String(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Literal(Literal),
    /// A column, optionally qualified by its source name or alias.
    Column {
        qualifier: Option<String>,
        name: String,
    },
    /// `expr->field`.
    Field {
        base: Box<Expr>,
        field: String,
    },
    /// `expr[index]`.
    Subscript {
        base: Box<Expr>,
        index: Box<Expr>,
    },
    Function {
        name: String,
        args: Vec<Expr>,
        distinct: bool,
        star: bool,
    },
    Cast {
        expr: Box<Expr>,
        to: SqlType,
    },
    Case {
        operand: Option<Box<Expr>>,
        whens: Vec<(Expr, Expr)>,
        otherwise: Option<Box<Expr>>,
    },
    Binary {
        op: BinaryOp,
        left: Box<Expr>,
        right: Box<Expr>,
    },
    Negate(Box<Expr>),
    Not(Box<Expr>),
    IsNull {
        expr: Box<Expr>,
        negated: bool,
    },
    IsDistinctFrom {
        left: Box<Expr>,
        right: Box<Expr>,
        negated: bool,
    },
    Between {
        expr: Box<Expr>,
        low: Box<Expr>,
        high: Box<Expr>,
        negated: bool,
    },
    InList {
        expr: Box<Expr>,
        list: Vec<Expr>,
        negated: bool,
    },
    Like {
        expr: Box<Expr>,
        pattern: Box<Expr>,
        escape: Option<char>,
        negated: bool,
    },
    Lambda {
        params: Vec<String>,
        body: Box<Expr>,
    },
    Array(Vec<Expr>),
    Map(Vec<(Expr, Expr)>),
    Struct(Vec<(String, Expr)>),
    /// A time unit keyword as a function argument (`TIMESTAMPADD(DAYS, 1, ts)`).
    TimeUnit(String),
}

/// Expressions written back as ksqlDB prints them in messages and column names.
impl std::fmt::Display for Expr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        fn list(f: &mut std::fmt::Formatter<'_>, items: &[Expr]) -> std::fmt::Result {
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{item}")?;
            }
            Ok(())
        }
        match self {
            Expr::Literal(Literal::Null) => f.write_str("null"),
            Expr::Literal(Literal::Boolean(b)) => write!(f, "{b}"),
            Expr::Literal(Literal::Integer(t) | Literal::Decimal(t) | Literal::Double(t)) => {
                f.write_str(t)
            }
            Expr::Literal(Literal::String(s)) => write!(f, "'{}'", s.replace('\'', "''")),
            Expr::Column {
                qualifier: Some(q),
                name,
            } => write!(f, "{q}.{name}"),
            Expr::Column {
                qualifier: None,
                name,
            } => f.write_str(name),
            Expr::Field { base, field } => write!(f, "{base}->{field}"),
            Expr::Subscript { base, index } => write!(f, "{base}[{index}]"),
            Expr::Function {
                name,
                args,
                star,
                distinct,
            } => {
                write!(f, "{name}(")?;
                if *star {
                    f.write_str("*")?;
                }
                if *distinct {
                    f.write_str("DISTINCT ")?;
                }
                list(f, args)?;
                f.write_str(")")
            }
            Expr::Cast { expr, to } => write!(f, "CAST({expr} AS {to})"),
            Expr::Case {
                operand,
                whens,
                otherwise,
            } => {
                f.write_str("(CASE")?;
                if let Some(operand) = operand {
                    write!(f, " {operand}")?;
                }
                for (when, then) in whens {
                    write!(f, " WHEN {when} THEN {then}")?;
                }
                if let Some(otherwise) = otherwise {
                    write!(f, " ELSE {otherwise}")?;
                }
                f.write_str(" END)")
            }
            Expr::Binary { op, left, right } => write!(f, "({left} {} {right})", op.symbol()),
            Expr::Negate(inner) => write!(f, "-{inner}"),
            Expr::Not(inner) => write!(f, "(NOT {inner})"),
            Expr::IsNull { expr, negated } => {
                write!(f, "({expr} IS {}NULL)", if *negated { "NOT " } else { "" })
            }
            Expr::IsDistinctFrom {
                left,
                right,
                negated,
            } => write!(
                f,
                "({left} IS {}DISTINCT FROM {right})",
                if *negated { "NOT " } else { "" }
            ),
            Expr::Between {
                expr,
                low,
                high,
                negated,
            } => write!(
                f,
                "({expr} {}BETWEEN {low} AND {high})",
                if *negated { "NOT " } else { "" }
            ),
            Expr::InList {
                expr,
                list: items,
                negated,
            } => {
                write!(f, "({expr} {}IN (", if *negated { "NOT " } else { "" })?;
                list(f, items)?;
                f.write_str("))")
            }
            Expr::Like {
                expr,
                pattern,
                negated,
                ..
            } => write!(
                f,
                "({expr} {}LIKE {pattern})",
                if *negated { "NOT " } else { "" }
            ),
            Expr::Lambda { params, body } => write!(f, "({}) => {body}", params.join(", ")),
            Expr::Array(items) => {
                f.write_str("ARRAY[")?;
                list(f, items)?;
                f.write_str("]")
            }
            Expr::Map(entries) => {
                f.write_str("MAP(")?;
                for (i, (k, v)) in entries.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{k}:={v}")?;
                }
                f.write_str(")")
            }
            Expr::Struct(fields) => {
                f.write_str("STRUCT(")?;
                for (i, (name, v)) in fields.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{name}:={v}")?;
                }
                f.write_str(")")
            }
            Expr::TimeUnit(unit) => f.write_str(unit),
        }
    }
}

impl Expr {
    /// A copy with every column reference replaced by `f(qualifier, name)`.
    pub fn map_columns(&self, f: &dyn Fn(Option<&str>, &str) -> Expr) -> Expr {
        self.rewrite(&|expr| match expr {
            Expr::Column { qualifier, name } => Some(f(qualifier.as_deref(), name)),
            _ => None,
        })
    }

    /// A copy in which every subtree for which `f` returns a replacement is replaced (outermost
    /// first: a replaced subtree is not looked into).
    pub fn rewrite(&self, f: &dyn Fn(&Expr) -> Option<Expr>) -> Expr {
        if let Some(replacement) = f(self) {
            return replacement;
        }
        let map = |e: &Expr| e.rewrite(f);
        let boxed = |e: &Expr| Box::new(e.rewrite(f));
        match self {
            Expr::Column { .. } | Expr::Literal(_) | Expr::TimeUnit(_) => self.clone(),
            Expr::Field { base, field } => Expr::Field {
                base: boxed(base),
                field: field.clone(),
            },
            Expr::Subscript { base, index } => Expr::Subscript {
                base: boxed(base),
                index: boxed(index),
            },
            Expr::Function {
                name,
                args,
                distinct,
                star,
            } => Expr::Function {
                name: name.clone(),
                args: args.iter().map(map).collect(),
                distinct: *distinct,
                star: *star,
            },
            Expr::Cast { expr, to } => Expr::Cast {
                expr: boxed(expr),
                to: to.clone(),
            },
            Expr::Case {
                operand,
                whens,
                otherwise,
            } => Expr::Case {
                operand: operand.as_deref().map(boxed),
                whens: whens.iter().map(|(w, t)| (map(w), map(t))).collect(),
                otherwise: otherwise.as_deref().map(boxed),
            },
            Expr::Binary { op, left, right } => Expr::Binary {
                op: *op,
                left: boxed(left),
                right: boxed(right),
            },
            Expr::Negate(inner) => Expr::Negate(boxed(inner)),
            Expr::Not(inner) => Expr::Not(boxed(inner)),
            Expr::IsNull { expr, negated } => Expr::IsNull {
                expr: boxed(expr),
                negated: *negated,
            },
            Expr::IsDistinctFrom {
                left,
                right,
                negated,
            } => Expr::IsDistinctFrom {
                left: boxed(left),
                right: boxed(right),
                negated: *negated,
            },
            Expr::Between {
                expr,
                low,
                high,
                negated,
            } => Expr::Between {
                expr: boxed(expr),
                low: boxed(low),
                high: boxed(high),
                negated: *negated,
            },
            Expr::InList {
                expr,
                list,
                negated,
            } => Expr::InList {
                expr: boxed(expr),
                list: list.iter().map(map).collect(),
                negated: *negated,
            },
            Expr::Like {
                expr,
                pattern,
                escape,
                negated,
            } => Expr::Like {
                expr: boxed(expr),
                pattern: boxed(pattern),
                escape: *escape,
                negated: *negated,
            },
            Expr::Lambda { params, body } => Expr::Lambda {
                params: params.clone(),
                body: boxed(body),
            },
            Expr::Array(items) => Expr::Array(items.iter().map(map).collect()),
            Expr::Map(entries) => {
                Expr::Map(entries.iter().map(|(k, v)| (map(k), map(v))).collect())
            }
            Expr::Struct(fields) => {
                Expr::Struct(fields.iter().map(|(n, v)| (n.clone(), map(v))).collect())
            }
        }
    }
}
