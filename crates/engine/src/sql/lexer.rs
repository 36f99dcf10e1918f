//! Splits KSQL text into tokens, keeping each token's byte offset for error messages.

use super::parser::ParseError;

#[derive(Debug, Clone, PartialEq)]
pub enum TokenKind {
    /// An unquoted word: a keyword or an identifier (upper-cased by the parser where needed).
    Word(String),
    /// A back-quoted or double-quoted identifier: case kept.
    QuotedIdent(String),
    /// `'...'` with `''` for a quote.
    Str(String),
    /// Digits with optional fraction and exponent, as written.
    Number(String),
    /// `${name}` left unsubstituted (variables are substituted before lexing).
    Variable(String),
    Symbol(&'static str),
    End,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    pub kind: TokenKind,
    /// Byte offset in the statement text.
    pub offset: usize,
}

const SYMBOLS: [&str; 23] = [
    "->", "=>", ":=", "<=", ">=", "<>", "!=", "||", "(", ")", ",", ";", ".", "*", "+", "-", "/",
    "%", "=", "<", ">", "[", "]",
];

pub fn tokenize(text: &str) -> Result<Vec<Token>, ParseError> {
    let bytes = text.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if c == b'-' && bytes.get(i + 1) == Some(&b'-') {
            while i < bytes.len() && bytes[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        if c == b'/' && bytes.get(i + 1) == Some(&b'*') {
            let end = text[i + 2..]
                .find("*/")
                .ok_or_else(|| ParseError::at(text, i, "unterminated comment"))?;
            i += end + 4;
            continue;
        }
        let start = i;
        let kind = if c == b'\'' {
            let mut value = String::new();
            i += 1;
            loop {
                match bytes.get(i) {
                    None => return Err(ParseError::at(text, start, "unterminated string literal")),
                    Some(b'\'') if bytes.get(i + 1) == Some(&b'\'') => {
                        value.push('\'');
                        i += 2;
                    }
                    Some(b'\'') => {
                        i += 1;
                        break;
                    }
                    Some(_) => {
                        let ch = text[i..].chars().next().unwrap_or('\0');
                        value.push(ch);
                        i += ch.len_utf8();
                    }
                }
            }
            TokenKind::Str(value)
        } else if c == b'`' || c == b'"' {
            let close = text[i + 1..]
                .find(c as char)
                .ok_or_else(|| ParseError::at(text, i, "unterminated quoted identifier"))?;
            let name = text[i + 1..i + 1 + close].to_string();
            i += close + 2;
            TokenKind::QuotedIdent(name)
        } else if c.is_ascii_digit()
            || (c == b'.' && bytes.get(i + 1).is_some_and(u8::is_ascii_digit))
        {
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            if i < bytes.len()
                && bytes[i] == b'.'
                && bytes
                    .get(i + 1)
                    .is_none_or(|b| b.is_ascii_digit() || !b.is_ascii_alphabetic())
            {
                i += 1;
                while i < bytes.len() && bytes[i].is_ascii_digit() {
                    i += 1;
                }
            }
            if i < bytes.len() && (bytes[i] == b'e' || bytes[i] == b'E') {
                let mut j = i + 1;
                if j < bytes.len() && (bytes[j] == b'+' || bytes[j] == b'-') {
                    j += 1;
                }
                if j < bytes.len() && bytes[j].is_ascii_digit() {
                    i = j;
                    while i < bytes.len() && bytes[i].is_ascii_digit() {
                        i += 1;
                    }
                }
            }
            if i < bytes.len()
                && (bytes[i].is_ascii_alphabetic() || bytes[i] == b'_')
                && !text[start..i].contains(['.', 'e', 'E'])
            {
                // ksqlDB's grammar has DIGIT_IDENTIFIER: `1R` is a name.
                while i < bytes.len()
                    && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_' || bytes[i] == b'@')
                {
                    i += 1;
                }
                TokenKind::Word(text[start..i].to_string())
            } else {
                TokenKind::Number(text[start..i].to_string())
            }
        } else if c.is_ascii_alphabetic() || c == b'_' || c == b'@' || c >= 0x80 {
            while i < bytes.len()
                && (bytes[i].is_ascii_alphanumeric()
                    || bytes[i] == b'_'
                    || bytes[i] == b'@'
                    || bytes[i] >= 0x80)
            {
                i += 1;
            }
            TokenKind::Word(text[start..i].to_string())
        } else if c == b'$' && bytes.get(i + 1) == Some(&b'{') {
            let close = text[i..]
                .find('}')
                .ok_or_else(|| ParseError::at(text, i, "unterminated variable reference"))?;
            let name = text[i + 2..i + close].to_string();
            i += close + 1;
            TokenKind::Variable(name)
        } else if let Some(symbol) = SYMBOLS.iter().find(|s| text[i..].starts_with(**s)) {
            i += symbol.len();
            TokenKind::Symbol(symbol)
        } else {
            return Err(ParseError::at(
                text,
                i,
                &format!(
                    "unexpected character '{}'",
                    text[i..].chars().next().unwrap_or('?')
                ),
            ));
        };
        tokens.push(Token {
            kind,
            offset: start,
        });
    }
    tokens.push(Token {
        kind: TokenKind::End,
        offset: text.len(),
    });
    Ok(tokens)
}
