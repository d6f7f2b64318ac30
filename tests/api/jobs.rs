//! The provisioner job queue through the API: imports, failures, cancellation, queueing, the
//! reaper, dry runs, daemons, and several processes sharing one database.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use codersdk::{
    ProvisionerDaemon, ProvisionerJob, TemplateVersionParameter, TemplateVersionVariable,
    VariableValue, WorkspaceResource,
};
use serde_json::json;

use crate::harness::echo::{
    create_template, create_version, create_version_with, wait_import, wait_status,
};
use crate::harness::replica::{free_port, Replica};
use crate::harness::workspace::WorkspaceApi;
use crate::harness::{expect_error, raw_json, TestServer};

fn rich_echo() -> serde_json::Value {
    json!({
        "parse": {
            "readme": "# Hello",
            "variables": [
                {"name": "region", "type": "string", "default_value": "eu"},
                {"name": "secret", "type": "string", "default_value": "s3cret", "sensitive": true}
            ],
            "parameters": [
                {"name": "cpu", "display_name": "CPU", "type": "number", "default_value": "2", "mutable": true,
                 "validation_min": 1, "validation_max": 8,
                 "options": []},
                {"name": "size", "type": "string", "default_value": "small",
                 "options": [{"name": "Small", "value": "small"}, {"name": "Large", "value": "large"}]}
            ],
            "logs": [{"level": "info", "output": "parsing"}, {"level": "warn", "output": "careful"}]
        },
        "start": {"resources": [{"name": "dev", "type": "echo_machine", "daily_cost": 3,
            "metadata": [{"key": "cpu", "value": "{{param.cpu}}"}, {"key": "token", "value": "x", "sensitive": true}],
            "agents": [{"name": "main", "operating_system": "linux", "architecture": "amd64",
                        "apps": [{"slug": "code", "display_name": "Code", "url": "http://localhost:8080"}]}]}]},
        "stop": {"resources": [{"name": "dev", "type": "echo_machine"}]}
    })
}

#[tokio::test]
async fn import_stores_everything_the_job_produced() {
    let srv = TestServer::start().await;
    let (owner, first) = srv.owner().await;
    let v = create_version(&owner, first.organization_id, &rich_echo(), None).await;
    assert_eq!(v.job.kind, "template_version_import");
    assert_eq!(v.job.input.template_version_id, Some(v.id));
    assert_eq!(
        v.matched_provisioners.count, 3,
        "three built-in daemons run echo"
    );
    let v = wait_import(&owner, v.id).await;
    assert_eq!(v.job.status, "succeeded", "{:?}", v.job);
    assert!(v.job.started_at.is_some() && v.job.completed_at.is_some());
    assert!(v.job.worker_id.is_some() && !v.job.worker_name.is_empty());
    assert_eq!(v.readme, "# Hello");

    let base = format!("/api/v2/templateversions/{}", v.id);
    let params: Vec<TemplateVersionParameter> = owner
        .get_json(&format!("{base}/rich-parameters"))
        .await
        .unwrap();
    assert_eq!(
        params.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
        ["cpu", "size"]
    );
    assert_eq!(
        (params[0].validation_min, params[0].validation_max),
        (Some(1), Some(8))
    );
    assert_eq!(params[1].options.len(), 2);
    let vars: Vec<TemplateVersionVariable> =
        owner.get_json(&format!("{base}/variables")).await.unwrap();
    assert_eq!(vars[0].value, "eu");
    assert_eq!(
        (vars[1].value.as_str(), vars[1].default_value.as_str()),
        ("*redacted*", "*redacted*")
    );

    let logs = owner.template_version_logs(v.id, 0).await.unwrap();
    let outputs: Vec<_> = logs.iter().map(|l| l.output.as_str()).collect();
    assert_eq!(outputs, ["parsing", "careful"]);
    assert_eq!(logs[1].log_level, "warn");
    assert!(logs[0].id < logs[1].id);
    assert_eq!(
        owner
            .template_version_logs(v.id, logs[0].id)
            .await
            .unwrap()
            .len(),
        1
    );
    let (status, body) = raw_json(&owner, "GET", &format!("{base}/logs?after=abc"), None).await;
    assert_eq!(
        (status, body["message"].as_str()),
        (400, Some("Query param \"after\" must be an integer."))
    );

    let resources: Vec<WorkspaceResource> =
        owner.get_json(&format!("{base}/resources")).await.unwrap();
    let transitions: Vec<_> = resources
        .iter()
        .map(|r| r.workspace_transition.as_str())
        .collect();
    assert_eq!(transitions, ["start", "stop"]);
    let start = &resources[0];
    assert_eq!(
        (start.name.as_str(), start.kind.as_str(), start.daily_cost),
        ("dev", "echo_machine", 3)
    );
    assert_eq!(
        start.metadata[1].value, "",
        "sensitive metadata is not shown"
    );
    assert_eq!(start.agents[0].name, "main");
    assert_eq!(start.agents[0].status, "connecting");
    assert_eq!(start.agents[0].apps[0].slug, "code");
    // Nothing chose display apps: the coder provider's defaults, in Coder's order.
    assert_eq!(
        start.agents[0].display_apps,
        [
            "vscode",
            "ssh_helper",
            "port_forwarding_helper",
            "web_terminal"
        ]
    );

    for path in ["external-auth", "presets", "parameters", "schema"] {
        let (status, body) = raw_json(&owner, "GET", &format!("{base}/{path}"), None).await;
        assert_eq!((status, body), (200, json!([])), "{path}");
    }
}

