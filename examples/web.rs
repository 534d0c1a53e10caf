//! An actix-web server with the hub's REST routes, live events and dashboard under `/hub`,
//! and simulated workers that keep tasks flowing through it.
//!
//! ```sh
//! cargo run --example web --features web                 # then open http://127.0.0.1:8080/hub/
//! cargo run --example web --features web -- --addr 127.0.0.1:9000 --token s3cret
//! cargo run --example web --features web -- --smoke      # serve, check a few routes, exit
//! ```
//!
//! With `--token`, open the page as `http://127.0.0.1:8080/hub/?token=s3cret`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use actix::SystemService;
use actix_web::{App, HttpResponse, HttpServer, web};
use resulthub::web::{WebOptions, configure};
use resulthub::{HubHandle, ResultBackend, ResultHub, TaskResult, TaskStatus};
use serde_json::json;

/// How many records the simulation keeps: it deletes the oldest beyond that.
const KEEP: u64 = 300;

struct Args {
    addr: SocketAddr,
    token: Option<String>,
    smoke: bool,
}

fn args() -> Result<Args, String> {
    let mut parsed = Args {
        addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
        token: None,
        smoke: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--addr" => {
                let value = args.next().ok_or("--addr needs HOST:PORT")?;
                parsed.addr = value
                    .parse()
                    .map_err(|error| format!("--addr {value}: {error}"))?;
            }
            "--token" => parsed.token = Some(args.next().ok_or("--token needs a value")?),
            "--smoke" => {
                parsed.smoke = true;
                parsed.addr.set_port(0);
            }
            other => {
                return Err(format!(
                    "unknown argument {other:?}; usage: web [--addr HOST:PORT] [--token TOKEN] [--smoke]"
                ));
            }
        }
    }
    Ok(parsed)
}

#[actix_rt::main]
async fn main() -> std::io::Result<()> {
    let args = match args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };
    // The one hub of this actix System, shared by every worker of the server.
    let hub = HubHandle::from_addr(ResultHub::from_registry());

    // Loopback names, and the address served when it is another one (clients reach the server
    // by it); a name the server is reached by would go here too.
    let mut hosts = WebOptions::default().allowed_hosts;
    hosts.push(args.addr.ip().to_string());
    let options = WebOptions::default()
        .with_allow_writes(true)
        .with_token(args.token.clone())
        .with_allowed_hosts(hosts);
    // Built once, cloned into each of the server's workers: they all serve this one hub.
    let routes = configure(hub.clone(), options);
    let server = HttpServer::new(move || {
        App::new()
            .service(web::scope("/hub").configure(routes.clone()))
            .route(
                "/",
                web::get().to(|| async {
                    HttpResponse::Found()
                        .insert_header(("location", "/hub/"))
                        .finish()
                }),
            )
    })
    // Drop a request whose client hung up, so an abandoned `/wait` gives its waiter back.
    .h1_allow_half_closed(false)
    .workers(2)
    .bind(args.addr)?;
    let addr = server.addrs()[0];
    let server = server.run();

    for worker in 0..4 {
        actix_rt::spawn(simulate(hub.clone(), worker));
    }

    if args.smoke {
        let handle = server.handle();
        actix_rt::spawn(server);
        let token = args.token.clone();
        let checked = actix_rt::task::spawn_blocking(move || smoke(addr, token.as_deref()))
            .await
            .unwrap_or_else(|_| Err("the smoke check panicked".to_owned()));
        handle.stop(false).await;
        return match checked {
            Ok(()) => {
                println!("smoke check passed");
                Ok(())
            }
            Err(message) => {
                eprintln!("smoke check failed: {message}");
                std::process::exit(1);
            }
        };
    }

    let query = args
        .token
        .as_deref()
        .map(|token| format!("?token={token}"))
        .unwrap_or_default();
    println!("dashboard: http://{addr}/hub/{query}   (Ctrl-C to stop)");
    server.await
}

