//! Stores that are still running, so a later call of this process sees them.
//!
//! Stores of one id also wait for each other, in call order: a dropped store must not land
//! after a later store of its id.
//!
//! A store runs in its caller's future, without a task of its own, but runs to its end even
//! when its caller stops waiting for it: a dropped store is finished on the runtime
//! ([`FinishOnDrop`]), keeping its ticket. So a caller that dropped a store and then reads,
//! deletes or lists must not overtake it: a `get` would miss it, a `delete` would be undone by
//! it. Each call waits for the stores of this process that started before it (on its id, or on
//! any id for `clear` and listings); later stores never hold it up, so a busy id cannot starve
//! a reader. A ticket ends with its store, however it ends (done, failed, panicked, or its
//! runtime shut down), so nothing waits on a store that can no longer run.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use tokio::runtime::Handle;
use tokio::sync::Notify;

#[derive(Debug, Default)]
struct Running {
    next: u64,
    all: BTreeSet<u64>,
    by_id: HashMap<String, OfId>,
}

/// The running stores of one id, and who waits for them.
#[derive(Debug, Default)]
struct OfId {
    numbers: BTreeSet<u64>,
    /// Told when one of them finishes. One per id, so that a finished store wakes only the
    /// calls waiting on its id: with one for all, N stores each awaited by a call on its own
    /// id woke every call N times.
    finished: Arc<Notify>,
}

/// The running stores of one backend.
#[derive(Debug, Default)]
pub(crate) struct InFlight {
    running: Mutex<Running>,
    /// Told when any store finishes, for the calls that wait on every id.
    finished: Notify,
}

impl InFlight {
    /// Marks a store of `task_id` as running until the ticket drops.
    pub(crate) fn begin(self: &Arc<Self>, task_id: &str) -> Ticket {
        let mut running = self.lock();
        let number = running.next;
        running.next += 1;
        running.all.insert(number);
        running
            .by_id
            .entry(task_id.to_owned())
            .or_default()
            .numbers
            .insert(number);
        Ticket {
            in_flight: Arc::clone(self),
            task_id: task_id.to_owned(),
            number,
        }
    }

    /// Resolves once every store that began before this call, on `task_id` (`None`: on any
    /// id), has finished.
    pub(crate) async fn settled(&self, task_id: Option<&str>) {
        let before = self.lock().next;
        self.settled_before(task_id, before).await;
    }

    /// Resolves once every store numbered under `before`, on `task_id` (`None`: on any id), has
    /// finished. A store waits so for the earlier stores of its id: stores of one id apply in
    /// the order they were called, as in the hub.
    pub(crate) async fn settled_before(&self, task_id: Option<&str>, before: u64) {
        loop {
            // Who to be told by: the id's stores, or every store.
            let of_id = match task_id {
                Some(id) => match self.lock().by_id.get(id) {
                    Some(of_id) => Some(Arc::clone(&of_id.finished)),
                    None => return,
                },
                None => None,
            };
            let finished = of_id.as_deref().unwrap_or(&self.finished);
            let mut notified = pin!(finished.notified());
            // Registered before the check: a store finishing after it is seen.
            notified.as_mut().enable();
            if !self.earlier_running(task_id, before) {
                return;
            }
            notified.await;
        }
    }

    /// Whether a store numbered under `before` runs on `task_id` (`None`: on any id).
    fn earlier_running(&self, task_id: Option<&str>, before: u64) -> bool {
        let running = self.lock();
        let oldest = match task_id {
            Some(id) => running
                .by_id
                .get(id)
                .and_then(|of_id| of_id.numbers.first()),
            None => running.all.first(),
        };
        oldest.is_some_and(|&number| number < before)
    }

    fn lock(&self) -> MutexGuard<'_, Running> {
        // Nothing panics while holding the lock; should it, the sets are still consistent.
        self.running.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A running store; finished when dropped, also when its store fails, panics or is cancelled.
#[derive(Debug)]
pub(crate) struct Ticket {
    in_flight: Arc<InFlight>,
    task_id: String,
    number: u64,
}

impl Ticket {
    /// The store's place in call order.
    pub(crate) fn number(&self) -> u64 {
        self.number
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let of_id = {
            let mut running = self.in_flight.lock();
            running.all.remove(&self.number);
            match running.by_id.get_mut(&self.task_id) {
                Some(of_id) => {
                    of_id.numbers.remove(&self.number);
                    let finished = Arc::clone(&of_id.finished);
                    if of_id.numbers.is_empty() {
                        running.by_id.remove(&self.task_id);
                    }
                    Some(finished)
                }
                None => None,
            }
        };
        if let Some(finished) = of_id {
            finished.notify_waiters();
        }
        self.in_flight.finished.notify_waiters();
    }
}

/// A future that, dropped before it finished, is finished on `runtime` instead (its outcome
/// unread): a store goes on when its caller stops waiting, as the hub's do. Only a dropped
/// store costs a task; one awaited to its end costs none.
pub(crate) struct FinishOnDrop<T: Send + 'static> {
    work: Option<Pin<Box<dyn Future<Output = T> + Send>>>,
    runtime: Handle,
}

impl<T: Send + 'static> FinishOnDrop<T> {
    pub(crate) fn new(work: impl Future<Output = T> + Send + 'static, runtime: Handle) -> Self {
        FinishOnDrop {
            work: Some(Box::pin(work)),
            runtime,
        }
    }
}

impl<T: Send + 'static> Future for FinishOnDrop<T> {
    type Output = T;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        // Polled again after its end (a caller's bug): nothing more will come.
        let Some(mut work) = self.work.take() else {
            return Poll::Pending;
        };
        // Out of `self` while it is polled: a poll that panics leaves nothing to finish.
        let outcome = work.as_mut().poll(cx);
        if outcome.is_pending() {
            self.work = Some(work);
        }
        outcome
    }
}

impl<T: Send + 'static> Drop for FinishOnDrop<T> {
    fn drop(&mut self) {
        if let Some(work) = self.work.take() {
            // A runtime that has shut down drops the work at once, ending its ticket.
            self.runtime.spawn(async move {
                let _ = work.await;
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn waits_for_earlier_stores_of_the_id_only() {
        let in_flight = Arc::new(InFlight::default());
        let a = in_flight.begin("a");
        let b = in_flight.begin("b");
        // Nothing runs on "c".
        in_flight.settled(Some("c")).await;

        let waiting_a = {
            let in_flight = Arc::clone(&in_flight);
            tokio::spawn(async move { in_flight.settled(Some("a")).await })
        };
        let waiting_all = {
            let in_flight = Arc::clone(&in_flight);
            tokio::spawn(async move { in_flight.settled(None).await })
        };
        tokio::task::yield_now().await;
        // A store that begins later holds nobody up.
        let later = in_flight.begin("a");
        drop(a);
        tokio::time::timeout(Duration::from_secs(10), waiting_a)
            .await
            .expect("settled on a")
            .expect("task");
        assert!(!waiting_all.is_finished());
        drop(b);
        tokio::time::timeout(Duration::from_secs(10), waiting_all)
            .await
            .expect("settled on all")
            .expect("task");
        drop(later);
        assert!(in_flight.lock().all.is_empty());
        assert!(in_flight.lock().by_id.is_empty());
    }
}
