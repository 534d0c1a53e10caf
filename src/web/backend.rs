//! [`WebBackend`]: what the routes need of a backend beyond [`ResultBackend`].

use crate::{
    BackendError, EventFilter, EventId, EventStream, HubHandle, HubStats, ResultBackend, TaskResult,
};

/// What [`configure`](super::configure) needs of a backend beyond [`ResultBackend`]: counts
/// for `/stats` and `/metrics`, live events for `/events`, a store that answers the record as
/// stored for `POST`, the id length bound, and a readiness check for `/readyz`. Listings
/// come from [`ResultBackend::list_page`] (behind `cursor` and `next`) and
/// [`ResultBackend::list_by_status`] (behind `offset`).
///
/// Implemented by [`HubHandle`] and, with the `redis` feature, by `RedisBackend`, whose answers
/// differ as follows:
///
/// | | `HubHandle` | `RedisBackend` |
/// | --- | --- | --- |
/// | `stats` | exact, in the hub's order | counted by a walk over the prefix, cached for `stats_interval` (2 s) |
/// | events | every change the hub applies | this process's stores and deletes, and every process's completions (see `RedisBackend::subscribe`) |
/// | paging (`cursor`) | by position: stable under inserts | by offset behind the same opaque cursor: records added before the position shift later pages |
/// | `ready` | the hub answers | the server answers a `PING` |
///
/// Implement it for a backend of your own to serve it with the same routes, JSON and page.
///
/// # Examples
///
/// Any implementor is served the same way:
///
/// ```
/// use actix_web::web;
/// use resulthub::web::{WebBackend, WebOptions, configure};
///
/// /// Mounts the routes over any backend under `/results`.
/// fn mount<B: WebBackend>(config: &mut web::ServiceConfig, backend: B) {
///     config.service(web::scope("/results").configure(configure(backend, WebOptions::default())));
/// }
/// # let _ = mount::<resulthub::HubHandle>;
/// ```
#[async_trait::async_trait]
pub trait WebBackend: ResultBackend + std::fmt::Debug + 'static {
    /// What the backend holds, counted, for `/stats`, `/metrics` and a listing's `total`.
    ///
    /// # Errors
    ///
    /// The backend's, e.g. [`BackendError::Unavailable`].
    async fn stats(&self) -> Result<HubStats, BackendError>;

    /// A stream of changes, starting with those after `after` that the backend still holds
    /// (and [`HubEvent::Lagged`](crate::HubEvent) when it no longer holds them all), for
    /// `/events` and its `Last-Event-ID`. Dropping the stream must release the subscription.
    ///
    /// # Errors
    ///
    /// The backend's, e.g. [`BackendError::Unavailable`].
    async fn subscribe_after(
        &self,
        filter: EventFilter,
        after: Option<EventId>,
    ) -> Result<EventStream, BackendError>;

    /// Stores `result` and answers the record as stored (task fields merged from the previous
    /// one), with no other writer's change in between, for `POST /tasks/{id}`.
    ///
    /// # Errors
    ///
    /// As [`ResultBackend::store`].
    async fn store_merged(
        &self,
        task_id: &str,
        result: TaskResult,
    ) -> Result<TaskResult, BackendError>;

    /// The longest task id the backend accepts, in bytes, if it knows (the routes' own
    /// bound, [`MAX_ID_BYTES`](super::MAX_ID_BYTES), applies too).
    async fn max_task_id_len(&self) -> Option<usize>;

    /// Whether the backend answers now, for `/readyz`. The default asks for the stats.
    ///
    /// # Errors
    ///
    /// Why it does not.
    async fn ready(&self) -> Result<(), BackendError> {
        self.stats().await.map(|_| ())
    }
}

#[async_trait::async_trait]
impl WebBackend for HubHandle {
    async fn stats(&self) -> Result<HubStats, BackendError> {
        HubHandle::stats(self).await
    }

    async fn subscribe_after(
        &self,
        filter: EventFilter,
        after: Option<EventId>,
    ) -> Result<EventStream, BackendError> {
        HubHandle::subscribe_after(self, filter, after).await
    }

    async fn store_merged(
        &self,
        task_id: &str,
        result: TaskResult,
    ) -> Result<TaskResult, BackendError> {
        HubHandle::store_merged(self, task_id, result).await
    }

    async fn max_task_id_len(&self) -> Option<usize> {
        HubHandle::max_task_id_len(self).await
    }
}

#[cfg(feature = "redis")]
#[async_trait::async_trait]
impl WebBackend for crate::RedisBackend {
    async fn stats(&self) -> Result<HubStats, BackendError> {
        crate::RedisBackend::stats(self).await
    }

    async fn subscribe_after(
        &self,
        filter: EventFilter,
        after: Option<EventId>,
    ) -> Result<EventStream, BackendError> {
        crate::RedisBackend::subscribe_after(self, filter, after).await
    }

    async fn store_merged(
        &self,
        task_id: &str,
        result: TaskResult,
    ) -> Result<TaskResult, BackendError> {
        crate::RedisBackend::store_merged(self, task_id, result).await
    }

    async fn max_task_id_len(&self) -> Option<usize> {
        Some(crate::RedisBackend::max_task_id_len(self))
    }

    /// A `PING`, not the stats: those walk the whole prefix.
    async fn ready(&self) -> Result<(), BackendError> {
        self.ping().await
    }
}