#[tokio::test]
async fn failed_imports_and_required_variables() {
    let srv = TestServer::start().await;
    let (owner, first) = srv.owner().await;
    let org = first.organization_id;
    let bad = create_version(
        &owner,
        org,
        &json!({"parse": {"error": "syntax error on line 3"}}),
        None,
    )
    .await;
    let bad = wait_import(&owner, bad.id).await;
    assert_eq!(
        (bad.job.status.as_str(), bad.job.error.as_str()),
        ("failed", "syntax error on line 3")
    );
    assert_eq!(bad.job.error_code, None);

    let needs =
        json!({"parse": {"variables": [{"name": "region", "type": "string", "required": true}]}});
    let v = wait_import(&owner, create_version(&owner, org, &needs, None).await.id).await;
    assert_eq!(v.job.status, "failed");
    assert_eq!(
        v.job.error_code.as_deref(),
        Some("REQUIRED_TEMPLATE_VARIABLES")
    );
    // The failed version still lists the variables it found, as upstream's, so clients can
    // ask for the missing ones (`coder templates push` does).
    let vars: Vec<TemplateVersionVariable> = owner
        .get_json(&format!("/api/v2/templateversions/{}/variables", v.id))
        .await
        .unwrap();
    assert_eq!(
        (vars.len(), vars[0].name.as_str(), vars[0].value.as_str()),
        (1, "region", "")
    );
    assert!(vars[0].required);

    let v = create_version_with(&owner, org, &needs, |r| {
        r.user_variable_values = vec![VariableValue {
            name: "region".into(),
            value: "us".into(),
        }];
    })
    .await;
    let v = wait_import(&owner, v.id).await;
    assert_eq!(v.job.status, "succeeded", "{:?}", v.job);
    let vars: Vec<TemplateVersionVariable> = owner
        .get_json(&format!("/api/v2/templateversions/{}/variables", v.id))
        .await
        .unwrap();
    assert_eq!((vars[0].value.as_str(), vars[0].required), ("us", true));

    // Bad requests create nothing.
    let (status, _) = raw_json(&owner, "POST", &format!("/api/v2/organizations/{org}/templateversions"), Some(r#"{"storage_method":"file","provisioner":"nope","file_id":"00000000-0000-0000-0000-000000000001"}"#)).await;
    assert_eq!(status, 400);
    let (status, body) = raw_json(
        &owner,
        "POST",
        &format!("/api/v2/organizations/{org}/templateversions"),
        Some(&format!(
            r#"{{"storage_method":"file","provisioner":"echo","file_id":"{}"}}"#,
            uuid::Uuid::new_v4()
        )),
    )
    .await;
    assert_eq!(
        (status, body["message"].as_str()),
        (404, Some("File not found."))
    );
    let (status, body) = raw_json(
        &owner,
        "POST",
        &format!("/api/v2/organizations/{org}/templateversions"),
        Some(r#"{"storage_method":"file","provisioner":"echo"}"#),
    )
    .await;
    assert_eq!(
        (status, body["message"].as_str()),
        (
            400,
            Some("You must specify either an example_id or a file_id.")
        )
    );
    let jobs: Vec<ProvisionerJob> = owner
        .get_json(&format!("/api/v2/organizations/{org}/provisionerjobs"))
        .await
        .unwrap();
    assert_eq!(jobs.len(), 3);
}

#[tokio::test]
async fn cancel_pending_and_running_jobs() {
    // No daemons: jobs stay pending until canceled.
    let srv = TestServer::start_with(|o| o.provisioner_daemons = 0).await;
    let (owner, first) = srv.owner().await;
    let org = first.organization_id;
    let v = create_version(&owner, org, &json!({}), None).await;
    assert_eq!(
        (v.job.status.as_str(), v.matched_provisioners.count),
        ("pending", 0)
    );
    let path = format!("/api/v2/templateversions/{}/cancel", v.id);
    let (status, _) = raw_json(
        &owner,
        "PATCH",
        &format!("{path}?expect_status=running"),
        None,
    )
    .await;
    assert_eq!(status, 412);
    let (status, body) = raw_json(
        &owner,
        "PATCH",
        &format!("{path}?expect_status=pending"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let after = owner.template_version(v.id).await.unwrap();
    assert_eq!(after.job.status, "canceled");
    assert!(after.job.canceled_at.is_some() && after.job.completed_at.is_some());
    let (status, body) = raw_json(&owner, "PATCH", &path, None).await;
    assert_eq!(
        (status, body["message"].as_str()),
        (400, Some("Job has already been marked as canceled!"))
    );
    srv.stop().await;

    let srv = TestServer::start().await;
    let (owner, first) = srv.owner().await;
    let v = create_version(
        &owner,
        first.organization_id,
        &json!({"parse": {"block": true}}),
        None,
    )
    .await;
    wait_status(&owner, v.id, "running").await;
    let (status, _) = raw_json(
        &owner,
        "PATCH",
        &format!("/api/v2/templateversions/{}/cancel", v.id),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let canceling = owner.template_version(v.id).await.unwrap();
    assert!(
        matches!(canceling.job.status.as_str(), "canceling" | "canceled"),
        "{:?}",
        canceling.job
    );
    let started = Instant::now();
    let done = wait_status(&owner, v.id, "canceled").await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the daemon noticed the cancel promptly"
    );
    assert!(done.job.error.is_empty());
    let (status, body) = raw_json(
        &owner,
        "PATCH",
        &format!("/api/v2/templateversions/{}/cancel", v.id),
        None,
    )
    .await;
    assert_eq!(
        (status, body["message"].as_str()),
        (400, Some("Job has already been marked as canceled!"))
    );

    let ok_v = wait_import(
        &owner,
        create_version(&owner, first.organization_id, &json!({}), None)
            .await
            .id,
    )
    .await;
    let (status, body) = raw_json(
        &owner,
        "PATCH",
        &format!("/api/v2/templateversions/{}/cancel", ok_v.id),
        None,
    )
    .await;
    assert_eq!(
        (status, body["message"].as_str()),
        (400, Some("Job has already completed!"))
    );
}

#[tokio::test]
async fn queue_positions_count_down() {
    let srv = TestServer::start_with(|o| o.provisioner_daemons = 1).await;
    let (owner, first) = srv.owner().await;
    let org = first.organization_id;
    let slow = json!({"parse": {"duration_ms": 2000}});
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(create_version(&owner, org, &slow, None).await.id);
    }
    wait_status(&owner, ids[0], "running").await;
    let second = owner.template_version(ids[1]).await.unwrap();
    let third = owner.template_version(ids[2]).await.unwrap();
    assert_eq!(
        (second.job.queue_position, second.job.queue_size),
        (1, 2),
        "{:?}",
        second.job
    );
    assert_eq!((third.job.queue_position, third.job.queue_size), (2, 2));
    assert_eq!(third.job.available_workers.len(), 1);
    wait_status(&owner, ids[1], "running").await;
    let third = owner.template_version(ids[2]).await.unwrap();
    assert_eq!((third.job.queue_position, third.job.queue_size), (1, 1));
    for id in ids {
        let v = wait_import(&owner, id).await;
        assert_eq!(
            (v.job.status.as_str(), v.job.queue_position),
            ("succeeded", 0)
        );
    }
}

/// A created workspace's answer counts its job's place in the queue and the daemons that could
/// take it in the creating statement; a read right after must say the same.
#[tokio::test]
async fn a_new_workspace_answers_its_place_in_the_queue_and_its_daemons() {
    let srv = TestServer::start_with(|o| o.provisioner_daemons = 1).await;
    let (owner, first) = srv.owner().await;
    let org = first.organization_id;
    let (blocking, _) =
        create_template(&owner, org, "blocking", &json!({"start": {"block": true}})).await;
    let running = owner.create_workspace(blocking.id, "running").await;
    owner
        .wait_for_job_status(running.latest_build.id, "running", Duration::from_secs(30))
        .await;
    let second = owner.create_workspace(blocking.id, "second").await;
    let third = owner.create_workspace(blocking.id, "third").await;
    let daemons: Vec<ProvisionerDaemon> = owner
        .get_json(&format!("/api/v2/organizations/{org}/provisionerdaemons"))
        .await
        .unwrap();
    assert_eq!(daemons.len(), 1);
    for (created, place) in [(&second, 1), (&third, 2)] {
        let job = &created.latest_build.job;
        assert_eq!(job.status, "pending", "{job:?}");
        assert_eq!((job.queue_position, job.queue_size), (place, place));
        assert_eq!(job.available_workers, vec![daemons[0].id]);
        let matched = &created.latest_build.matched_provisioners;
        assert_eq!(matched.count, 1, "{matched:?}");
        // The daemon runs the first job and has been seen.
        assert!(matched.most_recently_seen.is_some(), "{matched:?}");
    }
    // The third was queued last: what its creation said is what a read says.
    let read = owner.workspace(third.id).await;
    let (made, seen) = (&third.latest_build, &read.latest_build);
    assert_eq!(
        (made.job.queue_position, made.job.queue_size),
        (seen.job.queue_position, seen.job.queue_size)
    );
    assert_eq!(made.job.available_workers, seen.job.available_workers);
    assert_eq!(
        (
            made.matched_provisioners.count,
            made.matched_provisioners.available
        ),
        (
            seen.matched_provisioners.count,
            seen.matched_provisioners.available
        )
    );
    let read = owner.workspace(second.id).await;
    let job = &read.latest_build.job;
    assert_eq!((job.queue_position, job.queue_size), (1, 2));
    for w in [&third, &second, &running] {
        let (status, body) = raw_json(
            &owner,
            "PATCH",
            &format!("/api/v2/workspacebuilds/{}/cancel", w.latest_build.id),
            None,
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
    srv.stop().await;
}

#[tokio::test]
async fn reaper_fails_stale_pending_and_hung_jobs() {
    let srv = TestServer::start_with(|o| {
        o.provisioner_daemons = 0;
        o.job_reaper_interval = Duration::from_millis(200);
        o.job_pending_after = Duration::from_secs(1);
        o.job_hung_after = Duration::from_secs(1);
    })
    .await;
    let (owner, first) = srv.owner().await;
    let pending = create_version(&owner, first.organization_id, &json!({}), None).await;
    let hung = create_version(&owner, first.organization_id, &json!({}), None).await;
    // A daemon took `hung` and then died: the row is left as a dead daemon leaves it.
    let mut db = <sqlx::PgConnection as sqlx::Connection>::connect(&srv.db_url)
        .await
        .unwrap();
    sqlx::query("UPDATE provisioner_jobs SET started_at = now(), updated_at = now(), worker_id = gen_random_uuid() WHERE id = $1")
        .bind(hung.job.id)
        .execute(&mut db)
        .await
        .unwrap();
    let pending = wait_status(&owner, pending.id, "failed").await;
    assert_eq!(
        pending.job.error,
        "Coder: Build has been detected as pending for 1 second and has been terminated by the reaper."
    );
    let hung = wait_status(&owner, hung.id, "failed").await;
    assert!(
        hung.job.error.contains("detected as hung"),
        "{}",
        hung.job.error
    );
    let logs = owner.template_version_logs(hung.id, 0).await.unwrap();
    let outputs: Vec<_> = logs.iter().map(|l| l.output.as_str()).collect();
    assert_eq!(outputs.len(), 5);
    assert_eq!(
        outputs[2],
        "Coder: Build has been detected as hung for 1 second and will be terminated."
    );
    assert!(logs
        .iter()
        .all(|l| l.log_level == "error" && l.log_source == "provisioner_daemon"));
}

#[tokio::test]
async fn dry_runs() {
    let srv = TestServer::start().await;
    let (owner, first) = srv.owner().await;
    let (member, _) = srv.member(&owner, "dana").await;
    let v = wait_import(
        &owner,
        create_version(&owner, first.organization_id, &rich_echo(), None)
            .await
            .id,
    )
    .await;
    let base = format!("/api/v2/templateversions/{}/dry-run", v.id);
    let (status, body) = raw_json(
        &owner,
        "POST",
        &base,
        Some(r#"{"workspace_name":"try","rich_parameter_values":[{"name":"cpu","value":"6"}]}"#),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let job: ProvisionerJob = serde_json::from_value(body).unwrap();
    assert_eq!(job.kind, "template_version_dry_run");
    let started = Instant::now();
    let job = loop {
        let j: ProvisionerJob = owner.get_json(&format!("{base}/{}", job.id)).await.unwrap();
        if j.status == "succeeded" {
            break j;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "{j:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let resources: Vec<WorkspaceResource> = owner
        .get_json(&format!("{base}/{}/resources", job.id))
        .await
        .unwrap();
    assert_eq!(
        resources[0].metadata[0].value, "6",
        "parameters reach the dry run"
    );
    let matched: codersdk::MatchedProvisioners = owner
        .get_json(&format!("{base}/{}/matched-provisioners", job.id))
        .await
        .unwrap();
    assert_eq!((matched.count, matched.available), (3, 3));
    let (status, _) = raw_json(&owner, "GET", &format!("{base}/{}/logs", job.id), None).await;
    assert_eq!(status, 200);
    let (status, body) =
        raw_json(&owner, "PATCH", &format!("{base}/{}/cancel", job.id), None).await;
    assert_eq!(
        (status, body["message"].as_str()),
        (400, Some("Job has already completed!"))
    );
    // Someone else's dry run is not theirs to see (the member cannot even read the version).
    let (status, _) = raw_json(&member, "GET", &format!("{base}/{}", job.id), None).await;
    assert_eq!(status, 404);
    let (status, _) = raw_json(
        &owner,
        "GET",
        &format!("{base}/{}", uuid::Uuid::new_v4()),
        None,
    )
    .await;
    assert_eq!(status, 404);
    // A version whose import failed cannot be dry-run.
    let failed = wait_import(
        &owner,
        create_version(
            &owner,
            first.organization_id,
            &json!({"parse": {"error": "x"}}),
            None,
        )
        .await
        .id,
    )
    .await;
    let (status, _) = raw_json(
        &owner,
        "POST",
        &format!("/api/v2/templateversions/{}/dry-run", failed.id),
        Some("{}"),
    )
    .await;
    assert_eq!(status, 400);
}

/// A daemon takes its next job while the last one's result is still being stored: the
/// completion that commits after the next acquisition must not list the daemon idle (nor lose
/// its previous job), and every build of the run succeeds once.
#[tokio::test]
async fn a_daemon_storing_one_result_while_running_the_next_is_listed_with_each() {
    let srv = TestServer::start_with(|o| o.provisioner_daemons = 1).await;
    let (owner, first) = srv.owner().await;
    let org = first.organization_id;
    let quick = json!({"start": {"resources": [{"name": "dev", "type": "echo_machine",
        "agents": [{"name": "main", "operating_system": "linux", "architecture": "amd64"}]}]}});
    let (quick, _) = create_template(&owner, org, "quick", &quick).await;
    let (blocking, _) =
        create_template(&owner, org, "blocking", &json!({"start": {"block": true}})).await;
    let (slow, _) = create_template(
        &owner,
        org,
        "slow",
        &json!({"start": {"duration_ms": 1500}}),
    )
    .await;
    // Queued behind a slow one, so that the one daemon runs them back to back.
    owner.create_workspace(slow.id, "slow").await;
    let mut quick_ones = Vec::new();
    for i in 0..12 {
        quick_ones.push(owner.create_workspace(quick.id, &format!("q{i}")).await);
    }
    let last = owner.create_workspace(blocking.id, "last").await;
    let running = owner
        .wait_for_job_status(last.latest_build.id, "running", Duration::from_secs(30))
        .await;
    let path = format!("/api/v2/organizations/{org}/provisionerdaemons");
    let before_last = quick_ones.last().expect("quick workspaces");
    let started = Instant::now();
    loop {
        let daemons: Vec<ProvisionerDaemon> = owner.get_json(&path).await.unwrap();
        assert_eq!(daemons.len(), 1);
        let d = &daemons[0];
        let current = d.current_job.as_ref().map(|j| j.id);
        let previous = d.previous_job.as_ref().map(|j| j.id);
        // The blocking job runs until canceled: the daemon is busy with it from its
        // acquisition on, and once the job before it is stored, that is its previous one.
        assert_eq!(d.status, "busy", "daemon listed {d:?} while a job runs");
        assert_eq!(current, Some(running.job.id), "daemon's current job: {d:?}");
        if previous == Some(before_last.latest_build.job.id) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the daemon's previous job stays {previous:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for w in &quick_ones {
        let w = owner.workspace(w.id).await;
        assert_eq!(w.latest_build.job.status, "succeeded", "{}", w.name);
        assert_eq!(w.latest_build.build_number, 1);
    }
    let (status, _) = raw_json(
        &owner,
        "PATCH",
        &format!("/api/v2/workspacebuilds/{}/cancel", last.latest_build.id),
        None,
    )
    .await;
    assert_eq!(status, 200);
    owner
        .wait_for_job_status(last.latest_build.id, "canceled", Duration::from_secs(30))
        .await;
    let started = Instant::now();
    loop {
        let daemons: Vec<ProvisionerDaemon> = owner.get_json(&path).await.unwrap();
        let d = &daemons[0];
        if d.status == "idle" {
            assert!(d.current_job.is_none(), "{d:?}");
            assert_eq!(d.previous_job.as_ref().map(|j| j.id), Some(running.job.id));
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the daemon stays {d:?} after its job was canceled"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    srv.stop().await;
}

#[tokio::test]
async fn daemons_and_job_listing() {
    let srv = TestServer::start().await;
    let (owner, first) = srv.owner().await;
    let (member, _) = srv.member(&owner, "milo").await;
    let org = first.organization_id;
    let daemons: Vec<ProvisionerDaemon> = member
        .get_json(&format!("/api/v2/organizations/{org}/provisionerdaemons"))
        .await
        .unwrap();
    assert_eq!(daemons.len(), 3);
    assert!(daemons
        .iter()
        .all(|d| d.provisioners == ["echo"] && d.status == "idle" && d.organization_id == org));
    assert_eq!(
        daemons[0].tags.get("scope").map(String::as_str),
        Some("organization")
    );

    let v = wait_import(
        &owner,
        create_version(&owner, org, &json!({}), None).await.id,
    )
    .await;
    let daemons: Vec<ProvisionerDaemon> = owner
        .get_json(&format!("/api/v2/organizations/{org}/provisionerdaemons"))
        .await
        .unwrap();
    let worker = daemons
        .iter()
        .find(|d| Some(d.id) == v.job.worker_id)
        .expect("the worker is listed");
    assert_eq!(worker.previous_job.as_ref().map(|j| j.id), Some(v.job.id));

    let jobs: Vec<ProvisionerJob> = owner
        .get_json(&format!(
            "/api/v2/organizations/{org}/provisionerjobs?status=succeeded"
        ))
        .await
        .unwrap();
    assert_eq!(jobs.iter().map(|j| j.id).collect::<Vec<_>>(), [v.job.id]);
    let none: Vec<ProvisionerJob> = owner
        .get_json(&format!(
            "/api/v2/organizations/{org}/provisionerjobs?status=failed"
        ))
        .await
        .unwrap();
    assert!(none.is_empty());
    let one: ProvisionerJob = owner
        .get_json(&format!(
            "/api/v2/organizations/{org}/provisionerjobs/{}",
            v.job.id
        ))
        .await
        .unwrap();
    assert_eq!(one.metadata.template_version_name, v.name);
    let (status, _) = raw_json(
        &owner,
        "GET",
        &format!("/api/v2/organizations/{org}/provisionerjobs?status=bogus"),
        None,
    )
    .await;
    assert_eq!(status, 400);
    // Only owners and template admins see jobs.
    let (status, _) = raw_json(
        &member,
        "GET",
        &format!("/api/v2/organizations/{org}/provisionerjobs"),
        None,
    )
    .await;
    assert_eq!(status, 404);
    expect_error(
        member.template_version(v.id).await.unwrap_err(),
        404,
        "Resource not found or you do not have access to this resource",
    );
}

#[tokio::test]
async fn two_processes_never_run_a_job_twice() {
    let db_url = crate::harness::fresh_database().await;
    let mut replicas: Vec<Replica> = (0..2)
        .map(|_| Replica::spawn(&db_url, free_port(), &[("CODER_PROVISIONER_DAEMONS", "3")]))
        .collect();
    for r in &mut replicas {
        r.wait_healthy().await;
    }
    let urls: Vec<String> = replicas.iter().map(|r| r.url.clone()).collect();
    let (a, first) = crate::harness::create_owner(&crate::harness::checked_client(&urls[0])).await;
    let token = a.token().unwrap().to_string();
    let b = crate::harness::checked_client(&urls[1]).with_token(&token);
    const JOBS: usize = 24;
    let mut ids = Vec::new();
    for i in 0..JOBS {
        let echo = json!({"parse": {"duration_ms": 50, "logs": [{"output": format!("job {i}")}]}});
        // Alternate the replica that queues, so both announce and both run.
        let client = if i % 2 == 0 { &a } else { &b };
        ids.push(
            create_version(client, first.organization_id, &echo, None)
                .await
                .id,
        );
    }
    let mut workers: HashMap<String, usize> = HashMap::new();
    for (i, id) in ids.iter().enumerate() {
        let v = wait_import(&a, *id).await;
        assert_eq!(v.job.status, "succeeded", "{:?}", v.job);
        let logs = a.template_version_logs(*id, 0).await.unwrap();
        let mine: Vec<_> = logs.iter().map(|l| l.output.clone()).collect();
        assert_eq!(mine, [format!("job {i}")], "each job ran exactly once");
        *workers.entry(v.job.worker_name.clone()).or_default() += 1;
    }
    assert_eq!(workers.values().sum::<usize>(), JOBS);
    let daemons: Vec<ProvisionerDaemon> = a
        .get_json(&format!(
            "/api/v2/organizations/{}/provisionerdaemons",
            first.organization_id
        ))
        .await
        .unwrap();
    assert_eq!(daemons.len(), 6, "both replicas' daemons are registered");
    let prefixes: std::collections::HashSet<_> = workers
        .keys()
        .map(|n| n.rsplit_once('-').unwrap().0.to_string())
        .collect();
    assert_eq!(prefixes.len(), 2, "both replicas ran jobs: {workers:?}");
}
