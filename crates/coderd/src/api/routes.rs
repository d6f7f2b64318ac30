//! The route registrar: each `/api/v2` route is declared once, in its handler's module, with
//! its OpenAPI operation beside it. The same declarations mount the router and generate the
//! OpenAPI document, so the two cannot drift apart.
//!
//! ```ignore
//! pub fn routes(r: &mut Routes) {
//!     r.get("/users/{user}/gitsshkey", get_key)
//!         .op("Users", "get-user-git-ssh-key", "Get user Git SSH key")
//!         .ok::<codersdk::GitSshKey>(200);
//! }
//! ```

use axum::extract::DefaultBodyLimit;
use axum::handler::Handler;
use axum::middleware::from_fn_with_state;
use axum::routing::MethodRouter;
use axum::Router;

pub use super::openapi::{Method, Operation, Param};
use crate::state::AppState;

/// A rate limit of its own on one route, besides the API-wide one.
#[derive(Clone, Copy, Debug)]
pub enum Limit {
    /// `CODER_LOGIN_RATE_LIMIT`: password sign-ins and changes.
    Login,
    /// `CODER_FILES_RATE_LIMIT`: uploads.
    Files,
}

/// One method on one path.
pub struct Route {
    method: Method,
    path: &'static str,
    handler: MethodRouter<AppState>,
    limit: Option<Limit>,
    body_limit: Option<usize>,
    operation: Option<Operation>,
}

impl Route {
    /// Its own rate limit.
    pub fn limit(&mut self, limit: Limit) -> &mut Self {
        self.limit = Some(limit);
        self
    }

    /// A body limit other than the API's JSON limit.
    pub fn body_limit(&mut self, bytes: usize) -> &mut Self {
        self.body_limit = Some(bytes);
        self
    }

    /// Its OpenAPI operation (tag, operation id, summary, as in Coder's API reference); the
    /// rest of the chain describes parameters, bodies and answers.
    pub fn op(
        &mut self,
        tag: &'static str,
        id: &'static str,
        summary: &'static str,
    ) -> &mut Operation {
        self.operation.insert(Operation::new(tag, id, summary))
    }
}

/// Every route of `/api/v2`, in declaration order.
#[derive(Default)]
pub struct Routes {
    routes: Vec<Route>,
}

macro_rules! methods {
    ($($name:ident => $method:ident),* $(,)?) => {
        $(
            pub fn $name<H, T>(&mut self, path: &'static str, handler: H) -> &mut Route
            where
                H: Handler<T, AppState>,
                T: 'static,
            {
                self.add(Method::$method, path, axum::routing::$name(handler))
            }
        )*
    };
}

impl Routes {
    methods!(get => Get, post => Post, put => Put, patch => Patch, delete => Delete);

    fn add(
        &mut self,
        method: Method,
        path: &'static str,
        handler: MethodRouter<AppState>,
    ) -> &mut Route {
        assert!(
            !self
                .routes
                .iter()
                .any(|r| r.method == method && r.path == path),
            "{} {path} is declared twice",
            method.key()
        );
        self.routes.push(Route {
            method,
            path,
            handler,
            limit: None,
            body_limit: None,
            operation: None,
        });
        self.routes.last_mut().expect("just pushed")
    }

    /// Each route's method, path and operation. Panics on a route declared without one.
    pub fn operations(&self) -> impl Iterator<Item = (Method, &str, &Operation)> {
        self.routes.iter().map(|r| {
            let op = r.operation.as_ref().unwrap_or_else(|| {
                panic!("{} {} has no OpenAPI operation", r.method.key(), r.path)
            });
            (r.method, r.path, op)
        })
    }

    /// The router of these routes, with each route's own layers.
    pub fn into_router(self, state: &AppState) -> Router<AppState> {
        let mut router = Router::new();
        for r in self.routes {
            let mut handler = r.handler;
            if let Some(limit) = r.limit {
                handler = match limit {
                    Limit::Login => handler.route_layer(from_fn_with_state(
                        state.clone(),
                        crate::middleware::login_limit,
                    )),
                    Limit::Files => handler.route_layer(from_fn_with_state(
                        state.clone(),
                        crate::middleware::files_limit,
                    )),
                };
            }
            if let Some(bytes) = r.body_limit {
                handler = handler.layer(DefaultBodyLimit::max(bytes));
            }
            // Methods of one path merge into one method router.
            router = router.route(r.path, handler);
        }
        router
    }
}
