//! The lifecycle executor against a real database, driven with a chosen clock, plus one test
//! with a real poll interval.

use std::time::Duration;

use chrono::Utc;
use codersdk::{Client, Workspace};
use serde_json::json;
use uuid::Uuid;

use crate::harness::echo::{create_template, create_version, wait_import};
use crate::harness::workspace::WorkspaceApi;
use crate::harness::{raw_json, TestServer};

fn echo() -> serde_json::Value {
    json!({"start": {"resources": [{"name": "vm", "type": "echo_vm"}]}, "stop": {}, "delete": {}})
}

async fn patch_template(c: &Client, t: Uuid, body: serde_json::Value) {
    let (status, resp) = raw_json(
        c,
        "PATCH",
        &format!("/api/v2/templates/{t}"),
        Some(&body.to_string()),
    )
    .await;
    assert_eq!(status, 200, "{resp}");
}

fn minute() -> chrono::Duration {
    chrono::Duration::minutes(1)
}

/// Stops the running workspace and schedules its autostart two minutes after the stop build;
/// answers when that is.
async fn stop_and_schedule_start(c: &Client, ws: Uuid) -> chrono::DateTime<Utc> {
    let stop = c.stop(ws).await;
    c.wait_for_status(ws, "stopped").await;
    // Every day at the minute two minutes after the stop build.
    let fire = coderd_db::schedule::truncate_minute(stop.created_at) + chrono::Duration::minutes(2);
    let schedule = format!(
        "CRON_TZ=UTC {} {} * * *",
        fire.format("%-M"),
        fire.format("%-H")
    );
    let (status, _) = raw_json(
        c,
        "PUT",
        &format!("/api/v2/workspaces/{ws}/autostart"),
        Some(&json!({"schedule": schedule}).to_string()),
    )
    .await;
    assert_eq!(status, 204);
    fire
}

#[tokio::test]
async fn autostop_at_the_deadline_by_the_system_user() {
    let srv = TestServer::start().await;
    let (owner, first) = srv.owner().await;
    let (t, _) = create_template(&owner, first.organization_id, "ttl", &echo()).await;
    let w = owner
        .create_workspace_with(t.id, "dev", json!({"ttl_ms": 3_600_000}))
        .await;
    let w = owner.wait_for_status(w.id, "running").await;
    let deadline = w.latest_build.deadline.expect("a TTL gives a deadline");
    let ex = srv.executor();
    assert!(
        ex.tick(deadline - minute()).await.is_empty(),
        "a minute early: nothing"
    );
    // The executor ticks on whole minutes: the first tick at or after a deadline of
    // hh:mm:00.5 is hh:mm+1, which `deadline + 59 s` (truncated to hh:mm) missed once a minute.
    let done = ex.tick(deadline + minute()).await;
    assert_eq!(done.len(), 1);
    let w = owner.wait_for_status(w.id, "stopped").await;
    let b = &w.latest_build;
    assert_eq!(
        (
            b.reason.as_str(),
            b.initiator_name.as_str(),
            b.transition.as_str()
        ),
        ("autostop", "coder", "stop")
    );
    assert_eq!(b.initiator_id, coderd_db::SYSTEM_USER_ID);
    // The system user never shows up among users.
    let users = owner.users("").await.unwrap();
    assert!(users.users.iter().all(|u| u.username != "coder"));
    // Nothing more to do.
    assert!(ex
        .tick(deadline + chrono::Duration::hours(2))
        .await
        .is_empty());
}

#[tokio::test]
async fn autostart_on_schedule_and_two_executors_never_double_start() {
    let srv = TestServer::start().await;
    let (owner, first) = srv.owner().await;
    let (t, _) = create_template(&owner, first.organization_id, "sched", &echo()).await;
    let w = owner.create_workspace(t.id, "dev").await;
    owner.wait_for_status(w.id, "running").await;
    let fire = stop_and_schedule_start(&owner, w.id).await;
    let w: Workspace = owner
        .get_json(&format!("/api/v2/workspaces/{}", w.id))
        .await
        .unwrap();
    assert!(w.next_start_at.is_some());

    // A second replica on the same database with its own executor.
    let other = coderd::server::start(
        crate::harness::test_options(&srv.db_url),
        Default::default(),
    )
    .await
    .unwrap();
    let (a, b) = (srv.executor(), other.executor());
    assert!(a.tick(fire - minute()).await.is_empty());
    let (ra, rb) = tokio::join!(a.tick(fire), b.tick(fire));
    assert_eq!(
        ra.len() + rb.len(),
        1,
        "exactly one executor started it: {ra:?} {rb:?}"
    );
    let w = owner.wait_for_status(w.id, "running").await;
    assert_eq!(
        (w.latest_build.reason.as_str(), w.latest_build.build_number),
        ("autostart", 3)
    );
    // Once started it does not start again.
    assert!(a.tick(fire + minute()).await.is_empty());
    other.shutdown().await;
}

