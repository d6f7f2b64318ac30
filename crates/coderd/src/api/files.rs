//! Uploaded archives: `POST /files`, `GET /files/{fileID}`.

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use codersdk::UploadResponse;
use sha2::{Digest, Sha256};

use super::resolve::FileParam;
use super::routes::{Limit, Routes};
use crate::archive;
use crate::authz::{Action, Actor, Object, Resource};
use crate::http::error::{ApiError, ApiResult};
use crate::http::json::Json;
use crate::http::params::QueryParams;
use crate::state::AppState;

/// Largest upload accepted: 100 MiB, as Coder's.
pub const MAX_FILE_SIZE: usize = 100 << 20;
const TAR: &str = "application/x-tar";
const ZIP: &str = "application/zip";

pub fn routes(r: &mut Routes) {
    r.post("/files", upload)
        .limit(Limit::Files)
        .body_limit(MAX_FILE_SIZE)
        .op("Files", "upload-file", "Upload file")
        .binary_body(&["application/x-tar", "application/zip"])
        .ok::<codersdk::UploadResponse>(200)
        .ok::<codersdk::UploadResponse>(201);
    r.get("/files/{fileID}", download)
        .op("Files", "get-file-by-id", "Get file by ID")
        .binary(200, &["application/x-tar", "application/zip"]);
}

async fn upload(
    State(state): State<AppState>,
    actor: Actor,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<Json<UploadResponse>> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if ct != TAR && ct != ZIP {
        return Err(ApiError::bad_request(format!(
            "Unsupported content type header {ct:?}."
        )));
    }
    if !actor.can(
        Action::Create,
        Object::owned_by(Resource::File, actor.user_id),
    ) {
        return Err(ApiError::forbidden());
    }
    let data = body.map_err(|rej| {
        if rej.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "File is too large.")
                .with_detail(format!("The limit is {MAX_FILE_SIZE} bytes."))
        } else {
            ApiError::bad_request("Failed to read the file.").with_detail(rej.body_text())
        }
    })?;
    // Zip uploads are stored as tar, the one format provisioners read; tar uploads are checked.
    let zip = ct == ZIP;
    let data = tokio::task::spawn_blocking(move || {
        if zip {
            archive::zip_to_tar(&data).map(Bytes::from).map_err(|e| {
                ApiError::bad_request("Failed to convert zip file to tar.").with_detail(e)
            })
        } else {
            archive::check_tar(&data)
                .map(|()| data)
                .map_err(|e| ApiError::bad_request("Invalid tar archive.").with_detail(e))
        }
    })
    .await
    .map_err(|e| ApiError::internal("Checking an upload", e))??;
    let hash = hex::encode(Sha256::digest(&data));
    let (id, new) = state
        .store
        .insert_file(&hash, actor.user_id, TAR, &data)
        .await?;
    let status = if new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(Json(status, UploadResponse { hash: id }))
}

async fn download(FileParam(file): FileParam, RawQuery(raw): RawQuery) -> ApiResult<Response> {
    let q = QueryParams::parse(raw.as_deref());
    let (mimetype, data) = match q.get("format") {
        None | Some("") => (file.mimetype, file.data),
        Some("zip") if file.mimetype == TAR => {
            let zip = tokio::task::spawn_blocking(move || archive::tar_to_zip(&file.data))
                .await
                .map_err(|e| ApiError::internal("Converting a file to zip", e))?
                .map_err(|e| ApiError::internal("Converting a file to zip", e))?;
            (ZIP.to_string(), zip)
        }
        Some("zip") => (file.mimetype, file.data),
        Some(other) => {
            return Err(
                ApiError::bad_request(format!("Unsupported file format {other:?}."))
                    .with_detail("The only supported format is \"zip\"."),
            )
        }
    };
    let mut resp = (StatusCode::OK, data).into_response();
    if let Ok(v) = HeaderValue::from_str(&mimetype) {
        resp.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    Ok(resp)
}
