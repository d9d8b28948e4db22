//! Behaviour every [`TopicLog`] backend must show, as reusable async checks,
//! grouped by the part of the log they check: [`events`] ([`EventLog`]),
//! [`catalog`] ([`CatalogStore`]), [`leases`] ([`LeaseStore`]) and
//! [`records`] ([`RecordStore`]).
//!
//! Owns: the shared set-up of the checks (events, records, tenants), one
//! async fn per behaviour in the module of its part, and the macros that
//! turn them into `#[tokio::test]`s for a backend: `contract_tests!` for all
//! of them, or one part's (`event_log_contract_tests!`,
//! `catalog_contract_tests!`, `lease_contract_tests!`,
//! `record_store_contract_tests!`). Must not: depend on a particular
//! backend.

pub mod catalog;
pub mod events;
pub mod leases;
pub mod records;

use bytes::Bytes;

#[cfg(doc)]
use super::{CatalogStore, LeaseStore, RecordStore, TopicLog};
use super::{CommitRecord, EventLog, ManagedRecord, NewEvent};
use crate::types::{
    EventId, ManagedId, ManagedReplay, ManagedState, Offset, SchemaId, TenantId, TopicId,
};

/// A tenant of the schema checks.
pub fn tenant(org15: &str) -> TenantId {
    TenantId::parse(org15).expect("a 15-character org id")
}

/// A small event whose payload encodes `n`.
pub fn event(n: u64) -> NewEvent {
    NewEvent {
        id: EventId::new(format!("ev-{n}")),
        schema_id: SchemaId::new("AAAAAAAAAAAAAAAAAAAAAA"),
        payload: Bytes::from(n.to_be_bytes().to_vec()),
        headers: Vec::new(),
        generated_id: false,
    }
}

/// Registers `topic` and appends `n` events one call each; returns offsets.
pub async fn fill(log: &dyn EventLog, topic: TopicId, n: u64) -> Vec<Offset> {
    log.register_topic(topic).await.expect("register");
    let mut out = Vec::new();
    for i in 0..n {
        out.extend(log.append(topic, vec![event(i)]).await.expect("append"));
    }
    out
}

/// A managed-subscription record of the default tenant, developer name
/// `Sub_<id>`, with a commit at `commit` when given.
pub fn managed_record(id: &str, commit: Option<u64>) -> ManagedRecord {
    ManagedRecord {
        id: id.to_owned(),
        tenant: "00D000000000000EAA".into(),
        developer_name: format!("Sub_{id}"),
        topic: "/event/A__e".into(),
        default_replay: ManagedReplay::Earliest,
        error_recovery_replay: ManagedReplay::Latest,
        state: ManagedState::Run,
        created_ms: 1,
        updated_ms: 2,
        commit: commit.map(|offset| CommitRecord {
            topic_id: 3,
            offset,
            time_ms: 4,
        }),
    }
}

/// A managed-subscription id as the checks name them (any text).
pub fn managed_id(id: &str) -> ManagedId {
    ManagedId::from_stored(id.to_owned())
}

/// Expands to one `#[tokio::test]` per contract behaviour, in a module
/// `contract_suite` with one module per part of the log (`event_log`,
/// `catalog`, `leases`, `records`). The argument is a block returning `(log, guard)`;
/// the guard (for example a temp dir) lives as long as the test.
#[macro_export]
macro_rules! contract_tests {
    ($make:block) => {
        mod contract_suite {
            #[allow(unused_imports)] // the block may name items of the parent
            use super::*;

            $crate::event_log_contract_tests!($make);
            $crate::catalog_contract_tests!($make);
            $crate::lease_contract_tests!($make);
            $crate::record_store_contract_tests!($make);
        }
    };
}

