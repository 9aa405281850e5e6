//! A small client for vigil's API, used by the CLI commands.

use std::time::Duration;

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context};
use serde::Deserialize;
use serde_json::Value;

use crate::ClientArgs;

pub struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    /// The server and token from the first place that has each (see [`ClientArgs`]).
    pub fn from_args(args: &ClientArgs) -> anyhow::Result<Client> {
        let found = discover(args)?;
        Client::new(found.server, found.token)
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

/// Where `vigil up` leaves its address and admin token when run without `--data`.
const DEFAULT_DATA: &str = "./vigil-data";

/// The user's CLI settings: `$XDG_CONFIG_HOME/vigil/cli.toml`, else
/// `~/.config/vigil/cli.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct UserConfig {
    server: Option<String>,
    token: Option<String>,
    /// A file holding the token (e.g. a copy of the server's admin.token).
    token_file: Option<PathBuf>,
}

fn user_config_path() -> Option<PathBuf> {
    let non_empty = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    match non_empty("XDG_CONFIG_HOME") {
        Some(dir) => Some(PathBuf::from(dir)),
        None => non_empty("HOME").map(|home| PathBuf::from(home).join(".config")),
    }
    .map(|dir| dir.join("vigil").join("cli.toml"))
}

fn read_user_config(path: &Path) -> anyhow::Result<Option<UserConfig>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let config: UserConfig =
        toml::from_str(&text).with_context(|| format!("reading {}", path.display()))?;
    Ok(Some(config))
}

/// A file's contents, trimmed; `None` when it does not exist or is blank.
fn read_trimmed(path: &Path) -> anyhow::Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text.trim().to_string()).filter(|t| !t.is_empty())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

pub struct Found {
    pub server: String,
    pub token: String,
}

/// What one place says: a server address, a token, or both.
#[derive(Default)]
struct Source {
    server: Option<String>,
    token: Option<String>,
}

/// The server's address and a token. The server comes from the first of:
/// `--server`/`VIGIL_SERVER`; `--data DIR` (DIR/server.url); the user config file;
/// `./vigil-data/server.url`. The token is `--token`/`VIGIL_TOKEN`, else the one kept
/// beside that server's address, so a local admin token is never sent to a server named
/// elsewhere. A `--data` that does not hold them is an error, not a reason to look
/// further: the operator named that directory.
pub fn discover(args: &ClientArgs) -> anyhow::Result<Found> {
    let given = Source {
        server: args.server.clone().filter(|s| !s.is_empty()),
        token: args.token.clone().filter(|s| !s.is_empty()),
    };
    let config_path = user_config_path();
    let config_name = config_path
        .as_deref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "~/.config/vigil/cli.toml".into());
    let mut sources = Vec::new();
    if let Some(dir) = &args.data {
        let server = read_trimmed(&dir.join("server.url"))?;
        if server.is_none() && given.server.is_none() {
            bail!(
                "--data {}: no server.url there; is `vigil up --data {}` running?",
                dir.display(),
                dir.display()
            );
        }
        sources.push(Source {
            server,
            token: read_trimmed(&dir.join("admin.token"))?,
        });
    }
    if let Some(config) = config_path
        .as_deref()
        .map(read_user_config)
        .transpose()?
        .flatten()
    {
        let token = match (config.token.filter(|t| !t.is_empty()), config.token_file) {
            (Some(token), _) => Some(token),
            (None, Some(file)) => Some(read_trimmed(&file)?.with_context(|| {
                format!(
                    "token_file {} (named in {config_name}) is missing or empty",
                    file.display()
                )
            })?),
            (None, None) => None,
        };
        sources.push(Source {
            server: config.server.filter(|s| !s.is_empty()),
            token,
        });
    }
    let default = Path::new(DEFAULT_DATA);
    sources.push(Source {
        server: read_trimmed(&default.join("server.url"))?,
        token: read_trimmed(&default.join("admin.token"))?,
    });

    let (server, kept_with_it) = match given.server {
        // A server named on the command line takes the first token kept anywhere.
        Some(server) => (server, sources.iter().find_map(|s| s.token.clone())),
        None => sources
            .iter()
            .find_map(|s| s.server.clone().map(|server| (server, s.token.clone())))
            .with_context(|| {
                format!(
                    "no server found: pass --server URL or set VIGIL_SERVER, pass --data DIR of a running `vigil up`, put `server = \"http://…\"` in {config_name}, or run where ./vigil-data is"
                )
            })?,
    };
    let token = given.token.or(kept_with_it).with_context(|| {
        format!(
            "no token found for {server}: pass --token or set VIGIL_TOKEN, pass --data DIR (its admin.token), or put `token` or `token_file` in {config_name}"
        )
    })?;
    Ok(Found { server, token })
}
