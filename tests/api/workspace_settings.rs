//! Workspace settings and search through the API: autostart schedules, TTLs and build
//! deadlines, deadline extension, automatic updates, dormancy, favorites, usage and the activity
//! bump, renames, sharing (ACLs), resolve-autostart, timings, and `GET /workspaces?q=`.
//!
//! The expected answers are Coder's (coderd/workspaces.go, coderd/searchquery/search.go), also
//! where this server answers differently today.
//!
//! Longer than 800 lines on purpose: 20 independent tests, one per setting or search rule.

use std::time::Duration;

use chrono::{DateTime, Datelike, Timelike, Utc, Weekday};
use codersdk::{Client, Workspace, WorkspaceAcl, WorkspaceBuildTimings, WorkspacesResponse};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::harness::echo::{create_template, create_version, wait_import};
use crate::harness::workspace::WorkspaceApi;
use crate::harness::{raw_json, TestServer};

const HOUR_MS: i64 = 3_600_000;

// -- archives ---------------------------------------------------------------------------------

/// Builds succeed with no resources.
fn plain_echo() -> Value {
    json!({})
}

/// Start builds have one resource with one agent (which never connects).
fn agent_echo() -> Value {
    json!({"start": {"resources": [{"name": "dev", "type": "echo_machine",
        "agents": [{"name": "main", "operating_system": "linux", "architecture": "amd64"}]}]}})
}

/// An agent, and a mutable "cpu" number parameter defaulting to 2.
fn cpu_echo() -> Value {
    json!({
        "parse": {"parameters": [{"name": "cpu", "display_name": "CPU", "type": "number",
            "default_value": "2", "mutable": true, "validation_min": 1, "validation_max": 8,
            "options": []}]},
        "start": agent_echo()["start"].clone()
    })
}

/// A required "region" parameter without a default.
fn required_param_echo() -> Value {
    json!({"parse": {"parameters": [{"name": "region", "type": "string", "required": true,
        "default_value": "", "mutable": true, "options": []}]}})
}

// -- helpers ----------------------------------------------------------------------------------

/// A server, its owner's client and the default organization.
async fn setup() -> (TestServer, Client, Uuid) {
    let srv = TestServer::start().await;
    let (owner, first) = srv.owner().await;
    (srv, owner, first.organization_id)
}

async fn template(client: &Client, org: Uuid, name: &str, echo: &Value) -> Uuid {
    create_template(client, org, name, echo).await.0.id
}

/// PATCH /templates/{id} with `body`; the template must change (200).
async fn patch_template(client: &Client, id: Uuid, body: Value) {
    let (status, resp) = raw_json(
        client,
        "PATCH",
        &format!("/api/v2/templates/{id}"),
        Some(&body.to_string()),
    )
    .await;
    assert_eq!(status, 200, "PATCH template {body}: {resp}");
}

/// A new version of `template` from `echo`, imported and made active.
async fn promote(client: &Client, org: Uuid, template: Uuid, echo: &Value) -> Uuid {
    let v = create_version(client, org, echo, Some(template)).await;
    let v = wait_import(client, v.id).await;
    assert_eq!(v.job.status, "succeeded", "{:?}", v.job);
    let (status, body) = raw_json(
        client,
        "PATCH",
        &format!("/api/v2/templates/{template}/versions"),
        Some(&json!({"id": v.id}).to_string()),
    )
    .await;
    assert_eq!(status, 200, "promoting the version: {body}");
    v.id
}

async fn stop(client: &Client, id: Uuid) -> Workspace {
    let (status, body) = client.post_build(id, "stop").await;
    assert_eq!(status, 201, "stopping: {body}");
    client.wait_for_status(id, "stopped").await
}

/// A request with a JSON body to `/api/v2/workspaces/{id}/{what}`.
async fn ws_call(client: &Client, method: &str, id: Uuid, what: &str, body: Value) -> (u16, Value) {
    raw_json(
        client,
        method,
        &format!("/api/v2/workspaces/{id}/{what}"),
        Some(&body.to_string()),
    )
    .await
}

