use codersdk::{CreateUserRequest, GetUsersResponse, User};

use crate::harness::{expect_error, raw_json, TestServer, MEMBER_PASSWORD};

#[tokio::test]
async fn create_and_list_users() {
    let srv = TestServer::start().await;
    let (owner, first) = srv.owner().await;
    for name in ["carol", "alice", "bob"] {
        srv.member(&owner, name).await;
    }
    let all = owner.users("").await.unwrap();
    assert_eq!(all.count, 4);
    let names: Vec<_> = all.users.iter().map(|u| u.username.as_str()).collect();
    assert_eq!(names, ["alice", "bob", "carol", "owner"]);
    assert!(all
        .users
        .iter()
        .all(|u| u.organization_ids == [first.organization_id]));

    let page = owner.users("?limit=2&offset=1").await.unwrap();
    assert_eq!(page.count, 4);
    assert_eq!(
        page.users
            .iter()
            .map(|u| u.username.as_str())
            .collect::<Vec<_>>(),
        ["bob", "carol"]
    );
    let after = owner
        .users(&format!("?after_id={}", all.users[1].id))
        .await
        .unwrap();
    assert_eq!(after.users.len(), 2);

    let found = owner.users("?q=ali").await.unwrap();
    assert_eq!(
        found
            .users
            .iter()
            .map(|u| u.username.as_str())
            .collect::<Vec<_>>(),
        ["alice"]
    );
    let owners = owner.users("?q=role:owner%20status:active").await.unwrap();
    assert_eq!(owners.count, 1);
    let (status, body) = raw_json(&owner, "GET", "/api/v2/users?q=colour:blue", None).await;
    assert_eq!(
        (status, body["message"].as_str()),
        (400, Some("Invalid user search query."))
    );
    let (status, _) = raw_json(&owner, "GET", "/api/v2/users?q=a:b:c", None).await;
    assert_eq!(status, 400);

    // Users start active (codersdk.User's status is active or suspended); dormant is refused.
    let created = owner
        .create_user(&CreateUserRequest {
            email: "dora@example.com".into(),
            username: "dora".into(),
            password: MEMBER_PASSWORD.into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(created.status, "active");
    let (status, body) = raw_json(&owner, "POST", "/api/v2/users", Some(r#"{"email":"d2@example.com","username":"d2","password":"AnotherSecurePassword!","user_status":"dormant"}"#)).await;
    assert_eq!(
        (status, body["message"].as_str()),
        (400, Some("Creating dormant users is not supported."))
    );
    let dup = owner
        .create_user(&CreateUserRequest {
            email: "DORA@example.com".into(),
            username: "dora2".into(),
            password: MEMBER_PASSWORD.into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    expect_error(dup, 409, "User already exists.");
    let weak = owner
        .create_user(&CreateUserRequest {
            email: "w@example.com".into(),
            username: "w".into(),
            password: "123".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    expect_error(weak, 400, "Password not strong enough!");
}

#[tokio::test]
async fn members_see_only_themselves() {
    let srv = TestServer::start().await;
    let (owner, _) = srv.owner().await;
    let (member, me) = srv.member(&owner, "max").await;
    srv.member(&owner, "other").await;
    let list = member.users("").await.unwrap();
    assert_eq!(list.users.iter().map(|u| u.id).collect::<Vec<_>>(), [me.id]);
    // Another user answers exactly as a user who does not exist.
    let (status, body) = raw_json(&member, "GET", "/api/v2/users/other", None).await;
    let (missing_status, missing) =
        raw_json(&member, "GET", "/api/v2/users/nobody-at-all", None).await;
    assert_eq!((status, missing_status), (400, 400), "{body}");
    assert_eq!(
        body["message"],
        "\"user\" must be an existing uuid or username."
    );
    assert_eq!(body["message"], missing["message"]);
    let (status, body) = raw_json(&member, "GET", "/api/v2/users/nobody-here", None).await;
    assert_eq!(
        (status, body["message"].as_str()),
        (400, Some("\"user\" must be an existing uuid or username."))
    );
    let err = member
        .create_user(&CreateUserRequest {
            email: "x@example.com".into(),
            username: "x".into(),
            password: MEMBER_PASSWORD.into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    expect_error(err, 403, "Forbidden.");
    let (status, _) = raw_json(&member, "PUT", "/api/v2/users/me/status/suspend", None).await;
    assert_eq!(status, 403);
    let (status, _) = raw_json(&member, "DELETE", "/api/v2/users/other", None).await;
    assert_eq!(status, 400);
    let (status, _) = raw_json(&srv.client, "GET", "/api/v2/users/me", None).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn profile_password_and_roles() {
    let srv = TestServer::start().await;
    let (owner, _) = srv.owner().await;
    let (member, me) = srv.member(&owner, "pat").await;
    srv.member(&owner, "taken").await;

    let (status, body) = raw_json(
        &member,
        "PUT",
        "/api/v2/users/me/profile",
        Some(r#"{"username":"patricia","name":"Pat R"}"#),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["username"].as_str(), body["name"].as_str()),
        (Some("patricia"), Some("Pat R"))
    );
    let (status, body) = raw_json(
        &member,
        "PUT",
        "/api/v2/users/me/profile",
        Some(r#"{"username":"TAKEN"}"#),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    let (status, body) = raw_json(
        &member,
        "PUT",
        "/api/v2/users/me/profile",
        Some(r#"{"username":"no spaces"}"#),
    )
    .await;
    assert_eq!(
        (status, body["message"].as_str()),
        (400, Some("Validation failed."))
    );

    let (status, body) = raw_json(
        &member,
        "PUT",
        "/api/v2/users/me/password",
        Some(r#"{"old_password":"wrong","password":"BrandNewPassword!42"}"#),
    )
    .await;
    assert_eq!(
        (status, body["message"].as_str()),
        (400, Some("Old password is incorrect."))
    );
    let body =
        format!(r#"{{"old_password":"{MEMBER_PASSWORD}","password":"BrandNewPassword!42"}}"#);
    let (status, _) = raw_json(&member, "PUT", "/api/v2/users/me/password", Some(&body)).await;
    assert_eq!(status, 204);
    srv.client
        .login_with_password("pat@example.com", "BrandNewPassword!42")
        .await
        .unwrap();
    assert!(
        member.user("me").await.is_ok(),
        "the session that changed the password stays valid"
    );

    let (status, body) = raw_json(
        &owner,
        "PUT",
        &format!("/api/v2/users/{}/roles", me.id),
        Some(r#"{"roles":["template-admin","member"]}"#),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let user: User = serde_json::from_value(body).unwrap();
    assert_eq!(user.roles.len(), 1);
    assert_eq!(
        (
            user.roles[0].name.as_str(),
            user.roles[0].display_name.as_str()
        ),
        ("template-admin", "Template Admin")
    );
    let (status, body) = raw_json(
        &owner,
        "PUT",
        "/api/v2/users/patricia/roles",
        Some(r#"{"roles":["wizard"]}"#),
    )
    .await;
    assert_eq!(
        (status, body["message"].as_str()),
        (400, Some("Invalid role \"wizard\"."))
    );
    let (status, body) = raw_json(
        &owner,
        "PUT",
        "/api/v2/users/me/roles",
        Some(r#"{"roles":[]}"#),
    )
    .await;
    assert_eq!(
        (status, body["message"].as_str()),
        (400, Some("You cannot change your own roles."))
    );
    // A template admin reads users but cannot grant roles.
    let (status, _) = raw_json(&member, "GET", "/api/v2/users/taken", None).await;
    assert_eq!(status, 200);
    let (status, body) = raw_json(
        &member,
        "PUT",
        "/api/v2/users/taken/roles",
        Some(r#"{"roles":["owner"]}"#),
    )
    .await;
    assert_eq!(
        (status, body["message"].as_str()),
        (403, Some("Forbidden."))
    );
    // Upstream counts the implied `member` role as assigned on every call, so even a change
    // of nothing needs the right to assign site roles.
    let (status, body) = raw_json(
        &member,
        "PUT",
        "/api/v2/users/taken/roles",
        Some(r#"{"roles":[]}"#),
    )
    .await;
    assert_eq!(
        (status, body["message"].as_str()),
        (403, Some("Forbidden."))
    );

    let roles: Vec<codersdk::AssignableRoles> = owner
        .request::<(), _>(reqwest::Method::GET, "/api/v2/users/roles", None)
        .await
        .unwrap();
    assert!(roles.iter().all(|r| r.assignable && r.built_in));
    assert!(roles.iter().any(|r| r.name == "auditor"));
    let roles: Vec<codersdk::AssignableRoles> = member
        .request::<(), _>(reqwest::Method::GET, "/api/v2/users/roles", None)
        .await
        .unwrap();
    assert!(roles.iter().all(|r| !r.assignable));
}

#[tokio::test]
async fn deleting_a_user_deletes_their_keys() {
    let srv = TestServer::start().await;
    let (owner, _) = srv.owner().await;
    let (member, me) = srv.member(&owner, "gone").await;
    let (status, body) = raw_json(&owner, "DELETE", "/api/v2/users/me", None).await;
    assert_eq!(
        (status, body["message"].as_str()),
        (403, Some("You cannot delete yourself!"))
    );
    let (status, _) = raw_json(&owner, "DELETE", &format!("/api/v2/users/{}", me.id), None).await;
    assert_eq!(status, 200);
    let resp = expect_error(
        member.user("me").await.unwrap_err(),
        401,
        "You are signed out or your session has expired. Please sign in again to continue.",
    );
    assert_eq!(resp.detail, "API key is invalid.");
    let list: GetUsersResponse = owner.users("").await.unwrap();
    assert_eq!(list.count, 1);
    // The name is free again.
    srv.member(&owner, "gone").await;
}

#[tokio::test]
async fn user_organizations() {
    let srv = TestServer::start().await;
    let (owner, first) = srv.owner().await;
    let (status, body) = raw_json(&owner, "GET", "/api/v2/users/me/organizations", None).await;
    assert_eq!(status, 200);
    assert_eq!(body[0]["id"], first.organization_id.to_string());
    let (status, body) =
        raw_json(&owner, "GET", "/api/v2/users/me/organizations/coder", None).await;
    assert_eq!((status, body["name"].as_str()), (200, Some("coder")));
    let (status, _) = raw_json(
        &owner,
        "GET",
        "/api/v2/users/me/organizations/missing",
        None,
    )
    .await;
    assert_eq!(status, 404);
}

/// `GET /users/{user}/roles` answers upstream's `codersdk.UserRoles`: site role names, and by
/// organization the member's organization role names (the implied member roles unlisted).
#[tokio::test]
async fn user_roles_answer_role_names_by_organization() {
    let srv = TestServer::start().await;
    let (owner, first) = srv.owner().await;
    let (_, amy) = srv.member(&owner, "amy").await;
    let (status, body) = raw_json(&owner, "GET", "/api/v2/users/me/roles", None).await;
    assert_eq!(status, 200, "{body}");
    let org = first.organization_id.to_string();
    assert_eq!(
        body,
        serde_json::json!({"roles": ["owner"], "organization_roles": {org.clone(): []}})
    );
    let (status, body) = raw_json(
        &owner,
        "PUT",
        &format!("/api/v2/organizations/{org}/members/amy/roles"),
        Some(r#"{"roles":["organization-admin"]}"#),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = raw_json(
        &owner,
        "GET",
        &format!("/api/v2/users/{}/roles", amy.id),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        serde_json::json!({"roles": [], "organization_roles": {org: ["organization-admin"]}})
    );
}
