//! Reading TOML files with errors that point at `file:line:col`.

use serde::de::DeserializeOwned;

/// A TOML document that failed to parse or did not match its schema.
#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}:{column}: {message}")]
pub struct TomlError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Parse `text` (read from `file`, used only in messages) into `T`.
pub fn parse<T: DeserializeOwned>(text: &str, file: &str) -> Result<T, TomlError> {
    toml::from_str(text).map_err(|e| {
        let (line, column) = match e.span() {
            Some(span) => line_col(text, span.start),
            None => (1, 1),
        };
        TomlError {
            file: file.to_string(),
            line,
            column,
            message: e.message().trim().to_string(),
        }
    })
}

/// 1-based line and column of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map_or(before.chars().count(), |i| before[i + 1..].chars().count())
        + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Doc {
        a: u32,
    }

    #[test]
    fn unknown_key_points_at_the_key() {
        let err = parse::<Doc>("a = 1\nbogus = 2\n", "x.toml").unwrap_err();
        assert_eq!((err.line, err.column), (2, 1));
        assert!(err.message.contains("bogus"), "{}", err.message);
        assert!(err.to_string().starts_with("x.toml:2:1: "));
    }

    #[test]
    fn syntax_error_has_position() {
        let err = parse::<Doc>("a = = 1\n", "y.toml").unwrap_err();
        assert_eq!(err.line, 1);
        assert!(err.column > 1);
    }
}
