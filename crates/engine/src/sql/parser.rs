//! A recursive-descent parser for ksqlDB's statements and expressions, following the
//! precedence of ksqlDB's grammar (SqlBase.g4): OR < AND < NOT < predicates (comparison,
//! BETWEEN, IN, LIKE, IS) < || and + - < * / % < unary minus < primary.

use super::ast::*;
use super::lexer::{tokenize, Token, TokenKind};
use crate::types::SqlType;

/// A syntax error, with ksqlDB's "line:col" position (both counted from 1, in the request's
/// text).
#[derive(Debug, Clone, PartialEq)]
pub struct ParseError {
    pub line: usize,
    pub column: usize,
    pub message: String,
    pub style: ErrorStyle,
}

/// How ksqlDB words the error's position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorStyle {
    /// `line 1:8: Syntax Error: ...`
    Located,
    /// `Failed to prepare statement: line 2:40: Invalid numeric literal: ...` (ksqlDB's AST
    /// builder, which counts the column once more).
    Prepare,
    /// `Syntax error at or near 'NULL' at line 2:47` (ksqlDB's type parser).
    Near,
    /// `Line: 1, Col: 22: Column ...` (ksqlDB's checks on a parsed node).
    Node,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (line, column, message) = (self.line, self.column, &self.message);
        match self.style {
            ErrorStyle::Located => write!(f, "line {line}:{column}: {message}"),
            ErrorStyle::Prepare => write!(
                f,
                "Failed to prepare statement: line {line}:{}: {message}",
                column + 1
            ),
            ErrorStyle::Near => write!(f, "{message} at line {line}:{column}"),
            ErrorStyle::Node => write!(f, "Line: {line}, Col: {column}: {message}"),
        }
    }
}

impl std::error::Error for ParseError {}

impl ParseError {
    pub(crate) fn at(text: &str, offset: usize, message: &str) -> ParseError {
        let before = &text[..offset.min(text.len())];
        let line = before.matches('\n').count() + 1;
        let column = offset - before.rfind('\n').map_or(0, |i| i + 1) + 1;
        ParseError {
            line,
            column,
            message: message.to_string(),
            style: ErrorStyle::Located,
        }
    }

    fn styled(mut self, style: ErrorStyle) -> ParseError {
        self.style = style;
        self
    }

    /// Moves a position within a statement to its place in the request's text, the statement
    /// starting at `line`:`column`.
    pub(crate) fn shifted(mut self, line: usize, column: usize) -> ParseError {
        if self.line == 1 {
            self.column += column - 1;
        }
        self.line += line - 1;
        self
    }
}

/// One statement with its text as written (without the trailing `;`).
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedStatement {
    pub statement: Statement,
    pub text: String,
}

/// Splits a request's text into statements at `;` outside quotes and comments.
pub fn split_statements(text: &str) -> Vec<String> {
    let mut statements = Vec::new();
    let mut current = String::new();
    let mut chars = text.chars().peekable();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match quote {
            Some(q) => {
                current.push(c);
                if c == q {
                    if q == '\'' && chars.peek() == Some(&'\'') {
                        current.push(chars.next().unwrap_or('\''));
                    } else {
                        quote = None;
                    }
                }
            }
            None => match c {
                '\'' | '`' | '"' => {
                    quote = Some(c);
                    current.push(c);
                }
                '-' if chars.peek() == Some(&'-') => {
                    for c in chars.by_ref() {
                        if c == '\n' {
                            current.push('\n');
                            break;
                        }
                    }
                }
                ';' => {
                    if !current.trim().is_empty() {
                        statements.push(current.trim().to_string());
                    }
                    current.clear();
                }
                _ => current.push(c),
            },
        }
    }
    if !current.trim().is_empty() {
        statements.push(current.trim().to_string());
    }
    statements
}

/// As `split_statements`, with the line and column (from 1) where each starts in `text`.
pub fn split_statements_located(text: &str) -> Vec<(String, usize, usize)> {
    let mut search_from = 0;
    split_statements(text)
        .into_iter()
        .map(|statement_text| {
            // Comments inside a statement were dropped: only its first characters are looked for.
            let head: String = statement_text.chars().take(16).collect();
            let start = text[search_from..]
                .find(&head)
                .map_or(search_from, |i| search_from + i);
            search_from = start + head.len();
            let before = &text[..start];
            let line = before.matches('\n').count() + 1;
            let column = start - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            (statement_text, line, column)
        })
        .collect()
}

/// Parses every statement in `text`; error positions are in `text`.
pub fn parse_statements(text: &str) -> Result<Vec<ParsedStatement>, ParseError> {
    split_statements_located(text)
        .into_iter()
        .map(|(statement_text, line, column)| {
            parse_one(&statement_text).map_err(|e| e.shifted(line, column))
        })
        .collect()
}

fn parse_one(statement_text: &str) -> Result<ParsedStatement, ParseError> {
    let tokens = tokenize(statement_text)?;
    let mut parser = Parser {
        text: statement_text,
        tokens,
        pos: 0,
    };
    let statement = parser.statement()?;
    parser.expect_end()?;
    Ok(ParsedStatement {
        statement,
        text: format!("{statement_text};"),
    })
}

/// Parses a type as written in a column definition or CAST (`DECIMAL(4, 2)`, `ARRAY<INT>`).
pub fn parse_type(text: &str) -> Result<SqlType, ParseError> {
    let tokens = tokenize(text)?;
    let mut parser = Parser {
        text,
        tokens,
        pos: 0,
    };
    let sql_type = parser.sql_type()?;
    parser.expect_end()?;
    Ok(sql_type)
}

struct Parser<'a> {
    text: &'a str,
    tokens: Vec<Token>,
    pos: usize,
}

/// Words that end an expression or a clause and cannot be an alias.
const RESERVED: &[&str] = &[
    "SELECT",
    "FROM",
    "WHERE",
    "GROUP",
    "PARTITION",
    "HAVING",
    "EMIT",
    "LIMIT",
    "WINDOW",
    "JOIN",
    "LEFT",
    "RIGHT",
    "FULL",
    "INNER",
    "OUTER",
    "ON",
    "WITHIN",
    "AND",
    "OR",
    "NOT",
    "AS",
    "BY",
    "CASE",
    "WHEN",
    "THEN",
    "ELSE",
    "END",
    "IS",
    "NULL",
    "TRUE",
    "FALSE",
    "IN",
    "BETWEEN",
    "LIKE",
    "ESCAPE",
    "CAST",
    "WITH",
    "VALUES",
    "INTO",
    "DISTINCT",
];

const TIME_UNIT_FUNCTIONS: &[&str] = &[
    "TIMESTAMPADD",
    "TIMESTAMPSUB",
    "DATEADD",
    "DATESUB",
    "TIMEADD",
    "TIMESUB",
];