/// A workspace that follows the active version, which now needs a parameter the workspace
/// lacks, is autostarted with the version it has, and its build log says why.
#[tokio::test]
async fn autostart_keeps_the_current_version_when_the_active_one_needs_parameters() {
    let srv = TestServer::start().await;
    let (owner, first) = srv.owner().await;
    let org = first.organization_id;
    let (t, old) = create_template(&owner, org, "moving", &echo()).await;
    let w = owner
        .create_workspace_with(t.id, "dev", json!({"automatic_updates": "always"}))
        .await;
    owner.wait_for_status(w.id, "running").await;
    let fire = stop_and_schedule_start(&owner, w.id).await;

    let mut needs = echo();
    needs["parse"] = json!({"parameters": [{"name": "must", "type": "string", "required": true}]});
    let new = create_version(&owner, org, &needs, Some(t.id)).await;
    assert_eq!(wait_import(&owner, new.id).await.job.status, "succeeded");
    let (status, resp) = raw_json(
        &owner,
        "PATCH",
        &format!("/api/v2/templates/{}/versions", t.id),
        Some(&json!({"id": new.id}).to_string()),
    )
    .await;
    assert_eq!(status, 200, "{resp}");

    assert_eq!(srv.executor().tick(fire).await.len(), 1);
    let w = owner.wait_for_status(w.id, "running").await;
    assert_eq!(
        (
            w.latest_build.reason.as_str(),
            w.latest_build.template_version_id
        ),
        ("autostart", old.id)
    );
    let logs: Vec<codersdk::ProvisionerJobLog> = owner
        .get_json(&format!(
            "/api/v2/workspacebuilds/{}/logs",
            w.latest_build.id
        ))
        .await
        .unwrap();
    assert!(
        logs.iter().any(|l| l.stage == "Autostart"
            && l.output.contains("Unable to validate parameter \"must\"")),
        "{logs:?}"
    );
}

#[tokio::test]
async fn dormancy_then_autodelete_end_to_end() {
    let srv = TestServer::start().await;
    let (owner, first) = srv.owner().await;
    let (t, _) = create_template(&owner, first.organization_id, "idle", &echo()).await;
    patch_template(
        &owner,
        t.id,
        json!({"time_til_dormant_ms": 60_000, "time_til_dormant_autodelete_ms": 120_000}),
    )
    .await;
    let w = owner.create_workspace(t.id, "dev").await;
    let w = owner.wait_for_status(w.id, "running").await;
    let ex = srv.executor();
    let idle_since = w.last_used_at;
    assert!(ex.tick(idle_since).await.is_empty());
    let at = idle_since + chrono::Duration::minutes(2);
    let done = ex.tick(at).await;
    assert_eq!(done.len(), 1);
    let w = owner.wait_for_status(w.id, "stopped").await;
    assert_eq!(w.latest_build.reason, "dormancy");
    assert!(w.dormant_at.is_some());
    let deleting_at = w.deleting_at.expect("auto-delete is scheduled");
    // Dormant workspaces are not searched away and cannot be started by users.
    let found: codersdk::WorkspacesResponse = owner
        .get_json("/api/v2/workspaces?q=dormant:true")
        .await
        .unwrap();
    assert_eq!(found.count, 1);
    assert!(ex.tick(deleting_at).await.is_empty(), "not before its time");
    let done = ex.tick(deleting_at + minute()).await;
    assert_eq!(done.len(), 1);
    let w = owner.wait_for_status(w.id, "deleted").await;
    assert_eq!(w.latest_build.reason, "autodelete");
    let (status, _) = raw_json(&owner, "GET", &format!("/api/v2/workspaces/{}", w.id), None).await;
    assert_eq!(status, 410);
}

