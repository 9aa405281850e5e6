//! The README's curl examples, run as written — the real `curl`, in the README's order —
//! against a real `vigil up` whose data directory is `./vigil-data`, as the README's are. Only
//! the address changes (`127.0.0.1:8080` becomes the test server's); the files the commands
//! send (`-d @alarm.json`) are the ones the README shows.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{temp_dir, Server};
use serde_json::Value;

/// Where the README's examples say vigil listens.
const README_ADDRESS: &str = "127.0.0.1:8080";

fn repository() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn readme() -> String {
    let path = repository().join("README.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

struct Block {
    info: String,
    text: String,
}

/// The fenced code blocks of a Markdown document, with their info strings.
fn code_blocks(markdown: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut open: Option<Block> = None;
    for line in markdown.lines() {
        let fence = line.trim_start().strip_prefix("```");
        match (&mut open, fence) {
            (None, Some(info)) => {
                open = Some(Block {
                    info: info.trim().to_string(),
                    text: String::new(),
                })
            }
            (Some(_), Some(_)) => blocks.extend(open.take()),
            (Some(block), None) => {
                block.text.push_str(line);
                block.text.push('\n');
            }
            (None, None) => {}
        }
    }
    assert!(open.is_none(), "README.md has an unclosed code block");
    blocks
}

/// The `curl` commands of the shell blocks, continuation lines joined, in order.
fn curl_commands(blocks: &[Block]) -> Vec<String> {
    let mut commands = Vec::new();
    for block in blocks.iter().filter(|b| b.info == "sh") {
        let mut command = String::new();
        for line in block.text.lines() {
            command.push_str(line);
            if command.ends_with('\\') {
                command.pop();
                continue;
            }
            if command.trim_start().starts_with("curl ") {
                commands.push(command.trim().to_string());
            }
            command.clear();
        }
    }
    commands
}

/// Files the README shows as ```` ```json NAME ```` blocks.
fn files(blocks: &[Block]) -> Vec<(String, String)> {
    blocks
        .iter()
        .filter_map(|b| {
            let mut words = b.info.split_whitespace();
            match (words.next(), words.next()) {
                (Some(_), Some(name)) => Some((name.to_string(), b.text.clone())),
                _ => None,
            }
        })
        .collect()
}

fn curl_available() {
    let found = Command::new("curl").arg("--version").output();
    assert!(
        found.is_ok_and(|o| o.status.success()),
        "the README's examples need the `curl` binary; install it (scripts/test does: apt-get install curl)"
    );
}

/// What one command printed: the answer's status and body.
struct Answer {
    status: u16,
    body: Value,
}

/// Runs `command` with `sh` in `dir`, as an operator would type it there. The curl
/// configuration in `curl_home` only adds the status after the body, quiets the progress
/// meter, bounds the time and keeps any proxy away from loopback.
fn run(command: &str, dir: &Path, curl_home: &Path) -> Answer {
    let output = Command::new("sh")
        .arg("-c")
        .arg(command)
        .current_dir(dir)
        .env("CURL_HOME", curl_home)
        .output()
        .expect("run sh");
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "`{command}` failed ({}): {stdout}{stderr}",
        output.status
    );
    let (body, status) = stdout.rsplit_once("\nHTTP ").unwrap_or_else(|| {
        panic!("`{command}` printed no status line (was the curl configuration read?): {stdout}{stderr}")
    });
    let status = status
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("`{command}`: not a status: {status:?}"));
    let body = serde_json::from_str(body)
        .unwrap_or_else(|e| panic!("`{command}` answered {status} with non-JSON ({e}): {body}"));
    Answer { status, body }
}

