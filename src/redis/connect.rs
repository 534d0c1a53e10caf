//! The one place a `redis::Client` is made from a builder's URL and TLS options, and the
//! warning an insecure client gives each time a connection is made with it.
//!
//! Every check here runs at `build`, before anything connects: a TLS option on a plain URL, a
//! PEM that holds no certificate, a key that does not match its certificate. What only the
//! server can tell (a certificate from another CA, a name it was not issued for, a port that
//! does not speak TLS) fails the first connection, within the connect timeout.

use std::sync::Arc;

use redis::cluster::ClusterClientBuilder;
use redis::{ConnectionAddr, IntoConnectionInfo};

use super::RedisBackendBuilder;
use super::cluster::{Listeners, Node, Subscriber};
use super::pool::Connector;
use crate::BackendError;

/// The backend's connections as the options describe them: what the command pool connects
/// with, and where the waiters' pub/sub connection is made.
pub(super) fn connections(
    options: &RedisBackendBuilder,
) -> Result<(Connector, Subscriber), BackendError> {
    match &options.seeds {
        None => {
            let client = client(options)?;
            Ok((
                Connector::Single(Box::new(client.clone())),
                Subscriber::Single(Box::new(client)),
            ))
        }
        Some(seeds) => cluster(options, seeds),
    }
}

/// The cluster client of `cluster_builder`'s seeds. Every seed is checked here, before
/// anything connects; a seed URL is never echoed (it may hold a password).
fn cluster(
    options: &RedisBackendBuilder,
    seeds: &[String],
) -> Result<(Connector, Subscriber), BackendError> {
    if seeds.is_empty() {
        return Err(BackendError::invalid(
            "cluster_builder was given no seed URL; name at least one node of the cluster",
        ));
    }
    let mut infos = Vec::with_capacity(seeds.len());
    let mut nodes: Vec<Node> = Vec::with_capacity(seeds.len());
    let mut tls_seeds = 0;
    for (index, seed) in seeds.iter().enumerate() {
        let which = format!("cluster seed {} of {}", index + 1, seeds.len());
        let tls_url =
            redis::parse_redis_url(seed).is_some_and(|url| TLS_SCHEMES.contains(&url.scheme()));
        if tls_url && cfg!(not(feature = "redis-tls")) {
            return Err(BackendError::invalid(format!(
                "{which}: a rediss:// (TLS) URL needs resulthub's `redis-tls` cargo feature; \
                 this build has `redis` without TLS"
            )));
        }
        let info = seed
            .as_str()
            .into_connection_info()
            .map_err(|error| BackendError::invalid(format!("{which}: bad Redis URL: {error}")))?;
        match info.addr() {
            ConnectionAddr::Tcp(host, port) => nodes.push((host.clone(), *port)),
            ConnectionAddr::TcpTls { host, port, .. } => {
                tls_seeds += 1;
                nodes.push((host.clone(), *port));
            }
            _ => {
                return Err(BackendError::invalid(format!(
                    "{which}: not a TCP address (a unix socket?); the nodes of a cluster are \
                     reached by host and port, as the cluster names them"
                )));
            }
        }
        if info.redis_settings().db() != 0 {
            return Err(BackendError::invalid(format!(
                "{which}: database {}; Redis Cluster has database 0 only",
                info.redis_settings().db()
            )));
        }
        infos.push(info);
    }
    if tls_seeds != 0 && tls_seeds != infos.len() {
        return Err(BackendError::invalid(format!(
            "cluster seeds mix rediss:// (TLS, {tls_seeds}) and plain ({}) URLs; every node of \
             a cluster is reached the same way",
            infos.len() - tls_seeds
        )));
    }
    let builder = ClusterClientBuilder::new(infos.clone())
        .connection_timeout(options.connect_timeout)
        .response_timeout(options.response_timeout)
        // The pool bounds each command by one deadline, retries included.
        .overall_response_timeout(None)
        // A failover's `CLUSTERDOWN` and a migration's `TRYAGAIN` are retried after a short,
        // growing pause (10 ms to 0.5 s), not the client's default of over a second.
        .min_retry_wait(10)
        .max_retry_wait(500)
        // One retry (a redirection followed, a refreshed slot map): the pool gives each send
        // half of `response_timeout` and retries within the call's deadline itself; the
        // client's default 16 retries could outlast that half and have the pool rebuild a
        // connection that was only waiting.
        .retries(1);
    let mut template = infos.swap_remove(0);
    #[cfg(feature = "redis-tls")]
    let (builder, insecure, certificates) = tls::cluster(options, builder, tls_seeds != 0)?;
    #[cfg(not(feature = "redis-tls"))]
    let insecure = false;
    if insecure {
        if let ConnectionAddr::TcpTls {
            host,
            port,
            tls_params,
            ..
        } = template.addr().clone()
        {
            template = template.set_addr(ConnectionAddr::TcpTls {
                host,
                port,
                insecure: true,
                tls_params,
            });
        }
    }
    let client = builder
        .build()
        .map_err(|error| BackendError::invalid(format!("bad cluster seeds: {error}")))?;
    let listeners = Listeners::new(
        template,
        nodes,
        #[cfg(feature = "redis-tls")]
        certificates,
    );
    Ok((
        Connector::Cluster {
            client: Box::new(client),
            insecure,
        },
        Subscriber::Cluster(Arc::new(listeners)),
    ))
}

