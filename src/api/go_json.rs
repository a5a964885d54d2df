//! Go's `encoding/json` as etcd's v2 API shows it to clients: strings quoted
//! the way Go's encoder quotes them (HTML characters escaped), and the exact
//! texts of Go's syntax errors (its scanner's states, ported) and type errors,
//! which etcd returns as the message of a 400.

use serde_json::Value;

/// Go's `maxNestingDepth`.
const MAX_DEPTH: usize = 10_000;

/// A JSON string as Go's `json.Marshal` writes it.
pub fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => out.push_str(&format!("\\u{:04x}", c as u32)),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Decodes `{"peerURLs": [...]}` as Go's `json.Unmarshal` into etcd's request struct: field
/// names match case-insensitively, other fields are ignored, `null` leaves the list empty.
/// The error is Go's text.
pub fn peer_urls(body: &[u8]) -> Result<Vec<String>, String> {
    check_valid(body)?;
    let value: Value = serde_json::from_str(&String::from_utf8_lossy(body)).map_err(|e| e.to_string())?;
    let fields = match value {
        Value::Null => return Ok(Vec::new()),
        Value::Object(fields) => fields,
        other => {
            return Err(format!(
                r#"json: cannot unmarshal {} into Go value of type struct {{ PeerURLs []string "json:\"peerURLs\"" }}"#,
                kind(&other)
            ))
        }
    };
    let mut urls = Vec::new();
    let field_error = |v: &Value, of: &str| {
        format!(
            "json: cannot unmarshal {} into Go struct field .peerURLs of type {of}",
            kind(v)
        )
    };
    for (name, value) in fields {
        if !name.eq_ignore_ascii_case("peerURLs") {
            continue;
        }
        urls = match value {
            Value::Null => Vec::new(),
            Value::Array(items) => items
                .iter()
                .map(|item| match item {
                    Value::Null => Ok(String::new()),
                    Value::String(url) => Ok(url.clone()),
                    other => Err(field_error(other, "string")),
                })
                .collect::<Result<_, _>>()?,
            other => return Err(field_error(&other, "[]string")),
        };
    }
    Ok(urls)
}

