//! Sharing what cached tokens have in common: tenant names and scope grants.
//!
//! A million cached tokens typically belong to far fewer tenants and carry a handful of
//! distinct scope sets; interning them keeps a cached token to one allocation of its own
//! (plus its name).

use std::sync::Arc;

use dashmap::DashMap;

use crate::principal::Grants;
use crate::scope::{Implications, ScopeSet};

/// The parts of a cached token shared between tokens.
pub(crate) struct Shared {
    pub(crate) tenant: Arc<Box<str>>,
    pub(crate) grants: Arc<Grants>,
}

pub(crate) struct Interner {
    implications: Implications,
    tenants: DashMap<Box<str>, Arc<Box<str>>, foldhash::fast::RandomState>,
    grants: DashMap<ScopeSet, Arc<Grants>, foldhash::fast::RandomState>,
}

impl Interner {
    pub(crate) fn new(implications: Implications) -> Self {
        Self {
            implications,
            tenants: DashMap::default(),
            grants: DashMap::default(),
        }
    }

    /// Which scopes imply which.
    pub(crate) fn implications(&self) -> &Implications {
        &self.implications
    }

    /// The shared tenant name and grants for a token of `tenant` granted `scopes`.
    pub(crate) fn shared(&self, tenant: &str, scopes: &ScopeSet) -> Shared {
        let tenant = match self.tenants.get(tenant) {
            Some(interned) => interned.clone(),
            None => self
                .tenants
                .entry(tenant.into())
                .or_insert_with(|| Arc::new(tenant.into()))
                .clone(),
        };
        let grants = match self.grants.get(scopes) {
            Some(interned) => interned.clone(),
            None => self
                .grants
                .entry(scopes.clone())
                .or_insert_with(|| Arc::new(Grants::new(scopes.clone(), &self.implications)))
                .clone(),
        };
        Shared { tenant, grants }
    }

    /// Forgets what no cached token uses any more.
    pub(crate) fn sweep(&self) {
        self.tenants
            .retain(|_, tenant| Arc::strong_count(tenant) > 1);
        self.grants
            .retain(|_, grants| Arc::strong_count(grants) > 1);
    }
}
