//! Tokens by name: `vigil token ls` shows them without secrets, `vigil token revoke` makes
//! one answer 401 at once, a taken name is refused with 409 naming it. On SQLite, and on
//! PostgreSQL when the suite runs with VIGIL_TEST_STORE_URL (scripts/test).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use serde_json::{json, Value};

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// `vigil token add NAME [--scope S]`: the secret, alone on the last line.
fn add_token(server: &Server, name: &str, scope: Option<&str>) -> String {
    let mut args = vec!["token", "add", name];
    if let Some(scope) = scope {
        args.extend(["--scope", scope]);
    }
    let output = server.cli(&args);
    assert!(output.status.success(), "{}", stderr(&output));
    let secret = stdout(&output)
        .lines()
        .last()
        .unwrap_or_default()
        .trim()
        .to_string();
    assert!(secret.starts_with("vgl_"), "{}", stdout(&output));
    secret
}

async fn status_with(server: &Server, token: &str, path: &str) -> u16 {
    server
        .http
        .get(format!("{}{path}", server.url))
        .bearer_auth(token)
        .send()
        .await
        .expect("vigil answers")
        .status()
        .as_u16()
}

/// Runs the CLI as the holder of `token`.
fn cli_as(server: &Server, token: &str, args: &[&str]) -> std::process::Output {
    std::process::Command::new(VIGIL)
        .args(args)
        .env("VIGIL_SERVER", &server.url)
        .env("VIGIL_TOKEN", token)
        .output()
        .expect("run the vigil CLI")
}

/// Whether `text` holds something shaped like a SHA-256 hash in hex.
fn has_hex_hash(text: &str) -> bool {
    text.split(|c: char| !c.is_ascii_hexdigit())
        .any(|word| word.len() >= 64)
}

