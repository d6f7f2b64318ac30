//! Dynamic parameters: a template version's parameter form evaluated for the inputs a user
//! has typed so far. `POST …/dynamic-parameters/evaluate` answers once; `GET
//! …/dynamic-parameters` is a WebSocket that answers every request message, after an initial
//! form computed without input (id -1), as Coder's is.
//!
//! Parameters are rendered from what the import stored (this server reads `coder_parameter`
//! blocks statically, so no value depends on another): each gets the input or its default,
//! and the same validation a build applies turns into per-parameter diagnostics.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::ws::{close_code, CloseFrame, Message, WebSocket};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use coderd_db::model::Parameter;
use codersdk::{
    DynamicParametersRequest, DynamicParametersResponse, FriendlyDiagnostic, NullHclString,
    PreviewParameter, PreviewParameterOption, PreviewParameterStyling, PreviewParameterValidation,
};
use futures_util::{SinkExt, StreamExt};

use super::resolve;
use super::resolve::VersionParam;
use super::routes::Routes;
use crate::authz::{Action, Actor};
use crate::domain::parameters::validate;
use crate::http::error::{ApiError, ApiResult};
use crate::http::json::{ok, to_go_json, Body, Json};
use crate::http::ws_io::Upgrade;
use crate::state::AppState;

/// How long one form may stay open.
const SESSION_LIMIT: Duration = Duration::from_secs(30 * 60);
const HEARTBEAT: Duration = Duration::from_secs(15);

pub fn routes(r: &mut Routes) {
    r.get(
        "/templateversions/{templateversion}/dynamic-parameters",
        websocket,
    )
    .op(
        "Templates",
        "open-dynamic-parameters-websocket-by-template-version",
        "Open dynamic parameters WebSocket by template version",
    )
    .empty(101);
    r.post(
        "/templateversions/{templateversion}/dynamic-parameters/evaluate",
        evaluate,
    )
    .op(
        "Templates",
        "evaluate-dynamic-parameters-for-template-version",
        "Evaluate dynamic parameters for template version",
    )
    .body::<codersdk::DynamicParametersRequest>()
    .ok::<codersdk::DynamicParametersResponse>(200);
}

/// The version's parameters, once its import has finished.
async fn imported_parameters(state: &AppState, version: VersionParam) -> ApiResult<Vec<Parameter>> {
    let (v, _) = version.allow(Action::Read)?;
    let job = state.store.job(v.job_id).await?;
    if job.completed_at.is_none() {
        return Err(ApiError::new(
            StatusCode::TOO_EARLY,
            "Template version job has not finished",
        ));
    }
    Ok(state.store.version_parameters(v.id).await?)
}

/// The owner named in a request must be someone the caller can see.
async fn check_owner(
    state: &AppState,
    actor: &Actor,
    req: &DynamicParametersRequest,
) -> ApiResult<()> {
    match req.owner_id {
        Some(id) if !id.is_nil() => {
            resolve::readable_user(state, actor, &id.to_string()).await?;
            Ok(())
        }
        _ => Ok(()),
    }
}

fn error(summary: impl Into<String>, detail: impl Into<String>) -> FriendlyDiagnostic {
    FriendlyDiagnostic {
        severity: "error".into(),
        summary: summary.into(),
        detail: detail.into(),
        extra: Default::default(),
    }
}

/// The form control a parameter gets when its template names none, as Coder's provider picks.
fn default_form_type(p: &Parameter) -> &'static str {
    match (p.kind.as_str(), p.options.is_empty()) {
        ("bool", true) => "checkbox",
        ("list(string)", true) => "tag-select",
        ("list(string)", false) => "multi-select",
        (_, false) => "radio",
        _ => "input",
    }
}

