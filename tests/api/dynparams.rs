//! Dynamic parameters: `POST /templateversions/{id}/dynamic-parameters/evaluate` and the
//! `GET /templateversions/{id}/dynamic-parameters` WebSocket.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

use crate::harness::echo::{create_version, wait_import};
use crate::harness::{raw_json, schema, ws_request, TestServer};

fn form_echo() -> Value {
    json!({
        "parse": {"parameters": [
            {"name": "cpu", "display_name": "CPU", "type": "number", "default_value": "2",
             "mutable": true, "validation_min": 1, "validation_max": 8,
             "validation_error": "Pick 1 to 8 cores."},
            {"name": "region", "type": "string", "default_value": "eu",
             "options": [{"name": "EU", "value": "eu"}, {"name": "US", "value": "us"}]},
            {"name": "repo", "type": "string", "required": true},
            {"name": "gpu", "type": "bool", "default_value": "false"}
        ]}
    })
}

fn param<'a>(form: &'a Value, name: &str) -> &'a Value {
    form["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no parameter {name} in {form}"))
}

/// Checks a response against the reference's `codersdk.DynamicParametersResponse`.
fn conforms(form: &Value) {
    let problems = schema::spec().check_value(
        &json!({"$ref": "#/definitions/codersdk.DynamicParametersResponse"}),
        form,
    );
    assert!(problems.is_empty(), "{problems:?} in {form}");
}

