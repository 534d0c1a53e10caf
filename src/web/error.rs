//! The one error every route answers with: a status and a JSON body `{"error": "..."}`.

use std::fmt;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};

use crate::BackendError;

/// A refused request: its status and a message that names the problem.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    message: String,
    /// The methods a 405's resource serves.
    allow: Option<&'static str>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            allow: None,
        }
    }

    /// Names, in an `Allow` header, the methods the resource serves.
    pub(crate) fn allowing(mut self, methods: &'static str) -> Self {
        self.allow = Some(methods);
        self
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub(crate) fn not_found(task_id: &str) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, format!("no task {task_id:?}"))
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        if self.status == StatusCode::UNAUTHORIZED {
            response.insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
        }
        if let Some(methods) = self.allow {
            response.insert_header((header::ALLOW, HeaderValue::from_static(methods)));
        }
        error_body(&mut response, self.status, &self.message)
    }
}

impl From<BackendError> for ApiError {
    fn from(error: BackendError) -> Self {
        ApiError::new(status_of(&error), error.to_string())
    }
}

/// The JSON body `{"error": message}`; a 503 also says when to try again (`Retry-After`), and
/// every error that its body is JSON only (`nosniff`).
fn error_body(
    response: &mut actix_web::HttpResponseBuilder,
    status: StatusCode,
    message: &str,
) -> HttpResponse {
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response.insert_header((header::RETRY_AFTER, HeaderValue::from_static("1")));
    }
    response
        .insert_header((
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .json(serde_json::json!({ "error": message }))
}

/// The status each error answers with, on the crate's routes and in users' own handlers.
fn status_of(error: &BackendError) -> StatusCode {
    match error {
        BackendError::InvalidInput { .. } => StatusCode::BAD_REQUEST,
        BackendError::Timeout { .. } => StatusCode::REQUEST_TIMEOUT,
        BackendError::Conflict { .. } => StatusCode::CONFLICT,
        BackendError::Overloaded { .. } | BackendError::Unavailable { .. } => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        BackendError::Unsupported { .. } => StatusCode::NOT_IMPLEMENTED,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// Lets an actix-web handler of the user's own return a backend's error with `?`: it answers
/// with the status and the JSON body `{"error": "..."}` the crate's own routes use.
///
/// ```
/// use actix_web::{HttpResponse, web};
/// use resulthub::{BackendError, HubHandle, ResultBackend};
///
/// async fn result_of(
///     hub: web::Data<HubHandle>,
///     id: web::Path<String>,
/// ) -> Result<HttpResponse, BackendError> {
///     let record = hub.get(&id).await?;
///     Ok(HttpResponse::Ok().json(record))
/// }
/// ```
impl ResponseError for BackendError {
    fn status_code(&self) -> StatusCode {
        status_of(self)
    }

    fn error_response(&self) -> HttpResponse {
        let status = status_of(self);
        error_body(&mut HttpResponse::build(status), status, &self.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Limit, TaskStatus};

    #[actix_rt::test]
    async fn backend_errors_answer_with_the_routes_status_and_body() {
        let cases = [
            (BackendError::invalid("bad"), StatusCode::BAD_REQUEST),
            (
                BackendError::overloaded(Limit::MaxWaiters, 1, 1, "full".to_owned()),
                StatusCode::SERVICE_UNAVAILABLE,
            ),
            (
                BackendError::Conflict {
                    task_id: "t".to_owned(),
                    status: TaskStatus::Success,
                },
                StatusCode::CONFLICT,
            ),
            (
                BackendError::Unsupported { operation: "clear" },
                StatusCode::NOT_IMPLEMENTED,
            ),
            (
                BackendError::Internal {
                    reason: "bug".to_owned(),
                },
                StatusCode::INTERNAL_SERVER_ERROR,
            ),
        ];
        for (error, status) in cases {
            let message = error.to_string();
            let response = error.error_response();
            assert_eq!(response.status(), status, "{message}");
            let body = actix_web::body::to_bytes(response.into_body())
                .await
                .unwrap();
            let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(body, serde_json::json!({ "error": message }));
            let routed = ApiError::from(BackendError::invalid("bad"));
            assert_eq!(routed.status_code(), StatusCode::BAD_REQUEST);
        }
    }
}
