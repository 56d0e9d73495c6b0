//! The handlers of the session routes (the window route is in `window.rs`), and the request-body
//! reading they share: a JSON object, its fields checked one by one so a refusal names the field.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::AppState;
use super::error::ApiError;
use super::ingest::{Format, ingest};
use crate::pins::{PinId, PinLayer};
use crate::session::validate_id;

type Reply = std::result::Result<Response, ApiError>;

/// The request body as a JSON object whose keys are all in `allowed`.
pub(crate) fn body_object(body: std::result::Result<Bytes, BytesRejection>, allowed: &[&str]) -> std::result::Result<Map<String, Value>, ApiError> {
    let bytes = body.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::too_large("body", format!("the request body is over the server's limit: {e}")),
        _ => ApiError::bad("body", format!("cannot read the body: {e}")),
    })?;
    let v: Value = serde_json::from_slice(&bytes).map_err(|e| ApiError::bad("body", format!("not JSON: {e}")))?;
    let Value::Object(map) = v else {
        return Err(ApiError::bad("body", "must be a JSON object"));
    };
    if let Some(k) = map.keys().find(|k| !allowed.contains(&k.as_str())) {
        let hint = if k == "system" { "; pins (system text) are set with PUT /v1/sessions/{id}/pins/{layer}" } else { "" };
        return Err(ApiError::bad(k, format!("unknown field (known: {}){hint}", allowed.join(", "))));
    }
    Ok(map)
}

/// The session id of the path, checked (400 naming `id`).
pub(crate) fn session_id(id: &str) -> std::result::Result<(), ApiError> {
    validate_id(id).map_err(|e| ApiError::from_lib(e, Some("id")))
}

fn lib(field: Option<&'static str>) -> impl Fn(crate::Error) -> ApiError {
    move |e| ApiError::from_lib(e, field)
}

/// `POST /v1/sessions/{id}/turns`: appends the messages (creating the session), in order.
pub(crate) async fn post_turns(State(st): State<Arc<AppState>>, Path(id): Path<String>, body: std::result::Result<Bytes, BytesRejection>) -> Reply {
    session_id(&id)?;
    let map = body_object(body, &["format", "messages"])?;
    let format = Format::parse(map.get("format"), "format", Format::OpenAi, true)?;
    let messages = match map.get("messages") {
        Some(Value::Array(m)) if m.is_empty() => return Err(ApiError::bad("messages", "must hold at least one message")),
        Some(Value::Array(m)) if m.len() > st.config.max_messages => {
            return Err(ApiError::too_large("messages", format!("{} messages; at most {} per request", m.len(), st.config.max_messages)));
        }
        Some(Value::Array(m)) => m,
        _ => return Err(ApiError::bad("messages", "must be a list of messages")),
    };
    let ingested = ingest(format, messages, st.config.max_turn_bytes)?;
    let reply = st
        .blocking(move |st| {
            let mut failed = None;
            let from = ingested.from;
            let r = st.sessions.with_or_create(&id, |s| {
                let mut ids = Vec::with_capacity(ingested.turns.len());
                for (k, t) in ingested.turns.into_iter().enumerate() {
                    match s.push(t) {
                        Ok(tid) => ids.push(tid),
                        Err(e) => {
                            failed = Some((from.get(k).copied().unwrap_or(0), ids.len()));
                            return Err(e);
                        }
                    }
                }
                Ok(json!({ "session": id, "turn_ids": ids, "turns": s.engine().len(), "seq": s.seq() }))
            });
            r.map_err(|e| match failed {
                Some((i, stored)) => {
                    let mut err = ApiError::from_lib(e, None).at(&format!("messages[{i}]"));
                    err.message = format!("{}; the {stored} turn(s) before it were stored", err.message);
                    err
                }
                None => ApiError::from_lib(e, None),
            })
        })
        .await?;
    Ok(Json(reply).into_response())
}

fn layer(name: &str) -> std::result::Result<PinLayer, ApiError> {
    PinLayer::ALL
        .into_iter()
        .find(|l| l.as_str() == name)
        .ok_or_else(|| ApiError::bad("layer", format!("unknown layer {name:?} (system, project, task or output)")))
}

fn pins_json(s: &crate::session::Session) -> Value {
    Value::Array(s.engine().pins().iter().map(|p| json!({"id": p.id().0, "layer": p.layer().as_str(), "priority": p.priority(), "text": p.text()})).collect())
}

/// `PUT /v1/sessions/{id}/pins/{layer}`: replaces the layer's pins with one (creating the session).
pub(crate) async fn put_pin(
    State(st): State<Arc<AppState>>,
    Path((id, name)): Path<(String, String)>,
    body: std::result::Result<Bytes, BytesRejection>,
) -> Reply {
    session_id(&id)?;
    let layer = layer(&name)?;
    let map = body_object(body, &["text", "priority"])?;
    let text = match map.get("text") {
        Some(Value::String(t)) if !t.trim().is_empty() => t.clone(),
        Some(Value::String(_)) => return Err(ApiError::bad("text", "must not be empty (DELETE the layer to remove its pin)")),
        _ => return Err(ApiError::bad("text", "must be a string")),
    };
    if text.len() > st.config.max_turn_bytes {
        return Err(ApiError::too_large("text", format!("{} bytes; the limit is {}", text.len(), st.config.max_turn_bytes)));
    }
    let priority = match map.get("priority") {
        None | Some(Value::Null) => 0,
        Some(v) => v.as_i64().and_then(|p| i32::try_from(p).ok()).ok_or_else(|| ApiError::bad("priority", "must be a 32-bit integer"))?,
    };
    let reply = st
        .blocking(move |st| {
            st.sessions
                .with_or_create(&id, |s| {
                    let old: Vec<PinId> = s.engine().pins().iter().filter(|p| p.layer() == layer).map(|p| p.id()).collect();
                    for p in old {
                        s.unpin(p)?;
                    }
                    let pin = s.pin(layer, text, priority)?;
                    Ok(json!({ "session": id, "layer": layer.as_str(), "pin_id": pin.0, "pins": pins_json(s) }))
                })
                .map_err(lib(None))
        })
        .await?;
    Ok(Json(reply).into_response())
}

