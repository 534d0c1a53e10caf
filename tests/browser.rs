//! The dashboard in a real browser: headless Chromium driven through chromedriver (WebDriver,
//! with fantoccini). Tasks stored through the handle must appear in the table and change
//! status live, without a reload; the counts, the status filter, paging and the detail view
//! must work. A screenshot is kept in `target/test-artifacts/dashboard.png`.
//!
//! Needs Debian's `chromium` and `chromium-driver`. Without them the test prints `SKIPPED`
//! and passes, unless `RESULTHUB_REQUIRE_BROWSER=1` (as `.ci/run` sets), when it fails.
#![cfg(feature = "web")]

mod support;
mod web_support;

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use chrono::{TimeZone, Utc};
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use resulthub::web::WebOptions;
use resulthub::{HubConfig, HubHandle, ResultBackend, TaskResult, TaskStatus};
use serde_json::json;
use support::within_for;
use web_support::TestServer;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// Bound on any one browser step: Chromium is slow to start on a busy 2-core machine.
const STEP: Duration = Duration::from_secs(60);
const TOKEN: &str = "dashboard-token";

/// chromedriver on a free port, in a process group of its own, so that dropping this (also
/// while unwinding from a failed assertion) kills it and every Chromium it started.
struct Chromedriver {
    child: Child,
    port: u16,
    profile: PathBuf,
}

impl Chromedriver {
    fn start() -> Chromedriver {
        let port = TcpListener::bind(("127.0.0.1", 0))
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let profile =
            std::env::temp_dir().join(format!("resulthub-chromium-{}-{port}", std::process::id()));
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start chromedriver");
        Chromedriver {
            child,
            port,
            profile,
        }
    }

