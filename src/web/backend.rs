//! [`WebBackend`]: what the routes need of a backend beyond [`ResultBackend`].

use crate::{
    BackendError, EventFilter, EventId, EventStream, HubHandle, HubStats, OperationMetrics,
    ResultBackend, TaskResult,
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
/// Implement it for a backend of your own to serve it with the same routes, JSON and page
/// (the second example). Its events come as an [`EventStream`] made with
/// [`EventStream::from_stream`] (or [`EventStream::pending`] for a backend without any).
///
/// # Evolution
///
/// A method added to this trait in a minor release comes with a default implementation, so an
/// implementation of your own keeps compiling; the required methods change only in a major
/// release.
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
///
/// A backend of your own, here a wrapper around [`InMemoryBackend`](crate::InMemoryBackend)
/// that has no events:
///
/// ```
/// use std::time::Duration;
///
/// use resulthub::web::{WebBackend, WebOptions, configure};
/// use resulthub::{
///     BackendError, EventFilter, EventId, EventStream, HubStats, InMemoryBackend,
///     ResultBackend, TaskResult, TaskStatus, async_trait,
/// };
///
/// #[derive(Debug, Default)]
/// struct Mine(InMemoryBackend);
///
/// #[async_trait]
/// impl ResultBackend for Mine {
///     async fn store(&self, task_id: &str, result: TaskResult) -> Result<(), BackendError> {
///         self.0.store(task_id, result).await
///     }
///
///     async fn get(&self, task_id: &str) -> Result<Option<TaskResult>, BackendError> {
///         self.0.get(task_id).await
///     }
///
///     async fn wait_for(
///         &self,
///         task_id: &str,
///         timeout: Option<Duration>,
///     ) -> Result<TaskResult, BackendError> {
///         self.0.wait_for(task_id, timeout).await
///     }
///
///     async fn delete(&self, task_id: &str) -> Result<bool, BackendError> {
///         self.0.delete(task_id).await
///     }
///
///     async fn list_by_status(
///         &self,
///         status: TaskStatus,
///         limit: Option<usize>,
///         offset: usize,
///     ) -> Result<Vec<TaskResult>, BackendError> {
///         self.0.list_by_status(status, limit, offset).await
///     }
/// }
///
/// #[async_trait]
/// impl WebBackend for Mine {
///     async fn stats(&self) -> Result<HubStats, BackendError> {
///         Ok(self.0.stats())
///     }
///
///     async fn subscribe_after(
///         &self,
///         _filter: EventFilter,
///         _after: Option<EventId>,
///     ) -> Result<EventStream, BackendError> {
///         // No events: `/events` clients stay connected and hear nothing.
///         Ok(EventStream::pending())
///     }
///
///     async fn store_merged(
///         &self,
///         task_id: &str,
///         result: TaskResult,
///     ) -> Result<TaskResult, BackendError> {
///         // Not one step with the read here: a backend that others write must merge and
///         // write at once.
///         self.0.store(task_id, result).await?;
///         self.0
///             .get(task_id)
///             .await?
///             .ok_or_else(|| BackendError::Internal {
///                 reason: "stored, then gone".to_owned(),
///             })
///     }
///
///     async fn task_id_limit(&self) -> Option<usize> {
///         None
///     }
/// }
///
/// # actix_rt::System::new().block_on(async {
/// use actix_web::{App, test};
///
/// let mine = Mine::default();
/// mine.store("t-1", TaskResult::new("t-1", TaskStatus::Success)).await?;
/// let app = test::init_service(App::new().configure(configure(mine, WebOptions::default())))
///     .await;
/// for uri in ["/tasks/t-1", "/stats", "/tasks?status=success"] {
///     let request = test::TestRequest::get().uri(uri).to_request();
///     assert!(test::call_service(&app, request).await.status().is_success(), "{uri}");
/// }
/// # Ok::<(), BackendError>(())
/// # }).unwrap();
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
    ///
    /// Named apart from the backends' own `max_task_id_len`, so that calling either needs no
    /// qualified path.
    async fn task_id_limit(&self) -> Option<usize>;

    /// Whether the backend answers now, for `/readyz`. The default asks for the stats.
    ///
    /// # Errors
    ///
    /// Why it does not.
    async fn ready(&self) -> Result<(), BackendError> {
        self.stats().await.map(|_| ())
    }

    /// The backend's operation counts and latencies, for `/metrics`
    /// (`resulthub_operations_total`, `resulthub_operation_duration_seconds`). The default
    /// has none, and `/metrics` then leaves both out.
    fn operations(&self) -> Option<OperationMetrics> {
        None
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

    async fn task_id_limit(&self) -> Option<usize> {
        HubHandle::max_task_id_len(self).await
    }

    fn operations(&self) -> Option<OperationMetrics> {
        Some(HubHandle::operations(self))
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

    async fn task_id_limit(&self) -> Option<usize> {
        Some(crate::RedisBackend::max_task_id_len(self))
    }

    /// A `PING`, not the stats: those walk the whole prefix.
    async fn ready(&self) -> Result<(), BackendError> {
        self.ping().await
    }

    fn operations(&self) -> Option<OperationMetrics> {
        Some(crate::RedisBackend::operations(self))
    }
}
