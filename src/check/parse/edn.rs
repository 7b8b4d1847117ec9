//! A small EDN reader: enough of the format for Jepsen and Knossos histories.
//!
//! Supported: `nil`, `true`, `false`, integers (with an optional `N`),
//! floats, strings with escapes, characters, keywords, symbols, vectors,
//! lists, sets (read as vectors), maps, `;` comments, `#_` discard, and
//! tagged literals (`#inst "..."`, whose tag is dropped). Nesting deeper than
//! [`DEPTH_MAX`] is refused rather than overflowing the stack.

use super::Value;

/// The deepest nesting of collections accepted.
pub const DEPTH_MAX: usize = 128;

/// A reader over EDN text that tracks line numbers (1-based).
pub struct Reader<'a> {
    text: &'a [u8],
    position: usize,
    line: usize,
}

/// A reading error: the line and what was wrong.
pub type ReadError = (usize, String);

impl<'a> Reader<'a> {
    /// A reader at the start of `text`, whose first line is `first_line`.
    pub fn new(text: &'a str, first_line: usize) -> Self {
        Self {
            text: text.as_bytes(),
            position: 0,
            line: first_line,
        }
    }

    /// The current line.
    pub fn line(&self) -> usize {
        self.line
    }

    fn peek(&self) -> Option<u8> {
        self.text.get(self.position).copied()
    }

    fn bump(&mut self) -> Option<u8> {
        let byte = self.peek()?;
        self.position += 1;
        if byte == b'\n' {
            self.line += 1;
        }
        Some(byte)
    }

    /// Skips whitespace, commas and comments.
    pub fn skip_blank(&mut self) {
        while let Some(byte) = self.peek() {
            if byte.is_ascii_whitespace() || byte == b',' {
                self.bump();
            } else if byte == b';' {
                while let Some(byte) = self.bump() {
                    if byte == b'\n' {
                        break;
                    }
                }
            } else {
                break;
            }
        }
    }

    /// Whether only blanks remain.
    pub fn at_end(&mut self) -> bool {
        self.skip_blank();
        self.peek().is_none()
    }

    /// Reads the next form; `Ok(None)` at the end of the text.
    pub fn next_form(&mut self) -> Result<Option<(usize, Value)>, ReadError> {
        if self.at_end() {
            return Ok(None);
        }
        let line = self.line;
        let value = self.read(0)?;
        Ok(Some((line, value)))
    }

    fn error<T>(&self, message: impl Into<String>) -> Result<T, ReadError> {
        Err((self.line, message.into()))
    }

    fn read(&mut self, depth: usize) -> Result<Value, ReadError> {
        if depth > DEPTH_MAX {
            return self.error(format!("nesting deeper than {DEPTH_MAX}"));
        }
        self.skip_blank();
        let Some(byte) = self.peek() else {
            return self.error("unexpected end of input");
        };
        match byte {
            b'[' => {
                self.bump();
                Ok(Value::Vector(self.read_sequence(b']', depth)?))
            }
            b'(' => {
                self.bump();
                Ok(Value::Vector(self.read_sequence(b')', depth)?))
            }
            b'{' => {
                self.bump();
                let items = self.read_sequence(b'}', depth)?;
                if items.len() % 2 != 0 {
                    return self.error("map with an odd number of forms");
                }
                let mut pairs = Vec::with_capacity(items.len() / 2);
                let mut items = items.into_iter();
                while let (Some(key), Some(value)) = (items.next(), items.next()) {
                    pairs.push((key, value));
                }
                Ok(Value::Map(pairs))
            }
            b'#' => {
                self.bump();
                match self.peek() {
                    Some(b'{') => {
                        self.bump();
                        Ok(Value::Vector(self.read_sequence(b'}', depth)?))
                    }
                    Some(b'_') => {
                        self.bump();
                        self.read(depth + 1)?;
                        self.read(depth)
                    }
                    _ => {
                        // A tagged literal: drop the tag, keep the value.
                        self.read_token();
                        self.read(depth + 1)
                    }
                }
            }
            b'"' => self.read_string(),
            b'\\' => {
                self.bump();
                let token = self.read_token();
                if token.is_empty() {
                    return self.error("empty character literal");
                }
                Ok(Value::Str(token))
            }
            b']' | b')' | b'}' => self.error(format!("unexpected '{}'", byte as char)),
            _ => self.read_atom(),
        }
    }

    fn read_sequence(&mut self, close: u8, depth: usize) -> Result<Vec<Value>, ReadError> {
        let open_line = self.line;
        let mut items = Vec::new();
        loop {
            self.skip_blank();
            match self.peek() {
                None => {
                    return Err((
                        open_line,
                        format!(
                            "a collection opened on this line is never closed (missing '{}')",
                            close as char
                        ),
                    ));
                }
                Some(byte) if byte == close => {
                    self.bump();
                    return Ok(items);
                }
                Some(_) => items.push(self.read(depth + 1)?),
            }
        }
    }

