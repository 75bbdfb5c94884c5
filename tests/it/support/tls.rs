//! What the TLS tests stand on: a throwaway PKI (a CA and server certificates it signs, made with
//! rcgen) and the Postgres cluster that serves one of those certificates and refuses plaintext.
//!
//! The server certificate is an end entity signed by the CA (rustls rejects a CA certificate used
//! as the server's own), with the SANs the tests connect by: `127.0.0.1` (an IP SAN) and
//! `localhost` (a DNS SAN).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};

use super::postgres::give_to_postgres;
use super::{PgCluster, TestEnv, process};

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

/// Only TLS over TCP: hostssl with SCRAM, every plaintext TCP connection rejected.
const HOSTSSL_ONLY: &str = "\
# TYPE     DATABASE     USER  ADDRESS       METHOD
local      all          all                 trust
hostssl    all          all   127.0.0.0/8   scram-sha-256
hostssl    replication  all   127.0.0.0/8   scram-sha-256
hostnossl  all          all   0.0.0.0/0     reject
hostnossl  replication  all   0.0.0.0/0     reject
";

/// The TLS Postgres of this test binary: a cluster, the CA that signed its certificate, and one
/// that did not.
pub struct TlsPostgres {
    pub cluster: &'static PgCluster,
    /// The CA that signed the server's certificate.
    pub ca: PathBuf,
    /// A CA that did not.
    pub other_ca: PathBuf,
}

/// One Postgres with `ssl = on` and a hostssl-only pg_hba.conf for the TLS tests. It listens on
/// 127.0.0.1 (in its certificate) and 127.0.0.2 (not in it).
fn tls_pg() -> &'static TlsPostgres {
    static PG: OnceLock<TlsPostgres> = OnceLock::new();
    PG.get_or_init(|| {
        let dir = process::temp_dir("pki-pg");
        let ca = TestCa::new(&dir, "rr test CA");
        let other_ca = TestCa::new(&dir, "rr other CA");
        let server = ca.server_cert(&dir, "postgres");
        give_to_postgres(&server.key);
        let cert = server.cert.display().to_string();
        let key = server.key.display().to_string();
        let cluster = PgCluster::start_with_hba(
            &[
                ("ssl", "on"),
                ("ssl_cert_file", &cert),
                ("ssl_key_file", &key),
                ("listen_addresses", "127.0.0.1,127.0.0.2"),
            ],
            Some(HOSTSSL_ONLY),
        );
        TlsPostgres {
            cluster: Box::leak(Box::new(cluster)),
            ca: ca.cert,
            other_ca: other_ca.cert,
        }
    })
}

/// A test environment whose Postgres is the TLS one (a database of its own on it).
pub async fn tls_env(label: &str) -> (TestEnv, &'static TlsPostgres) {
    let tls = tls_pg();
    let mut env = TestEnv::new(label).await;
    env.pg = tls.cluster;
    env.pg_db = tls.cluster.create_database(label).await;
    (env, tls)
}
