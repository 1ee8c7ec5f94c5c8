//! Request extractors that refuse bad input with the documented JSON error
//! (`{"error": …}`) instead of axum's plain-text rejections: a JSON body ([`Body`]), an
//! optional one ([`MaybeBody`]: no body at all, or `null`, is fine; a malformed one is not), and query
//! parameters ([`Q`]: an unknown parameter or a value of the wrong type is a 400).
//!
//! Invariants: a body larger than the router's limit (`limits::MAX_BODY_BYTES`) is a 413;
//! malformed JSON, a field of the wrong type or an unknown field (the types deny them) is a
//! 400 naming what is wrong; nothing here drops a part of the input silently.

use axum::async_trait;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::api::{error, ApiError};

/// A JSON request body.
pub(crate) struct Body<T>(pub T);

/// A JSON request body that may be absent (an empty body).
pub(crate) struct MaybeBody<T>(pub Option<T>);

/// Query parameters.
pub(crate) struct Q<T>(pub T);

async fn bytes<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state).await.map_err(|e| {
        let status = e.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            error(
                status,
                format!(
                    "the body is larger than {} bytes",
                    crate::limits::MAX_BODY_BYTES
                ),
            )
        } else {
            error(status, e.body_text())
        }
    })
}

fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            format!("the body is not valid: {e}"),
        )
    })
}

#[async_trait]
impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = bytes(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(error(StatusCode::BAD_REQUEST, "a JSON body is needed"));
        }
        parse(&bytes).map(Body)
    }
}

#[async_trait]
impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for MaybeBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = bytes(req, state).await?;
        let trimmed = bytes.trim_ascii();
        if trimmed.is_empty() || trimmed == b"null" {
            return Ok(MaybeBody(None));
        }
        parse(&bytes).map(|t| MaybeBody(Some(t)))
    }
}

#[async_trait]
impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Q<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(q)| Q(q))
            .map_err(|e| error(StatusCode::BAD_REQUEST, e.body_text()))
    }
}