impl<'a> Parser<'a> {
    fn peek(&self) -> &TokenKind {
        &self.tokens[self.pos].kind
    }

    fn peek_at(&self, ahead: usize) -> &TokenKind {
        &self.tokens[(self.pos + ahead).min(self.tokens.len() - 1)].kind
    }

    fn advance(&mut self) -> TokenKind {
        let kind = self.tokens[self.pos].kind.clone();
        if self.pos < self.tokens.len() - 1 {
            self.pos += 1;
        }
        kind
    }

    fn error<T>(&self, message: &str) -> Result<T, ParseError> {
        Err(ParseError::at(
            self.text,
            self.tokens[self.pos].offset,
            message,
        ))
    }

    /// ksqlDB's ANTLR wording: `Syntax Error`, what it expected, and the statement.
    fn statement_error<T>(&self, expecting: &str) -> Result<T, ParseError> {
        self.error(&format!(
            "Syntax Error\n{expecting}\nStatement: {};",
            self.text
        ))
    }

    fn unexpected<T>(&self, expected: &str) -> Result<T, ParseError> {
        let found = match self.peek() {
            TokenKind::End => "<EOF>".to_string(),
            TokenKind::Word(w) => format!("'{w}'"),
            TokenKind::QuotedIdent(w) => format!("'`{w}`'"),
            TokenKind::Str(s) => format!("''{s}''"),
            TokenKind::Number(n) => format!("'{n}'"),
            TokenKind::Variable(v) => format!("'${{{v}}}'"),
            TokenKind::Symbol(s) => format!("'{s}'"),
        };
        self.error(&format!(
            "Syntax Error: mismatched input {found} expecting {expected}"
        ))
    }

    fn is_word(&self, word: &str) -> bool {
        matches!(self.peek(), TokenKind::Word(w) if w.eq_ignore_ascii_case(word))
    }

    fn is_word_at(&self, ahead: usize, word: &str) -> bool {
        matches!(self.peek_at(ahead), TokenKind::Word(w) if w.eq_ignore_ascii_case(word))
    }

    fn eat_word(&mut self, word: &str) -> bool {
        if self.is_word(word) {
            self.advance();
            true
        } else {
            false
        }
    }

    fn expect_word(&mut self, word: &str) -> Result<(), ParseError> {
        if self.eat_word(word) {
            Ok(())
        } else {
            self.unexpected(word)
        }
    }

    fn is_symbol(&self, symbol: &str) -> bool {
        matches!(self.peek(), TokenKind::Symbol(s) if *s == symbol)
    }

    fn eat_symbol(&mut self, symbol: &str) -> bool {
        if self.is_symbol(symbol) {
            self.advance();
            true
        } else {
            false
        }
    }

    fn expect_symbol(&mut self, symbol: &str) -> Result<(), ParseError> {
        if self.eat_symbol(symbol) {
            Ok(())
        } else {
            self.unexpected(&format!("'{symbol}'"))
        }
    }

    fn expect_end(&mut self) -> Result<(), ParseError> {
        self.eat_symbol(";");
        if matches!(self.peek(), TokenKind::End) {
            Ok(())
        } else {
            self.unexpected("end of statement")
        }
    }

    /// An identifier: unquoted upper-cased, quoted kept.
    fn identifier(&mut self) -> Result<String, ParseError> {
        match self.peek().clone() {
            TokenKind::Word(w) => {
                self.advance();
                Ok(w.to_ascii_uppercase())
            }
            TokenKind::QuotedIdent(w) => {
                self.advance();
                Ok(w)
            }
            _ => self.unexpected("an identifier"),
        }
    }

    fn statement(&mut self) -> Result<Statement, ParseError> {
        let Some(first) = (match self.peek() {
            TokenKind::Word(w) => Some(w.to_ascii_uppercase()),
            _ => None,
        }) else {
            return self.unexpected("a statement");
        };
        match first.as_str() {
            "CREATE" => self.create(),
            "INSERT" => self.insert(),
            "DROP" => self.drop(),
            "ALTER" => {
                self.advance();
                let kind = self.source_kind()?;
                let name = self.identifier()?;
                let mut columns = Vec::new();
                loop {
                    self.expect_word("ADD")?;
                    self.eat_word("COLUMN");
                    let column = self.identifier()?;
                    columns.push((column, self.sql_type()?));
                    if !self.eat_symbol(",") {
                        break;
                    }
                }
                Ok(Statement::Alter {
                    kind,
                    name,
                    columns,
                })
            }
            "SHOW" | "LIST" => self.show(),
            "DESCRIBE" => self.describe(),
            "EXPLAIN" => {
                self.advance();
                if matches!(self.peek(), TokenKind::Word(w) if ["SELECT", "CREATE", "INSERT"].contains(&w.to_ascii_uppercase().as_str()))
                {
                    Ok(Statement::ExplainStatement(Box::new(self.statement()?)))
                } else {
                    Ok(Statement::ExplainQuery(self.identifier()?))
                }
            }
            "TERMINATE" => {
                self.advance();
                if self.eat_word("ALL") {
                    Ok(Statement::Terminate(None))
                } else {
                    Ok(Statement::Terminate(Some(self.identifier()?)))
                }
            }
            "SET" => {
                self.advance();
                let name = self.string("a property name")?;
                self.expect_symbol("=")?;
                let value = self.string("a property value")?;
                Ok(Statement::Set { name, value })
            }
            "UNSET" => {
                self.advance();
                Ok(Statement::Unset(self.string("a property name")?))
            }
            "DEFINE" => {
                self.advance();
                let name = self.variable_name()?;
                self.expect_symbol("=")?;
                let value = self.string("a variable value")?;
                Ok(Statement::Define { name, value })
            }
            "UNDEFINE" => {
                self.advance();
                Ok(Statement::Undefine(self.variable_name()?))
            }
            "PRINT" => self.print(),
            "SELECT" => Ok(Statement::Select(Box::new(self.query()?))),
            "ASSERT" => {
                self.advance();
                if self.is_word("NOT") || self.is_word("TOPIC") || self.is_word("SCHEMA") {
                    return self.error("ASSERT statements are not supported by this engine");
                }
                let near = self.word_text();
                Err(ParseError::at(
                    self.text,
                    self.tokens[self.pos].offset,
                    &format!("Syntax error at or near '{near}'"),
                )
                .styled(ErrorStyle::Near))
            }
            _ => self.error(&format!("Syntax Error\nUnknown statement '{first}'")),
        }
    }

    fn variable_name(&mut self) -> Result<String, ParseError> {
        match self.advance() {
            TokenKind::Word(w) | TokenKind::QuotedIdent(w) => Ok(w),
            _ => {
                self.pos -= 1;
                self.unexpected("a variable name")
            }
        }
    }

