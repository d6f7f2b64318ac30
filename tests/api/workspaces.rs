//! Workspaces and builds: the full lifecycle, Coder's checks and their status codes, cancel,
//! concurrency, visibility, and statistics that come from builds.
//!
//! Longer than 800 lines on purpose: 8 independent tests of one resource.

use std::time::{Duration, Instant};

use codersdk::{
    Client, CreateWorkspaceRequest, Template, Workspace, WorkspaceBuild, WorkspaceBuildParameter,
};
use serde_json::json;
use uuid::Uuid;

use crate::harness::echo::{create_template, create_version, wait_import, wait_status};
use crate::harness::workspace::WorkspaceApi;
use crate::harness::{expect_error, raw_json, TestServer};

fn lifecycle_echo() -> serde_json::Value {
    json!({
        "parse": {"parameters": [
            {"name": "cpu", "type": "number", "default_value": "2", "mutable": true, "validation_min": 1, "validation_max": 8},
            {"name": "region", "type": "string", "default_value": "eu", "mutable": false,
             "options": [{"name": "EU", "value": "eu"}, {"name": "US", "value": "us"}]}
        ]},
        "start": {"state": "running", "logs": [{"output": "starting with {{param.cpu}} cores"}],
                  "resources": [{"name": "vm", "type": "echo_vm", "daily_cost": 2,
                                 "metadata": [{"key": "cpu", "value": "{{param.cpu}}"}],
                                 "agents": [{"name": "main", "operating_system": "linux", "architecture": "amd64"}]}]},
        "stop": {"state": "stopped", "resources": [{"name": "vm", "type": "echo_vm"}]},
        "delete": {"logs": [{"output": "bye"}]}
    })
}

fn params(pairs: &[(&str, &str)]) -> Vec<WorkspaceBuildParameter> {
    pairs
        .iter()
        .map(|(n, v)| WorkspaceBuildParameter {
            name: n.to_string(),
            value: v.to_string(),
        })
        .collect()
}

async fn create_ws(
    c: &Client,
    user: &str,
    template: Uuid,
    name: &str,
    p: &[(&str, &str)],
) -> Result<Workspace, codersdk::ClientError> {
    let req = CreateWorkspaceRequest {
        template_id: Some(template),
        name: name.into(),
        rich_parameter_values: params(p),
        ..Default::default()
    };
    c.try_create_workspace(user, &req).await
}

async fn setup(srv: &TestServer) -> (Client, Uuid, Template) {
    let (owner, first) = srv.owner().await;
    let (t, _) = create_template(
        &owner,
        first.organization_id,
        "lifecycle",
        &lifecycle_echo(),
    )
    .await;
    (owner, first.organization_id, t)
}