/// Expands to a module `event_log` of one `#[tokio::test]` per event-log
/// behaviour. The argument is a block returning `(log, guard)`, as for
/// [`contract_tests!`](crate::contract_tests); the log need only be an
/// [`EventLog`].
#[macro_export]
macro_rules! event_log_contract_tests {
    ($make:block) => {
        mod event_log {
            #[allow(unused_imports)] // the block may name items of the parent
            use super::*;
            use std::sync::Arc;
            use $crate::log::EventLog;

            fn make() -> (Arc<dyn EventLog>, impl Sized) {
                let (log, guard) = $make;
                (Arc::new(log) as Arc<dyn EventLog>, guard)
            }

            #[tokio::test]
            async fn offsets_start_at_one_and_are_dense() {
                let (log, _g) = make();
                $crate::log::contract::events::offsets_start_at_one_and_are_dense(&*log).await;
            }
            #[tokio::test]
            async fn topics_are_independent() {
                let (log, _g) = make();
                $crate::log::contract::events::topics_are_independent(&*log).await;
            }
            #[tokio::test]
            async fn read_returns_events_after_offset_in_order() {
                let (log, _g) = make();
                $crate::log::contract::events::read_returns_events_after_offset_in_order(&*log)
                    .await;
            }
            #[tokio::test]
            async fn read_respects_limits() {
                let (log, _g) = make();
                $crate::log::contract::events::read_respects_limits(&*log).await;
            }
            #[tokio::test]
            async fn watch_tail_wakes_on_append() {
                let (log, _g) = make();
                $crate::log::contract::events::watch_tail_wakes_on_append(log).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn concurrent_appends_get_unique_dense_offsets() {
                let (log, _g) = make();
                $crate::log::contract::events::concurrent_appends_get_unique_dense_offsets(log)
                    .await;
            }
            #[tokio::test]
            async fn trim_deletes_old_events_only() {
                let (log, _g) = make();
                $crate::log::contract::events::trim_deletes_old_events_only(&*log).await;
            }
            #[tokio::test]
            async fn unknown_topic_is_an_error() {
                let (log, _g) = make();
                $crate::log::contract::events::unknown_topic_is_an_error(&*log).await;
            }
            #[tokio::test]
            async fn close_refuses_appends() {
                let (log, _g) = make();
                $crate::log::contract::events::close_refuses_appends(&*log).await;
            }
            #[tokio::test]
            async fn append_many_parts_land_dense_and_readable() {
                let (log, _g) = make();
                $crate::log::contract::events::append_many_parts_land_dense_and_readable(&*log)
                    .await;
            }
            #[tokio::test]
            async fn append_many_is_all_or_nothing() {
                let (log, _g) = make();
                $crate::log::contract::events::append_many_is_all_or_nothing(&*log).await;
            }
            #[tokio::test]
            async fn append_many_empty_parts() {
                let (log, _g) = make();
                $crate::log::contract::events::append_many_empty_parts(&*log).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn concurrent_append_many_keeps_parts_contiguous() {
                let (log, _g) = make();
                $crate::log::contract::events::concurrent_append_many_keeps_parts_contiguous(log)
                    .await;
            }
            #[tokio::test]
            async fn append_many_after_close_fails() {
                let (log, _g) = make();
                $crate::log::contract::events::append_many_after_close_fails(&*log).await;
            }
        }
    };
}

/// Expands to a module `catalog` of one `#[tokio::test]` per catalog
/// behaviour. The argument is a block returning `(log, guard)`, as for
/// [`contract_tests!`](crate::contract_tests); the log must be a whole
/// [`TopicLog`] (deleting a topic and the change feed involve its events).
#[macro_export]
macro_rules! catalog_contract_tests {
    ($make:block) => {
        mod catalog {
            #[allow(unused_imports)] // the block may name items of the parent
            use super::*;
            use std::sync::Arc;
            use $crate::log::TopicLog;

            fn make() -> (Arc<dyn TopicLog>, impl Sized) {
                let (log, guard) = $make;
                (Arc::new(log) as Arc<dyn TopicLog>, guard)
            }

            #[tokio::test]
            async fn catalog_round_trips() {
                let (log, _g) = make();
                $crate::log::contract::catalog::catalog_round_trips(&*log).await;
            }
            #[tokio::test]
            async fn managed_records_round_trip() {
                let (log, _g) = make();
                $crate::log::contract::catalog::managed_records_round_trip(&*log).await;
            }
            #[tokio::test]
            async fn create_managed_takes_a_name_once_per_tenant() {
                let (log, _g) = make();
                $crate::log::contract::catalog::create_managed_takes_a_name_once_per_tenant(&*log)
                    .await;
            }
            #[tokio::test]
            async fn put_commit_changes_only_the_commit() {
                let (log, _g) = make();
                $crate::log::contract::catalog::put_commit_changes_only_the_commit(&*log).await;
            }
            #[tokio::test]
            async fn get_managed_reads_the_stored_record() {
                let (log, _g) = make();
                $crate::log::contract::catalog::get_managed_reads_the_stored_record(&*log).await;
            }
            #[tokio::test]
            async fn create_topic_refuses_an_existing_name() {
                let (log, _g) = make();
                $crate::log::contract::catalog::create_topic_refuses_an_existing_name(&*log).await;
            }
            #[tokio::test]
            async fn allocated_topic_ids_are_fresh() {
                let (log, _g) = make();
                $crate::log::contract::catalog::allocated_topic_ids_are_fresh(&*log).await;
            }
            #[tokio::test]
            async fn schema_texts_are_kept_per_tenant() {
                let (log, _g) = make();
                $crate::log::contract::catalog::schema_texts_are_kept_per_tenant(&*log).await;
            }
            #[tokio::test]
            async fn catalog_changes_are_reported() {
                let (log, _g) = make();
                $crate::log::contract::catalog::catalog_changes_are_reported(&*log).await;
            }
            #[tokio::test]
            async fn delete_topic_removes_everything() {
                let (log, _g) = make();
                $crate::log::contract::catalog::delete_topic_removes_everything(&*log).await;
            }
        }
    };
}

/// Expands to a module `leases` of one `#[tokio::test]` per lease
/// behaviour. The argument is a block returning `(log, guard)`, as for
/// [`contract_tests!`](crate::contract_tests); the log need only be a
/// [`LeaseStore`].
#[macro_export]
macro_rules! lease_contract_tests {
    ($make:block) => {
        mod leases {
            #[allow(unused_imports)] // the block may name items of the parent
            use super::*;
            use std::sync::Arc;
            use $crate::log::LeaseStore;

            fn make() -> (Arc<dyn LeaseStore>, impl Sized) {
                let (log, guard) = $make;
                (Arc::new(log) as Arc<dyn LeaseStore>, guard)
            }

            #[tokio::test]
            async fn leases_exclude_other_holders() {
                let (log, _g) = make();
                $crate::log::contract::leases::leases_exclude_other_holders(&*log).await;
            }
        }
    };
}

/// Expands to a module `records` of one `#[tokio::test]` per record-store
/// behaviour. The argument is a block returning `(log, guard)`, as for
/// [`contract_tests!`](crate::contract_tests); the log need only be a
/// [`RecordStore`]. Durability across a reopen is each backend's own test
/// (with [`records::records_before_reopen`] and
/// [`records::records_after_reopen`]): the factory cannot reopen.
#[macro_export]
macro_rules! record_store_contract_tests {
    ($make:block) => {
        mod records {
            #[allow(unused_imports)] // the block may name items of the parent
            use super::*;
            use std::sync::Arc;
            use $crate::log::RecordStore;

            fn make() -> (Arc<dyn RecordStore>, impl Sized) {
                let (log, guard) = $make;
                (Arc::new(log) as Arc<dyn RecordStore>, guard)
            }

            #[tokio::test]
            async fn put_record_creates_and_updates_by_revision() {
                let (log, _g) = make();
                $crate::log::contract::records::put_record_creates_and_updates_by_revision(&*log)
                    .await;
            }
            #[tokio::test]
            async fn put_record_with_another_revision_stores_nothing() {
                let (log, _g) = make();
                $crate::log::contract::records::put_record_with_another_revision_stores_nothing(
                    &*log,
                )
                .await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn concurrent_puts_of_one_revision_let_one_win() {
                let (log, _g) = make();
                $crate::log::contract::records::concurrent_puts_of_one_revision_let_one_win(log)
                    .await;
            }
            #[tokio::test]
            async fn delete_record_needs_the_current_revision() {
                let (log, _g) = make();
                $crate::log::contract::records::delete_record_needs_the_current_revision(&*log)
                    .await;
            }
            #[tokio::test]
            async fn list_records_by_prefix_after_and_limit() {
                let (log, _g) = make();
                $crate::log::contract::records::list_records_by_prefix_after_and_limit(&*log).await;
            }
            #[tokio::test]
            async fn tenants_never_see_each_others_records() {
                let (log, _g) = make();
                $crate::log::contract::records::tenants_never_see_each_others_records(&*log).await;
            }
            #[tokio::test]
            async fn sequences_start_at_zero_and_grow_by_n() {
                let (log, _g) = make();
                $crate::log::contract::records::sequences_start_at_zero_and_grow_by_n(&*log).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn concurrent_sequence_calls_get_unique_values() {
                let (log, _g) = make();
                $crate::log::contract::records::concurrent_sequence_calls_get_unique_values(log)
                    .await;
            }
            #[tokio::test]
            async fn invalid_inputs_are_refused() {
                let (log, _g) = make();
                $crate::log::contract::records::invalid_inputs_are_refused(&*log).await;
            }
        }
    };
}

pub use crate::{
    catalog_contract_tests, contract_tests, event_log_contract_tests, lease_contract_tests,
    record_store_contract_tests,
};
