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
/// Time a client has to send a JSON body once its head is in: 16 KiB
/// arrives in well under a second on the slowest link a desktop uses, so a
/// body still trickling in after this is a client holding a connection.
pub const JSON_BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

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
    /// Seconds for a `Retry-After` header (429, 503), if any.
    #[serde(skip)]
    pub retry_after_s: Option<u64>,
}

impl ApiError {
    /// An error with a status, code and message.
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        ApiError {
            status: status.as_u16(),
            error: code.to_owned(),
            message: message.into(),
            retry_after_s: None,
        }
    }

    /// 429 `too_many_attempts` with `Retry-After`.
    pub fn too_many_attempts(message: impl Into<String>, retry_after_s: u64) -> Self {
        ApiError {
            retry_after_s: Some(retry_after_s.max(1)),
            ..Self::new(StatusCode::TOO_MANY_REQUESTS, "too_many_attempts", message)
        }
    }

    /// 503 `busy` with `Retry-After`: try again shortly.
    pub fn busy(message: impl Into<String>, retry_after_s: u64) -> Self {
        ApiError {
            retry_after_s: Some(retry_after_s.max(1)),
            ..Self::new(StatusCode::SERVICE_UNAVAILABLE, "busy", message)
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
        let mut res = HttpResponse::build(self.status_code());
        if let Some(s) = self.retry_after_s {
            res.insert_header((actix_web::http::header::RETRY_AFTER, s.to_string()));
        }
        res.json(self)
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
            CcError::WrapUpOver { .. } => Self::new(StatusCode::CONFLICT, "wrap_up_over", message),
            CcError::NotOnACall(_) | CcError::NoOffer(_) => {
                Self::new(StatusCode::CONFLICT, "conflict", message)
            }
            CcError::TargetNotAvailable { .. } => {
                Self::new(StatusCode::CONFLICT, "target_not_available", message)
            }
            CcError::Agent(edgecc_actors::agent::AgentError::WrapUpCodeRequired { .. }) => {
                Self::new(StatusCode::CONFLICT, "wrap_up_code_required", message)
            }
            CcError::Call(edgecc_actors::call::CallError::NotInConference { .. }) => {
                Self::new(StatusCode::NOT_FOUND, "not_in_conference", message)
            }
            CcError::Agent(_) | CcError::Call(_) => {
                Self::new(StatusCode::CONFLICT, "conflict", message)
            }
            CcError::Pbx(_) => Self::new(StatusCode::BAD_GATEWAY, "pbx_failed", message),
            CcError::Mailbox(_) | CcError::TooManySubscribers { .. } => Self::unavailable(message),
            CcError::WrapUpCodeNotListed { .. } => {
                Self::new(StatusCode::BAD_REQUEST, "wrap_up_code_not_listed", message)
            }
        }
    }
}

impl From<crate::ops::admin::AdminError> for ApiError {
    fn from(e: crate::ops::admin::AdminError) -> Self {
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
/// 413; a body not declared `application/json` is a 415 (before it is read).
/// Unknown fields are refused by the body types (`deny_unknown_fields`).
///
/// The media-type check is what keeps a web page the agent happens to visit
/// from posting to the box: a browser sends `text/plain` or a form without a
/// CORS preflight, but `application/json` only after one, and the box
/// answers no preflight.
pub struct ApiJson<T>(pub T);

/// Whether the request declares a JSON body: `application/json` or a
/// `+json` type, parameters (`; charset=utf-8`) allowed.
fn declares_json(req: &HttpRequest) -> bool {
    let Some(value) = req.headers().get(actix_web::http::header::CONTENT_TYPE) else {
        return false;
    };
    let Ok(value) = value.to_str() else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// 415 for a body that is not declared JSON.
fn not_json() -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        "the body must be JSON, sent with Content-Type: application/json",
    )
}

impl<T: serde::de::DeserializeOwned + 'static> actix_web::FromRequest for ApiJson<T> {
    type Error = ApiError;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut actix_web::dev::Payload) -> Self::Future {
        if !declares_json(req) {
            return Box::pin(std::future::ready(Err(not_json())));
        }
        let bytes = <actix_web::web::Bytes as actix_web::FromRequest>::from_request(req, payload);
        Box::pin(async move {
            let body = tokio::time::timeout(JSON_BODY_TIMEOUT, bytes)
                .await
                .map_err(|_| {
                    ApiError::new(
                        StatusCode::REQUEST_TIMEOUT,
                        "request_timeout",
                        format!(
                            "the body did not arrive within {} s",
                            JSON_BODY_TIMEOUT.as_secs()
                        ),
                    )
                })?
                .map_err(|e| {
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
