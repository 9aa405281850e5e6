//! SNS message signatures. Anyone who can reach the SNS endpoint could post a message that
//! looks like SNS's, so every message — notification or (un)subscribe confirmation — must
//! carry a signature made with the key of a certificate SNS publishes, on an SNS host,
//! before vigil acts on it. A certificate is fetched once per URL and kept.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use ring::signature::{
    UnparsedPublicKey, VerificationAlgorithm, RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
    RSA_PKCS1_2048_8192_SHA256,
};
use vigil_ingest::sns::{Signature, SignatureError, SignatureFields, SignatureVersion};
use x509_cert::der::DecodePem;

use crate::sns_confirm::{check_url, SnsUrl};

const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// SNS's certificates are about 2 KiB of PEM.
const MAX_CERTIFICATE_BYTES: usize = 64 * 1024;
/// SNS signs with one certificate per region, rotated rarely; more URLs than this are
/// forgeries or a rotation, and the oldest is dropped.
const MAX_CACHED_CERTIFICATES: usize = 32;

/// Why a message was not accepted as signed by SNS.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error(transparent)]
    Unsigned(#[from] SignatureError),
    #[error("{0}")]
    CertificateUrl(String),
    /// The certificate's host could not be reached or failed; SNS retries such a delivery.
    #[error("the SNS signing certificate at {url} could not be fetched ({reason}); the message can be delivered again")]
    Unreachable { url: String, reason: String },
    #[error("the SNS signing certificate at {url} is not usable: {reason}")]
    BadCertificate { url: String, reason: String },
    #[error("the SNS signing certificate at {url} is valid from {not_before} to {not_after}, not at {now}")]
    OutsideValidity {
        url: String,
        not_before: DateTime<Utc>,
        not_after: DateTime<Utc>,
        now: DateTime<Utc>,
    },
    #[error("the SNS signature (version {version}) does not verify with the certificate at {url}: the message was not signed by SNS or was changed")]
    Mismatch { url: String, version: &'static str },
}

impl Refusal {
    /// A refusal that may pass if the same message is delivered again (503, not 403).
    pub fn is_transient(&self) -> bool {
        matches!(self, Refusal::Unreachable { .. })
    }
}

/// What vigil keeps of a signing certificate.
#[derive(Debug)]
pub struct SigningCertificate {
    /// PKCS#1 RSAPublicKey DER, as ring takes it.
    public_key: Vec<u8>,
    not_before: DateTime<Utc>,
    not_after: DateTime<Utc>,
}

impl SigningCertificate {
    /// The first certificate of a PEM document; its key must be RSA.
    pub fn from_pem(pem: &[u8]) -> Result<SigningCertificate, String> {
        // rsaEncryption (RFC 8017 A.1).
        const RSA_ENCRYPTION: x509_cert::spki::ObjectIdentifier =
            x509_cert::spki::ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
        let certificate = x509_cert::Certificate::from_pem(pem)
            .map_err(|e| format!("not a PEM X.509 certificate ({e})"))?;
        let tbs = certificate.tbs_certificate();
        let spki = tbs.subject_public_key_info();
        if spki.algorithm.oid != RSA_ENCRYPTION {
            return Err(format!(
                "its key is not RSA (algorithm {})",
                spki.algorithm.oid
            ));
        }
        let public_key = spki
            .subject_public_key
            .as_bytes()
            .ok_or("its public key is not a whole number of bytes")?
            .to_vec();
        let time = |t: x509_cert::time::Time| {
            let since_epoch = t.to_unix_duration();
            DateTime::from_timestamp(
                i64::try_from(since_epoch.as_secs()).unwrap_or(i64::MAX),
                since_epoch.subsec_nanos(),
            )
            .ok_or_else(|| format!("its validity time {t} is out of range"))
        };
        Ok(SigningCertificate {
            public_key,
            not_before: time(tbs.validity().not_before)?,
            not_after: time(tbs.validity().not_after)?,
        })
    }

    /// Checks `signature` over `signed` at time `now`; `url` only names the certificate.
    pub fn verify(
        &self,
        url: &str,
        version: SignatureVersion,
        signed: &[u8],
        signature: &[u8],
        now: DateTime<Utc>,
    ) -> Result<(), Refusal> {
        if now < self.not_before || now > self.not_after {
            return Err(Refusal::OutsideValidity {
                url: url.to_string(),
                not_before: self.not_before,
                not_after: self.not_after,
                now,
            });
        }
        let algorithm: &'static dyn VerificationAlgorithm = match version {
            SignatureVersion::Sha1Rsa => &RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
            SignatureVersion::Sha256Rsa => &RSA_PKCS1_2048_8192_SHA256,
        };
        UnparsedPublicKey::new(algorithm, &self.public_key)
            .verify(signed, signature)
            .map_err(|_| Refusal::Mismatch {
                url: url.to_string(),
                version: version.as_str(),
            })
    }
}