/// How Go's type errors name a JSON value.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Where the scanner is, as Go's `scanner.step` functions.
#[derive(Clone, Copy)]
enum State {
    BeginValue,
    BeginValueOrEmpty,
    BeginStringOrEmpty,
    BeginString,
    EndValue,
    EndTop,
    InString,
    InStringEsc,
    /// Hex digits of a `\u` escape still to come.
    InStringEscU(u8),
    Neg,
    Zero,
    One,
    Dot,
    Dot0,
    E,
    ESign,
    E0,
    /// In `true`, `false` or `null`, at the given letter.
    Literal(&'static str, usize),
}

/// What the innermost open object or array expects.
#[derive(Clone, Copy, PartialEq)]
enum Open {
    ObjectKey,
    ObjectValue,
    ArrayValue,
}

struct Scanner {
    state: State,
    open: Vec<Open>,
    end_top: bool,
}

/// Go's `checkValid`: the first syntax error, with Go's text.
fn check_valid(data: &[u8]) -> Result<(), String> {
    let mut scanner = Scanner {
        state: State::BeginValue,
        open: Vec::new(),
        end_top: false,
    };
    for &c in data {
        scanner.step(c)?;
    }
    if scanner.end_top {
        return Ok(());
    }
    // Go's `eof`: a space ends a number or reports the state's error.
    scanner.step(b' ')?;
    if scanner.end_top {
        Ok(())
    } else {
        Err("unexpected end of JSON input".into())
    }
}

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

fn error(c: u8, context: &str) -> String {
    format!("invalid character {} {context}", quote_char(c))
}

/// Go's `quoteChar`: the byte as a Go rune literal.
fn quote_char(c: u8) -> String {
    let inner = match c {
        b'\'' => "\\'".to_string(),
        b'"' => "\"".to_string(),
        b'\\' => "\\\\".to_string(),
        0x07 => "\\a".to_string(),
        0x08 => "\\b".to_string(),
        0x0c => "\\f".to_string(),
        b'\n' => "\\n".to_string(),
        b'\r' => "\\r".to_string(),
        b'\t' => "\\t".to_string(),
        0x0b => "\\v".to_string(),
        0..=0x1f | 0x7f => format!("\\x{c:02x}"),
        0x80..=0xa0 | 0xad => format!("\\u{c:04x}"),
        c => char::from(c).to_string(),
    };
    format!("'{inner}'")
}

impl Scanner {
    fn step(&mut self, c: u8) -> Result<(), String> {
        use State::*;
        match self.state {
            BeginValueOrEmpty if c == b']' => self.end_value(c),
            BeginValue | BeginValueOrEmpty => self.begin_value(c),
            BeginStringOrEmpty if c == b'}' => {
                if let Some(open) = self.open.last_mut() {
                    *open = Open::ObjectValue;
                }
                self.end_value(c)
            }
            BeginStringOrEmpty | BeginString => match c {
                c if is_space(c) => Ok(()),
                b'"' => self.go(InString),
                c => Err(error(c, "looking for beginning of object key string")),
            },
            EndValue => self.end_value(c),
            EndTop if is_space(c) => Ok(()),
            EndTop => Err(error(c, "after top-level value")),
            InString => match c {
                b'"' => self.go(EndValue),
                b'\\' => self.go(InStringEsc),
                0..=0x1f => Err(error(c, "in string literal")),
                _ => Ok(()),
            },
            InStringEsc => match c {
                b'b' | b'f' | b'n' | b'r' | b't' | b'\\' | b'/' | b'"' => self.go(InString),
                b'u' => self.go(InStringEscU(4)),
                c => Err(error(c, "in string escape code")),
            },
            InStringEscU(left) if c.is_ascii_hexdigit() => {
                self.go(if left == 1 { InString } else { InStringEscU(left - 1) })
            }
            InStringEscU(_) => Err(error(c, "in \\u hexadecimal character escape")),
            Neg => match c {
                b'0' => self.go(Zero),
                b'1'..=b'9' => self.go(One),
                c => Err(error(c, "in numeric literal")),
            },
            One if c.is_ascii_digit() => Ok(()),
            One | Zero => match c {
                b'.' => self.go(Dot),
                b'e' | b'E' => self.go(E),
                c => self.end_value(c),
            },
            Dot if c.is_ascii_digit() => self.go(Dot0),
            Dot => Err(error(c, "after decimal point in numeric literal")),
            Dot0 => match c {
                c if c.is_ascii_digit() => Ok(()),
                b'e' | b'E' => self.go(E),
                c => self.end_value(c),
            },
            E if c == b'+' || c == b'-' => self.go(ESign),
            E | ESign if c.is_ascii_digit() => self.go(E0),
            E | ESign => Err(error(c, "in exponent of numeric literal")),
            E0 if c.is_ascii_digit() => Ok(()),
            E0 => self.end_value(c),
            Literal(word, at) => {
                let expected = word.as_bytes()[at];
                if c != expected {
                    return Err(error(
                        c,
                        &format!("in literal {word} (expecting {})", quote_char(expected)),
                    ));
                }
                self.go(if at + 1 == word.len() {
                    EndValue
                } else {
                    Literal(word, at + 1)
                })
            }
        }
    }

    fn go(&mut self, state: State) -> Result<(), String> {
        self.state = state;
        Ok(())
    }

    fn begin_value(&mut self, c: u8) -> Result<(), String> {
        use State::*;
        match c {
            c if is_space(c) => Ok(()),
            b'{' => self.push(c, Open::ObjectKey, BeginStringOrEmpty),
            b'[' => self.push(c, Open::ArrayValue, BeginValueOrEmpty),
            b'"' => self.go(InString),
            b'-' => self.go(Neg),
            b'0' => self.go(Zero),
            b'1'..=b'9' => self.go(One),
            b't' => self.go(Literal("true", 1)),
            b'f' => self.go(Literal("false", 1)),
            b'n' => self.go(Literal("null", 1)),
            c => Err(error(c, "looking for beginning of value")),
        }
    }

    fn push(&mut self, c: u8, open: Open, next: State) -> Result<(), String> {
        self.open.push(open);
        if self.open.len() > MAX_DEPTH {
            return Err(error(c, "exceeded max depth"));
        }
        self.go(next)
    }

