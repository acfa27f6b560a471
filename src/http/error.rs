//! API errors: every failure is `{ "error": code, "message": text }` with a
//! status that fits, and the JSON body extractor's errors name the field. It
//! owns the mapping of the actors' errors to statuses (a call that is not
//! the agent's is 403, an unknown one 404, a state that does not fit 409).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use edgecc_actors::CcError;
use serde::Serialize;

/// Largest JSON request body accepted, bytes: every API body is a few fields.
pub const JSON_BODY_BYTES_MAX: usize = 16 * 1024;

/// A failed API request.
#[derive(Debug, Clone, Serialize, thiserror::Error)]
#[error("{error}: {message}")]
pub struct ApiError {
    /// HTTP status (not serialized).
    #[serde(skip)]
    pub status: u16,
    /// Stable machine-readable code (`unauthorized`, `bad_request`, …).
    pub error: String,
    /// What went wrong, for a person.
    pub message: String,
}

impl ApiError {
    /// An error with a status, code and message.
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        ApiError {
            status: status.as_u16(),
            error: code.to_owned(),
            message: message.into(),
        }
    }

    /// 400.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 401.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 403.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 409: the request does not fit the current state.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    /// 503.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }

    /// 500 (storage faults and the like; never a panic).
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status_code()).json(self)
    }
}

impl From<CcError> for ApiError {
    fn from(e: CcError) -> Self {
        let message = e.to_string();
        match e {
            CcError::UnknownAgent(_) | CcError::UnknownQueue(_) | CcError::UnknownCall(_) => {
                Self::new(StatusCode::NOT_FOUND, "not_found", message)
            }
            CcError::NotYourCall { .. } => Self::forbidden(message),
            CcError::NotOnACall(_) | CcError::NoOffer(_) => {
                Self::new(StatusCode::CONFLICT, "conflict", message)
            }
            CcError::TargetNotAvailable { .. } => {
                Self::new(StatusCode::CONFLICT, "target_not_available", message)
            }
            CcError::Agent(_) | CcError::Call(_) => {
                Self::new(StatusCode::CONFLICT, "conflict", message)
            }
            CcError::Mailbox(_) => Self::unavailable(message),
        }
    }
}

impl From<crate::admin::AdminError> for ApiError {
    fn from(e: crate::admin::AdminError) -> Self {
        let status = match e.error.as_str() {
            "not_found" => StatusCode::NOT_FOUND,
            "bad_request" => StatusCode::BAD_REQUEST,
            "unavailable" | "locked" => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self::new(status, &e.error, e.message)
    }
}

/// A JSON body parsed with `serde_path_to_error`, so a wrong body is a 400
/// whose message names the field; larger than [`JSON_BODY_BYTES_MAX`] is a
/// 413. Unknown fields are refused by the body types (`deny_unknown_fields`).
pub struct ApiJson<T>(pub T);

impl<T: serde::de::DeserializeOwned + 'static> actix_web::FromRequest for ApiJson<T> {
    type Error = ApiError;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut actix_web::dev::Payload) -> Self::Future {
        let bytes = <actix_web::web::Bytes as actix_web::FromRequest>::from_request(req, payload);
        Box::pin(async move {
            let body = bytes.await.map_err(|e| {
                if e.as_response_error().status_code() == StatusCode::PAYLOAD_TOO_LARGE {
                    too_large()
                } else {
                    ApiError::bad_request(format!("body: {e}"))
                }
            })?;
            parse_json(&body).map(ApiJson)
        })
    }
}

/// 413 for a body over [`JSON_BODY_BYTES_MAX`].
fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!("the body is larger than {JSON_BODY_BYTES_MAX} bytes"),
    )
}

/// The payload limit every body extractor obeys.
pub fn payload_config() -> actix_web::web::PayloadConfig {
    actix_web::web::PayloadConfig::new(JSON_BODY_BYTES_MAX)
}

/// Parses `bytes` as `T`, naming the failing field (`target: invalid type …`).
pub fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.len() > JSON_BODY_BYTES_MAX {
        return Err(too_large());
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path.is_empty() || path == "." {
            ApiError::bad_request(format!("malformed JSON body: {inner}"))
        } else {
            ApiError::bad_request(format!("field `{path}`: {inner}"))
        }
    })
}