#[tokio::test]
async fn full_lifecycle() {
    let srv = TestServer::start().await;
    let (owner, org, t) = setup(&srv).await;

    let w = create_ws(&owner, "me", t.id, "dev", &[("cpu", "4")])
        .await
        .unwrap();
    assert_eq!(
        (
            w.latest_build.build_number,
            w.latest_build.transition.as_str()
        ),
        (1, "start")
    );
    assert!(matches!(
        w.latest_build.status.as_str(),
        "pending" | "starting" | "running"
    ));
    assert_eq!(
        (
            w.owner_name.as_str(),
            w.template_name.as_str(),
            w.organization_name.as_str()
        ),
        ("owner", "lifecycle", "coder")
    );
    assert_eq!(w.latest_build.initiator_name, "owner");
    assert!(!w.outdated);

    let w = owner.wait_for_status(w.id, "running").await;
    let b = &w.latest_build;
    assert_eq!(
        (b.reason.as_str(), b.daily_cost, b.deadline, b.max_deadline),
        ("initiator", 2, None, None)
    );
    assert_eq!(
        b.resources[0].metadata[0].value, "4",
        "the build got its parameters"
    );
    assert_eq!(b.resources[0].agents[0].status, "connecting");
    assert!(!w.health.healthy, "a connecting agent is not healthy yet");
    assert_eq!(w.health.failing_agents, [b.resources[0].agents[0].id]);
    let got: Vec<WorkspaceBuildParameter> = owner
        .get_json(&format!("/api/v2/workspacebuilds/{}/parameters", b.id))
        .await
        .unwrap();
    assert_eq!(
        got.iter()
            .map(|p| (p.name.as_str(), p.value.as_str()))
            .collect::<Vec<_>>(),
        [("cpu", "4"), ("region", "eu")]
    );
    let state = owner
        .send(
            reqwest::Method::GET,
            &format!("/api/v2/workspacebuilds/{}/state", b.id),
            None,
            &[],
        )
        .await
        .unwrap();
    assert_eq!(state.body, b"running");
    let logs: Vec<codersdk::ProvisionerJobLog> = owner
        .get_json(&format!("/api/v2/workspacebuilds/{}/logs", b.id))
        .await
        .unwrap();
    assert_eq!(logs[0].output, "starting with 4 cores");
    let timings: codersdk::WorkspaceBuildTimings = owner
        .get_json(&format!("/api/v2/workspacebuilds/{}/timings", b.id))
        .await
        .unwrap();
    assert!(!timings.provisioner_timings.is_empty());

    // Stop: state carried, resources of the stop transition.
    let stop = owner
        .try_create_build(w.id, &json!({"transition": "stop"}))
        .await
        .unwrap();
    assert_eq!(stop.build_number, 2);
    let w = owner.wait_for_status(w.id, "stopped").await;
    assert!(w.health.healthy);
    let state = owner
        .send(
            reqwest::Method::GET,
            &format!("/api/v2/workspacebuilds/{}/state", w.latest_build.id),
            None,
            &[],
        )
        .await
        .unwrap();
    assert_eq!(state.body, b"stopped");

    // Start with new parameters; immutable ones cannot change.
    let err = owner.try_create_build(w.id, &json!({"transition": "start", "rich_parameter_values": [{"name": "region", "value": "us"}]})).await.unwrap_err();
    expect_error(
        err,
        400,
        "Parameter \"region\" is not mutable, so it can't be updated after creating a workspace.",
    );
    let err = owner.try_create_build(w.id, &json!({"transition": "start", "rich_parameter_values": [{"name": "cpu", "value": "99"}]}),
    )
    .await
    .unwrap_err();
    expect_error(err, 400, "Unable to validate parameter \"cpu\"");
    owner.try_create_build(w.id, &json!({"transition": "start", "rich_parameter_values": [{"name": "cpu", "value": "6"}]}),
    )
    .await
    .unwrap();
    let w = owner.wait_for_status(w.id, "running").await;
    assert_eq!(w.latest_build.resources[0].metadata[0].value, "6");

    // A new active version makes the workspace outdated until it builds with it.
    let mut next = lifecycle_echo();
    next["start"]["state"] = json!("running-v2");
    let v2 = wait_import(
        &owner,
        create_version(&owner, org, &next, Some(t.id)).await.id,
    )
    .await;
    let (status, _) = raw_json(
        &owner,
        "PATCH",
        &format!("/api/v2/templates/{}/versions", t.id),
        Some(&format!(r#"{{"id":"{}"}}"#, v2.id)),
    )
    .await;
    assert_eq!(status, 200);
    let w: Workspace = owner
        .get_json(&format!("/api/v2/workspaces/{}", w.id))
        .await
        .unwrap();
    assert!(w.outdated);
    owner
        .try_create_build(w.id, &json!({"transition": "stop"}))
        .await
        .unwrap();
    owner.wait_for_status(w.id, "stopped").await;
    let b = owner
        .try_create_build(
            w.id,
            &json!({"transition": "start", "template_version_id": v2.id}),
        )
        .await
        .unwrap();
    assert_eq!(b.template_version_id, v2.id);
    let w = owner.wait_for_status(w.id, "running").await;
    assert!(!w.outdated);
    assert_eq!(
        w.latest_build.resources[0].metadata[0].value, "6",
        "parameters carry over to the new version"
    );

    // Builds, newest first, with pagination; one by number.
    let builds: Vec<WorkspaceBuild> = owner
        .get_json(&format!("/api/v2/workspaces/{}/builds", w.id))
        .await
        .unwrap();
    assert_eq!(
        builds.iter().map(|b| b.build_number).collect::<Vec<_>>(),
        [5, 4, 3, 2, 1]
    );
    let page: Vec<WorkspaceBuild> = owner
        .get_json(&format!(
            "/api/v2/workspaces/{}/builds?limit=2&offset=1",
            w.id
        ))
        .await
        .unwrap();
    assert_eq!(
        page.iter().map(|b| b.build_number).collect::<Vec<_>>(),
        [4, 3]
    );
    let after: Vec<WorkspaceBuild> = owner
        .get_json(&format!(
            "/api/v2/workspaces/{}/builds?after_id={}",
            w.id, builds[1].id
        ))
        .await
        .unwrap();
    assert_eq!(
        after.iter().map(|b| b.build_number).collect::<Vec<_>>(),
        [3, 2, 1]
    );
    let third: WorkspaceBuild = owner
        .get_json("/api/v2/users/owner/workspace/dev/builds/3")
        .await
        .unwrap();
    assert_eq!(third.id, builds[2].id);
    let (status, _) = raw_json(
        &owner,
        "GET",
        "/api/v2/users/owner/workspace/dev/builds/77",
        None,
    )
    .await;
    assert_eq!(status, 404);

    // The template learned from real builds.
    let t: Template = owner.template(t.id).await.unwrap();
    assert_eq!(t.active_user_count, 1);
    assert!(t.build_time_stats["start"].p50.is_some() && t.build_time_stats["stop"].p50.is_some());
    assert!(t.build_time_stats["delete"].p50.is_none());
    let (status, body) = raw_json(
        &owner,
        "DELETE",
        &format!("/api/v2/templates/{}", t.id),
        None,
    )
    .await;
    assert_eq!(
        (status, body["message"].as_str()),
        (
            412,
            Some("All workspaces must be deleted before a template can be removed.")
        )
    );

    // Delete marks the workspace deleted when the build succeeds.
    owner
        .try_create_build(w.id, &json!({"transition": "delete"}))
        .await
        .unwrap();
    let w = owner.wait_for_status(w.id, "deleted").await;
    let (status, body) =
        raw_json(&owner, "GET", &format!("/api/v2/workspaces/{}", w.id), None).await;
    assert_eq!(status, 410, "{body}");
    let (status, _) = raw_json(&owner, "GET", "/api/v2/users/me/workspace/dev", None).await;
    assert_eq!(status, 404);
    let (status, _) = raw_json(
        &owner,
        "GET",
        "/api/v2/users/me/workspace/dev?include_deleted=true",
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        owner
            .get_json::<codersdk::WorkspacesResponse>("/api/v2/workspaces")
            .await
            .unwrap()
            .count,
        0
    );
    // The name is free again, and the template can go.
    create_ws(&owner, "me", t.id, "dev", &[]).await.unwrap();
}

#[tokio::test]
async fn creation_errors() {
    let srv = TestServer::start().await;
    let (owner, org, t) = setup(&srv).await;
    let path = "/api/v2/users/me/workspaces";
    let cases = [
        (
            json!({"name": "x"}),
            400,
            "You must specify either a template_id or a template_version_id.",
        ),
        (
            json!({"name": "x", "template_id": t.id, "template_version_id": t.active_version_id}),
            400,
            "You cannot specify both a template_id and a template_version_id.",
        ),
        (json!({"name": "x", "template_id": Uuid::new_v4()}), 400, ""),
        (
            json!({"name": "bad name!", "template_id": t.id}),
            400,
            "Validation failed.",
        ),
        (
            json!({"name": "x", "template_id": t.id, "autostart_schedule": "nope"}),
            400,
            "Invalid Autostart Schedule.",
        ),
        (
            json!({"name": "x", "template_id": t.id, "ttl_ms": 1000}),
            400,
            "Invalid Workspace Time to Shutdown.",
        ),
        (
            json!({"name": "x", "template_id": t.id, "rich_parameter_values": [{"name": "cpu", "value": "0"}]}),
            400,
            "Unable to validate parameter \"cpu\"",
        ),
        (
            json!({"name": "x", "template_id": t.id, "rich_parameter_values": [{"name": "gpu", "value": "1"}]}),
            400,
            "Parameter \"gpu\" is not present in the template.",
        ),
        (
            json!({"name": "x", "template_id": t.id, "automatic_updates": "sometimes"}),
            400,
            "Validation failed.",
        ),
    ];
    for (body, status, message) in cases {
        let (s, b) = raw_json(&owner, "POST", path, Some(&body.to_string())).await;
        assert_eq!(s, status, "{body} → {b}");
        if !message.is_empty() {
            assert_eq!(b["message"], message, "{body}");
        }
    }
    create_ws(&owner, "me", t.id, "Dev", &[]).await.unwrap();
    let err = create_ws(&owner, "me", t.id, "dev", &[]).await.unwrap_err();
    let resp = expect_error(err, 409, "Workspace \"dev\" already exists.");
    assert_eq!(resp.validations[0].field, "name");
    let err = create_ws(&owner, "nobody-at-all", t.id, "x", &[])
        .await
        .unwrap_err();
    assert_eq!(err.status().unwrap().as_u16(), 400);

    // A required parameter without a default must be given.
    let echo =
        json!({"parse": {"parameters": [{"name": "must", "type": "string", "required": true}]}});
    let (req_t, _) = create_template(&owner, org, "needs", &echo).await;
    let err = create_ws(&owner, "me", req_t.id, "x", &[])
        .await
        .unwrap_err();
    expect_error(err, 400, "Unable to validate parameter \"must\"");
    create_ws(&owner, "me", req_t.id, "x", &[("must", "yes")])
        .await
        .unwrap();

    // Deprecated templates take no new workspaces.
    let (status, _) = raw_json(
        &owner,
        "PATCH",
        &format!("/api/v2/templates/{}", req_t.id),
        Some(r#"{"deprecation_message":"use another"}"#),
    )
    .await;
    assert_eq!(status, 200);
    let err = create_ws(&owner, "me", req_t.id, "y", &[("must", "yes")])
        .await
        .unwrap_err();
    expect_error(
        err,
        400,
        "Template \"needs\" has been deprecated, and cannot be used to create a new workspace.",
    );

    // A version still importing cannot be built (406); a failed one cannot either (400).
    let slow = create_version(&owner, org, &json!({"parse": {"block": true}}), Some(t.id)).await;
    wait_status(&owner, slow.id, "running").await;
    let ws = create_ws(&owner, "me", t.id, "third", &[]).await.unwrap();
    owner.wait_for_status(ws.id, "running").await;
    let err = owner
        .try_create_build(
            ws.id,
            &json!({"transition": "start", "template_version_id": slow.id}),
        )
        .await
        .unwrap_err();
    expect_error(
        err,
        406,
        "The provided template version is running. Wait for it to complete importing!",
    );
    let (status, _) = raw_json(
        &owner,
        "PATCH",
        &format!("/api/v2/templateversions/{}/cancel", slow.id),
        None,
    )
    .await;
    assert_eq!(status, 200);
    wait_status(&owner, slow.id, "canceled").await;
    let err = owner
        .try_create_build(
            ws.id,
            &json!({"transition": "start", "template_version_id": slow.id}),
        )
        .await
        .unwrap_err();
    assert_eq!(err.status().unwrap().as_u16(), 400);
    let err = owner
        .try_create_build(
            ws.id,
            &json!({"transition": "start", "template_version_id": req_t.active_version_id}),
        )
        .await
        .unwrap_err();
    expect_error(err, 400, "template version doesn't match template");
}

#[tokio::test]
async fn build_request_checks_in_coders_order() {
    let srv = TestServer::start().await;
    let (owner, first) = srv.owner().await;
    // A start that takes a while, so the last case meets an active build.
    let mut slow = lifecycle_echo();
    slow["start"]["duration_ms"] = json!(3000);
    let (t, _) = create_template(&owner, first.organization_id, "slow-start", &slow).await;
    let (member, _) = srv.member(&owner, "mel").await;
    let w = create_ws(&member, "me", t.id, "mine", &[]).await.unwrap();
    let cases = [
        (
            json!({"transition": "start", "orphan": true}),
            400,
            "Orphan is only permitted when deleting a workspace.",
        ),
        (
            json!({"transition": "delete", "orphan": true, "state": "c3RhdGU="}),
            400,
            "ProvisionerState cannot be set alongside Orphan since state intent is unclear.",
        ),
        (json!({"transition": "explode"}), 400, "Validation failed."),
        (json!({}), 400, "Validation failed."),
        (
            json!({"transition": "delete", "orphan": true}),
            403,
            "Only template managers may provide custom state",
        ),
        (
            json!({"transition": "start", "log_level": "debug"}),
            400,
            "Workspace builds with a custom log level are restricted to administrators only.",
        ),
        (
            json!({"transition": "stop"}),
            409,
            "A workspace build is already active.",
        ),
    ];
    for (body, status, message) in cases {
        let (s, resp) = raw_json(
            &member,
            "POST",
            &format!("/api/v2/workspaces/{}/builds", w.id),
            Some(&body.to_string()),
        )
        .await;
        assert_eq!(
            (s, resp["message"].as_str().unwrap_or("")),
            (status, message),
            "{body}"
        );
    }
    member.wait_for_status(w.id, "running").await;
    // An owner may orphan-delete: the workspace goes, the state is dropped.
    let b = owner
        .try_create_build(w.id, &json!({"transition": "delete", "orphan": true}))
        .await
        .unwrap();
    assert_eq!(b.transition, "delete");
    owner.wait_for_status(w.id, "deleted").await;
    let state = owner
        .send(
            reqwest::Method::GET,
            &format!("/api/v2/workspacebuilds/{}/state", b.id),
            None,
            &[],
        )
        .await
        .unwrap();
    assert!(state.body.is_empty(), "orphan delete starts from no state");
}

#[tokio::test]
async fn concurrent_builds_exactly_one_wins() {
    let srv = TestServer::start().await;
    let (owner, first) = srv.owner().await;
    // The stop blocks until canceled, so the winner is still active when the others arrive
    // however slowly (a loaded machine could otherwise finish one stop before the next
    // request, and a second stop after a finished one is allowed).
    let mut echo = lifecycle_echo();
    echo["stop"]["block"] = json!(true);
    let (t, _) = create_template(&owner, first.organization_id, "race", &echo).await;
    let w = create_ws(&owner, "me", t.id, "race", &[]).await.unwrap();
    owner.wait_for_status(w.id, "running").await;
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let c = owner.clone();
            tokio::spawn(async move {
                c.try_create_build(w.id, &json!({"transition": "stop"}))
                    .await
            })
        })
        .collect();
    let mut wins = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => wins += 1,
            Err(e) => {
                expect_error(e, 409, "A workspace build is already active.");
            }
        }
    }
    assert_eq!(wins, 1);
    let builds: Vec<WorkspaceBuild> = owner
        .get_json(&format!("/api/v2/workspaces/{}/builds", w.id))
        .await
        .unwrap();
    assert_eq!(builds.len(), 2, "exactly one stop build exists");
    let (status, body) = raw_json(
        &owner,
        "PATCH",
        &format!("/api/v2/workspacebuilds/{}/cancel", builds[0].id),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    srv.stop().await;
}

