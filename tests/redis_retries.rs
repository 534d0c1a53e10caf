//! `RedisBackend` under retries and failures: a store or a delete whose reply is lost is sent
//! again and counts once; a server that is loading its dataset or has turned replica is waited
//! out within the response timeout.
//!
//! Lost replies are made deterministic by a TCP proxy between the backend and `redis-server`
//! that forwards every request but, for the next script call (or `DEL`), drops the connection
//! instead of forwarding the reply: the command ran, its caller cannot know.

#![cfg(feature = "redis")]

#[path = "support/redis_server.rs"]
mod redis_server;
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use redis_server::RedisServer;
use resulthub::{
    BackendError, RedisBackend, ResultBackend, TaskResult, TaskStatus, TerminalPolicy,
};
use serde_json::json;
use support::{LONG_TIMEOUT, eventually, within_long};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A backend on `url` whose calls have far more time than this machine needs.
async fn backend(url: &str, policy: TerminalPolicy) -> RedisBackend {
    within_long(
        "connect",
        RedisBackend::builder(url)
            .terminal_policy(policy)
            .response_timeout(Duration::from_secs(20))
            .build(),
    )
    .await
    .expect("connect")
}

fn success(id: &str) -> TaskResult {
    TaskResult::new(id, TaskStatus::Success)
        .with_task_name("add")
        .with_result(json!({"n": 1}))
}

/// How many commands the server refused with `code`, from `INFO errorstats`.
fn refusals(server: &RedisServer, code: &str) -> u64 {
    let prefix = format!("errorstat_{code}:count=");
    server
        .command_text(&["INFO", "errorstats"])
        .lines()
        .find_map(|line| line.strip_prefix(prefix.as_str()).map(str::to_owned))
        .map_or(0, |count| count.trim().parse().expect("a count"))
}

// ---------------------------------------------------------------------------------------------
// A proxy that loses replies
// ---------------------------------------------------------------------------------------------

/// Forwards connections to a server; drops the connection in place of the reply to the next
/// `to_drop` commands named in [`WATCHED`] that the server answered without an error.
struct LossyProxy {
    port: u16,
    to_drop: Arc<AtomicUsize>,
    dropped: Arc<AtomicUsize>,
    _accepting: tokio::task::JoinHandle<()>,
}

/// The commands whose reply the proxy may drop, as they appear in a request.
const WATCHED: [&[u8]; 2] = [b"\r\nEVALSHA\r\n", b"\r\nDEL\r\n"];

impl LossyProxy {
    async fn start(server_port: u16) -> LossyProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        let to_drop = Arc::new(AtomicUsize::new(0));
        let dropped = Arc::new(AtomicUsize::new(0));
        let accepting = {
            let (to_drop, dropped) = (Arc::clone(&to_drop), Arc::clone(&dropped));
            tokio::spawn(async move {
                while let Ok((client, _)) = listener.accept().await {
                    let (to_drop, dropped) = (Arc::clone(&to_drop), Arc::clone(&dropped));
                    tokio::spawn(relay(client, server_port, to_drop, dropped));
                }
            })
        };
        LossyProxy {
            port,
            to_drop,
            dropped,
            _accepting: accepting,
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Loses the replies to the next `count` watched commands.
    fn lose_next(&self, count: usize) {
        self.to_drop.store(count, Ordering::SeqCst);
    }

    fn dropped(&self) -> usize {
        self.dropped.load(Ordering::SeqCst)
    }
}

impl Drop for LossyProxy {
    fn drop(&mut self) {
        self._accepting.abort();
    }
}

/// One client connection through the proxy. Commands are answered in order and the backend
/// sends one at a time here, so the first bytes from the server after a watched request are
/// its reply.
async fn relay(
    client: TcpStream,
    server_port: u16,
    to_drop: Arc<AtomicUsize>,
    dropped: Arc<AtomicUsize>,
) {
    let Ok(server) = TcpStream::connect(("127.0.0.1", server_port)).await else {
        return;
    };
    let (mut from_client, mut to_client) = client.into_split();
    let (mut from_server, mut to_server) = server.into_split();
    let watched_reply_next = AtomicBool::new(false);
    let requests = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match from_client.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let chunk = &buf[..n];
            if to_drop.load(Ordering::SeqCst) > 0
                && WATCHED
                    .iter()
                    .any(|name| chunk.windows(name.len()).any(|window| window == *name))
            {
                watched_reply_next.store(true, Ordering::SeqCst);
            }
            if to_server.write_all(chunk).await.is_err() {
                return;
            }
        }
    };
    let replies = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match from_server.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            // An error reply (`-NOSCRIPT`) means the command did not run: it goes through.
            if watched_reply_next.swap(false, Ordering::SeqCst)
                && buf[0] != b'-'
                && to_drop
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                        left.checked_sub(1)
                    })
                    .is_ok()
            {
                dropped.fetch_add(1, Ordering::SeqCst);
                return;
            }
            if to_client.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    // Whichever side ends first ends both: dropping the halves closes both connections.
    tokio::select! {
        () = requests => {}
        () = replies => {}
    }
}

