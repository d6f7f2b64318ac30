use codersdk::{ApiKey, CreateTokenRequest, TokenConfig};

use crate::harness::{expect_error, raw_json, TestServer};

#[tokio::test]
async fn token_lifecycle() {
    let srv = TestServer::start().await;
    let (owner, created) = srv.owner().await;
    let tok = owner
        .create_token(
            "me",
            &CreateTokenRequest {
                token_name: "ci".into(),
                lifetime: 3600 * 1_000_000_000,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let as_token = srv.client.with_token(&tok.key);
    assert_eq!(as_token.user("me").await.unwrap().id, created.user_id);

    let list: Vec<ApiKey> = owner
        .request::<(), _>(reqwest::Method::GET, "/api/v2/users/me/keys/tokens", None)
        .await
        .unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(
        (
            list[0].token_name.as_str(),
            list[0].login_type.as_str(),
            list[0].lifetime_seconds
        ),
        ("ci", "token", 3600)
    );
    let id = tok.key.split_once('-').unwrap().0;
    assert_eq!(list[0].id, id);

    let by_name: ApiKey = owner
        .request::<(), _>(
            reqwest::Method::GET,
            "/api/v2/users/me/keys/tokens/ci",
            None,
        )
        .await
        .unwrap();
    assert_eq!(by_name.id, id);
    let by_id: ApiKey = owner
        .request::<(), _>(
            reqwest::Method::GET,
            &format!("/api/v2/users/me/keys/{id}"),
            None,
        )
        .await
        .unwrap();
    assert_eq!(by_id.token_name, "ci");

    let dup = owner
        .create_token(
            "me",
            &CreateTokenRequest {
                token_name: "ci".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    let resp = expect_error(dup, 409, "A token with name \"ci\" already exists.");
    assert_eq!(resp.validations[0].field, "name");

    let cfg: TokenConfig = owner
        .request::<(), _>(
            reqwest::Method::GET,
            "/api/v2/users/me/keys/tokens/tokenconfig",
            None,
        )
        .await
        .unwrap();
    assert_eq!(cfg.max_token_lifetime, 876_600 * 3600 * 1_000_000_000);

    let too_long = owner
        .create_token(
            "me",
            &CreateTokenRequest {
                lifetime: i64::MAX,
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    expect_error(too_long, 400, "Failed to validate create API key request.");

    let (status, _) = raw_json(
        &owner,
        "DELETE",
        &format!("/api/v2/users/me/keys/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 204);
    expect_error(
        as_token.user("me").await.unwrap_err(),
        401,
        "You are signed out or your session has expired. Please sign in again to continue.",
    );
    let (status, _) = raw_json(&owner, "GET", &format!("/api/v2/users/me/keys/{id}"), None).await;
    assert_eq!(status, 404);

    // A token without a name gets a random one.
    owner
        .create_token("me", &CreateTokenRequest::default())
        .await
        .unwrap();
    let list: Vec<ApiKey> = owner
        .request::<(), _>(reqwest::Method::GET, "/api/v2/users/me/keys/tokens", None)
        .await
        .unwrap();
    assert!(!list[0].token_name.is_empty());
}

#[tokio::test]
async fn cli_session_keys_and_others_keys() {
    let srv = TestServer::start().await;
    let (owner, _) = srv.owner().await;
    let (member, user) = srv.member(&owner, "mia").await;
    let (status, body) = raw_json(&member, "POST", "/api/v2/users/me/keys", None).await;
    assert_eq!(status, 201);
    let key = body["key"].as_str().unwrap();
    assert_eq!(
        srv.client.with_token(key).user("me").await.unwrap().id,
        user.id
    );

    // A member cannot touch the owner's keys; the owner can see the member's.
    // (A user the member may not read answers as one that does not exist.)
    let (status, body) = raw_json(&member, "GET", "/api/v2/users/owner/keys/tokens", None).await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = raw_json(&owner, "GET", "/api/v2/users/mia/keys/tokens", None).await;
    assert_eq!(status, 200);
    let (status, body) = raw_json(&member, "POST", "/api/v2/users/owner/keys", None).await;
    assert_eq!(status, 400, "{body}");
}

/// Token lists answer upstream's `APIKeyWithOwner`: each key with its owner's username, also
/// for `include_all`, where an owner sees everyone's.
#[tokio::test]
async fn token_lists_carry_the_owners_username() {
    let srv = TestServer::start().await;
    let (owner, _) = srv.owner().await;
    let (member, _) = srv.member(&owner, "tia").await;
    for (client, name) in [(&owner, "owners"), (&member, "tias")] {
        client
            .create_token(
                "me",
                &CreateTokenRequest {
                    token_name: name.into(),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
    }
    let (status, body) = raw_json(&member, "GET", "/api/v2/users/me/keys/tokens", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body[0]["token_name"], "tias");
    assert_eq!(body[0]["username"], "tia");
    let (status, body) = raw_json(
        &owner,
        "GET",
        "/api/v2/users/me/keys/tokens?include_all=true",
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let mut pairs: Vec<(String, String)> = body
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["token_name"].as_str().unwrap().to_string(),
                k["username"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    pairs.sort();
    assert_eq!(
        pairs,
        [
            ("owners".to_string(), "owner".to_string()),
            ("tias".to_string(), "tia".to_string())
        ]
    );
}
