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
pub fn parse(q: &str, invalid_message: &str) -> Result<Vec<Term>, ApiError> {
    let mut terms = Vec::new();
    let mut errors = Vec::new();
    for raw in split(q) {
        let colons = raw.matches(':').count();
        if colons == 0 {
            terms.push(Term {
                key: None,
                value: raw,
            });
        } else if colons > 1 {
            errors.push(format!("Query element {raw:?} can only contain 1 ':'"));
        } else if raw.starts_with(':') || raw.ends_with(':') {
            errors.push(format!(
                "Query element {raw:?} cannot start or end with ':'"
            ));
        } else {
            let (k, v) = raw.split_once(':').unwrap_or_default();
            terms.push(Term {
                key: Some(k.to_lowercase()),
                value: v.to_string(),
            });
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

fn split(q: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in q.chars() {
        match c {
            '"' => quoted = !quoted,
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
        let t = parse(r#"status:active  "name:a b" alice"#, "bad").unwrap();
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
    fn bad_terms() {
        let err = parse("a:b:c :x", "Invalid user search query.").unwrap_err();
        assert_eq!(err.body.message, "Invalid user search query.");
        assert_eq!(err.body.validations.len(), 2);
    }
}