/// `DELETE /v1/sessions/{id}/pins/{layer}`: removes the layer's pins.
pub(crate) async fn delete_pin(State(st): State<Arc<AppState>>, Path((id, name)): Path<(String, String)>) -> Reply {
    session_id(&id)?;
    let layer = layer(&name)?;
    let reply = st
        .blocking(move |st| {
            st.sessions
                .with(&id, |s| {
                    let old: Vec<PinId> = s.engine().pins().iter().filter(|p| p.layer() == layer).map(|p| p.id()).collect();
                    let mut removed = 0;
                    for p in old {
                        removed += usize::from(s.unpin(p)?);
                    }
                    Ok(json!({ "session": id, "layer": layer.as_str(), "removed": removed, "pins": pins_json(s) }))
                })
                .map_err(lib(None))
        })
        .await?;
    Ok(Json(reply).into_response())
}

/// `GET /v1/sessions/{id}/search?q=&k=`: the `k` turns that best match `q`.
pub(crate) async fn search(
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
    query: std::result::Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Reply {
    session_id(&id)?;
    let Query(params) = query.map_err(|e| ApiError::bad("query", e.to_string()))?;
    let q = params.get("q").filter(|q| !q.trim().is_empty()).cloned().ok_or_else(|| ApiError::bad("q", "a non-empty query is required"))?;
    let k = match params.get("k") {
        None => 5,
        Some(k) => k.parse::<usize>().ok().filter(|k| (1..=100).contains(k)).ok_or_else(|| ApiError::bad("k", "must be an integer from 1 to 100"))?,
    };
    let reply = st
        .blocking(move |st| {
            st.sessions
                .with(&id, |s| {
                    let hits: Vec<Value> = s
                        .search(&q, k)?
                        .into_iter()
                        .map(|h| json!({"turn_id": h.turn_id, "score": finite(h.score), "bm25": finite(h.bm25), "turn": h.turn}))
                        .collect();
                    Ok(json!({ "session": id, "query": q, "hits": hits }))
                })
                .map_err(lib(None))
        })
        .await?;
    Ok(Json(reply).into_response())
}

/// A score as JSON, to 4 decimals (non-finite numbers as 0, which JSON cannot carry).
pub(crate) fn finite(x: f32) -> f64 {
    if x.is_finite() { (f64::from(x) * 1e4).round() / 1e4 } else { 0.0 }
}

/// `GET /v1/sessions/{id}`: the session's size, policy and pins.
pub(crate) async fn get_session(State(st): State<Arc<AppState>>, Path(id): Path<String>) -> Reply {
    session_id(&id)?;
    let reply = st
        .blocking(move |st| {
            st.sessions
                .with(&id, |s| {
                    let tokens: usize = (0..s.engine().len()).filter_map(|t| s.engine().turn_tokens(t)).sum();
                    Ok(json!({
                        "session": id, "turns": s.engine().len(), "history_tokens": tokens, "seq": s.seq(),
                        "policy": s.engine().policy().preset_name(), "pins": pins_json(s), "store": s.store_name(),
                    }))
                })
                .map_err(lib(None))
        })
        .await?;
    Ok(Json(reply).into_response())
}

/// `DELETE /v1/sessions/{id}`: deletes the session and its log (204; 404 when it does not exist).
pub(crate) async fn delete_session(State(st): State<Arc<AppState>>, Path(id): Path<String>) -> Reply {
    session_id(&id)?;
    let name = id.clone();
    let existed = st.blocking(move |st| st.sessions.delete(&id).map_err(lib(None))).await?;
    if existed {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        let store = st.sessions.store().name().to_string();
        Err(ApiError::from_lib(crate::Error::UnknownSession { session: name, store }, Some("id")))
    }
}

/// `GET /v1/sessions`: the ids of all sessions, sorted.
pub(crate) async fn list_sessions(State(st): State<Arc<AppState>>) -> Reply {
    let ids = st.blocking(|st| st.sessions.store().sessions().map_err(lib(None))).await?;
    Ok(Json(json!({ "sessions": ids })).into_response())
}

/// `GET /healthz`: the process answers.
pub(crate) async fn healthz() -> Response {
    Json(json!({"status": "ok"})).into_response()
}

/// `GET /readyz`: the store answers and the server is not shutting down (503 otherwise).
pub(crate) async fn readyz(State(st): State<Arc<AppState>>) -> Reply {
    if st.draining() {
        return Err(ApiError::unavailable("the server is shutting down"));
    }
    st.blocking(|st| st.sessions.store().load_since("ctxwin-readyz-probe", 0).map(|_| ()).map_err(lib(None))).await?;
    Ok(Json(json!({"status": "ready", "store": st.sessions.store().name()})).into_response())
}

/// `GET /metrics`: Prometheus text.
pub(crate) async fn metrics(State(st): State<Arc<AppState>>) -> Response {
    let text = st.metrics.render(st.sessions.hot(), st.sessions.hot_bytes());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response()
}

/// `GET /openapi.json`: the API's OpenAPI 3 document.
pub(crate) async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], super::OPENAPI).into_response()
}

/// Any other path: 404 in the API's error shape.
pub(crate) async fn not_found() -> ApiError {
    ApiError { status: StatusCode::NOT_FOUND, code: "not_found", field: Some("path".into()), message: "no such route (see /openapi.json)".into() }
}