/// (field, detail) of each validation in an error body.
fn validations(body: &Value) -> Vec<(String, String)> {
    body["validations"]
        .as_array()
        .map(|v| {
            v.iter()
                .map(|e| {
                    (
                        e["field"].as_str().unwrap_or_default().to_string(),
                        e["detail"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn fields(body: &Value) -> Vec<String> {
    validations(body).into_iter().map(|(f, _)| f).collect()
}

/// Seconds between two times, absolute.
fn apart(a: DateTime<Utc>, b: DateTime<Utc>) -> i64 {
    (a - b).num_seconds().abs()
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// `t` without its fraction of a second.
fn whole_seconds(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(t.timestamp(), 0).unwrap()
}

/// Records a mismatch instead of stopping at the first, so one run names every divergence.
fn check<T: PartialEq + std::fmt::Debug>(problems: &mut Vec<String>, what: &str, got: T, want: T) {
    if got != want {
        problems.push(format!("{what}: got {got:?}, want {want:?}"));
    }
}

fn assert_no_problems(problems: &[String]) {
    assert!(
        problems.is_empty(),
        "{} mismatch(es):\n  {}",
        problems.len(),
        problems.join("\n  ")
    );
}

// -- autostart --------------------------------------------------------------------------------

#[tokio::test]
async fn autostart_schedule_set_validated_and_cleared() {
    let (_srv, owner, org) = setup().await;
    let t = template(&owner, org, "plain", &plain_echo()).await;
    let w = owner.running_workspace(t, "sched").await;
    assert_eq!(w.autostart_schedule, None);
    assert_eq!(w.next_start_at, None);

    let schedule = "CRON_TZ=Europe/Berlin 30 9 * * 1-5";
    let (status, body) = ws_call(
        &owner,
        "PUT",
        w.id,
        "autostart",
        json!({"schedule": schedule}),
    )
    .await;
    assert_eq!(status, 204, "{body}");
    let now = Utc::now();
    let w = owner.workspace(w.id).await;
    assert_eq!(w.autostart_schedule.as_deref(), Some(schedule));
    let next = w
        .next_start_at
        .expect("next_start_at is set with a schedule");
    assert!(next > now, "next start {next} is not in the future");
    assert!(
        next < now + chrono::Duration::days(4),
        "next start {next} is too far away"
    );
    // 09:30 in Berlin is 07:30 or 08:30 UTC (summer / winter), on a weekday.
    assert_eq!(next.minute(), 30, "{next}");
    assert!(matches!(next.hour(), 7 | 8), "{next}");
    assert!(
        !matches!(next.weekday(), Weekday::Sat | Weekday::Sun),
        "{next} is a weekend"
    );

    for bad in ["30 9 1 * *", "bad", "CRON_TZ=Mars/Olympus 30 9 * * *"] {
        let (status, body) =
            ws_call(&owner, "PUT", w.id, "autostart", json!({"schedule": bad})).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(
            body["message"], "Invalid autostart schedule.",
            "{bad}: {body}"
        );
        let v = validations(&body);
        assert_eq!(v.len(), 1, "{bad}: {body}");
        assert_eq!(v[0].0, "schedule", "{bad}: {body}");
        assert!(!v[0].1.is_empty(), "{bad}: {body}");
    }
    // A refused schedule leaves the old one in place.
    assert_eq!(
        owner.workspace(w.id).await.autostart_schedule.as_deref(),
        Some(schedule)
    );

    let (status, body) = ws_call(&owner, "PUT", w.id, "autostart", json!({"schedule": ""})).await;
    assert_eq!(status, 204, "{body}");
    let w = owner.workspace(w.id).await;
    assert_eq!(w.autostart_schedule, None);
    assert_eq!(w.next_start_at, None);
}

#[tokio::test]
async fn autostart_refused_when_the_template_disallows_it() {
    let (_srv, owner, org) = setup().await;
    let t = template(&owner, org, "plain", &plain_echo()).await;
    let w = owner.running_workspace(t, "sched").await;
    patch_template(&owner, t, json!({"allow_user_autostart": false})).await;

    let (status, body) = ws_call(
        &owner,
        "PUT",
        w.id,
        "autostart",
        json!({"schedule": "CRON_TZ=Europe/Berlin 30 9 * * 1-5"}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["message"], "Autostart is not allowed for workspaces using this template.",
        "{body}"
    );
    assert_eq!(owner.workspace(w.id).await.autostart_schedule, None);
    // Coder names the field too (putWorkspaceAutostart).
    assert_eq!(
        validations(&body),
        [(
            "schedule".to_string(),
            "Autostart is not allowed for workspaces using this template.".to_string()
        )],
        "{body}"
    );
}

// -- TTL and deadlines ------------------------------------------------------------------------

#[tokio::test]
async fn ttl_set_truncated_and_cleared() {
    let (_srv, owner, org) = setup().await;
    let t = template(&owner, org, "plain", &plain_echo()).await;
    let w = owner.running_workspace(t, "ttl").await;
    assert_eq!(w.ttl_ms, None, "no TTL without a template default");

    let (status, body) = ws_call(&owner, "PUT", w.id, "ttl", json!({"ttl_ms": HOUR_MS})).await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(owner.workspace(w.id).await.ttl_ms, Some(HOUR_MS));

    // Truncated to whole minutes.
    let (status, body) = ws_call(
        &owner,
        "PUT",
        w.id,
        "ttl",
        json!({"ttl_ms": 2 * HOUR_MS + 59_999}),
    )
    .await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(owner.workspace(w.id).await.ttl_ms, Some(2 * HOUR_MS));

    let (status, body) = ws_call(&owner, "PUT", w.id, "ttl", json!({"ttl_ms": null})).await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(owner.workspace(w.id).await.ttl_ms, None);
}

/// Coder's putWorkspaceTTL answers every refusal as 400 `Error updating workspace time until
/// shutdown.` with the reason as a validation of `ttl_ms`.
#[tokio::test]
async fn ttl_refusals() {
    let (_srv, owner, org) = setup().await;
    let t = template(&owner, org, "plain", &plain_echo()).await;
    let w = owner.running_workspace(t, "ttl").await;
    let mut problems = Vec::new();
    let message = "Error updating workspace time until shutdown.";

    for (ttl, detail) in [
        (30_000, "time until shutdown must be at least one minute"),
        (
            31 * 24 * HOUR_MS,
            "time until shutdown must be less than 30 days",
        ),
    ] {
        let (status, body) = ws_call(&owner, "PUT", w.id, "ttl", json!({"ttl_ms": ttl})).await;
        assert_eq!(status, 400, "ttl {ttl}: {body}");
        assert_eq!(
            validations(&body),
            [("ttl_ms".to_string(), detail.to_string())],
            "ttl {ttl}: {body}"
        );
        check(
            &mut problems,
            &format!("message for ttl_ms {ttl}"),
            body["message"].as_str(),
            Some(message),
        );
    }
    assert_eq!(
        owner.workspace(w.id).await.ttl_ms,
        None,
        "refusals change nothing"
    );

    patch_template(&owner, t, json!({"allow_user_autostop": false})).await;
    let (status, body) = ws_call(&owner, "PUT", w.id, "ttl", json!({"ttl_ms": HOUR_MS})).await;
    assert_eq!(status, 400, "{body}");
    check(
        &mut problems,
        "message when the template disallows autostop",
        body["message"].as_str(),
        Some(message),
    );
    check(
        &mut problems,
        "validations when the template disallows autostop",
        validations(&body),
        vec![(
            "ttl_ms".to_string(),
            "Custom autostop TTL is not allowed for workspaces using this template.".to_string(),
        )],
    );
    assert_no_problems(&problems);
}

#[tokio::test]
async fn create_time_ttl_validation_and_template_default() {
    let (_srv, owner, org) = setup().await;
    let t = template(&owner, org, "plain", &plain_echo()).await;
    for (ttl, detail) in [
        (30_000, "time until shutdown must be at least one minute"),
        (
            31 * 24 * HOUR_MS,
            "time until shutdown must be less than 30 days",
        ),
    ] {
        let (status, body) = raw_json(
            &owner,
            "POST",
            "/api/v2/users/me/workspaces",
            Some(&json!({"template_id": t, "name": "bad-ttl", "ttl_ms": ttl}).to_string()),
        )
        .await;
        assert_eq!(status, 400, "ttl {ttl}: {body}");
        assert_eq!(
            body["message"], "Invalid Workspace Time to Shutdown.",
            "{body}"
        );
        assert_eq!(
            validations(&body),
            [("ttl_ms".to_string(), detail.to_string())],
            "{body}"
        );
    }
    let (status, body) = raw_json(&owner, "GET", "/api/v2/users/me/workspace/bad-ttl", None).await;
    assert_eq!(status, 404, "a refused workspace is not created: {body}");

    let explicit = owner
        .create_workspace_with(t, "explicit", json!({"ttl_ms": 2 * HOUR_MS}))
        .await;
    assert_eq!(explicit.ttl_ms, Some(2 * HOUR_MS));

    patch_template(&owner, t, json!({"default_ttl_ms": 3 * HOUR_MS})).await;
    let defaulted = owner.create_workspace(t, "defaulted").await;
    assert_eq!(
        defaulted.ttl_ms,
        Some(3 * HOUR_MS),
        "the template's default TTL"
    );
    let own = owner
        .create_workspace_with(t, "own", json!({"ttl_ms": HOUR_MS}))
        .await;
    assert_eq!(
        own.ttl_ms,
        Some(HOUR_MS),
        "an explicit TTL wins over the default"
    );
    for w in [explicit, defaulted, own] {
        owner.wait_for_status(w.id, "running").await;
    }
}

#[tokio::test]
async fn build_deadline_follows_the_ttl() {
    let (_srv, owner, org) = setup().await;
    let t = template(&owner, org, "plain", &plain_echo()).await;
    let with_ttl = owner
        .running_workspace_with(t, "with-ttl", json!({"ttl_ms": 2 * HOUR_MS}))
        .await;
    let b = &with_ttl.latest_build;
    let completed = b.job.completed_at.expect("the build completed");
    let deadline = b.deadline.expect("a TTL gives the build a deadline");
    assert!(
        apart(deadline, completed + chrono::Duration::hours(2)) <= 5,
        "deadline {deadline} is not completion {completed} + 2h"
    );
    assert_eq!(b.max_deadline, None);

    let without = owner.running_workspace(t, "without-ttl").await;
    assert_eq!(without.latest_build.deadline, None, "no TTL, no deadline");
    assert_eq!(without.latest_build.max_deadline, None);

    // A stop build has no deadline.
    let stopped = stop(&owner, with_ttl.id).await;
    assert_eq!(stopped.latest_build.deadline, None);
}

/// Coder's putWorkspaceTTL: "If autostop has been disabled, we want to remove the deadline from
/// the existing workspace build".
#[tokio::test]
async fn clearing_the_ttl_clears_the_running_deadline() {
    let (_srv, owner, org) = setup().await;
    let t = template(&owner, org, "plain", &plain_echo()).await;
    let w = owner
        .running_workspace_with(t, "ttl", json!({"ttl_ms": HOUR_MS}))
        .await;
    assert!(w.latest_build.deadline.is_some());
    let (status, body) = ws_call(&owner, "PUT", w.id, "ttl", json!({"ttl_ms": null})).await;
    assert_eq!(status, 204, "{body}");
    let w = owner.workspace(w.id).await;
    assert_eq!(w.ttl_ms, None);
    assert_eq!(
        w.latest_build.deadline, None,
        "the running build keeps its deadline after autostop was turned off"
    );
}

// -- extend -----------------------------------------------------------------------------------

#[tokio::test]
async fn extend_moves_the_deadline() {
    let (_srv, owner, org) = setup().await;
    let t = template(&owner, org, "plain", &plain_echo()).await;
    let w = owner
        .running_workspace_with(t, "ext", json!({"ttl_ms": HOUR_MS}))
        .await;
    let old = w.latest_build.deadline.expect("deadline");

    let later = whole_seconds(Utc::now() + chrono::Duration::hours(3));
    let (status, body) = ws_call(&owner, "PUT", w.id, "extend", json!({"deadline": later})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["message"],
        format!(
            "Deadline updated to {}.",
            later.format("%Y-%m-%dT%H:%M:%SZ")
        ),
        "{body}"
    );
    let w2 = owner.workspace(w.id).await;
    let now_deadline = w2.latest_build.deadline.expect("deadline");
    assert!(apart(now_deadline, later) <= 1, "{now_deadline} vs {later}");
    assert!(now_deadline > old);
    assert_eq!(w2.latest_build.id, w.latest_build.id, "no new build");

    // Earlier than before is fine too, as long as it is 30 minutes away.
    let sooner = whole_seconds(Utc::now() + chrono::Duration::minutes(40));
    let (status, body) = ws_call(&owner, "PUT", w.id, "extend", json!({"deadline": sooner})).await;
    assert_eq!(status, 200, "{body}");
    let d = owner.workspace(w.id).await.latest_build.deadline.unwrap();
    assert!(apart(d, sooner) <= 1, "{d} vs {sooner}");

    // Too soon: refused, nothing changes.
    let too_soon = Utc::now() + chrono::Duration::minutes(15);
    let (status, body) =
        ws_call(&owner, "PUT", w.id, "extend", json!({"deadline": too_soon})).await;
    assert_eq!(status, 400, "{body}");
    let d = owner.workspace(w.id).await.latest_build.deadline.unwrap();
    assert!(
        apart(d, sooner) <= 1,
        "a refused extension changed the deadline to {d}"
    );
}

/// Coder's putExtendWorkspace: a too-early deadline is 400 `Cannot extend workspace: <reason>`;
/// a workspace that is not started, or whose shutdown is manual, is 409.
#[tokio::test]
async fn extend_refusals() {
    let (_srv, owner, org) = setup().await;
    let t = template(&owner, org, "plain", &plain_echo()).await;
    let with_ttl = owner
        .running_workspace_with(t, "with-ttl", json!({"ttl_ms": HOUR_MS}))
        .await;
    let manual = owner.running_workspace(t, "manual").await;
    let stopped = owner
        .running_workspace_with(t, "stopped", json!({"ttl_ms": HOUR_MS}))
        .await;
    stop(&owner, stopped.id).await;
    let soon = Utc::now() + chrono::Duration::minutes(15);
    let later = Utc::now() + chrono::Duration::hours(2);
    let mut problems = Vec::new();

    let (status, body) = ws_call(
        &owner,
        "PUT",
        with_ttl.id,
        "extend",
        json!({"deadline": soon}),
    )
    .await;
    check(
        &mut problems,
        "too soon",
        (status, body["message"].as_str()),
        (
            400,
            Some("Cannot extend workspace: new deadline must be at least 30 minutes in the future"),
        ),
    );
    let (status, body) = ws_call(
        &owner,
        "PUT",
        manual.id,
        "extend",
        json!({"deadline": later}),
    )
    .await;
    check(
        &mut problems,
        "no deadline",
        (status, body["message"].as_str()),
        (409, Some("Workspace shutdown is manual.")),
    );
    let (status, body) = ws_call(
        &owner,
        "PUT",
        stopped.id,
        "extend",
        json!({"deadline": later}),
    )
    .await;
    check(
        &mut problems,
        "stopped",
        (status, body["message"].as_str()),
        (409, Some("Workspace must be started, current status: stop")),
    );
    let (status, body) = ws_call(&owner, "PUT", with_ttl.id, "extend", json!({})).await;
    check(&mut problems, "missing deadline status", status, 400);
    check(
        &mut problems,
        "missing deadline fields",
        fields(&body),
        vec!["deadline".to_string()],
    );

    assert_eq!(owner.workspace(manual.id).await.latest_build.deadline, None);
    assert_no_problems(&problems);
}

// -- automatic updates ------------------------------------------------------------------------

#[tokio::test]
async fn automatic_updates_setting() {
    let (_srv, owner, org) = setup().await;
    let t = template(&owner, org, "plain", &plain_echo()).await;
    let w = owner.running_workspace(t, "upd").await;
    assert_eq!(w.automatic_updates, "never");
    let always = owner
        .create_workspace_with(t, "always", json!({"automatic_updates": "always"}))
        .await;
    assert_eq!(always.automatic_updates, "always");

    for value in ["always", "never", "always"] {
        let (status, body) = ws_call(
            &owner,
            "PUT",
            w.id,
            "autoupdates",
            json!({"automatic_updates": value}),
        )
        .await;
        assert_eq!(status, 204, "{value}: {body}");
        assert_eq!(owner.workspace(w.id).await.automatic_updates, value);
    }
    let (status, body) = ws_call(
        &owner,
        "PUT",
        w.id,
        "autoupdates",
        json!({"automatic_updates": "sometimes"}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(fields(&body), ["automatic_updates"], "{body}");
    assert_eq!(owner.workspace(w.id).await.automatic_updates, "always");
    owner.wait_for_status(always.id, "running").await;
    // Coder: `Invalid request`, validation "must be always or never".
    assert_eq!(body["message"], "Invalid request", "{body}");
}

// -- dormancy ---------------------------------------------------------------------------------

#[tokio::test]
async fn dormancy_blocks_starts_and_schedules_deletion() {
    let (_srv, owner, org) = setup().await;
    let t = template(&owner, org, "plain", &plain_echo()).await;
    let w = owner.running_workspace(t, "sleepy").await;
    assert_eq!((w.dormant_at, w.deleting_at), (None, None));

    // Without autodelete on the template: dormant, but no deletion date.
    let (status, body) = ws_call(&owner, "PUT", w.id, "dormant", json!({"dormant": true})).await;
    assert_eq!(status, 200, "{body}");
    let d: Workspace = serde_json::from_value(body).unwrap();
    let at = d.dormant_at.expect("dormant_at");
    assert!(apart(at, Utc::now()) <= 5, "dormant_at {at}");
    assert_eq!(d.deleting_at, None);
    let (status, body) = ws_call(&owner, "PUT", w.id, "dormant", json!({"dormant": false})).await;
    assert_eq!(status, 200, "{body}");

    let week_ms = 7 * 24 * HOUR_MS;
    patch_template(
        &owner,
        t,
        json!({"time_til_dormant_autodelete_ms": week_ms}),
    )
    .await;
    let (status, body) = ws_call(&owner, "PUT", w.id, "dormant", json!({"dormant": true})).await;
    assert_eq!(status, 200, "{body}");
    let d: Workspace = serde_json::from_value(body).unwrap();
    let at = d.dormant_at.expect("dormant_at");
    let deleting = d
        .deleting_at
        .expect("deleting_at with an autodelete template");
    assert!(
        apart(deleting, at + chrono::Duration::milliseconds(week_ms)) <= 2,
        "deleting_at {deleting} is not dormant_at {at} + 7 days"
    );
    let read = owner.workspace(w.id).await;
    assert_eq!(
        (read.dormant_at, read.deleting_at),
        (d.dormant_at, d.deleting_at)
    );

    // A dormant workspace may be stopped, but not started.
    stop(&owner, w.id).await;
    let (status, body) = owner.post_build(w.id, "start").await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        body["message"], "Cannot start a dormant workspace.",
        "{body}"
    );
    assert_eq!(owner.workspace(w.id).await.latest_build.status, "stopped");

    let (status, body) = ws_call(&owner, "PUT", w.id, "dormant", json!({"dormant": false})).await;
    assert_eq!(status, 200, "{body}");
    let d: Workspace = serde_json::from_value(body).unwrap();
    assert_eq!((d.dormant_at, d.deleting_at), (None, None));
    let (status, body) = owner.post_build(w.id, "start").await;
    assert_eq!(status, 201, "an active workspace starts again: {body}");
    owner.wait_for_status(w.id, "running").await;

    // Coder: asking for the state the workspace is already in answers 304 Not Modified.
    let (status, body) = ws_call(&owner, "PUT", w.id, "dormant", json!({"dormant": false})).await;
    assert_eq!(status, 304, "no change: {body}");
}

// -- favorites --------------------------------------------------------------------------------

/// Names of every workspace the client may see, in the order answered.
async fn listed(client: &Client) -> Vec<String> {
    let list: WorkspacesResponse = client.get_json("/api/v2/workspaces").await.unwrap();
    list.workspaces.into_iter().map(|w| w.name).collect()
}

#[tokio::test]
async fn favorites_are_per_owner_and_sort_first() {
    let (srv, owner, org) = setup().await;
    let (alice, _) = srv.member(&owner, "alice").await;
    let t = template(&owner, org, "plain", &plain_echo()).await;
    let a = owner.running_workspace(t, "alpha-ws").await;
    let z = owner.running_workspace(t, "zeta").await;
    let theirs = alice.running_workspace(t, "hers").await;

    assert_eq!(
        listed(&owner).await,
        ["hers", "alpha-ws", "zeta"],
        "owner name, then name"
    );

    let (status, body) = ws_call(&owner, "PUT", z.id, "favorite", json!({})).await;
    assert_eq!(status, 204, "{body}");
    assert!(owner.workspace(z.id).await.favorite);
    assert!(!owner.workspace(a.id).await.favorite);
    assert_eq!(
        listed(&owner).await,
        ["zeta", "hers", "alpha-ws"],
        "the owner's favorite first"
    );

    // Alice's favorite is hers alone: the owner sees it as not a favorite, unsorted.
    let (status, body) = ws_call(&alice, "PUT", theirs.id, "favorite", json!({})).await;
    assert_eq!(status, 204, "{body}");
    assert!(alice.workspace(theirs.id).await.favorite);
    assert!(!owner.workspace(theirs.id).await.favorite);
    assert_eq!(listed(&owner).await, ["zeta", "hers", "alpha-ws"]);
    let mine: WorkspacesResponse = alice.get_json("/api/v2/workspaces").await.unwrap();
    assert!(mine.workspaces[0].favorite);

    // Only the owner may (un)favorite, even an owner-admin.
    let (status, body) = ws_call(&owner, "PUT", theirs.id, "favorite", json!({})).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        body["message"], "You can only favorite workspaces that you own.",
        "{body}"
    );
    let (status, body) = ws_call(&alice, "PUT", z.id, "favorite", json!({})).await;
    assert_eq!(
        status, 404,
        "alice cannot see the owner's workspace: {body}"
    );

    let (status, body) = ws_call(&owner, "DELETE", z.id, "favorite", json!({})).await;
    assert_eq!(status, 204, "{body}");
    assert!(!owner.workspace(z.id).await.favorite);
    assert_eq!(listed(&owner).await, ["hers", "alpha-ws", "zeta"]);

    let (status, body) = ws_call(&owner, "DELETE", theirs.id, "favorite", json!({})).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        alice.workspace(theirs.id).await.favorite,
        "still alice's favorite"
    );
    // Coder's deleteFavoriteWorkspace words it differently from the PUT.
    assert_eq!(
        body["message"], "You can only un-favorite workspaces that you own.",
        "{body}"
    );
}

/// Workspaces whose latest build is a successful start come first, and the order follows
/// stops, failed starts and starts as they happen.
#[tokio::test]
async fn running_workspaces_sort_first() {
    let (_srv, owner, org) = setup().await;
    let t = template(&owner, org, "plain", &plain_echo()).await;
    let a = owner.running_workspace(t, "a-ws").await;
    owner.running_workspace(t, "b-ws").await;
    assert_eq!(
        listed(&owner).await,
        ["a-ws", "b-ws"],
        "both running: by name"
    );

    stop(&owner, a.id).await;
    assert_eq!(
        listed(&owner).await,
        ["b-ws", "a-ws"],
        "the stopped one last"
    );

    let (status, body) = owner.post_build(a.id, "start").await;
    assert_eq!(status, 201, "{body}");
    owner.wait_for_status(a.id, "running").await;
    assert_eq!(listed(&owner).await, ["a-ws", "b-ws"], "running again");

    // A start that fails leaves it among the not-running, though its name comes first.
    let failing = json!({"start": {"error": "no capacity"}});
    let bad = template(&owner, org, "failing", &failing).await;
    let w = owner.create_workspace(bad, "a").await;
    owner.wait_for_status(w.id, "failed").await;
    assert_eq!(listed(&owner).await, ["a-ws", "b-ws", "a"]);
}

// -- usage and the activity bump --------------------------------------------------------------

#[tokio::test]
async fn usage_records_use_and_bumps_the_deadline() {
    let (_srv, owner, org) = setup().await;
    let t = template(&owner, org, "agent", &agent_echo()).await;
    patch_template(&owner, t, json!({"activity_bump_ms": 2 * HOUR_MS})).await;
    let w = owner
        .running_workspace_with(t, "busy", json!({"ttl_ms": HOUR_MS}))
        .await;
    let agent = w.latest_build.resources[0].agents[0].id;
    let before = w.latest_build.deadline.expect("deadline from the TTL");
    assert!(apart(before, Utc::now() + chrono::Duration::hours(1)) <= 60);

    tokio::time::sleep(Duration::from_millis(20)).await;
    let (status, body) = ws_call(
        &owner,
        "POST",
        w.id,
        "usage",
        json!({"agent_id": agent, "app_name": "vscode"}),
    )
    .await;
    assert_eq!(status, 204, "{body}");
    let now = Utc::now();
    let w2 = owner.workspace(w.id).await;
    assert!(
        w2.last_used_at > w.last_used_at,
        "last_used_at did not move"
    );
    let bumped = w2.latest_build.deadline.expect("deadline");
    assert!(
        apart(bumped, now + chrono::Duration::hours(2)) <= 60,
        "deadline {bumped} was not bumped to now + 2h (was {before})"
    );

    // An empty body is fine too.
    let (status, body) = raw_json(
        &owner,
        "POST",
        &format!("/api/v2/workspaces/{}/usage", w.id),
        None,
    )
    .await;
    assert_eq!(status, 204, "{body}");

    let (status, body) = ws_call(
        &owner,
        "POST",
        w.id,
        "usage",
        json!({"agent_id": agent, "app_name": "notepad"}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(fields(&body), ["app_name"], "{body}");

    // Never backwards: a deadline further out than the bump stays.
    let far = whole_seconds(Utc::now() + chrono::Duration::hours(5));
    let (status, body) = ws_call(&owner, "PUT", w.id, "extend", json!({"deadline": far})).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = ws_call(
        &owner,
        "POST",
        w.id,
        "usage",
        json!({"agent_id": agent, "app_name": "ssh"}),
    )
    .await;
    assert_eq!(status, 204, "{body}");
    let d = owner.workspace(w.id).await.latest_build.deadline.unwrap();
    assert!(
        apart(d, far) <= 1,
        "the bump moved the deadline back to {d}"
    );
}

// -- renames ----------------------------------------------------------------------------------

#[tokio::test]
async fn renames_are_off_by_default() {
    let (_srv, owner, org) = setup().await;
    let t = template(&owner, org, "plain", &plain_echo()).await;
    let w = owner.running_workspace(t, "fixed").await;
    assert!(!w.allow_renames);
    let (status, body) = raw_json(
        &owner,
        "PATCH",
        &format!("/api/v2/workspaces/{}", w.id),
        Some(r#"{"name":"moved"}"#),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["message"], "Workspace renames are not allowed.",
        "{body}"
    );
    // Nothing to change is no rename.
    let (status, body) = raw_json(
        &owner,
        "PATCH",
        &format!("/api/v2/workspaces/{}", w.id),
        Some(r#"{"name":"fixed"}"#),
    )
    .await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(owner.workspace(w.id).await.name, "fixed");
}

#[tokio::test]
async fn renames_when_allowed() {
    let srv = TestServer::start_with(|o| o.allow_workspace_renames = true).await;
    let (owner, first) = srv.owner().await;
    let t = template(&owner, first.organization_id, "plain", &plain_echo()).await;
    let w = owner.running_workspace(t, "first").await;
    let other = owner.running_workspace(t, "second").await;
    assert!(w.allow_renames);
    let path = format!("/api/v2/workspaces/{}", w.id);

    let (status, body) = raw_json(&owner, "PATCH", &path, Some(r#"{"name":"renamed"}"#)).await;
    assert_eq!(status, 204, "{body}");
    let by_name: Workspace = owner
        .get_json("/api/v2/users/me/workspace/renamed")
        .await
        .unwrap();
    assert_eq!(by_name.id, w.id);
    let (status, _) = raw_json(&owner, "GET", "/api/v2/users/me/workspace/first", None).await;
    assert_eq!(status, 404, "the old name is gone");

    let (status, body) = raw_json(&owner, "PATCH", &path, Some(r#"{"name":"not valid!"}"#)).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(fields(&body), ["name"], "{body}");

    let (status, body) = raw_json(&owner, "PATCH", &path, Some(r#"{"name":"second"}"#)).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(
        body["message"], "Workspace \"second\" already exists.",
        "{body}"
    );
    assert_eq!(fields(&body), ["name"], "{body}");
    assert_eq!(owner.workspace(w.id).await.name, "renamed");
    assert_eq!(owner.workspace(other.id).await.name, "second");
}

// -- search -----------------------------------------------------------------------------------

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Names in the order answered, and the count.
async fn search_page(client: &Client, q: &str, page: &str) -> (Vec<String>, i64) {
    let path = format!("/api/v2/workspaces?q={}{page}", enc(q));
    let r: WorkspacesResponse = client
        .get_json(&path)
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    (r.workspaces.into_iter().map(|w| w.name).collect(), r.count)
}

/// The set of names matching `q` (sorted); the count must agree.
async fn search(client: &Client, q: &str) -> Vec<String> {
    let (mut names, count) = search_page(client, q, "").await;
    assert_eq!(count, names.len() as i64, "count for {q:?}");
    names.sort();
    names
}

#[tokio::test]
async fn search_keys_each_select_exactly_their_workspaces() {
    let (srv, owner, org) = setup().await;
    let (alice, _) = srv.member(&owner, "alice").await;
    let alpha = template(&owner, org, "alpha", &cpu_echo()).await;
    let beta = template(&owner, org, "beta", &plain_echo()).await;

    let main = owner
        .create_workspace_with(
            alpha,
            "main",
            json!({"rich_parameter_values": [{"name": "cpu", "value": "4"}]}),
        )
        .await;
    let scratch = owner.create_workspace(beta, "scratch").await;
    let dev = alice.create_workspace(alpha, "dev").await;
    let devbox = alice.create_workspace(beta, "devbox").await;
    for w in [&main, &scratch, &dev, &devbox] {
        owner.wait_for_status(w.id, "running").await;
    }
    stop(&owner, scratch.id).await;
    promote(&owner, org, beta, &plain_echo()).await;

    // Every workspace has been used before `mark`; then only dev is used.
    let mut mark = Utc::now();
    for w in [&main, &scratch, &dev, &devbox] {
        mark = mark.max(owner.workspace(w.id).await.last_used_at);
    }
    let mark = mark + chrono::Duration::milliseconds(5);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (status, body) = ws_call(&alice, "POST", dev.id, "usage", json!({})).await;
    assert_eq!(status, 204, "{body}");

    let all = ["dev", "devbox", "main", "scratch"];
    let cases: Vec<(String, Vec<&str>)> = vec![
        ("".into(), all.to_vec()),
        ("owner:alice".into(), vec!["dev", "devbox"]),
        ("owner:ALICE".into(), vec!["dev", "devbox"]),
        ("owner:me".into(), vec!["main", "scratch"]),
        ("owner:nobody".into(), vec![]),
        ("template:alpha".into(), vec!["dev", "main"]),
        ("template:beta".into(), vec!["devbox", "scratch"]),
        ("name:dev".into(), vec!["dev", "devbox"]),
        ("name:DEV".into(), vec!["dev", "devbox"]),
        ("box".into(), vec!["devbox"]),
        ("a".into(), vec!["main", "scratch"]),
        ("owner/main".into(), vec!["main"]),
        ("alice/devbox".into(), vec!["devbox"]),
        ("owner/dev".into(), vec![]),
        (format!("id:{}", main.id), vec!["main"]),
        (format!("id:{},{}", main.id, dev.id), vec!["dev", "main"]),
        ("status:running".into(), vec!["dev", "devbox", "main"]),
        ("status:stopped".into(), vec!["scratch"]),
        ("status:failed".into(), vec![]),
        ("outdated:true".into(), vec!["devbox", "scratch"]),
        ("outdated:false".into(), vec!["dev", "main"]),
        ("has-agent:connecting".into(), vec!["dev", "main"]),
        ("has-agent:connected".into(), vec![]),
        ("organization:coder".into(), all.to_vec()),
        (format!("organization:{org}"), all.to_vec()),
        ("param:cpu".into(), vec!["dev", "main"]),
        ("param:cpu=4".into(), vec!["main"]),
        ("param:cpu=2".into(), vec!["dev"]),
        ("param:ram".into(), vec![]),
        ("owner:alice template:alpha".into(), vec!["dev"]),
        ("template:beta status:running".into(), vec!["devbox"]),
    ];
    for (q, want) in &cases {
        assert_eq!(search(&owner, q).await, *want, "q={q:?}");
    }

    // A substring asked again is read matches first (its kept total says they are few):
    // the same page, in the same order, with the same total, paged the same.
    for (q, page, want, total) in [
        ("name:a", "", vec!["main", "scratch"], 2),
        ("name:a", "&limit=1&offset=1", vec!["scratch"], 2),
        ("dev", "", vec!["dev", "devbox"], 2),
        ("owner:alice box", "", vec!["devbox"], 1),
        ("name:zzz", "", vec![], 0),
    ] {
        for round in ["first", "again", "once more"] {
            let (names, count) = search_page(&owner, q, page).await;
            assert_eq!(
                (names, count),
                (want.iter().map(|n| n.to_string()).collect(), total),
                "q={q:?}{page} ({round})"
            );
        }
    }

    // Default order: running before stopped, then owner name, then workspace name.
    let (names, count) = search_page(&owner, "", "").await;
    assert_eq!(
        (names, count),
        (
            vec![
                "dev".to_string(),
                "devbox".into(),
                "main".into(),
                "scratch".into()
            ],
            4
        )
    );
    let (names, count) = search_page(&owner, "", "&limit=2").await;
    assert_eq!(
        (names, count),
        (vec!["dev".to_string(), "devbox".into()], 4)
    );
    let (names, count) = search_page(&owner, "", "&limit=2&offset=2").await;
    assert_eq!(
        (names, count),
        (vec!["main".to_string(), "scratch".into()], 4)
    );
    let (names, count) = search_page(&owner, "", "&offset=10").await;
    assert_eq!(
        (names, count),
        (vec![], 4),
        "count is the total even past the end"
    );
    let (names, count) = search_page(&owner, "owner:alice", "&limit=1&offset=1").await;
    assert_eq!((names, count), (vec!["devbox".to_string()], 2));
    // Favorites come first.
    let (status, body) = ws_call(&owner, "PUT", scratch.id, "favorite", json!({})).await;
    assert_eq!(status, 204, "{body}");
    let (names, _) = search_page(&owner, "", "").await;
    assert_eq!(names, ["scratch", "dev", "devbox", "main"]);

    // A member sees only their own.
    assert_eq!(search(&alice, "").await, ["dev", "devbox"]);
    assert_eq!(search(&alice, "owner:owner").await, Vec::<String>::new());
    assert_eq!(search(&alice, "template:alpha").await, ["dev"]);

    for (q, field) in [
        ("bogus:x", "bogus"),
        ("a:b:c", "q"),
        ("status:bogus", "status"),
        ("outdated:maybe", "outdated"),
        ("last_used_after:yesterday", "last_used_after"),
        (":x", "q"),
    ] {
        let path = format!("/api/v2/workspaces?q={}", enc(q));
        let (status, body) = raw_json(&owner, "GET", &path, None).await;
        assert_eq!(status, 400, "q={q:?}: {body}");
        assert_eq!(
            body["message"], "Invalid workspace search query.",
            "q={q:?}: {body}"
        );
        assert_eq!(fields(&body), [field], "q={q:?}: {body}");
    }

    let mut problems = Vec::new();
    // RFC 3339 times hold colons, so Coder's clients quote them (`last_used_after:"<time>"`).
    for (q, want) in [
        (format!("last_used_after:{:?}", rfc3339(mark)), vec!["dev"]),
        (
            format!("last_used_before:{:?}", rfc3339(mark)),
            vec!["devbox", "main", "scratch"],
        ),
    ] {
        let path = format!("/api/v2/workspaces?q={}", enc(&q));
        let (status, body) = raw_json(&owner, "GET", &path, None).await;
        let mut names: Vec<String> = body["workspaces"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|w| w["name"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        check(
            &mut problems,
            &format!("q={q}"),
            (status, names),
            (200, want.iter().map(|n| n.to_string()).collect()),
        );
    }
    // Coder: a bare `owner/name` matches names containing `name` (the `name` filter), and a
    // term with two slashes is a validation of `q`.
    check(
        &mut problems,
        "q=alice/dev",
        search(&owner, "alice/dev").await,
        vec!["dev".to_string(), "devbox".into()],
    );
    let (status, body) = raw_json(
        &owner,
        "GET",
        &format!("/api/v2/workspaces?q={}", enc("a/b/c")),
        None,
    )
    .await;
    check(&mut problems, "q=a/b/c status", status, 400);
    check(
        &mut problems,
        "q=a/b/c fields",
        fields(&body),
        vec!["q".to_string()],
    );

    // Dormant workspaces (last: whether Coder lists them by default is not settled here).
    let (status, body) = ws_call(
        &alice,
        "PUT",
        devbox.id,
        "dormant",
        json!({"dormant": true}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(search(&owner, "dormant:true").await, ["devbox"]);
    assert_eq!(search(&alice, "dormant:true").await, ["devbox"]);

    assert_no_problems(&problems);
}

/// The page sorts and `owner:` searches by the owner's username, which the workspace row keeps
/// a copy of (migration 0013): renaming the owner must move their workspaces with it.
#[tokio::test]
async fn a_renamed_owner_is_searched_and_sorted_by_the_new_name() {
    let (srv, owner, org) = setup().await;
    let (alice, _) = srv.member(&owner, "alice").await;
    let t = template(&owner, org, "alpha", &plain_echo()).await;
    let mine = owner.create_workspace(t, "mine").await;
    let hers = alice.create_workspace(t, "hers").await;
    for w in [&mine, &hers] {
        owner.wait_for_status(w.id, "running").await;
    }
    // "alice" sorts before "owner".
    assert_eq!(search_page(&owner, "", "").await.0, ["hers", "mine"]);

    let (status, body) = raw_json(
        &alice,
        "PUT",
        "/api/v2/users/me/profile",
        Some(r#"{"username":"zoe"}"#),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(search_page(&owner, "", "").await.0, ["mine", "hers"]);
    assert_eq!(search(&owner, "owner:zoe").await, ["hers"]);
    assert_eq!(search(&owner, "owner:ZOE").await, ["hers"]);
    assert_eq!(search(&owner, "owner:alice").await, Vec::<String>::new());
    assert_eq!(search(&owner, "zoe/hers").await, ["hers"]);
    // A workspace made after the rename starts with the new name too.
    let later = alice.create_workspace(t, "later").await;
    owner.wait_for_status(later.id, "running").await;
    assert_eq!(search(&owner, "owner:zoe").await, ["hers", "later"]);
    assert_eq!(
        search_page(&owner, "", "&limit=2&offset=1").await,
        (vec!["hers".to_string(), "later".into()], 3)
    );
}

// -- sharing ----------------------------------------------------------------------------------

async fn patch_acl(client: &Client, id: Uuid, user_roles: Value) -> (u16, Value) {
    ws_call(
        client,
        "PATCH",
        id,
        "acl",
        json!({ "user_roles": user_roles }),
    )
    .await
}

#[tokio::test]
async fn sharing_a_workspace_through_its_acl() {
    let (srv, owner, org) = setup().await;
    let (bob, bob_user) = srv.member(&owner, "bob").await;
    let acme = owner
        .create_organization(&codersdk::CreateOrganizationRequest {
            name: "acme".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let outsider = owner
        .create_user(&codersdk::CreateUserRequest {
            email: "outsider@example.com".into(),
            username: "outsider".into(),
            password: crate::harness::MEMBER_PASSWORD.into(),
            organization_ids: vec![acme.id],
            ..Default::default()
        })
        .await
        .unwrap();
    let t = template(&owner, org, "plain", &plain_echo()).await;
    let w = owner.running_workspace(t, "shared").await;
    assert!(w.shared_with.is_empty());
    let acl_path = format!("/api/v2/workspaces/{}/acl", w.id);

    let acl: WorkspaceAcl = owner.get_json(&acl_path).await.unwrap();
    assert!(acl.users.is_empty() && acl.group.is_empty());
    let (status, _) = raw_json(&bob, "GET", &format!("/api/v2/workspaces/{}", w.id), None).await;
    assert_eq!(status, 404, "not shared yet");

    let (status, body) = patch_acl(&owner, w.id, json!({ bob_user.id.to_string(): "use" })).await;
    assert_eq!(status, 204, "{body}");
    let acl: WorkspaceAcl = owner.get_json(&acl_path).await.unwrap();
    assert_eq!(acl.users.len(), 1);
    assert_eq!(
        (
            acl.users[0].id,
            acl.users[0].username.as_str(),
            acl.users[0].role.as_str()
        ),
        (bob_user.id, "bob", "use")
    );

    // Bob can now see and use it.
    assert_eq!(bob.workspace(w.id).await.id, w.id);
    let list: WorkspacesResponse = bob.get_json("/api/v2/workspaces").await.unwrap();
    assert_eq!(
        list.workspaces.iter().map(|w| w.id).collect::<Vec<_>>(),
        [w.id]
    );
    let seen = owner.workspace(w.id).await;
    assert_eq!(seen.shared_with.len(), 1, "{:?}", seen.shared_with);
    let s = &seen.shared_with[0];
    assert_eq!(
        (
            s.id,
            s.actor_type.as_str(),
            s.name.as_str(),
            s.roles.clone()
        ),
        (bob_user.id, "user", "bob", vec!["use".to_string()])
    );
    let (status, body) = bob.post_build(w.id, "delete").await;
    assert_eq!(status, 403, "`use` does not allow deleting: {body}");

    // Bad requests change nothing.
    let (status, body) = patch_acl(
        &owner,
        w.id,
        json!({ bob_user.id.to_string(): "superuser" }),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(fields(&body), ["user_roles"], "{body}");
    let (status, body) = patch_acl(&owner, w.id, json!({ outsider.id.to_string(): "use" })).await;
    assert_eq!(status, 400, "a user outside the organization: {body}");
    let acl: WorkspaceAcl = owner.get_json(&acl_path).await.unwrap();
    assert_eq!(acl.users.len(), 1);
    assert_eq!(acl.users[0].role, "use");

    // Removing the whole ACL takes access away.
    let (status, body) = raw_json(&owner, "DELETE", &acl_path, None).await;
    assert_eq!(status, 204, "{body}");
    let acl: WorkspaceAcl = owner.get_json(&acl_path).await.unwrap();
    assert!(acl.users.is_empty());
    let (status, _) = raw_json(&bob, "GET", &format!("/api/v2/workspaces/{}", w.id), None).await;
    assert_eq!(status, 404, "access is gone");
    assert!(owner.workspace(w.id).await.shared_with.is_empty());

    // Not even `admin` lets bob delete it (nobody deletes what they cannot recreate); its
    // owner does.
    let (status, body) = patch_acl(&owner, w.id, json!({ bob_user.id.to_string(): "admin" })).await;
    assert_eq!(status, 204, "{body}");
    let (status, body) = bob.post_build(w.id, "delete").await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = owner.post_build(w.id, "delete").await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["transition"], "delete");
}

// -- resolve-autostart and timings -------------------------------------------------------------

async fn mismatch(client: &Client, id: Uuid) -> bool {
    let path = format!("/api/v2/workspaces/{id}/resolve-autostart");
    let (status, body) = raw_json(client, "GET", &path, None).await;
    assert_eq!(status, 200, "{body}");
    body["parameter_mismatch"].as_bool().expect("a boolean")
}

#[tokio::test]
async fn resolve_autostart_reports_parameter_mismatch() {
    let (_srv, owner, org) = setup().await;
    let t = template(&owner, org, "plain", &plain_echo()).await;
    let w = owner.running_workspace(t, "auto").await;
    assert!(!mismatch(&owner, w.id).await);

    // A new active version needs a value the workspace never had.
    promote(&owner, org, t, &required_param_echo()).await;
    assert!(
        !mismatch(&owner, w.id).await,
        "a workspace that does not update automatically keeps its version"
    );
    let (status, body) = ws_call(
        &owner,
        "PUT",
        w.id,
        "autoupdates",
        json!({"automatic_updates": "always"}),
    )
    .await;
    assert_eq!(status, 204, "{body}");
    assert!(mismatch(&owner, w.id).await);

    // A version whose parameter has a default resolves again.
    promote(
        &owner,
        org,
        t,
        &json!({"parse": {"parameters": [{"name": "region", "type": "string",
            "default_value": "eu", "mutable": true, "options": []}]}}),
    )
    .await;
    assert!(!mismatch(&owner, w.id).await);
}

#[tokio::test]
async fn timings_of_the_latest_build() {
    let (_srv, owner, org) = setup().await;
    let t = template(&owner, org, "agent", &agent_echo()).await;
    let w = owner.running_workspace(t, "timed").await;
    let timings: WorkspaceBuildTimings = owner
        .get_json(&format!("/api/v2/workspaces/{}/timings", w.id))
        .await
        .unwrap();
    assert!(!timings.provisioner_timings.is_empty());
    let stages: Vec<&str> = timings
        .provisioner_timings
        .iter()
        .map(|t| t.stage.as_str())
        .collect();
    assert!(
        stages.contains(&"plan") && stages.contains(&"apply"),
        "{stages:?}"
    );
    for p in &timings.provisioner_timings {
        assert_eq!(p.job_id, w.latest_build.job.id);
        assert!(p.started_at <= p.ended_at, "{p:?}");
    }
    assert!(timings.agent_script_timings.is_empty());
    assert!(timings.agent_connection_timings.is_empty());

    // After another build, the timings are that build's.
    let stopped = stop(&owner, w.id).await;
    let timings: WorkspaceBuildTimings = owner
        .get_json(&format!("/api/v2/workspaces/{}/timings", w.id))
        .await
        .unwrap();
    assert!(!timings.provisioner_timings.is_empty());
    assert!(timings
        .provisioner_timings
        .iter()
        .all(|p| p.job_id == stopped.latest_build.job.id));
}
