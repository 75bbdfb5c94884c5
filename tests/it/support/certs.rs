//! A throwaway PKI for the TLS tests: a CA and server certificates it signs, made with rcgen.
//!
//! The server certificate is an end entity signed by the CA (rustls rejects a CA certificate used
//! as the server's own), with the SANs the tests connect by: `127.0.0.1` (an IP SAN) and
//! `localhost` (a DNS SAN).

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};

/// The SANs of every server certificate.
pub const SERVER_SANS: [&str; 2] = ["127.0.0.1", "localhost"];

/// A certificate authority whose certificate is written to `cert` (PEM).
pub struct TestCa {
    pub name: String,
    pub cert: PathBuf,
    issuer: Issuer<'static, KeyPair>,
}

/// A server certificate and its private key, both PEM files.
pub struct ServerCert {
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn.push(DnType::OrganizationName, "runs-replicator tests");
    dn
}

impl TestCa {
    /// A new CA named `common_name`, its certificate written into `dir`.
    pub fn new(dir: &Path, common_name: &str) -> TestCa {
        let mut params = CertificateParams::default();
        params.distinguished_name = name(common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().expect("generate the CA key");
        let cert = params.self_signed(&key).expect("self-sign the CA");
        let path = dir.join(format!("{}.pem", file_name(common_name)));
        std::fs::write(&path, cert.pem()).unwrap();
        TestCa {
            name: common_name.to_string(),
            cert: path,
            issuer: Issuer::new(params, key),
        }
    }

    /// A server certificate for [`SERVER_SANS`] signed by this CA, written into `dir` as
    /// `<label>.crt` and `<label>.key`.
    pub fn server_cert(&self, dir: &Path, label: &str) -> ServerCert {
        let sans: Vec<String> = SERVER_SANS.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(sans).expect("SANs");
        params.distinguished_name = name(&format!("{label} (signed by {})", self.name));
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().expect("generate the server key");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("sign the server certificate");
        let out = ServerCert {
            cert: dir.join(format!("{}.crt", file_name(label))),
            key: dir.join(format!("{}.key", file_name(label))),
        };
        std::fs::write(&out.cert, cert.pem()).unwrap();
        std::fs::write(&out.key, key.serialize_pem()).unwrap();
        out
    }
}

fn file_name(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}