    fn string(&mut self, what: &str) -> Result<String, ParseError> {
        match self.peek().clone() {
            TokenKind::Str(s) => {
                self.advance();
                Ok(s)
            }
            _ => self.unexpected(what),
        }
    }

    fn source_kind(&mut self) -> Result<SourceKind, ParseError> {
        if self.eat_word("STREAM") {
            Ok(SourceKind::Stream)
        } else if self.eat_word("TABLE") {
            Ok(SourceKind::Table)
        } else {
            self.unexpected("STREAM or TABLE")
        }
    }

    fn create(&mut self) -> Result<Statement, ParseError> {
        self.expect_word("CREATE")?;
        let or_replace = if self.eat_word("OR") {
            self.expect_word("REPLACE")?;
            true
        } else {
            false
        };
        let read_only = self.eat_word("SOURCE");
        if self.is_word("TYPE") || self.is_word("CONNECTOR") || self.is_word("SINK") {
            return self.error(&format!(
                "'CREATE {}' is not supported by this engine",
                self.word_text()
            ));
        }
        let kind = self.source_kind()?;
        let if_not_exists = if self.eat_word("IF") {
            self.expect_word("NOT")?;
            self.expect_word("EXISTS")?;
            true
        } else {
            false
        };
        let name = self.identifier()?;
        let mut columns = Vec::new();
        if self.eat_symbol("(") {
            loop {
                let column_at = self.tokens[self.pos].offset;
                let column = self.column_def()?;
                if kind == SourceKind::Stream && column.constraint == ColumnConstraint::PrimaryKey {
                    return Err(ParseError::at(
                        self.text,
                        column_at,
                        &format!(
                            "Column `{}` is a 'PRIMARY KEY' column: please use 'KEY' for streams.\nTables have PRIMARY KEYs, which are unique and NON NULL.\nStreams have KEYs which have no uniqueness or NULL constraints.",
                            column.name
                        ),
                    )
                    .styled(ErrorStyle::Node));
                }
                columns.push(column);
                if !self.eat_symbol(",") {
                    break;
                }
            }
            if !self.eat_symbol(")") {
                return self.statement_error("Expecting {',', ')'}");
            }
        }
        let properties = self.with_properties()?;
        if self.eat_word("AS") {
            if !columns.is_empty() {
                return self.error("CREATE ... AS SELECT statements cannot declare columns");
            }
            let query = self.query()?;
            return Ok(Statement::CreateAsSelect {
                kind,
                or_replace,
                if_not_exists,
                name,
                properties,
                query: Box::new(query),
            });
        }
        Ok(Statement::CreateSource {
            kind,
            or_replace,
            if_not_exists,
            read_only,
            name,
            columns,
            properties,
        })
    }

    fn word_text(&self) -> String {
        match self.peek() {
            TokenKind::Word(w) => w.to_ascii_uppercase(),
            _ => String::new(),
        }
    }

    fn column_def(&mut self) -> Result<ColumnDef, ParseError> {
        let name = self.identifier()?;
        let sql_type = self.sql_type()?;
        let constraint = if self.eat_word("KEY") {
            ColumnConstraint::Key
        } else if self.eat_word("PRIMARY") {
            self.expect_word("KEY")?;
            ColumnConstraint::PrimaryKey
        } else if self.eat_word("HEADERS") {
            ColumnConstraint::Headers
        } else if self.eat_word("HEADER") {
            self.expect_symbol("(")?;
            self.string("a header key")?;
            self.expect_symbol(")")?;
            ColumnConstraint::Headers
        } else {
            ColumnConstraint::None
        };
        Ok(ColumnDef {
            name,
            sql_type,
            constraint,
        })
    }

    fn with_properties(&mut self) -> Result<Properties, ParseError> {
        let mut properties = Properties::new();
        if !self.eat_word("WITH") {
            return Ok(properties);
        }
        self.expect_symbol("(")?;
        loop {
            let key = match self.advance() {
                TokenKind::Word(w) | TokenKind::QuotedIdent(w) | TokenKind::Str(w) => {
                    w.to_ascii_uppercase()
                }
                _ => {
                    self.pos -= 1;
                    return self.unexpected("a property name");
                }
            };
            self.expect_symbol("=")?;
            let negative = self.eat_symbol("-");
            let value = match self.advance() {
                TokenKind::Str(s) => PropertyValue::Str(s),
                TokenKind::Number(n) => {
                    PropertyValue::Number(if negative { format!("-{n}") } else { n })
                }
                TokenKind::Word(w) if w.eq_ignore_ascii_case("true") => PropertyValue::Bool(true),
                TokenKind::Word(w) if w.eq_ignore_ascii_case("false") => PropertyValue::Bool(false),
                TokenKind::Word(w) => PropertyValue::Str(w),
                _ => {
                    self.pos -= 1;
                    return self.unexpected("a property value");
                }
            };
            if properties.insert(key.clone(), value).is_some() {
                return self.error(&format!("Duplicate property: {key}"));
            }
            if !self.eat_symbol(",") {
                break;
            }
        }
        self.expect_symbol(")")?;
        Ok(properties)
    }

    fn insert(&mut self) -> Result<Statement, ParseError> {
        self.expect_word("INSERT")?;
        self.expect_word("INTO")?;
        let target = self.identifier()?;
        let properties = self.with_properties()?;
        if self.is_word("SELECT") {
            let query = self.query()?;
            return Ok(Statement::InsertInto {
                target,
                properties,
                query: Box::new(query),
            });
        }
        let mut columns = None;
        if self.eat_symbol("(") {
            let mut names = Vec::new();
            loop {
                names.push(self.identifier()?);
                if !self.eat_symbol(",") {
                    break;
                }
            }
            self.expect_symbol(")")?;
            columns = Some(names);
        }
        self.expect_word("VALUES")?;
        self.expect_symbol("(")?;
        let mut values = Vec::new();
        if !self.is_symbol(")") {
            loop {
                values.push(self.expr()?);
                if !self.eat_symbol(",") {
                    break;
                }
            }
        }
        self.expect_symbol(")")?;
        Ok(Statement::InsertValues {
            target,
            columns,
            values,
        })
    }

    fn drop(&mut self) -> Result<Statement, ParseError> {
        self.expect_word("DROP")?;
        if self.is_word("TYPE") || self.is_word("CONNECTOR") {
            return self.error(&format!(
                "'DROP {}' is not supported by this engine",
                self.word_text()
            ));
        }
        let kind = self.source_kind()?;
        let if_exists = if self.eat_word("IF") {
            self.expect_word("EXISTS")?;
            true
        } else {
            false
        };
        let name = self.identifier()?;
        let delete_topic = if self.eat_word("DELETE") {
            self.expect_word("TOPIC")?;
            true
        } else {
            false
        };
        Ok(Statement::Drop {
            kind,
            if_exists,
            name,
            delete_topic,
        })
    }