#[tokio::test]
async fn evaluate_applies_inputs_and_validates() {
    let srv = TestServer::start().await;
    let (owner, first) = srv.owner().await;
    let v = create_version(&owner, first.organization_id, &form_echo(), None).await;
    wait_import(&owner, v.id).await;
    let path = format!(
        "/api/v2/templateversions/{}/dynamic-parameters/evaluate",
        v.id
    );

    // No input: defaults, and the required parameter without a value is flagged.
    let (status, form) = raw_json(&owner, "POST", &path, Some(r#"{"id": 7}"#)).await;
    assert_eq!(status, 200, "{form}");
    conforms(&form);
    assert_eq!(form["id"], 0, "evaluate always answers id 0, as Coder does");
    let names: Vec<&str> = form["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["cpu", "region", "repo", "gpu"],
        "the template's order"
    );
    let cpu = param(&form, "cpu");
    assert_eq!(cpu["value"], json!({"value": "2", "valid": true}));
    assert_eq!(cpu["form_type"], "input");
    assert_eq!(cpu["validations"][0]["validation_min"], 1);
    assert_eq!(cpu["validations"][0]["validation_max"], 8);
    assert_eq!(cpu["diagnostics"], json!([]));
    assert_eq!(param(&form, "region")["form_type"], "radio");
    assert_eq!(param(&form, "region")["options"][1]["value"]["value"], "us");
    assert_eq!(param(&form, "gpu")["form_type"], "checkbox");
    let repo = param(&form, "repo");
    assert_eq!(repo["required"], true);
    assert_eq!(repo["value"]["valid"], false);
    assert_eq!(repo["diagnostics"][0]["severity"], "error");

    // Inputs replace defaults; bad ones get diagnostics, good ones none; unknown names are
    // ignored.
    let body =
        json!({"inputs": {"cpu": "9", "region": "mars", "repo": "coder/coder", "nope": "x"}});
    let (status, form) = raw_json(&owner, "POST", &path, Some(&body.to_string())).await;
    assert_eq!(status, 200, "{form}");
    conforms(&form);
    let cpu = param(&form, "cpu");
    assert_eq!(cpu["value"]["value"], "9");
    assert_eq!(cpu["diagnostics"][0]["severity"], "error");
    assert!(
        cpu["diagnostics"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("Pick 1 to 8 cores."),
        "{cpu}"
    );
    assert_eq!(
        param(&form, "region")["diagnostics"][0]["severity"],
        "error"
    );
    assert_eq!(param(&form, "repo")["diagnostics"], json!([]));
    assert_eq!(
        param(&form, "repo")["value"],
        json!({"value": "coder/coder", "valid": true})
    );
    let body = json!({"inputs": {"cpu": "4", "region": "us", "repo": "r"}});
    let (_, form) = raw_json(&owner, "POST", &path, Some(&body.to_string())).await;
    for p in form["parameters"].as_array().unwrap() {
        assert_eq!(p["diagnostics"], json!([]), "{p}");
    }

    // Bad input is refused with Coder's errors.
    let (status, body) = raw_json(&owner, "POST", &path, Some(r#"{"inputs": {"cpu": 4}}"#)).await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = raw_json(&owner, "POST", &path, Some("{not json")).await;
    assert_eq!(status, 400);
    let unknown = format!(
        "/api/v2/templateversions/{}/dynamic-parameters/evaluate",
        uuid::Uuid::new_v4()
    );
    let (status, _) = raw_json(&owner, "POST", &unknown, Some("{}")).await;
    assert_eq!(status, 404);
    let (status, body) = raw_json(
        &owner,
        "POST",
        "/api/v2/templateversions/not-a-uuid/dynamic-parameters/evaluate",
        Some("{}"),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let stranger = json!({"owner_id": uuid::Uuid::new_v4()}).to_string();
    let (status, body) = raw_json(&owner, "POST", &path, Some(&stranger)).await;
    assert!(matches!(status, 400 | 404), "{status} {body}");
    let (status, _) = raw_json(&srv.client, "POST", &path, Some("{}")).await;
    assert_eq!(status, 401);
    srv.stop().await;
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The next text message, as JSON (pings skipped), within 10 s.
async fn next_json(socket: &mut Socket) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("an answer within 10 s")
            .expect("the socket is open")
            .unwrap();
        match msg {
            Message::Text(t) => return serde_json::from_str(&t).unwrap(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[tokio::test]
async fn websocket_answers_each_request_by_id() {
    let srv = TestServer::start().await;
    let (owner, first) = srv.owner().await;
    let v = create_version(&owner, first.organization_id, &form_echo(), None).await;
    wait_import(&owner, v.id).await;
    let req = ws_request(
        &srv.url,
        &format!("/api/v2/templateversions/{}/dynamic-parameters", v.id),
        owner.token().unwrap(),
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    // The initial form, computed without input.
    let initial = next_json(&mut socket).await;
    conforms(&initial);
    assert_eq!(initial["id"], -1);
    assert_eq!(param(&initial, "cpu")["value"]["value"], "2");

    for (id, cpu, errors) in [(1, "9", 1), (2, "3", 0)] {
        let req = json!({"id": id, "inputs": {"cpu": cpu, "repo": "r"}});
        socket
            .send(Message::Text(req.to_string().into()))
            .await
            .unwrap();
        let answer = next_json(&mut socket).await;
        conforms(&answer);
        assert_eq!(answer["id"], id);
        assert_eq!(param(&answer, "cpu")["value"]["value"], cpu);
        assert_eq!(
            param(&answer, "cpu")["diagnostics"]
                .as_array()
                .unwrap()
                .len(),
            errors,
            "{answer}"
        );
    }

    // A message that is not a request ends the session with a reason.
    socket.send(Message::Text("{nope".into())).await.unwrap();
    let close = loop {
        match socket.next().await {
            Some(Ok(Message::Close(frame))) => break frame,
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    let frame = close.expect("a close frame with a code");
    assert_eq!(frame.code, CloseCode::Invalid);
    assert!(
        frame.reason.starts_with("Invalid request"),
        "{}",
        frame.reason
    );

    // Without an upgrade the endpoint says so instead of hanging.
    let (status, body) = raw_json(
        &owner,
        "GET",
        &format!("/api/v2/templateversions/{}/dynamic-parameters", v.id),
        None,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    srv.stop().await;
}
