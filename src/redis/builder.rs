//! Options of a [`RedisBackend`]: key prefix, TTL, connections, timeouts, limits.

use std::time::Duration;

use super::RedisBackend;
use crate::{BackendError, NaiveTimes, TerminalPolicy};

/// Builds a [`RedisBackend`]; made by [`RedisBackend::builder`].
///
/// Every option has a default fit for sharing one Redis with flowrra: the `flowrra` prefix, no
/// TTL, one multiplexed connection for commands and one for pub/sub.
///
/// # Examples
///
/// ```no_run
/// # async fn run() -> Result<(), resulthub::BackendError> {
/// use std::time::Duration;
/// use resulthub::RedisBackend;
///
/// let backend = RedisBackend::builder("redis://127.0.0.1:6379/0")
///     .prefix("billing")
///     .ttl(Duration::from_secs(3600))
///     .response_timeout(Duration::from_secs(2))
///     .build()
///     .await?;
/// # let _ = backend;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
#[must_use = "a builder does nothing until `build` is awaited"]
pub struct RedisBackendBuilder {
    pub(super) url: String,
    /// `Some` in cluster mode: the seed URLs given to `cluster_builder` (`url` is unused).
    pub(super) seeds: Option<Vec<String>>,
    pub(super) prefix: String,
    pub(super) ttl: Option<Duration>,
    pub(super) pool_size: usize,
    pub(super) connect_timeout: Duration,
    pub(super) response_timeout: Duration,
    pub(super) health_check_interval: Duration,
    pub(super) backoff_min: Duration,
    pub(super) backoff_max: Duration,
    pub(super) max_task_id_len: usize,
    pub(super) max_record_bytes: Option<usize>,
    pub(super) terminal_policy: TerminalPolicy,
    pub(super) max_store_attempts: usize,
    pub(super) max_waiters: Option<usize>,
    pub(super) list_timeout: Duration,
    pub(super) subscription_linger: Duration,
    pub(super) naive_times: NaiveTimes,
    pub(super) stats_interval: Duration,
    #[cfg(feature = "redis-tls")]
    pub(super) tls: super::connect::TlsOptions,
}

impl RedisBackendBuilder {
    pub(super) fn new(url: &str) -> Self {
        RedisBackendBuilder {
            url: url.to_owned(),
            seeds: None,
            prefix: "flowrra".to_owned(),
            ttl: None,
            pool_size: 1,
            connect_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(5),
            health_check_interval: Duration::from_secs(5),
            backoff_min: Duration::from_millis(50),
            backoff_max: Duration::from_secs(2),
            max_task_id_len: 1024,
            max_record_bytes: None,
            terminal_policy: TerminalPolicy::Overwrite,
            max_store_attempts: 64,
            max_waiters: crate::HubConfig::default().max_waiters,
            list_timeout: Duration::from_secs(30),
            subscription_linger: Duration::from_secs(5),
            naive_times: NaiveTimes::Utc,
            stats_interval: Duration::from_secs(2),
            #[cfg(feature = "redis-tls")]
            tls: super::connect::TlsOptions::default(),
        }
    }

    pub(super) fn cluster(seeds: Vec<String>) -> Self {
        RedisBackendBuilder {
            seeds: Some(seeds),
            ..Self::new("")
        }
    }

    /// The first part of every key and channel: `{prefix}:task:{id}` holds a record,
    /// `{prefix}:complete:{id}` announces it finished. Apps sharing one Redis use different
    /// prefixes; flowrra always uses the default.
    ///
    /// Default: `"flowrra"`. An empty prefix is refused by `build`.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Expire every record this long after its latest write (`SETEX`), as flowrra's `ttl`.
    /// Redis counts whole seconds: `build` refuses a TTL under one second or with a fraction
    /// of one.
    ///
    /// Default: none, records live until deleted.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// How many multiplexed connections carry commands, used in turn. One connection already
    /// pipelines every concurrent call; more only spread the client's work over more tasks.
    ///
    /// On a cluster ([`RedisBackend::cluster_builder`]) each of these is a whole cluster
    /// connection: one multiplexed connection to every node, its own slot map and its own
    /// background task. One is enough there too.
    ///
    /// Default: 1. Zero is refused by `build`.
    pub fn pool_size(mut self, connections: usize) -> Self {
        self.pool_size = connections;
        self
    }

