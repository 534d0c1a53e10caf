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
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
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
        response.json(serde_json::json!({ "error": self.message }))
    }
}

impl From<BackendError> for ApiError {
    fn from(error: BackendError) -> Self {
        let status = match &error {
            BackendError::InvalidInput { .. } => StatusCode::BAD_REQUEST,
            BackendError::Timeout { .. } => StatusCode::REQUEST_TIMEOUT,
            BackendError::Conflict { .. } => StatusCode::CONFLICT,
            BackendError::Overloaded { .. } | BackendError::Unavailable { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            BackendError::Unsupported { .. } => StatusCode::NOT_IMPLEMENTED,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, error.to_string())
    }
}
