//! HTTPS as the README sets it up: a self-signed certificate made with the openssl CLI,
//! `[server] tls_cert`/`tls_key`, and `vigil up` serving HTTPS only. A client trusting that
//! certificate gets authenticated answers, plain HTTP on the port gets none, the CLI talks
//! to it with `VIGIL_CA_CERT`, the built-in agent enrolls and reports over it, and so does
//! a separate `vigil agent --ca-cert … --token-file …`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::stack::{until, Proc};
use common::{temp_dir, VIGIL};
use serde_json::Value;

/// A self-signed certificate for 127.0.0.1 and localhost, as the README makes it.
fn self_signed(dir: &Path) {
    let output = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-addext",
            "basicConstraints=critical,CA:FALSE",
            "-keyout",
            "key.pem",
            "-out",
            "cert.pem",
        ])
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!("the TLS test makes its certificate with the openssl CLI, which could not be run ({e}); install it (apt-get install openssl; scripts/test does)")
        });
    assert!(
        output.status.success(),
        "openssl req failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `vigil up` over `dir/data` with TLS configured; waits until it answers over HTTPS.
async fn start_https(dir: &Path, http: &reqwest::Client) -> (Proc, String, String) {
    let data = dir.join("data");
    let config = dir.join("vigil.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"{}\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n\n[metrics]\ngraphite_listen = \"\"\n",
            data.display(),
            dir.join("cert.pem").display(),
            dir.join("key.pem").display()
        ),
    )
    .expect("write vigil.toml");
    let log = std::fs::File::create(dir.join("server.log")).expect("server log");
    let child = Command::new(VIGIL)
        .args(["up", "--config"])
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("start vigil up");
    let server = Proc(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    let url = loop {
        if let Ok(url) = std::fs::read_to_string(data.join("server.url")) {
            let url = url.trim().to_string();
            if let Ok(answer) = http.get(format!("{url}/healthz")).send().await {
                if answer.status().is_success() {
                    break url;
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "vigil did not answer over HTTPS within 30 s; its log:\n{}",
            std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let token = std::fs::read_to_string(data.join("admin.token"))
        .expect("admin.token")
        .trim()
        .to_string();
    (server, url, token)
}

async fn hosts(http: &reqwest::Client, url: &str, token: &str) -> Vec<Value> {
    let answer = http
        .get(format!("{url}/api/v1/hosts"))
        .bearer_auth(token)
        .send()
        .await
        .expect("GET /api/v1/hosts over HTTPS");
    assert_eq!(answer.status(), 200);
    let body: Value = answer.json().await.expect("JSON");
    body["hosts"].as_array().cloned().unwrap_or_default()
}

fn reporting(hosts: &[Value], name: &str) -> bool {
    hosts
        .iter()
        .any(|h| h["name"] == name && !h["last_seen_at"].is_null())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vigil_up_serves_https_only_with_the_configured_certificate() {
    let dir = temp_dir();
    self_signed(dir.path());
    let pem = std::fs::read(dir.path().join("cert.pem")).expect("cert.pem");
    let trusting = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("PEM"))
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let (_server, url, token) = start_https(dir.path(), &trusting).await;
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");

    // Authenticated API answers over HTTPS; without the token, 401 as over HTTP.
    let answer = trusting
        .get(format!("{url}/api/v1/incidents"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("HTTPS request");
    assert_eq!(answer.status(), 200);
    let body: Value = answer.json().await.expect("JSON");
    assert!(body["incidents"].is_array(), "{body}");
    let anonymous = trusting
        .get(format!("{url}/api/v1/incidents"))
        .send()
        .await
        .expect("HTTPS request");
    assert_eq!(anonymous.status(), 401);

    // Plain HTTP on the same port gets no HTTP answer at all.
    let plain = url.replacen("https://", "http://", 1);
    let refused = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .expect("client")
        .get(format!("{plain}/healthz"))
        .send()
        .await;
    assert!(
        refused.is_err(),
        "plain HTTP answered: {:?}",
        refused.map(|r| r.status())
    );
    // A client that does not trust the certificate is refused by its own TLS check.
    let untrusting = reqwest::Client::new()
        .get(format!("{url}/healthz"))
        .send()
        .await;
    assert!(untrusting.is_err(), "an unknown certificate was accepted");

    // The CLI finds the https URL in the data directory and trusts VIGIL_CA_CERT.
    let data = dir.path().join("data");
    let cli = |ca: Option<&Path>| {
        let mut command = Command::new(VIGIL);
        command.args(["hosts", "--json", "--data"]).arg(&data);
        command.env_remove("VIGIL_SERVER").env_remove("VIGIL_TOKEN");
        match ca {
            Some(ca) => command.env("VIGIL_CA_CERT", ca),
            None => command.env_remove("VIGIL_CA_CERT"),
        };
        command.output().expect("run vigil hosts")
    };
    let listed = cli(Some(&dir.path().join("cert.pem")));
    assert!(
        listed.status.success(),
        "vigil hosts with VIGIL_CA_CERT: {}",
        String::from_utf8_lossy(&listed.stderr)
    );
    let without = cli(None);
    assert!(
        !without.status.success(),
        "the CLI trusted an unknown certificate"
    );
    assert!(
        String::from_utf8_lossy(&without.stderr).contains("certificate"),
        "{}",
        String::from_utf8_lossy(&without.stderr)
    );

    // The built-in agent trusts the server's own certificate: its host reports.
    let local = vigil_agent::runtime::local_host_name();
    until(
        "the built-in agent to report over HTTPS",
        Duration::from_secs(60),
        async || reporting(&hosts(&trusting, &url, &token).await, &local).then_some(()),
    )
    .await;

    // A separate agent, token in a file, trusting the certificate with --ca-cert.
    let enrolled = Command::new(VIGIL)
        .args(["host", "add", "tls-host", "--data"])
        .arg(&data)
        .env("VIGIL_CA_CERT", dir.path().join("cert.pem"))
        .output()
        .expect("vigil host add");
    assert!(
        enrolled.status.success(),
        "{}",
        String::from_utf8_lossy(&enrolled.stderr)
    );
    let host_token = String::from_utf8_lossy(&enrolled.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .trim()
        .to_string();
    let token_file = dir.path().join("agent.token");
    std::fs::write(&token_file, format!("{host_token}\n")).expect("token file");
    let log = std::fs::File::create(dir.path().join("agent.log")).expect("agent log");
    let _agent = Proc(
        Command::new(VIGIL)
            .args([
                "agent",
                "--server",
                &url,
                "--name",
                "tls-host",
                "--interval",
                "1",
            ])
            .arg("--token-file")
            .arg(&token_file)
            .arg("--ca-cert")
            .arg(dir.path().join("cert.pem"))
            .env_remove("VIGIL_AGENT_TOKEN")
            .env_remove("VIGIL_TOKEN")
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start the agent"),
    );
    until(
        "the agent with --ca-cert to report",
        Duration::from_secs(60),
        async || reporting(&hosts(&trusting, &url, &token).await, "tls-host").then_some(()),
    )
    .await;
}

#[test]
fn a_certificate_without_its_key_stops_the_server_naming_both() {
    let dir = temp_dir();
    let config = dir.path().join("vigil.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = \"{}\"\ntls_cert = \"{}\"\n\n[metrics]\ngraphite_listen = \"\"\n",
            dir.path().join("data").display(),
            dir.path().join("cert.pem").display()
        ),
    )
    .expect("write vigil.toml");
    let output = Command::new(VIGIL)
        .args(["up", "--no-agent", "--config"])
        .arg(&config)
        .stdin(Stdio::null())
        .output()
        .expect("run vigil up");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("server.tls_cert and server.tls_key go together"),
        "{stderr}"
    );
}