    /// How long making a connection may take, for the first and for every reconnection. The
    /// connection manager tries twice, so a server that does not answer fails a connection
    /// after twice this. On a cluster, the bound of each node's connection, and of a whole
    /// cluster connection (every seed, then every node) twice this.
    ///
    /// Default: 5 s.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long one command may wait for its answer before it fails with
    /// [`BackendError::Unavailable`]: a server that stopped answering never hangs a caller.
    ///
    /// It bounds each command, its retries included: a command refused for a reason that
    /// passes (`LOADING`, `READONLY`; on a cluster also `CLUSTERDOWN`, `TRYAGAIN`, `MASTERDOWN`
    /// and a master that cannot be reached or times out) is sent again until it runs out. A
    /// call may send more than one command, each with its own bound: a store is a `GET` and
    /// the store script, and, when the script's reply is lost, another `GET` (up to three times
    /// this; once more a `GET` and the script for each time another writer changed the record
    /// in between, up to `max_store_attempts`); a listing's walk is bounded as a whole by
    /// [`list_timeout`](Self::list_timeout), a wait by its own timeout. On a
    /// cluster, each send of a command gets half of this, and one unanswered by then is sent
    /// again on a fresh cluster connection (the `redis` crate's recovery from a node's death
    /// can stall a connection). Make it longer than a failover takes (the cluster's
    /// `cluster-node-timeout` and an election) for calls to ride one out instead of failing
    /// with `Unavailable`.
    ///
    /// Default: 5 s.
    pub fn response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// How often the pub/sub connection is pinged. One silent for a `response_timeout` is
    /// replaced, and every waiter re-reads its key. On a cluster the replacement is made to
    /// another node.
    ///
    /// Default: 5 s.
    pub fn health_check_interval(mut self, interval: Duration) -> Self {
        self.health_check_interval = interval;
        self
    }

    /// The pause before reconnecting the pub/sub connection: `min` after the first failure,
    /// doubling up to `max` while the server stays away.
    ///
    /// Default: 50 ms to 2 s.
    pub fn reconnect_backoff(mut self, min: Duration, max: Duration) -> Self {
        self.backoff_min = min;
        self.backoff_max = max;
        self
    }

    /// The longest task id accepted, in bytes, as
    /// [`HubConfig::max_task_id_len`](crate::HubConfig::max_task_id_len).
    ///
    /// Default: 1024.
    pub fn max_task_id_len(mut self, bytes: usize) -> Self {
        self.max_task_id_len = bytes;
        self
    }

    /// The largest record accepted, in bytes of JSON, as
    /// [`HubConfig::max_record_bytes`](crate::HubConfig::max_record_bytes).
    ///
    /// Default: none.
    pub fn max_record_bytes(mut self, bytes: usize) -> Self {
        self.max_record_bytes = Some(bytes);
        self
    }

    /// Whether a terminal record may be replaced, as
    /// [`HubConfig::terminal_policy`](crate::HubConfig::terminal_policy). Checked against the
    /// stored record in the same atomic step as the write.
    ///
    /// Default: [`TerminalPolicy::Overwrite`], as flowrra.
    pub fn terminal_policy(mut self, policy: TerminalPolicy) -> Self {
        self.terminal_policy = policy;
        self
    }

    /// How many times a store re-reads and merges when other writers keep changing the record
    /// between its read and its write, before failing with
    /// [`BackendError::Overloaded`].
    ///
    /// Default: 64. Zero is refused by `build`.
    pub fn max_store_attempts(mut self, attempts: usize) -> Self {
        self.max_store_attempts = attempts;
        self
    }

