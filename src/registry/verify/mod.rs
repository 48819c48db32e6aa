//! The hot path: a credential checked against the cache ([`check`]), a miss resolved
//! through the store once for all who wait on it, the cache and its entries, the
//! per-thread hot copies, the interned tenants and scopes, usage counted off the request
//! path, and the watchers that end sockets when their token changes.

pub(in crate::registry) mod cache;
pub(in crate::registry) mod check;
pub(in crate::registry) mod entry;
pub(in crate::registry) mod hot;
pub(in crate::registry) mod intern;
pub(in crate::registry) mod usage;
pub(in crate::registry) mod watchers;
