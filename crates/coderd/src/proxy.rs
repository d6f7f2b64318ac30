//! Running behind a reverse proxy, as Coder does: the client's real address from trusted
//! forwarding headers (`CODER_PROXY_TRUSTED_HEADERS`), honoured only when the connection comes
//! from a trusted network (`CODER_PROXY_TRUSTED_ORIGINS`); and `CODER_REDIRECT_TO_ACCESS_URL`.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use ipnet::IpNet;

/// Which forwarding headers to believe, and from whom.
#[derive(Clone, Debug, Default)]
pub struct ProxyConfig {
    /// Header names in the order they are consulted, e.g. `X-Forwarded-For`.
    pub trusted_headers: Vec<HeaderName>,
    /// Networks whose connections may set those headers.
    pub trusted_origins: Vec<IpNet>,
}

impl ProxyConfig {
    /// Parses the header names and CIDRs as given on the command line.
    pub fn parse(headers: &[String], origins: &[String]) -> anyhow::Result<ProxyConfig> {
        let trusted_headers = headers
            .iter()
            .map(|h| h.trim())
            .filter(|h| !h.is_empty())
            .map(|h| {
                HeaderName::try_from(h)
                    .map_err(|_| anyhow::anyhow!("proxy trusted header {h:?} is not a header name"))
            })
            .collect::<anyhow::Result<_>>()?;
        let trusted_origins = origins
            .iter()
            .map(|o| o.trim())
            .filter(|o| !o.is_empty())
            .map(|o| {
                o.parse::<IpNet>()
                    .map_err(|e| anyhow::anyhow!("parse proxy origin {o:?}: {e}"))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(ProxyConfig {
            trusted_headers,
            trusted_origins,
        })
    }

    fn trusts(&self, peer: IpAddr) -> bool {
        let peer = canonical(peer);
        self.trusted_origins.iter().any(|n| n.contains(&peer))
    }
}

/// The address of the client a request is for: the peer's, or the one a trusted proxy named.
#[derive(Clone, Copy, Debug)]
pub struct ClientIp(pub IpAddr);

/// Whether the connection itself came from a trusted proxy (so its `X-Forwarded-*` headers,
/// such as `X-Forwarded-Proto`, may be believed).
#[derive(Clone, Copy, Debug)]
pub struct FromTrustedProxy(pub bool);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    /// Unspecified (`0.0.0.0`) when the request came over no socket.
    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<ClientIp, Self::Rejection> {
        Ok(ClientIp(
            client_ip(&parts.extensions).unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)),
        ))
    }
}

/// The client address of a request that went through [`real_ip`]; the peer's otherwise.
pub fn client_ip(ext: &axum::http::Extensions) -> Option<IpAddr> {
    ext.get::<ClientIp>().map(|c| c.0).or_else(|| {
        ext.get::<ConnectInfo<SocketAddr>>()
            .map(|c| canonical(c.0.ip()))
    })
}

/// IPv4-mapped IPv6 addresses (`::ffff:10.0.0.1`) are their IPv4 address, as Go sees them.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The first address of a header value (`X-Forwarded-For` lists the client first), with any
/// port removed.
fn first_address(value: &str) -> Option<IpAddr> {
    let first = value.split(',').next()?.trim();
    if let Ok(sa) = first.parse::<SocketAddr>() {
        return Some(sa.ip());
    }
    first
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

/// Decides the client address of every request. From an untrusted peer the trusted headers
/// are removed, so nothing downstream can mistake them for a proxy's word; from a trusted
/// one the first of them that holds an address names the client.
pub async fn real_ip(
    State(config): State<Arc<ProxyConfig>>,
    mut req: Request,
    next: Next,
) -> Response {
    let Some(peer) = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| canonical(c.0.ip()))
    else {
        return next.run(req).await;
    };
    let trusted = config.trusts(peer);
    let mut client = peer;
    if trusted {
        if let Some(ip) = config.trusted_headers.iter().find_map(|h| {
            req.headers()
                .get(h)
                .and_then(|v| v.to_str().ok())
                .and_then(first_address)
        }) {
            client = canonical(ip);
        }
    } else {
        for h in &config.trusted_headers {
            req.headers_mut().remove(h);
        }
    }
    req.extensions_mut().insert(ClientIp(client));
    req.extensions_mut().insert(FromTrustedProxy(trusted));
    next.run(req).await
}