/// One parameter with the given input applied and checked.
fn render(p: &Parameter, input: Option<&String>) -> PreviewParameter {
    let default_value = NullHclString {
        value: p.default_value.clone(),
        valid: !p.required,
    };
    let value = match input {
        Some(v) => NullHclString {
            value: v.clone(),
            valid: true,
        },
        None => default_value.clone(),
    };
    let mut diagnostics = Vec::new();
    if !value.valid || (p.required && value.value.is_empty()) {
        diagnostics.push(error(
            "Required parameter not provided",
            format!("parameter {:?} requires a value", p.name),
        ));
    } else if let Err(detail) = validate(p, &value.value, None) {
        diagnostics.push(error(
            format!("Invalid value for parameter {:?}", p.name),
            detail,
        ));
    }
    let has_validation = !p.validation_regex.is_empty()
        || p.validation_min.is_some()
        || p.validation_max.is_some()
        || !p.validation_monotonic.is_empty();
    let validations = if has_validation {
        vec![PreviewParameterValidation {
            validation_error: p.validation_error.clone(),
            validation_regex: Some(p.validation_regex.clone()).filter(|s| !s.is_empty()),
            validation_min: p.validation_min.map(i64::from),
            validation_max: p.validation_max.map(i64::from),
            validation_monotonic: Some(p.validation_monotonic.clone()).filter(|s| !s.is_empty()),
        }]
    } else {
        Vec::new()
    };
    PreviewParameter {
        name: p.name.clone(),
        display_name: p.display_name.clone(),
        description: p.description.clone(),
        kind: p.kind.clone(),
        form_type: if p.form_type.is_empty() {
            default_form_type(p).to_string()
        } else {
            p.form_type.clone()
        },
        styling: PreviewParameterStyling::default(),
        mutable: p.mutable,
        default_value,
        icon: p.icon.clone(),
        options: p
            .options
            .iter()
            .map(|o| PreviewParameterOption {
                name: o.name.clone(),
                description: o.description.clone(),
                value: NullHclString {
                    value: o.value.clone(),
                    valid: true,
                },
                icon: o.icon.clone(),
            })
            .collect(),
        validations,
        required: p.required,
        order: 0,
        ephemeral: p.ephemeral,
        value,
        diagnostics,
    }
}

/// The whole form for a set of inputs (inputs naming no parameter are ignored, as Coder does).
fn form(
    params: &[Parameter],
    id: i64,
    req: &DynamicParametersRequest,
) -> DynamicParametersResponse {
    DynamicParametersResponse {
        id,
        diagnostics: Vec::new(),
        parameters: params
            .iter()
            .map(|p| render(p, req.inputs.get(&p.name)))
            .collect(),
    }
}

async fn evaluate(
    State(state): State<AppState>,
    actor: Actor,
    version: VersionParam,
    Body(req): Body<DynamicParametersRequest>,
) -> ApiResult<Json<DynamicParametersResponse>> {
    let params = imported_parameters(&state, version).await?;
    check_owner(&state, &actor, &req).await?;
    Ok(ok(form(&params, 0, &req)))
}

async fn websocket(
    State(state): State<AppState>,
    version: VersionParam,
    ws: Upgrade,
) -> ApiResult<Response> {
    let params = imported_parameters(&state, version).await?;
    let ws = ws.map_err(|e| {
        ApiError::bad_request("Failed to accept websocket.").with_detail(e.body_text())
    })?;
    Ok(ws.on_upgrade(move |socket| async move {
        let _guard = state.streams.open();
        let _ws = state
            .metrics
            .websocket("/api/v2/templateversions/{templateversion}/dynamic-parameters");
        let _ = tokio::time::timeout(SESSION_LIMIT, session(params, socket)).await;
    }))
}

fn text(v: &DynamicParametersResponse) -> Message {
    let mut json = to_go_json(v);
    json.pop();
    Message::Text(String::from_utf8(json).unwrap_or_default().into())
}

fn close(code: u16, reason: &str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }))
}

async fn session(params: Vec<Parameter>, socket: WebSocket) {
    let (mut sink, mut stream) = socket.split();
    let initial = form(&params, -1, &DynamicParametersRequest::default());
    if sink.send(text(&initial)).await.is_err() {
        return;
    }
    let mut heartbeat =
        tokio::time::interval_at(tokio::time::Instant::now() + HEARTBEAT, HEARTBEAT);
    loop {
        let msg = tokio::select! {
            _ = heartbeat.tick() => Message::Ping(Bytes::new()),
            incoming = stream.next() => match incoming {
                Some(Ok(Message::Text(t))) => match serde_json::from_str::<DynamicParametersRequest>(&t) {
                    Ok(req) => text(&form(&params, req.id, &req)),
                    Err(e) => {
                        let reason = format!("Invalid request: {e}");
                        let reason: String = reason.chars().take(120).collect();
                        let _ = sink.send(close(close_code::INVALID, &reason)).await;
                        return;
                    }
                },
                Some(Ok(Message::Pong(_))) | Some(Ok(Message::Ping(_))) => continue,
                Some(Ok(Message::Binary(_))) => {
                    let _ = sink.send(close(close_code::UNSUPPORTED, "Send requests as text messages")).await;
                    return;
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
            },
        };
        if sink.send(msg).await.is_err() {
            return;
        }
    }
}
