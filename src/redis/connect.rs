//! The one place a `redis::Client` is made from a builder's URL and TLS options, and the
//! warning an insecure client gives each time a connection is made with it.
//!
//! Every check here runs at `build`, before anything connects: a TLS option on a plain URL, a
//! PEM that holds no certificate, a key that does not match its certificate. What only the
//! server can tell (a certificate from another CA, a name it was not issued for, a port that
//! does not speak TLS) fails the first connection, within the connect timeout.

use redis::ConnectionAddr;

use super::RedisBackendBuilder;
use crate::BackendError;

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
pub(super) fn in_context(client: &redis::Client, error: BackendError) -> BackendError {
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
            &plain,
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
