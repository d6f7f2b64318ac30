//! Template API tests: creation from imported echo versions, reading, listing, settings,
//! versions (pagination, active version, renaming, archiving), ACLs, deletion, examples and DAUs.
//!
//! Longer than 800 lines on purpose: 16 independent tests of one resource, each on the shared
//! fixtures; splitting the file would only scatter them.

use codersdk::{
    AclAvailable, ArchiveTemplateVersionsRequest, ArchiveTemplateVersionsResponse, Client,
    CreateTemplateRequest, CreateTemplateVersionRequest, DausResponse, Template, TemplateAcl,
    TemplateAutostartRequirement, TemplateAutostopRequirement, TemplateExample, TemplateVersion,
    TemplateVersionParameter, UpdateActiveTemplateVersion, UpdateTemplateAcl, UpdateTemplateMeta,
};
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::harness::echo::{
    create_template, create_version, create_version_with, template_from, wait_import, wait_status,
};
use crate::harness::workspace::WorkspaceApi;
use crate::harness::{expect_error, raw_json, TestServer};

const ALL_DAYS: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

/// An archive whose import succeeds.
fn echo() -> Value {
    json!({"parse": {
        "readme": "# Hello\nA test template.",
        "logs": [{"level": "info", "output": "parsing"}]
    }})
}

/// An archive whose import fails.
fn broken_echo() -> Value {
    json!({"parse": {"error": "the template is broken"}})
}

/// A version named `name` (optionally in `template`) whose import has succeeded.
async fn imported(
    client: &Client,
    org: Uuid,
    name: &str,
    template: Option<Uuid>,
) -> TemplateVersion {
    let v = create_version_with(client, org, &echo(), |r| {
        r.name = name.into();
        r.template_id = template;
    })
    .await;
    let v = wait_import(client, v.id).await;
    assert_eq!(v.job.status, "succeeded", "{:?}", v.job);
    v
}

/// A version in `template` whose import has failed.
async fn failed(client: &Client, org: Uuid, template: Uuid) -> TemplateVersion {
    let v = create_version(client, org, &broken_echo(), Some(template)).await;
    let v = wait_import(client, v.id).await;
    assert_eq!(v.job.status, "failed", "{:?}", v.job);
    assert_eq!(v.job.error, "the template is broken");
    v
}

