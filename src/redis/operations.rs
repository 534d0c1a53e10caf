//! What a `RedisBackend` counts of its operations, and their spans (see
//! [`crate::operations`]).

use std::sync::Arc;

use super::RedisBackend;
use crate::operations::{Call, OperationKind, Operations, op_span};
use crate::{BackendError, OperationMetrics, TaskResult, TaskStatus};

impl RedisBackend {
    /// What the [`ResultBackend`](crate::ResultBackend) calls made through this backend and its
    /// clones have counted: operations by kind and outcome, and their latencies (see
    /// [`operations`](crate::operations)). Only this process's calls: every process counts its
    /// own.
    pub fn operations(&self) -> OperationMetrics {
        self.inner.operations.snapshot()
    }

    /// Where this backend counts its operations.
    pub(super) fn counters(&self) -> Option<&Operations> {
        Some(&self.inner.operations)
    }

    /// The operation `kind` begins, in its span.
    pub(super) fn call(&self, kind: OperationKind, task_id: Option<&str>) -> Call {
        let span = match task_id {
            Some(task_id) => op_span!("resulthub::redis", "redis", kind, task_id),
            None => op_span!("resulthub::redis", "redis", kind),
        };
        Call::begin(kind, span)
    }

    /// A store begins, in its span.
    pub(super) fn store_call(&self, task_id: &str, status: &str) -> Call {
        let span = op_span!(
            "resulthub::redis",
            "redis",
            OperationKind::Store,
            task_id,
            status
        );
        Call::begin(OperationKind::Store, span)
    }
}

impl RedisBackend {
    /// `list_by_status` without its span and count, shared by the listings that have theirs.
    pub(super) async fn listing(
        &self,
        status: TaskStatus,
        limit: Option<usize>,
        offset: usize,
    ) -> Result<Vec<TaskResult>, BackendError> {
        let inner = Arc::clone(&self.inner);
        self.on_runtime(async move {
            inner.in_flight.settled(None).await;
            inner.list_by_status(status, limit, offset).await
        })
        .await
    }
}
