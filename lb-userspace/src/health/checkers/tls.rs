//! TLS client settings for SSL_GET. keepalived (check_ssl.c) never calls
//! SSL_CTX_set_verify, so OpenSSL's SSL_VERIFY_NONE applies: the server's
//! certificate is not verified, only the handshake itself (its signature
//! must match the certificate's key). The `SSL { }` block's certificate
//! and key are offered as a client certificate; its `ca` only matters for
//! verification and is therefore unused, as in keepalived.

use std::sync::Arc;

use anyhow::{bail, Context, Result};
use rustls::{
    client::{
        danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
        Resumption,
    },
    crypto::{self, CryptoProvider},
    pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer, ServerName, UnixTime},
    ClientConfig, DigitallySignedStruct, SignatureScheme,
};

use crate::config::model::SslContext;

/// The client configurations of one SSL_GET: with and without SNI.
#[derive(Clone)]
pub struct TlsConfigs {
    pub plain: Arc<ClientConfig>,
    pub sni: Arc<ClientConfig>,
}

impl TlsConfigs {
    pub fn new(ssl: Option<&SslContext>) -> Result<TlsConfigs> {
        let provider = Arc::new(crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .context("TLS setup")?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider)));
        let mut config = match client_cert(ssl)? {
            Some((certs, key)) => builder
                .with_client_auth_cert(certs, key)
                .context("SSL certificate/key")?,
            None => builder.with_no_client_auth(),
        };
        // Each check is a full handshake, as keepalived's fresh SSL objects.
        config.resumption = Resumption::disabled();
        config.enable_sni = false;
        let plain = Arc::new(config.clone());
        config.enable_sni = true;
        Ok(TlsConfigs {
            plain,
            sni: Arc::new(config),
        })
    }
}

type ClientCert = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

/// The `SSL { certificate; key }` pair, if any. The key may sit in the
/// certificate file, as OpenSSL allows.
fn client_cert(ssl: Option<&SslContext>) -> Result<Option<ClientCert>> {
    let Some(ssl) = ssl else { return Ok(None) };
    let Some(cert_file) = &ssl.certificate else {
        return Ok(None);
    };
    if ssl.password.is_some() {
        bail!("SSL password (an encrypted private key) is not supported by XVS yet");
    }
    let certs = CertificateDer::pem_file_iter(cert_file)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("SSL certificate {cert_file}"))?;
    let key_file = ssl.key.as_ref().unwrap_or(cert_file);
    let key =
        PrivateKeyDer::from_pem_file(key_file).with_context(|| format!("SSL key {key_file}"))?;
    Ok(Some((certs, key)))
}

/// The SNI for a virtual host ("name" or "name:port"); None for an IP
/// literal or a name rustls cannot send.
pub fn sni_name(vhost: &str) -> Option<ServerName<'static>> {
    let host = match vhost.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !host.contains(':') => {
            host
        }
        _ => vhost,
    };
    match ServerName::try_from(host.to_owned()) {
        Ok(name @ ServerName::DnsName(_)) => Some(name),
        _ => None,
    }
}

/// Accepts any certificate but checks handshake signatures.
#[derive(Debug)]
struct NoVerify(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
