//! Certificates made at test time for the TLS tests (rcgen, ECDSA P-256): a CA, server and
//! client certificates it signs, and as many unrelated CAs as a test wants.

// Each test crate uses a different subset of the helpers.
#![allow(dead_code)]

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

/// A certificate and its private key, PEM.
#[derive(Clone, Debug)]
pub struct Identity {
    pub cert_pem: String,
    pub key_pem: String,
}

/// A certificate authority that issues server and client certificates.
pub struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    /// A new self-signed CA named `name`.
    pub fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().expect("CA key");
        Ca {
            issuer: CertifiedIssuer::self_signed(params, key).expect("self-sign the CA"),
        }
    }

    /// The CA's certificate, PEM: what a client or server trusts.
    pub fn cert_pem(&self) -> String {
        self.issuer.pem()
    }

    /// A server certificate for `names` (DNS names or IP addresses).
    pub fn server(&self, names: &[&str]) -> Identity {
        self.issue(
            names,
            ExtendedKeyUsagePurpose::ServerAuth,
            "resulthub test server",
        )
    }

    /// A client certificate, for mutual TLS.
    pub fn client(&self) -> Identity {
        self.issue(
            &[],
            ExtendedKeyUsagePurpose::ClientAuth,
            "resulthub test client",
        )
    }

    fn issue(&self, names: &[&str], usage: ExtendedKeyUsagePurpose, cn: &str) -> Identity {
        let names: Vec<String> = names.iter().map(|name| (*name).to_owned()).collect();
        let mut params = CertificateParams::new(names).expect("certificate params");
        params.distinguished_name.push(DnType::CommonName, cn);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().expect("certificate key");
        let cert = params.signed_by(&key, &self.issuer).expect("sign");
        Identity {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}

/// What one TLS test needs: a CA, a server certificate it issued for 127.0.0.1 and localhost,
/// a client certificate it issued, and a second CA that issued neither.
pub struct Pki {
    pub ca: Ca,
    pub server: Identity,
    pub client: Identity,
    pub other_ca: Ca,
}

impl Pki {
    pub fn new() -> Pki {
        let ca = Ca::new("resulthub test CA");
        let server = ca.server(&["127.0.0.1", "localhost"]);
        let client = ca.client();
        Pki {
            ca,
            server,
            client,
            other_ca: Ca::new("resulthub unrelated CA"),
        }
    }
}