    /// After a value: the separator or closer its container expects.
    fn end_value(&mut self, c: u8) -> Result<(), String> {
        let Some(open) = self.open.last_mut() else {
            self.end_top = true;
            self.state = State::EndTop;
            return self.step(c);
        };
        if is_space(c) {
            self.state = State::EndValue;
            return Ok(());
        }
        match (*open, c) {
            (Open::ObjectKey, b':') => {
                *open = Open::ObjectValue;
                self.go(State::BeginValue)
            }
            (Open::ObjectKey, c) => Err(error(c, "after object key")),
            (Open::ObjectValue, b',') => {
                *open = Open::ObjectKey;
                self.go(State::BeginString)
            }
            (Open::ObjectValue, b'}') | (Open::ArrayValue, b']') => {
                self.open.pop();
                self.go(State::EndValue)
            }
            (Open::ObjectValue, c) => Err(error(c, "after object key:value pair")),
            (Open::ArrayValue, b',') => self.go(State::BeginValue),
            (Open::ArrayValue, c) => Err(error(c, "after array element")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_quoted_as_go_quotes_them() {
        assert_eq!(quote("a\"b\\c\n<&>\u{1}é"), r#""a\"b\\c\n\u003c\u0026\u003e\u0001é""#);
        assert_eq!(quote("\u{2028}"), r#""\u2028""#);
    }

    #[test]
    fn syntax_errors_are_gos() {
        let cases: &[(&str, &str)] = &[
            ("", "unexpected end of JSON input"),
            ("{", "unexpected end of JSON input"),
            ("{\"a\"", "unexpected end of JSON input"),
            ("\"abc", "unexpected end of JSON input"),
            ("x", "invalid character 'x' looking for beginning of value"),
            ("{x", "invalid character 'x' looking for beginning of object key string"),
            ("{\"a\" 1", "invalid character '1' after object key"),
            ("{\"a\":1 2", "invalid character '2' after object key:value pair"),
            ("[1 2", "invalid character '2' after array element"),
            ("{} x", "invalid character 'x' after top-level value"),
            ("-", "invalid character ' ' in numeric literal"),
            ("1.", "invalid character ' ' after decimal point in numeric literal"),
            ("1e+", "invalid character ' ' in exponent of numeric literal"),
            ("tru", "invalid character ' ' in literal true (expecting 'e')"),
            ("nul!", "invalid character '!' in literal null (expecting 'l')"),
            ("\"\\q\"", "invalid character 'q' in string escape code"),
            (
                "\"\\u12x\"",
                "invalid character 'x' in \\u hexadecimal character escape",
            ),
            ("\"\t\"", "invalid character '\\t' in string literal"),
            ("'", "invalid character '\\'' looking for beginning of value"),
            ("\u{1}", "invalid character '\\x01' looking for beginning of value"),
        ];
        for (input, message) in cases {
            assert_eq!(check_valid(input.as_bytes()), Err(message.to_string()), "{input:?}");
        }
        for valid in ["1", " {\"a\":[1,-0.5e+3,true,false,null,\"\\u00e9\"]} ", "[]", "{}"] {
            assert_eq!(check_valid(valid.as_bytes()), Ok(()), "{valid:?}");
        }
        let deep = "[".repeat(MAX_DEPTH + 1);
        assert_eq!(
            check_valid(deep.as_bytes()),
            Err("invalid character '[' exceeded max depth".into())
        );
    }

    #[test]
    fn type_errors_are_gos() {
        assert_eq!(
            peer_urls(br#"{"PeerURLs":["http://a:1"],"x":1}"#),
            Ok(vec!["http://a:1".to_string()])
        );
        assert_eq!(peer_urls(b"null"), Ok(vec![]));
        assert_eq!(
            peer_urls(br#"{"peerURLs":"a"}"#),
            Err("json: cannot unmarshal string into Go struct field .peerURLs of type []string".into())
        );
        assert_eq!(
            peer_urls(br#"{"peerURLs":[1]}"#),
            Err("json: cannot unmarshal number into Go struct field .peerURLs of type string".into())
        );
        assert_eq!(
            peer_urls(b"[]"),
            Err(r#"json: cannot unmarshal array into Go value of type struct { PeerURLs []string "json:\"peerURLs\"" }"#.into())
        );
    }
}
