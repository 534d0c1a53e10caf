//! The REST routes and the page. Each handler checks, in this order: the token (401), whether
//! writes are allowed (403), its input (400, 413, 415), and only then calls the hub. A path the
//! scope does not serve is 404, and a method a route does not serve 405, both after the token.

use std::sync::{Arc, LazyLock};

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{FromRequest, HttpRequest, HttpResponse, middleware, web};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use futures_util::StreamExt;
use percent_encoding::percent_decode_str;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::auth::{TokenIn, authorize, authorized_query};
use super::error::ApiError;
use super::query::{Query, check_id};
use super::{MAX_BODY_BYTES, WebState, sse};
use crate::TaskResult;

type State = web::Data<WebState>;
type Answer = Result<HttpResponse, ApiError>;

/// The page: one file, no build step, nothing loaded from elsewhere.
const DASHBOARD: &str = include_str!("dashboard.html");

/// Everything the page may do: run its own script and style (named by their SHA-256, so an
/// injected one cannot run) and call its own origin.
static DASHBOARD_CSP: LazyLock<HeaderValue> = LazyLock::new(|| {
    let policy = format!(
        "default-src 'none'; script-src '{}'; style-src '{}'; connect-src 'self'; \
         img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        inline_hash(DASHBOARD, "script"),
        inline_hash(DASHBOARD, "style"),
    );
    HeaderValue::from_str(&policy)
        .unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'"))
});

/// `sha256-<base64>` of the text of the page's one `<tag>` element, as a CSP source.
fn inline_hash(page: &str, tag: &str) -> String {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let text = page
        .split_once(&open)
        .and_then(|(_, rest)| rest.split_once(&close))
        .map_or("", |(text, _)| text);
    format!("sha256-{}", BASE64.encode(Sha256::digest(text.as_bytes())))
}

/// Methods each resource serves, for the `Allow` of a 405.
const READ_ONLY: &str = "GET, HEAD";
const READ_WRITE: &str = "GET, HEAD, POST, DELETE";

pub(super) fn register(config: &mut web::ServiceConfig, state: State) {
    // One scope of the mount point's own path, so that every answer, the stream's included,
    // says its type is not to be sniffed.
    let metrics = Arc::clone(&state.metrics);
    let scope = web::scope("")
        .app_data(state)
        .wrap(middleware::DefaultHeaders::new().add((header::X_CONTENT_TYPE_OPTIONS, "nosniff")))
        // Outermost: every answer is counted, refusals by the layers inside included.
        .wrap_fn(move |request, service| {
            let metrics = Arc::clone(&metrics);
            let started = std::time::Instant::now();
            let answer = actix_web::dev::Service::call(service, request);
            async move {
                let response = answer.await?;
                metrics.observe(&response, started.elapsed());
                Ok(response)
            }
        });
    let scope = scope
        // Liveness and readiness answer probes, which bring neither a token nor a known host.
        .service(
            web::resource("/healthz")
                .route(web::get().to(healthz))
                .route(web::head().to(healthz))
                .default_service(not_allowed(READ_ONLY)),
        )
        .service(
            web::resource("/readyz")
                .route(web::get().to(readyz))
                .route(web::head().to(readyz))
                .default_service(not_allowed(READ_ONLY)),
        )
        .service(
            web::resource("/metrics")
                .route(web::get().to(super::metrics::metrics))
                .route(web::head().to(super::metrics::metrics))
                .default_service(not_allowed(READ_ONLY)),
        )
        .service(
            // "" is the scope's own path (`/hub`), "/" the same with a slash (`/hub/`).
            web::resource(["", "/"])
                .route(web::get().to(dashboard))
                .route(web::head().to(dashboard))
                .default_service(not_allowed(READ_ONLY)),
        )
        .service(
            web::resource("/tasks")
                .route(web::get().to(list))
                .route(web::head().to(list))
                .default_service(not_allowed(READ_ONLY)),
        )
        .service(
            web::resource("/tasks/{id}")
                .route(web::get().to(get_task))
                .route(web::head().to(get_task))
                .route(web::post().to(store_task))
                .route(web::delete().to(delete_task))
                .default_service(not_allowed(READ_WRITE)),
        )
        .service(
            web::resource("/tasks/{id}/wait")
                .route(web::get().to(wait_task))
                .route(web::head().to(wait_task))
                .default_service(not_allowed(READ_ONLY)),
        )
        .service(
            web::resource("/stats")
                .route(web::get().to(stats))
                .route(web::head().to(stats))
                .default_service(not_allowed(READ_ONLY)),
        )
        .service(
            web::resource("/events")
                .route(web::get().to(sse::events))
                .route(web::head().to(sse::events_head))
                .default_service(not_allowed(READ_ONLY)),
        )
        // Any other path under the scope: a JSON 404, after the token.
        .default_service(web::to(not_found));
    config.service(scope);
}

