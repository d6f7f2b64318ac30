use reqwest::Method;

use crate::files::tar_with;
use crate::harness::{raw_json, TestServer};

#[tokio::test]
async fn api_rate_limit_per_user_and_endpoint() {
    let srv = TestServer::start_with(|o| {
        o.dangerous_disable_rate_limits = false;
        o.api_rate_limit = 5;
    })
    .await;
    let (owner, _) = srv.owner().await;
    let (member, _) = srv.member(&owner, "rita").await;
    for i in 0..5 {
        let raw = member
            .send(Method::GET, "/api/v2/users/me", None, &[])
            .await
            .unwrap();
        assert_eq!(raw.status, 200, "request {i}");
        assert_eq!(raw.headers.get("x-ratelimit-limit").unwrap(), "5");
    }
    let raw = member
        .send(Method::GET, "/api/v2/users/me", None, &[])
        .await
        .unwrap();
    assert_eq!(raw.status, 429);
    assert_eq!(raw.headers.get("x-ratelimit-remaining").unwrap(), "0");
    let body: codersdk::Response = raw.json().unwrap();
    assert_eq!(
        body.message,
        "You've been rate limited for sending more than 5 requests in 1m0s."
    );

    // Another endpoint, and another user, have their own budgets.
    let (status, _) = raw_json(&member, "GET", "/api/v2/users/me/organizations", None).await;
    assert_eq!(status, 200);
    let (status, _) = raw_json(&owner, "GET", "/api/v2/users/me", None).await;
    assert_eq!(status, 200);
    // Owners may bypass; members may not.
    for _ in 0..6 {
        let raw = owner
            .send(
                Method::GET,
                "/api/v2/users/me",
                None,
                &[("X-Coder-Bypass-Ratelimit", "true")],
            )
            .await
            .unwrap();
        assert_eq!(raw.status, 200);
    }
    let raw = member
        .send(
            Method::GET,
            "/api/v2/buildinfo",
            None,
            &[("X-Coder-Bypass-Ratelimit", "true")],
        )
        .await
        .unwrap();
    assert_eq!(raw.status, 428);
}

#[tokio::test]
async fn files_are_limited_to_12_a_minute() {
    let srv = TestServer::start_with(|o| o.dangerous_disable_rate_limits = false).await;
    let (owner, _) = srv.owner().await;
    for i in 0..12 {
        let tar = tar_with(&[("n", i.to_string().as_bytes())]);
        let (status, _) = owner.upload("application/x-tar", tar).await.unwrap();
        assert_eq!(status, 201, "upload {i}");
    }
    let err = owner
        .upload("application/x-tar", tar_with(&[("n", b"x")]))
        .await
        .unwrap_err();
    assert_eq!(err.status().unwrap().as_u16(), 429);
}