    fn show(&mut self) -> Result<Statement, ParseError> {
        self.advance();
        let all = self.eat_word("ALL");
        let what = self.word_text();
        self.advance();
        let extended = self.eat_word("EXTENDED");
        let shown = match what.as_str() {
            "STREAMS" => ShowWhat::Streams { extended },
            "TABLES" => ShowWhat::Tables { extended },
            "TOPICS" => ShowWhat::Topics { extended, all },
            "QUERIES" => ShowWhat::Queries { extended },
            "FUNCTIONS" => ShowWhat::Functions,
            "PROPERTIES" => ShowWhat::Properties,
            "VARIABLES" => ShowWhat::Variables,
            "TYPES" => ShowWhat::Types,
            _ => {
                self.pos -= 1;
                return self.unexpected(
                    "STREAMS, TABLES, TOPICS, QUERIES, FUNCTIONS, PROPERTIES, VARIABLES or TYPES",
                );
            }
        };
        Ok(Statement::Show(shown))
    }

    fn describe(&mut self) -> Result<Statement, ParseError> {
        self.expect_word("DESCRIBE")?;
        if self.eat_word("FUNCTION") {
            return Ok(Statement::DescribeFunction(self.identifier()?));
        }
        let mut extended = self.eat_word("EXTENDED");
        if (self.is_word("STREAMS") || self.is_word("TABLES"))
            && matches!(self.peek_at(1), TokenKind::End | TokenKind::Symbol(";"))
            || (self.is_word("STREAMS") || self.is_word("TABLES")) && self.is_word_at(1, "EXTENDED")
        {
            let kind = if self.eat_word("STREAMS") {
                SourceKind::Stream
            } else {
                self.advance();
                SourceKind::Table
            };
            extended |= self.eat_word("EXTENDED");
            return Ok(Statement::DescribeAll { kind, extended });
        }
        let name = self.identifier()?;
        extended |= self.eat_word("EXTENDED");
        Ok(Statement::Describe { name, extended })
    }

    fn print(&mut self) -> Result<Statement, ParseError> {
        self.expect_word("PRINT")?;
        let topic = match self.advance() {
            TokenKind::Str(s) | TokenKind::QuotedIdent(s) | TokenKind::Word(s) => s,
            _ => {
                self.pos -= 1;
                return self.unexpected("a topic name");
            }
        };
        let mut from_beginning = false;
        let mut interval = None;
        let mut limit = None;
        loop {
            if self.eat_word("FROM") {
                self.expect_word("BEGINNING")?;
                from_beginning = true;
            } else if self.eat_word("INTERVAL") || self.eat_word("SAMPLE") {
                interval = Some(self.unsigned()?);
            } else if self.eat_word("LIMIT") {
                limit = Some(self.unsigned()?);
            } else {
                break;
            }
        }
        Ok(Statement::Print {
            topic,
            from_beginning,
            interval,
            limit,
        })
    }

    fn unsigned(&mut self) -> Result<u64, ParseError> {
        match self.peek().clone() {
            TokenKind::Number(n) => match n.parse() {
                Ok(v) => {
                    self.advance();
                    Ok(v)
                }
                Err(_) => self.unexpected("a whole number"),
            },
            _ => self.unexpected("a whole number"),
        }
    }

    fn query(&mut self) -> Result<Query, ParseError> {
        self.expect_word("SELECT")?;
        let mut select = Vec::new();
        loop {
            select.push(self.select_item()?);
            if !self.eat_symbol(",") {
                break;
            }
        }
        self.expect_word("FROM")?;
        let from = self.relation()?;
        let mut joins = Vec::new();
        loop {
            let kind = if self.eat_word("JOIN") {
                JoinKind::Inner
            } else if self.is_word("INNER")
                || self.is_word("LEFT")
                || self.is_word("RIGHT")
                || self.is_word("FULL")
            {
                let kind = match self.word_text().as_str() {
                    "INNER" => JoinKind::Inner,
                    "LEFT" => JoinKind::Left,
                    "RIGHT" => JoinKind::Right,
                    _ => JoinKind::Full,
                };
                self.advance();
                self.eat_word("OUTER");
                self.expect_word("JOIN")?;
                kind
            } else {
                break;
            };
            let relation = self.relation()?;
            let within = if self.eat_word("WITHIN") {
                Some(self.raw_until(&["ON"]))
            } else {
                None
            };
            self.expect_word("ON")?;
            let on = self.expr()?;
            joins.push(Join {
                kind,
                relation,
                within,
                on,
            });
        }
        let window = if self.eat_word("WINDOW") {
            Some(self.raw_until(&["WHERE", "GROUP", "PARTITION", "HAVING", "EMIT", "LIMIT"]))
        } else {
            None
        };
        let filter = if self.eat_word("WHERE") {
            Some(self.expr()?)
        } else {
            None
        };
        let mut group_by = Vec::new();
        if self.eat_word("GROUP") {
            self.expect_word("BY")?;
            group_by = self.expr_list_maybe_parenthesised()?;
        }
        let mut partition_by = Vec::new();
        if self.eat_word("PARTITION") {
            self.expect_word("BY")?;
            if self.is_symbol("(") && matches!(self.peek_at(1), TokenKind::Symbol(")")) {
                return self.error("PARTITION BY requires at least one expression");
            }
            // ksqlDB's grammar takes value expressions here: `a AND b` needs parentheses.
            loop {
                partition_by.push(self.additive()?);
                if !self.eat_symbol(",") {
                    break;
                }
            }
        }
        let having = if self.eat_word("HAVING") {
            Some(self.expr()?)
        } else {
            None
        };
        let emit = if self.eat_word("EMIT") {
            if self.eat_word("CHANGES") {
                Some(Emit::Changes)
            } else if self.eat_word("FINAL") {
                Some(Emit::Final)
            } else {
                return self.unexpected("CHANGES or FINAL");
            }
        } else {
            None
        };
        let limit = if self.eat_word("LIMIT") {
            Some(self.unsigned()?)
        } else {
            None
        };
        Ok(Query {
            select,
            from,
            joins,
            window,
            filter,
            group_by,
            partition_by,
            having,
            emit,
            limit,
        })
    }

    fn expr_list_maybe_parenthesised(&mut self) -> Result<Vec<Expr>, ParseError> {
        let mut list = Vec::new();
        loop {
            list.push(self.expr()?);
            if !self.eat_symbol(",") {
                break;
            }
        }
        Ok(list)
    }

