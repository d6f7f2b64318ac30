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

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
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
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
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
    String::from_utf8_lossy(&out).into_owned()
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
    }

    #[test]
    fn bad_pagination_is_reported_per_field() {
        let err = Pagination::parse(&QueryParams::parse(Some("limit=-1&offset=x"))).unwrap_err();
        assert_eq!(err.body.validations.len(), 2);
    }
}
