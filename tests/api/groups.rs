use codersdk::{Client, CreateGroupRequest, Group, PatchGroupRequest, User};
use uuid::Uuid;

use crate::harness::{expect_error, raw_json, TestServer};

#[tokio::test]
async fn everyone_group_contains_every_member() {
    let srv = TestServer::start().await;
    let (owner, first) = srv.owner().await;
    srv.member(&owner, "amy").await;
    let everyone = owner.group(first.organization_id).await.unwrap();
    assert_eq!(everyone.name, "Everyone");
    assert_eq!(everyone.total_member_count, 2);
    assert_eq!(
        everyone
            .members
            .iter()
            .map(|m| m.username.as_str())
            .collect::<Vec<_>>(),
        ["amy", "owner"]
    );
    assert_eq!(everyone.organization_name, "coder");

    let patch = PatchGroupRequest {
        remove_users: vec![first.user_id.to_string()],
        ..Default::default()
    };
    expect_error(
        owner.patch_group(everyone.id, &patch).await.unwrap_err(),
        400,
        "Cannot add or remove users from the \"Everyone\" group.",
    );
    let (status, _) = raw_json(
        &owner,
        "DELETE",
        &format!("/api/v2/groups/{}", everyone.id),
        None,
    )
    .await;
    assert_eq!(status, 400);
}

/// Creates group "devs" (quota 5) in `org`: empty, made by a user.
async fn create_devs(owner: &Client, org: Uuid) -> Group {
    let g = owner
        .create_group(
            org,
            &CreateGroupRequest {
                name: "devs".into(),
                quota_allowance: 5,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (g.total_member_count, g.quota_allowance, g.source.as_str()),
        (0, 5, "user")
    );
    g
}

#[tokio::test]
async fn group_names_and_quotas_are_validated() {
    let srv = TestServer::start().await;
    let (owner, first) = srv.owner().await;
    let org = first.organization_id;

    create_devs(&owner, org).await;
    let dup = owner
        .create_group(
            org,
            &CreateGroupRequest {
                name: "DEVS".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    expect_error(dup, 409, "A group named \"DEVS\" already exists.");
    let reserved = owner
        .create_group(
            org,
            &CreateGroupRequest {
                name: "Everyone".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    expect_error(reserved, 400, "Invalid group name.");
    let neg = owner
        .create_group(
            org,
            &CreateGroupRequest {
                name: "neg".into(),
                quota_allowance: -1,
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    expect_error(neg, 400, "Validation failed.");
}

/// Group "devs" with amy in it, and a group "x" in a second organization amy is not in.
struct Devs {
    srv: TestServer,
    owner: Client,
    member: Client,
    amy: User,
    org: Uuid,
    g: Group,
    other_group: Group,
}

async fn devs() -> Devs {
    let srv = TestServer::start().await;
    let (owner, first) = srv.owner().await;
    let (member, amy) = srv.member(&owner, "amy").await;
    let org = first.organization_id;

    let g = create_devs(&owner, org).await;
    let g = owner
        .patch_group(
            g.id,
            &PatchGroupRequest {
                add_users: vec![amy.id.to_string()],
                display_name: Some("Developers".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (g.display_name.as_str(), g.total_member_count),
        ("Developers", 1)
    );
    assert_eq!(g.members[0].id, amy.id);

    let outsider_org = owner
        .create_organization(&codersdk::CreateOrganizationRequest {
            name: "other".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let other_group = owner
        .create_group(
            outsider_org.id,
            &CreateGroupRequest {
                name: "x".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    Devs {
        srv,
        owner,
        member,
        amy,
        org,
        g,
        other_group,
    }
}

#[tokio::test]
async fn only_organization_members_join_a_group() {
    let Devs {
        srv: _srv,
        owner,
        amy,
        other_group,
        ..
    } = devs().await;
    // Only organization members can join.
    let bad = owner
        .patch_group(
            other_group.id,
            &PatchGroupRequest {
                add_users: vec![amy.id.to_string()],
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(bad.status().unwrap().as_u16(), 400);
    assert_eq!(
        owner
            .group(other_group.id)
            .await
            .unwrap()
            .total_member_count,
        0,
        "the refused member was not added"
    );
}

#[tokio::test]
async fn members_read_their_organizations_groups_only() {
    let Devs {
        srv: _srv,
        owner,
        member,
        org,
        g,
        other_group,
        ..
    } = devs().await;
    // Members read their organization's groups, not others', and cannot change them.
    let seen = member.group(g.id).await.unwrap();
    assert_eq!(seen.name, "devs");
    let (status, _) = raw_json(
        &member,
        "GET",
        &format!("/api/v2/groups/{}", other_group.id),
        None,
    )
    .await;
    assert_eq!(status, 404);
    let err = member
        .patch_group(
            g.id,
            &PatchGroupRequest {
                name: Some("mine".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    expect_error(err, 403, "Forbidden.");
    let (status, _) = raw_json(
        &member,
        "POST",
        &format!("/api/v2/organizations/{org}/groups"),
        Some(r#"{"name":"nope"}"#),
    )
    .await;
    assert_eq!(status, 403);

    let listed: Vec<Group> = member
        .request::<(), _>(reqwest::Method::GET, "/api/v2/groups", None)
        .await
        .unwrap();
    assert_eq!(
        listed.iter().map(|g| g.name.as_str()).collect::<Vec<_>>(),
        ["Everyone", "devs"]
    );
    let all: Vec<Group> = owner
        .request::<(), _>(
            reqwest::Method::GET,
            "/api/v2/groups?organization=other",
            None,
        )
        .await
        .unwrap();
    assert_eq!(all.len(), 2);
    let mine: Vec<Group> = owner
        .request::<(), _>(reqwest::Method::GET, "/api/v2/groups?has_member=amy", None)
        .await
        .unwrap();
    assert_eq!(
        mine.iter().map(|g| g.name.as_str()).collect::<Vec<_>>(),
        ["Everyone", "devs"]
    );
    let by_id: Vec<Group> = owner
        .request::<(), _>(
            reqwest::Method::GET,
            &format!("/api/v2/groups?group_ids={}", g.id),
            None,
        )
        .await
        .unwrap();
    assert_eq!(by_id.len(), 1);
    let (status, _) = raw_json(&owner, "GET", "/api/v2/groups?group_ids=zzz", None).await;
    assert_eq!(status, 400);
    let (status, body) = raw_json(
        &owner,
        "GET",
        "/api/v2/organizations/coder/groups/devs",
        None,
    )
    .await;
    assert_eq!(
        (status, body["id"].as_str()),
        (200, Some(g.id.to_string().as_str()))
    );
    let in_org: Vec<Group> = owner
        .request::<(), _>(
            reqwest::Method::GET,
            "/api/v2/organizations/coder/groups",
            None,
        )
        .await
        .unwrap();
    assert_eq!(in_org.len(), 2);
}

#[tokio::test]
async fn members_leave_and_a_group_is_deleted() {
    let Devs {
        srv: _srv,
        owner,
        amy,
        g,
        ..
    } = devs().await;
    let g = owner
        .patch_group(
            g.id,
            &PatchGroupRequest {
                remove_users: vec![amy.id.to_string()],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(g.total_member_count, 0);
    let (status, body) =
        raw_json(&owner, "DELETE", &format!("/api/v2/groups/{}", g.id), None).await;
    assert_eq!((status, body["name"].as_str()), (200, Some("devs")));
    let (status, _) = raw_json(&owner, "GET", &format!("/api/v2/groups/{}", g.id), None).await;
    assert_eq!(status, 404);
}
