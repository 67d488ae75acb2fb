//! TLS for Kafka tests on loopback: a throwaway CA and a server certificate for 127.0.0.1, and a
//! TLS terminator that relays each connection to a broker's plain TCP port (tansu 0.6 takes
//! `--cert`/`--key` but does not serve TLS). Clients see a broker that speaks TLS only: a
//! plain TCP client, or one that does not trust the CA, fails the handshake.

use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::ssl::{Ssl, SslAcceptor, SslMethod};
use openssl::x509::extension::{BasicConstraints, KeyUsage, SubjectAlternativeName};
use openssl::x509::{X509NameBuilder, X509};
use std::path::{Path, PathBuf};
use std::pin::Pin;

/// A CA and a server certificate it signed, valid for `127.0.0.1` and `localhost` for a day.
pub struct Pki {
    pub ca_pem: PathBuf,
    server_cert: X509,
    server_key: PKey<Private>,
}

impl Pki {
    /// Makes the pair and writes the CA certificate (what a client is told to trust) into `dir`.
    pub fn new(dir: &Path) -> Pki {
        let ca_key = ec_key();
        let ca = certificate("overreach test CA", &ca_key, None);
        let server_key = ec_key();
        let server_cert = certificate("127.0.0.1", &server_key, Some((&ca, &ca_key)));
        let ca_pem = dir.join("ca.pem");
        std::fs::write(&ca_pem, ca.to_pem().unwrap()).unwrap();
        Pki { ca_pem, server_cert, server_key }
    }
}

fn ec_key() -> PKey<Private> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap()
}

/// A CA certificate (self-signed) when `issuer` is `None`, else a server certificate it signs.
fn certificate(common_name: &str, key: &PKey<Private>, issuer: Option<(&X509, &PKey<Private>)>) -> X509 {
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_nid(Nid::COMMONNAME, common_name).unwrap();
    let name = name.build();
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    b.set_serial_number(&BigNum::from_u32(if issuer.is_some() { 2 } else { 1 }).unwrap().to_asn1_integer().unwrap())
        .unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(issuer.map_or(&name, |(ca, _)| ca.subject_name())).unwrap();
    b.set_pubkey(key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap()).unwrap();
    b.set_not_after(&Asn1Time::days_from_now(1).unwrap()).unwrap();
    match issuer {
        None => {
            b.append_extension(BasicConstraints::new().critical().ca().build().unwrap()).unwrap();
            b.append_extension(KeyUsage::new().critical().key_cert_sign().build().unwrap()).unwrap();
        }
        Some((ca, _)) => {
            let san = SubjectAlternativeName::new()
                .ip("127.0.0.1")
                .dns("localhost")
                .build(&b.x509v3_context(Some(ca), None))
                .unwrap();
            b.append_extension(san).unwrap();
        }
    }
    b.sign(issuer.map_or(key, |(_, ca_key)| ca_key), MessageDigest::sha256()).unwrap();
    b.build()
}

/// Accepts TLS on loopback `port` and relays each connection to `127.0.0.1:upstream`, on the
/// test's tokio runtime, until dropped.
pub struct TlsTerminator {
    task: tokio::task::JoinHandle<()>,
}

impl TlsTerminator {
    pub async fn start(pki: &Pki, port: u16, upstream: u16) -> TlsTerminator {
        let mut acceptor = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server()).unwrap();
        acceptor.set_private_key(&pki.server_key).unwrap();
        acceptor.set_certificate(&pki.server_cert).unwrap();
        let acceptor = acceptor.build();
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let ssl = Ssl::new(acceptor.context()).unwrap();
                tokio::spawn(async move {
                    let mut tls = tokio_openssl::SslStream::new(ssl, client).unwrap();
                    // A client that does not speak TLS, or does not trust the CA, ends here.
                    if Pin::new(&mut tls).accept().await.is_err() {
                        return;
                    }
                    let Ok(mut broker) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await else { return };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut broker).await;
                });
            }
        });
        TlsTerminator { task }
    }
}

impl Drop for TlsTerminator {
    fn drop(&mut self) {
        self.task.abort();
    }
}
