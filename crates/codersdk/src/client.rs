use std::sync::Arc;

use reqwest::header::{HeaderMap, CONTENT_TYPE};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;
use uuid::Uuid;

use crate::types::*;
use crate::SESSION_TOKEN_HEADER;

/// Called with every response the client receives: method, path (with query), status,
/// content type and body. Test harnesses use it to check every body against the API spec.
pub type ResponseObserver = Arc<dyn Fn(&Method, &str, StatusCode, &str, &[u8]) + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with a non-success status and a `codersdk.Response` body.
    #[error("{status}: {}{}", response.message, if response.detail.is_empty() { String::new() } else { format!(" ({})", response.detail) })]
    Api {
        status: StatusCode,
        response: Response,
    },
    #[error("transport: {0}")]
    Transport(#[from] reqwest::Error),
    #[error("decoding the response body: {0}")]
    Decode(#[from] serde_json::Error),
}

impl ClientError {
    /// The HTTP status when the server answered with an error.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// A raw response: status, headers and body bytes.
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }
}

/// A typed client for the `/api/v2` API.
#[derive(Clone)]
pub struct Client {
    base: String,
    http: reqwest::Client,
    token: Option<String>,
    observer: Option<ResponseObserver>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("base", &self.base).finish()
    }
}

impl Client {
    /// `base` is the deployment URL, e.g. `http://127.0.0.1:3000`.
    pub fn new(base: impl Into<String>) -> Self {
        Client {
            base: base.into().trim_end_matches('/').to_string(),
            http: reqwest::Client::new(),
            token: None,
            observer: None,
        }
    }

    pub fn with_token(&self, token: impl Into<String>) -> Self {
        let mut c = self.clone();
        c.token = Some(token.into());
        c
    }

    pub fn without_token(&self) -> Self {
        let mut c = self.clone();
        c.token = None;
        c
    }