/// The URL schemes the `redis` crate reaches over TLS.
const TLS_SCHEMES: [&str; 2] = ["rediss", "valkeys"];

/// Makes the client every connection of the backend (commands and pub/sub) is opened from.
pub(super) fn client(options: &RedisBackendBuilder) -> Result<redis::Client, BackendError> {
    // The scheme is read by the same parser the `redis` crate uses; a URL it cannot parse is
    // left for `redis` to describe.
    let tls_url =
        redis::parse_redis_url(&options.url).is_some_and(|url| TLS_SCHEMES.contains(&url.scheme()));
    #[cfg(feature = "redis-tls")]
    {
        tls::client(options, tls_url)
    }
    #[cfg(not(feature = "redis-tls"))]
    {
        if tls_url {
            // Without this, `redis` would say only that its TLS support is not compiled in,
            // which names none of resulthub's features.
            return Err(BackendError::invalid(
                "a rediss:// (TLS) URL needs resulthub's `redis-tls` cargo feature; this build \
                 has `redis` without TLS",
            ));
        }
        open(options.url.as_str())
    }
}

fn open(info: impl redis::IntoConnectionInfo) -> Result<redis::Client, BackendError> {
    redis::Client::open(info)
        .map_err(|error| BackendError::invalid(format!("bad Redis URL: {error}")))
}

/// Logs `resulthub.redis.tls_insecure` when `client` skips verifying the server's certificate.
/// Called before each connection resulthub makes (each command connection, made or rebuilt,
/// and each pub/sub connection), so a development setting left on in production shows up in
/// every log.
pub(super) fn warn_if_insecure(client: &redis::Client) {
    if let ConnectionAddr::TcpTls {
        host,
        port,
        insecure: true,
        ..
    } = client.get_connection_info().addr()
    {
        tracing::warn!(
            host = %host,
            port,
            "resulthub.redis.tls_insecure"
        );
    }
}

