//! `GET|PUT /users/{user}/gitsshkey` and the unlicensed `PUT /appearance`.

use serde_json::Value;

use crate::harness::{raw_json, TestServer};

/// Checks a Git SSH key body and returns its public key.
fn public_key(body: &Value, user: uuid::Uuid) -> String {
    assert_eq!(body["user_id"], user.to_string(), "{body}");
    let key = body["public_key"].as_str().expect("public_key").to_string();
    assert!(key.starts_with("ssh-ed25519 "), "{key:?}");
    assert!(
        key.ends_with('\n'),
        "Coder's keys end with a newline: {key:?}"
    );
    let parsed = ssh_key::PublicKey::from_openssh(key.trim_end()).expect("an OpenSSH public key");
    assert_eq!(parsed.algorithm(), ssh_key::Algorithm::Ed25519);
    key
}

#[tokio::test]
async fn keys_are_made_once_and_replaced_on_request() {
    let srv = TestServer::start().await;
    let (owner, first) = srv.owner().await;
    let (member, me) = srv.member(&owner, "gitter").await;

    let (status, a) = raw_json(&owner, "GET", "/api/v2/users/me/gitsshkey", None).await;
    assert_eq!(status, 200, "{a}");
    let key = public_key(&a, first.user_id);
    // Reading again answers the same key.
    let (_, again) = raw_json(&owner, "GET", "/api/v2/users/me/gitsshkey", None).await;
    assert_eq!(again, a);

    // Regenerating replaces it: a new key, the same creation time, a later update time.
    let (status, b) = raw_json(&owner, "PUT", "/api/v2/users/me/gitsshkey", None).await;
    assert_eq!(status, 200, "{b}");
    let new_key = public_key(&b, first.user_id);
    assert_ne!(new_key, key);
    assert_eq!(b["created_at"], a["created_at"]);
    let updated = |v: &Value| {
        chrono::DateTime::parse_from_rfc3339(v["updated_at"].as_str().unwrap()).unwrap()
    };
    assert!(updated(&b) > updated(&a), "{a} then {b}");
    let (_, after) = raw_json(&owner, "GET", "/api/v2/users/owner/gitsshkey", None).await;
    assert_eq!(after, b);

    // Every user has their own key; an owner may read and replace a member's.
    let (status, m) = raw_json(&member, "GET", "/api/v2/users/me/gitsshkey", None).await;
    assert_eq!(status, 200, "{m}");
    let member_key = public_key(&m, me.id);
    assert_ne!(member_key, new_key);
    let path = format!("/api/v2/users/{}/gitsshkey", me.id);
    let (status, seen) = raw_json(&owner, "GET", &path, None).await;
    assert_eq!((status, &seen), (200, &m));
    let (status, replaced) = raw_json(&owner, "PUT", &path, None).await;
    assert_eq!(status, 200);
    assert_ne!(public_key(&replaced, me.id), member_key);

    // A member cannot see anyone else's, and unknown users are refused as everywhere.
    let (status, body) = raw_json(&member, "GET", "/api/v2/users/owner/gitsshkey", None).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = raw_json(&member, "PUT", "/api/v2/users/owner/gitsshkey", None).await;
    assert_eq!(status, 400, "{body}");
    let (_, still) = raw_json(&owner, "GET", "/api/v2/users/me/gitsshkey", None).await;
    assert_eq!(still, b, "a refused PUT changed nothing");
    let (status, body) = raw_json(&owner, "GET", "/api/v2/users/nobody/gitsshkey", None).await;
    assert_eq!(
        (status, body["message"].as_str()),
        (400, Some("\"user\" must be an existing uuid or username."))
    );
    let (status, _) = raw_json(&srv.client, "GET", "/api/v2/users/me/gitsshkey", None).await;
    assert_eq!(status, 401);
    srv.stop().await;
}

#[tokio::test]
async fn racing_first_reads_agree_on_one_key() {
    let srv = TestServer::start().await;
    let (owner, _) = srv.owner().await;
    let (member, _) = srv.member(&owner, "racer").await;
    let reads = (0..6).map(|_| {
        let member = member.clone();
        tokio::spawn(
            async move { raw_json(&member, "GET", "/api/v2/users/me/gitsshkey", None).await },
        )
    });
    let mut keys = std::collections::BTreeSet::new();
    for read in reads {
        let (status, body) = read.await.unwrap();
        assert_eq!(status, 200, "{body}");
        keys.insert(body["public_key"].as_str().unwrap().to_string());
    }
    assert_eq!(keys.len(), 1, "{keys:?}");
    srv.stop().await;
}

#[tokio::test]
async fn appearance_cannot_be_changed_without_a_license() {
    let srv = TestServer::start().await;
    let (owner, _) = srv.owner().await;
    let body = r#"{"application_name":"Mine","logo_url":"","service_banner":{"enabled":false}}"#;
    let (status, answer) = raw_json(&owner, "PUT", "/api/v2/appearance", Some(body)).await;
    assert_eq!(
        (status, answer["message"].as_str()),
        (403, Some("Appearance is a Premium feature. Contact sales!"))
    );
    let (_, appearance) = raw_json(&owner, "GET", "/api/v2/appearance", None).await;
    assert_eq!(appearance["application_name"], "", "nothing changed");
    let (status, _) = raw_json(&srv.client, "PUT", "/api/v2/appearance", Some(body)).await;
    assert_eq!(status, 401);
    srv.stop().await;
}
