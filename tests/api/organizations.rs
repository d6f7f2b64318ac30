use codersdk::{CreateOrganizationRequest, OrganizationMember, OrganizationMemberWithUserData};

use crate::harness::{expect_error, raw_json, TestServer};

#[tokio::test]
async fn default_organization_and_owner_management() {
    let srv = TestServer::start().await;
    let (owner, first) = srv.owner().await;
    let orgs = owner.organizations().await.unwrap();
    assert_eq!(orgs.len(), 1);
    assert_eq!((orgs[0].name.as_str(), orgs[0].is_default), ("coder", true));
    assert_eq!(
        owner
            .organization(&first.organization_id.to_string())
            .await
            .unwrap()
            .name,
        "coder"
    );

    let org = owner
        .create_organization(&CreateOrganizationRequest {
            name: "acme".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!((org.display_name.as_str(), org.is_default), ("acme", false));
    let dup = owner
        .create_organization(&CreateOrganizationRequest {
            name: "ACME".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    let resp = expect_error(
        dup,
        409,
        "Organization already exists with the name \"ACME\".",
    );
    assert_eq!(resp.validations[0].field, "name");
    let bad = owner
        .create_organization(&CreateOrganizationRequest {
            name: "no good".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    expect_error(bad, 400, "Validation failed.");

    let (status, body) = raw_json(
        &owner,
        "PATCH",
        "/api/v2/organizations/acme",
        Some(r#"{"display_name":"Acme Inc.","description":"Rockets"}"#),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (
            body["name"].as_str(),
            body["display_name"].as_str(),
            body["description"].as_str()
        ),
        (Some("acme"), Some("Acme Inc."), Some("Rockets"))
    );
    let (status, body) = raw_json(
        &owner,
        "PATCH",
        "/api/v2/organizations/coder",
        Some(r#"{"name":"renamed"}"#),
    )
    .await;
    assert_eq!(
        (status, body["message"].as_str()),
        (400, Some("Default organization name cannot be changed."))
    );
    let (status, body) = raw_json(&owner, "DELETE", "/api/v2/organizations/coder", None).await;
    assert_eq!(
        (status, body["message"].as_str()),
        (400, Some("Default organization cannot be deleted."))
    );
    let (status, _) = raw_json(
        &owner,
        "DELETE",
        &format!("/api/v2/organizations/{}", org.id),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = raw_json(&owner, "GET", "/api/v2/organizations/acme", None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn members_and_org_roles() {
    let srv = TestServer::start().await;
    let (owner, _) = srv.owner().await;
    let (member, user) = srv.member(&owner, "mo").await;
    let acme = owner
        .create_organization(&CreateOrganizationRequest {
            name: "acme".into(),
            ..Default::default()
        })
        .await
        .unwrap();

    // Not a member of acme: it does not exist for them.
    let (status, _) = raw_json(&member, "GET", "/api/v2/organizations/acme", None).await;
    assert_eq!(status, 404);
    assert_eq!(member.organizations().await.unwrap().len(), 1);
    // A member of coder can read it but not change it.
    let (status, body) = raw_json(
        &member,
        "PATCH",
        "/api/v2/organizations/coder",
        Some(r#"{"description":"x"}"#),
    )
    .await;
    assert_eq!(
        (status, body["message"].as_str()),
        (403, Some("Forbidden."))
    );
    let (status, _) = raw_json(
        &member,
        "POST",
        "/api/v2/organizations",
        Some(r#"{"name":"mine"}"#),
    )
    .await;
    assert_eq!(status, 403);

    let added: OrganizationMember = owner.add_organization_member(acme.id, "mo").await.unwrap();
    assert_eq!((added.user_id, added.organization_id), (user.id, acme.id));
    expect_error(
        owner
            .add_organization_member(acme.id, "mo")
            .await
            .unwrap_err(),
        409,
        "User is already an organization member.",
    );
    assert_eq!(member.organization("acme").await.unwrap().id, acme.id);
    let me = member.user("me").await.unwrap();
    assert!(me.organization_ids.contains(&acme.id));

    let members: Vec<OrganizationMemberWithUserData> = member
        .request::<(), _>(
            reqwest::Method::GET,
            "/api/v2/organizations/acme/members",
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        members
            .iter()
            .map(|m| m.username.as_str())
            .collect::<Vec<_>>(),
        ["mo", "owner"]
    );
    assert_eq!(members[1].global_roles[0].name, "owner");

    let path = "/api/v2/organizations/acme/members/mo/roles";
    let (status, body) = raw_json(
        &owner,
        "PUT",
        path,
        Some(r#"{"roles":["organization-admin"]}"#),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["roles"][0]["name"], "organization-admin");
    assert_eq!(body["roles"][0]["organization_id"], acme.id.to_string());
    let (status, _) = raw_json(&owner, "PUT", path, Some(r#"{"roles":["owner"]}"#)).await;
    assert_eq!(status, 400);
    // Now an organization admin of acme, they may edit acme (not coder).
    let (status, _) = raw_json(
        &member,
        "PATCH",
        "/api/v2/organizations/acme",
        Some(r#"{"icon":"/icon/rocket.svg"}"#),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = raw_json(&member, "DELETE", "/api/v2/organizations/acme", None).await;
    assert_eq!(status, 403);

    let (status, _) = raw_json(
        &owner,
        "DELETE",
        "/api/v2/organizations/acme/members/mo",
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (status, _) = raw_json(&member, "GET", "/api/v2/organizations/acme", None).await;
    assert_eq!(status, 404);
    let (status, _) = raw_json(
        &owner,
        "DELETE",
        "/api/v2/organizations/acme/members/mo",
        None,
    )
    .await;
    assert_eq!(status, 404);
}
