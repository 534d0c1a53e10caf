//! The REST routes and the page. Each handler checks, in this order: the token (401), whether
//! writes are allowed (403), its input (400, 413, 415), and only then calls the hub. A path the
//! scope does not serve is 404, and a method a route does not serve 405, both after the token.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{FromRequest, HttpRequest, HttpResponse, web};
use futures_util::StreamExt;
use percent_encoding::percent_decode_str;
use serde_json::Value;

use super::auth::{TokenIn, authorize, authorized_query};
use super::error::ApiError;
use super::query::{Query, check_id};
use super::{MAX_BODY_BYTES, WebState, sse};
use crate::{ResultBackend, TaskResult};

type State = web::Data<WebState>;
type Answer = Result<HttpResponse, ApiError>;

/// The page: one file, no build step, nothing loaded from elsewhere.
const DASHBOARD: &str = include_str!("dashboard.html");

/// Everything the page may do: its own inline script and style, and calls to its own origin.
const DASHBOARD_CSP: &str = "default-src 'none'; script-src 'unsafe-inline'; \
    style-src 'unsafe-inline'; connect-src 'self'; img-src data:; base-uri 'none'; \
    form-action 'none'; frame-ancestors 'none'";

pub(super) fn register(config: &mut web::ServiceConfig, state: State) {
    config
        .app_data(state)
        .service(
            // "" is the scope's own path (`/hub`), "/" the same with a slash (`/hub/`).
            web::resource(["", "/"])
                .route(web::get().to(dashboard))
                .default_service(web::to(method_not_allowed)),
        )
        .service(
            web::resource("/tasks")
                .route(web::get().to(list))
                .default_service(web::to(method_not_allowed)),
        )
        .service(
            web::resource("/tasks/{id}")
                .route(web::get().to(get_task))
                .route(web::post().to(store_task))
                .route(web::delete().to(delete_task))
                .default_service(web::to(method_not_allowed)),
        )
        .service(
            web::resource("/tasks/{id}/wait")
                .route(web::get().to(wait_task))
                .default_service(web::to(method_not_allowed)),
        )
        .service(
            web::resource("/stats")
                .route(web::get().to(stats))
                .default_service(web::to(method_not_allowed)),
        )
        .service(
            web::resource("/events")
                .route(web::get().to(sse::events))
                .default_service(web::to(method_not_allowed)),
        )
        // Any other path under the scope: a JSON 404, after the token.
        .default_service(web::to(not_found));
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
    check_id(&state.hub, &id).await?;
    Ok(id)
}

fn writes_allowed(state: &WebState) -> Result<(), ApiError> {
    if state.options.allow_writes {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "writes are disabled: this hub's web options do not set allow_writes",
        ))
    }
}

async fn dashboard(request: HttpRequest, state: State) -> Answer {
    authorized_query(&request, &state.options, TokenIn::HeaderOrQuery)?;
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(DASHBOARD_CSP),
        ))
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
    match state.hub.get(&id).await? {
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
    let record = state.hub.wait_for(&id, Some(timeout)).await?;
    Ok(HttpResponse::Ok().json(record))
}

async fn list(request: HttpRequest, state: State) -> Answer {
    let query = authorized_query(&request, &state.options, TokenIn::Header)?;
    let status = query.status()?;
    let limit = query.limit(&state.options)?;
    let cursor = query.cursor()?;
    let offset = query.offset()?;
    // A page from the start or after a cursor also says where the next one starts; a page
    // at an offset (and an empty page) does not.
    let by_position = offset == 0 && limit > 0;
    let page = async {
        if by_position {
            let page = state.hub.list_page(status, limit, cursor.as_ref()).await?;
            Ok((page.records, page.next))
        } else {
            let items = state
                .hub
                .list_by_status(status, Some(limit), offset)
                .await?;
            Ok::<_, crate::BackendError>((items, None))
        }
    };
    // Both queued at once, so the total is counted right after the page, in the hub's order.
    let (page, stats) = futures_util::join!(page, state.hub.stats());
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
    let stats = state.hub.stats().await?;
    let mut body = serde_json::to_value(stats)
        .map_err(|error| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, error.to_string()))?;
    // The paging bounds, for the page (and any client) to ask for pages that fit.
    if let Value::Object(fields) = &mut body {
        let options = &state.options;
        fields.insert("max_limit".to_owned(), options.max_limit.into());
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
    if state.hub.delete(&id).await? {
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
    let stored = state.hub.store_merged(&id, record).await?;
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

async fn method_not_allowed(request: HttpRequest, state: State) -> Answer {
    authorized_only(&request, &state)?;
    Err(ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{} is not served here", request.method()),
    ))
}

async fn not_found(request: HttpRequest, state: State) -> Answer {
    authorized_only(&request, &state)?;
    Err(ApiError::new(
        StatusCode::NOT_FOUND,
        format!("no route for {} {}", request.method(), request.path()),
    ))
}