    /// The text of tokens up to (not including) one of `stops` at depth 0.
    fn raw_until(&mut self, stops: &[&str]) -> String {
        let start = self.tokens[self.pos].offset;
        let mut depth = 0usize;
        loop {
            match self.peek() {
                TokenKind::End | TokenKind::Symbol(";") => break,
                TokenKind::Symbol("(") => depth += 1,
                TokenKind::Symbol(")") => depth = depth.saturating_sub(1),
                TokenKind::Word(w)
                    if depth == 0 && stops.iter().any(|s| w.eq_ignore_ascii_case(s)) =>
                {
                    break
                }
                _ => {}
            }
            self.advance();
        }
        self.text[start..self.tokens[self.pos].offset]
            .trim()
            .to_string()
    }

    fn relation(&mut self) -> Result<Relation, ParseError> {
        let name = self.identifier()?;
        let alias = if self.eat_word("AS") || self.is_alias_candidate() {
            Some(self.identifier()?)
        } else {
            None
        };
        Ok(Relation { name, alias })
    }

    fn is_alias_candidate(&self) -> bool {
        match self.peek() {
            TokenKind::Word(w) => !RESERVED.iter().any(|r| w.eq_ignore_ascii_case(r)),
            TokenKind::QuotedIdent(_) => true,
            _ => false,
        }
    }

    fn select_item(&mut self) -> Result<SelectItem, ParseError> {
        if self.eat_symbol("*") {
            return Ok(SelectItem::All);
        }
        if matches!(self.peek(), TokenKind::Word(_) | TokenKind::QuotedIdent(_))
            && matches!(self.peek_at(1), TokenKind::Symbol("."))
            && matches!(self.peek_at(2), TokenKind::Symbol("*"))
        {
            let source = self.identifier()?;
            self.advance();
            self.advance();
            return Ok(SelectItem::AllOf(source));
        }
        let expr = self.expr()?;
        // `struct->*`: every field of the struct.
        if self.is_symbol("->") && matches!(self.peek_at(1), TokenKind::Symbol("*")) {
            self.advance();
            self.advance();
            return Ok(SelectItem::StructAll(expr));
        }
        let alias = if self.eat_word("AS") || self.is_alias_candidate() {
            Some(self.identifier()?)
        } else {
            None
        };
        Ok(SelectItem::Expr { expr, alias })
    }

    pub(crate) fn sql_type(&mut self) -> Result<SqlType, ParseError> {
        let word = match self.peek().clone() {
            TokenKind::Word(w) => w.to_ascii_uppercase(),
            _ => return self.unexpected("a type"),
        };
        self.advance();
        let primitive = match word.as_str() {
            "BOOLEAN" => Some(SqlType::Boolean),
            "INT" | "INTEGER" => Some(SqlType::Integer),
            "BIGINT" => Some(SqlType::BigInt),
            "DOUBLE" => Some(SqlType::Double),
            "STRING" | "VARCHAR" => Some(SqlType::String),
            "BYTES" => Some(SqlType::Bytes),
            "DATE" => Some(SqlType::Date),
            "TIME" => Some(SqlType::Time),
            "TIMESTAMP" => Some(SqlType::Timestamp),
            _ => None,
        };
        if let Some(primitive) = primitive {
            // ksqlDB's grammar lets any type take parameters (`VARCHAR(STRING)`); they are
            // ignored on primitives.
            if self.eat_symbol("(") {
                loop {
                    let parameter =
                        matches!(self.peek(), TokenKind::Number(_)) || self.is_word("STRING");
                    if !parameter {
                        return self.statement_error("Expecting {'STRING', INTEGER_VALUE}");
                    }
                    self.advance();
                    if self.eat_symbol(")") {
                        break;
                    }
                    if !self.eat_symbol(",") {
                        return self.statement_error("Expecting {',', ')'}");
                    }
                }
            }
            return Ok(primitive);
        }
        Ok(match word.as_str() {
            "BOOLEAN" => SqlType::Boolean,
            "INT" | "INTEGER" => SqlType::Integer,
            "BIGINT" => SqlType::BigInt,
            "DOUBLE" => SqlType::Double,
            "STRING" | "VARCHAR" => SqlType::String,
            "BYTES" => SqlType::Bytes,
            "DATE" => SqlType::Date,
            "TIME" => SqlType::Time,
            "TIMESTAMP" => SqlType::Timestamp,
            "DECIMAL" => {
                self.expect_symbol("(")?;
                let precision = self.unsigned()?;
                self.expect_symbol(",")?;
                let scale = self.unsigned()?;
                self.expect_symbol(")")?;
                if precision == 0 || precision > 38 || scale > precision {
                    return self.error(&format!(
                        "DECIMAL precision must be between 1 and 38 and scale between 0 and precision: DECIMAL({precision}, {scale})"
                    ));
                }
                SqlType::Decimal {
                    precision: precision as u8,
                    scale: scale as u8,
                }
            }
            "ARRAY" => {
                self.expect_symbol("<")?;
                let inner = self.sql_type()?;
                self.expect_closing_angle()?;
                SqlType::Array(Box::new(inner))
            }
            "MAP" => {
                self.expect_symbol("<")?;
                let key = self.sql_type()?;
                self.expect_symbol(",")?;
                let value = self.sql_type()?;
                self.expect_closing_angle()?;
                SqlType::Map(Box::new(key), Box::new(value))
            }
            "STRUCT" => {
                self.expect_symbol("<")?;
                let mut fields = Vec::new();
                if !self.is_symbol(">") {
                    loop {
                        let name = self.identifier()?;
                        let field_type = self.sql_type()?;
                        fields.push((name, field_type));
                        if !self.eat_symbol(",") {
                            break;
                        }
                    }
                }
                self.expect_closing_angle()?;
                SqlType::Struct(fields)
            }
            other => {
                self.pos -= 1;
                return self.error(&format!("Syntax Error: unknown type {other}"));
            }
        })
    }

    /// `>` closing a type; `>>` and `>=` never appear as tokens here since the lexer has no `>>`.
    fn expect_closing_angle(&mut self) -> Result<(), ParseError> {
        self.expect_symbol(">")
    }

    pub(crate) fn expr(&mut self) -> Result<Expr, ParseError> {
        self.or_expr()
    }

    fn or_expr(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.and_expr()?;
        while self.eat_word("OR") {
            let right = self.and_expr()?;
            left = Expr::Binary {
                op: BinaryOp::Or,
                left: Box::new(left),
                right: Box::new(right),
            };
        }
        Ok(left)
    }

    fn and_expr(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.not_expr()?;
        while self.eat_word("AND") {
            let right = self.not_expr()?;
            left = Expr::Binary {
                op: BinaryOp::And,
                left: Box::new(left),
                right: Box::new(right),
            };
        }
        Ok(left)
    }