async fn shop_tree(server: &Server) {
    for (code, parent) in [("shop", None), ("shop_web", Some("shop")), ("bank", None)] {
        let mut args = vec!["app", "add", code, "--name", code];
        if let Some(parent) = parent {
            args.extend(["--parent", parent]);
        }
        let output = server.cli(&args);
        assert!(output.status.success(), "{}", stderr(&output));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_ls_shows_names_and_scopes_but_no_secret() {
    let dir = temp_dir();
    let server = Server::start_with(&dir.path().join("data"), &["--no-agent"]).await;
    shop_tree(&server).await;
    let shop = add_token(&server, "shop-team", Some("shop"));
    let web = add_token(&server, "shop-web-team", Some("shop_web"));
    let bank = add_token(&server, "bank-team", Some("bank"));
    let ops = add_token(&server, "ops", None);
    let secrets = [&server.token, &shop, &web, &bank, &ops];

    let listed = server.cli(&["token", "ls"]);
    assert!(listed.status.success(), "{}", stderr(&listed));
    let table = stdout(&listed);
    for (name, scope) in [
        ("admin", "(everything)"),
        ("ops", "(everything)"),
        ("shop-team", "shop"),
        ("shop-web-team", "shop_web"),
        ("bank-team", "bank"),
    ] {
        let line = table
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("{name} in the list:\n{table}"));
        assert!(line.contains(scope), "{name} is scoped {scope}: {line}");
    }
    for secret in secrets {
        assert!(!table.contains(secret.as_str()), "a secret in:\n{table}");
    }
    assert!(!has_hex_hash(&table), "a hash in:\n{table}");

    let listed = server.cli(&["token", "ls", "--json"]);
    assert!(listed.status.success(), "{}", stderr(&listed));
    let text = stdout(&listed);
    for secret in secrets {
        assert!(!text.contains(secret.as_str()), "a secret in:\n{text}");
    }
    assert!(!has_hex_hash(&text), "a hash in:\n{text}");
    let body: Value = serde_json::from_str(&text).expect("--json prints JSON");
    let shop_entry = body["tokens"]
        .as_array()
        .expect("tokens")
        .iter()
        .find(|t| t["name"] == "shop-team")
        .expect("shop-team listed");
    let mut fields: Vec<&str> = shop_entry
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        ["created_at", "kind", "name", "revoked_at", "scope"]
    );
    assert_eq!(shop_entry["scope"], "shop");
    assert_eq!(shop_entry["kind"], "admin");

    // A scoped token sees its own subtree's tokens, nothing else.
    let mine = cli_as(&server, &shop, &["token", "ls", "--json"]);
    assert!(mine.status.success(), "{}", stderr(&mine));
    let mine: Value = serde_json::from_str(&stdout(&mine)).expect("JSON");
    let mut names: Vec<&str> = mine["tokens"]
        .as_array()
        .expect("tokens")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["shop-team", "shop-web-team"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_revoke_makes_the_token_answer_401_at_once() {
    let dir = temp_dir();
    let server = Server::start_with(&dir.path().join("data"), &["--no-agent"]).await;
    shop_tree(&server).await;
    let ops = add_token(&server, "ops", None);
    let web = add_token(&server, "shop-web-team", Some("shop_web"));
    let bank = add_token(&server, "bank-team", Some("bank"));
    // Used once, so the server has it cached: revocation must not wait for the cache.
    assert_eq!(status_with(&server, &ops, "/api/v1/incidents").await, 200);

    let revoked = server.cli(&["token", "revoke", "ops"]);
    assert!(revoked.status.success(), "{}", stderr(&revoked));
    assert!(
        stdout(&revoked).contains("ops revoked"),
        "{}",
        stdout(&revoked)
    );
    assert_eq!(status_with(&server, &ops, "/api/v1/incidents").await, 401);
    let again = server.cli(&["token", "revoke", "ops"]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(stdout(&again).contains("already"), "{}", stdout(&again));
    let (_, listed) = server.get("/api/v1/tokens").await;
    let ops_entry = listed["tokens"]
        .as_array()
        .expect("tokens")
        .iter()
        .find(|t| t["name"] == "ops")
        .expect("a revoked token stays listed");
    assert!(ops_entry["revoked_at"].is_string(), "{ops_entry}");

    // A scoped token revokes inside its subtree only; beyond it, the name does not exist.
    let shop = add_token(&server, "shop-team", Some("shop"));
    let beyond = cli_as(&server, &shop, &["token", "revoke", "bank-team"]);
    assert!(!beyond.status.success());
    assert!(stderr(&beyond).contains("404"), "{}", stderr(&beyond));
    assert_eq!(status_with(&server, &bank, "/api/v1/incidents").await, 200);
    let inside = cli_as(&server, &shop, &["token", "revoke", "shop-web-team"]);
    assert!(inside.status.success(), "{}", stderr(&inside));
    assert_eq!(status_with(&server, &web, "/api/v1/incidents").await, 401);

    // The admin token and host tokens are not revoked here, and the answer says where.
    let admin = server.cli(&["token", "revoke", "admin"]);
    assert!(!admin.status.success());
    assert!(stderr(&admin).contains("422"), "{}", stderr(&admin));
    assert!(stderr(&admin).contains("admin.token"), "{}", stderr(&admin));
    let host = "web-01";
    let enrolled = server.cli(&["host", "add", host]);
    assert!(enrolled.status.success(), "{}", stderr(&enrolled));
    let host_token = server.cli(&["token", "revoke", &format!("host:{host}")]);
    assert!(!host_token.status.success());
    assert!(
        stderr(&host_token).contains(&format!("vigil host revoke {host}")),
        "{}",
        stderr(&host_token)
    );
    assert_eq!(
        status_with(&server, &server.token, "/api/v1/incidents").await,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_token_name_is_409_naming_it() {
    let dir = temp_dir();
    let server = Server::start_with(&dir.path().join("data"), &["--no-agent"]).await;
    add_token(&server, "deploy-bot", None);
    let twice = server.cli(&["token", "add", "deploy-bot"]);
    assert!(!twice.status.success());
    let message = stderr(&twice);
    assert!(message.contains("409"), "{message}");
    assert!(message.contains("`deploy-bot`"), "{message}");
    assert!(!message.contains("internal error"), "{message}");

    let (status, body) = server
        .post("/api/v1/tokens", json!({"name": "deploy-bot"}).to_string())
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap_or_default()
            .contains("deploy-bot"),
        "{body}"
    );
    // A revoked name stays taken.
    let revoked = server.cli(&["token", "revoke", "deploy-bot"]);
    assert!(revoked.status.success(), "{}", stderr(&revoked));
    let (status, body) = server
        .post("/api/v1/tokens", json!({"name": "deploy-bot"}).to_string())
        .await;
    assert_eq!(status, 409, "{body}");
}