/// What `CODER_REDIRECT_TO_ACCESS_URL` compares requests with.
#[derive(Clone, Debug)]
pub struct RedirectConfig {
    pub access_url: String,
    /// `host[:port]` of the access URL.
    pub host: String,
    pub https: bool,
}

impl RedirectConfig {
    pub fn new(access_url: &str) -> RedirectConfig {
        let https = access_url.starts_with("https://");
        let rest = access_url
            .trim_start_matches("https://")
            .trim_start_matches("http://");
        let host = rest.split('/').next().unwrap_or("").to_string();
        RedirectConfig {
            access_url: access_url.trim_end_matches('/').to_string(),
            host,
            https,
        }
    }
}

/// Marks requests that reached us on our own TLS listener.
#[derive(Clone, Copy, Debug)]
pub struct ServedOverTls;

/// Sends a request that did not come to the access URL there (307), as Coder does; `/healthz`
/// and `/derp` are left alone. Unlike Coder, which always redirects to the access URL's root,
/// the path and query are kept.
pub async fn redirect_to_access_url(
    State(config): State<Arc<RedirectConfig>>,
    req: Request,
    next: Next,
) -> Response {
    let path = req.uri().path();
    if path == "/healthz" || path == "/derp" || path.starts_with("/derp/") {
        return next.run(req).await;
    }
    let headers = req.headers();
    let trusted = req
        .extensions()
        .get::<FromTrustedProxy>()
        .is_some_and(|t| t.0);
    // Our own TLS listener, or a trusted proxy saying the client used https.
    let tls = req.extensions().get::<ServedOverTls>().is_some()
        || (trusted
            && headers
                .get("x-forwarded-proto")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|p| p.eq_ignore_ascii_case("https")));
    let host_is = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|h| h.eq_ignore_ascii_case(&config.host))
    };
    let host_ok = host_is(header::HOST.as_str())
        || req.uri().authority().map(|a| a.as_str()) == Some(config.host.as_str())
        || host_is("x-forwarded-host");
    if host_ok && (tls || !config.https) {
        return next.run(req).await;
    }
    let target = format!(
        "{}{}",
        config.access_url,
        req.uri().path_and_query().map_or("/", |p| p.as_str())
    );
    match HeaderValue::from_str(&target) {
        Ok(location) => {
            let mut resp = StatusCode::TEMPORARY_REDIRECT.into_response();
            resp.headers_mut().insert(header::LOCATION, location);
            resp
        }
        Err(_) => next.run(req).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_address_of_a_header() {
        let ip = |s: &str| first_address(s).map(|a| a.to_string());
        assert_eq!(ip("203.0.113.7").as_deref(), Some("203.0.113.7"));
        assert_eq!(ip("203.0.113.7, 10.0.0.1").as_deref(), Some("203.0.113.7"));
        assert_eq!(ip("203.0.113.7:4711").as_deref(), Some("203.0.113.7"));
        assert_eq!(ip("[2001:db8::1]:80").as_deref(), Some("2001:db8::1"));
        assert_eq!(ip("2001:db8::1").as_deref(), Some("2001:db8::1"));
        assert_eq!(ip("unknown"), None);
        assert_eq!(ip(""), None);
    }

    #[test]
    fn origins_are_cidrs() {
        let c = ProxyConfig::parse(
            &["X-Forwarded-For".into()],
            &["127.0.0.1/32".into(), "10.0.0.0/8".into()],
        )
        .unwrap();
        assert!(c.trusts("127.0.0.1".parse().unwrap()));
        assert!(c.trusts("::ffff:10.1.2.3".parse().unwrap()));
        assert!(!c.trusts("127.0.0.2".parse().unwrap()));
        assert!(ProxyConfig::parse(&[], &["10.0.0.1".into()]).is_err());
        assert!(ProxyConfig::parse(&["bad header".into()], &[]).is_err());
    }

    #[test]
    fn access_url_host() {
        let r = RedirectConfig::new("https://coder.example.com:8443/");
        assert_eq!(r.host, "coder.example.com:8443");
        assert!(r.https);
        assert_eq!(r.access_url, "https://coder.example.com:8443");
    }
}