// ---------------------------------------------------------------------------------------------
// Lost replies
// ---------------------------------------------------------------------------------------------

/// Stores a terminal record through a proxy that loses `lost` replies in a row, and checks
/// the store answers `Ok`, published one `done`, and left the record sent.
async fn a_store_with_lost_replies(policy: TerminalPolicy, lost: usize) {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let proxy = LossyProxy::start(server.port()).await;
    let backend = backend(&proxy.url(), policy).await;
    let mut completions = redis_server::Completions::subscribe(&server, "flowrra:complete:*");
    let id = format!("lost-store-{lost}");
    within_long(
        "a first, running store",
        backend.store(&id, TaskResult::new(&id, TaskStatus::Running)),
    )
    .await
    .expect("store running");

    proxy.lose_next(lost);
    let stored = within_long(
        "the store whose reply is lost",
        backend.store(&id, success(&id)),
    )
    .await;
    assert_eq!(proxy.dropped(), lost, "the proxy lost {lost} replies");
    assert!(stored.is_ok(), "{policy:?}: {stored:?}");
    assert_eq!(
        completions.published(),
        [format!(
            "pmessage flowrra:complete:* flowrra:complete:{id} done"
        )],
        "{policy:?}: one `done` for one store"
    );
    let raw = server.command(&[b"GET", format!("flowrra:task:{id}").as_bytes()]);
    assert_eq!(
        raw,
        serde_json::to_vec(&success(&id)).expect("json"),
        "{policy:?}: the record stored is the one sent"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_whose_reply_is_lost_counts_once_under_overwrite() {
    a_store_with_lost_replies(TerminalPolicy::Overwrite, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_whose_reply_is_lost_is_no_conflict_under_keep_first() {
    a_store_with_lost_replies(TerminalPolicy::KeepFirst, 1).await;
}

// The repeat's reply is lost too: the store reads the key back and finds its record there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_whose_replies_are_lost_twice_reads_its_own_record_back() {
    a_store_with_lost_replies(TerminalPolicy::KeepFirst, 2).await;
}

// Storing the bytes already stored is the repeat's case seen from outside: no second `done`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storing_the_record_already_stored_announces_nothing_again() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let backend = backend(&server.url(), TerminalPolicy::Overwrite).await;
    let mut completions = redis_server::Completions::subscribe(&server, "flowrra:complete:*");
    for _ in 0..2 {
        within_long("store", backend.store("same", success("same")))
            .await
            .expect("store");
    }
    assert_eq!(completions.published().len(), 1);
    within_long(
        "a changed record",
        backend.store("same", success("same").with_result(2)),
    )
    .await
    .expect("store");
    assert_eq!(completions.published().len(), 1, "a change is announced");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_whose_reply_is_lost_answers_true() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let proxy = LossyProxy::start(server.port()).await;
    let backend = backend(&proxy.url(), TerminalPolicy::Overwrite).await;
    // Braces in the id: the marker key must still land in the record's slot.
    let id = "lost-{del}ete";
    within_long("store", backend.store(id, success(id)))
        .await
        .expect("store");

    proxy.lose_next(1);
    let deleted = within_long("the delete whose reply is lost", backend.delete(id)).await;
    assert_eq!(proxy.dropped(), 1, "the proxy lost the delete's reply");
    assert!(deleted.expect("delete"), "this call removed it");
    assert_eq!(
        within_long("get", backend.get(id)).await.expect("get"),
        None,
        "the record is gone"
    );
    assert!(
        !within_long("delete again", backend.delete(id))
            .await
            .expect("delete"),
        "another call did not remove it"
    );
}

// On Redis Cluster a script may touch the keys of one hash slot only: a one-node cluster that
// serves every slot refuses (CROSSSLOT) a delete whose marker hashes elsewhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_markers_share_the_record_slot_on_a_cluster_node() {
    let Some(server) = RedisServer::start_with(&["--cluster-enabled", "yes"]) else {
        return;
    };
    server.command_text(&["CLUSTER", "ADDSLOTSRANGE", "0", "16383"]);
    eventually("the cluster serves its slots", || {
        server
            .command_text(&["CLUSTER", "INFO"])
            .contains("cluster_state:ok")
    })
    .await;
    let backend = backend(&server.url(), TerminalPolicy::Overwrite).await;
    for id in ["plain", "a}b", "{}x", "x{y", "{tag}rest", "}{", "a{b}c{d}"] {
        let record = serde_json::to_string(&success(id)).expect("json");
        server.command_text(&["SET", &format!("flowrra:task:{id}"), &record]);
        let deleted = within_long("delete", backend.delete(id)).await;
        assert!(matches!(deleted, Ok(true)), "{id:?}: {deleted:?}");
        assert_eq!(
            server.command_text(&["EXISTS", &format!("flowrra:task:{id}")]),
            "0"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// A server that turns replica, or loads its dataset
// ---------------------------------------------------------------------------------------------

/// A port nothing listens on: a replica of it never syncs (and so keeps its data).
fn closed_port() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address").port().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_rides_out_a_server_turned_replica_and_back() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let backend = backend(&server.url(), TerminalPolicy::Overwrite).await;
    within_long(
        "store",
        backend.store("ro", TaskResult::new("ro", TaskStatus::Running)),
    )
    .await
    .expect("store");

    server.command_text(&["REPLICAOF", "127.0.0.1", &closed_port()]);
    let store = {
        let backend = backend.clone();
        tokio::spawn(async move { backend.store("ro", success("ro")).await })
    };
    // Refused, and sent again: the store is waiting for a master.
    eventually("two READONLY refusals", || {
        refusals(&server, "READONLY") >= 2
    })
    .await;
    assert!(!store.is_finished());
    server.command_text(&["REPLICAOF", "NO", "ONE"]);

    let stored = within_long("the store", store).await.expect("task");
    assert!(stored.is_ok(), "{stored:?}");
    assert_eq!(
        within_long("get", backend.get("ro")).await.expect("get"),
        Some(success("ro"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_past_the_response_timeout_is_unavailable_and_nothing_changes() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let backend = within_long(
        "connect",
        RedisBackend::builder(&server.url())
            .response_timeout(Duration::from_millis(500))
            .build(),
    )
    .await
    .expect("connect");
    let running = TaskResult::new("ro", TaskStatus::Running);
    within_long("store", backend.store("ro", running.clone()))
        .await
        .expect("store");
    server.command_text(&["REPLICAOF", "127.0.0.1", &closed_port()]);

    let stored = within_long("a store on a replica", backend.store("ro", success("ro"))).await;
    assert!(
        matches!(stored, Err(BackendError::Unavailable { .. })),
        "{stored:?}"
    );
    assert!(
        refusals(&server, "READONLY") >= 2,
        "sent again before giving up"
    );
    assert_eq!(
        within_long("get", backend.get("ro")).await.expect("get"),
        Some(running)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_rides_out_a_server_loading_its_dataset() {
    let Some(server) = RedisServer::start_with(&["--enable-debug-command", "yes"]) else {
        return;
    };
    let backend = backend(&server.url(), TerminalPolicy::Overwrite).await;
    within_long(
        "store",
        backend.store("ld", TaskResult::new("ld", TaskStatus::Running)),
    )
    .await
    .expect("store");
    // A dataset that loads slowly, answering other clients (with LOADING) after every key,
    // until the test lets it finish.
    server.command_text(&["DEBUG", "POPULATE", "2000", "filler", "1000"]);
    server.command_text(&[
        "CONFIG",
        "SET",
        "loading-process-events-interval-bytes",
        "1024",
    ]);
    server.command_text(&["CONFIG", "SET", "key-load-delay", "5000"]);
    let url = server.url();
    let reload = std::thread::spawn(move || {
        let mut connection = redis::Client::open(url)
            .and_then(|client| client.get_connection_with_timeout(Duration::from_secs(10)))
            .expect("connect");
        connection
            .set_read_timeout(Some(LONG_TIMEOUT))
            .expect("timeout");
        redis::cmd("DEBUG")
            .arg("RELOAD")
            .query::<String>(&mut connection)
    });
    eventually("the server is loading", || {
        server
            .command_text(&["INFO", "persistence"])
            .contains("loading:1")
    })
    .await;

    let before = refusals(&server, "LOADING");
    let store = {
        let backend = backend.clone();
        tokio::spawn(async move { backend.store("ld", success("ld")).await })
    };
    eventually("two LOADING refusals", || {
        refusals(&server, "LOADING") >= before + 2
    })
    .await;
    assert!(!store.is_finished());
    server.command_text(&["CONFIG", "SET", "key-load-delay", "0"]);

    let stored = within_long("the store", store).await.expect("task");
    assert!(stored.is_ok(), "{stored:?}");
    let reloaded = tokio::task::spawn_blocking(move || reload.join())
        .await
        .expect("join");
    assert_eq!(
        reloaded.expect("reload thread").expect("DEBUG RELOAD"),
        "OK"
    );
    assert_eq!(
        within_long("get", backend.get("ld")).await.expect("get"),
        Some(success("ld"))
    );
}