/// The `{id}` of the path, percent-decoded and within the id limit.
async fn task_id(request: &HttpRequest, state: &WebState) -> Result<String, ApiError> {
    let id = web::Path::<String>::extract(request)
        .await
        .map_err(|error| ApiError::bad_request(format!("bad task id in the path: {error}")))?
        .into_inner();
    // actix decodes the path lossily: a byte sequence that is not UTF-8 (`%FF`) arrives as
    // U+FFFD, which would name another task. A U+FFFD sent as such (`%EF%BF%BD`) is fine.
    // A `%` not followed by two hex digits is kept as it is, not refused.
    if id.contains('\u{FFFD}')
        && percent_decode_str(request.uri().path())
            .decode_utf8()
            .is_err()
    {
        return Err(ApiError::bad_request(
            "the task id in the path is not UTF-8 once percent-decoded",
        ));
    }
    check_id(state.backend.as_ref(), &id).await?;
    Ok(id)
}

fn writes_allowed(state: &WebState) -> Result<(), ApiError> {
    let options = &state.options;
    if !options.allow_writes {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "writes are disabled: this server's web options do not set allow_writes",
        ));
    }
    // With neither a token nor a host list, any page a browser opens could write here.
    if options.token.is_none() && options.any_host() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "writes without a token need allowed_hosts to name this server's hosts (it is \"*\")",
        ));
    }
    Ok(())
}

/// The process answers: nothing else is checked (that is `/readyz`'s job).
async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

/// The backend answers within a few seconds: 200, else 503 with `Retry-After`.
async fn readyz(state: State) -> Answer {
    const WITHIN: std::time::Duration = std::time::Duration::from_secs(2);
    match tokio::time::timeout(WITHIN, state.backend.ready()).await {
        Ok(Ok(_)) => Ok(HttpResponse::Ok().json(serde_json::json!({ "status": "ready" }))),
        Ok(Err(error)) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the backend is not ready: {error}"),
        )),
        Err(_) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the backend did not answer within {WITHIN:?}"),
        )),
    }
}

async fn dashboard(request: HttpRequest, state: State) -> Answer {
    authorized_query(&request, &state.options, TokenIn::HeaderOrQuery)?;
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CONTENT_SECURITY_POLICY, DASHBOARD_CSP.clone()))
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .insert_header((
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .body(DASHBOARD))
}

async fn get_task(request: HttpRequest, state: State) -> Answer {
    authorized_query(&request, &state.options, TokenIn::Header)?;
    let id = task_id(&request, &state).await?;
    match state.backend.get(&id).await? {
        Some(record) => Ok(HttpResponse::Ok().json(record)),
        None => Err(ApiError::not_found(&id)),
    }
}

async fn wait_task(request: HttpRequest, state: State) -> Answer {
    let query = authorized_query(&request, &state.options, TokenIn::Header)?;
    let id = task_id(&request, &state).await?;
    let timeout = query.timeout(&state.options)?;
    // Dropping this future cancels the waiter: actix does so when the client hangs up, if
    // the server does not allow half-closed connections (see the module docs).
    let record = state.backend.wait_for(&id, Some(timeout)).await?;
    Ok(HttpResponse::Ok().json(record))
}

async fn list(request: HttpRequest, state: State) -> Answer {
    let query = authorized_query(&request, &state.options, TokenIn::Header)?;
    let status = query.status()?;
    let limit = query.limit(&state.options)?;
    let cursor = query.cursor()?;
    let offset = query.offset()?;
    // Where the listing starts, if that is an offset: every record before it is read.
    let start = cursor
        .as_ref()
        .and_then(|cursor| cursor.offset().ok())
        .unwrap_or(offset);
    if start > state.options.max_offset {
        return Err(ApiError::bad_request(format!(
            "a listing starts at most at position {} (max_offset), not {start}: narrow it \
             (another status) or page from the start",
            state.options.max_offset
        )));
    }
    // A page from the start or after a cursor also says where the next one starts; a page
    // at an offset (and an empty page) does not.
    let by_position = offset == 0 && limit > 0;
    let page = async {
        if by_position {
            let page = state
                .backend
                .list_page(status, limit, cursor.as_ref())
                .await?;
            Ok((page.records, page.next))
        } else {
            let items = state
                .backend
                .list_by_status(status, Some(limit), offset)
                .await?;
            Ok::<_, crate::BackendError>((items, None))
        }
    };
    // Both queued at once, so the total is counted right after the page, in the hub's order.
    let (page, stats) = futures_util::join!(page, state.backend.stats());
    let (items, next) = page?;
    let total = stats?.by_status.get(status);
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "items": items,
        "status": status,
        "limit": limit,
        "offset": offset,
        "next": next,
        "total": total,
    })))
}

