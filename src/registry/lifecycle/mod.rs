//! A token's life through the registry: issuing it, then changing, rotating and
//! revoking it, each on every node at once.

pub(in crate::registry) mod change;
pub(in crate::registry) mod issue;
pub(in crate::registry) mod leaked;
