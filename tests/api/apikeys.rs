use codersdk::{ApiKey, CreateTokenRequest, TokenConfig};

use crate::harness::{expect_error, raw_json, TestServer};

/// Requests of the server at `url` whose key was looked up in its cache with `outcome`
/// (`hit` or `miss`).
async fn key_lookups(url: &str, outcome: &str) -> u64 {
    let name = format!("coderd_api_key_cache_lookups{{outcome=\"{outcome}\"}}");
    let n = crate::harness::replica::metric_at(url, &name).await;
    u64::try_from(n).unwrap_or_else(|_| panic!("no {name} in /metrics"))
}

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

/// Replica B serves a member's key from memory; a revocation, suspension, role change or
/// deletion made through replica A takes effect on B within a second.
#[tokio::test]
async fn changes_on_another_replica_reach_cached_keys_within_a_second() {
    use std::time::{Duration, Instant};

    use crate::harness::replica::{free_port, Replica};
    use crate::harness::{checked_client, create_owner, fresh_database, MEMBER_PASSWORD};

    let db = fresh_database().await;
    let env = [("CODER_PROVISIONER_DAEMONS", "0")];
    let (mut a, mut b) = (
        Replica::spawn(&db, free_port(), &env),
        Replica::spawn(&db, free_port(), &env),
    );
    a.wait_healthy().await;
    b.wait_healthy().await;
    let (owner, first) = create_owner(&checked_client(&a.url)).await;
    owner
        .create_user(&codersdk::CreateUserRequest {
            email: "m@example.com".into(),
            username: "m".into(),
            password: MEMBER_PASSWORD.into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let session = checked_client(&a.url)
        .login_with_password("m@example.com", MEMBER_PASSWORD)
        .await
        .unwrap()
        .session_token;
    let on_b = checked_client(&b.url).with_token(&session);

    // B has the key in memory: repeated requests are hits.
    let lookups = |outcome: &'static str| key_lookups(&b.url, outcome);
    on_b.user("me").await.unwrap();
    let hits = lookups("hit").await;
    for _ in 0..5 {
        on_b.user("me").await.unwrap();
    }
    assert_eq!(
        lookups("hit").await,
        hits + 5,
        "B serves the key from memory"
    );

    // How long after `changed` B's answer to `path` becomes `want`.
    async fn until(client: &codersdk::Client, path: &str, want: u16, changed: Instant) -> Duration {
        loop {
            let (status, _) = crate::harness::raw_json(client, "GET", path, None).await;
            if status == want {
                return changed.elapsed();
            }
            assert!(
                changed.elapsed() < Duration::from_secs(10),
                "GET {path} still answers {status}, not {want}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let second = Duration::from_secs(1);
    let member = on_b.user("me").await.unwrap();
    let owner_roles = format!("/api/v2/users/{}/roles", first.user_id);

    // Site roles: granted, then taken away. (Whom a caller may not read is, as upstream, "not
    // an existing uuid or username": 400.)
    let (status, body) = crate::harness::raw_json(&on_b, "GET", &owner_roles, None).await;
    assert_eq!(status, 400, "{body}");
    let put_roles = |roles: &'static str| {
        let owner = owner.clone();
        let path = format!("/api/v2/users/{}/roles", member.id);
        async move {
            let body = format!(r#"{{"roles":{roles}}}"#);
            let (status, body) = crate::harness::raw_json(&owner, "PUT", &path, Some(&body)).await;
            assert_eq!(status, 200, "{body}");
            Instant::now()
        }
    };
    let changed = put_roles(r#"["owner"]"#).await;
    assert!(until(&on_b, &owner_roles, 200, changed).await < second);
    let changed = put_roles("[]").await;
    assert!(until(&on_b, &owner_roles, 400, changed).await < second);

    // Suspended, then active again.
    let status = |to: &'static str| {
        let owner = owner.clone();
        let path = format!("/api/v2/users/{}/status/{to}", member.id);
        async move {
            let (status, body) = crate::harness::raw_json(&owner, "PUT", &path, None).await;
            assert_eq!(status, 200, "{body}");
            Instant::now()
        }
    };
    let changed = status("suspend").await;
    assert!(until(&on_b, "/api/v2/users/me", 401, changed).await < second);
    let changed = status("activate").await;
    assert!(until(&on_b, "/api/v2/users/me", 200, changed).await < second);

    // A token revoked by its owner through A.
    let tok = on_b
        .create_token(
            "me",
            &CreateTokenRequest {
                token_name: "cached".into(),
                lifetime: 3600 * 1_000_000_000,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let with_token = checked_client(&b.url).with_token(&tok.key);
    with_token.user("me").await.unwrap();
    let key_id = tok.key.split('-').next().unwrap();
    let on_a = checked_client(&a.url).with_token(&session);
    let (status, body) = raw_json(
        &on_a,
        "DELETE",
        &format!("/api/v2/users/me/keys/{key_id}"),
        None,
    )
    .await;
    assert_eq!(status, 204, "{body}");
    let changed = Instant::now();
    assert!(until(&with_token, "/api/v2/users/me", 401, changed).await < second);

    // The user deleted: the session ends too.
    let (status, body) = raw_json(
        &owner,
        "DELETE",
        &format!("/api/v2/users/{}", member.id),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let changed = Instant::now();
    assert!(until(&on_b, "/api/v2/users/me", 401, changed).await < second);
}

/// Many requests at once with one key read it from the database about once per
/// `actors::MAX_AGE` per connection, not once each: concurrent misses must not stop each
/// other's reads from being kept.
#[tokio::test]
async fn concurrent_requests_with_one_key_share_its_cached_read() {
    use std::time::{Duration, Instant};

    const CONNECTIONS: u64 = 32;
    let srv = TestServer::start().await;
    let (owner, _) = srv.owner().await;
    let lookups = |outcome: &'static str| key_lookups(&srv.url, outcome);
    owner.user("me").await.unwrap();
    let (hits, misses) = (lookups("hit").await, lookups("miss").await);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(4);
    let tasks: Vec<_> = (0..CONNECTIONS)
        .map(|_| {
            let owner = owner.clone();
            tokio::spawn(async move {
                let mut n = 0u64;
                while Instant::now() < deadline {
                    owner.user("me").await.unwrap();
                    n += 1;
                }
                n
            })
        })
        .collect();
    let mut requests = 0;
    for t in tasks {
        requests += t.await.unwrap();
    }
    let elapsed = started.elapsed();
    let (hits, misses) = (lookups("hit").await - hits, lookups("miss").await - misses);
    assert_eq!(
        hits + misses,
        requests,
        "every request looked its key up once"
    );
    // Each time the entry ages out, at most every connection in flight misses once before
    // one read is kept.
    let windows = elapsed.as_secs_f64() / coderd::actors::MAX_AGE.as_secs_f64();
    let bound = CONNECTIONS * (windows.ceil() as u64 + 1);
    assert!(
        misses <= bound,
        "{misses} of {requests} requests read the key from the database in {elapsed:?} \
         (at most {bound} expected)"
    );
}
