//! `/bin/`: the agent binaries that workspaces' init scripts download
//! (`coder-<os>-<arch>[.exe]`), served from the directory the operator names
//! (`CODER_AGENT_BINARIES_DIR`), with an ETag (the file's SHA-1, as upstream) and
//! `/bin/coder.sha1` listing every binary's hash.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::SystemTime;

use axum::body::Body;
use axum::extract::{Path as UrlPath, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::http::error::ApiError;
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/bin/{file}", get(serve).head(serve))
}

/// `coder-<os>-<arch>` or `coder-<os>-<arch>.exe`: nothing else is ever read from the
/// directory.
fn is_binary_name(name: &str) -> bool {
    let stem = name.strip_suffix(".exe").unwrap_or(name);
    let Some(rest) = stem.strip_prefix("coder-") else {
        return false;
    };
    let mut parts = rest.split('-');
    let ok = |p: Option<&str>| {
        p.is_some_and(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
    };
    ok(parts.next()) && ok(parts.next()) && parts.next().is_none()
}

fn not_found(what: &str) -> Response {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("{what} was not found on this server."),
    )
    .with_detail(
        "Agent binaries are served from the directory named by CODER_AGENT_BINARIES_DIR \
             (--agent-binaries-dir); put upstream's coder-<os>-<arch> release binaries there.",
    )
    .into_response()
}

/// SHA-1s of files, remembered while a file's size and modification time stay.
type HashCache = Mutex<HashMap<PathBuf, (u64, SystemTime, String)>>;

fn hash_cache() -> &'static HashCache {
    static CACHE: OnceLock<HashCache> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

/// The file's SHA-1 (hex), computed once per version of the file.
fn sha1_of(path: &Path) -> std::io::Result<String> {
    use sha1::Digest;
    let meta = std::fs::metadata(path)?;
    let (len, mtime) = (meta.len(), meta.modified()?);
    if let Some((l, m, h)) = hash_cache()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(path)
    {
        if *l == len && *m == mtime {
            return Ok(h.clone());
        }
    }
    let mut file = std::fs::File::open(path)?;
    let mut hasher = sha1::Sha1::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    let hash = hex::encode(hasher.finalize());
    hash_cache()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(path.to_path_buf(), (len, mtime, hash.clone()));
    Ok(hash)
}

/// `<sha1>  <name>` for every binary in `dir`, sorted by name.
fn listing(dir: &Path) -> std::io::Result<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| is_binary_name(n))
        .collect();
    names.sort();
    let mut out = String::new();
    for n in names {
        out.push_str(&format!("{}  {n}\n", sha1_of(&dir.join(&n))?));
    }
    Ok(out)
}

async fn serve(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
    UrlPath(file): UrlPath<String>,
) -> Response {
    let Some(dir) = state.config.agent_binaries_dir.clone() else {
        return not_found(&format!("/bin/{file}"));
    };
    let internal =
        |context: &str, e: std::io::Error| ApiError::internal(context, e).into_response();
    if file == "coder.sha1" {
        return match tokio::task::spawn_blocking(move || listing(&dir)).await {
            Ok(Ok(text)) => {
                let mut resp = if method == Method::HEAD {
                    Response::new(Body::empty())
                } else {
                    Response::new(Body::from(text))
                };
                resp.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                );
                resp
            }
            Ok(Err(e)) => internal("Listing the agent binaries", e),
            Err(e) => ApiError::internal("Listing the agent binaries", e).into_response(),
        };
    }
    if !is_binary_name(&file) {
        return not_found(&format!("/bin/{file}"));
    }
    let path = dir.join(&file);
    if !tokio::fs::metadata(&path).await.is_ok_and(|m| m.is_file()) {
        return not_found(&format!("The agent binary {file:?}"));
    }
    let hashed = path.clone();
    let hash = match tokio::task::spawn_blocking(move || sha1_of(&hashed)).await {
        Ok(Ok(h)) => h,
        Ok(Err(e)) => return internal("Hashing an agent binary", e),
        Err(e) => return ApiError::internal("Hashing an agent binary", e).into_response(),
    };
    let etag = format!("\"{hash}\"");
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut resp = if fresh {
        let mut r = Response::new(Body::empty());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else if method == Method::HEAD {
        Response::new(Body::empty())
    } else {
        match tokio::fs::File::open(&path).await {
            Ok(f) => Response::new(Body::from_stream(tokio_util::io::ReaderStream::new(f))),
            Err(e) => return internal("Opening an agent binary", e),
        }
    };
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if !fresh {
        if let Ok(meta) = tokio::fs::metadata(&path).await {
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(meta.len()));
        }
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::is_binary_name;

    #[test]
    fn only_binary_names() {
        assert!(is_binary_name("coder-linux-amd64"));
        assert!(is_binary_name("coder-windows-arm64.exe"));
        assert!(is_binary_name("coder-linux-armv7"));
        for bad in [
            "coder",
            "coder-linux",
            "coder-linux-amd64-x",
            "coder-../etc",
            "coder-Linux-amd64",
            "other-linux-amd64",
            "coder--amd64",
        ] {
            assert!(!is_binary_name(bad), "{bad}");
        }
    }
}
