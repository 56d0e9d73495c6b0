//! Errors → HTTP: every refusal is a JSON body `{"error": {"code", "message", "field"}}` naming the
//! field at fault; bad input is always a 4xx, a 5xx only means the store or the server failed.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::error::Error;

/// A refusal or failure of a request.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The status.
    pub status: StatusCode,
    /// A stable machine-readable code (`invalid_field`, `unknown_session`, …).
    pub code: &'static str,
    /// The JSON path (or path / query parameter) at fault, when one is.
    pub field: Option<String>,
    /// What is wrong, for a person.
    pub message: String,
}

impl ApiError {
    /// 400: `field` is malformed.
    pub fn bad(field: &str, message: impl Into<String>) -> Self {
        ApiError { status: StatusCode::BAD_REQUEST, code: "invalid_field", field: Some(field.to_string()), message: message.into() }
    }

    /// 413: `field` (or the body) is over its size limit.
    pub fn too_large(field: &str, message: impl Into<String>) -> Self {
        ApiError { status: StatusCode::PAYLOAD_TOO_LARGE, code: "too_large", field: Some(field.to_string()), message: message.into() }
    }

    /// 401: no or a wrong bearer token.
    pub fn unauthorized() -> Self {
        ApiError {
            status: StatusCode::UNAUTHORIZED,
            code: "unauthorized",
            field: Some("Authorization".into()),
            message: "this server needs `Authorization: Bearer <token>`".into(),
        }
    }

    /// 503: the server is shutting down or out of workers.
    pub fn unavailable(message: impl Into<String>) -> Self {
        ApiError { status: StatusCode::SERVICE_UNAVAILABLE, code: "unavailable", field: None, message: message.into() }
    }

    /// Sets the field at fault.
    pub fn at(mut self, field: &str) -> Self {
        self.field = Some(field.to_string());
        self
    }

    /// Whether the store (not the request) failed: counted as a store error in the metrics.
    pub fn is_store_error(&self) -> bool {
        self.code.starts_with("store")
    }

    /// Maps a library error; `field` names what the request gave that the error is about.
    pub fn from_lib(e: Error, field: Option<&str>) -> Self {
        let (status, code, field) = match &e {
            Error::InvalidSessionId { .. } => (StatusCode::BAD_REQUEST, "invalid_session_id", Some("id")),
            Error::UnknownSession { .. } => (StatusCode::NOT_FOUND, "unknown_session", Some("id")),
            Error::BudgetBelowPins { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "budget_below_pins", Some("budget")),
            Error::Policy { .. } => (StatusCode::BAD_REQUEST, "invalid_policy", Some("policy")),
            Error::InvalidTurn(_) | Error::ToolPair { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_turn", field),
            Error::StoreLocked { .. } => (StatusCode::SERVICE_UNAVAILABLE, "store_locked", None),
            Error::StoreFull { .. } => (StatusCode::INSUFFICIENT_STORAGE, "store_full", None),
            Error::StoreReadOnly { .. } => (StatusCode::SERVICE_UNAVAILABLE, "store_read_only", None),
            Error::SessionStale { .. } => (StatusCode::SERVICE_UNAVAILABLE, "store_stale_session", None),
            Error::Store { .. } => (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable", None),
            Error::StoreDamaged { .. } => (StatusCode::INTERNAL_SERVER_ERROR, "store_damaged", None),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal", None),
        };
        ApiError { status, code, field: field.map(str::to_string), message: e.to_string() }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "error": { "code": self.code, "message": self.message, "field": self.field } });
        (self.status, Json(body)).into_response()
    }
}
