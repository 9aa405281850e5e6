//! A small client for vigil's API, used by the CLI commands.

use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use serde_json::Value;

use crate::ClientArgs;

pub struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    pub fn from_args(args: &ClientArgs) -> anyhow::Result<Client> {
        let base = match &args.server {
            Some(url) => url.clone(),
            None => {
                let path = args.data.join("server.url");
                std::fs::read_to_string(&path)
                    .with_context(|| {
                        format!(
                            "no server given and {} is not readable; start one with `vigil up`, or pass --server/VIGIL_SERVER",
                            path.display()
                        )
                    })?
                    .trim()
                    .to_string()
            }
        };
        let token = match &args.token {
            Some(token) => token.clone(),
            None => {
                let path = args.data.join("admin.token");
                std::fs::read_to_string(&path)
                    .with_context(|| {
                        format!(
                            "no token given and {} is not readable; pass --token/VIGIL_TOKEN",
                            path.display()
                        )
                    })?
                    .trim()
                    .to_string()
            }
        };
        Client::new(base, token)
    }

    /// A client trusting the public roots and, for an https server with a certificate of
    /// its own (self-signed, a private CA), the PEM file named by `VIGIL_CA_CERT`.
    pub fn new(base: String, token: String) -> anyhow::Result<Client> {
        let ca_cert = std::env::var_os("VIGIL_CA_CERT")
            .filter(|p| !p.is_empty())
            .map(std::path::PathBuf::from);
        Client::trusting(base, token, ca_cert.as_deref())
    }

    /// A client trusting the public roots and the certificates in the PEM file `ca_cert`.
    pub fn trusting(
        base: String,
        token: String,
        ca_cert: Option<&std::path::Path>,
    ) -> anyhow::Result<Client> {
        let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(30));
        if let Some(path) = ca_cert {
            let what = || format!("CA certificate file {}", path.display());
            let pem = std::fs::read(path).with_context(what)?;
            let certificates = reqwest::Certificate::from_pem_bundle(&pem).with_context(what)?;
            if certificates.is_empty() {
                bail!("{}: no PEM certificate in it", what());
            }
            for certificate in certificates {
                builder = builder.add_root_certificate(certificate);
            }
        }
        let http = builder.build().context("cannot build the HTTP client")?;
        Ok(Client {
            http,
            base: base.trim_end_matches('/').to_string(),
            token,
        })
    }

    /// A GET whose answer is text (exports), with errors as for JSON calls.
    pub async fn get_text(&self, path: &str) -> anyhow::Result<String> {
        let answer = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .with_context(|| format!("cannot reach vigil at {}", self.base))?;
        let status = answer.status();
        let text = answer.text().await.context("reading the answer")?;
        if !status.is_success() {
            bail!("{status}: {text}");
        }
        Ok(text)
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let request = self.http.get(format!("{}{path}", self.base));
        self.send(request).await
    }

    pub async fn post(&self, path: &str, body: Option<Vec<u8>>) -> anyhow::Result<Value> {
        let mut request = self.http.post(format!("{}{path}", self.base));
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body);
        }
        self.send(request).await
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        let response = request
            .bearer_auth(&self.token)
            .send()
            .await
            .with_context(|| format!("cannot reach vigil at {}", self.base))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .context("reading the server's answer")?;
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if !status.is_success() {
            let message = body
                .get("error")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| body.to_string());
            bail!("server answered {status}: {message}");
        }
        if body.is_string() {
            return Err(anyhow!(
                "server answered {status} with a body that is not JSON"
            ));
        }
        Ok(body)
    }
}
