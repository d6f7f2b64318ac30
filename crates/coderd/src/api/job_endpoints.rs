//! What every job-backed endpoint answers alike: a job's logs (a list, or followed over a
//! WebSocket) and its cancellation.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::ws::{close_code, Message, WebSocket};
use axum::response::Response;
use codersdk::ProvisionerJobLog;
use futures_util::{SinkExt, StreamExt};
use uuid::Uuid;

use crate::http::error::{ApiError, ApiResult, DATABASE_UNAVAILABLE_MESSAGE};
use crate::http::params::QueryParams;
use crate::http::ws_io::{close, going_away, text, upgrade_or_400, Upgrade, HEARTBEAT};
use crate::state::AppState;

/// `GET …/logs`: the job's logs after `?after=` as a JSON array, or with `?follow` a
/// WebSocket that streams them until the job ends.
pub async fn logs(
    state: &AppState,
    job: Uuid,
    raw_query: Option<&str>,
    ws: Upgrade,
) -> ApiResult<axum::response::Response> {
    use axum::response::IntoResponse;
    let q = QueryParams::parse(raw_query);
    let after = match q.get("after").filter(|v| !v.is_empty()) {
        None => 0,
        Some(v) => v.parse::<i64>().map_err(|_| {
            ApiError::bad_request("Query param \"after\" must be an integer.")
                .with_validation("after", "Must be an integer.")
        })?,
    };
    if q.has("follow") {
        return follow_logs(state.clone(), job, after, ws);
    }
    let logs: Vec<ProvisionerJobLog> = state
        .store
        .logs_after(job, after)
        .await?
        .into_iter()
        .map(crate::views::jobs::log)
        .collect();
    Ok(crate::http::json::ok(logs).into_response())
}

/// Maps a cancel attempt's outcome to Coder's answers.
pub async fn cancel(
    state: &AppState,
    job: Uuid,
    raw_query: Option<&str>,
) -> ApiResult<axum::response::Response> {
    use axum::http::StatusCode;
    let q = QueryParams::parse(raw_query);
    let expect = match q.get("expect_status").filter(|v| !v.is_empty()) {
        None => None,
        Some(s @ ("pending" | "running")) => Some(s.to_string()),
        Some(other) => {
            return Err(
                ApiError::bad_request("Query parameters have invalid values.").with_validation(
                    "expect_status",
                    format!("{other:?} must be \"pending\" or \"running\""),
                ),
            )
        }
    };
    match state.store.cancel_job(job, expect.as_deref()).await? {
        Err(actual) => Err(ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            format!("Job is {actual:?}, not {:?}.", expect.unwrap_or_default()),
        )),
        Ok(coderd_db::CancelOutcome::AlreadyCompleted) => {
            Err(ApiError::bad_request("Job has already completed!"))
        }
        Ok(coderd_db::CancelOutcome::AlreadyCanceled) => Err(ApiError::bad_request(
            "Job has already been marked as canceled!",
        )),
        Ok(outcome) => {
            if outcome == coderd_db::CancelOutcome::Canceled {
                let ch = coderd_provisioner::daemon::logs_channel(job);
                let _ = state
                    .pubsub
                    .publish(&ch, coderd_provisioner::daemon::END_OF_LOGS)
                    .await;
            }
            Ok(crate::http::json::message(
                StatusCode::OK,
                "Job has been marked as canceled...",
            ))
        }
    }
}

/// Streams a job's logs after `after` over a WebSocket, one `ProvisionerJobLog` per text
/// frame, and closes (1000) once the job has ended and every log was sent.
pub fn follow_logs(state: AppState, job: Uuid, after: i64, ws: Upgrade) -> ApiResult<Response> {
    let ws = upgrade_or_400(ws)?;
    Ok(ws.on_upgrade(move |socket| follow(state, job, after, socket)))
}

pub async fn follow(state: AppState, job: Uuid, mut after: i64, socket: WebSocket) {
    let _guard = state.streams.open();
    // One label for the three routes that follow a job's logs.
    let _ws = state.metrics.websocket("logs?follow");
    // Subscribe first: nothing written after this point can be missed.
    let mut sub = state
        .pubsub
        .subscribe(&coderd_provisioner::daemon::logs_channel(job));
    let (mut sink, mut stream) = socket.split();
    let mut heartbeat =
        tokio::time::interval_at(tokio::time::Instant::now() + HEARTBEAT, HEARTBEAT);
    // A safety net for a notification lost without the pubsub noticing.
    let mut recheck = tokio::time::interval(Duration::from_secs(5));
    loop {
        // Read the job's status before its logs: logs are written before a job ends.
        let ended = match state.store.job(job).await {
            Ok(j) => j.completed_at.is_some(),
            Err(e) => {
                let _ = sink.send(store_failure(job, &e)).await;
                return;
            }
        };
        match state.store.logs_after(job, after).await {
            Ok(logs) => {
                for l in logs {
                    after = l.id;
                    if sink.send(text(&crate::views::jobs::log(l))).await.is_err() {
                        return;
                    }
                }
            }
            Err(e) => {
                let _ = sink.send(store_failure(job, &e)).await;
                return;
            }
        }
        if ended {
            let _ = sink.send(close(close_code::NORMAL, "done")).await;
            return;
        }
        loop {
            tokio::select! {
                ev = sub.recv() => match ev {
                    Some(_) => break,
                    None => {
                        let _ = sink.send(close(close_code::ERROR, "pubsub closed")).await;
                        return;
                    }
                },
                _ = recheck.tick() => break,
                () = state.shutting_down() => {
                    let _ = sink.send(going_away()).await;
                    return;
                }
                _ = heartbeat.tick() => {
                    if sink.send(Message::Ping(Bytes::new())).await.is_err() {
                        return;
                    }
                }
                incoming = stream.next() => match incoming {
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                    Some(Ok(_)) => {}
                },
            }
        }
    }
}

/// The close frame a log follower gets when the database fails it: the cause is logged, and
/// the client told only whether the database is unavailable.
pub fn store_failure(job: Uuid, e: &coderd_db::StoreError) -> Message {
    tracing::warn!(%job, error = %e, "following logs: reading the job");
    if e.is_unavailable() {
        close(close_code::AGAIN, DATABASE_UNAVAILABLE_MESSAGE)
    } else {
        close(close_code::ERROR, "Internal error reading the job's logs.")
    }
}