/// Sends one Graphite line to the server and waits until the series shows it.
async fn feed_point(server: &Server, line: &str, query: &str) {
    let addr = std::fs::read_to_string(server.data.join("graphite.addr"))
        .expect("the server writes graphite.addr");
    let mut stream = std::net::TcpStream::connect(addr.trim()).expect("Graphite listener");
    stream
        .write_all(format!("{line}\n").as_bytes())
        .expect("send a Graphite line");
    drop(stream);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = server.get(query).await;
        if status == 200 && body["series"].as_array().is_some_and(|s| !s.is_empty()) {
            return;
        }
        assert!(Instant::now() < deadline, "the point never arrived: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_readme_curl_examples_work_as_written() {
    curl_available();
    let blocks = code_blocks(&readme());
    let commands = curl_commands(&blocks);
    let files = files(&blocks);
    assert!(
        !commands.is_empty(),
        "README.md has no curl example in a ```sh block; this test runs them"
    );
    for command in &commands {
        assert!(
            !command.contains('…'),
            "README.md's `{command}` has a `…` placeholder: it cannot be run as written"
        );
        assert!(
            command.contains(README_ADDRESS),
            "README.md's `{command}` does not talk to {README_ADDRESS}, where `vigil up` listens"
        );
    }

    // The README's working directory: `vigil up` made ./vigil-data there.
    let work = temp_dir();
    for (name, text) in &files {
        // A file the README shows from the repository (`examples/…`) is that file.
        let in_repository = repository().join(name);
        if name.contains('/') {
            let kept = std::fs::read_to_string(&in_repository).unwrap_or_else(|e| {
                panic!("README.md shows {name}, which the repository lacks: {e}")
            });
            assert_eq!(
                &kept, text,
                "README.md's {name} differs from the repository's file"
            );
        }
        let path = work.path().join(name);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("a README folder");
        std::fs::write(path, text).expect("write a README file");
    }
    let curl_home = work.path().join("curl-home");
    std::fs::create_dir_all(&curl_home).expect("curl home");
    std::fs::write(
        curl_home.join(".curlrc"),
        "silent\nshow-error\nmax-time = 30\nnoproxy = \"*\"\nwrite-out = \"\\nHTTP %{http_code}\"\n",
    )
    .expect("write .curlrc");
    let server = Server::start_with(&work.path().join("vigil-data"), &["--no-agent"]).await;
    let address = server
        .url
        .strip_prefix("http://")
        .expect("the server's URL is http://ADDRESS");

    // The series example charts web-01's CPU: give web-01 a point first.
    feed_point(
        &server,
        "CPUUtilization;host=web-01 42",
        "/api/v1/series?name=CPUUtilization&host=web-01",
    )
    .await;

    for command in &commands {
        if let Some(name) = command
            .split_whitespace()
            .find_map(|word| word.strip_prefix('@'))
        {
            assert!(
                work.path().join(name).is_file(),
                "README.md's `{command}` sends {name}, which the README does not show (```json {name})"
            );
        }
        let answer = run(
            &command.replace(README_ADDRESS, address),
            work.path(),
            &curl_home,
        );
        let what = format!("`{command}` answered {}: {}", answer.status, answer.body);
        if command.contains("/api/v1/alarms") && command.contains("-d @") {
            // The alarm in the file is defined, as the file says.
            let name = command
                .split_whitespace()
                .find_map(|w| w.strip_prefix('@'))
                .expect("the file sent");
            let sent: Value = serde_json::from_str(
                &std::fs::read_to_string(work.path().join(name)).expect("the file"),
            )
            .unwrap_or_else(|e| panic!("README.md's {name} is not JSON: {e}"));
            let alarm = sent["AlarmName"]
                .as_str()
                .expect("the file names its alarm");
            assert_eq!(answer.status, 201, "{what}");
            assert_eq!(answer.body["alarm"], alarm, "{what}");
            let (status, stored) = server.get(&format!("/api/v1/alarms/{alarm}")).await;
            assert_eq!(status, 200, "the alarm exists afterwards: {stored}");
            for field in ["MetricName", "ComparisonOperator", "Dimensions"] {
                assert_eq!(stored["alarm"][field], sent[field], "{field}: {stored}");
            }
            assert_eq!(
                stored["alarm"]["Threshold"].as_f64(),
                sent["Threshold"].as_f64(),
                "{stored}"
            );
        } else if command.contains("/api/v1/series?") {
            assert_eq!(answer.status, 200, "{what}");
            let series = answer.body["series"].as_array().expect("a series list");
            assert_eq!(series.len(), 1, "{what}");
            assert_eq!(series[0]["labels"]["host"], "web-01", "{what}");
            let values: Vec<f64> = series[0]["points"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| p[1].as_f64())
                .collect();
            assert_eq!(values, vec![42.0], "{what}");
        } else {
            panic!("README.md has a curl example this test does not know what to expect of: `{command}`; add its expectation here");
        }
    }
}

/// `vigil app import examples/apps.toml`, as the README says, from the repository: it
/// succeeds, a second import changes nothing, and the export says what the file says.
#[tokio::test]
async fn the_example_application_tree_imports_and_exports_back() {
    let example = repository().join("examples/apps.toml");
    assert!(
        readme().contains("vigil app import examples/apps.toml"),
        "README.md shows the import of examples/apps.toml"
    );
    let dir = temp_dir();
    let server = Server::start_with(dir.path(), &["--no-agent"]).await;
    let import = |what: &str| {
        let output = server.cli(&["app", "import", example.to_str().expect("path")]);
        assert!(
            output.status.success(),
            "{what} import: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).to_string()
    };
    let first = import("first");
    assert!(
        first.starts_with("5 apps added") && first.contains("2 hosts bound"),
        "{first}"
    );
    let again = import("second");
    assert!(
        again.contains("unchanged") || again.contains("0 change"),
        "a second import changes nothing: {again}"
    );

    let exported = server.cli(&["app", "export"]);
    assert!(exported.status.success());
    let exported: toml::Value =
        toml::from_str(&String::from_utf8_lossy(&exported.stdout)).expect("the export is TOML");
    let file: toml::Value =
        toml::from_str(&std::fs::read_to_string(&example).expect("examples/apps.toml"))
            .expect("examples/apps.toml is TOML");
    // Every app and binding of the file, with every field it gives, is in the export.
    for section in ["apps", "hosts"] {
        let exported_entries = exported[section].as_array().expect("a list");
        for entry in file[section].as_array().expect("a list") {
            let table = entry.as_table().expect("a table");
            let found = exported_entries
                .iter()
                .any(|e| table.iter().all(|(key, value)| e.get(key) == Some(value)));
            assert!(
                found,
                "{section} entry {entry} is not in the export: {exported}"
            );
        }
        assert_eq!(
            exported_entries.len(),
            file[section].as_array().expect("a list").len(),
            "{section}: {exported}"
        );
    }
    assert_eq!(exported.get("retired"), file.get("retired"), "{exported}");

    // The exported file imports again as no change at all.
    let round = dir.path().join("exported.toml");
    std::fs::write(&round, toml::to_string(&exported).expect("TOML")).expect("write");
    let output = server.cli(&["app", "import", round.to_str().expect("path")]);
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        text.contains("unchanged") || text.contains("0 change"),
        "{text}"
    );
}