async fn get<T: serde::de::DeserializeOwned>(client: &Client, path: &str) -> T {
    client
        .request::<(), T>(Method::GET, path, None)
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

async fn patch_template(client: &Client, id: Uuid, meta: &UpdateTemplateMeta) -> Template {
    client
        .request(
            Method::PATCH,
            &format!("/api/v2/templates/{id}"),
            Some(meta),
        )
        .await
        .unwrap_or_else(|e| panic!("PATCH template {id}: {e}"))
}

fn names(templates: &[Template]) -> Vec<&str> {
    templates.iter().map(|t| t.name.as_str()).collect()
}

fn ids(versions: &[TemplateVersion]) -> Vec<Uuid> {
    versions.iter().map(|v| v.id).collect()
}

/// The status and body of an API error.
fn api_error(err: codersdk::ClientError) -> (u16, codersdk::Response) {
    match err {
        codersdk::ClientError::Api { status, response } => (status.as_u16(), response),
        other => panic!("expected an API error, got {other}"),
    }
}

fn fields(body: &Value) -> Vec<&str> {
    body["validations"]
        .as_array()
        .map(|v| v.iter().filter_map(|e| e["field"].as_str()).collect())
        .unwrap_or_default()
}

/// GET /templates/{id}/acl/available: one `codersdk.ACLAvailable` (the reference documents an
/// array; the harness checks the object Coder really answers).
async fn acl_available(client: &Client, template: Uuid) -> AclAvailable {
    client
        .get_json(&format!("/api/v2/templates/{template}/acl/available"))
        .await
        .expect("acl/available")
}

#[tokio::test]
async fn create_template_defaults_and_reads() {
    let srv = TestServer::start().await;
    let (owner, first) = srv.owner().await;
    let org = first.organization_id;
    let (t, v) = create_template(&owner, org, "alpha", &echo()).await;

    assert_eq!(t.name, "alpha");
    assert_eq!(t.organization_id, org);
    assert_eq!(t.organization_name, "coder");
    assert_eq!(t.provisioner, "echo");
    assert_eq!(t.active_version_id, v.id);
    assert_eq!(t.created_by_id, first.user_id);
    assert_eq!(t.created_by_name, "owner");
    assert_eq!(
        (
            t.display_name.as_str(),
            t.description.as_str(),
            t.icon.as_str()
        ),
        ("", "", "")
    );
    assert!(t.allow_user_autostart);
    assert!(t.allow_user_autostop);
    assert!(!t.allow_user_cancel_workspace_jobs);
    assert_eq!(t.activity_bump_ms, 3_600_000);
    assert_eq!(t.default_ttl_ms, 0);
    assert_eq!(t.failure_ttl_ms, 0);
    assert_eq!(t.time_til_dormant_ms, 0);
    assert_eq!(t.time_til_dormant_autodelete_ms, 0);
    assert_eq!(t.autostop_requirement.weeks, 1);
    assert!(t.autostop_requirement.days_of_week.is_empty());
    assert_eq!(t.autostart_requirement.days_of_week, ALL_DAYS);
    assert!(!t.deprecated);
    assert_eq!(t.deprecation_message, "");
    assert!(!t.require_active_version);
    assert_eq!(t.max_port_share_level, "owner");
    assert_eq!(t.active_user_count, 0);

    // The version now belongs to the template.
    let v = owner.template_version(v.id).await.unwrap();
    assert_eq!(v.template_id, Some(t.id));

    let created = serde_json::to_value(&t).unwrap();
    let by_id = owner.template(t.id).await.unwrap();
    assert_eq!(serde_json::to_value(&by_id).unwrap(), created);
    let by_name: Template = get(&owner, "/api/v2/organizations/coder/templates/alpha").await;
    assert_eq!(serde_json::to_value(&by_name).unwrap(), created);
    // Names are matched without regard to case, as Coder does.
    let upper: Template = get(&owner, "/api/v2/organizations/coder/templates/ALPHA").await;
    assert_eq!(upper.id, t.id);
    let by_org_id: Template = get(
        &owner,
        &format!("/api/v2/organizations/{org}/templates/alpha"),
    )
    .await;
    assert_eq!(by_org_id.id, t.id);

    // Settings given at creation are kept; autostop weeks 0 means 1.
    let bv = create_version(&owner, org, &json!({}), None).await;
    let bv = wait_import(&owner, bv.id).await;
    let beta = owner
        .create_template(
            org,
            &CreateTemplateRequest {
                name: "beta".into(),
                display_name: "Beta".into(),
                description: "The second".into(),
                icon: "/icon/beta.svg".into(),
                template_version_id: Some(bv.id),
                default_ttl_ms: Some(3_600_000),
                activity_bump_ms: Some(0),
                allow_user_autostart: Some(false),
                allow_user_cancel_workspace_jobs: Some(true),
                autostart_requirement: Some(TemplateAutostartRequirement {
                    days_of_week: vec!["monday".into()],
                }),
                autostop_requirement: Some(TemplateAutostopRequirement {
                    days_of_week: vec!["sunday".into()],
                    weeks: 0,
                }),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (
            beta.display_name.as_str(),
            beta.description.as_str(),
            beta.icon.as_str()
        ),
        ("Beta", "The second", "/icon/beta.svg")
    );
    assert_eq!((beta.default_ttl_ms, beta.activity_bump_ms), (3_600_000, 0));
    assert!(!beta.allow_user_autostart && beta.allow_user_autostop);
    assert!(beta.allow_user_cancel_workspace_jobs);
    assert_eq!(beta.autostart_requirement.days_of_week, ["monday"]);
    assert_eq!(
        beta.autostop_requirement,
        TemplateAutostopRequirement {
            days_of_week: vec!["sunday".into()],
            weeks: 1
        }
    );

    // Lists are sorted by name.
    let in_org: Vec<Template> =
        get(&owner, &format!("/api/v2/organizations/{org}/templates")).await;
    assert_eq!(names(&in_org), ["alpha", "beta"]);
    assert_eq!(serde_json::to_value(&in_org[0]).unwrap(), created);
    let by_org_name: Vec<Template> = get(&owner, "/api/v2/organizations/coder/templates").await;
    assert_eq!(names(&by_org_name), ["alpha", "beta"]);
    let all: Vec<Template> = get(&owner, "/api/v2/templates").await;
    assert_eq!(
        all.iter().map(|t| t.id).collect::<Vec<_>>(),
        [t.id, beta.id]
    );

    for path in [
        format!("/api/v2/templates/{}", Uuid::new_v4()),
        "/api/v2/organizations/coder/templates/nope".to_string(),
    ] {
        let (status, body) = raw_json(&owner, "GET", &path, None).await;
        assert_eq!(status, 404, "{path}: {body}");
    }
    let (status, _) = raw_json(
        &srv.client,
        "GET",
        &format!("/api/v2/templates/{}", t.id),
        None,
    )
    .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn create_template_errors() {
    let srv = TestServer::start().await;
    let (owner, first) = srv.owner().await;
    let org = first.organization_id;
    let (_, v1) = create_template(&owner, org, "alpha", &echo()).await;
    let v2 = imported(&owner, org, "second", None).await;
    let create = |name: &str, version: Option<Uuid>| CreateTemplateRequest {
        name: name.into(),
        template_version_id: version,
        ..Default::default()
    };

    let dup = owner
        .create_template(org, &create("ALPHA", Some(v2.id)))
        .await
        .unwrap_err();
    let resp = expect_error(dup, 409, "Template with name \"ALPHA\" already exists.");
    assert_eq!(resp.validations[0].field, "name");

    let (status, body) = raw_json(
        &owner,
        "POST",
        &format!("/api/v2/organizations/{org}/templates"),
        Some(r#"{"name":"nover"}"#),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(fields(&body), ["template_version_id"], "{body}");

    let unknown = owner
        .create_template(org, &create("unknown", Some(Uuid::new_v4())))
        .await
        .unwrap_err();
    let (status, resp) = api_error(unknown);
    assert_eq!(status, 404, "{resp:?}");
    assert_eq!(resp.validations[0].field, "template_version_id", "{resp:?}");

    let taken = owner
        .create_template(org, &create("taken", Some(v1.id)))
        .await
        .unwrap_err();
    expect_error(
        taken,
        400,
        &format!("Template version {} is already part of a template", v1.id),
    );

    for bad in ["bad name", "-dash", "x".repeat(33).as_str()] {
        let (status, body) = raw_json(
            &owner,
            "POST",
            &format!("/api/v2/organizations/{org}/templates"),
            Some(&json!({"name": bad, "template_version_id": v2.id}).to_string()),
        )
        .await;
        assert_eq!(status, 400, "{bad:?}: {body}");
        assert!(fields(&body).contains(&"name"), "{bad:?}: {body}");
    }

    let negative = owner
        .create_template(
            org,
            &CreateTemplateRequest {
                default_ttl_ms: Some(-1),
                ..create("negative", Some(v2.id))
            },
        )
        .await
        .unwrap_err();
    let (status, resp) = api_error(negative);
    assert_eq!(status, 400, "{resp:?}");
    assert_eq!(
        resp.validations
            .iter()
            .map(|v| v.field.as_str())
            .collect::<Vec<_>>(),
        ["default_ttl_ms"],
        "{resp:?}"
    );

    let long = "d".repeat(129);
    for (body, field) in [
        (json!({"description": long}), "description"),
        (json!({"display_name": "x".repeat(65)}), "display_name"),
        (
            json!({"autostop_requirement": {"days_of_week": [], "weeks": 17}}),
            "autostop_requirement.weeks",
        ),
        (
            json!({"autostart_requirement": {"days_of_week": ["someday"]}}),
            "autostart_requirement.days_of_week",
        ),
        (json!({"activity_bump_ms": -1}), "activity_bump_ms"),
    ] {
        let mut body = body;
        body["name"] = json!("invalid");
        body["template_version_id"] = json!(v2.id);
        let (status, resp) = raw_json(
            &owner,
            "POST",
            &format!("/api/v2/organizations/{org}/templates"),
            Some(&body.to_string()),
        )
        .await;
        assert_eq!(status, 400, "{body}: {resp}");
        assert_eq!(fields(&resp), [field], "{body}: {resp}");
    }

    // An archived version cannot start a template.
    let archived = imported(&owner, org, "archived", None).await;
    let (status, body) = raw_json(
        &owner,
        "POST",
        &format!("/api/v2/templateversions/{}/archive", archived.id),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let err = owner
        .create_template(org, &create("archived", Some(archived.id)))
        .await
        .unwrap_err();
    expect_error(
        err,
        400,
        &format!("Template version {} is archived.", archived.id),
    );

    // None of the failures used up the version.
    let t = template_from(&owner, org, "beta", v2.id).await;
    assert_eq!(t.active_version_id, v2.id);
    let all: Vec<Template> = get(&owner, "/api/v2/templates").await;
    assert_eq!(names(&all), ["alpha", "beta"]);
}

#[tokio::test]
async fn patch_template_settings() {
    let srv = TestServer::start().await;
    let (owner, first) = srv.owner().await;
    let org = first.organization_id;
    let (t, v) = create_template(&owner, org, "alpha", &echo()).await;
    create_template(&owner, org, "beta", &json!({})).await;
    let (member, _) = srv.member(&owner, "amy").await;

    let stop = TemplateAutostopRequirement {
        days_of_week: vec!["saturday".into(), "sunday".into()],
        weeks: 2,
    };
    let meta = UpdateTemplateMeta {
        display_name: Some("Alpha Template".into()),
        description: Some("The first one".into()),
        default_ttl_ms: Some(7_200_000),
        allow_user_cancel_workspace_jobs: Some(true),
        deprecation_message: Some("Use beta instead".into()),
        autostop_requirement: Some(stop.clone()),
        ..Default::default()
    };
    let u = patch_template(&owner, t.id, &meta).await;
    assert_eq!(u.id, t.id);
    assert_eq!(u.display_name, "Alpha Template");
    assert_eq!(u.description, "The first one");
    assert_eq!(u.default_ttl_ms, 7_200_000);
    assert!(u.allow_user_cancel_workspace_jobs);
    assert!(u.deprecated);
    assert_eq!(u.deprecation_message, "Use beta instead");
    assert_eq!(u.autostop_requirement, stop);
    assert!(u.updated_at >= t.updated_at);
    // Everything left out keeps its value.
    assert_eq!(u.name, "alpha");
    assert_eq!(u.icon, "");
    assert_eq!(u.activity_bump_ms, 3_600_000);
    assert!(u.allow_user_autostart && u.allow_user_autostop);
    assert_eq!(u.autostart_requirement.days_of_week, ALL_DAYS);
    assert_eq!(u.active_version_id, v.id);
    assert_eq!(u.created_at, t.created_at);
    assert_eq!(
        serde_json::to_value(owner.template(t.id).await.unwrap()).unwrap(),
        serde_json::to_value(&u).unwrap()
    );

    let path = format!("/api/v2/templates/{}", t.id);
    // Nothing to change: 304, and nothing changes.
    let same = serde_json::to_string(&meta).unwrap();
    for body in ["{}", same.as_str(), r#"{"display_name":"Alpha Template"}"#] {
        let (status, resp) = raw_json(&owner, "PATCH", &path, Some(body)).await;
        assert_eq!(status, 304, "{body}: {resp}");
    }
    assert_eq!(owner.template(t.id).await.unwrap().updated_at, u.updated_at);

    // Renaming onto another template's name conflicts.
    let (status, body) = raw_json(&owner, "PATCH", &path, Some(r#"{"name":"beta"}"#)).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(
        body["message"],
        "Template with name \"beta\" already exists."
    );
    assert_eq!(fields(&body), ["name"]);

    // Invalid settings are refused and change nothing.
    let (status, body) = raw_json(&owner, "PATCH", &path, Some(r#"{"name":"bad name"}"#)).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(fields(&body), ["name"]);
    let (status, body) = raw_json(&owner, "PATCH", &path, Some(r#"{"activity_bump_ms":-5}"#)).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(fields(&body), ["activity_bump_ms"]);
    let (status, body) = raw_json(
        &owner,
        "PATCH",
        &path,
        Some(r#"{"autostop_requirement":{"days_of_week":["funday"],"weeks":1}}"#),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(fields(&body), ["autostop_requirement.days_of_week"]);
    assert_eq!(
        owner.template(t.id).await.unwrap().activity_bump_ms,
        3_600_000
    );

    // A rename moves the name; clearing the deprecation message undeprecates.
    let renamed = patch_template(
        &owner,
        t.id,
        &UpdateTemplateMeta {
            name: Some("gamma".into()),
            deprecation_message: Some(String::new()),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(renamed.name, "gamma");
    assert!(!renamed.deprecated);
    assert_eq!(renamed.display_name, "Alpha Template");
    let by_name: Template = get(&owner, "/api/v2/organizations/coder/templates/gamma").await;
    assert_eq!(by_name.id, t.id);

    // Taking the Everyone group off hides the template from members.
    let (status, body) = raw_json(
        &owner,
        "PATCH",
        &path,
        Some(r#"{"disable_everyone_group_access":true}"#),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(get::<TemplateAcl>(&owner, &format!("{path}/acl"))
        .await
        .group
        .is_empty());
    let (status, _) = raw_json(&member, "GET", &path, None).await;
    assert_eq!(status, 404);
    // Once it is off, asking again changes nothing.
    let (status, _) = raw_json(
        &owner,
        "PATCH",
        &path,
        Some(r#"{"disable_everyone_group_access":true}"#),
    )
    .await;
    assert_eq!(status, 304);
    let (status, _) = raw_json(
        &owner,
        "GET",
        "/api/v2/organizations/coder/templates/alpha",
        None,
    )
    .await;
    assert_eq!(status, 404);
}

/// PATCH /templates/{id} applies all of its changes or none: a rename that conflicts must not
/// still take the Everyone group off the template (Coder does both in one transaction).
#[tokio::test]
async fn refused_patch_changes_nothing() {
    let srv = TestServer::start().await;
    let (owner, first) = srv.owner().await;
    let org = first.organization_id;
    let (t, _) = create_template(&owner, org, "alpha", &echo()).await;
    create_template(&owner, org, "beta", &json!({})).await;
    let (member, _) = srv.member(&owner, "amy").await;
    let path = format!("/api/v2/templates/{}", t.id);

    let (status, body) = raw_json(
        &owner,
        "PATCH",
        &path,
        Some(r#"{"name":"beta","display_name":"Renamed","disable_everyone_group_access":true}"#),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(
        body["message"],
        "Template with name \"beta\" already exists."
    );
    let after = owner.template(t.id).await.unwrap();
    assert_eq!(
        (after.name.as_str(), after.display_name.as_str()),
        ("alpha", "")
    );
    let acl: TemplateAcl = get(&owner, &format!("{path}/acl")).await;
    assert_eq!(
        acl.group
            .iter()
            .map(|g| (g.group.id, g.role.as_str()))
            .collect::<Vec<_>>(),
        [(org, "use")],
        "the refused patch took the Everyone group off the template"
    );
    let (status, body) = raw_json(&member, "GET", &path, None).await;
    assert_eq!(
        status, 200,
        "the member lost access through a refused patch: {body}"
    );
}

/// Found by the fuzzer: serde filled the update from a JSON list, by position, so
/// `[null, null]` was an empty update and answered 304 where Go's decoder says 400.
#[tokio::test]
async fn a_list_is_not_a_template_update() {
    let srv = TestServer::start().await;
    let (owner, first) = srv.owner().await;
    let (t, _) = create_template(&owner, first.organization_id, "alpha", &echo()).await;
    let path = format!("/api/v2/templates/{}", t.id);
    for body in ["[null, null]", r#"["beta", "Beta"]"#, "\"alpha\"", "7"] {
        let (status, resp) = raw_json(&owner, "PATCH", &path, Some(body)).await;
        assert_eq!(status, 400, "{body}: {resp}");
        assert_eq!(resp["message"], "Request body must be valid JSON.");
        assert!(resp["detail"]
            .as_str()
            .unwrap()
            .starts_with("The body must be a JSON object"));
    }
    let after = owner.template(t.id).await.unwrap();
    assert_eq!(
        (after.name.as_str(), after.updated_at),
        ("alpha", t.updated_at)
    );
}

/// Template "alpha" with versions "v1" and "v2", and template "other" with its own "v1".
struct Versions {
    srv: TestServer,
    owner: Client,
    org: Uuid,
    t: Template,
    v1: TemplateVersion,
    v2: TemplateVersion,
    other: Template,
    other_v: TemplateVersion,
}

async fn versions() -> Versions {
    let srv = TestServer::start().await;
    let (owner, first) = srv.owner().await;
    let org = first.organization_id;
    let v1 = imported(&owner, org, "v1", None).await;
    let t = template_from(&owner, org, "alpha", v1.id).await;
    let v2 = imported(&owner, org, "v2", Some(t.id)).await;
    assert_eq!(v2.template_id, Some(t.id));
    let other_v = imported(&owner, org, "v1", None).await;
    let other = template_from(&owner, org, "other", other_v.id).await;
    Versions {
        srv,
        owner,
        org,
        t,
        v1,
        v2,
        other,
        other_v,
    }
}

#[tokio::test]
async fn version_names_are_unique_in_a_template_that_must_exist() {
    let Versions {
        srv: _srv,
        owner,
        org,
        t,
        v1,
        v2,
        ..
    } = versions().await;
    // Version names are unique within a template; the template must exist in the organization.
    let dup = owner
        .create_template_version(
            org,
            &CreateTemplateVersionRequest {
                name: "V2".into(),
                template_id: Some(t.id),
                storage_method: "file".into(),
                provisioner: "echo".into(),
                file_id: Some(v1.job.file_id),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    expect_error(
        dup,
        409,
        "A template version with name \"V2\" already exists for this template.",
    );
    let missing = owner
        .create_template_version(
            org,
            &CreateTemplateVersionRequest {
                template_id: Some(Uuid::new_v4()),
                storage_method: "file".into(),
                provisioner: "echo".into(),
                file_id: Some(v1.job.file_id),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    expect_error(missing, 404, "Template does not exist.");
    // Neither refusal made a version.
    assert_eq!(
        ids(&owner.template_versions(t.id, "").await.unwrap()),
        [v1.id, v2.id]
    );
}

#[tokio::test]
async fn template_versions_list_oldest_first_with_pagination() {
    let Versions {
        srv: _srv,
        owner,
        t,
        v1,
        v2,
        other_v,
        ..
    } = versions().await;
    let all = owner.template_versions(t.id, "").await.unwrap();
    assert_eq!(ids(&all), [v1.id, v2.id]);
    assert!(all.iter().all(|v| v.template_id == Some(t.id)));
    assert_eq!(
        ids(&owner.template_versions(t.id, "?limit=1").await.unwrap()),
        [v1.id]
    );
    assert_eq!(
        ids(&owner
            .template_versions(t.id, "?limit=1&offset=1")
            .await
            .unwrap()),
        [v2.id]
    );
    assert!(owner
        .template_versions(t.id, "?offset=2")
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        ids(&owner
            .template_versions(t.id, &format!("?after_id={}", v1.id))
            .await
            .unwrap()),
        [v2.id]
    );
    assert!(owner
        .template_versions(t.id, &format!("?after_id={}", v2.id))
        .await
        .unwrap()
        .is_empty());
    for after in [other_v.id, Uuid::new_v4()] {
        let (status, body) = raw_json(
            &owner,
            "GET",
            &format!("/api/v2/templates/{}/versions?after_id={after}", t.id),
            None,
        )
        .await;
        assert_eq!(status, 400, "{body}");
    }
    let (status, body) = raw_json(
        &owner,
        "GET",
        &format!("/api/v2/templates/{}/versions?limit=-1", t.id),
        None,
    )
    .await;
    assert_eq!(status, 400, "{body}");
}

#[tokio::test]
async fn template_versions_by_name_and_the_previous_one() {
    let Versions {
        srv: _srv,
        owner,
        t,
        v1,
        v2,
        other_v,
        ..
    } = versions().await;
    // Versions by name, through the template id and through the organization and template names.
    let by_name: TemplateVersion =
        get(&owner, &format!("/api/v2/templates/{}/versions/v2", t.id)).await;
    assert_eq!((by_name.id, by_name.name.as_str()), (v2.id, "v2"));
    let (status, _) = raw_json(
        &owner,
        "GET",
        &format!("/api/v2/templates/{}/versions/nope", t.id),
        None,
    )
    .await;
    assert_eq!(status, 404);
    let by_org: TemplateVersion = get(
        &owner,
        "/api/v2/organizations/coder/templates/alpha/versions/v1",
    )
    .await;
    assert_eq!(by_org.id, v1.id);
    // The same version name in another template is a different version.
    let in_other: TemplateVersion = get(
        &owner,
        "/api/v2/organizations/coder/templates/other/versions/v1",
    )
    .await;
    assert_eq!(in_other.id, other_v.id);
    let prev: TemplateVersion = get(
        &owner,
        "/api/v2/organizations/coder/templates/alpha/versions/v2/previous",
    )
    .await;
    assert_eq!(prev.id, v1.id);
    let (status, body) = raw_json(
        &owner,
        "GET",
        "/api/v2/organizations/coder/templates/alpha/versions/v1/previous",
        None,
    )
    .await;
    // As upstream: the first version has no previous one, a 404 (not 204).
    assert_eq!(status, 404, "{body}");
    assert_eq!(
        body["message"],
        "No previous template version found for \"v1\"."
    );
}

#[tokio::test]
async fn active_version_is_an_imported_version_of_the_template() {
    let Versions {
        srv: _srv,
        owner,
        org,
        t,
        v1,
        v2,
        other,
        other_v,
    } = versions().await;
    // Promote v2.
    let path = format!("/api/v2/templates/{}/versions", t.id);
    let resp: codersdk::Response = owner
        .request(
            Method::PATCH,
            &path,
            Some(&UpdateActiveTemplateVersion { id: v2.id }),
        )
        .await
        .unwrap();
    assert_eq!(resp.message, "Updated the active template version!");
    assert_eq!(owner.template(t.id).await.unwrap().active_version_id, v2.id);

    // A failed import cannot become active.
    let bad = failed(&owner, org, t.id).await;
    let err = owner
        .request::<_, codersdk::Response>(
            Method::PATCH,
            &path,
            Some(&UpdateActiveTemplateVersion { id: bad.id }),
        )
        .await
        .unwrap_err();
    expect_error(
        err,
        400,
        "The provided template version has failed to import!",
    );
    // Nor can another template's version.
    let err = owner
        .request::<_, codersdk::Response>(
            Method::PATCH,
            &path,
            Some(&UpdateActiveTemplateVersion { id: other_v.id }),
        )
        .await
        .unwrap_err();
    expect_error(
        err,
        400,
        "The provided template version doesn't belong to the specified template.",
    );
    let (status, body) = raw_json(
        &owner,
        "PATCH",
        &path,
        Some(&json!({"id": Uuid::new_v4()}).to_string()),
    )
    .await;
    assert_eq!(status, 404, "{body}");
    let t_now = owner.template(t.id).await.unwrap();
    assert_eq!(t_now.active_version_id, v2.id);
    assert_eq!(
        owner.template(other.id).await.unwrap().active_version_id,
        other_v.id
    );

    // A version still importing can be neither activated nor archived.
    let busy = create_version(&owner, org, &json!({"parse": {"block": true}}), Some(t.id)).await;
    wait_status(&owner, busy.id, "running").await;
    let (status, body) = raw_json(
        &owner,
        "PATCH",
        &path,
        Some(&json!({"id": busy.id}).to_string()),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["message"],
        "The provided template version is being imported!"
    );
    let (status, body) = raw_json(
        &owner,
        "POST",
        &format!("/api/v2/templateversions/{}/archive", busy.id),
        None,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = raw_json(
        &owner,
        "PATCH",
        &format!("/api/v2/templateversions/{}/cancel", busy.id),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    wait_status(&owner, busy.id, "canceled").await;
    let (status, body) = raw_json(
        &owner,
        "PATCH",
        &path,
        Some(&json!({"id": busy.id}).to_string()),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    // Bulk archiving without `all` takes failed versions only, not canceled ones.
    let resp: ArchiveTemplateVersionsResponse = owner
        .request(
            Method::POST,
            &format!("/api/v2/templates/{}/versions/archive", t.id),
            Some(&ArchiveTemplateVersionsRequest { all: false }),
        )
        .await
        .unwrap();
    assert_eq!(resp.archived_ids, [bad.id]);

    // Setting the active version back works too.
    let (status, body) = raw_json(
        &owner,
        "PATCH",
        &path,
        Some(&json!({"id": v1.id}).to_string()),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(owner.template(t.id).await.unwrap().active_version_id, v1.id);
}

#[tokio::test]
async fn version_rename_and_archive() {
    let srv = TestServer::start().await;
    let (owner, first) = srv.owner().await;
    let org = first.organization_id;
    let v1 = imported(&owner, org, "v1", None).await;
    let t = template_from(&owner, org, "alpha", v1.id).await;
    let v2 = imported(&owner, org, "v2", Some(t.id)).await;

    let p2 = format!("/api/v2/templateversions/{}", v2.id);
    let (status, body) = raw_json(
        &owner,
        "PATCH",
        &p2,
        Some(r#"{"name":"second","message":"hello there"}"#),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["name"].as_str(), body["message"].as_str()),
        (Some("second"), Some("hello there"))
    );
    let got = owner.template_version(v2.id).await.unwrap();
    assert_eq!(
        (got.name.as_str(), got.message.as_str()),
        ("second", "hello there")
    );
    // Only the message: the name stays.
    let (status, body) = raw_json(&owner, "PATCH", &p2, Some(r#"{"message":"again"}"#)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["name"].as_str(), body["message"].as_str()),
        (Some("second"), Some("again"))
    );

    let (status, body) = raw_json(&owner, "PATCH", &p2, Some(r#"{"name":"v1"}"#)).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(
        body["message"],
        "A template version with name \"v1\" already exists for this template."
    );
    let (status, body) = raw_json(&owner, "PATCH", &p2, Some(r#"{"name":"bad name!"}"#)).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(owner.template_version(v2.id).await.unwrap().name, "second");

    // The active version cannot be archived.
    let (status, body) = raw_json(
        &owner,
        "POST",
        &format!("/api/v2/templateversions/{}/archive", v1.id),
        None,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["message"],
        "The active template version cannot be archived."
    );

    // Another completed version can, and the list hides it unless asked.
    let (status, body) = raw_json(&owner, "POST", &format!("{p2}/archive"), None).await;
    assert_eq!(status, 200, "{body}");
    assert!(owner.template_version(v2.id).await.unwrap().archived);
    assert_eq!(
        ids(&owner.template_versions(t.id, "").await.unwrap()),
        [v1.id]
    );
    assert_eq!(
        ids(&owner
            .template_versions(t.id, "?include_archived=true")
            .await
            .unwrap()),
        [v1.id, v2.id]
    );
    let (status, body) = raw_json(&owner, "POST", &format!("{p2}/archive"), None).await;
    assert_eq!(status, 400, "archiving twice: {body}");
    // An archived version cannot become active.
    let (status, body) = raw_json(
        &owner,
        "PATCH",
        &format!("/api/v2/templates/{}/versions", t.id),
        Some(&json!({"id": v2.id}).to_string()),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(owner.template(t.id).await.unwrap().active_version_id, v1.id);

    let (status, body) = raw_json(&owner, "POST", &format!("{p2}/unarchive"), None).await;
    assert_eq!(status, 200, "{body}");
    assert!(!owner.template_version(v2.id).await.unwrap().archived);
    assert_eq!(
        ids(&owner.template_versions(t.id, "").await.unwrap()),
        [v1.id, v2.id]
    );

    // Bulk archiving: only failed versions unless all=true; never the active one.
    let bad = failed(&owner, org, t.id).await;
    let archive_path = format!("/api/v2/templates/{}/versions/archive", t.id);
    let resp: ArchiveTemplateVersionsResponse = owner
        .request(
            Method::POST,
            &archive_path,
            Some(&ArchiveTemplateVersionsRequest { all: false }),
        )
        .await
        .unwrap();
    assert_eq!(resp.template_id, t.id);
    assert_eq!(resp.archived_ids, [bad.id]);
    assert!(owner.template_version(bad.id).await.unwrap().archived);
    assert!(!owner.template_version(v2.id).await.unwrap().archived);
    assert_eq!(
        ids(&owner.template_versions(t.id, "").await.unwrap()),
        [v1.id, v2.id]
    );

    let resp: ArchiveTemplateVersionsResponse = owner
        .request(
            Method::POST,
            &archive_path,
            Some(&ArchiveTemplateVersionsRequest { all: true }),
        )
        .await
        .unwrap();
    assert_eq!(resp.archived_ids, [v2.id]);
    assert_eq!(
        ids(&owner.template_versions(t.id, "").await.unwrap()),
        [v1.id]
    );
    assert!(!owner.template_version(v1.id).await.unwrap().archived);
}

#[tokio::test]
async fn members_and_template_acl() {
    let srv = TestServer::start().await;
    let (owner, first) = srv.owner().await;
    let org = first.organization_id;
    let (member, amy) = srv.member(&owner, "amy").await;
    let (t, v) = create_template(&owner, org, "public", &echo()).await;

    // The Everyone group uses new templates: members read them.
    assert_eq!(member.template(t.id).await.unwrap().id, t.id);
    let listed: Vec<Template> = get(&member, "/api/v2/templates").await;
    assert_eq!(names(&listed), ["public"]);
    let listed: Vec<Template> =
        get(&member, &format!("/api/v2/organizations/{org}/templates")).await;
    assert_eq!(names(&listed), ["public"]);
    let by_name: Template = get(&member, "/api/v2/organizations/coder/templates/public").await;
    assert_eq!(by_name.id, t.id);
    assert_eq!(
        ids(&member.template_versions(t.id, "").await.unwrap()),
        [v.id]
    );

    // ... but cannot change them.
    let path = format!("/api/v2/templates/{}", t.id);
    let (status, body) =
        raw_json(&member, "PATCH", &path, Some(r#"{"display_name":"Mine"}"#)).await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = raw_json(&member, "DELETE", &path, None).await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = raw_json(
        &member,
        "PATCH",
        &format!("{path}/versions"),
        Some(&json!({"id": v.id}).to_string()),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(owner.template(t.id).await.unwrap().display_name, "");

    let spare = imported(&owner, org, "spare", None).await;

    // A template without the Everyone group is invisible to members.
    let secret = owner
        .create_template(
            org,
            &CreateTemplateRequest {
                name: "secret".into(),
                template_version_id: Some(spare.id),
                disable_everyone_group_access: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let spath = format!("/api/v2/templates/{}", secret.id);
    let (status, _) = raw_json(&member, "GET", &spath, None).await;
    assert_eq!(status, 404);
    let (status, _) = raw_json(
        &member,
        "GET",
        "/api/v2/organizations/coder/templates/secret",
        None,
    )
    .await;
    assert_eq!(status, 404);
    let listed: Vec<Template> = get(&member, "/api/v2/templates").await;
    assert_eq!(names(&listed), ["public"]);
    let listed: Vec<Template> = get(&owner, "/api/v2/templates").await;
    assert_eq!(names(&listed), ["public", "secret"]);

    let acl: TemplateAcl = get(&owner, &format!("{spath}/acl")).await;
    assert!(acl.users.is_empty() && acl.group.is_empty(), "{acl:?}");
    let acl: TemplateAcl = get(&owner, &format!("{path}/acl")).await;
    assert!(acl.users.is_empty(), "{acl:?}");
    assert_eq!(acl.group.len(), 1, "{acl:?}");
    assert_eq!(
        (
            acl.group[0].group.id,
            acl.group[0].group.name.as_str(),
            acl.group[0].role.as_str()
        ),
        (org, "Everyone", "use")
    );

    // Granting "use" to the member makes it readable, not writable.
    let grant = |role: &str| UpdateTemplateAcl {
        user_perms: [(amy.id.to_string(), role.to_string())].into(),
        ..Default::default()
    };
    let resp: codersdk::Response = owner
        .request(Method::PATCH, &format!("{spath}/acl"), Some(&grant("use")))
        .await
        .unwrap();
    assert!(!resp.message.is_empty());
    assert_eq!(member.template(secret.id).await.unwrap().name, "secret");
    let listed: Vec<Template> = get(&member, "/api/v2/templates").await;
    assert_eq!(names(&listed), ["public", "secret"]);
    let (status, _) = raw_json(&member, "PATCH", &spath, Some(r#"{"display_name":"Mine"}"#)).await;
    assert_eq!(status, 403);
    let (status, body) = raw_json(&member, "GET", &format!("{spath}/acl/available"), None).await;
    assert_eq!(status, 403, "{body}");
    let acl: TemplateAcl = get(&owner, &format!("{spath}/acl")).await;
    assert_eq!(acl.users.len(), 1, "{acl:?}");
    assert_eq!(
        (
            acl.users[0].user.id,
            acl.users[0].user.username.as_str(),
            acl.users[0].role.as_str()
        ),
        (amy.id, "amy", "use")
    );
    assert!(acl.group.is_empty());

    // "admin" lets them change it.
    let (status, body) = raw_json(
        &owner,
        "PATCH",
        &format!("{spath}/acl"),
        Some(&serde_json::to_string(&grant("admin")).unwrap()),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let changed = patch_template(
        &member,
        secret.id,
        &UpdateTemplateMeta {
            display_name: Some("Mine".into()),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(changed.display_name, "Mine");
    assert_eq!(acl_available(&member, secret.id).await.users.len(), 2);
    let acl: TemplateAcl = get(&owner, &format!("{spath}/acl")).await;
    assert_eq!(acl.users[0].role, "admin");

    // Groups can be granted too.
    let (status, body) = raw_json(
        &owner,
        "PATCH",
        &format!("{spath}/acl"),
        Some(&json!({"group_perms": {org.to_string(): "use"}}).to_string()),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let acl: TemplateAcl = get(&owner, &format!("{spath}/acl")).await;
    assert_eq!(acl.users.len(), 1);
    assert_eq!(acl.group.len(), 1);
    assert_eq!(
        (acl.group[0].group.id, acl.group[0].role.as_str()),
        (org, "use")
    );

    let available = acl_available(&owner, secret.id).await;
    let mut usernames: Vec<&str> = available
        .users
        .iter()
        .map(|u| u.username.as_str())
        .collect();
    usernames.sort_unstable();
    assert_eq!(usernames, ["amy", "owner"]);
    assert!(
        available
            .groups
            .iter()
            .any(|g| g.id == org && g.name == "Everyone"),
        "{available:?}"
    );

    // Invalid roles and ids are refused.
    for body in [
        json!({"user_perms": {amy.id.to_string(): "superuser"}}),
        json!({"user_perms": {"not-a-uuid": "use"}}),
    ] {
        let (status, resp) = raw_json(
            &owner,
            "PATCH",
            &format!("{spath}/acl"),
            Some(&body.to_string()),
        )
        .await;
        assert_eq!(status, 400, "{body}: {resp}");
        assert_eq!(fields(&resp), ["user_perms"], "{resp}");
    }
    let (status, resp) = raw_json(
        &owner,
        "PATCH",
        &format!("{spath}/acl"),
        Some(&json!({"group_perms": {org.to_string(): "owner"}}).to_string()),
    )
    .await;
    assert_eq!(status, 400, "{resp}");
    assert_eq!(fields(&resp), ["group_perms"], "{resp}");
    assert_eq!(
        get::<TemplateAcl>(&owner, &format!("{spath}/acl"))
            .await
            .users[0]
            .role,
        "admin"
    );

    // Grants name users of the organization and groups of the organization.
    let acme = owner
        .create_organization(&codersdk::CreateOrganizationRequest {
            name: "acme".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let foreign = owner
        .create_group(
            acme.id,
            &codersdk::CreateGroupRequest {
                name: "outsiders".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    for (body, field) in [
        (
            json!({"user_perms": {Uuid::new_v4().to_string(): "use"}}),
            "user_perms",
        ),
        (
            json!({"group_perms": {foreign.id.to_string(): "use"}}),
            "group_perms",
        ),
        (
            json!({"group_perms": {Uuid::new_v4().to_string(): "use"}}),
            "group_perms",
        ),
    ] {
        let (status, resp) = raw_json(
            &owner,
            "PATCH",
            &format!("{spath}/acl"),
            Some(&body.to_string()),
        )
        .await;
        assert_eq!(status, 400, "{body}: {resp}");
        assert_eq!(fields(&resp), [field], "{body}: {resp}");
    }
    let acl: TemplateAcl = get(&owner, &format!("{spath}/acl")).await;
    assert_eq!((acl.users.len(), acl.group.len()), (1, 1), "{acl:?}");

    // Removing every grant hides it again.
    let (status, body) = raw_json(
        &owner,
        "PATCH",
        &format!("{spath}/acl"),
        Some(
            &json!({"user_perms": {amy.id.to_string(): ""}, "group_perms": {org.to_string(): ""}})
                .to_string(),
        ),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = raw_json(&member, "GET", &spath, None).await;
    assert_eq!(status, 404);
}

/// Members can see their organization (and its templates) but author neither templates nor
/// versions in it: 403, not 404.
#[tokio::test]
async fn members_cannot_author_templates() {
    let srv = TestServer::start().await;
    let (owner, first) = srv.owner().await;
    let org = first.organization_id;
    let (member, _) = srv.member(&owner, "amy").await;
    let spare = imported(&owner, org, "spare", None).await;
    // The member does see the organization and may list its templates.
    assert_eq!(member.organization("coder").await.unwrap().id, org);
    let listed: Vec<Template> =
        get(&member, &format!("/api/v2/organizations/{org}/templates")).await;
    assert!(listed.is_empty(), "{listed:?}");
    let (_, file) = member
        .upload("application/x-tar", crate::harness::echo::echo_tar(&echo()))
        .await
        .expect("members upload files");

    let (tpl_status, tpl_body) = raw_json(
        &member,
        "POST",
        &format!("/api/v2/organizations/{org}/templates"),
        Some(&json!({"name": "mine", "template_version_id": spare.id}).to_string()),
    )
    .await;
    let (ver_status, ver_body) = raw_json(
        &member,
        "POST",
        &format!("/api/v2/organizations/{org}/templateversions"),
        Some(
            &json!({"storage_method": "file", "provisioner": "echo", "file_id": file.hash})
                .to_string(),
        ),
    )
    .await;
    assert_eq!(
        (tpl_status, ver_status),
        (403, 403),
        "POST templates: {tpl_body}\nPOST templateversions: {ver_body}"
    );
    // Nothing was created.
    let all: Vec<Template> = get(&owner, "/api/v2/templates").await;
    assert!(all.is_empty(), "{all:?}");
    // Still in no template: upstream's zero UUID.
    assert_eq!(
        owner.template_version(spare.id).await.unwrap().template_id,
        Some(Uuid::nil())
    );
}

#[tokio::test]
async fn delete_template_frees_the_name() {
    let srv = TestServer::start().await;
    let (owner, first) = srv.owner().await;
    let org = first.organization_id;
    let (t, v) = create_template(&owner, org, "alpha", &echo()).await;
    let path = format!("/api/v2/templates/{}", t.id);

    let (status, body) = raw_json(&owner, "DELETE", &path, None).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );

    let (status, _) = raw_json(&owner, "GET", &path, None).await;
    assert_eq!(status, 404);
    let (status, _) = raw_json(
        &owner,
        "GET",
        "/api/v2/organizations/coder/templates/alpha",
        None,
    )
    .await;
    assert_eq!(status, 404);
    let listed: Vec<Template> = get(&owner, "/api/v2/templates").await;
    assert!(listed.is_empty(), "{listed:?}");
    let (status, _) = raw_json(&owner, "DELETE", &path, None).await;
    assert_eq!(status, 404);

    let v2 = imported(&owner, org, "again", None).await;
    let again = template_from(&owner, org, "alpha", v2.id).await;
    assert_ne!(again.id, t.id);
    assert_eq!(again.active_version_id, v2.id);
    let by_name: Template = get(&owner, "/api/v2/organizations/coder/templates/alpha").await;
    assert_eq!(by_name.id, again.id);
    // The old version is not moved to the new template.
    assert_eq!(
        ids(&owner.template_versions(again.id, "").await.unwrap()),
        [v2.id]
    );
    assert_ne!(v.id, v2.id);
}

#[tokio::test]
async fn template_examples() {
    let srv = TestServer::start().await;
    let (owner, first) = srv.owner().await;
    let org = first.organization_id;

    let examples: Vec<TemplateExample> = get(&owner, "/api/v2/templates/examples").await;
    assert_eq!(examples.len(), 2, "{examples:?}");
    assert!(examples
        .iter()
        .all(|e| !e.id.is_empty() && !e.name.is_empty()));
    let in_org: Vec<TemplateExample> = get(
        &owner,
        &format!("/api/v2/organizations/{org}/templates/examples"),
    )
    .await;
    assert_eq!(
        serde_json::to_value(&in_org).unwrap(),
        serde_json::to_value(&examples).unwrap()
    );
    let by_name: Vec<TemplateExample> =
        get(&owner, "/api/v2/organizations/coder/templates/examples").await;
    assert_eq!(by_name.len(), 2);
    let (status, _) = raw_json(&srv.client, "GET", "/api/v2/templates/examples", None).await;
    assert_eq!(status, 401);

    let echo_example = examples
        .iter()
        .find(|e| e.name == "Echo")
        .expect("an Echo example");
    let request = |example: &str, file: Option<Uuid>| CreateTemplateVersionRequest {
        storage_method: "file".into(),
        provisioner: "echo".into(),
        example_id: example.into(),
        file_id: file,
        ..Default::default()
    };
    let v = owner
        .create_template_version(org, &request(&echo_example.id, None))
        .await
        .unwrap();
    let v = wait_import(&owner, v.id).await;
    assert_eq!(v.job.status, "succeeded", "{:?}", v.job);
    assert!(!v.readme.is_empty());
    let params: Vec<TemplateVersionParameter> = get(
        &owner,
        &format!("/api/v2/templateversions/{}/rich-parameters", v.id),
    )
    .await;
    assert!(params.iter().any(|p| p.name == "cpu"), "{params:?}");
    let t = template_from(&owner, org, "from-example", v.id).await;
    assert_eq!(t.provisioner, "echo");

    let unknown = owner
        .create_template_version(org, &request("no-such-example", None))
        .await
        .unwrap_err();
    expect_error(unknown, 400, "Example not found.");
    let both = owner
        .create_template_version(org, &request(&echo_example.id, Some(v.job.file_id)))
        .await
        .unwrap_err();
    assert_eq!(both.status().unwrap().as_u16(), 400, "{both}");
    let neither = owner
        .create_template_version(org, &request("", None))
        .await
        .unwrap_err();
    assert_eq!(neither.status().unwrap().as_u16(), 400, "{neither}");
}

#[tokio::test]
async fn template_daus() {
    let srv = TestServer::start().await;
    let (owner, first) = srv.owner().await;
    let (t, _) = create_template(&owner, first.organization_id, "alpha", &json!({})).await;
    let path = format!("/api/v2/templates/{}/daus", t.id);

    let d: DausResponse = get(&owner, &format!("{path}?tz_offset=2")).await;
    assert!(d.entries.is_empty());
    assert_eq!(d.tz_hour_offset, 2);
    let d: DausResponse = get(&owner, &format!("{path}?tz_offset=-5")).await;
    assert_eq!(d.tz_hour_offset, -5);
    let d: DausResponse = get(&owner, &path).await;
    assert_eq!(d.tz_hour_offset, 0);

    let (status, body) = raw_json(&owner, "GET", &format!("{path}?tz_offset=abc"), None).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(fields(&body), ["tz_offset"]);
    let (status, _) = raw_json(
        &owner,
        "GET",
        &format!("/api/v2/templates/{}/daus", Uuid::new_v4()),
        None,
    )
    .await;
    assert_eq!(status, 404);
}

/// A template's statistics are served from memory between builds, and a build that finishes
/// shows in them on the next read (the cache is dropped once its job's result is stored).
#[tokio::test]
async fn template_statistics_follow_finished_builds() {
    let srv = TestServer::start().await;
    let (owner, first) = srv.owner().await;
    let (t, _) =
        crate::harness::echo::create_template(&owner, first.organization_id, "stats", &json!({}))
            .await;
    // Read (and cached) before any build.
    let before: Template = owner.template(t.id).await.unwrap();
    assert!(before.build_time_stats["start"].p50.is_none());
    assert_eq!(before.active_user_count, 0);
    owner.running_workspace(t.id, "dev").await;
    let after: Template = owner.template(t.id).await.unwrap();
    assert!(
        after.build_time_stats["start"].p50.is_some(),
        "{:?}",
        after.build_time_stats
    );
    assert_eq!(after.active_user_count, 1);
    // The list renders the same statistics.
    let all: Vec<Template> = get(&owner, "/api/v2/templates").await;
    let listed = all.iter().find(|x| x.id == t.id).unwrap();
    assert_eq!(listed.active_user_count, 1);
}
