//! The conformance suite every `ResultBackend` of this crate must pass.
//!
//! Each `tests/*.rs` file is its own crate: include this with `mod conformance;` (it brings the
//! harness of `tests/support/` with it, re-exported here) and generate one test per case with
//! `conformance_cases!(backend_tests { ... })` or `conformance_cases!(your_macro)`, or call
//! `run_all`.
//!
//! Cases are backend-agnostic: they only use the trait plus a live-waiter counter, and they
//! never sleep to let things settle; where a waiter must be registered before a store, they
//! poll the waiter count, which is a deterministic signal. They are grouped by behaviour:
//! `storing.rs` (one record: store, get, delete, clear, sticky fields, refused input),
//! `listing.rs`, `waiting.rs` and `batches.rs`.

// Each test crate uses a different subset of the helpers.
#![allow(dead_code)]

#[path = "../support/mod.rs"]
mod support;

mod batches;
mod listing;
mod storing;
mod waiting;

pub use batches::*;
pub use listing::*;
pub use storing::*;
pub use support::*;
pub use waiting::*;

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::future::join_all;
use resulthub::{BackendError, Cursor, Limit, TaskResult, TaskStatus};
use serde_json::{Map, Value, json};

/// The default `max_task_id_len`; every subject here runs with the default config.
pub const MAX_ID_LEN: usize = 1024;

pub fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, 0).expect("a valid timestamp")
}

pub fn kwargs(pairs: &[(&str, Value)]) -> Map<String, Value> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

/// A record with every field set.
fn full_record(id: &str, status: TaskStatus) -> TaskResult {
    TaskResult::new(id, status)
        .with_task_name("tasks.add")
        .with_result(json!({"sum": 5}))
        .with_submitted_at(at(1_700_000_000))
        .with_started_at(at(1_700_000_001))
        .with_finished_at(at(1_700_000_002))
        .with_retries(1)
        .with_args(vec![json!(2), json!(3)])
        .with_kwargs(kwargs(&[("scale", json!(1)), ("mode", json!("fast"))]))
}

// ---------------------------------------------------------------------------------------------
// The case list: one place, used by `run_all` and by every test file.
// ---------------------------------------------------------------------------------------------

/// The conformance cases, in `run_all`'s order: `conformance_cases!(callback)` calls
/// `callback! { case, case, ... }`, for a file's own generator macro; and
/// `conformance_cases!(backend_tests { module: #[test attribute] runner, ... })` makes one test
/// per case and runner (see `backend_tests!` in `tests/support/mod.rs`).
#[macro_export]
macro_rules! conformance_cases {
    ($callback:ident) => {
        $crate::conformance_cases!(@cases [plain $callback]);
    };
    ($callback:ident { $($args:tt)* }) => {
        $crate::conformance_cases!(@cases [args $callback { $($args)* }]);
    };
    (@cases $to:tt) => {
        $crate::conformance_cases!(@give $to [
            store_then_get_returns_the_record,
            get_missing_id_returns_none,
            store_replaces_the_record,
            wait_for_returns_at_once_when_already_terminal,
            wait_for_wakes_on_terminal_store,
            wait_for_times_out_without_terminal_store,
            wait_for_waits_when_record_went_back_to_non_terminal,
            delete_returns_true_for_existing_record,
            delete_returns_false_for_missing_record,
            clear_returns_number_removed,
            multiple_waiters_all_receive_the_record,
            list_orders_newest_submitted_first_and_missing_last,
            list_breaks_ties_by_first_store_order,
            list_restore_keeps_place,
            list_delete_or_clear_then_store_counts_as_new,
            list_orders_by_sticky_submitted_at,
            list_filters_by_status,
            list_offset_and_limit_edges,
            list_returns_records_equal_to_get,
            sticky_submitted_at_is_kept,
            sticky_task_name_is_kept,
            sticky_args_are_kept,
            sticky_kwargs_are_kept,
            explicit_new_task_fields_win,
            attempt_fields_are_replaced,
            deleted_or_cleared_record_leaves_no_sticky_fields,
            store_rejects_empty_id_without_change,
            store_rejects_mismatched_id_without_change,
            records_nested_too_deep_are_refused_without_change,
            wait_for_rejects_empty_id,
            long_id_is_rejected_by_every_id_operation,
            id_at_length_limit_is_accepted,
            non_terminal_stores_do_not_wake_waiters,
            wait_for_waits_for_never_stored_id,
            wait_for_accepts_duration_max,
            wait_for_zero_timeout,
            thousand_waiters_on_one_id_all_receive_the_record,
            ten_thousand_waiters_racing_their_stores_all_wake,
            timed_out_waiters_leave_nothing_behind,
            dropped_wait_futures_leave_nothing_behind,
            delete_and_clear_do_not_wake_waiters,
            waiters_receive_the_merged_record_equal_to_get,
            dropped_store_future_is_not_lost,
            each_caller_reads_its_own_writes,
            get_many_returns_one_entry_per_id_in_order,
            store_many_stores_in_order_and_a_bad_record_fails_alone,
            wait_for_all_returns_every_record_in_order,
            wait_for_all_times_out_naming_the_open_ids_and_leaves_nothing,
            dropped_wait_for_all_leaves_nothing_behind,
            wait_for_any_returns_the_first_terminal_record,
            batch_waits_with_a_zero_timeout_poll,
            list_page_walks_every_record_once_in_order,
            list_page_by_position_is_stable_while_records_change,
        ]);
    };
    (@give [plain $callback:ident] [$($case:ident),* $(,)?]) => {
        $callback! { $($case),* }
    };
    (@give [args $callback:ident { $($args:tt)* }] [$($case:ident),* $(,)?]) => {
        $callback! { [conformance::{$($case),*}] $($args)* }
    };
}

macro_rules! define_run_all {
    ($($case:ident),* $(,)?) => {
        /// Runs every case in order on one backend; each case starts with `clear()`.
        pub async fn run_all(s: &Subject) {
            $(
                eprintln!("conformance case: {}", stringify!($case));
                $case(s).await;
            )*
        }
    };
}

conformance_cases!(define_run_all);