#[tokio::test]
async fn failed_starts_are_stopped_after_the_failure_ttl() {
    let srv = TestServer::start().await;
    let (owner, first) = srv.owner().await;
    let (t, _) = create_template(
        &owner,
        first.organization_id,
        "flaky",
        &json!({"start": {"error": "boom"}}),
    )
    .await;
    patch_template(&owner, t.id, json!({"failure_ttl_ms": 60_000})).await;
    let w = owner.create_workspace(t.id, "dev").await;
    let w = owner.wait_for_status(w.id, "failed").await;
    let failed_at = w.latest_build.job.completed_at.unwrap();
    let ex = srv.executor();
    assert!(ex.tick(failed_at).await.is_empty());
    assert_eq!(
        ex.tick(failed_at + chrono::Duration::minutes(2))
            .await
            .len(),
        1
    );
    let w = owner.wait_for_status(w.id, "stopped").await;
    assert_eq!(w.latest_build.reason, "failedstop");
}

#[tokio::test]
async fn suspended_owners_are_stopped_by_the_real_poll_loop() {
    let srv =
        TestServer::start_with(|o| o.autobuild_poll_interval = Duration::from_millis(300)).await;
    let (owner, first) = srv.owner().await;
    let (t, _) = create_template(&owner, first.organization_id, "loop", &echo()).await;
    let (member, user) = srv.member(&owner, "sue").await;
    let w = member.create_workspace(t.id, "dev").await;
    owner.wait_for_status(w.id, "running").await;
    let (status, _) = raw_json(
        &owner,
        "PUT",
        &format!("/api/v2/users/{}/status/suspend", user.id),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let w = owner.wait_for_status(w.id, "stopped").await;
    assert_eq!(w.latest_build.reason, "autostop");
}

#[tokio::test]
async fn quiet_hours_and_the_autostop_requirement() {
    let srv = TestServer::start().await;
    let (owner, first) = srv.owner().await;
    let got: serde_json::Value = owner
        .get_json("/api/v2/users/me/quiet-hours")
        .await
        .unwrap();
    assert_eq!(
        (
            got["user_set"].as_bool(),
            got["time"].as_str(),
            got["timezone"].as_str()
        ),
        (Some(false), Some("00:00"), Some("UTC"))
    );
    let (status, body) = raw_json(
        &owner,
        "PUT",
        "/api/v2/users/me/quiet-hours",
        Some(r#"{"schedule":"CRON_TZ=Europe/Berlin 0 2 * * *"}"#),
    )
    .await;
    assert_eq!(
        (status, body["user_set"].as_bool(), body["time"].as_str()),
        (200, Some(true), Some("02:00"))
    );
    let (status, _) = raw_json(
        &owner,
        "PUT",
        "/api/v2/users/me/quiet-hours",
        Some(r#"{"schedule":"0 2 * * 1-5"}"#),
    )
    .await;
    assert_eq!(status, 400);

    let (t, _) = create_template(&owner, first.organization_id, "required", &echo()).await;
    let all_days = json!([
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday"
    ]);
    patch_template(
        &owner,
        t.id,
        json!({"autostop_requirement": {"days_of_week": all_days, "weeks": 1}}),
    )
    .await;
    let w = owner
        .create_workspace_with(
            t.id,
            "dev",
            json!({"ttl_ms": 30 * 24 * 3_600_000i64 - 60_000}),
        )
        .await;
    let w = owner.wait_for_status(w.id, "running").await;
    let max = w
        .latest_build
        .max_deadline
        .expect("the requirement sets a max deadline");
    let deadline = w.latest_build.deadline.unwrap();
    assert!(
        deadline <= max,
        "the deadline never passes the max deadline"
    );
    assert!(
        max > Utc::now() + chrono::Duration::minutes(59)
            && max <= Utc::now() + chrono::Duration::hours(25)
    );
    let berlin_two = max
        .with_timezone(&chrono_tz::Europe::Berlin)
        .format("%H:%M")
        .to_string();
    assert_eq!(
        berlin_two, "02:00",
        "the max deadline is the start of the owner's quiet hours"
    );
    // Extending past the max deadline is refused.
    let (status, _) = raw_json(
        &owner,
        "PUT",
        &format!("/api/v2/workspaces/{}/extend", w.id),
        Some(&json!({"deadline": max + chrono::Duration::hours(1)}).to_string()),
    )
    .await;
    assert_eq!(status, 400);
}
