//! Waiting on many tasks at once: what [`ResultBackend::wait_for_all`] and
//! [`ResultBackend::wait_for_any`] do on every backend, over its own `wait_for`.
//!
//! Each id gets an ordinary `wait_for` without a timeout, and one timer bounds them all, so a
//! backend's guarantees for one wait (registered before it reads, unregistered when dropped)
//! hold for each: a batch that times out or is dropped drops every wait, and leaves no waiter.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;

use crate::{BackendError, ResultBackend, TaskResult};

/// How many of the ids still open a [`BackendError::Timeout`] of a batch names.
const NAMED_OPEN_IDS: usize = 10;

type Wait<'a> = Pin<Box<dyn Future<Output = Result<TaskResult, BackendError>> + Send + 'a>>;

/// Refuses an empty batch: there is nothing to wait for, and no answer to give.
pub(crate) fn non_empty(task_ids: &[&str], operation: &str) -> Result<(), BackendError> {
    if task_ids.is_empty() {
        return Err(BackendError::invalid(format!(
            "{operation} needs at least one task id"
        )));
    }
    Ok(())
}

pub(crate) async fn wait_for_all<B: ResultBackend + ?Sized>(
    backend: &B,
    task_ids: &[&str],
    timeout: Option<Duration>,
) -> Result<Vec<TaskResult>, BackendError> {
    non_empty(task_ids, "wait_for_all")?;
    let called = Instant::now();
    let (each, all) = split(timeout);
    // One read of the batch first: the ids finished already need no wait at all.
    let mut done = finished_already(backend, task_ids).await?;
    let finished = {
        let mut waits: FuturesUnordered<_> = task_ids
            .iter()
            .enumerate()
            .filter(|(index, _)| done[*index].is_none())
            .map(|(index, id)| async move { (index, backend.wait_for(id, each).await) })
            .collect();
        let done = &mut done;
        let every = async move {
            while let Some((index, outcome)) = waits.next().await {
                match outcome {
                    Ok(record) => done[index] = Some(record),
                    // A poll (zero timeout) of an id that is not terminal: still open.
                    Err(BackendError::Timeout { .. }) if each.is_some() => {}
                    Err(error) => return Err(error),
                }
            }
            Ok(())
        };
        crate::wait::within(every, left(all, called)).await?
    };
    if let Some(Err(error)) = finished {
        return Err(error);
    }
    let open: Vec<&str> = task_ids
        .iter()
        .zip(&done)
        .filter(|(_, record)| record.is_none())
        .map(|(id, _)| *id)
        .collect();
    if open.is_empty() {
        Ok(done.into_iter().flatten().collect())
    } else {
        Err(batch_timeout(&open, timeout.unwrap_or_default()))
    }
}

pub(crate) async fn wait_for_any<B: ResultBackend + ?Sized>(
    backend: &B,
    task_ids: &[&str],
    timeout: Option<Duration>,
) -> Result<TaskResult, BackendError> {
    non_empty(task_ids, "wait_for_any")?;
    let called = Instant::now();
    let (each, all) = split(timeout);
    let done = finished_already(backend, task_ids).await?;
    if let Some(record) = done.into_iter().flatten().next() {
        return Ok(record);
    }
    let mut waits: Vec<Option<Wait<'_>>> = task_ids
        .iter()
        .map(|id| Some(backend.wait_for(id, each)))
        .collect();
    // Polled in the order given, so that of several ids terminal already the first wins.
    let first = futures_util::future::poll_fn(|cx| {
        let mut open = false;
        for slot in &mut waits {
            let Some(wait) = slot else { continue };
            match wait.as_mut().poll(cx) {
                // A poll (zero timeout) of an id that is not terminal: not this one.
                Poll::Ready(Err(BackendError::Timeout { .. })) if each.is_some() => *slot = None,
                Poll::Ready(outcome) => return Poll::Ready(Some(outcome)),
                Poll::Pending => open = true,
            }
        }
        if open {
            Poll::Pending
        } else {
            Poll::Ready(None)
        }
    });
    match crate::wait::within(first, left(all, called)).await? {
        Some(Some(outcome)) => outcome,
        _ => Err(batch_timeout(task_ids, timeout.unwrap_or_default())),
    }
}

/// The records of `task_ids` that are terminal now, by position.
async fn finished_already<B: ResultBackend + ?Sized>(
    backend: &B,
    task_ids: &[&str],
) -> Result<Vec<Option<TaskResult>>, BackendError> {
    let mut records = backend.get_many(task_ids).await?;
    for record in &mut records {
        if record.as_ref().is_some_and(|record| !record.is_terminal()) {
            *record = None;
        }
    }
    Ok(records)
}

/// What is left of the batch's timeout, which counts from the call.
fn left(timeout: Option<Duration>, called: Instant) -> Option<Duration> {
    timeout.map(|timeout| timeout.saturating_sub(called.elapsed()))
}

/// The timeout for each id's wait and for the whole batch. A zero timeout asks whether each
/// record is terminal now: each wait is then a poll, which a backend answers without a timer
/// (and, on the hub, with what the hub holds), and the batch needs no timer either.
fn split(timeout: Option<Duration>) -> (Option<Duration>, Option<Duration>) {
    match timeout {
        Some(Duration::ZERO) => (Some(Duration::ZERO), None),
        other => (None, other),
    }
}

/// A `Timeout` whose `task_id` names the ids still open (the first few, and how many more).
fn batch_timeout(open: &[&str], timeout: Duration) -> BackendError {
    let mut named = open
        .iter()
        .take(NAMED_OPEN_IDS)
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    if open.len() > NAMED_OPEN_IDS {
        named.push_str(&format!(" and {} more", open.len() - NAMED_OPEN_IDS));
    }
    BackendError::Timeout {
        task_id: named,
        timeout,
    }
}
