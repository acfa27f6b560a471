//! Caching of the UI's pages and files: each answer carries an `ETag` (a
//! hash of the embedded text, so it changes with every build that changes
//! the file) and `Cache-Control: no-cache`, so a browser revalidates on
//! every load and an unchanged file costs a bodiless 304.

use std::hash::{Hash, Hasher};

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse};

/// Revalidate on every use (a new build shows at once).
pub const REVALIDATE: (header::HeaderName, &str) = (header::CACHE_CONTROL, "no-cache");

/// The entity tag of `body`: quoted hex of its hash.
fn tag(body: &str) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    body.hash(&mut h);
    format!("\"{:016x}\"", h.finish())
}

/// The `ETag` header of `body`.
pub fn etag(body: &str) -> (header::HeaderName, String) {
    (header::ETAG, tag(body))
}

/// A 304 when the request's `If-None-Match` names `body`'s tag (or `*`).
pub fn not_modified(req: &HttpRequest, body: &str) -> Option<HttpResponse> {
    let asked = req.headers().get(header::IF_NONE_MATCH)?.to_str().ok()?;
    let tag = tag(body);
    let hit = asked
        .split(',')
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == tag || t == "*");
    hit.then(|| {
        HttpResponse::NotModified()
            .insert_header((header::ETAG, tag))
            .insert_header(REVALIDATE)
            .finish()
    })
}