type Slot = Arc<tokio::sync::OnceCell<Arc<SigningCertificate>>>;

/// Certificates by URL, oldest first out. A slot is shared by concurrent messages naming
/// the same URL, so one fetch serves them all.
#[derive(Default)]
struct Cache {
    slots: HashMap<String, Slot>,
    order: VecDeque<String>,
}

pub struct Verifier {
    hosts: Vec<String>,
    client: reqwest::Client,
    cache: Mutex<Cache>,
}

impl Verifier {
    /// `hosts`: where a SigningCertURL may point (`ingest.sns.signing_cert_url_hosts`).
    pub fn new(hosts: Vec<String>) -> Result<Verifier, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            // A redirect could lead off the SNS hosts.
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Verifier {
            hosts,
            client,
            cache: Mutex::default(),
        })
    }

    /// `Ok` when `fields` sign `string_to_sign` with a certificate from an allowed SNS host,
    /// valid at `now`.
    pub async fn verify(
        &self,
        fields: &SignatureFields,
        string_to_sign: &str,
        now: DateTime<Utc>,
    ) -> Result<(), Refusal> {
        let Signature {
            version,
            bytes,
            signing_cert_url,
        } = fields.parse()?;
        let url = check_url(SnsUrl::SigningCert, &signing_cert_url, &self.hosts)
            .map_err(Refusal::CertificateUrl)?;
        if !url.path().ends_with(".pem") {
            return Err(Refusal::CertificateUrl(format!(
                "SigningCertURL `{signing_cert_url}` does not name a .pem certificate"
            )));
        }
        let certificate = self.certificate(&signing_cert_url, url).await?;
        certificate.verify(
            &signing_cert_url,
            version,
            string_to_sign.as_bytes(),
            &bytes,
            now,
        )
    }

    async fn certificate(
        &self,
        key: &str,
        url: reqwest::Url,
    ) -> Result<Arc<SigningCertificate>, Refusal> {
        let slot = self.slot(key);
        let fetched = slot
            .get_or_try_init(|| async {
                let certificate = self.fetch(url).await?;
                tracing::info!(url = %key, not_after = %certificate.not_after, "SNS signing certificate fetched");
                Ok::<_, Refusal>(Arc::new(certificate))
            })
            .await
            .cloned();
        if fetched.is_err() {
            // Failures are not kept: the next message tries again, and a run of bad URLs
            // does not push good certificates out.
            let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            if cache
                .slots
                .get(key)
                .is_some_and(|s| Arc::ptr_eq(s, &slot) && !s.initialized())
            {
                cache.slots.remove(key);
                cache.order.retain(|u| u != key);
            }
        }
        fetched
    }

    fn slot(&self, key: &str) -> Slot {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(slot) = cache.slots.get(key) {
            return slot.clone();
        }
        while cache.order.len() >= MAX_CACHED_CERTIFICATES {
            if let Some(oldest) = cache.order.pop_front() {
                cache.slots.remove(&oldest);
            }
        }
        let slot = Slot::default();
        cache.slots.insert(key.to_string(), slot.clone());
        cache.order.push_back(key.to_string());
        slot
    }

    async fn fetch(&self, url: reqwest::Url) -> Result<SigningCertificate, Refusal> {
        let shown = url.to_string();
        let unreachable = |reason: String| Refusal::Unreachable {
            url: shown.clone(),
            reason,
        };
        let bad = |reason: String| Refusal::BadCertificate {
            url: shown.clone(),
            reason,
        };
        let mut response = self
            .client
            .get(url.clone())
            .send()
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let status = response.status();
        if status.is_server_error() {
            return Err(unreachable(format!("it answered {status}")));
        }
        if !status.is_success() {
            return Err(bad(format!("it answered {status}")));
        }
        let too_large = || bad(format!("larger than {MAX_CERTIFICATE_BYTES} bytes"));
        if response
            .content_length()
            .is_some_and(|n| n > MAX_CERTIFICATE_BYTES as u64)
        {
            return Err(too_large());
        }
        let mut pem = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| unreachable(e.to_string()))?
        {
            if pem.len() + chunk.len() > MAX_CERTIFICATE_BYTES {
                return Err(too_large());
            }
            pem.extend_from_slice(&chunk);
        }
        SigningCertificate::from_pem(&pem).map_err(bad)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Notifications SNS really sent, with the certificates SNS published for them (both
    /// long expired): the canonical string and the RSA check must agree with AWS's own.
    const AWS_2015_CERTIFICATE: &str = include_str!("../testdata/sns/aws-2015.pem");
    const AWS_2015_NOTIFICATION: &str = include_str!("../testdata/sns/aws-2015.json");
    const AWS_2019_CERTIFICATE: &str = include_str!("../testdata/sns/aws-2019.pem");
    const AWS_2019_NOTIFICATION: &str = include_str!("../testdata/sns/aws-2019.json");

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().expect("RFC 3339 time")
    }

    fn check(
        certificate: &str,
        notification: &str,
        now: DateTime<Utc>,
        change: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>),
    ) -> Result<(), Refusal> {
        let certificate =
            SigningCertificate::from_pem(certificate.as_bytes()).expect("AWS's certificate");
        let mut message: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(notification).expect("notification JSON");
        change(&mut message);
        let fields = SignatureFields {
            signature_version: message["SignatureVersion"].as_str().map(String::from),
            signature: message["Signature"].as_str().map(String::from),
            signing_cert_url: message["SigningCertURL"].as_str().map(String::from),
        };
        let signature = fields.parse()?;
        let signed = vigil_ingest::sns::string_to_sign(&message).expect("string to sign");
        certificate.verify(
            &signature.signing_cert_url,
            signature.version,
            signed.as_bytes(),
            &signature.bytes,
            now,
        )
    }

    #[test]
    fn real_sns_notifications_verify() {
        check(
            AWS_2015_CERTIFICATE,
            AWS_2015_NOTIFICATION,
            at("2015-02-20T21:00:00Z"),
            |_| {},
        )
        .expect("the 2015 notification (with Subject) verifies");
        check(
            AWS_2019_CERTIFICATE,
            AWS_2019_NOTIFICATION,
            at("2019-11-20T19:10:10Z"),
            |_| {},
        )
        .expect("the 2019 notification (no Subject, non-ASCII Message) verifies");
    }

    #[test]
    fn a_changed_field_or_another_certificate_does_not_verify() {
        let now = at("2015-02-20T21:00:00Z");
        for field in ["Message", "MessageId", "Subject", "Timestamp", "TopicArn"] {
            let refusal = check(AWS_2015_CERTIFICATE, AWS_2015_NOTIFICATION, now, |m| {
                let changed = format!("{}x", m[field].as_str().expect("string field"));
                m.insert(field.into(), changed.into());
            })
            .expect_err("a changed field must not verify");
            assert!(
                matches!(refusal, Refusal::Mismatch { .. }),
                "{field}: {refusal}"
            );
        }
        let refusal = check(AWS_2015_CERTIFICATE, AWS_2015_NOTIFICATION, now, |m| {
            m.remove("Subject");
        })
        .expect_err("dropping the Subject changes what was signed");
        assert!(matches!(refusal, Refusal::Mismatch { .. }), "{refusal}");
        // The right signature checked as SHA256withRSA is not a match either.
        let refusal = check(AWS_2015_CERTIFICATE, AWS_2015_NOTIFICATION, now, |m| {
            m.insert("SignatureVersion".into(), "2".into());
        })
        .expect_err("version 2 of a version 1 signature");
        assert_eq!(
            refusal.to_string(),
            "the SNS signature (version 2) does not verify with the certificate at https://sns.us-east-1.amazonaws.com/SimpleNotificationService-d6d679a1d18e95c2f9ffcf11f4f9e198.pem: the message was not signed by SNS or was changed"
        );
        let refusal = check(
            AWS_2019_CERTIFICATE,
            AWS_2015_NOTIFICATION,
            at("2019-11-20T19:10:10Z"),
            |_| {},
        )
        .expect_err("another certificate's key");
        assert!(matches!(refusal, Refusal::Mismatch { .. }), "{refusal}");
    }

    #[test]
    fn a_certificate_is_honoured_only_while_valid() {
        for now in ["2014-08-22T23:59:59Z", "2015-08-23T00:00:00Z"] {
            let refusal = check(AWS_2015_CERTIFICATE, AWS_2015_NOTIFICATION, at(now), |_| {})
                .expect_err("outside the validity period");
            assert!(
                refusal
                    .to_string()
                    .contains("is valid from 2014-08-23 00:00:00 UTC to 2015-08-22 23:59:59 UTC"),
                "{refusal}"
            );
            assert!(!refusal.is_transient());
        }
    }

    #[test]
    fn only_rsa_pem_certificates_are_taken() {
        let err = SigningCertificate::from_pem(b"hello").unwrap_err();
        assert!(err.starts_with("not a PEM X.509 certificate"), "{err}");
        let truncated = &AWS_2015_CERTIFICATE[..AWS_2015_CERTIFICATE.len() / 2];
        assert!(SigningCertificate::from_pem(truncated.as_bytes()).is_err());
    }
}