/// Says, in a first connection's `Unavailable` error, that it was a TLS connection, and what a
/// port serving Redis without TLS looks like from a TLS client: Redis reads the `ClientHello`
/// as an inline command, so it either waits for a line end that never comes (a timeout) or
/// answers with a plain `-ERR` (rustls: "corrupt message"). Certificate problems already name
/// themselves (rustls's `invalid peer certificate: ...`, `received fatal alert: ...`) and are
/// kept whole.
pub(super) fn in_context(connector: &Connector, error: BackendError) -> BackendError {
    let client = match connector {
        Connector::Single(client) => client,
        Connector::Cluster { .. } => {
            return match error {
                BackendError::Unavailable { reason } => BackendError::Unavailable {
                    reason: format!("redis cluster (no seed or node answered): {reason}"),
                },
                other => other,
            };
        }
    };
    let ConnectionAddr::TcpTls { host, port, .. } = client.get_connection_info().addr() else {
        return error;
    };
    match error {
        BackendError::Unavailable { reason } => {
            let hint = if reason.contains("within") || reason.contains("timed out") {
                "; the TCP connection or the TLS handshake got no answer (a port that serves \
                 Redis without TLS leaves the handshake unanswered)"
            } else if reason.contains("corrupt message") {
                "; the server did not answer in TLS (a port that serves Redis without TLS \
                 answers the handshake with a plain error)"
            } else {
                ""
            };
            BackendError::Unavailable {
                reason: format!("TLS connection to {host}:{port}: {reason}{hint}"),
            }
        }
        other => other,
    }
}

#[cfg(feature = "redis-tls")]
pub(super) use tls::TlsOptions;

#[cfg(feature = "redis-tls")]
mod tls {
    use std::sync::Arc;

    use redis::{ClientTlsConfig, ConnectionAddr, IntoConnectionInfo, TlsCertificates};
    use rustls::RootCertStore;
    use rustls::crypto::CryptoProvider;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    use super::{RedisBackendBuilder, open};
    use crate::BackendError;

    /// The TLS options of a builder. Its `Debug` shows what is set, never a key or certificate.
    #[derive(Clone, Default)]
    pub(in crate::redis) struct TlsOptions {
        /// One PEM per `tls_root_certificate` call, each holding one or more certificates.
        pub(in crate::redis) roots: Vec<Vec<u8>>,
        /// The client's certificate chain and private key, PEM.
        pub(in crate::redis) client: Option<(Vec<u8>, Vec<u8>)>,
        pub(in crate::redis) insecure: bool,
    }

    impl TlsOptions {
        fn is_set(&self) -> bool {
            !self.roots.is_empty() || self.client.is_some() || self.insecure
        }
    }