    fn not_expr(&mut self) -> Result<Expr, ParseError> {
        if self.eat_word("NOT") {
            return Ok(Expr::Not(Box::new(self.not_expr()?)));
        }
        self.predicate()
    }

    fn predicate(&mut self) -> Result<Expr, ParseError> {
        let left = self.additive()?;
        let comparison = match self.peek() {
            TokenKind::Symbol("=") => Some(BinaryOp::Eq),
            TokenKind::Symbol("<>") | TokenKind::Symbol("!=") => Some(BinaryOp::NotEq),
            TokenKind::Symbol("<") => Some(BinaryOp::Lt),
            TokenKind::Symbol("<=") => Some(BinaryOp::LtEq),
            TokenKind::Symbol(">") => Some(BinaryOp::Gt),
            TokenKind::Symbol(">=") => Some(BinaryOp::GtEq),
            _ => None,
        };
        if let Some(op) = comparison {
            self.advance();
            let right = self.additive()?;
            return Ok(Expr::Binary {
                op,
                left: Box::new(left),
                right: Box::new(right),
            });
        }
        if self.eat_word("IS") {
            let negated = self.eat_word("NOT");
            if self.eat_word("NULL") {
                return Ok(Expr::IsNull {
                    expr: Box::new(left),
                    negated,
                });
            }
            if self.eat_word("DISTINCT") {
                self.expect_word("FROM")?;
                let right = self.additive()?;
                return Ok(Expr::IsDistinctFrom {
                    left: Box::new(left),
                    right: Box::new(right),
                    negated,
                });
            }
            return self.unexpected("NULL or DISTINCT FROM");
        }
        let negated = if self.is_word("NOT")
            && (self.is_word_at(1, "BETWEEN")
                || self.is_word_at(1, "IN")
                || self.is_word_at(1, "LIKE"))
        {
            self.advance();
            true
        } else {
            false
        };
        if self.eat_word("BETWEEN") {
            let low = self.additive()?;
            self.expect_word("AND")?;
            let high = self.additive()?;
            return Ok(Expr::Between {
                expr: Box::new(left),
                low: Box::new(low),
                high: Box::new(high),
                negated,
            });
        }
        if self.eat_word("IN") {
            self.expect_symbol("(")?;
            let mut list = Vec::new();
            if self.is_symbol(")") {
                return self.error("Syntax Error: IN needs at least one value");
            }
            {
                loop {
                    list.push(self.expr()?);
                    if !self.eat_symbol(",") {
                        break;
                    }
                }
            }
            self.expect_symbol(")")?;
            return Ok(Expr::InList {
                expr: Box::new(left),
                list,
                negated,
            });
        }
        if self.eat_word("LIKE") {
            let pattern = self.additive()?;
            let escape = if self.eat_word("ESCAPE") {
                let text = self.string("an escape character")?;
                let mut chars = text.chars();
                match (chars.next(), chars.next()) {
                    (Some(c), None) => Some(c),
                    _ => return self.error("ESCAPE must be a single character"),
                }
            } else {
                None
            };
            return Ok(Expr::Like {
                expr: Box::new(left),
                pattern: Box::new(pattern),
                escape,
                negated,
            });
        }
        if negated {
            return self.unexpected("BETWEEN, IN or LIKE");
        }
        Ok(left)
    }

    fn additive(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.multiplicative()?;
        loop {
            let op = match self.peek() {
                TokenKind::Symbol("+") => BinaryOp::Add,
                TokenKind::Symbol("-") => BinaryOp::Subtract,
                TokenKind::Symbol("||") => BinaryOp::Concat,
                _ => break,
            };
            self.advance();
            let right = self.multiplicative()?;
            left = Expr::Binary {
                op,
                left: Box::new(left),
                right: Box::new(right),
            };
        }
        Ok(left)
    }