/// One simulated worker: takes a new task every so often and reports its progress.
async fn simulate(hub: HubHandle, worker: u64) {
    let names = [
        "images.resize",
        "mail.send_welcome",
        "reports.monthly",
        "video.transcode",
        "crm.sync_contacts",
    ];
    // A small deterministic generator: the example needs variety, not randomness.
    let mut seed = 0x9E37_79B9_7F4A_7C15_u64 ^ (worker + 1);
    let mut next = move |below: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % below
    };
    for n in 0.. {
        let number = n * 4 + worker;
        let id = format!("task-{number:05}");
        let name = names[next(names.len() as u64) as usize];
        let now = chrono::Utc::now();
        let submitted = TaskResult::new(&id, TaskStatus::Pending)
            .with_task_name(name)
            .with_args(vec![json!(number)])
            .with_submitted_at(now);
        if hub.store(&id, submitted).await.is_err() {
            return; // the hub stopped
        }
        pause(300 + next(1200)).await;
        let mut retries = 0;
        loop {
            let started = chrono::Utc::now();
            let running = TaskResult::new(&id, TaskStatus::Running).with_started_at(started);
            let _ = hub.store(&id, running).await;
            pause(400 + next(2500)).await;
            let roll = next(10);
            let mut done = match roll {
                0 if retries < 2 => TaskResult::new(&id, TaskStatus::Retrying)
                    .with_error("TimeoutError: upstream took too long"),
                1 => TaskResult::new(&id, TaskStatus::Failed)
                    .with_error("ValueError: input could not be parsed"),
                _ => TaskResult::new(&id, TaskStatus::Success)
                    .with_result(json!({"worker": worker, "value": next(1000)})),
            };
            done.retries = retries;
            done = done
                .with_started_at(started)
                .with_finished_at(chrono::Utc::now());
            let status = done.status;
            let _ = hub.store(&id, done).await;
            if status != TaskStatus::Retrying {
                break;
            }
            retries += 1;
            pause(500).await;
        }
        if number >= KEEP {
            let _ = hub.delete(&format!("task-{:05}", number - KEEP)).await;
        }
        pause(next(800)).await;
    }
}

async fn pause(millis: u64) {
    actix_rt::time::sleep(Duration::from_millis(millis)).await;
}

/// Checks a few routes over a real connection: the page, the counts, a task stored and read
/// back, and a bad listing refused with a JSON error.
fn smoke(addr: SocketAddr, token: Option<&str>) -> Result<(), String> {
    let (status, body) = http(addr, "GET", "/hub/", token, None)?;
    expect(
        status == 200 && body.contains("<title>"),
        "GET /hub/",
        status,
        &body,
    )?;
    let (status, body) = http(addr, "GET", "/hub/stats", token, None)?;
    expect(
        status == 200 && body.contains("by_status"),
        "GET /hub/stats",
        status,
        &body,
    )?;
    let record = r#"{"status": "success", "result": {"smoke": true}}"#;
    let (status, body) = http(addr, "POST", "/hub/tasks/smoke-1", token, Some(record))?;
    expect(status == 201, "POST /hub/tasks/smoke-1", status, &body)?;
    let (status, body) = http(
        addr,
        "GET",
        "/hub/tasks/smoke-1/wait?timeout=1",
        token,
        None,
    )?;
    expect(
        status == 200 && body.contains("smoke"),
        "GET .../wait",
        status,
        &body,
    )?;
    let (status, body) = http(
        addr,
        "GET",
        "/hub/tasks?status=success&limit=-1",
        token,
        None,
    )?;
    expect(
        status == 400 && body.contains("\"error\""),
        "a bad limit",
        status,
        &body,
    )?;
    println!(
        "GET /hub/, /hub/stats, POST and wait on /hub/tasks/smoke-1, a bad listing: all as expected"
    );
    Ok(())
}

fn expect(ok: bool, what: &str, status: u16, body: &str) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(format!("{what}: unexpected {status} {body}"))
    }
}

/// One HTTP/1.1 request without keep-alive; returns the status and the body.
fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> Result<(u16, String), String> {
    let mut stream = TcpStream::connect(addr).map_err(|error| error.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|error| error.to_string())?;
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(token) = token {
        request.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    let body = body.unwrap_or("");
    request.push_str(&format!(
        "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    ));
    stream
        .write_all(request.as_bytes())
        .map_err(|error| error.to_string())?;
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .map_err(|error| error.to_string())?;
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("not an HTTP answer: {answer:?}"))?;
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}
