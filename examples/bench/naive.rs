//! The baseline a user would write first: one `Mutex<HashMap>` and a `Notify` per waited id.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use resulthub::{BackendError, ResultBackend, TaskResult, TaskStatus};
use tokio::sync::Notify;

#[derive(Default)]
pub struct NaiveBackend {
    records: Mutex<HashMap<String, TaskResult>>,
    waiters: Mutex<HashMap<String, (Arc<Notify>, usize)>>,
}

impl NaiveBackend {
    pub fn waiters(&self) -> usize {
        self.waiters.lock().unwrap().values().map(|(_, n)| n).sum()
    }
}

#[resulthub::async_trait]
impl ResultBackend for NaiveBackend {
    async fn store(&self, task_id: &str, result: TaskResult) -> Result<(), BackendError> {
        let terminal = result.is_terminal();
        self.records
            .lock()
            .unwrap()
            .insert(task_id.to_owned(), result);
        if terminal {
            if let Some((notify, _)) = self.waiters.lock().unwrap().get(task_id) {
                notify.notify_waiters();
            }
        }
        Ok(())
    }

    async fn get(&self, task_id: &str) -> Result<Option<TaskResult>, BackendError> {
        Ok(self.records.lock().unwrap().get(task_id).cloned())
    }

    async fn wait_for(
        &self,
        task_id: &str,
        timeout: Option<Duration>,
    ) -> Result<TaskResult, BackendError> {
        let notify = {
            let mut waiters = self.waiters.lock().unwrap();
            let entry = waiters
                .entry(task_id.to_owned())
                .or_insert_with(|| (Arc::new(Notify::new()), 0));
            entry.1 += 1;
            Arc::clone(&entry.0)
        };
        let outcome = async {
            loop {
                let notified = notify.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if let Some(record) = self.records.lock().unwrap().get(task_id) {
                    if record.is_terminal() {
                        return record.clone();
                    }
                }
                notified.await;
            }
        };
        let outcome = match timeout {
            Some(timeout) => tokio::time::timeout(timeout, outcome).await.ok(),
            None => Some(outcome.await),
        };
        {
            let mut waiters = self.waiters.lock().unwrap();
            if let Some(entry) = waiters.get_mut(task_id) {
                entry.1 -= 1;
                if entry.1 == 0 {
                    waiters.remove(task_id);
                }
            }
        }
        outcome.ok_or_else(|| BackendError::Timeout {
            task_id: task_id.to_owned(),
            timeout: timeout.unwrap_or_default(),
        })
    }

    async fn clear(&self) -> Result<usize, BackendError> {
        let mut records = self.records.lock().unwrap();
        let removed = records.len();
        records.clear();
        Ok(removed)
    }

    async fn list_by_status(
        &self,
        status: TaskStatus,
        limit: Option<usize>,
        offset: usize,
    ) -> Result<Vec<TaskResult>, BackendError> {
        let records = self.records.lock().unwrap();
        let mut matching: Vec<&TaskResult> =
            records.values().filter(|r| r.status == status).collect();
        matching.sort_by(|a, b| match (a.submitted_at, b.submitted_at) {
            (Some(a), Some(b)) => b.cmp(&a),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        });
        let page = matching.into_iter().skip(offset).cloned();
        Ok(match limit {
            Some(limit) => page.take(limit).collect(),
            None => page.collect(),
        })
    }
}
