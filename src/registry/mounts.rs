//! Where the HTTP routes over a registry are mounted: the management API's base path and
//! the login route, as their routers record them. The dashboard reads them to find both,
//! and the layer to explain a 401 on a login route it protects by mistake.

use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, Ordering};

use super::Registry;

/// The mounts, and whether the misplaced login route was warned about.
#[derive(Default)]
pub(crate) struct Mounts {
    routes: RwLock<Routes>,
    warned: AtomicBool,
}

#[derive(Default)]
struct Routes {
    management: Option<String>,
    login: Option<String>,
}

impl Registry {
    /// Records the management API's base path (`""` for the root).
    #[cfg_attr(not(feature = "admin"), allow(dead_code))]
    pub(crate) fn record_management_mount(&self, base: &str) {
        self.routes_mut().management = Some(base.to_owned());
    }

    /// Records the login route's full path (`/v1/auth/login`).
    #[cfg_attr(not(all(feature = "admin", feature = "exchange")), allow(dead_code))]
    pub(crate) fn record_login_route(&self, path: &str) {
        self.routes_mut().login = Some(path.to_owned());
    }

    /// The management API's base path, once its router was built.
    #[cfg_attr(not(feature = "dashboard"), allow(dead_code))]
    pub(crate) fn management_mount(&self) -> Option<String> {
        self.routes().management.clone()
    }

    /// The login route, once its router was built.
    #[cfg_attr(not(feature = "dashboard"), allow(dead_code))]
    pub(crate) fn login_route(&self) -> Option<String> {
        self.routes().login.clone()
    }

    /// A request to `path` was refused for want of a credential: when `path` is the login
    /// route, the layer in front of it should have let it through. Says so once, at WARN
    /// (the route can never work that way), and at DEBUG afterwards.
    #[cold]
    pub(crate) fn explain_protected_login(&self, path: &str) {
        let routes = self.routes();
        let Some(login) = routes.login.as_deref().filter(|login| *login == path) else {
            return;
        };
        if self.inner.mounts.warned.swap(true, Ordering::Relaxed) {
            tracing::debug!(target: "tower_bearer::reject", route = login, "login route behind the layer");
        } else {
            tracing::warn!(
                target: "tower_bearer::reject",
                route = login,
                "{login} is the login route, but the layer in front of it requires a token: \
                 the login route must be public (BearerAuthLayer::public([\"{login}\"]))",
            );
        }
    }

    fn routes(&self) -> std::sync::RwLockReadGuard<'_, Routes> {
        self.inner
            .mounts
            .routes
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn routes_mut(&self) -> std::sync::RwLockWriteGuard<'_, Routes> {
        self.inner
            .mounts
            .routes
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
