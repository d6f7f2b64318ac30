//! Coder's search-query grammar (`?q=`): space-separated terms, double quotes keep spaces
//! inside a term, each term `key:value` or a bare value.

use crate::http::error::ApiError;

/// One term of a query: `key:value`, or a bare value (`key` is `None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    pub key: Option<String>,
    pub value: String,
}

/// Splits `q` into terms, or answers 400 `<invalid_message>` with a validation per bad term.
/// Colons inside double quotes belong to the value (`last_used_after:"2024-01-02T03:04:05Z"`).
pub fn parse(q: &str, invalid_message: &str) -> Result<Vec<Term>, ApiError> {
    let mut terms = Vec::new();
    let mut errors = Vec::new();
    for raw in split(q) {
        let colons: Vec<usize> = outside_quotes(&raw, ':');
        let shown = raw.replace('"', "");
        match colons.as_slice() {
            [] => terms.push(Term {
                key: None,
                value: shown,
            }),
            [i] if *i == 0 || *i == raw.len() - 1 => errors.push(format!(
                "Query element {shown:?} cannot start or end with ':'"
            )),
            [i] => terms.push(Term {
                key: Some(raw[..*i].replace('"', "").to_lowercase()),
                value: raw[i + 1..].replace('"', ""),
            }),
            _ => errors.push(format!("Query element {shown:?} can only contain 1 ':'")),
        }
    }
    if errors.is_empty() {
        return Ok(terms);
    }
    let mut err = ApiError::bad_request(invalid_message);
    for e in errors {
        err = err.with_validation("q", e);
    }
    Err(err)
}

/// Byte offsets of `c` in `s` that are not inside double quotes.
fn outside_quotes(s: &str, c: char) -> Vec<usize> {
    let mut quoted = false;
    s.char_indices()
        .filter_map(|(i, ch)| {
            if ch == '"' {
                quoted = !quoted;
            }
            (ch == c && !quoted).then_some(i)
        })
        .collect()
}

/// Splits on whitespace outside double quotes, keeping the quotes.
fn split(q: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in q.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                cur.push(c);
            }
            c if c.is_whitespace() && !quoted => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_and_quotes() {
        let t = parse(r#"status:active  name:"a b" alice"#, "bad").unwrap();
        assert_eq!(t.len(), 3);
        assert_eq!(
            t[1],
            Term {
                key: Some("name".into()),
                value: "a b".into()
            }
        );
        assert_eq!(t[2].key, None);
    }

    #[test]
    fn quoted_values_may_hold_colons() {
        let t = parse(r#"last_used_after:"2024-01-02T03:04:05Z""#, "bad").unwrap();
        assert_eq!(
            t[0],
            Term {
                key: Some("last_used_after".into()),
                value: "2024-01-02T03:04:05Z".into()
            }
        );
    }

    #[test]
    fn bad_terms() {
        let err = parse("a:b:c :x", "Invalid user search query.").unwrap_err();
        assert_eq!(err.body.message, "Invalid user search query.");
        assert_eq!(err.body.validations.len(), 2);
    }
}