async fn stats(request: HttpRequest, state: State) -> Answer {
    authorized_query(&request, &state.options, TokenIn::Header)?;
    let stats = state.backend.stats().await?;
    let mut body = serde_json::to_value(stats)
        .map_err(|error| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, error.to_string()))?;
    // The paging bounds, for the page (and any client) to ask for pages that fit.
    if let Value::Object(fields) = &mut body {
        let options = &state.options;
        fields.insert("max_limit".to_owned(), options.max_limit.into());
        // Whether the page may offer to delete: what `writes_allowed` would let through.
        fields.insert(
            "allow_writes".to_owned(),
            writes_allowed(&state).is_ok().into(),
        );
        fields.insert(
            "default_limit".to_owned(),
            options.default_limit.min(options.max_limit).into(),
        );
    }
    Ok(HttpResponse::Ok().json(body))
}

async fn delete_task(request: HttpRequest, state: State) -> Answer {
    authorized_query(&request, &state.options, TokenIn::Header)?;
    writes_allowed(&state)?;
    let id = task_id(&request, &state).await?;
    if state.backend.delete(&id).await? {
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::not_found(&id))
    }
}

async fn store_task(request: HttpRequest, state: State, body: web::Payload) -> Answer {
    authorized_query(&request, &state.options, TokenIn::Header)?;
    writes_allowed(&state)?;
    let id = task_id(&request, &state).await?;
    json_content_type(&request)?;
    let body = read_body(&request, body).await?;
    let record = parse_record(&id, &body)?;
    // The record as stored, task fields merged from the previous one, as `get` returns it:
    // read by the hub in the same step as the store, so no other writer's change shows.
    let stored = state.backend.store_merged(&id, record).await?;
    Ok(HttpResponse::Created().json(stored))
}

/// Refuses with 415 a body that is not declared `application/json` (parameters such as
/// `; charset=utf-8` allowed). A browser sends a cross-origin `text/plain`, form or multipart
/// POST without asking first (no CORS preflight); one that says `application/json` it asks
/// about first (an `OPTIONS` request), which this scope does not allow. So a hostile page cannot forge a write.
fn json_content_type(request: &HttpRequest) -> Result<(), ApiError> {
    let declared = request
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|value| value.to_str().unwrap_or("?"));
    let essence = declared.map(|value| value.split(';').next().unwrap_or("").trim());
    match essence {
        Some(essence) if essence.eq_ignore_ascii_case("application/json") => Ok(()),
        _ => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "the body must be sent as Content-Type: application/json, not {}",
                declared.map_or_else(|| "without one".to_owned(), |value| format!("{value:?}"))
            ),
        )),
    }
}

/// The body, refused with 413 past [`MAX_BODY_BYTES`] (from its declared length when it has
/// one, so that a large upload is not read at all).
async fn read_body(request: &HttpRequest, mut body: web::Payload) -> Result<Vec<u8>, ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the record is over {MAX_BODY_BYTES} bytes"),
        )
    };
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > MAX_BODY_BYTES as u64) {
        return Err(too_large());
    }
    let mut bytes = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk
            .map_err(|error| ApiError::bad_request(format!("could not read the body: {error}")))?;
        if bytes.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(too_large());
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// A record in flowrra's layout; `task_id` may be left out (the path's id is taken), and one
/// that differs from the path is refused.
fn parse_record(id: &str, body: &[u8]) -> Result<TaskResult, ApiError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|error| ApiError::bad_request(format!("the body is not JSON: {error}")))?;
    let Value::Object(mut fields) = value else {
        return Err(ApiError::bad_request(
            "the body must be a JSON object: a task record",
        ));
    };
    match fields.get("task_id") {
        None | Some(Value::Null) => {
            fields.insert("task_id".to_owned(), Value::String(id.to_owned()));
        }
        Some(Value::String(given)) if given == id => {}
        Some(Value::String(given)) => {
            return Err(ApiError::bad_request(format!(
                "the body's task_id {given:?} differs from the path's {id:?}"
            )));
        }
        Some(_) => return Err(ApiError::bad_request("`task_id` must be a string")),
    }
    serde_json::from_value(Value::Object(fields))
        .map_err(|error| ApiError::bad_request(format!("not a task record: {error}")))
}

/// The token of a request that no handler takes: any bad query is left to the 404 or 405.
fn authorized_only(request: &HttpRequest, state: &WebState) -> Result<(), ApiError> {
    let query = Query::parse(request.query_string()).ok();
    authorize(request, query.as_ref(), &state.options, TokenIn::Header)
}

/// 405 with `Allow: allow`, after the token.
fn not_allowed(allow: &'static str) -> actix_web::Route {
    web::to(move |request: HttpRequest, state: State| async move {
        authorized_only(&request, &state)?;
        Err::<HttpResponse, _>(
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("{} is not served here; try {allow}", request.method()),
            )
            .allowing(allow),
        )
    })
}

async fn not_found(request: HttpRequest, state: State) -> Answer {
    authorized_only(&request, &state)?;
    Err(ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no route for {} {}", request.method(), request.path()),
    ))
}