    impl std::fmt::Debug for TlsOptions {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("TlsOptions")
                .field("roots", &self.roots.len())
                .field("client_certificate", &self.client.is_some())
                .field("insecure", &self.insecure)
                .finish()
        }
    }

    pub(super) fn client(
        options: &RedisBackendBuilder,
        tls_url: bool,
    ) -> Result<redis::Client, BackendError> {
        let tls = &options.tls;
        if !tls_url {
            if tls.is_set() {
                // The URL is not echoed: it may hold a password.
                return Err(BackendError::invalid(format!(
                    "{} set on a URL that is not rediss:// (TLS); use a rediss:// URL or drop \
                     the TLS options",
                    set_options(tls)
                )));
            }
            return open(options.url.as_str());
        }
        let info = options
            .url
            .as_str()
            .into_connection_info()
            .map_err(|error| BackendError::invalid(format!("bad Redis URL: {error}")))?;
        let ConnectionAddr::TcpTls {
            host,
            port,
            insecure,
            tls_params,
        } = info.addr().clone()
        else {
            return Err(BackendError::invalid(
                "a rediss:// URL that the redis client does not read as a TLS address",
            ));
        };
        // `#insecure` in the URL is the same setting as `tls_insecure()`.
        let insecure = insecure || tls.insecure;
        if insecure && !tls.roots.is_empty() {
            return Err(BackendError::invalid(
                "tls_root_certificate set with tls_insecure (or #insecure in the URL): an \
                 insecure connection verifies no certificate, so the CA would be ignored",
            ));
        }
        let provider = crypto_provider();
        let roots = root_bundle(&tls.roots)?;
        let client_tls = match &tls.client {
            Some((cert, key)) => {
                check_client_certificate(&provider, cert, key)?;
                Some(ClientTlsConfig {
                    client_cert: cert.clone(),
                    client_key: key.clone(),
                })
            }
            None => None,
        };
        let info = info.set_addr(ConnectionAddr::TcpTls {
            host,
            port,
            insecure,
            tls_params,
        });
        if roots.is_none() && client_tls.is_none() {
            return open(info);
        }
        redis::Client::build_with_tls(
            info,
            TlsCertificates {
                client_tls,
                root_cert: roots,
            },
        )
        .map_err(|error| BackendError::invalid(format!("bad TLS options: {error}")))
    }

    /// Applies the TLS options to a cluster client: the CA to trust and the client certificate
    /// (`ClusterClientBuilder::certs`, used for every node), `tls_insecure` (no verification).
    /// Returns whether verification is off, and the certificates the pub/sub connection uses.
    pub(super) fn cluster(
        options: &RedisBackendBuilder,
        builder: redis::cluster::ClusterClientBuilder,
        tls_seeds: bool,
    ) -> Result<
        (
            redis::cluster::ClusterClientBuilder,
            bool,
            Option<TlsCertificates>,
        ),
        BackendError,
    > {
        let tls = &options.tls;
        if !tls_seeds {
            if tls.is_set() {
                return Err(BackendError::invalid(format!(
                    "{} set on cluster seeds that are not rediss:// (TLS); use rediss:// seeds \
                     or drop the TLS options",
                    set_options(tls)
                )));
            }
            return Ok((builder, false, None));
        }
        let url_insecure = options.seeds.iter().flatten().any(|seed| {
            seed.as_str().into_connection_info().is_ok_and(|info| {
                matches!(info.addr(), ConnectionAddr::TcpTls { insecure: true, .. })
            })
        });
        let insecure = url_insecure || tls.insecure;
        if insecure && !tls.roots.is_empty() {
            return Err(BackendError::invalid(
                "tls_root_certificate set with tls_insecure (or #insecure in a seed URL): an \
                 insecure connection verifies no certificate, so the CA would be ignored",
            ));
        }
        let provider = crypto_provider();
        let roots = root_bundle(&tls.roots)?;
        let client_tls = match &tls.client {
            Some((cert, key)) => {
                check_client_certificate(&provider, cert, key)?;
                Some(ClientTlsConfig {
                    client_cert: cert.clone(),
                    client_key: key.clone(),
                })
            }
            None => None,
        };
        // Set before `certs`, which would otherwise make the mode `Secure`.
        let builder = if insecure {
            builder.tls(redis::TlsMode::Insecure)
        } else {
            builder
        };
        if roots.is_none() && client_tls.is_none() {
            return Ok((builder, insecure, None));
        }
        let certificates = TlsCertificates {
            client_tls,
            root_cert: roots,
        };
        Ok((
            builder.certs(certificates.clone()),
            insecure,
            Some(certificates),
        ))
    }

    /// The names of the TLS options that are set, for an error message.
    fn set_options(tls: &TlsOptions) -> String {
        let mut names = Vec::new();
        if !tls.roots.is_empty() {
            names.push("tls_root_certificate");
        }
        if tls.client.is_some() {
            names.push("tls_client_certificate");
        }
        if tls.insecure {
            names.push("tls_insecure");
        }
        names.join(" and ")
    }

    /// The process's rustls crypto provider, installing ring's when there is none.
    ///
    /// `redis` builds its TLS settings from the process default. rustls picks one by itself
    /// only when exactly one provider is compiled into the program; an application that also
    /// pulls in aws-lc-rs (through another crate) would otherwise panic at the first connect.
    /// An application that installed its own provider keeps it.
    fn crypto_provider() -> Arc<CryptoProvider> {
        if let Some(provider) = CryptoProvider::get_default() {
            return Arc::clone(provider);
        }
        // Losing a race to another installer is fine: the winner's provider is used.
        let _ = rustls::crypto::ring::default_provider().install_default();
        CryptoProvider::get_default()
            .map(Arc::clone)
            .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()))
    }

    /// Every `tls_root_certificate` PEM checked and joined into one bundle, as `redis` takes
    /// them; `None` for the default roots.
    fn root_bundle(roots: &[Vec<u8>]) -> Result<Option<Vec<u8>>, BackendError> {
        if roots.is_empty() {
            return Ok(None);
        }
        let mut bundle = Vec::new();
        for (index, pem) in roots.iter().enumerate() {
            let which = format!("tls_root_certificate (call {})", index + 1);
            let mut store = RootCertStore::empty();
            for certificate in certificates(pem, &which)? {
                store.add(certificate).map_err(|error| {
                    BackendError::invalid(format!("{which}: not a usable CA certificate: {error}"))
                })?;
            }
            bundle.extend_from_slice(pem);
            // PEM blocks must start on a line of their own.
            bundle.push(b'\n');
        }
        Ok(Some(bundle))
    }

    /// The certificates of a PEM: at least one, each well-formed.
    fn certificates(pem: &[u8], which: &str) -> Result<Vec<CertificateDer<'static>>, BackendError> {
        let certificates = CertificateDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| BackendError::invalid(format!("{which}: bad PEM: {error}")))?;
        if certificates.is_empty() {
            return Err(BackendError::invalid(format!(
                "{which}: no CERTIFICATE block in the PEM given"
            )));
        }
        Ok(certificates)
    }

    /// Checks the client's certificate and key the way rustls will use them at connect: the
    /// chain parses, the key parses, is of a kind the provider can sign with, and matches the
    /// certificate.
    fn check_client_certificate(
        provider: &Arc<CryptoProvider>,
        cert: &[u8],
        key: &[u8],
    ) -> Result<(), BackendError> {
        let chain = certificates(cert, "tls_client_certificate")?;
        let key = PrivateKeyDer::from_pem_slice(key).map_err(|error| {
            BackendError::invalid(format!(
                "tls_client_certificate: no private key in the key PEM: {error}"
            ))
        })?;
        rustls::ClientConfig::builder_with_provider(Arc::clone(provider))
            .with_safe_default_protocol_versions()
            .map_err(|error| BackendError::invalid(format!("TLS: {error}")))?
            .with_root_certificates(RootCertStore::empty())
            .with_client_auth_cert(chain, key)
            .map(drop)
            .map_err(|error| {
                BackendError::invalid(format!(
                    "tls_client_certificate: the key and certificate cannot be used: {error}"
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Runs only in a build without `redis-tls` (`cargo test --features redis --lib`): with it,
    // the URL is accepted and tests/redis_tls.rs covers it.
    #[cfg(not(feature = "redis-tls"))]
    #[test]
    fn a_tls_url_names_the_feature_it_needs() {
        for url in ["rediss://127.0.0.1:6380/0", "valkeys://localhost:6380"] {
            match client(&crate::RedisBackend::builder(url)) {
                Err(BackendError::InvalidInput { reason, .. }) => {
                    assert!(reason.contains("`redis-tls`"), "{url}: {reason}");
                }
                other => panic!("{url}: expected InvalidInput, got {other:?}"),
            }
        }
    }

    #[test]
    fn a_plain_client_gets_no_tls_context() {
        let plain = redis::Client::open("redis://127.0.0.1:6379/0").expect("a client");
        let error = in_context(
            &super::super::pool::Connector::Single(Box::new(plain)),
            BackendError::Unavailable {
                reason: "no connection to redis within 1s".to_owned(),
            },
        );
        assert!(
            matches!(&error, BackendError::Unavailable { reason } if reason == "no connection to redis within 1s"),
            "{error:?}"
        );
    }
}
