//! The dashboard in a real browser: headless Chromium driven through chromedriver (WebDriver,
//! with fantoccini). Tasks stored through the handle must appear in the table and change
//! status live, without a reload; the counts, the status filter, paging and the detail view
//! must work. A screenshot is kept in `target/test-artifacts/dashboard.png`. With the `server`
//! feature, the same page is also driven as the `resulthub` binary serves it over Redis
//! (`serve --redis`), with tasks stored by another process on the same prefix.
//!
//! Needs Debian's `chromium` and `chromium-driver`. Without them the test prints `SKIPPED`
//! and passes, unless `RESULTHUB_REQUIRE_BROWSER=1` (as `.ci/run` sets), when it fails.
#![cfg(feature = "web")]

mod support;
mod web_support;

use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use chrono::Utc;
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

/// How many ports to try: a port found free may be taken again before chromedriver binds it.
const START_ATTEMPTS: usize = 5;

/// chromedriver on a free port, in a process group of its own, so that dropping this (also
/// while unwinding from a failed assertion) kills it and every Chromium it started.
struct Chromedriver {
    child: Child,
    port: u16,
    profile: PathBuf,
}

impl Chromedriver {
    /// Starts chromedriver on a port that was free a moment ago; if another process took the
    /// port meanwhile, chromedriver exits, and this tries again with another.
    fn start() -> Chromedriver {
        let mut failures = Vec::new();
        for _ in 0..START_ATTEMPTS {
            let port = TcpListener::bind(("127.0.0.1", 0))
                .and_then(|listener| listener.local_addr())
                .expect("a free port")
                .port();
            let profile = std::env::temp_dir()
                .join(format!("resulthub-chromium-{}-{port}", std::process::id()));
            let child = Command::new(CHROMEDRIVER)
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .process_group(0)
                .spawn()
                .expect("start chromedriver");
            // Dropped (killed) on every way out but success.
            let mut driver = Chromedriver {
                child,
                port,
                profile,
            };
            let deadline = Instant::now() + STEP;
            loop {
                if let Ok(Some(status)) = driver.child.try_wait() {
                    failures.push(format!("port {port}: chromedriver exited ({status})"));
                    break;
                }
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return driver;
                }
                assert!(
                    Instant::now() < deadline,
                    "chromedriver did not listen on port {port} within {STEP:?}"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        panic!("chromedriver did not start: {}", failures.join("; "));
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

/// Bounds one WebDriver call (or a few), so that a wedged chromedriver fails the test instead
/// of hanging it.
async fn step<F: std::future::Future>(what: &str, future: F) -> F::Output {
    within_for(STEP, what, future).await
}

/// The text of `css`, or "" when there is none.
async fn text(client: &Client, css: &str) -> String {
    step(&format!("the text of {css}"), async {
        match client.find(Locator::Css(css)).await {
            Ok(element) => element.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    })
    .await
}

/// Whether the element `css` exists right now.
async fn exists(client: &Client, css: &str) -> bool {
    step(
        &format!("looking for {css}"),
        client.find(Locator::Css(css)),
    )
    .await
    .is_ok()
}

async fn click(client: &Client, css: &str) {
    step(&format!("a click on {css}"), async {
        client.find(Locator::Css(css)).await?.click().await
    })
    .await
    .unwrap_or_else(|error| panic!("click on {css}: {error}"));
}

async fn select(client: &Client, css: &str, value: &str) {
    step(&format!("choosing {value:?} in {css}"), async {
        client
            .find(Locator::Css(css))
            .await?
            .select_by_value(value)
            .await
    })
    .await
    .unwrap_or_else(|error| panic!("choose {value:?} in {css}: {error}"));
}

/// Types `keys` into the field `css` (after clearing it).
async fn type_into(client: &Client, css: &str, keys: &str) {
    step(&format!("typing {keys:?} into {css}"), async {
        let field = client.find(Locator::Css(css)).await?;
        field.clear().await?;
        field.send_keys(keys).await
    })
    .await
    .unwrap_or_else(|error| panic!("type into {css}: {error}"));
}

/// Waits until the script returns `true`.
async fn holds(client: &Client, what: &str, script: &str) {
    within_for(STEP, what, async {
        while execute(client, script).await != json!(true) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
}

async fn execute(client: &Client, script: &str) -> serde_json::Value {
    step(
        &format!("the script {script:?}"),
        client.execute(script, vec![]),
    )
    .await
    .unwrap_or_else(|error| panic!("{script}: {error}"))
}

/// Waits until the element `css` exists.
async fn appears(client: &Client, css: &str) {
    within_for(STEP, &format!("{css} to appear"), async {
        while !exists(client, css).await {
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

/// Waits until the text of `css` contains `needle`.
async fn shows(client: &Client, css: &str, needle: &str) {
    within_for(STEP, &format!("{css} to show {needle:?}"), async {
        while !text(client, css).await.contains(needle) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
}

fn row(id: &str) -> String {
    format!("tr[data-task-id='{id}']")
}

/// `minute` minutes into the hour before the test started: in the past, whatever the date.
fn submitted(minute: u32) -> chrono::DateTime<Utc> {
    static START: OnceLock<chrono::DateTime<Utc>> = OnceLock::new();
    *START.get_or_init(|| Utc::now() - chrono::Duration::hours(1))
        + chrono::Duration::minutes(minute.into())
}

/// A few tasks in every status, so that the page (and its screenshot) shows what it is for.
async fn seed<B: ResultBackend>(hub: &B) {
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
    // From a worker whose clock runs a day ahead: the live feed must still put the changes
    // that come after the page loaded above it.
    let skewed = TaskResult::new("skewed-clock-1", TaskStatus::Pending)
        .with_task_name("mail.send_digest")
        .with_submitted_at(Utc::now() + chrono::Duration::days(1));
    hub.store("skewed-clock-1", skewed).await.unwrap();
}

/// Saves a screenshot of the page in `target/test-artifacts/`.
async fn screenshot(client: &Client, name: &str) {
    execute(client, "window.scrollTo(0, 0); return true;").await;
    let png = step("a screenshot", client.screenshot()).await.unwrap();
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
    let options = WebOptions::default()
        .with_token(Some(TOKEN.to_owned()))
        .with_allow_writes(true)
        // Below the page's own choices: it must ask for pages that fit.
        .with_max_limit(50);
    let server = TestServer::start(hub.clone(), options);
    let driver = Chromedriver::start();
    let client = driver.connect().await;

    // Without the token the page is refused.
    step("the page without a token", client.goto(&server.url("")))
        .await
        .unwrap();
    assert!(text(&client, "body").await.contains("missing token"));

    step(
        "the page",
        client.goto(&server.url(&format!("?token={TOKEN}"))),
    )
    .await
    .unwrap();
    appears(&client, "#conn[data-state='live']").await;
    reads(&client, "#count-success", "2").await;
    appears(&client, &row("sync-crm-88")).await;
    // The token is out of the address bar (and the history).
    let href = execute(&client, "return location.href;").await;
    assert!(!href.as_str().unwrap().contains("token"), "{href}");
    // The page sizes it offers fit the hub's max_limit of 50.
    let choices = execute(
        &client,
        "return [...document.querySelectorAll('#limit option')].map((o) => o.value);",
    )
    .await;
    assert_eq!(choices, json!(["20", "50"]));
    // Marks this page load: a reload would lose it.
    execute(&client, "window.__sameLoad = true; return true;").await;

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
        record(TaskStatus::Success)
            .with_result(json!({"frames": 1440}))
            .with_started_at(submitted(30))
            .with_finished_at(submitted(30) + chrono::Duration::milliseconds(1500)),
    )
    .await
    .unwrap();
    reads(&client, &status_of, "success").await;
    // Its runtime, from its own started and finished times.
    reads(&client, &format!("{} td.runtime", row(id)), "1.5 s").await;
    // The chart of completions per second has drawn it (a point above the baseline).
    holds(
        &client,
        "the completion in the rate chart",
        "return document.getElementById('rate-success').getAttribute('points')\
           .split(' ').some((p) => Number(p.split(',')[1]) < 98);",
    )
    .await;
    holds(
        &client,
        "the counts chart drawn",
        "return document.getElementById('counts-success').getAttribute('points') !== '';",
    )
    .await;
    reads(&client, "#count-success", "3").await;
    reads(&client, "#count-running", "1").await;
    // The newest change is on top, above a record whose own clock says it is from tomorrow.
    reads(&client, "#tasks tbody tr:first-child td.id", id).await;
    reads(
        &client,
        "#tasks tbody tr:nth-child(2) td.id",
        "skewed-clock-1",
    )
    .await;

    // The detail view of one record, kept current by the events.
    click(&client, &row(id)).await;
    appears(&client, "#detail:not([hidden])").await;
    reads(&client, "#detail-title", id).await;
    shows(&client, "#detail-json", "\"frames\": 1440").await;

    // The picture for the README: counts, charts, the live feed, one record's detail.
    screenshot(&client, "dashboard.png").await;

    // Search by task name (any case) and by id; Enter opens an id the feed does not show.
    type_into(&client, "#search", "CRM").await;
    appears(&client, &row("sync-crm-88")).await;
    within_for(STEP, "rows without crm hidden", async {
        while exists(&client, &row(id)).await {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    type_into(&client, "#search", "browser-task").await;
    appears(&client, &row(id)).await;
    assert!(!exists(&client, &row("sync-crm-88")).await);
    type_into(&client, "#search", "sync-crm-88\u{E007}").await;
    reads(&client, "#detail-title", "sync-crm-88").await;
    type_into(&client, "#search", "").await;
    appears(&client, &row(id)).await;

    // Filter by status: the hub's page of that status.
    select(&client, "#filter", "failed").await;
    reads(&client, "#table-title", "Tasks: failed").await;
    reads(&client, "#page-info", "1–1 of 1").await;
    appears(&client, &row("sync-crm-88")).await;
    assert!(!exists(&client, &row(id)).await);

    // Under a steady stream of events (one every 20 ms, far more than the page's 200 ms
    // refresh), the filtered page still refreshes: a failed task stored meanwhile shows.
    let noisy = hub.clone();
    let noise = tokio::spawn(async move {
        for n in 0u64.. {
            let record = TaskResult::new("noise", TaskStatus::Running).with_result(json!(n));
            noisy.store("noise", record).await.unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let late = TaskResult::new("failed-live", TaskStatus::Failed)
        .with_task_name("crm.sync_contacts")
        .with_submitted_at(submitted(35))
        .with_error("TimeoutError");
    hub.store("failed-live", late).await.unwrap();
    appears(&client, &row("failed-live")).await;
    reads(&client, "#page-info", "1–2 of 2").await;
    noise.abort();
    let _ = noise.await;

    // Paging, live: 25 more successes make two pages of 20.
    select(&client, "#limit", "20").await;
    select(&client, "#filter", "success").await;
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
    click(&client, "#next").await;
    reads(&client, "#page-info", "21–28 of 28").await;
    reads(&client, "#tasks tbody tr:last-child td.id", "resize-0041").await;

    // Back to the live feed, where a delete shows as a removed row.
    select(&client, "#filter", "").await;
    reads(&client, "#table-title", "Recent tasks").await;
    select(&client, "#limit", "50").await;
    // 7 seeded, browser-task-1, noise, failed-live, 25 batches.
    reads(&client, "#page-info", "1–35 of 35").await;
    assert!(hub.delete("email-7731").await.unwrap());
    appears(&client, &format!("{}.removed", row("email-7731"))).await;
    reads(
        &client,
        &format!("{} td.status", row("email-7731")),
        "deleted",
    )
    .await;
    click(&client, &row("sync-crm-88")).await;
    reads(&client, "#detail-title", "sync-crm-88").await;
    shows(&client, "#detail-fields", "ConnectionError").await;

    // Ids a browser would take for path segments still show their own detail.
    for (dots, result) in [("..", "two dots"), (".", "one dot")] {
        let record = TaskResult::new(dots, TaskStatus::Success).with_result(json!(result));
        hub.store(dots, record).await.unwrap();
        appears(&client, &row(dots)).await;
        click(&client, &row(dots)).await;
        reads(&client, "#detail-title", dots).await;
        shows(
            &client,
            "#detail-json",
            &format!("\"result\": \"{result}\""),
        )
        .await;
        assert_eq!(text(&client, "#detail-state").await, "");
    }

    // With writes allowed, the detail view deletes its record, after a second click.
    click(&client, &row("resize-0041")).await;
    reads(&client, "#detail-title", "resize-0041").await;
    click(&client, "#detail-delete").await;
    reads(&client, "#detail-delete", "Confirm delete").await;
    assert!(
        hub.get("resize-0041").await.unwrap().is_some(),
        "one click deletes nothing"
    );
    click(&client, "#detail-delete").await;
    shows(&client, "#detail-state", "This record was deleted").await;
    assert_eq!(hub.get("resize-0041").await.unwrap(), None);

    let same_load = execute(&client, "return window.__sameLoad === true;").await;
    assert_eq!(
        same_load,
        json!(true),
        "every change came live, without a reload"
    );
    screenshot(&client, "dashboard-end.png").await;

    // The hub stops: /events ends and is then refused (503), which ends an EventSource for
    // good. The page says so, and keeps trying with a growing delay.
    hub.shutdown().await;
    appears(&client, "#conn[data-state='offline']").await;
    shows(&client, "#notice", "unavailable").await;
    shows(&client, "#notice", "(attempt 2)").await;

    let _ = step("closing the session", client.close()).await;
    drop(driver);
    drop(server);
}

/// The `resulthub` binary serving a Redis prefix (`serve --redis`), killed on drop.
#[cfg(all(feature = "server", feature = "redis"))]
struct ServedOverRedis {
    child: Child,
    addr: std::net::SocketAddr,
}

#[cfg(all(feature = "server", feature = "redis"))]
impl ServedOverRedis {
    fn start(redis_url: &str, token_file: &Path) -> ServedOverRedis {
        let addr = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port");
        let child = Command::new(env!("CARGO_BIN_EXE_resulthub"))
            .args(["serve", "--bind", &addr.to_string(), "--redis", redis_url])
            .args(["--allow-writes", "--stats-interval", "100ms"])
            .arg("--token-file")
            .arg(token_file)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start resulthub serve --redis");
        let served = ServedOverRedis { child, addr };
        let deadline = Instant::now() + STEP;
        while TcpStream::connect(addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "resulthub serve --redis never listened"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        served
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}/{path}", self.addr)
    }
}

#[cfg(all(feature = "server", feature = "redis"))]
impl Drop for ServedOverRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The page as `resulthub serve --redis` serves it, over records another process (a worker)
/// stores in Redis: counts, live completions with their runtime and in the chart, search,
/// the status filter, and a delete from the detail view.
#[cfg(all(feature = "server", feature = "redis"))]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_served_by_the_binary_over_redis() {
    if !browser_available() {
        return;
    }
    let Some(server) = web_support::redis_server::RedisServer::start() else {
        return;
    };
    // The workers' side: another process as far as the server can tell.
    let worker = within_for(
        STEP,
        "connect",
        resulthub::RedisBackend::connect(&server.url()),
    )
    .await
    .expect("connect");
    seed(&worker).await;
    let dir = std::env::temp_dir().join(format!("resulthub-browser-redis-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let token_file = dir.join("token");
    std::fs::write(&token_file, TOKEN).unwrap();
    let served = ServedOverRedis::start(&server.url(), &token_file);
    let driver = Chromedriver::start();
    let client = driver.connect().await;

    step(
        "the page",
        client.goto(&served.url(&format!("?token={TOKEN}"))),
    )
    .await
    .unwrap();
    appears(&client, "#conn[data-state='live']").await;
    reads(&client, "#count-success", "2").await;
    reads(&client, "#count-pending", "2").await;
    appears(&client, &row("sync-crm-88")).await;
    execute(&client, "window.__sameLoad = true; return true;").await;

    // A worker finishes a task: its completion reaches the page live, with the record.
    let id = "redis-task-1";
    let done = TaskResult::new(id, TaskStatus::Success)
        .with_task_name("video.transcode")
        .with_submitted_at(submitted(30))
        .with_started_at(submitted(30))
        .with_finished_at(submitted(30) + chrono::Duration::milliseconds(1500))
        .with_result(json!({"frames": 1440}));
    worker.store(id, done).await.unwrap();
    let status_of = format!("{} td.status", row(id));
    reads(&client, &status_of, "success").await;
    reads(&client, &format!("{} td.runtime", row(id)), "1.5 s").await;
    holds(
        &client,
        "the completion in the rate chart",
        "return document.getElementById('rate-success').getAttribute('points')\
           .split(' ').some((p) => Number(p.split(',')[1]) < 98);",
    )
    .await;
    reads(&client, "#count-success", "3").await;
    reads(&client, "#tasks tbody tr:first-child td.id", id).await;

    // Search by task name and by id.
    type_into(&client, "#search", "CRM").await;
    appears(&client, &row("sync-crm-88")).await;
    within_for(STEP, "rows without crm hidden", async {
        while exists(&client, &row(id)).await {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    type_into(&client, "#search", "sync-crm-88\u{E007}").await;
    reads(&client, "#detail-title", "sync-crm-88").await;
    type_into(&client, "#search", "").await;
    appears(&client, &row(id)).await;

    // The status filter: a page of the prefix's failed records.
    select(&client, "#filter", "failed").await;
    reads(&client, "#page-info", "1–1 of 1").await;
    appears(&client, &row("sync-crm-88")).await;
    select(&client, "#filter", "").await;
    reads(&client, "#table-title", "Recent tasks").await;

    // With writes allowed, the detail view deletes the record from Redis.
    click(&client, &row("resize-0041")).await;
    reads(&client, "#detail-title", "resize-0041").await;
    click(&client, "#detail-delete").await;
    reads(&client, "#detail-delete", "Confirm delete").await;
    click(&client, "#detail-delete").await;
    shows(&client, "#detail-state", "This record was deleted").await;
    assert_eq!(worker.get("resize-0041").await.unwrap(), None);
    reads(&client, "#count-success", "2").await;

    let same_load = execute(&client, "return window.__sameLoad === true;").await;
    assert_eq!(
        same_load,
        json!(true),
        "every change came live, without a reload"
    );
    screenshot(&client, "dashboard-redis.png").await;
    let _ = step("closing the session", client.close()).await;
    drop(driver);
    drop(served);
    let _ = std::fs::remove_dir_all(&dir);
}