#[tokio::test]
async fn cancel_pending_and_running_builds() {
    let srv = TestServer::start_with(|o| o.provisioner_daemons = 0).await;
    let (owner, first) = srv.owner().await;
    // No daemons: import the template on a second server sharing the database.
    let helper = coderd::server::start(
        crate::harness::test_options(&srv.db_url),
        Default::default(),
    )
    .await
    .unwrap();
    let via = crate::harness::checked_client(&format!("http://{}", helper.local_addr()))
        .with_token(owner.token().unwrap());
    let (t, _) = create_template(
        &via,
        first.organization_id,
        "slow",
        &json!({"start": {"block": true}}),
    )
    .await;
    helper.shutdown().await;
    let (member, _) = srv.member(&owner, "mia").await;
    let w = create_ws(&member, "me", t.id, "pending", &[])
        .await
        .unwrap();
    assert_eq!(w.latest_build.status, "pending");
    let path = format!("/api/v2/workspacebuilds/{}/cancel", w.latest_build.id);
    // The template does not let users cancel; owners may.
    let (status, body) = raw_json(&member, "PATCH", &path, None).await;
    assert_eq!(
        (status, body["message"].as_str()),
        (
            403,
            Some("User is not allowed to cancel workspace builds. Owner role is required.")
        )
    );
    let (status, _) = raw_json(
        &owner,
        "PATCH",
        &format!("{path}?expect_status=running"),
        None,
    )
    .await;
    assert_eq!(status, 412);
    let (status, _) = raw_json(&owner, "PATCH", &path, None).await;
    assert_eq!(status, 200);
    let w: Workspace = member
        .get_json(&format!("/api/v2/workspaces/{}", w.id))
        .await
        .unwrap();
    assert_eq!(w.latest_build.status, "canceled");
    srv.stop().await;

    // With daemons, a running build is canceled by its daemon within seconds.
    let srv = TestServer::start().await;
    let (owner, first) = srv.owner().await;
    let (t, _) = create_template(
        &owner,
        first.organization_id,
        "slow",
        &json!({"start": {"block": true}}),
    )
    .await;
    let (status, _) = raw_json(
        &owner,
        "PATCH",
        &format!("/api/v2/templates/{}", t.id),
        Some(r#"{"allow_user_cancel_workspace_jobs":true}"#),
    )
    .await;
    assert_eq!(status, 200);
    let (member, _) = srv.member(&owner, "mia").await;
    let w = create_ws(&member, "me", t.id, "running", &[])
        .await
        .unwrap();
    let w = member.wait_for_status(w.id, "starting").await;
    assert!(w.template_allow_user_cancel_workspace_jobs);
    let (status, _) = raw_json(
        &member,
        "PATCH",
        &format!(
            "/api/v2/workspacebuilds/{}/cancel?expect_status=running",
            w.latest_build.id
        ),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let started = Instant::now();
    member.wait_for_status(w.id, "canceled").await;
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn visibility_404_versus_403() {
    let srv = TestServer::start().await;
    let (owner, first, t) = {
        let (owner, org, t) = setup(&srv).await;
        (owner, org, t)
    };
    let (alice, alice_user) = srv.member(&owner, "alice").await;
    let (bob, _) = srv.member(&owner, "bob").await;
    let (tadmin, tadmin_user) = srv.member(&owner, "tina").await;
    let (status, _) = raw_json(
        &owner,
        "PUT",
        &format!("/api/v2/users/{}/roles", tadmin_user.id),
        Some(r#"{"roles":["template-admin"]}"#),
    )
    .await;
    assert_eq!(status, 200);
    let w = create_ws(&alice, "me", t.id, "hers", &[]).await.unwrap();
    alice.wait_for_status(w.id, "running").await;

    // Another member: it does not exist for them.
    let (status, _) = raw_json(&bob, "GET", &format!("/api/v2/workspaces/{}", w.id), None).await;
    assert_eq!(status, 404);
    let (status, _) = raw_json(
        &bob,
        "POST",
        &format!("/api/v2/workspaces/{}/builds", w.id),
        Some(r#"{"transition":"stop"}"#),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(
        bob.get_json::<codersdk::WorkspacesResponse>("/api/v2/workspaces")
            .await
            .unwrap()
            .count,
        0
    );
    // A template admin reads every workspace but may not stop someone else's.
    let (status, _) = raw_json(
        &tadmin,
        "GET",
        &format!("/api/v2/workspaces/{}", w.id),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = raw_json(
        &tadmin,
        "POST",
        &format!("/api/v2/workspaces/{}/builds", w.id),
        Some(r#"{"transition":"stop"}"#),
    )
    .await;
    assert_eq!(
        (status, body["message"].as_str()),
        (
            403,
            Some("You do not have permission to stop this workspace.")
        )
    );
    assert_eq!(
        tadmin
            .get_json::<codersdk::WorkspacesResponse>("/api/v2/workspaces")
            .await
            .unwrap()
            .count,
        1
    );
    // The owner role can do anything, including create for others.
    let for_bob = create_ws(&owner, "bob", t.id, "made-for-bob", &[])
        .await
        .unwrap();
    assert_eq!(for_bob.owner_name, "bob");
    let err = create_ws(&bob, "alice", t.id, "sneaky", &[])
        .await
        .unwrap_err();
    // Bob may not read alice: she does not exist for him.
    expect_error(err, 400, "\"user\" must be an existing uuid or username.");
    // The org-scoped route creates too.
    let path = format!("/api/v2/organizations/{first}/members/alice/workspaces");
    let (status, _) = raw_json(
        &alice,
        "POST",
        &path,
        Some(&json!({"name": "second", "template_id": t.id}).to_string()),
    )
    .await;
    assert_eq!(status, 201);
    // A template the member cannot use.
    let (status, _) = raw_json(
        &owner,
        "PATCH",
        &format!("/api/v2/templates/{}", t.id),
        Some(r#"{"disable_everyone_group_access":true}"#),
    )
    .await;
    assert_eq!(status, 200);
    let err = create_ws(&bob, "me", t.id, "nope", &[]).await.unwrap_err();
    // As upstream, a template the member may not read does not exist for them.
    expect_error(
        err,
        400,
        &format!("Template {:?} doesn't exist.", t.id.to_string()),
    );
    // Users with workspaces cannot be deleted.
    let (status, _) = raw_json(
        &owner,
        "DELETE",
        &format!("/api/v2/users/{}", alice_user.id),
        None,
    )
    .await;
    assert_eq!(status, 417);
}

#[tokio::test]
async fn put_state_replaces_the_state() {
    let srv = TestServer::start().await;
    let (owner, _, t) = setup(&srv).await;
    let (member, _) = srv.member(&owner, "sid").await;
    let w = create_ws(&member, "me", t.id, "s", &[]).await.unwrap();
    let w = member.wait_for_status(w.id, "running").await;
    let path = format!("/api/v2/workspacebuilds/{}/state", w.latest_build.id);
    // Only template managers see or change state.
    let (status, _) = raw_json(&member, "GET", &path, None).await;
    assert_eq!(status, 404);
    let (status, _) = raw_json(&owner, "PUT", &path, Some(r#"{"state":"bmV3LXN0YXRl"}"#)).await;
    assert_eq!(status, 204);
    let raw = owner
        .send(reqwest::Method::GET, &path, None, &[])
        .await
        .unwrap();
    assert_eq!(raw.body, b"new-state");
    let (status, _) = raw_json(&owner, "PUT", &path, Some(r#"{"state":[104,105]}"#)).await;
    assert_eq!(status, 204);
    assert_eq!(
        owner
            .send(reqwest::Method::GET, &path, None, &[])
            .await
            .unwrap()
            .body,
        b"hi"
    );
}

/// Presets from the import: listed by the version (Go's untagged keys), and a workspace made
/// with one gets its values over those asked for, the build recording the preset.
#[tokio::test]
async fn presets_give_builds_their_values() {
    let srv = TestServer::start().await;
    let (owner, first) = srv.owner().await;
    let org = first.organization_id;
    let mut echo = lifecycle_echo();
    echo["parse"]["presets"] = json!([
        {"name": "Small", "description": "For reading", "default": true,
         "parameters": [{"name": "cpu", "value": "1"}]},
        {"name": "Big", "icon": "/emojis/1f418.png",
         "parameters": [{"name": "cpu", "value": "8"}, {"name": "region", "value": "us"}]}
    ]);
    let (template, version) = create_template(&owner, org, "presets", &echo).await;
    let (status, presets) = raw_json(
        &owner,
        "GET",
        &format!("/api/v2/templateversions/{}/presets", version.id),
        None,
    )
    .await;
    assert_eq!(status, 200, "{presets}");
    assert_eq!(presets[0]["Name"], "Small");
    assert_eq!(presets[0]["Default"], true);
    assert_eq!(presets[0]["Description"], "For reading");
    assert_eq!(presets[0]["DesiredPrebuildInstances"], json!(null));
    assert_eq!(presets[1]["Icon"], "/emojis/1f418.png");
    assert_eq!(
        presets[1]["Parameters"],
        json!([{"Name": "cpu", "Value": "8"}, {"Name": "region", "Value": "us"}])
    );
    let big = presets[1]["ID"].as_str().unwrap().to_string();

    let ws = owner
        .create_workspace_with(
            template.id,
            "big",
            json!({"template_version_preset_id": big,
               "rich_parameter_values": [{"name": "cpu", "value": "4"}]}),
        )
        .await;
    assert_eq!(
        ws.latest_build
            .template_version_preset_id
            .map(|p| p.to_string()),
        Some(big.clone())
    );
    let (status, params) = raw_json(
        &owner,
        "GET",
        &format!("/api/v2/workspacebuilds/{}/parameters", ws.latest_build.id),
        None,
    )
    .await;
    assert_eq!(status, 200, "{params}");
    let value = |name: &str| {
        params
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .map(|p| p["value"].clone())
    };
    assert_eq!(
        (value("cpu"), value("region")),
        (Some(json!("8")), Some(json!("us")))
    );

    // A preset of another version is refused.
    let other = create_version(&owner, org, &echo, Some(template.id)).await;
    let other = wait_import(&owner, other.id).await;
    let (_, other_presets) = raw_json(
        &owner,
        "GET",
        &format!("/api/v2/templateversions/{}/presets", other.id),
        None,
    )
    .await;
    let (status, body) = raw_json(
        &owner,
        "POST",
        "/api/v2/users/me/workspaces",
        Some(
            &json!({"template_id": template.id, "name": "wrong",
                    "template_version_preset_id": other_presets[0]["ID"]})
            .to_string(),
        ),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    srv.stop().await;
}
