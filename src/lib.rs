//! resulthub stores and serves the results of background tasks.
//!
//! Workers [`store`](ResultBackend::store) a task's record as it moves PENDING → RUNNING →
//! SUCCESS or FAILED (RETRYING in between); callers [`get`](ResultBackend::get) it,
//! [`wait_for`](ResultBackend::wait_for) it to finish, [`delete`](ResultBackend::delete) it,
//! [`clear`](ResultBackend::clear) everything, and
//! [`list_by_status`](ResultBackend::list_by_status), newest first.
//!
//! - [`ResultBackend`] is the one object-safe async trait: hold any backend as
//!   `Arc<dyn ResultBackend>`.
//! - [`ResultHub`] is an actix actor that owns all state; [`HubHandle`] is the cheap, cloneable
//!   handle that implements the trait by messaging it, from actix code or any tokio program.
//! - [`InMemoryBackend`] keeps the same contract on a lock-sharded map, without an actor.
//!
//! Records are [`TaskResult`]s in the JSON layout of the Python task queue flowrra, so both can
//! read what the other wrote.
//!
//! # Examples
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use resulthub::{HubConfig, HubHandle, ResultBackend, TaskResult, TaskStatus};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), resulthub::BackendError> {
//! let backend: Arc<dyn ResultBackend> = Arc::new(HubHandle::spawn(HubConfig::default()));
//! backend.store("t1", TaskResult::new("t1", TaskStatus::Success).with_result("done")).await?;
//! let record = backend.wait_for("t1", Some(Duration::from_secs(1))).await?;
//! assert_eq!(record.result, "done");
//! let page = backend.list_by_status(TaskStatus::Success, Some(10), 0).await?;
//! assert_eq!(page.len(), 1);
//! # Ok(())
//! # }
//! ```
#![warn(
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    unreachable_pub
)]
#![deny(unused_must_use)]
#![forbid(unsafe_code)]
// On docs.rs: every feature-gated item says which feature it needs.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod backend;
mod clock;
mod compact;
mod config;
mod error;
pub mod events;
mod handle;
mod hub;
pub mod jsonl;
mod many;
mod memory;
pub mod operations;
mod order;
mod page;
mod record;
#[cfg(feature = "redis")]
mod redis;
mod stats;
mod status;
#[cfg(feature = "fault-injection")]
#[doc(hidden)]
pub mod testing;
mod timestamp;
mod validate;
mod wait;
#[cfg(feature = "web")]
#[cfg_attr(docsrs, doc(cfg(feature = "web")))]
pub mod web;

#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use crate::redis::{RedisBackend, RedisBackendBuilder};
pub use async_trait::async_trait;
pub use backend::ResultBackend;
pub use clock::{Clock, ManualClock};
pub use config::{HubConfig, TerminalPolicy};
pub use error::{BackendError, BoxError, Exceeded, Limit};
pub use events::{
    EventFilter, EventId, EventKind, EventStream, HubEvent, ParseEventIdError, TaskEvent,
};
pub use handle::HubHandle;
pub use hub::ResultHub;
// The hub's actix-facing vocabulary lives with the hub; users reach it here.
#[doc(inline)]
pub use hub::messages;
pub use hub::shared::{MAX_UNAPPLIED, MAX_UNAPPLIED_WHILE_WAITING};
pub use memory::InMemoryBackend;
pub use operations::OperationMetrics;
pub use page::{Cursor, Page};
pub use record::TaskResult;
pub use stats::{HubStats, StatusCounts};
pub use status::{ParseStatusError, TaskStatus};
pub use timestamp::NaiveTimes;

/// The README's examples, compiled and run as doc tests. One of them uses `RedisBackend`, so
/// they run with the `redis` feature (as `cargo test --all-features` does).
#[cfg(all(doctest, feature = "redis"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
