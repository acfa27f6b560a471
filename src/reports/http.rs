//! `GET /api/v1/reports/queues` and `GET /api/v1/reports/agents`
//! (supervisor, admin): `from`, `to` (RFC 3339 UTC, a date, or epoch ms)
//! and `interval` (`15m`, `1h`, `1d`; default `1h`). JSON by default; CSV
//! when the request's `Accept` asks for `text/csv`. And
//! `GET /api/v1/reports/wallboard`: the wallboard's figures of today.

use actix_web::{web, HttpRequest, HttpResponse};
use edgecc_storage::StateTree;
use serde::Deserialize;

use super::config::ReportSettings;
use super::live::LiveSettings;
use super::time::{parse_time, Interval};
use super::{ReportError, ReportKind, ReportQuery};
use crate::http::auth::Caller;
use crate::http::error::ApiError;

/// What the report routes read: the history's tree and the thresholds.
pub struct ReportsState {
    /// The actors' state tree, where the history is.
    pub tree: StateTree,
    /// `[reports]` now (a reload replaces it).
    pub settings: LiveSettings,
    /// The wallboard's last figures, shared by every wallboard.
    pub wallboard: super::wallboard::FiguresCache,
}

impl ReportsState {
    /// The routes' state over `tree` with `settings`.
    pub fn new(tree: StateTree, settings: LiveSettings) -> ReportsState {
        ReportsState {
            tree,
            settings,
            wallboard: Default::default(),
        }
    }

    /// `[reports]` now.
    pub fn settings(&self) -> ReportSettings {
        self.settings.get()
    }
}

/// The query string.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportParams {
    /// Start.
    pub from: String,
    /// End, exclusive.
    pub to: String,
    /// Row interval (default `1h`).
    pub interval: Option<String>,
}

/// `GET /api/v1/reports/queues`.
pub async fn queues(
    caller: Caller,
    state: web::Data<ReportsState>,
    q: web::Query<ReportParams>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    report(caller, state, q.into_inner(), req, ReportKind::Queues).await
}

/// `GET /api/v1/reports/agents`.
pub async fn agents(
    caller: Caller,
    state: web::Data<ReportsState>,
    q: web::Query<ReportParams>,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    report(caller, state, q.into_inner(), req, ReportKind::Agents).await
}

/// Whether the request asks for CSV.
fn wants_csv(req: &HttpRequest) -> bool {
    req.headers()
        .get(actix_web::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim().starts_with("text/csv")))
}

/// The query the parameters ask for, or a 400 naming the parameter.
pub fn query_of(
    p: &ReportParams,
    kind: ReportKind,
    settings: &ReportSettings,
) -> Result<ReportQuery, String> {
    let from_ms = parse_time(&p.from).map_err(|e| format!("parameter `from`: {e}"))?;
    let to_ms = parse_time(&p.to).map_err(|e| format!("parameter `to`: {e}"))?;
    let interval = match &p.interval {
        Some(i) => Interval::parse(i).map_err(|e| format!("parameter `interval`: {e}"))?,
        None => Interval::Hour,
    };
    Ok(ReportQuery {
        kind,
        from_ms,
        to_ms,
        interval,
        settings: settings.clone(),
    })
}

async fn report(
    caller: Caller,
    state: web::Data<ReportsState>,
    p: ReportParams,
    req: HttpRequest,
    kind: ReportKind,
) -> Result<HttpResponse, ApiError> {
    caller.require_supervisor()?;
    let query = query_of(&p, kind, &state.settings()).map_err(ApiError::bad_request)?;
    let tree = state.tree.clone();
    let report = web::block(move || super::run(&tree, &query))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(|e| match e {
            ReportError::BadRange(m) => ApiError::bad_request(m),
            ReportError::History(e) => ApiError::unavailable(e.to_string()),
        })?;
    if wants_csv(&req) {
        return Ok(HttpResponse::Ok()
            .content_type("text/csv; charset=utf-8")
            .body(super::csv::render(&report.rows)));
    }
    Ok(HttpResponse::Ok().json(report))
}

/// `GET /api/v1/reports/wallboard` (supervisor, admin): the wallboard's
/// figures ([`super::wallboard`]), one answer reused for
/// [`super::wallboard::WALLBOARD_FIGURES_TTL_MS`].
pub async fn wallboard(
    caller: Caller,
    state: web::Data<ReportsState>,
) -> Result<HttpResponse, ApiError> {
    caller.require_supervisor()?;
    let now_ms = crate::clock::now_ms();
    let settings = state.settings();
    if let Some(f) = state.wallboard.fresh(now_ms, &settings) {
        return Ok(HttpResponse::Ok().json(&*f));
    }
    let tree = state.tree.clone();
    let with = settings.clone();
    let made = web::block(move || super::wallboard::make(&tree, &with, now_ms))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
    let made = std::sync::Arc::new(made);
    state.wallboard.keep((now_ms, settings, made.clone()));
    Ok(HttpResponse::Ok().json(&*made))
}
