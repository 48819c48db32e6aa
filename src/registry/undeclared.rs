//! Code that asks for a scope the registry does not declare: a typo (`projects:exprot`
//! for `projects:export`) that would deny every token, admin included. Said once per
//! scope at WARN, naming the scope and the declared ones; with
//! [`RegistryBuilder::strict_scopes`](super::RegistryBuilder::strict_scopes), an error.

use std::collections::HashSet;
use std::sync::Mutex;

use super::Registry;

/// The undeclared scopes already warned about.
#[derive(Default)]
pub(crate) struct Undeclared(Mutex<HashSet<String>>);

impl Registry {
    /// The scopes of `required` (space-separated, as a rejection names them) that no
    /// token of this registry can hold: none when it declares no scopes (then any valid
    /// scope may be issued). The declared set holds every scope an implication names, so
    /// a scope that a declared one implies is declared too.
    pub(crate) fn undeclared<'a>(&self, required: &'a str) -> Vec<&'a str> {
        let Some(declared) = &self.inner.declared else {
            return Vec::new();
        };
        required
            .split(' ')
            .filter(|scope| !scope.is_empty() && !declared.iter().any(|d| d.as_str() == *scope))
            .collect()
    }

    /// Whether undeclared scopes asked for in code are errors rather than warnings.
    pub(crate) fn strict_scopes(&self) -> bool {
        self.inner.strict_scopes
    }

    /// Reports that `asked_by` (a `Scoped` extractor, `RequireScopeLayer`, a gRPC method)
    /// requires `scope`, which is not declared: at WARN the first time (ERROR when strict),
    /// at DEBUG afterwards.
    #[cold]
    pub(crate) fn report_undeclared(&self, scope: &str, asked_by: &str) {
        let first = self
            .inner
            .undeclared
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(scope.to_owned());
        let declared: Vec<&str> = self.declared_scopes().collect();
        let declared = declared.join(", ");
        if !first {
            tracing::debug!(target: "tower_bearer::scope", scope, asked_by, "undeclared scope required");
        } else if self.strict_scopes() {
            tracing::error!(
                target: "tower_bearer::scope",
                scope,
                asked_by,
                declared,
                "{asked_by} requires scope `{scope}`, which the registry does not declare \
                 (declared: {declared}): no token can hold it; answering 500",
            );
        } else {
            tracing::warn!(
                target: "tower_bearer::scope",
                scope,
                asked_by,
                declared,
                "{asked_by} requires scope `{scope}`, which the registry does not declare \
                 (declared: {declared}): every token is refused there. A typo? Declare it \
                 with RegistryBuilder::declare_scopes, or fix the name",
            );
        }
    }
}