    pub fn with_observer(mut self, observer: ResponseObserver) -> Self {
        self.observer = Some(observer);
        self
    }

    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// Sends a request with an optional body (`content_type`, bytes) and returns the raw answer.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
        extra_headers: &[(&str, &str)],
    ) -> Result<RawResponse, ClientError> {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{}", self.base, path));
        if let Some(token) = &self.token {
            req = req.header(SESSION_TOKEN_HEADER, token);
        }
        for (k, v) in extra_headers {
            req = req.header(*k, *v);
        }
        if let Some((ct, bytes)) = body {
            req = req.header(CONTENT_TYPE, ct).body(bytes);
        }
        let resp = req.send().await?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.bytes().await?.to_vec();
        if let Some(observer) = &self.observer {
            let ct = headers
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            observer(&method, path, status, ct, &body);
        }
        Ok(RawResponse {
            status,
            headers,
            body,
        })
    }

    /// Sends JSON (or nothing) and decodes a JSON answer; non-2xx becomes `ClientError::Api`.
    pub async fn request<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, ClientError> {
        let body = match body {
            Some(b) => Some(("application/json", serde_json::to_vec(b)?)),
            None => None,
        };
        let raw = self.send(method, path, body, &[]).await?;
        Self::decode(raw)
    }

    fn decode<T: DeserializeOwned>(raw: RawResponse) -> Result<T, ClientError> {
        if !raw.status.is_success() {
            let response = serde_json::from_slice(&raw.body).unwrap_or_else(|_| Response {
                message: String::from_utf8_lossy(&raw.body).into_owned(),
                ..Default::default()
            });
            return Err(ClientError::Api {
                status: raw.status,
                response,
            });
        }
        let body: &[u8] = if raw.body.is_empty() {
            b"null"
        } else {
            &raw.body
        };
        Ok(serde_json::from_slice(body)?)
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.request::<(), T>(Method::GET, path, None).await
    }

    async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        self.request(Method::POST, path, Some(body)).await
    }

    // -- general ------------------------------------------------------------------------------

    pub async fn build_info(&self) -> Result<BuildInfoResponse, ClientError> {
        self.get("/api/v2/buildinfo").await
    }

    // -- users & auth -------------------------------------------------------------------------

    pub async fn create_first_user(
        &self,
        req: &CreateFirstUserRequest,
    ) -> Result<CreateFirstUserResponse, ClientError> {
        self.post("/api/v2/users/first", req).await
    }

    pub async fn login_with_password(
        &self,
        email: &str,
        password: &str,
    ) -> Result<LoginWithPasswordResponse, ClientError> {
        let req = LoginWithPasswordRequest {
            email: email.into(),
            password: password.into(),
        };
        self.post("/api/v2/users/login", &req).await
    }

    pub async fn logout(&self) -> Result<Response, ClientError> {
        self.post("/api/v2/users/logout", &serde_json::json!({}))
            .await
    }

    pub async fn user(&self, user: &str) -> Result<User, ClientError> {
        self.get(&format!("/api/v2/users/{user}")).await
    }

    pub async fn users(&self, query: &str) -> Result<GetUsersResponse, ClientError> {
        self.get(&format!("/api/v2/users{query}")).await
    }

    pub async fn create_user(&self, req: &CreateUserRequest) -> Result<User, ClientError> {
        self.post("/api/v2/users", req).await
    }

    pub async fn create_token(
        &self,
        user: &str,
        req: &CreateTokenRequest,
    ) -> Result<GenerateApiKeyResponse, ClientError> {
        self.post(&format!("/api/v2/users/{user}/keys/tokens"), req)
            .await
    }

    // -- organizations ------------------------------------------------------------------------

    pub async fn organizations(&self) -> Result<Vec<Organization>, ClientError> {
        self.get("/api/v2/organizations").await
    }

    pub async fn organization(&self, org: &str) -> Result<Organization, ClientError> {
        self.get(&format!("/api/v2/organizations/{org}")).await
    }

    pub async fn create_organization(
        &self,
        req: &CreateOrganizationRequest,
    ) -> Result<Organization, ClientError> {
        self.post("/api/v2/organizations", req).await
    }

    pub async fn add_organization_member(
        &self,
        org: Uuid,
        user: &str,
    ) -> Result<OrganizationMember, ClientError> {
        self.post(
            &format!("/api/v2/organizations/{org}/members/{user}"),
            &serde_json::json!({}),
        )
        .await
    }

    // -- groups -------------------------------------------------------------------------------

    pub async fn create_group(
        &self,
        org: Uuid,
        req: &CreateGroupRequest,
    ) -> Result<Group, ClientError> {
        self.post(&format!("/api/v2/organizations/{org}/groups"), req)
            .await
    }

    pub async fn group(&self, id: Uuid) -> Result<Group, ClientError> {
        self.get(&format!("/api/v2/groups/{id}")).await
    }

    pub async fn patch_group(
        &self,
        id: Uuid,
        req: &PatchGroupRequest,
    ) -> Result<Group, ClientError> {
        self.request(Method::PATCH, &format!("/api/v2/groups/{id}"), Some(req))
            .await
    }

    // -- files --------------------------------------------------------------------------------

    /// Uploads an archive; returns the status (201 new, 200 existing) and the file id.
    pub async fn upload(
        &self,
        content_type: &str,
        data: Vec<u8>,
    ) -> Result<(StatusCode, UploadResponse), ClientError> {
        let raw = self
            .send(
                Method::POST,
                "/api/v2/files",
                Some((content_type, data)),
                &[],
            )
            .await?;
        let status = raw.status;
        Ok((status, Self::decode(raw)?))
    }
}

impl Client {
    pub async fn create_template_version(
        &self,
        org: Uuid,
        req: &crate::CreateTemplateVersionRequest,
    ) -> Result<crate::TemplateVersion, ClientError> {
        self.post(
            &format!("/api/v2/organizations/{org}/templateversions"),
            req,
        )
        .await
    }

    pub async fn template_version(&self, id: Uuid) -> Result<crate::TemplateVersion, ClientError> {
        self.get(&format!("/api/v2/templateversions/{id}")).await
    }

    pub async fn create_template(
        &self,
        org: Uuid,
        req: &crate::CreateTemplateRequest,
    ) -> Result<crate::Template, ClientError> {
        self.post(&format!("/api/v2/organizations/{org}/templates"), req)
            .await
    }

    pub async fn template(&self, id: Uuid) -> Result<crate::Template, ClientError> {
        self.get(&format!("/api/v2/templates/{id}")).await
    }

    pub async fn template_versions(
        &self,
        template: Uuid,
        query: &str,
    ) -> Result<Vec<crate::TemplateVersion>, ClientError> {
        self.get(&format!("/api/v2/templates/{template}/versions{query}"))
            .await
    }

    pub async fn template_version_logs(
        &self,
        version: Uuid,
        after: i64,
    ) -> Result<Vec<crate::ProvisionerJobLog>, ClientError> {
        self.get(&format!(
            "/api/v2/templateversions/{version}/logs?after={after}"
        ))
        .await
    }

    /// GET any path and decode the JSON answer.
    pub async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.get(path).await
    }
}
