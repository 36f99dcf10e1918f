//! ksqlDB's dialect: tokens, the statement tree and a recursive-descent parser for it.

pub mod ast;
mod lexer;
mod parser;

pub use lexer::{Token, TokenKind};
pub use parser::{
    parse_statements, parse_type, split_statements, split_statements_located, ErrorStyle,
    ParseError, ParsedStatement,
};
