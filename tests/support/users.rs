//! The first user of a fresh deployment, as tests and benches create it.

use codersdk::{Client, CreateFirstUserRequest, CreateFirstUserResponse};

pub const OWNER_EMAIL: &str = "owner@example.com";
pub const OWNER_PASSWORD: &str = "SomeSecurePassword!";

/// Creates the first user (an owner) through an anonymous client of any server and returns a
/// client logged in as them.
pub async fn create_owner(anon: &Client) -> (Client, CreateFirstUserResponse) {
    let first = anon
        .create_first_user(&CreateFirstUserRequest {
            email: OWNER_EMAIL.into(),
            username: "owner".into(),
            name: "Owner".into(),
            password: OWNER_PASSWORD.into(),
            trial: false,
        })
        .await
        .expect("creating the first user");
    let token = anon
        .login_with_password(OWNER_EMAIL, OWNER_PASSWORD)
        .await
        .expect("logging in as the owner")
        .session_token;
    (anon.with_token(token), first)
}
