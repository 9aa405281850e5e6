//! The web UI in a real headless Chromium (through chromedriver) against the real server:
//! login, a live incident list, diagnostics from a real agent, acknowledging without a
//! reload, the alarm chart, hosts and the application tree, every page at a phone's width
//! and a desktop's; and, over plain HTTP, what the session and CSRF checks refuse.
//! Screenshots of every page go to `target/ui-screenshots/`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
#[path = "ui/webdriver.rs"]
mod webdriver;

use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use common::{fixture, temp_dir, Server, VIGIL};
use serde_json::{json, Value};
use webdriver::{Browser, Driver, ENTER};

fn screenshots(test: &str) -> PathBuf {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("the target directory");
    let dir = target.join("ui-screenshots").join(test);
    std::fs::create_dir_all(&dir).expect("screenshot directory");
    dir
}

async fn log_in(browser: &Browser, server: &Server) {
    browser.goto(&format!("{}/ui/login", server.url)).await;
    browser
        .type_into("#token", &format!("{}{ENTER}", server.token))
        .await;
    browser
        .wait_for(
            "the incident list after logging in",
            Duration::from_secs(10),
            "return location.pathname === '/' && document.querySelector('#incidents')",
        )
        .await;
}

/// A real agent process, killed when dropped.
struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn enroll(server: &Server, name: &str, appcode: &str) -> String {
    let app = server.cli(&[
        "app",
        "add",
        appcode,
        "--name",
        "UI shop",
        "--owner",
        "shop-owner@example.com",
    ]);
    assert!(
        app.status.success(),
        "app add: {}",
        String::from_utf8_lossy(&app.stderr)
    );
    let output = server.cli(&["host", "add", name, "--appcode", appcode]);
    assert!(
        output.status.success(),
        "host add: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    stdout
        .lines()
        .last()
        .expect("the token is on the last line")
        .trim()
        .to_string()
}

/// The CloudWatch OK→ALARM fixture, about CPU on `host`.
fn cpu_alarm_about(id: &str, alarm: &str, host: &str) -> Value {
    let mut event = fixture("cloudwatch-alarm-ok-to-alarm.json");
    event["id"] = json!(id);
    event["detail"]["alarmName"] = json!(alarm);
    event["resources"] = json!([format!(
        "arn:aws:cloudwatch:us-east-1:123456789012:alarm:{alarm}"
    )]);
    event["detail"]["configuration"]["metrics"][0]["metricStat"]["metric"]["dimensions"] =
        json!({"host": host});
    event
}

/// Is the page wider than the viewport? A phone scrolls it sideways, or zooms out of it,
/// which widens `window.innerWidth` past the layout width, so it must not be the yardstick.
const OVERFLOWS: &str = "const root = document.documentElement;
  return root.scrollWidth > root.clientWidth || window.innerWidth > root.clientWidth";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn incidents_update_live_show_diagnostics_and_acknowledge_in_place() {
    let dir = temp_dir();
    let shots = screenshots("incidents");
    let server = Server::start_with(&dir.path().join("data"), &["--no-agent"]).await;
    let host_token = enroll(&server, "ui-host", "ui_shop");
    let agent_log = std::fs::File::create(dir.path().join("agent.log")).expect("agent log");
    let _agent = Agent(
        Command::new(VIGIL)
            .args(["agent", "--server", &server.url, "--token", &host_token])
            .args(["--name", "ui-host", "--interval", "1"])
            .stdin(Stdio::null())
            .stdout(agent_log.try_clone().expect("log"))
            .stderr(agent_log)
            .spawn()
            .expect("start the agent"),
    );
    let driver = Driver::start(&dir.path().join("chromedriver.log")).await;
    let browser = driver.browser(1280, 900).await;

    // A wrong token is refused on the login page, and no session cookie is set.
    browser.goto(&format!("{}/", server.url)).await;
    browser
        .wait_for(
            "the redirect to the login page",
            Duration::from_secs(5),
            "return location.pathname === '/ui/login' && document.querySelector('#token')",
        )
        .await;
    browser.screenshot(&shots.join("01-login.png")).await;
    browser
        .type_into("#token", &format!("vgl_not_a_real_token{ENTER}"))
        .await;
    let refusal = browser
        .wait_for(
            "the login refusal",
            Duration::from_secs(5),
            "const e = document.querySelector('#error'); return !e.hidden && e.textContent",
        )
        .await;
    assert!(
        refusal
            .as_str()
            .is_some_and(|t| t.contains("Login refused")),
        "{refusal}"
    );
    assert!(browser.current_url().await.ends_with("/ui/login"));
    assert!(
        browser.cookies().await.is_empty(),
        "no cookie after a refused login"
    );
    browser
        .screenshot(&shots.join("02-login-refused.png"))
        .await;

    browser.clear("#token").await;
    browser
        .type_into("#token", &format!("{}{ENTER}", server.token))
        .await;
    browser
        .wait_for(
            "the incident list after logging in",
            Duration::from_secs(10),
            "return location.pathname === '/' && document.querySelector('#incidents')",
        )
        .await;
    let cookies = browser.cookies().await;
    let session = cookies
        .iter()
        .find(|c| c["name"] == "vigil_session")
        .unwrap_or_else(|| panic!("a session cookie: {cookies:?}"));
    assert_eq!(session["httpOnly"], true, "{session}");
    assert_eq!(session["sameSite"], "Strict", "{session}");
    assert_eq!(session["path"], "/", "{session}");
    assert_ne!(session["value"], server.token.as_str());
    let page = browser
        .eval("return document.documentElement.outerHTML", json!([]))
        .await;
    assert!(
        !page.as_str().unwrap_or_default().contains(&server.token),
        "the page never shows the token"
    );

    // The agent reports before the alarm, so the incident gets its diagnostics.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, host) = server.get("/api/v1/hosts/ui-host").await;
        if host["collector"]["running"] == true {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the agent never reported: {host}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A new incident appears in the open list within 2 s, without a reload.
    browser
        .eval("window.vigilNotReloaded = true; return null", json!([]))
        .await;
    let (status, body) = server
        .post(
            "/api/v1/events",
            cpu_alarm_about("ui-cpu-1", "ui-host CPU high", "ui-host").to_string(),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let posted = Instant::now();
    let key = browser
        .wait_for(
            "the new incident in the list",
            Duration::from_secs(2),
            "const row = [...document.querySelectorAll('#incidents tbody tr')]
               .find(r => r.textContent.includes('ui-host CPU high'));
             return row && row.dataset.key",
        )
        .await;
    let key = key.as_str().expect("incident key").to_string();
    eprintln!(
        "{key} appeared in the list {:?} after it was posted",
        posted.elapsed()
    );
    assert_eq!(
        browser
            .eval("return window.vigilNotReloaded === true", json!([]))
            .await,
        true,
        "the list updated without a reload"
    );
    let cells = browser
        .eval(
            "const row = document.querySelector(`#incidents tr[data-key='${arguments[0]}']`);
             return Object.fromEntries([...row.cells].map(c => [c.dataset.label, c.textContent]))",
            json!([key]),
        )
        .await;
    assert_eq!(cells["Host"], "ui-host", "{cells}");
    assert_eq!(cells["Appcode"], "ui_shop", "the host's Appcode: {cells}");
    assert_eq!(cells["Severity"], "high", "{cells}");
    assert_eq!(cells["Status"], "open", "{cells}");
    assert_eq!(cells["Repeats"], "0", "{cells}");
    browser.screenshot(&shots.join("03-incidents.png")).await;

    // The filters narrow the list: another host's incidents disappear.
    browser.type_into("#f-host", "no-such-host").await;
    browser
        .wait_for(
            "the host filter to empty the list",
            Duration::from_secs(5),
            "return document.querySelectorAll('#incidents tbody tr').length === 0",
        )
        .await;
    browser.clear("#f-host").await;
    browser.type_into("#f-q", "cpu high").await;
    browser
        .wait_for(
            "the text filter to find the incident",
            Duration::from_secs(5),
            "return document.querySelectorAll('#incidents tbody tr').length === 1",
        )
        .await;

    // The incident page: the agent's top_cpu output, columns intact.
    browser
        .click(&format!("#incidents tr[data-key='{key}'] a"))
        .await;
    let diagnostics = browser
        .wait_for(
            "diagnostics on the incident page",
            Duration::from_secs(30),
            "const pre = document.querySelector('#diagnostics pre'); return pre && pre.textContent",
        )
        .await;
    let diagnostics = diagnostics.as_str().expect("diagnostics text").to_string();
    assert!(
        diagnostics.starts_with("top_cpu on ui-host"),
        "{diagnostics}"
    );
    let (_, incident) = server.get(&format!("/api/v1/incidents/{key}")).await;
    let stored = incident["timeline"]
        .as_array()
        .and_then(|t| t.iter().find(|e| e["kind"] == "diagnostics"))
        .and_then(|e| e["message"].as_str())
        .expect("diagnostics in the timeline");
    // The page shows the probe output exactly, except tokens: the agent's own command
    // line (`--token vgl_…`, perhaps cut short by the probe) may be among the busiest.
    let up_to_tokens = |text: &str| -> Vec<String> {
        text.lines()
            .map(|line| line.split("vgl_").next().unwrap_or_default().to_string())
            .collect()
    };
    assert_eq!(up_to_tokens(&diagnostics), up_to_tokens(stored));
    assert!(
        !diagnostics.contains(&host_token[..24]),
        "no part of the host token is shown:\n{diagnostics}"
    );
    if stored.contains(&host_token[..24]) {
        assert!(
            diagnostics.contains("--token vgl_[redacted]"),
            "{diagnostics}"
        );
    }
    let look = browser
        .eval(
            "const s = getComputedStyle(document.querySelector('#diagnostics pre'));
             return [s.whiteSpace, s.fontFamily]",
            json!([]),
        )
        .await;
    assert_eq!(look[0], "pre", "{look}");
    assert!(
        look[1].as_str().is_some_and(|f| f.contains("monospace")),
        "{look}"
    );
    let details = browser
        .eval(
            "return document.querySelector('#incident').textContent",
            json!([]),
        )
        .await;
    let details = details.as_str().unwrap_or_default();
    for expected in [
        "ui-host CPU high",
        "CPUUtilization",
        "Threshold Crossed",
        "ui_shop",
    ] {
        assert!(details.contains(expected), "{expected} in: {details}");
    }
    // The delivery log of its notifications, as the token API reports it.
    let (_, incident) = server.get(&format!("/api/v1/incidents/{key}")).await;
    let delivery_states: Vec<&str> = incident["deliveries"]
        .as_array()
        .map(|d| d.iter().filter_map(|d| d["status"].as_str()).collect())
        .unwrap_or_default();
    browser
        .wait_for(
            &format!("the delivery log {delivery_states:?}"),
            Duration::from_secs(5),
            &format!(
                "const shown = [...document.querySelectorAll('#notifications tbody tr')]
                   .map(r => r.querySelector('[data-label=\"State\"]').textContent);
                 return JSON.stringify(shown) === JSON.stringify({})",
                serde_json::to_string(&delivery_states).expect("JSON")
            ),
        )
        .await;
    let page = browser
        .eval("return document.documentElement.outerHTML", json!([]))
        .await;
    let page = page.as_str().unwrap_or_default();
    assert!(
        !page.contains(&host_token[..24]) && !page.contains(&server.token),
        "no token on the incident page"
    );
    browser.screenshot(&shots.join("04-incident.png")).await;

    // A forged CSRF token is refused even with the session cookie.
    let forged = browser
        .eval(
            "return fetch(`/ui/api/incidents/${arguments[0]}/resolve`,
               {method: 'POST', headers: {'X-CSRF-Token': 'forged'}}).then(r => r.status)",
            json!([key]),
        )
        .await;
    assert_eq!(forged, 403);

    // Acknowledge: the status and MTTA change in place.
    browser
        .eval("window.vigilNotReloaded = true; return null", json!([]))
        .await;
    browser.click("#ack").await;
    browser
        .wait_for(
            "the status to become acknowledged",
            Duration::from_secs(5),
            "return document.querySelector('#status').textContent === 'acknowledged'
               && document.querySelector('#mtta').textContent !== 'not yet known'",
        )
        .await;
    assert_eq!(
        browser
            .eval("return window.vigilNotReloaded === true", json!([]))
            .await,
        true,
        "acknowledged without a reload"
    );
    let (_, incident) = server.get(&format!("/api/v1/incidents/{key}")).await;
    assert_eq!(incident["status"], "acknowledged");
    assert!(
        incident["timeline"].as_array().is_some_and(|t| t
            .iter()
            .any(|e| e["message"] == "acknowledged by admin (web UI)")),
        "{incident}"
    );
    browser
        .screenshot(&shots.join("05-incident-acknowledged.png"))
        .await;

    // Hosts: lifecycle state, last seen, agent version, collector, Appcode, open incidents.
    browser.goto(&format!("{}/ui/hosts", server.url)).await;
    let host = browser
        .wait_for(
            "the host row",
            Duration::from_secs(5),
            "const row = document.querySelector('#hosts tr[data-host=\"ui-host\"]');
             return row && Object.fromEntries([...row.cells].map(c => [c.dataset.label, c.textContent]))",
        )
        .await;
    assert_eq!(host["Appcode"], "ui_shop", "{host}");
    assert_eq!(host["State"], "reporting", "{host}");
    assert_eq!(host["Collector"], "running", "{host}");
    assert_eq!(host["Open incidents"], "1", "{host}");
    assert!(
        host["Last seen"]
            .as_str()
            .is_some_and(|t| t.ends_with("ago")),
        "{host}"
    );
    assert!(
        host["Agent"]
            .as_str()
            .is_some_and(|v| v.chars().any(|c| c.is_ascii_digit())),
        "{host}"
    );
    browser.screenshot(&shots.join("06-hosts.png")).await;

    // Applications: the tree, with each node's owners and hosts.
    browser.goto(&format!("{}/ui/apps", server.url)).await;
    let app = browser
        .wait_for(
            "the ui_shop application",
            Duration::from_secs(5),
            "const card = document.querySelector('#apps [data-appcode=\"ui_shop\"]');
             return card && card.textContent",
        )
        .await;
    let app = app.as_str().unwrap_or_default();
    assert!(
        app.contains("ui-host") && app.contains("shop-owner@example.com"),
        "{app}"
    );
    browser.screenshot(&shots.join("07-apps.png")).await;

    // A phone: 390 px wide, nothing wider than the screen.
    browser.viewport(390, 844).await;
    browser.goto(&format!("{}/", server.url)).await;
    browser
        .wait_for(
            "the list on a phone",
            Duration::from_secs(5),
            "return document.querySelector(`#incidents tr[data-key]`)",
        )
        .await;
    assert_eq!(
        browser.eval("return window.innerWidth", json!([])).await,
        390
    );
    assert_eq!(
        browser.eval(OVERFLOWS, json!([])).await,
        false,
        "no sideways scrolling at 390 px"
    );
    browser
        .screenshot(&shots.join("08-incidents-390px.png"))
        .await;
    browser
        .goto(&format!("{}/ui/incidents/{key}", server.url))
        .await;
    browser
        .wait_for(
            "the incident on a phone",
            Duration::from_secs(5),
            "return document.querySelector('#diagnostics pre')",
        )
        .await;
    assert_eq!(
        browser.eval(OVERFLOWS, json!([])).await,
        false,
        "no sideways scrolling at 390 px"
    );
    browser
        .screenshot(&shots.join("09-incident-390px.png"))
        .await;

    // Logging out ends the session: pages send the browser back to the login page.
    browser.click("#logout").await;
    browser
        .wait_for(
            "the login page after logging out",
            Duration::from_secs(5),
            "return location.pathname === '/ui/login'",
        )
        .await;
    browser.goto(&format!("{}/ui/hosts", server.url)).await;
    assert!(browser.current_url().await.ends_with("/ui/login"));
    browser.quit().await;
}

fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

async fn alarm_state(server: &Server, alarm: &str) -> Option<String> {
    let (_, body) = server.get(&format!("/api/v1/alarms/{alarm}")).await;
    body["instances"][0]["state"].as_str().map(str::to_string)
}

async fn wait_alarm_state(server: &Server, alarm: &str, state: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while alarm_state(server, alarm).await.as_deref() != Some(state) {
        assert!(Instant::now() < deadline, "{alarm} never reached {state}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_alarm_chart_shows_the_series_threshold_and_state_changes() {
    let dir = temp_dir();
    let shots = screenshots("alarms");
    let server = Server::start_with(dir.path(), &["--no-agent"]).await;
    let (status, body) = server
        .post(
            "/api/v1/alarms",
            json!({
                "AlarmName": "ui-latency",
                "MetricName": "ui.latency",
                "Dimensions": [{"Name": "host", "Value": "web-1"}],
                "Statistic": "Maximum",
                "Period": 1,
                "EvaluationPeriods": 2,
                "Threshold": 50.0,
                "ComparisonOperator": "GreaterThanThreshold"
            })
            .to_string(),
        )
        .await;
    assert_eq!(status, 201, "{body}");

    // Graphite lines every 200 ms: low until the alarm is OK, then high until ALARM.
    let value = Arc::new(AtomicU64::new(20f64.to_bits()));
    let run = Arc::new(AtomicBool::new(true));
    let addr = std::fs::read_to_string(dir.path().join("graphite.addr")).expect("graphite.addr");
    let sender = {
        let (value, run) = (value.clone(), run.clone());
        let mut stream = TcpStream::connect(addr.trim()).expect("connect to Graphite");
        std::thread::spawn(move || {
            let mut n = 0u32;
            while run.load(Ordering::SeqCst) {
                // A little wobble, so the line is visibly a series of points.
                let v = f64::from_bits(value.load(Ordering::SeqCst)) + f64::from(n % 5);
                let line = format!("ui.latency;host=web-1 {v} {}\n", unix_secs());
                stream
                    .write_all(line.as_bytes())
                    .expect("send a Graphite line");
                n += 1;
                std::thread::sleep(Duration::from_millis(200));
            }
        })
    };
    wait_alarm_state(&server, "ui-latency", "OK").await;
    // Some seconds of low values, so the chart has points on both sides of the line.
    tokio::time::sleep(Duration::from_secs(2)).await;
    value.store(90f64.to_bits(), Ordering::SeqCst);
    wait_alarm_state(&server, "ui-latency", "ALARM").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    run.store(false, Ordering::SeqCst);
    sender.join().expect("graphite sender");

    let driver = Driver::start(&dir.path().join("chromedriver.log")).await;
    let browser = driver.browser(1280, 900).await;
    log_in(&browser, &server).await;
    browser.goto(&format!("{}/ui/alarms", server.url)).await;
    let row = browser
        .wait_for(
            "the alarm instance row",
            Duration::from_secs(5),
            "const row = [...document.querySelectorAll('#alarms tbody tr')]
               .find(r => r.textContent.includes('ui-latency'));
             return row && Object.fromEntries([...row.cells].map(c => [c.dataset.label, c.textContent]))",
        )
        .await;
    assert_eq!(row["State"], "alarm", "{row}");
    assert_eq!(row["Threshold"], "> 50", "{row}");
    assert!(
        row["Reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("Threshold Crossed: 2 out of the last 2 datapoints")),
        "{row}"
    );
    browser.screenshot(&shots.join("01-alarms.png")).await;

    browser.click("#alarms a").await;
    let chart = browser
        .wait_for(
            "the chart with its threshold line",
            Duration::from_secs(10),
            "const svg = document.querySelector('figure.chart svg');
             const line = svg && svg.querySelector('line.threshold');
             if (!line || !svg.querySelector('path.raw')) return null;
             const ty = Number(line.getAttribute('y1'));
             const ys = [...svg.querySelectorAll('circle.point')].map(c => Number(c.getAttribute('cy')));
             return {
               threshold: line.dataset.threshold,
               flat: line.getAttribute('y1') === line.getAttribute('y2'),
               above: ys.filter(y => y < ty).length,
               below: ys.filter(y => y > ty).length,
               rollups: svg.querySelectorAll('rect.band').length,
               changes: [...svg.querySelectorAll('.change-mark')].map(m => m.dataset.state),
               label: svg.querySelector('text.threshold-label').textContent,
             }",
        )
        .await;
    assert_eq!(chart["threshold"], "50", "{chart}");
    assert_eq!(chart["flat"], true, "{chart}");
    assert!(
        chart["above"].as_u64() > Some(0),
        "points above the line: {chart}"
    );
    assert!(
        chart["below"].as_u64() > Some(0),
        "points below the line: {chart}"
    );
    assert!(
        chart["rollups"].as_u64() > Some(0),
        "minute rollups drawn: {chart}"
    );
    assert_eq!(chart["changes"], json!(["OK", "ALARM"]), "{chart}");
    assert_eq!(chart["label"], "threshold > 50", "{chart}");
    let value_shown = browser
        .eval(
            "return document.querySelector('.instance .value').textContent",
            json!([]),
        )
        .await;
    assert!(
        value_shown
            .as_str()
            .and_then(|v| v.parse::<f64>().ok())
            .is_some_and(|v| v > 50.0),
        "the current value: {value_shown}"
    );
    browser.screenshot(&shots.join("02-alarm-chart.png")).await;

    // Dark mode follows the system's preference.
    let background = "return getComputedStyle(document.body).backgroundColor";
    let light = browser.eval(background, json!([])).await;
    browser.dark_mode().await;
    let dark = browser.eval(background, json!([])).await;
    assert_eq!(light, "rgb(247, 247, 245)");
    assert_eq!(dark, "rgb(22, 22, 21)");
    browser
        .screenshot(&shots.join("03-alarm-chart-dark.png"))
        .await;

    browser.viewport(390, 844).await;
    browser
        .goto(&format!("{}/ui/alarms/ui-latency", server.url))
        .await;
    browser
        .wait_for(
            "the chart on a phone",
            Duration::from_secs(5),
            "return document.querySelector('figure.chart line.threshold')",
        )
        .await;
    assert_eq!(
        browser.eval(OVERFLOWS, json!([])).await,
        false,
        "no sideways scrolling at 390 px"
    );
    browser
        .screenshot(&shots.join("04-alarm-chart-390px.png"))
        .await;
    browser.quit().await;
}

/// A plain HTTP client that keeps nothing between requests and follows no redirects, so
/// every cookie and redirect is the test's to see.
fn bare_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .expect("http client")
}

async fn login(http: &reqwest::Client, server: &Server, token: &str) -> reqwest::Response {
    http.post(format!("{}/ui/api/login", server.url))
        .json(&json!({"token": token}))
        .send()
        .await
        .expect("login answers")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_outlives_a_server_restart() {
    let dir = temp_dir();
    let mut server = Server::start_with(dir.path(), &["--no-agent"]).await;
    let http = bare_client();
    let answer = login(&http, &server, &server.token).await;
    assert_eq!(answer.status(), 200);
    let cookie = answer.headers()["set-cookie"]
        .to_str()
        .expect("cookie text")
        .split(';')
        .next()
        .expect("name=value")
        .to_string();
    let session = |server: &Server| {
        http.get(format!("{}/ui/api/session", server.url))
            .header("cookie", &cookie)
            .send()
    };
    let before: Value = session(&server)
        .await
        .expect("session")
        .json()
        .await
        .expect("JSON");
    let csrf = before["csrf_token"]
        .as_str()
        .expect("csrf token")
        .to_string();

    server.kill();
    let server = Server::start_with(dir.path(), &["--no-agent"]).await;
    let answer = session(&server).await.expect("session");
    assert_eq!(answer.status(), 200, "the session survived the restart");
    let after: Value = answer.json().await.expect("JSON");
    assert_eq!(after["csrf_token"], csrf.as_str(), "{after}");
    assert_eq!(after["user"], "admin");

    let answer = http
        .post(format!("{}/ui/api/logout", server.url))
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .expect("logout");
    assert_eq!(answer.status(), 200);
    assert_eq!(session(&server).await.expect("session").status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_and_csrf_tokens_guard_the_ui() {
    let dir = temp_dir();
    let server = Server::start_with(dir.path(), &["--no-agent"]).await;
    let http = bare_client();
    let (status, _) = server
        .post(
            "/api/v1/events",
            cpu_alarm_about("csrf-1", "csrf test", "web-9").to_string(),
        )
        .await;
    assert_eq!(status, 202);
    let incidents = server
        .wait_for_incidents("the incident", |all| !all.is_empty())
        .await;
    let key = incidents[0]["key"].as_str().expect("key").to_string();

    // Wrong tokens, and host tokens, do not log in.
    let (_, host) = server
        .post("/api/v1/hosts", json!({"name": "web-9"}).to_string())
        .await;
    let host_token = host["token"].as_str().expect("host token");
    for token in ["vgl_wrong", host_token, ""] {
        let answer = login(&http, &server, token).await;
        assert_eq!(answer.status(), 401, "token {token:?}");
        assert!(answer.headers().get("set-cookie").is_none());
        let body: Value = answer.json().await.expect("JSON error");
        assert!(body["error"].is_string(), "{body}");
    }

    // Without a session: pages redirect to the login page, JSON and changes are 401.
    for page in ["/", "/ui/hosts", &format!("/ui/incidents/{key}")] {
        let answer = http
            .get(format!("{}{page}", server.url))
            .send()
            .await
            .expect("page");
        assert_eq!(answer.status(), 303, "{page}");
        assert_eq!(answer.headers()["location"], "/ui/login", "{page}");
    }
    let answer = http
        .get(format!("{}/ui/api/incidents", server.url))
        .header("cookie", "vigil_session=forged")
        .send()
        .await
        .expect("answer");
    assert_eq!(answer.status(), 401);
    let body: Value = answer.json().await.expect("JSON error");
    assert!(body["error"].is_string(), "{body}");
    let answer = http
        .post(format!("{}/ui/api/incidents/{key}/ack", server.url))
        .send()
        .await
        .expect("answer");
    assert_eq!(answer.status(), 401);

    // The admin token logs in: a strict, HttpOnly cookie that is not the token.
    let answer = login(&http, &server, &server.token).await;
    assert_eq!(answer.status(), 200);
    let set_cookie = answer.headers()["set-cookie"]
        .to_str()
        .expect("cookie text")
        .to_string();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
        assert!(
            set_cookie.contains(attribute),
            "{attribute} in {set_cookie}"
        );
    }
    assert!(!set_cookie.contains(&server.token));
    let cookie = set_cookie
        .split(';')
        .next()
        .expect("name=value")
        .to_string();
    let get = |path: &str| {
        http.get(format!("{}{path}", server.url))
            .header("cookie", &cookie)
            .send()
    };
    let session: Value = get("/ui/api/session")
        .await
        .expect("session")
        .json()
        .await
        .expect("JSON");
    let csrf = session["csrf_token"]
        .as_str()
        .expect("csrf token")
        .to_string();
    assert!(!session.to_string().contains(&server.token), "{session}");

    // Changes need the session's CSRF token: none or a forged one is 403 and changes nothing.
    let ack = |csrf: Option<&str>| {
        let mut request = http
            .post(format!("{}/ui/api/incidents/{key}/ack", server.url))
            .header("cookie", &cookie);
        if let Some(csrf) = csrf {
            request = request.header("x-csrf-token", csrf);
        }
        request.send()
    };
    for forged in [None, Some("forged"), Some(&csrf[..csrf.len() - 1])] {
        let answer = ack(forged).await.expect("answer");
        assert_eq!(answer.status(), 403, "{forged:?}");
        let body: Value = answer.json().await.expect("JSON error");
        assert!(
            body["error"].as_str().is_some_and(|e| e.contains("CSRF")),
            "{body}"
        );
    }
    let (_, incident) = server.get(&format!("/api/v1/incidents/{key}")).await;
    assert_eq!(
        incident["status"], "open",
        "a refused change changed nothing"
    );
    let answer = ack(Some(&csrf)).await.expect("answer");
    assert_eq!(answer.status(), 200);
    let body: Value = answer.json().await.expect("JSON");
    assert_eq!(body["incident"]["status"], "acknowledged", "{body}");

    // Security headers on pages, JSON and assets; the pages load no inline script.
    for path in [
        "/",
        "/ui/login",
        "/ui/api/incidents",
        "/ui/assets/app.js",
        "/ui/nope",
    ] {
        let answer = get(path).await.expect("answer");
        let headers = answer.headers();
        assert!(
            headers["content-security-policy"]
                .to_str()
                .is_ok_and(|csp| csp.starts_with("default-src 'self'")),
            "{path}: {headers:?}"
        );
        assert_eq!(headers["x-frame-options"], "DENY", "{path}");
        assert_eq!(headers["referrer-policy"], "no-referrer", "{path}");
    }
    for path in ["/", "/ui/login"] {
        let html = get(path).await.expect("page").text().await.expect("html");
        assert!(html.contains("<script src=\"/ui/assets/"), "{path}");
        assert_eq!(
            html.matches("<script").count(),
            html.matches("<script src=").count(),
            "{path} has no inline script"
        );
        assert!(!html.contains(&server.token), "{path}");
    }
    let missing = get("/ui/api/nope").await.expect("answer");
    assert_eq!(missing.status(), 404);
    let body: Value = missing.json().await.expect("JSON error");
    assert!(body["error"].is_string(), "{body}");

    // Logging out ends the session on the server: the old cookie no longer works.
    let answer = http
        .post(format!("{}/ui/api/logout", server.url))
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .expect("logout");
    assert_eq!(answer.status(), 200);
    assert!(answer.headers()["set-cookie"]
        .to_str()
        .is_ok_and(|c| c.contains("Max-Age=0")));
    assert_eq!(get("/ui/api/session").await.expect("answer").status(), 401);

    // The token API is untouched: still Bearer tokens, not cookies.
    let answer = http
        .get(format!("{}/api/v1/incidents", server.url))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("answer");
    assert_eq!(answer.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scoped_token_sees_only_its_subtree_in_the_ui() {
    let dir = temp_dir();
    let server = Server::start_with(dir.path(), &["--no-agent"]).await;
    for (code, parent) in [("shop", None), ("shop_web", Some("shop")), ("bank", None)] {
        let mut args = vec!["app", "add", code, "--name", code];
        if let Some(parent) = parent {
            args.extend(["--parent", parent]);
        }
        let added = server.cli(&args);
        assert!(
            added.status.success(),
            "{}",
            String::from_utf8_lossy(&added.stderr)
        );
    }
    for (host, code) in [("web-1", "shop_web"), ("vault-1", "bank")] {
        // A bind takes a host vigil knows of: enrolled first, with no application yet.
        let added = server.cli(&["host", "add", host]);
        assert!(added.status.success(), "{added:?}");
        let bound = server.cli(&["host", "bind", host, code]);
        assert!(
            bound.status.success(),
            "{}",
            String::from_utf8_lossy(&bound.stderr)
        );
        let (status, _) = server
            .post(
                "/api/v1/events",
                cpu_alarm_about(host, &format!("{host} cpu"), host).to_string(),
            )
            .await;
        assert_eq!(status, 202);
    }
    server
        .wait_for_incidents("two incidents", |all| all.len() == 2)
        .await;
    let issued = server.cli(&["token", "add", "shop-team", "--scope", "shop"]);
    let scoped = String::from_utf8_lossy(&issued.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .trim()
        .to_string();

    let http = bare_client();
    let answer = login(&http, &server, &scoped).await;
    assert_eq!(answer.status(), 200, "a scoped token may log in");
    let cookie = answer.headers()["set-cookie"]
        .to_str()
        .expect("cookie")
        .split(';')
        .next()
        .expect("pair")
        .to_string();
    let get = |path: &str| {
        http.get(format!("{}{path}", server.url))
            .header("cookie", cookie.clone())
            .send()
    };
    let list: Value = get("/ui/api/incidents")
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    let titles: Vec<&str> = list["incidents"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["alarm_name"].as_str())
        .collect();
    assert_eq!(titles, ["web-1 cpu"], "{list}");
    let vault_key = server
        .incidents()
        .await
        .iter()
        .find(|i| i["alarm_name"] == "vault-1 cpu")
        .and_then(|i| i["key"].as_str().map(str::to_string))
        .expect("key");
    assert_eq!(
        get(&format!("/ui/api/incidents/{vault_key}"))
            .await
            .expect("show")
            .status(),
        404
    );
    let apps: Value = get("/ui/api/apps")
        .await
        .expect("apps")
        .json()
        .await
        .expect("json");
    let codes: Vec<&str> = apps["apps"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a["appcode"].as_str())
        .collect();
    assert_eq!(codes, ["shop", "shop_web"], "{apps}");
}

/// Measures the page as a phone would scroll it: the viewport, the document's width and,
/// when it is wider, the elements sticking out past the right edge (innermost first;
/// those inside a box that scrolls or clips on its own do not widen the page).
const LAYOUT: &str = "
  const root = document.documentElement;
  const edge = root.clientWidth;
  const name = (el) => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '')
    + [...el.classList].map((c) => '.' + c).join('');
  // A box that scrolls or clips sideways keeps what overflows it to itself.
  const own = (el) => getComputedStyle(el).overflowX !== 'visible';
  const scrolls = (el) => ['auto', 'scroll'].includes(getComputedStyle(el).overflowX);
  const boxed = (el) => {
    for (let a = el.parentElement; a && a !== document.body && a !== root; a = a.parentElement) {
      if (own(a)) return true;
    }
    return false;
  };
  // A box's own edge, or that of its text or children where they overflow it.
  const right = (el) => {
    const r = el.getBoundingClientRect();
    return own(el) ? r.right : Math.max(r.right, r.left + el.scrollWidth);
  };
  const all = [...document.body.querySelectorAll('*')];
  const sticking = root.scrollWidth > edge
    ? all.filter((el) => right(el) > edge + 0.5 && !boxed(el))
    : [];
  const innermost = sticking.filter((el) => !sticking.some((o) => o !== el && el.contains(o)));
  innermost.sort((a, b) => right(b) - right(a));
  return {
    inner: window.innerWidth,
    client: edge,
    scroll: root.scrollWidth,
    widest: innermost.slice(0, 3).map((el) => name(el) + ' \"'
      + (el.textContent || '').trim().slice(0, 40) + '\" ends at ' + Math.round(right(el)) + ' px'),
    // Boxes that scroll sideways inside the page.
    scrolling: all.filter((el) => scrolls(el) && el.scrollWidth > el.clientWidth + 1).map(name),
  };";

/// One page of the UI and what shows that it has drawn its data.
struct Page {
    name: &'static str,
    path: String,
    ready: &'static str,
}

/// Visits every page at the browser's current width; returns what scrolls sideways.
async fn pages_wider_than_the_screen(
    browser: &Browser,
    server: &Server,
    pages: &[Page],
    width: u64,
    shots: &Path,
) -> Vec<String> {
    let mut problems = Vec::new();
    for page in pages {
        browser.goto(&format!("{}{}", server.url, page.path)).await;
        browser
            .wait_for(
                &format!("the {} page ({}) to draw", page.name, page.path),
                Duration::from_secs(10),
                page.ready,
            )
            .await;
        let layout = browser.eval(LAYOUT, json!([])).await;
        let scroll = layout["scroll"].as_u64().expect("scrollWidth");
        // Beside a desktop's scroll bar the page has less than the window's width.
        let room = layout["client"].as_u64().expect("clientWidth");
        // A phone zooms out of a page wider than itself (a wider window.innerWidth)
        // rather than scroll it; both are the page not fitting.
        if scroll > room || layout["inner"] != width {
            problems.push(format!(
                "{} ({}) is {scroll} px wide in {room} px at {width} px \
                 (window.innerWidth {}); sticking out: {}",
                page.name, page.path, layout["inner"], layout["widest"]
            ));
        }
        // Tables fit (on a phone as one card per row); only probe output, itself a table
        // of columns, keeps its lines and scrolls inside its own box.
        let boxes: Vec<&str> = layout["scrolling"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .filter(|b| !b.starts_with("pre"))
            .collect();
        if !boxes.is_empty() {
            problems.push(format!(
                "{} ({}) at {width} px has boxes scrolling sideways: {boxes:?}",
                page.name, page.path
            ));
        }
        browser
            .screenshot(&shots.join(format!("{width}px-{}.png", page.name)))
            .await;
    }
    problems
}

/// The application tree as drawn: each node's left edge, its parent's, and its width.
/// A node's parent is the node of the list item its own list item is nested in.
const TREE_OFFSETS: &str = "
  return [...document.querySelectorAll('#apps [data-appcode]')].map((card) => {
    const item = card.closest('li');
    const outer = item && item.parentElement.closest('#apps li');
    const parent = outer && outer.querySelector(':scope > [data-appcode]');
    return {
      appcode: card.dataset.appcode,
      parent: parent ? parent.dataset.appcode : null,
      left: card.getBoundingClientRect().left,
      parent_left: parent ? parent.getBoundingClientRect().left : null,
      width: card.getBoundingClientRect().width,
    };
  });";

/// Every node below another is drawn further right than its parent.
async fn assert_tree_indented(
    browser: &Browser,
    server: &Server,
    tree: &[(&str, Option<&str>)],
    width: u64,
) {
    browser.goto(&format!("{}/ui/apps", server.url)).await;
    browser
        .wait_for(
            "the application tree",
            Duration::from_secs(10),
            &format!(
                "return document.querySelectorAll('#apps [data-appcode]').length >= {}",
                tree.len()
            ),
        )
        .await;
    let nodes = browser.eval(TREE_OFFSETS, json!([])).await;
    let nodes = nodes.as_array().expect("tree nodes");
    for (code, parent) in tree {
        let node = nodes
            .iter()
            .find(|n| n["appcode"] == *code)
            .unwrap_or_else(|| panic!("{code} on the applications page at {width} px: {nodes:?}"));
        assert_eq!(
            node["parent"].as_str(),
            *parent,
            "{code}'s parent at {width} px"
        );
        if parent.is_some() {
            let (left, parent_left) = (
                node["left"].as_f64().expect("left"),
                node["parent_left"].as_f64().unwrap_or_else(|| {
                    panic!("{code}'s parent is not drawn at {width} px: {node}")
                }),
            );
            assert!(
                left >= parent_left + 8.0,
                "{code} is not indented under its parent at {width} px: {node}"
            );
        }
        // Indentation must leave a deep node room to read on a phone.
        assert!(
            node["width"]
                .as_f64()
                .is_some_and(|w| w >= 0.6 * width as f64),
            "{code} is squeezed to {} px at {width} px",
            node["width"]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_page_fits_a_390px_phone_and_the_tree_is_indented() {
    let dir = temp_dir();
    let shots = screenshots("layout");
    let server = Server::start_with(&dir.path().join("data"), &["--no-agent"]).await;

    // A tree four levels deep, the deepest with the longest Appcode vigil allows and
    // people with long addresses.
    let deepest = "payments_ledger_primary_database_eu_west_1_production_replica_01";
    let tree: [(&str, Option<&str>, &str); 4] = [
        ("acme", None, "business_unit"),
        ("acme_payments", Some("acme"), "department"),
        ("acme_payments_ledger", Some("acme_payments"), "application"),
        (deepest, Some("acme_payments_ledger"), "component"),
    ];
    for (code, parent, kind) in tree {
        let name = format!("{code} {kind} with a rather long display name for a phone");
        let mut args = vec!["app", "add", code, "--name", &name, "--kind", kind];
        args.extend([
            "--owner",
            "payments-ledger-primary-database-escalations@operations.example.com",
        ]);
        if let Some(parent) = parent {
            args.extend(["--parent", parent]);
        }
        let added = server.cli(&args);
        assert!(
            added.status.success(),
            "app add {code}: {}",
            String::from_utf8_lossy(&added.stderr)
        );
    }

    // A host with a long name without a break opportunity, and its real agent, whose
    // probes give the incidents their diagnostics (top_cpu's wide table among them).
    let host = "ip_10_120_33_7.payments_ledger_primary_database_0001.eu_west_1.compute.internal";
    let added = server.cli(&["host", "add", host, "--appcode", deepest]);
    assert!(
        added.status.success(),
        "host add: {}",
        String::from_utf8_lossy(&added.stderr)
    );
    let host_token = String::from_utf8_lossy(&added.stdout)
        .lines()
        .last()
        .expect("the token is on the last line")
        .trim()
        .to_string();
    let agent_log = std::fs::File::create(dir.path().join("agent.log")).expect("agent log");
    let _agent = Agent(
        Command::new(VIGIL)
            .args(["agent", "--server", &server.url, "--token", &host_token])
            .args(["--name", host, "--interval", "1"])
            .stdin(Stdio::null())
            .stdout(agent_log.try_clone().expect("log"))
            .stderr(agent_log)
            .spawn()
            .expect("start the agent"),
    );

    // An alarm on the agent's CPU that is always in ALARM (its incident gets the
    // diagnostics), and one that never gets data; both with long unbroken names.
    let firing = "PaymentsLedgerPrimaryDatabase_CPUUtilization_AboveZero_EveryPeriod_eu_west_1";
    let idle = "PaymentsLedgerPrimaryDatabase_ReplicationLagSeconds_NoDataYet_eu_west_1";
    let runbook = "Fires whenever the ledger database works at all; see \
        https://runbooks.example.com/payments_ledger/primary_database/cpu?region=eu_west_1";
    for (name, dimension) in [(firing, host), (idle, "no-such-host")] {
        let (status, body) = server
            .post(
                "/api/v1/alarms",
                json!({
                    "AlarmName": name,
                    "AlarmDescription": runbook,
                    "MetricName": "CPUUtilization",
                    "Dimensions": [{"Name": "host", "Value": dimension}],
                    "Statistic": "Maximum",
                    "Period": 1,
                    "EvaluationPeriods": 1,
                    "Threshold": -1.0,
                    "ComparisonOperator": "GreaterThanThreshold"
                })
                .to_string(),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    // A CloudWatch alarm whose name is a long sentence, with a long description.
    let sentence = "Payments ledger primary database in eu-west-1 has had CPU utilization \
        above ninety percent for fifteen consecutive minutes while serving checkout traffic";
    let mut event = cpu_alarm_about("layout-1", sentence, host);
    event["detail"]["configuration"]["description"] = json!(runbook);
    let (status, body) = server.post("/api/v1/events", event.to_string()).await;
    assert_eq!(status, 202, "{body}");

    let has_diagnostics = |incident: &Value| {
        incident["timeline"]
            .as_array()
            .is_some_and(|t| t.iter().any(|e| e["kind"] == "diagnostics"))
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let keys = loop {
        let mut keys = Vec::new();
        for name in [firing, sentence] {
            let found = server
                .incidents()
                .await
                .into_iter()
                .find(|i| i["alarm_name"] == name)
                .and_then(|i| i["key"].as_str().map(str::to_string));
            if let Some(key) = found {
                let (_, incident) = server.get(&format!("/api/v1/incidents/{key}")).await;
                if has_diagnostics(&incident) {
                    keys.push(key);
                }
            }
        }
        if keys.len() == 2 {
            break keys;
        }
        assert!(
            Instant::now() < deadline,
            "both incidents with diagnostics within 60 s; have {keys:?}, incidents: {:?}",
            server.incidents().await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    // What each page shows once its data is drawn.
    let incident_drawn = "return document.querySelector('#diagnostics pre')
        && document.querySelector('#timeline li')";
    let page = |name: &'static str, path: String, ready: &'static str| Page { name, path, ready };
    let logged_in = [
        page(
            "incidents",
            "/".into(),
            "return document.querySelectorAll('#incidents tr[data-key]').length >= 2",
        ),
        page(
            "incident-unbroken",
            format!("/ui/incidents/{}", keys[0]),
            incident_drawn,
        ),
        page(
            "incident-sentence",
            format!("/ui/incidents/{}", keys[1]),
            incident_drawn,
        ),
        page(
            "incident-unknown",
            format!("/ui/incidents/{}", "NO_SUCH_INCIDENT_".repeat(6)),
            "return !document.querySelector('#problem').hidden",
        ),
        page(
            "alarms",
            "/ui/alarms".into(),
            "return document.querySelector('#alarms tbody tr')
                && document.querySelector('main ul li a')",
        ),
        page(
            "alarm",
            format!("/ui/alarms/{firing}"),
            "return document.querySelector('figure.chart line.threshold')",
        ),
        page(
            "alarm-without-data",
            format!("/ui/alarms/{idle}"),
            "return document.querySelector('#instances p')",
        ),
        page(
            "hosts",
            "/ui/hosts".into(),
            "return document.querySelector('#hosts tr[data-host]')",
        ),
        page(
            "apps",
            "/ui/apps".into(),
            "return document.querySelectorAll('#apps [data-appcode]').length >= 4",
        ),
        page(
            "not-found",
            format!("/ui/{}", "no_such_page_".repeat(8)),
            "return document.querySelector('h1')",
        ),
    ];
    let login_page = [page(
        "login",
        "/ui/login".into(),
        "return document.querySelector('#token')",
    )];
    let tree: Vec<(&str, Option<&str>)> = tree.iter().map(|(c, p, _)| (*c, *p)).collect();

    let driver = Driver::start(&dir.path().join("chromedriver.log")).await;
    let browser = driver.browser(1280, 900).await;
    browser.viewport(390, 844).await;
    let mut problems =
        pages_wider_than_the_screen(&browser, &server, &login_page, 390, &shots).await;
    log_in(&browser, &server).await;
    problems.extend(pages_wider_than_the_screen(&browser, &server, &logged_in, 390, &shots).await);
    // The same pages on a desktop screen.
    browser.viewport(1280, 900).await;
    problems
        .extend(pages_wider_than_the_screen(&browser, &server, &login_page, 1280, &shots).await);
    problems.extend(pages_wider_than_the_screen(&browser, &server, &logged_in, 1280, &shots).await);
    assert!(
        problems.is_empty(),
        "pages scroll sideways:\n{}",
        problems.join("\n")
    );

    assert_tree_indented(&browser, &server, &tree, 1280).await;
    browser.viewport(390, 844).await;
    assert_tree_indented(&browser, &server, &tree, 390).await;
    browser.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_banner_says_when_processing_is_behind() {
    let dir = temp_dir();
    let server = Server::start_env(
        dir.path(),
        &["--no-agent"],
        &[
            ("VIGIL_FAULT_HOLD_PROCESSING", "1"),
            ("VIGIL_TEST_CLOCK", "1"),
        ],
    )
    .await;
    let driver = Driver::start(&dir.path().join("chromedriver.log")).await;
    let browser = driver.browser(1280, 900).await;
    log_in(&browser, &server).await;
    // Nothing waits: no banner.
    browser
        .wait_for(
            "the status check",
            Duration::from_secs(10),
            "return window.performance.getEntriesByType('resource').some(r => r.name.endsWith('/ui/api/status'))",
        )
        .await;
    let hidden = browser
        .eval("return document.getElementById('lag').hidden", json!([]))
        .await;
    assert_eq!(hidden, json!(true));

    for id in ["lag-1", "lag-2", "lag-3"] {
        let (status, body) = server
            .post("/api/v1/events", common::alarm_event(id, id).to_string())
            .await;
        assert_eq!(status, 202, "{body}");
    }
    let (status, _) = server
        .post("/api/v1/test/clock", json!({"seconds": 30}).to_string())
        .await;
    assert_eq!(status, 200);
    let banner = browser
        .wait_for(
            "the processing banner",
            Duration::from_secs(15),
            "const b = document.getElementById('lag'); return !b.hidden && b.textContent",
        )
        .await;
    let banner = banner.as_str().unwrap_or_default();
    let waited: u64 = banner
        .split("the oldest for ")
        .nth(1)
        .and_then(|rest| rest.split('s').next())
        .and_then(|secs| secs.parse().ok())
        .unwrap_or(0);
    assert!(
        banner.contains("3 events waiting") && waited >= 30,
        "{banner}"
    );
    browser
        .screenshot(&screenshots("lag").join("banner.png"))
        .await;
    browser.quit().await;
}