    /// How many `wait_for` calls on this backend (and its clones) may wait at once, as
    /// [`HubConfig::max_waiters`](crate::HubConfig::max_waiters) (`None`: no limit). Past it,
    /// `wait_for` of a task that is not finished fails with [`BackendError::Overloaded`]
    /// naming [`Limit::MaxWaiters`](crate::Limit::MaxWaiters), and registers nothing; a finished
    /// task is still answered, as by the hub.
    ///
    /// Default: `Some(1_000_000)`, the hub's.
    pub fn max_waiters(mut self, waiters: Option<usize>) -> Self {
        self.max_waiters = waiters;
        self
    }

    /// How long one `list_by_status` (or `list_page`) may walk the records of the prefix,
    /// `SCAN` and `MGET` included, before it fails with [`BackendError::Unavailable`]. A walk
    /// costs time in proportion to every record of the prefix, not to the page: this bounds
    /// what a listing of a huge prefix, or of a server that stopped answering, can hold a
    /// caller (each command is bounded by `response_timeout` besides). On a cluster the walk
    /// covers every primary, one after another, within this one bound.
    ///
    /// Default: 30 s. Zero is refused by `build`.
    pub fn list_timeout(mut self, timeout: Duration) -> Self {
        self.list_timeout = timeout;
        self
    }

    /// How long the pub/sub connection outlives the last waiter. The pattern subscription to
    /// the prefix's completions exists only while the backend has waiters: when the last one
    /// leaves and none comes for this long, the connection is closed, and the backend receives
    /// no completion traffic until the next `wait_for` subscribes again (one connection and
    /// one `PSUBSCRIBE`, before that wait's first read). The linger spares back-to-back waits
    /// a reconnection each.
    ///
    /// Default: 5 s. Zero closes the connection as soon as the last waiter leaves.
    pub fn subscription_linger(mut self, linger: Duration) -> Self {
        self.subscription_linger = linger;
        self
    }

    /// How timestamps without an offset are read from Redis and written to it. flowrra writes
    /// `datetime.now()`, the local wall time of its workers' hosts: on hosts not set to UTC,
    /// say their zone here ([`NaiveTimes::Offset`], or [`NaiveTimes::Local`] when this process
    /// runs in the same zone), or times and the listing order are off by the hosts' offset.
    /// Records this backend writes use the same zone, so flowrra reads them as its own.
    ///
    /// Default: [`NaiveTimes::Utc`].
    pub fn naive_times(mut self, naive_times: NaiveTimes) -> Self {
        self.naive_times = naive_times;
        self
    }

    /// How long a count of [`RedisBackend::stats`] is served before the next call walks the
    /// prefix again. Each walk reads every key of the prefix: this bounds what many callers
    /// (a dashboard per browser tab) cost the server.
    ///
    /// Default: 2 s. Zero walks at every call (still one walk at a time).
    pub fn stats_interval(mut self, interval: Duration) -> Self {
        self.stats_interval = interval;
        self
    }

    /// Trusts the CA certificates in `pem` (one or more `CERTIFICATE` blocks) for a `rediss://`
    /// server, e.g. a private CA or the one a managed service publishes. Each call adds to the
    /// ones before it. On a cluster, for every node (their certificates must name the
    /// addresses the cluster announces, e.g. their IPs).
    ///
    /// Once any is given, only these are trusted: the default roots (Mozilla's, built in) are
    /// not consulted. Without any, a server must present a certificate from a public CA.
    ///
    /// `build` refuses (`InvalidInput`) a PEM without a certificate, one that is not a usable CA
    /// certificate, a URL that is not `rediss://`, and this option with
    /// [`tls_insecure`](Self::tls_insecure).
    #[cfg(feature = "redis-tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis-tls")))]
    pub fn tls_root_certificate(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.tls.roots.push(pem.into());
        self
    }

