//! `/cli-auth`: the page the `coder` CLI and VS Code open for a token. Signed in (the session
//! cookie), it shows a new session token for the user to paste into the client; signed out,
//! a sign-in form that posts back here.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};

use super::sessions::{issue_key, password_login, session_cookie};
use crate::auth::Authn;
use crate::http::params::QueryParams;
use crate::proxy::ClientIp;
use crate::state::AppState;

pub fn routes(state: &AppState) -> Router<AppState> {
    Router::new()
        .route(
            "/cli-auth",
            get(page).post(sign_in).route_layer(from_fn_with_state(
                state.clone(),
                crate::middleware::login_limit,
            )),
        )
        .route_layer(from_fn_with_state(state.clone(), crate::auth::authenticate))
}

/// Signed in: a fresh session token (as upstream's page creates one with `POST
/// /users/me/keys`). Otherwise, or with a stale cookie, the sign-in form.
async fn page(
    State(state): State<AppState>,
    client: ClientIp,
    authn: Option<Extension<Authn>>,
) -> Response {
    match authn.map(|Extension(a)| a) {
        Some(Authn::Authenticated(actor)) => {
            token_page(&state, actor.user_id, &actor.username, None, client).await
        }
        _ => form_page(StatusCode::OK, None),
    }
}

/// The sign-in form's answer: the token page (and the session cookie), or the form again
/// with the reason.
async fn sign_in(State(state): State<AppState>, client: ClientIp, body: Bytes) -> Response {
    let fields = QueryParams::parse(std::str::from_utf8(&body).ok());
    let email = fields.get("email").unwrap_or("");
    let password = fields.get("password").unwrap_or("");
    let user = match password_login(&state, email, password).await {
        Ok(u) => u,
        Err(e) => return form_page(e.status, Some(&e.body.message)),
    };
    let session = match issue_key(
        &state,
        user.id,
        "password",
        state.config.session_duration,
        "",
        client,
    )
    .await
    {
        Ok(t) => t,
        Err(e) => return crate::http::error::ApiError::from(e).into_response(),
    };
    let cookie = session_cookie(&state, &session, false);
    let mut resp = token_page(&state, user.id, &user.username, Some(session), client).await;
    resp.headers_mut().insert(header::SET_COOKIE, cookie);
    resp
}

async fn token_page(
    state: &AppState,
    user: uuid::Uuid,
    username: &str,
    token: Option<String>,
    client: ClientIp,
) -> Response {
    let token = match token {
        Some(t) => t,
        None => match issue_key(
            state,
            user,
            "password",
            state.config.session_duration,
            "",
            client,
        )
        .await
        {
            Ok(t) => t,
            Err(e) => return crate::http::error::ApiError::from(e).into_response(),
        },
    };
    let body = format!(
        "<h1>Session token</h1>\n\
         <p>Signed in as <b>{}</b>. Copy this token and paste it into the Coder CLI or your \
         editor:</p>\n<pre id=\"token\">{}</pre>\n",
        escape(username),
        escape(&token)
    );
    html(StatusCode::OK, &body)
}

fn form_page(status: StatusCode, problem: Option<&str>) -> Response {
    let problem = problem
        .map(|p| format!("<p role=\"alert\">{}</p>\n", escape(p)))
        .unwrap_or_default();
    let body = format!(
        "<h1>Sign in to get a session token</h1>\n{problem}\
         <form method=\"post\" action=\"/cli-auth\">\n\
         <label>Email <input name=\"email\" type=\"email\" autocomplete=\"username\" required></label>\n\
         <label>Password <input name=\"password\" type=\"password\" autocomplete=\"current-password\" required></label>\n\
         <button type=\"submit\">Sign in</button>\n</form>\n"
    );
    html(status, &body)
}

/// A page that no other site may frame or cache (it may hold a token).
fn html(status: StatusCode, body: &str) -> Response {
    let page = format!(
        "<!doctype html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\">\
         <title>Coder: CLI authentication</title></head>\n<body>\n{body}</body>\n</html>\n"
    );
    let mut resp = (status, page).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; form-action 'self'; frame-ancestors 'none'"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    resp
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

#[cfg(test)]
mod tests {
    #[test]
    fn escapes_markup() {
        assert_eq!(
            super::escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
