//! The behaviour every [`TokenStore`](crate::store::TokenStore) must have, as a test suite any store can run
//! (feature `testing`).
//!
//! [`store_contract_tests!`](crate::store_contract_tests) expands to one `#[test]` per
//! property, so that a failure names the property a store broke. Each test gets a fresh
//! store from the expression you give it (evaluated inside an async block, so it may
//! `.await`), on a multi-threaded Tokio runtime of its own:
//!
//! ```
//! // In your store crate's `tests/contract.rs`:
//! use tower_bearer::MemoryStore;
//!
//! tower_bearer::store_contract_tests!(async { MemoryStore::new() });
//! # fn main() {}
//! ```
//!
//! The properties are also public functions, for stores that need a setup the macro
//! cannot express.

use std::future::Future;

#[cfg(feature = "activity")]
mod activity;
#[cfg(feature = "webhooks")]
mod outbox;
mod policies;
mod properties;
#[cfg(feature = "webhooks")]
mod webhooks;

#[cfg(feature = "activity")]
pub use activity::activity_contract;
#[cfg(feature = "webhooks")]
pub use outbox::outbox_contract;
pub use policies::*;
pub use properties::*;
#[cfg(feature = "webhooks")]
pub use webhooks::webhook_contract;

/// Runs one property on a multi-threaded runtime of its own (used by the macro).
pub fn run(property: impl Future<Output = ()>) {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a Tokio runtime for the store contract")
        .block_on(property);
}

/// One `#[test]` per property of the store contract, each on a fresh store made by
/// `$make` (an expression evaluated in an async block: it may `.await`). See the
/// [module documentation](crate::testing).
///
/// `store_contract_tests!(maybe $make)` takes an expression that yields an
/// `Option<store>`: `None` skips every property (a server that is not there locally).
#[macro_export]
macro_rules! store_contract_tests {
    (maybe $make:expr) => {
        $crate::store_contract_tests!(@all (maybe) $make);
    };
    ($make:expr) => {
        $crate::store_contract_tests!(@all () $make);
    };
    (@all ($($maybe:ident)?) $make:expr) => {
        $crate::store_contract_tests!(@each ($($maybe)?) $make;
            insert_assigns_increasing_ids_and_keeps_every_field,
            digests_are_unique,
            finds_by_digest_and_by_id_within_the_tenant,
            lists_are_per_tenant_in_id_order_and_paginated,
            lists_filter_by_kind_and_creator,
            usage_adds_up_and_keeps_the_latest_use,
            delete_is_tenant_scoped_and_says_what_to_evict,
            prune_deletes_only_what_expired_before_the_cutoff,
            session_pruning_keeps_api_keys,
            lineage_keeps_the_session_a_token_was_issued_through,
            ids_are_never_reused,
            cascade_deletes_a_token_and_its_descendants_only,
            rotation_replaces_a_token_in_one_transaction,
            racing_rotations_leave_one_replacement,
            a_grace_period_keeps_the_old_token_marked,
            insert_once_uses_a_marker_once,
            update_changes_only_what_it_names,
            the_change_feed_announces_deletions_and_updates,
            policies_are_kept_and_changed_field_by_field,
            rate_windows_never_grant_beyond_the_limit,
            credits_are_taken_refilled_and_given_back,
        );
    };
    (@each () $make:expr; $($property:ident),+ $(,)?) => {
        $(
            #[test]
            fn $property() {
                $crate::testing::run(async {
                    let store = $make.await;
                    $crate::testing::$property(&store).await;
                });
            }
        )+
    };
    (@each (maybe) $make:expr; $($property:ident),+ $(,)?) => {
        $(
            #[test]
            fn $property() {
                $crate::testing::run(async {
                    match $make.await {
                        Some(store) => $crate::testing::$property(&store).await,
                        None => eprintln!("SKIPPED: {}: no store to test", stringify!($property)),
                    }
                });
            }
        )+
    };
}