    /// Presents this certificate (a PEM chain, leaf first) and its private key (PEM: PKCS#8,
    /// PKCS#1 or SEC1) when the server asks for one: mutual TLS, as `redis-server
    /// --tls-auth-clients yes` requires. A later call replaces an earlier one.
    ///
    /// `build` refuses (`InvalidInput`) a chain without a certificate, a key that cannot be read
    /// or does not match the certificate, and a URL that is not `rediss://`.
    #[cfg(feature = "redis-tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis-tls")))]
    pub fn tls_client_certificate(
        mut self,
        cert_pem: impl Into<Vec<u8>>,
        key_pem: impl Into<Vec<u8>>,
    ) -> Self {
        self.tls.client = Some((cert_pem.into(), key_pem.into()));
        self
    }

    /// **For development only.** Connects over TLS without verifying the server's certificate
    /// or name (also without SNI), as the `#insecure` fragment of a `rediss://` URL does: the
    /// traffic is encrypted, but anyone between client and server can read and change it.
    ///
    /// Every connection made with it logs a `tracing` warning
    /// (`resulthub.redis.tls_insecure`): the command connections when made or rebuilt, and the
    /// pub/sub connection at each (re)connection. `build` refuses it on a URL that is not
    /// `rediss://`, and with [`tls_root_certificate`](Self::tls_root_certificate), which it
    /// would ignore.
    #[cfg(feature = "redis-tls")]
    #[cfg_attr(docsrs, doc(cfg(feature = "redis-tls")))]
    pub fn tls_insecure(mut self) -> Self {
        self.tls.insecure = true;
        self
    }

    /// Checks the options, connects and answers once the server has answered a `PING` (on a
    /// cluster: once the slot map is read and every primary has answered).
    ///
    /// # Errors
    ///
    /// [`BackendError::InvalidInput`] for a malformed URL or option (nothing is connected),
    /// including TLS options on a URL that is not `rediss://` and a PEM without a certificate;
    /// for a cluster also no seed, a unix socket or a database other than 0 as a seed, and
    /// seeds that mix `rediss://` and plain URLs;
    /// [`BackendError::Unavailable`] when the server cannot be reached within twice
    /// `connect_timeout` (two tries), or the TLS handshake fails (a certificate not trusted or
    /// for another name, a client certificate the server requires, a port without TLS), with
    /// rustls's words for it; [`BackendError::Storage`] when it refuses the connection (e.g. a
    /// wrong password).
    pub async fn build(self) -> Result<RedisBackend, BackendError> {
        RedisBackend::from_builder(self).await
    }

    /// The TTL in whole seconds, or why it is refused.
    pub(super) fn ttl_secs(&self) -> Result<Option<u64>, BackendError> {
        let Some(ttl) = self.ttl else {
            return Ok(None);
        };
        if ttl < Duration::from_secs(1) {
            return Err(BackendError::invalid(format!(
                "ttl {ttl:?} is under one second; Redis expires keys in whole seconds"
            )));
        }
        if ttl.subsec_nanos() != 0 {
            return Err(BackendError::invalid(format!(
                "ttl {ttl:?} is not a whole number of seconds"
            )));
        }
        Ok(Some(ttl.as_secs()))
    }

    /// Refuses options that cannot work, before anything connects.
    pub(super) fn check(&self) -> Result<(), BackendError> {
        if self.prefix.is_empty() {
            return Err(BackendError::invalid("prefix is empty"));
        }
        if self.pool_size == 0 {
            return Err(BackendError::invalid("pool_size is zero"));
        }
        if self.max_store_attempts == 0 {
            return Err(BackendError::invalid("max_store_attempts is zero"));
        }
        for (name, value) in [
            ("connect_timeout", self.connect_timeout),
            ("response_timeout", self.response_timeout),
            ("health_check_interval", self.health_check_interval),
            ("reconnect_backoff min", self.backoff_min),
            ("list_timeout", self.list_timeout),
        ] {
            if value.is_zero() {
                return Err(BackendError::invalid(format!("{name} is zero")));
            }
        }
        if self.backoff_max < self.backoff_min {
            return Err(BackendError::invalid(format!(
                "reconnect_backoff max {:?} is under min {:?}",
                self.backoff_max, self.backoff_min
            )));
        }
        self.ttl_secs().map(|_| ())
    }
}