    async fn connect(&self) -> Client {
        let url = format!("http://127.0.0.1:{}", self.port);
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("browserName".into(), json!("chrome"));
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": CHROMIUM,
                // The machines have no network but loopback: without these Chromium keeps
                // trying to reach Google's services.
                "args": [
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--disable-dev-shm-usage",
                    "--window-size=1400,900",
                    format!("--user-data-dir={}", self.profile.display()),
                ],
            }),
        );
        within_for(STEP, "a WebDriver session", async {
            loop {
                let mut builder = ClientBuilder::new(HttpConnector::new());
                builder.capabilities(capabilities.clone());
                match builder.connect(&url).await {
                    Ok(client) => return client,
                    // chromedriver may not listen yet.
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        })
        .await
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        // The whole group: chromedriver and the Chromium processes it started. A system call,
        // not the `kill` program: procps-ng 4.0.2's `kill -KILL -PGID` (without `--`) misreads
        // the group and may signal every process (`kill(-1)`).
        if let Some(group) = rustix::process::Pid::from_raw(self.child.id() as i32) {
            let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// Whether the browser is there; if not, whether that fails the test.
fn browser_available() -> bool {
    let missing: Vec<&str> = [CHROMIUM, CHROMEDRIVER]
        .into_iter()
        .filter(|path| !Path::new(path).exists())
        .collect();
    if missing.is_empty() {
        return true;
    }
    let message = format!(
        "SKIPPED: the dashboard browser test needs {} (apt-get install -y chromium chromium-driver)",
        missing.join(" and ")
    );
    if std::env::var("RESULTHUB_REQUIRE_BROWSER").as_deref() == Ok("1") {
        panic!("{message}, and RESULTHUB_REQUIRE_BROWSER=1 requires it");
    }
    eprintln!("\n======== {message} ========\n");
    println!("{message}");
    false
}

async fn text(client: &Client, css: &str) -> String {
    match client.find(Locator::Css(css)).await {
        Ok(element) => element.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// Waits until the element `css` exists.
async fn appears(client: &Client, css: &str) {
    within_for(STEP, &format!("{css} to appear"), async {
        while client.find(Locator::Css(css)).await.is_err() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
}

/// Waits until the text of `css` is `expected`.
async fn reads(client: &Client, css: &str, expected: &str) {
    within_for(STEP, &format!("{css} to read {expected:?}"), async {
        loop {
            if text(client, css).await == expected {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
}

fn row(id: &str) -> String {
    format!("tr[data-task-id='{id}']")
}

fn submitted(minute: u32) -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, 9, minute, 0).unwrap()
}

/// A few tasks in every status, so that the page (and its screenshot) shows what it is for.
async fn seed(hub: &HubHandle) {
    let tasks = [
        (
            "resize-0041",
            "images.resize",
            TaskStatus::Success,
            json!({"width": 640, "height": 480}),
        ),
        (
            "resize-0042",
            "images.resize",
            TaskStatus::Running,
            json!(null),
        ),
        (
            "email-7731",
            "mail.send_welcome",
            TaskStatus::Pending,
            json!(null),
        ),
        (
            "report-2026-11",
            "reports.monthly",
            TaskStatus::Retrying,
            json!(null),
        ),
        (
            "sync-crm-88",
            "crm.sync_contacts",
            TaskStatus::Failed,
            json!(null),
        ),
        (
            "thumb-5521",
            "images.thumbnail",
            TaskStatus::Success,
            json!("s3://thumbs/5521.webp"),
        ),
    ];
    for (minute, (id, name, status, result)) in tasks.into_iter().enumerate() {
        let mut record = TaskResult::new(id, status)
            .with_task_name(name)
            .with_submitted_at(submitted(minute as u32))
            .with_result(result);
        if status == TaskStatus::Failed {
            record = record.with_error("ConnectionError: crm.example unreachable");
        }
        if status == TaskStatus::Retrying {
            record.retries = 2;
        }
        hub.store(id, record).await.unwrap();
    }
}

/// Saves a screenshot of the page in `target/test-artifacts/`.
async fn screenshot(client: &Client, name: &str) {
    client
        .execute("window.scrollTo(0, 0); return true;", vec![])
        .await
        .unwrap();
    let png = client.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    let artifacts = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .map(|target| target.join("test-artifacts"))
        .unwrap_or_else(|| PathBuf::from("target/test-artifacts"));
    std::fs::create_dir_all(&artifacts).unwrap();
    let path = artifacts.join(name);
    std::fs::write(&path, &png).unwrap();
    println!("screenshot: {}", path.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_tasks_live_in_a_real_browser() {
    if !browser_available() {
        return;
    }
    let hub = HubHandle::spawn(HubConfig::default());
    seed(&hub).await;
    let options = WebOptions {
        token: Some(TOKEN.to_owned()),
        ..WebOptions::default()
    };
    let server = TestServer::start(hub.clone(), options);
    let driver = Chromedriver::start();
    let client = driver.connect().await;

    // Without the token the page is refused.
    within_for(
        STEP,
        "the page without a token",
        client.goto(&server.url("")),
    )
    .await
    .unwrap();
    assert!(text(&client, "body").await.contains("missing token"));

    within_for(
        STEP,
        "the page",
        client.goto(&server.url(&format!("?token={TOKEN}"))),
    )
    .await
    .unwrap();
    appears(&client, "#conn[data-state='live']").await;
    reads(&client, "#count-success", "2").await;
    appears(&client, &row("sync-crm-88")).await;
    // Marks this page load: a reload would lose it.
    client
        .execute("window.__sameLoad = true; return true;", vec![])
        .await
        .unwrap();

    // A task stored through the handle appears, then changes status, live.
    let id = "browser-task-1";
    let status_of = format!("{} td.status", row(id));
    let record = |status| {
        TaskResult::new(id, status)
            .with_task_name("video.transcode")
            .with_submitted_at(submitted(30))
    };
    hub.store(id, record(TaskStatus::Pending)).await.unwrap();
    reads(&client, &status_of, "pending").await;
    hub.store(id, record(TaskStatus::Running)).await.unwrap();
    reads(&client, &status_of, "running").await;
    reads(&client, "#count-running", "2").await;
    hub.store(
        id,
        record(TaskStatus::Success).with_result(json!({"frames": 1440})),
    )
    .await
    .unwrap();
    reads(&client, &status_of, "success").await;
    reads(&client, "#count-success", "3").await;
    reads(&client, "#count-running", "1").await;
    // The newest change is on top.
    assert_eq!(text(&client, "#tasks tbody tr:first-child td.id").await, id);

    // The detail view of one record, kept current by the events.
    client
        .find(Locator::Css(&row(id)))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    appears(&client, "#detail:not([hidden])").await;
    reads(&client, "#detail-title", id).await;
    within_for(STEP, "the record in the detail view", async {
        while !text(&client, "#detail-json")
            .await
            .contains("\"frames\": 1440")
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;

    // The picture for the README: counts, the live feed, one record's detail.
    screenshot(&client, "dashboard.png").await;

    // Filter by status: the hub's page of that status.
    client
        .find(Locator::Css("#filter"))
        .await
        .unwrap()
        .select_by_value("failed")
        .await
        .unwrap();
    reads(&client, "#table-title", "Tasks: failed").await;
    reads(&client, "#page-info", "1–1 of 1").await;
    appears(&client, &row("sync-crm-88")).await;
    assert!(client.find(Locator::Css(&row(id))).await.is_err());

    // Paging, live: 25 more successes make two pages of 20.
    client
        .find(Locator::Css("#limit"))
        .await
        .unwrap()
        .select_by_value("20")
        .await
        .unwrap();
    client
        .find(Locator::Css("#filter"))
        .await
        .unwrap()
        .select_by_value("success")
        .await
        .unwrap();
    reads(&client, "#page-info", "1–3 of 3").await;
    for n in 0..25 {
        let batch = format!("batch-{n:02}");
        let record = TaskResult::new(&batch, TaskStatus::Success)
            .with_task_name("batch.item")
            .with_submitted_at(submitted(40) + chrono::Duration::seconds(n));
        hub.store(&batch, record).await.unwrap();
    }
    reads(&client, "#page-info", "1–20 of 28").await;
    reads(&client, "#tasks tbody tr:first-child td.id", "batch-24").await;
    client
        .find(Locator::Css("#next"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    reads(&client, "#page-info", "21–28 of 28").await;
    reads(&client, "#tasks tbody tr:last-child td.id", "resize-0041").await;

    // Back to the live feed, where a delete shows as a removed row.
    client
        .find(Locator::Css("#filter"))
        .await
        .unwrap()
        .select_by_value("")
        .await
        .unwrap();
    reads(&client, "#table-title", "Recent tasks").await;
    client
        .find(Locator::Css("#limit"))
        .await
        .unwrap()
        .select_by_value("50")
        .await
        .unwrap();
    reads(&client, "#page-info", "1–32 of 32").await;
    assert!(hub.delete("email-7731").await.unwrap());
    appears(&client, &format!("{}.removed", row("email-7731"))).await;
    reads(
        &client,
        &format!("{} td.status", row("email-7731")),
        "deleted",
    )
    .await;
    client
        .find(Locator::Css(&row("sync-crm-88")))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    reads(&client, "#detail-title", "sync-crm-88").await;
    within_for(STEP, "the failed record in the detail view", async {
        while !text(&client, "#detail-fields")
            .await
            .contains("ConnectionError")
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;

    let same_load = client
        .execute("return window.__sameLoad === true;", vec![])
        .await
        .unwrap();
    assert_eq!(
        same_load,
        json!(true),
        "every change came live, without a reload"
    );

    screenshot(&client, "dashboard-end.png").await;
    let _ = client.close().await;
    drop(driver);
    drop(server);
    hub.shutdown().await;
}
