use codersdk::{CreateFirstUserRequest, SESSION_TOKEN_HEADER};
use reqwest::header;

use crate::harness::{
    expect_error, raw_json, TestServer, MEMBER_PASSWORD, OWNER_EMAIL, OWNER_PASSWORD,
};

fn first(username: &str) -> CreateFirstUserRequest {
    CreateFirstUserRequest {
        email: format!("{username}@example.com"),
        username: username.into(),
        name: String::new(),
        password: OWNER_PASSWORD.into(),
        trial: false,
    }
}

#[tokio::test]
async fn first_user_lifecycle() {
    let srv = TestServer::start().await;
    let (status, body) = raw_json(&srv.client, "GET", "/api/v2/users/first", None).await;
    assert_eq!(
        (status, body["message"].as_str()),
        (404, Some("The initial user has not been created!"))
    );

    let weak = CreateFirstUserRequest {
        password: "password".into(),
        ..first("weak")
    };
    let resp = expect_error(
        srv.client.create_first_user(&weak).await.unwrap_err(),
        400,
        "Password not strong enough!",
    );
    assert_eq!(resp.validations[0].field, "password");

    let bad = CreateFirstUserRequest {
        email: "nope".into(),
        ..first("bad_name")
    };
    let resp = expect_error(
        srv.client.create_first_user(&bad).await.unwrap_err(),
        400,
        "Validation failed.",
    );
    let fields: Vec<_> = resp.validations.iter().map(|v| v.field.as_str()).collect();
    assert_eq!(fields, ["email", "username"]);

    let (owner, created) = srv.owner().await;
    let org = srv
        .client
        .with_token(owner.token().unwrap())
        .organization("coder")
        .await
        .unwrap();
    assert_eq!(
        created.organization_id, org.id,
        "the first user joins the default organization"
    );
    let me = owner.user("me").await.unwrap();
    assert_eq!(me.id, created.user_id);
    assert_eq!(
        me.roles.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
        ["owner"]
    );
    assert_eq!(me.organization_ids, [org.id]);
    assert_eq!(me.status, "active");

    let (status, _) = raw_json(&srv.client, "GET", "/api/v2/users/first", None).await;
    assert_eq!(status, 200);
    expect_error(
        srv.client
            .create_first_user(&first("second"))
            .await
            .unwrap_err(),
        409,
        "The initial user has already been created.",
    );
}

#[tokio::test]
async fn concurrent_first_users_exactly_one_wins() {
    let srv = TestServer::start().await;
    let attempts = (0..8).map(|i| {
        let c = srv.client.clone();
        async move { c.create_first_user(&first(&format!("racer{i}"))).await }
    });
    let results = futures_join_all(attempts).await;
    let wins = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(wins, 1, "{results:?}");
    for r in results.into_iter().filter_map(|r| r.err()) {
        assert_eq!(r.status().map(|s| s.as_u16()), Some(409));
    }
    let (owner, _) = srv.owner_by_login_any().await;
    assert_eq!(owner.users("").await.unwrap().count, 1);
}

