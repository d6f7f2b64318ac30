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

/// A query's terms by key, read as Coder's query-parameter parser reads them: a bare term
/// counts as `default_key`, a key may be given once (lists excepted), every key given must be
/// one the caller reads, and all problems are reported together.
pub struct SearchValues {
    values: Vec<(String, String)>,
    read: Vec<String>,
    err: ApiError,
}

impl SearchValues {
    pub fn new(terms: Vec<Term>, default_key: &str, invalid_message: &str) -> SearchValues {
        SearchValues {
            values: terms
                .into_iter()
                .map(|t| (t.key.unwrap_or_else(|| default_key.to_string()), t.value))
                .collect(),
            read: Vec::new(),
            err: ApiError::bad_request(invalid_message),
        }
    }

    fn all(&mut self, key: &str) -> Vec<String> {
        self.read.push(key.to_string());
        self.values
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .collect()
    }

    pub fn invalid(&mut self, key: &str, detail: impl Into<String>) {
        self.err.body.validations.push(codersdk::ValidationError {
            field: key.to_string(),
            detail: detail.into(),
        });
    }

    /// The one value of `key`, if given.
    pub fn string(&mut self, key: &str) -> Option<String> {
        let mut set = self.all(key);
        if set.len() > 1 {
            let n = set.len();
            self.invalid(
                key,
                format!(
                    "Query param {key:?} provided more than once, found {n} times. \
                     Only provide 1 instance of this query param."
                ),
            );
            return None;
        }
        set.pop()
    }

    /// A boolean as Go's `strconv.ParseBool` reads one.
    pub fn boolean(&mut self, key: &str) -> Option<bool> {
        let v = self.string(key)?;
        match v.as_str() {
            "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
            "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
            _ => {
                self.invalid(
                    key,
                    format!(
                        "Query param {key:?} must be a valid boolean: \
                         strconv.ParseBool: parsing {v:?}: invalid syntax"
                    ),
                );
                None
            }
        }
    }

    pub fn uuid(&mut self, key: &str) -> Option<uuid::Uuid> {
        let v = self.string(key)?;
        let id = uuid::Uuid::parse_str(&v).ok();
        if id.is_none() {
            self.invalid(key, format!("Query param {key:?} must be a valid uuid"));
        }
        id
    }

    /// Every value of `key`, each a comma-separated list of UUIDs.
    pub fn uuids(&mut self, key: &str) -> Vec<uuid::Uuid> {
        let mut ids = Vec::new();
        let mut bad = Vec::new();
        for v in self.all(key) {
            for part in v.split(',') {
                match uuid::Uuid::parse_str(part.trim()) {
                    Ok(id) => ids.push(id),
                    Err(e) => bad.push(format!("invalid UUID {part:?}: {e}")),
                }
            }
        }
        if !bad.is_empty() {
            self.invalid(
                key,
                format!("Query param {key:?} has invalid values: {}", bad.join("\n")),
            );
        }
        ids
    }

    /// Refuses keys nobody read; answers the 400 when anything was wrong.
    pub fn finish(mut self) -> Result<(), ApiError> {
        let mut unread: Vec<String> = self
            .values
            .iter()
            .map(|(k, _)| k.clone())
            .filter(|k| !self.read.contains(k))
            .collect();
        unread.dedup();
        for k in unread {
            self.invalid(&k, format!("{k:?} is not a valid query param"));
        }
        if self.err.body.validations.is_empty() {
            Ok(())
        } else {
            Err(self.err)
        }
    }
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

    #[test]
    fn search_values_read_like_coders_parser() {
        let terms = parse("exact_name:a deprecated:t dev", "bad").unwrap();
        let mut v = SearchValues::new(terms, "display_name", "bad");
        assert_eq!(v.string("exact_name").as_deref(), Some("a"));
        assert_eq!(v.boolean("deprecated"), Some(true));
        assert_eq!(v.string("display_name").as_deref(), Some("dev"));
        assert!(v.finish().is_ok());

        let terms = parse("a b deprecated:maybe colour:red", "bad").unwrap();
        let mut v = SearchValues::new(terms, "display_name", "bad");
        assert_eq!(v.string("display_name"), None);
        assert_eq!(v.boolean("deprecated"), None);
        let err = v.finish().unwrap_err();
        let fields: Vec<&str> = err
            .body
            .validations
            .iter()
            .map(|e| e.field.as_str())
            .collect();
        assert_eq!(fields, ["display_name", "deprecated", "colour"]);
    }
}