    fn read_string(&mut self) -> Result<Value, ReadError> {
        self.bump();
        let mut bytes = Vec::new();
        loop {
            match self.bump() {
                None => return self.error("unterminated string"),
                Some(b'"') => break,
                Some(b'\\') => match self.bump() {
                    Some(b'n') => bytes.push(b'\n'),
                    Some(b't') => bytes.push(b'\t'),
                    Some(b'r') => bytes.push(b'\r'),
                    Some(b'u') => {
                        let start = self.position;
                        for _ in 0..4 {
                            self.bump();
                        }
                        let hex = self.text.get(start..self.position).unwrap_or_default();
                        let code = std::str::from_utf8(hex)
                            .ok()
                            .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                            .and_then(char::from_u32);
                        let Some(code) = code else {
                            return self.error("bad \\u escape in string");
                        };
                        let mut buffer = [0u8; 4];
                        bytes.extend_from_slice(code.encode_utf8(&mut buffer).as_bytes());
                    }
                    Some(other) => bytes.push(other),
                    None => return self.error("unterminated string"),
                },
                Some(other) => bytes.push(other),
            }
        }
        match String::from_utf8(bytes) {
            Ok(text) => Ok(Value::Str(text)),
            Err(_) => self.error("string is not UTF-8"),
        }
    }

    fn read_token(&mut self) -> String {
        let start = self.position;
        while let Some(byte) = self.peek() {
            if byte.is_ascii_whitespace() || b",()[]{}\";".contains(&byte) {
                break;
            }
            self.bump();
        }
        String::from_utf8_lossy(&self.text[start..self.position]).into_owned()
    }

    fn read_atom(&mut self) -> Result<Value, ReadError> {
        let token = self.read_token();
        if token.is_empty() {
            self.bump();
            return self.error("unexpected character");
        }
        Ok(atom(&token))
    }
}

/// Interprets a token: keyword, number, nil, boolean or symbol.
fn atom(token: &str) -> Value {
    if let Some(name) = token.strip_prefix(':') {
        return Value::Keyword(name.to_string());
    }
    match token {
        "nil" => return Value::Nil,
        "true" => return Value::Bool(true),
        "false" => return Value::Bool(false),
        _ => {}
    }
    let first = token.as_bytes()[0];
    let numeric = first.is_ascii_digit()
        || ((first == b'-' || first == b'+')
            && token.len() > 1
            && token.as_bytes()[1].is_ascii_digit());
    if numeric {
        let digits = token.strip_suffix('N').unwrap_or(token);
        if let Ok(value) = digits.parse::<i64>() {
            return Value::Int(value);
        }
        let float = token.strip_suffix('M').unwrap_or(token);
        if let Ok(value) = float.parse::<f64>() {
            return Value::Float(value);
        }
    }
    Value::Symbol(token.to_string())
}

/// Reads every form of `text` (first line 1).
pub fn read_all(text: &str) -> Result<Vec<(usize, Value)>, ReadError> {
    let mut reader = Reader::new(text, 1);
    let mut forms = Vec::new();
    while let Some(form) = reader.next_form()? {
        forms.push(form);
    }
    Ok(forms)
}

/// Reads a history's events: the elements of one top-level vector or list
/// (Knossos), or every top-level form (one map per line), each with its line.
pub fn read_events(text: &str) -> Result<Vec<(usize, Value)>, ReadError> {
    let mut reader = Reader::new(text, 1);
    reader.skip_blank();
    let close = match reader.peek() {
        Some(b'[') => b']',
        Some(b'(') => b')',
        _ => return read_all(text),
    };
    reader.bump();
    let mut forms = Vec::new();
    loop {
        reader.skip_blank();
        match reader.peek() {
            None => return reader.error(format!("missing '{}'", close as char)),
            Some(byte) if byte == close => {
                reader.bump();
                break;
            }
            Some(_) => {
                let line = reader.line;
                forms.push((line, reader.read(1)?));
            }
        }
    }
    if !reader.at_end() {
        return reader.error("text after the history's closing bracket");
    }
    Ok(forms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_jepsen_map_with_line_numbers() {
        let forms =
            read_all("\n{:process 0, :type :invoke, :f :cas, :value [1 -2], :key \"a\\\"b\"}")
                .unwrap();
        assert_eq!(forms.len(), 1);
        assert_eq!(forms[0].0, 2);
        let Value::Map(pairs) = &forms[0].1 else {
            panic!("not a map")
        };
        assert_eq!(
            pairs[3],
            (
                Value::Keyword("value".into()),
                Value::Vector(vec![Value::Int(1), Value::Int(-2)])
            )
        );
        assert_eq!(pairs[4].1, Value::Str("a\"b".into()));
    }

    #[test]
    fn refuses_bad_input_without_panicking() {
        for text in [
            "{:a",
            "[1 2",
            "\"abc",
            "{:a}",
            "]",
            "#",
            "\\",
            "\"\\u12\"",
            &"[".repeat(10_000),
        ] {
            assert!(read_all(text).is_err(), "{text:.20}");
        }
    }
}
