//! Path and query parameters with Coder's error bodies.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::error::ApiError;

/// Parses a UUID from the path: `400 Invalid UUID "<raw>".` otherwise.
pub fn parse_uuid(raw: &str) -> Result<Uuid, ApiError> {
    if raw.is_empty() {
        return Err(ApiError::bad_request("Missing UUID in URL."));
    }
    Uuid::parse_str(raw).map_err(|e| {
        ApiError::bad_request(format!("Invalid UUID {raw:?}.")).with_detail(e.to_string())
    })
}

/// Query parameters, in order, repeats kept.
#[derive(Debug, Default, Clone)]
pub struct QueryParams(pub Vec<(String, String)>);

impl QueryParams {
    pub fn parse(raw: Option<&str>) -> Self {
        let pairs = raw.map(url_decode_pairs).unwrap_or_default();
        QueryParams(pairs)
    }

    /// The first value of `key`, as Go's `url.Values.Get` reads it (`?after=x&after=1` is
    /// `x`, refused where Coder refuses it).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn has(&self, key: &str) -> bool {
        self.0.iter().any(|(k, _)| k == key)
    }
}

fn url_decode_pairs(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter(|s| !s.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    String::from_utf8_lossy(&percent_decode_bytes(s, true)).into_owned()
}

/// The bytes `s` stands for; `+` is a space only in queries. Malformed escapes stay as they are.
fn percent_decode_bytes(s: &str, plus_is_space: bool) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' if plus_is_space => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    out
}

/// Refuses a URL whose decoded path or query holds text the database cannot store: a NUL
/// character (PostgreSQL's `text` has none), or, in the path, bytes that are not UTF-8. Every
/// path and query parameter ends up compared with or written to a text column, so this is
/// checked once for all of them, before any handler runs.
pub fn check_url_text(path: &str, query: Option<&str>) -> Result<(), ApiError> {
    let path = percent_decode_bytes(path, false);
    match std::str::from_utf8(&path) {
        Ok(p) if !p.contains('\0') => {}
        Ok(_) => {
            return Err(ApiError::bad_request("Invalid URL path.")
                .with_detail("The path must not contain a NUL character (%00)."))
        }
        Err(_) => {
            return Err(ApiError::bad_request("Invalid URL path.")
                .with_detail("The path must be UTF-8 once percent-decoded."))
        }
    }
    let mut errs = QueryErrors::default();
    for (k, v) in QueryParams::parse(query).0 {
        if k.contains('\0') || v.contains('\0') {
            let field = k.replace('\0', "");
            let detail = format!("Query param {field:?} must not contain a NUL character (%00).");
            errs.add(&field, detail);
        }
    }
    errs.finish()
}

/// Collects query-parameter problems into one 400 `Query parameters have invalid values.`.
#[derive(Default)]
pub struct QueryErrors(Vec<(String, String)>);

impl QueryErrors {
    pub fn add(&mut self, field: &str, detail: impl Into<String>) {
        self.0.push((field.into(), detail.into()));
    }

    pub fn finish(self) -> Result<(), ApiError> {
        if self.0.is_empty() {
            return Ok(());
        }
        let mut err = ApiError::bad_request("Query parameters have invalid values.");
        for (f, d) in self.0 {
            err = err.with_validation(f, d);
        }
        Err(err)
    }
}

/// `after_id`, `limit` and `offset`, as Coder's `parsePagination` reads them.
#[derive(Debug, Default, Clone, Copy)]
pub struct Pagination {
    pub after_id: Option<Uuid>,
    pub limit: i64,
    pub offset: i64,
}

impl Pagination {
    pub fn parse(q: &QueryParams) -> Result<Pagination, ApiError> {
        let mut errs = QueryErrors::default();
        let mut p = Pagination::default();
        if let Some(v) = q.get("after_id").filter(|v| !v.is_empty()) {
            match Uuid::parse_str(v) {
                Ok(id) => p.after_id = Some(id),
                Err(e) => errs.add(
                    "after_id",
                    format!("Query param \"after_id\" must be a valid uuid: {e}"),
                ),
            }
        }
        for (name, slot) in [("limit", &mut p.limit), ("offset", &mut p.offset)] {
            if let Some(v) = q.get(name).filter(|v| !v.is_empty()) {
                match v.parse::<i32>() {
                    Ok(n) if n >= 0 => *slot = i64::from(n),
                    _ => errs.add(
                        name,
                        format!("Query param {name:?} must be a valid positive integer ({v:?})."),
                    ),
                }
            }
        }
        errs.finish().map(|_| p)
    }
}

/// Parses an RFC 3339 timestamp (the search grammar's `*_before`/`*_after`).
pub fn parse_time(v: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(v)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_query() {
        let q = QueryParams::parse(Some(
            "q=status%3Aactive+role:owner&limit=5&follow&odd=%zz%4",
        ));
        assert_eq!(q.get("odd"), Some("%zz%4"));
        assert_eq!(q.get("q"), Some("status:active role:owner"));
        assert_eq!(q.get("limit"), Some("5"));
        assert!(q.has("follow"));
        let repeated = QueryParams::parse(Some("after=x&after=1"));
        assert_eq!(
            repeated.get("after"),
            Some("x"),
            "the first, as Go reads it"
        );
    }

    #[test]
    fn url_text_the_database_cannot_store_is_refused() {
        assert!(check_url_text("/users/me", Some("q=a%20b&limit=1")).is_ok());
        assert!(check_url_text("/users/caf%C3%A9", None).is_ok());
        // A `+` in a path is a plus, `%2B` too; neither is refused.
        assert!(check_url_text("/a+b%2B", None).is_ok());
        let err = check_url_text("/users/%00", None).unwrap_err();
        assert_eq!(err.body.message, "Invalid URL path.");
        let err = check_url_text("/users/%FF", None).unwrap_err();
        assert_eq!(err.body.message, "Invalid URL path.");
        let err = check_url_text("/workspaces", Some("q=%00&limit=1&x%00=1")).unwrap_err();
        assert_eq!(err.body.message, "Query parameters have invalid values.");
        let fields: Vec<&str> = err
            .body
            .validations
            .iter()
            .map(|v| v.field.as_str())
            .collect();
        assert_eq!(fields, ["q", "x"]);
    }

    #[test]
    fn bad_pagination_is_reported_per_field() {
        let err = Pagination::parse(&QueryParams::parse(Some("limit=-1&offset=x"))).unwrap_err();
        assert_eq!(err.body.validations.len(), 2);
    }
}
