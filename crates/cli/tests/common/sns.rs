//! A stand-in for SNS's signing: an RSA key and a self-signed certificate made with the
//! openssl CLI, the certificate served over HTTP on 127.0.0.1 (every request counted), and
//! messages signed as SNS signs them. The server under test trusts it through
//! `[ingest.sns] signing_cert_url_hosts = ["127.0.0.1:PORT"]`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use base64::Engine;
use serde_json::Value;

pub struct SnsSigner {
    _dir: tempfile::TempDir,
    key: PathBuf,
    /// `127.0.0.1:PORT` of the certificate server.
    pub host: String,
    /// Where the certificate is served.
    pub cert_url: String,
    fetches: Arc<AtomicUsize>,
}

fn openssl(args: &[&str], input: Option<&[u8]>) -> Vec<u8> {
    let mut child = Command::new("openssl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "the SNS tests make keys and sign messages with the openssl CLI, which could not be run ({e}); install it (apt-get install openssl; scripts/test does)"
            )
        });
    if let Some(input) = input {
        child
            .stdin
            .take()
            .expect("openssl stdin")
            .write_all(input)
            .expect("write to openssl");
    }
    let output = child.wait_with_output().expect("openssl finishes");
    assert!(
        output.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("utf-8 temp path")
}

impl SnsSigner {
    /// A new key and a certificate valid from now for `days`, served at once.
    pub async fn start(days: u32) -> SnsSigner {
        let dir = super::temp_dir();
        let key = dir.path().join("key.pem");
        let cert = dir.path().join("cert.pem");
        openssl(
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                "/CN=sns.vigil.test",
                "-days",
                &days.to_string(),
                "-keyout",
                path_str(&key),
                "-out",
                path_str(&cert),
            ],
            None,
        );
        let pem = std::fs::read(&cert).expect("openssl wrote the certificate");
        let fetches = Arc::new(AtomicUsize::new(0));
        let port = serve(move |_path| (200, pem.clone()), fetches.clone()).await;
        SnsSigner {
            _dir: dir,
            key,
            host: format!("127.0.0.1:{port}"),
            cert_url: format!("http://127.0.0.1:{port}/SimpleNotificationService-test.pem"),
            fetches,
        }
    }

    /// Requests the certificate server has answered.
    pub fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }

    /// Signs `message` as SNS would with this key: sets `SignatureVersion` ("1" SHA1withRSA,
    /// "2" SHA256withRSA), `SigningCertURL` and `Signature`.
    pub fn sign(&self, message: &mut Value, version: &str) {
        message["SignatureVersion"] = Value::from(version);
        message["SigningCertURL"] = Value::from(self.cert_url.as_str());
        let signature = self.signature(&string_to_sign(message), version);
        message["Signature"] = Value::from(signature);
    }

    /// The base64 signature of `text` with this key.
    pub fn signature(&self, text: &str, version: &str) -> String {
        let digest = match version {
            "1" => "-sha1",
            "2" => "-sha256",
            other => panic!("SignatureVersion {other} has no algorithm"),
        };
        let raw = openssl(
            &["dgst", digest, "-sign", path_str(&self.key)],
            Some(text.as_bytes()),
        );
        base64::engine::general_purpose::STANDARD.encode(raw)
    }
}

/// The string SNS signs, written here from AWS's documentation rather than taken from
/// vigil, so the two are checked against each other.
pub fn string_to_sign(message: &Value) -> String {
    let fields: &[&str] = if message["Type"] == "Notification" {
        &[
            "Message",
            "MessageId",
            "Subject",
            "Timestamp",
            "TopicArn",
            "Type",
        ]
    } else {
        &[
            "Message",
            "MessageId",
            "SubscribeURL",
            "Timestamp",
            "Token",
            "TopicArn",
            "Type",
        ]
    };
    fields
        .iter()
        .filter_map(|field| {
            let value = message.get(*field)?.as_str()?;
            Some(format!("{field}\n{value}\n"))
        })
        .collect()
}

/// A loopback HTTP server answering every request with `answer(path)`; counts requests.
pub async fn serve(
    answer: impl Fn(&str) -> (u16, Vec<u8>) + Send + Sync + 'static,
    requests: Arc<AtomicUsize>,
) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the certificate server");
    let port = listener.local_addr().expect("addr").port();
    let answer = Arc::new(answer);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let answer = answer.clone();
            let requests = requests.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 65536 {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                requests.fetch_add(1, Ordering::SeqCst);
                let text = String::from_utf8_lossy(&head);
                let path = text.split_whitespace().nth(1).unwrap_or("/").to_string();
                let (status, body) = answer(&path);
                let head = format!(
                    "HTTP/1.1 {status} X\r\ncontent-length: {}\r\ncontent-type: application/x-pem-file\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = socket.write_all(head.as_bytes()).await;
                let _ = socket.write_all(&body).await;
            });
        }
    });
    port
}