/// Joins futures concurrently without pulling in the futures crate.
async fn futures_join_all<T: Send + 'static>(
    futs: impl Iterator<Item = impl std::future::Future<Output = T> + Send + 'static>,
) -> Vec<T> {
    let handles: Vec<_> = futs.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

impl TestServer {
    /// Logs in as whichever racer won `concurrent_first_users_exactly_one_wins`.
    async fn owner_by_login_any(&self) -> (codersdk::Client, ()) {
        for i in 0..8 {
            if let Ok(r) = self
                .client
                .login_with_password(&format!("racer{i}@example.com"), OWNER_PASSWORD)
                .await
            {
                return (self.client.with_token(r.session_token), ());
            }
        }
        panic!("no racer can log in");
    }
}

#[tokio::test]
async fn login_failures_look_alike_and_success_sets_the_cookie() {
    let srv = TestServer::start().await;
    srv.owner().await;
    let wrong_pw = srv
        .client
        .login_with_password(OWNER_EMAIL, "WrongButLongPassword!")
        .await
        .unwrap_err();
    let unknown = srv
        .client
        .login_with_password("nobody@example.com", OWNER_PASSWORD)
        .await
        .unwrap_err();
    let a = expect_error(wrong_pw, 401, "Incorrect email or password.");
    let b = expect_error(unknown, 401, "Incorrect email or password.");
    assert_eq!(a, b);

    let (status, body) = raw_json(
        &srv.client,
        "POST",
        "/api/v2/users/login",
        Some(r#"{"email":""}"#),
    )
    .await;
    assert_eq!(status, 400, "{body}");

    let raw = srv
        .client
        .send(
            reqwest::Method::POST,
            "/api/v2/users/login",
            Some((
                "application/json",
                format!(r#"{{"email":"{OWNER_EMAIL}","password":"{OWNER_PASSWORD}"}}"#)
                    .into_bytes(),
            )),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(raw.status, 201);
    let token = raw
        .json::<codersdk::LoginWithPasswordResponse>()
        .unwrap()
        .session_token;
    let cookie = raw
        .headers
        .get(header::SET_COOKIE)
        .unwrap()
        .to_str()
        .unwrap();
    assert!(
        cookie.starts_with(&format!("coder_session_token={token};")),
        "{cookie}"
    );
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("Path=/"),
        "{cookie}"
    );
    let (id, secret) = token.split_once('-').unwrap();
    assert_eq!((id.len(), secret.len()), (10, 22));
}

#[tokio::test]
async fn every_token_transport_works() {
    let srv = TestServer::start().await;
    let (owner, created) = srv.owner().await;
    let token = owner.token().unwrap().to_string();
    let http = reqwest::Client::new();
    let me = format!("{}/api/v2/users/me", srv.url);
    let requests = [
        http.get(&me).header(SESSION_TOKEN_HEADER, &token),
        http.get(&me)
            .header(header::COOKIE, format!("coder_session_token={token}")),
        http.get(format!("{me}?coder_session_token={token}")),
        http.get(&me)
            .header(header::AUTHORIZATION, format!("Bearer {token}")),
    ];
    for req in requests {
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 200);
        let user: codersdk::User = resp.json().await.unwrap();
        assert_eq!(user.id, created.user_id);
    }
}

#[tokio::test]
async fn bad_tokens_get_coders_401s() {
    let srv = TestServer::start().await;
    let (owner, created) = srv.owner().await;
    let signed_out =
        "You are signed out or your session has expired. Please sign in again to continue.";
    let token = owner.token().unwrap().to_string();
    let (id, _) = token.split_once('-').unwrap();
    let cases = [
        (
            None,
            "Cookie \"coder_session_token\" or query parameter must be provided.",
        ),
        (
            Some("garbage".to_string()),
            "Invalid API key format: incorrect amount of API key parts, expected 2 got 1",
        ),
        (
            Some("a-b-c".to_string()),
            "Invalid API key format: incorrect amount of API key parts, expected 2 got 3",
        ),
        (
            Some("short-aaaaaaaaaaaaaaaaaaaaaa".to_string()),
            "Invalid API key format: invalid API key ID length, expected 10 got 5",
        ),
        (
            Some(format!("{id}-short")),
            "Invalid API key format: invalid API key secret length, expected 22 got 5",
        ),
        (
            Some("abcdefghij-aaaaaaaaaaaaaaaaaaaaaa".to_string()),
            "API key is invalid.",
        ),
        (
            Some(format!("{id}-aaaaaaaaaaaaaaaaaaaaaa")),
            "API key secret is invalid.",
        ),
    ];
    for (tok, detail) in cases {
        let c = match &tok {
            Some(t) => srv.client.with_token(t),
            None => srv.client.without_token(),
        };
        let resp = expect_error(c.user("me").await.unwrap_err(), 401, signed_out);
        assert_eq!(resp.detail, detail, "token {tok:?}");
    }

    // An expired key: move its expiry into the past in the database.
    let mut db = <sqlx::PgConnection as sqlx::Connection>::connect(&srv.db_url)
        .await
        .unwrap();
    sqlx::query("UPDATE api_keys SET expires_at = now() - interval '1 minute' WHERE id = $1")
        .bind(id)
        .execute(&mut db)
        .await
        .unwrap();
    // The server hears of the write over the pubsub, and its key cache keeps nothing longer
    // than a second anyway.
    let started = std::time::Instant::now();
    let err = loop {
        match owner.user("me").await {
            Err(e) => break e,
            Ok(_) if started.elapsed() < std::time::Duration::from_secs(2) => {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await
            }
            Ok(_) => panic!("the expired key still works after two seconds"),
        }
    };
    let resp = expect_error(err, 401, signed_out);
    assert!(
        resp.detail.starts_with("API key expired at \""),
        "{}",
        resp.detail
    );
    let _ = created;
}

#[tokio::test]
async fn logout_revokes_the_session() {
    let srv = TestServer::start().await;
    let (owner, _) = srv.owner().await;
    let resp = owner.logout().await.unwrap();
    assert_eq!(resp.message, "Logged out!");
    let resp = expect_error(
        owner.user("me").await.unwrap_err(),
        401,
        "You are signed out or your session has expired. Please sign in again to continue.",
    );
    assert_eq!(resp.detail, "API key is invalid.");
}

#[tokio::test]
async fn suspended_users_are_refused() {
    let srv = TestServer::start().await;
    let (owner, _) = srv.owner().await;
    let (member, user) = srv.member(&owner, "sam").await;
    let (status, body) = raw_json(
        &owner,
        "PUT",
        &format!("/api/v2/users/{}/status/suspend", user.id),
        None,
    )
    .await;
    assert_eq!((status, body["status"].as_str()), (200, Some("suspended")));
    expect_error(
        member.user("me").await.unwrap_err(),
        401,
        "User is not active (status = \"suspended\"). Contact an admin to reactivate your account.",
    );
    expect_error(
        srv.client
            .login_with_password("sam@example.com", MEMBER_PASSWORD)
            .await
            .unwrap_err(),
        401,
        "Your account is suspended. Contact an admin to reactivate your account.",
    );
    let (status, _) = raw_json(&owner, "PUT", "/api/v2/users/sam/status/activate", None).await;
    assert_eq!(status, 200);
    assert_eq!(member.user("me").await.unwrap().status, "active");
    let (status, body) = raw_json(&owner, "PUT", "/api/v2/users/me/status/suspend", None).await;
    assert_eq!(
        (status, body["message"].as_str()),
        (400, Some("You cannot suspend yourself."))
    );
}

#[tokio::test]
async fn auth_methods() {
    let srv = TestServer::start_with(|o| o.disable_password_auth = true).await;
    let (status, body) = raw_json(&srv.client, "GET", "/api/v2/users/authmethods", None).await;
    assert_eq!(status, 200);
    assert_eq!(body["password"]["enabled"], false);
    expect_error(
        srv.client
            .login_with_password(OWNER_EMAIL, OWNER_PASSWORD)
            .await
            .unwrap_err(),
        403,
        "Password authentication is disabled.",
    );
}

#[tokio::test]
async fn using_a_key_records_its_use_and_the_users_sighting() {
    let srv = TestServer::start().await;
    let (owner, _) = srv.owner().await;
    let token = owner.token().unwrap().to_string();
    let id = token.split_once('-').unwrap().0;
    let before: codersdk::User = owner.user("me").await.unwrap();
    let key: codersdk::ApiKey = owner
        .get_json(&format!("/api/v2/users/me/keys/{id}"))
        .await
        .unwrap();
    assert!(
        key.last_used.timestamp() > 0,
        "the first use is recorded: {:?}",
        key.last_used
    );
    assert!(
        before.last_seen_at.timestamp() > 0,
        "the user was seen: {:?}",
        before.last_seen_at
    );
    let mut db = <sqlx::PgConnection as sqlx::Connection>::connect(&srv.db_url)
        .await
        .unwrap();
    let ip: Option<String> =
        sqlx::query_scalar("SELECT host(ip_address) FROM api_keys WHERE id = $1")
            .bind(id)
            .fetch_one(&mut db)
            .await
            .unwrap();
    assert_eq!(ip.as_deref(), Some("127.0.0.1"));
    // A session close to expiry slides forward when used.
    sqlx::query("UPDATE api_keys SET expires_at = now() + interval '30 minutes', last_used = now() - interval '2 hours' WHERE id = $1")
        .bind(id)
        .execute(&mut db)
        .await
        .unwrap();
    // Used until the server has heard of the write (its key cache keeps nothing over a second).
    let started = std::time::Instant::now();
    let key = loop {
        owner.user("me").await.unwrap();
        let key: codersdk::ApiKey = owner
            .get_json(&format!("/api/v2/users/me/keys/{id}"))
            .await
            .unwrap();
        if key.expires_at > chrono::Utc::now() + chrono::Duration::hours(23)
            || started.elapsed() > std::time::Duration::from_secs(2)
        {
            break key;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    };
    assert!(
        key.expires_at > chrono::Utc::now() + chrono::Duration::hours(23),
        "{:?}",
        key.expires_at
    );
}