    fn multiplicative(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.unary()?;
        loop {
            let op = match self.peek() {
                TokenKind::Symbol("*") => BinaryOp::Multiply,
                TokenKind::Symbol("/") => BinaryOp::Divide,
                TokenKind::Symbol("%") => BinaryOp::Modulo,
                _ => break,
            };
            self.advance();
            let right = self.unary()?;
            left = Expr::Binary {
                op,
                left: Box::new(left),
                right: Box::new(right),
            };
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, ParseError> {
        if self.eat_symbol("-") {
            // A negative number literal stays a literal (so -2147483648 is an INTEGER).
            if let TokenKind::Number(n) = self.peek().clone() {
                if !self.is_postfix_after_number() {
                    let literal = self.checked_number(&format!("-{n}"))?;
                    self.advance();
                    return self.postfix(literal);
                }
            }
            return Ok(Expr::Negate(Box::new(self.unary()?)));
        }
        if self.eat_symbol("+") {
            return self.unary();
        }
        let primary = self.primary()?;
        self.postfix(primary)
    }

    /// A number literal at the current token, refused as ksqlDB's AST builder refuses it
    /// when it does not fit its type (BIGINT for whole numbers, DOUBLE with an exponent).
    fn checked_number(&self, text: &str) -> Result<Expr, ParseError> {
        let literal = number_literal(text);
        let refused = match &literal {
            Expr::Literal(Literal::Integer(t)) => t
                .parse::<i64>()
                .is_err()
                .then(|| format!("Invalid numeric literal: {t}")),
            Expr::Literal(Literal::Double(t)) => t
                .parse::<f64>()
                .map_or(true, |v| v.is_infinite())
                .then(|| format!("Number overflows DOUBLE: {t}")),
            _ => None,
        };
        match refused {
            Some(message) => Err(
                ParseError::at(self.text, self.tokens[self.pos].offset, &message)
                    .styled(ErrorStyle::Prepare),
            ),
            None => Ok(literal),
        }
    }

    fn is_postfix_after_number(&self) -> bool {
        matches!(
            self.peek_at(1),
            TokenKind::Symbol("[") | TokenKind::Symbol("->")
        )
    }

    fn postfix(&mut self, mut expr: Expr) -> Result<Expr, ParseError> {
        loop {
            if self.eat_symbol("[") {
                let index = self.expr()?;
                self.expect_symbol("]")?;
                expr = Expr::Subscript {
                    base: Box::new(expr),
                    index: Box::new(index),
                };
            } else if self.is_symbol("->") && !matches!(self.peek_at(1), TokenKind::Symbol("*")) {
                self.advance();
                let field = self.identifier()?;
                expr = Expr::Field {
                    base: Box::new(expr),
                    field,
                };
            } else {
                return Ok(expr);
            }
        }
    }

    fn primary(&mut self) -> Result<Expr, ParseError> {
        match self.peek().clone() {
            TokenKind::Number(n) => {
                let literal = self.checked_number(&n)?;
                self.advance();
                Ok(literal)
            }
            TokenKind::Str(s) => {
                self.advance();
                Ok(Expr::Literal(Literal::String(s)))
            }
            TokenKind::Variable(v) => self.error(&format!("Undefined variable: ${{{v}}}")),
            TokenKind::Symbol("(") => {
                if let Some(lambda) = self.try_lambda()? {
                    return Ok(lambda);
                }
                self.advance();
                let inner = self.expr()?;
                self.expect_symbol(")")?;
                Ok(inner)
            }
            TokenKind::QuotedIdent(_) => self.column_or_call(),
            TokenKind::Word(w) => {
                let upper = w.to_ascii_uppercase();
                match upper.as_str() {
                    "NULL" => {
                        self.advance();
                        Ok(Expr::Literal(Literal::Null))
                    }
                    "TRUE" | "FALSE" => {
                        self.advance();
                        Ok(Expr::Literal(Literal::Boolean(upper == "TRUE")))
                    }
                    "CASE" => self.case(),
                    "CAST" => {
                        self.advance();
                        self.expect_symbol("(")?;
                        let expr = self.expr()?;
                        self.expect_word("AS")?;
                        // ksqlDB parses a CAST's type on its own, and says so differently.
                        let type_at = self.tokens[self.pos].offset;
                        let to = self.sql_type().map_err(|e| {
                            if e.message.starts_with("Syntax Error: unknown type") {
                                let word = e.message.rsplit(' ').next().unwrap_or_default();
                                ParseError::at(
                                    self.text,
                                    type_at,
                                    &format!("Syntax error at or near '{word}'"),
                                )
                                .styled(ErrorStyle::Near)
                            } else {
                                e
                            }
                        })?;
                        self.expect_symbol(")")?;
                        Ok(Expr::Cast {
                            expr: Box::new(expr),
                            to,
                        })
                    }
                    "ARRAY" if matches!(self.peek_at(1), TokenKind::Symbol("[")) => {
                        self.advance();
                        self.advance();
                        let mut items = Vec::new();
                        if !self.is_symbol("]") {
                            loop {
                                items.push(self.expr()?);
                                if !self.eat_symbol(",") {
                                    break;
                                }
                            }
                        }
                        self.expect_symbol("]")?;
                        Ok(Expr::Array(items))
                    }
                    "MAP" if matches!(self.peek_at(1), TokenKind::Symbol("(")) => {
                        self.advance();
                        self.advance();
                        let mut entries = Vec::new();
                        if !self.is_symbol(")") {
                            loop {
                                let key = self.expr()?;
                                self.expect_symbol(":=")?;
                                let value = self.expr()?;
                                entries.push((key, value));
                                if !self.eat_symbol(",") {
                                    break;
                                }
                            }
                        }
                        self.expect_symbol(")")?;
                        Ok(Expr::Map(entries))
                    }
                    "STRUCT" if matches!(self.peek_at(1), TokenKind::Symbol("(")) => {
                        self.advance();
                        self.advance();
                        let mut fields = Vec::new();
                        if !self.is_symbol(")") {
                            loop {
                                let name = self.identifier()?;
                                self.expect_symbol(":=")?;
                                let value = self.expr()?;
                                fields.push((name, value));
                                if !self.eat_symbol(",") {
                                    break;
                                }
                            }
                        }
                        self.expect_symbol(")")?;
                        Ok(Expr::Struct(fields))
                    }
                    _ => {
                        if matches!(self.peek_at(1), TokenKind::Symbol("=>")) {
                            let param = self.identifier()?;
                            self.advance();
                            let body = self.expr()?;
                            return Ok(Expr::Lambda {
                                params: vec![param],
                                body: Box::new(body),
                            });
                        }
                        if RESERVED.contains(&upper.as_str()) {
                            return self.unexpected("an expression");
                        }
                        self.column_or_call()
                    }
                }
            }
            _ => self.unexpected("an expression"),
        }
    }

    /// `(a, b) => body` when the parenthesis opens a lambda's parameter list.
    fn try_lambda(&mut self) -> Result<Option<Expr>, ParseError> {
        let start = self.pos;
        self.advance();
        let mut params = Vec::new();
        loop {
            match self.peek() {
                TokenKind::Word(_) | TokenKind::QuotedIdent(_) => params.push(self.identifier()?),
                _ => {
                    self.pos = start;
                    return Ok(None);
                }
            }
            if !self.eat_symbol(",") {
                break;
            }
        }
        if self.eat_symbol(")") && self.eat_symbol("=>") {
            let body = self.expr()?;
            return Ok(Some(Expr::Lambda {
                params,
                body: Box::new(body),
            }));
        }
        self.pos = start;
        Ok(None)
    }

    fn column_or_call(&mut self) -> Result<Expr, ParseError> {
        let quoted = matches!(self.peek(), TokenKind::QuotedIdent(_));
        let first = self.identifier()?;
        if !quoted && self.is_symbol("(") {
            self.advance();
            let name = first;
            if self.eat_symbol("*") {
                self.expect_symbol(")")?;
                return Ok(Expr::Function {
                    name,
                    args: Vec::new(),
                    distinct: false,
                    star: true,
                });
            }
            let distinct = self.eat_word("DISTINCT");
            let mut args = Vec::new();
            if !self.is_symbol(")") {
                loop {
                    let takes_unit =
                        args.is_empty() && TIME_UNIT_FUNCTIONS.contains(&name.as_str());
                    if takes_unit {
                        if let TokenKind::Word(unit) = self.peek().clone() {
                            if matches!(self.peek_at(1), TokenKind::Symbol(",")) {
                                self.advance();
                                args.push(Expr::TimeUnit(unit.to_ascii_uppercase()));
                                self.advance();
                                continue;
                            }
                        }
                    }
                    args.push(self.expr()?);
                    if !self.eat_symbol(",") {
                        break;
                    }
                }
            }
            self.expect_symbol(")")?;
            return Ok(Expr::Function {
                name,
                args,
                distinct,
                star: false,
            });
        }
        if self.is_symbol(".")
            && matches!(
                self.peek_at(1),
                TokenKind::Word(_) | TokenKind::QuotedIdent(_)
            )
        {
            self.advance();
            let name = self.identifier()?;
            return Ok(Expr::Column {
                qualifier: Some(first),
                name,
            });
        }
        Ok(Expr::Column {
            qualifier: None,
            name: first,
        })
    }

    fn case(&mut self) -> Result<Expr, ParseError> {
        self.expect_word("CASE")?;
        let operand = if self.is_word("WHEN") {
            None
        } else {
            Some(Box::new(self.expr()?))
        };
        let mut whens = Vec::new();
        while self.eat_word("WHEN") {
            let condition = self.expr()?;
            self.expect_word("THEN")?;
            let result = self.expr()?;
            whens.push((condition, result));
        }
        if whens.is_empty() {
            return self.unexpected("WHEN");
        }
        let otherwise = if self.eat_word("ELSE") {
            Some(Box::new(self.expr()?))
        } else {
            None
        };
        self.expect_word("END")?;
        Ok(Expr::Case {
            operand,
            whens,
            otherwise,
        })
    }
}

fn number_literal(text: &str) -> Expr {
    Expr::Literal(if text.contains(['e', 'E']) {
        Literal::Double(text.to_string())
    } else if text.contains('.') {
        Literal::Decimal(text.to_string())
    } else {
        Literal::Integer(text.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Statement {
        let mut parsed = parse_statements(text).unwrap();
        assert_eq!(parsed.len(), 1);
        parsed.remove(0).statement
    }

    #[test]
    fn the_talks_statements_parse() {
        let create = one("CREATE STREAM carsensor (eventid integer, sensorinput varchar) WITH (kafka_topic='temperature', value_format='DELIMITED');");
        let Statement::CreateSource {
            name,
            columns,
            properties,
            ..
        } = create
        else {
            panic!("{create:?}")
        };
        assert_eq!(name, "CARSENSOR");
        assert_eq!(columns[0].name, "EVENTID");
        assert_eq!(columns[1].sql_type, SqlType::String);
        assert_eq!(
            properties["KAFKA_TOPIC"],
            PropertyValue::Str("temperature".into())
        );
        let select = one("SELECT EVENTID, ANOMALY(SENSORINPUT) FROM CARSENSOR EMIT CHANGES");
        let Statement::Select(query) = select else {
            panic!()
        };
        assert_eq!(query.emit, Some(Emit::Changes));
        assert_eq!(query.select.len(), 2);
        let csas = one("CREATE STREAM ANOMALYDETECTION AS SELECT EVENTID, CAST (ANOMALY(SENSORINPUT) AS DOUBLE) AS ANOMALY_VAL FROM CARSENSOR;");
        assert!(matches!(csas, Statement::CreateAsSelect { .. }));
    }

    #[test]
    fn precedence_and_predicates() {
        let Statement::Select(query) = one("SELECT a FROM s WHERE NOT a + 1 * 2 > 3 AND b IS NOT NULL OR c NOT IN (1, 2) EMIT CHANGES")
        else {
            panic!()
        };
        let Some(Expr::Binary {
            op: BinaryOp::Or,
            left,
            ..
        }) = query.filter
        else {
            panic!()
        };
        let Expr::Binary {
            op: BinaryOp::And,
            left: not,
            ..
        } = *left
        else {
            panic!()
        };
        assert!(matches!(*not, Expr::Not(_)));
    }

    #[test]
    fn types_literals_and_lambdas() {
        assert_eq!(
            parse_type("STRUCT<a ARRAY<DECIMAL(4, 2)>, `b` MAP<STRING, INT>>")
                .unwrap()
                .to_string(),
            "STRUCT<`A` ARRAY<DECIMAL(4, 2)>, `b` MAP<STRING, INTEGER>>"
        );
        let Statement::Select(query) =
            one("SELECT TRANSFORM(xs, (k, v) => k + v), 1.50, 2e3, -5, s->f[1] FROM t")
        else {
            panic!()
        };
        let SelectItem::Expr {
            expr: Expr::Function { args, .. },
            ..
        } = &query.select[0]
        else {
            panic!()
        };
        assert!(matches!(args[1], Expr::Lambda { .. }));
        assert!(
            matches!(&query.select[1], SelectItem::Expr { expr: Expr::Literal(Literal::Decimal(d)), .. } if d == "1.50")
        );
        assert!(matches!(
            &query.select[2],
            SelectItem::Expr {
                expr: Expr::Literal(Literal::Double(_)),
                ..
            }
        ));
        assert!(
            matches!(&query.select[3], SelectItem::Expr { expr: Expr::Literal(Literal::Integer(i)), .. } if i == "-5")
        );
        assert!(matches!(
            &query.select[4],
            SelectItem::Expr {
                expr: Expr::Subscript { .. },
                ..
            }
        ));
    }

    #[test]
    fn errors_say_where() {
        let error = parse_statements("SELECT FROM x;").unwrap_err();
        assert_eq!((error.line, error.column), (1, 8));
        assert!(error.message.contains("FROM"), "{error}");
    }

    #[test]
    fn statements_split_outside_quotes() {
        assert_eq!(
            split_statements("SET 'a'='x;y'; SHOW STREAMS;\n-- done;\n"),
            vec!["SET 'a'='x;y'", "SHOW STREAMS"]
        );
    }
}

#[cfg(test)]
mod position_tests {
    use super::*;

    #[test]
    fn errors_are_placed_in_the_request_with_ksqldb_wording() {
        let error =
            parse_statements("SELECT 1 FROM S;\nSELECT 9223372036854775808 FROM S;").unwrap_err();
        assert_eq!(
            error.to_string(),
            "Failed to prepare statement: line 2:9: Invalid numeric literal: 9223372036854775808"
        );
        let error = parse_statements("SELECT -1.8E308 FROM S;").unwrap_err();
        assert!(
            error
                .to_string()
                .contains("Number overflows DOUBLE: -1.8E308"),
            "{error}"
        );
        let error = parse_statements("SELECT CAST(x AS NULL) FROM S;").unwrap_err();
        assert_eq!(
            error.to_string(),
            "Syntax error at or near 'NULL' at line 1:18"
        );
        let error =
            parse_statements("CREATE STREAM S (ID INT PRIMARY KEY) WITH (kafka_topic='t');")
                .unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("Line: 1, Col: 18: Column `ID` is a 'PRIMARY KEY'"),
            "{error}"
        );
        let error = parse_statements("SELECT * FROM S PARTITION BY ();").unwrap_err();
        assert!(
            error
                .message
                .contains("PARTITION BY requires at least one expression"),
            "{error}"
        );
    }

    #[test]
    fn struct_all_and_alter_parse() {
        let parsed = parse_statements("SELECT v1->a->* FROM S EMIT CHANGES;").unwrap();
        let Statement::Select(query) = &parsed[0].statement else {
            panic!("not a query");
        };
        assert!(matches!(
            query.select[0],
            SelectItem::StructAll(Expr::Field { .. })
        ));
        let parsed = parse_statements("ALTER STREAM S ADD COLUMN c INT, ADD d STRING;").unwrap();
        assert!(matches!(
            &parsed[0].statement,
            Statement::Alter { columns, .. } if columns.len() == 2
        ));
    }
}
