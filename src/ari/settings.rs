//! `[pbx.ari]`: how edgecc reaches Asterisk's REST interface, as written in
//! the TOML file ([`AriConfig`]) and resolved and checked ([`AriSettings`]).
//! Every error names the dotted key; the caller adds the file.
//!
//! ```toml
//! [pbx]
//! kind = "ari"
//!
//! [pbx.ari]
//! url = "http://127.0.0.1:8088/ari"
//! app = "edgecc"
//! user = "edgecc"
//! password_file = "/run/credentials/edgecc.service/ari_password"
//! ```

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::net::SettingError;

/// Default ARI connect timeout, ms: Asterisk is on the LAN or the same box.
pub const CONNECT_TIMEOUT_MS_DEFAULT: u64 = 2_000;
/// Default whole-request timeout, ms: an ARI command answers in
/// milliseconds; a slow one must not hold a call's commands for long.
pub const REQUEST_TIMEOUT_MS_DEFAULT: u64 = 3_000;
/// Longest timeout accepted for a `*_timeout_ms` key.
pub const TIMEOUT_MS_MAX: u64 = 60_000;
/// Default first reconnect delay bound, ms (full jitter below it).
pub const RECONNECT_BACKOFF_BASE_MS_DEFAULT: u64 = 100;
/// Default largest reconnect delay bound, ms: a call that reaches Stasis
/// while no WebSocket is connected fails at once, so the link is retried
/// often.
pub const RECONNECT_BACKOFF_CAP_MS_DEFAULT: u64 = 2_000;
/// Default interval of WebSocket pings, ms.
pub const PING_INTERVAL_MS_DEFAULT: u64 = 5_000;
/// Default silence (no frame, no pong) after which the link is declared
/// dead, ms.
pub const LINK_IDLE_TIMEOUT_MS_DEFAULT: u64 = 15_000;
/// Default longest wait for an announcement to finish before the hang-up
/// that follows it, ms.
pub const ANNOUNCEMENT_WAIT_MS_MAX_DEFAULT: u64 = 30_000;
/// Default longest wait for an alerting agent phone to be picked up after
/// the agent accepted on the desktop, ms.
pub const REMOTE_ANSWER_WAIT_MS_DEFAULT: u64 = 10_000;
/// Default time Asterisk may stay unreachable before the calls it had are
/// given up as lost by the PBX, ms: an Asterisk restart takes seconds, a
/// caller does not wait minutes in silence, and agents must not stay
/// stuck on calls that no longer exist.
pub const LOST_AFTER_MS_DEFAULT: u64 = 120_000;
/// Bounds of `lost_after_ms`: at least a few reconnect attempts, at most a
/// day.
pub const LOST_AFTER_MS_MIN: u64 = 5_000;
/// See [`LOST_AFTER_MS_MIN`].
pub const LOST_AFTER_MS_MAX: u64 = 86_400_000;

/// How a waiting caller is entertained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WaitingMedia {
    /// Music on hold (`moh_class`).
    Moh,
    /// Ringing indication.
    Ringing,
}

/// `[pbx.ari]` as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AriConfig {
    /// Base URL of ARI, e.g. `http://127.0.0.1:8088/ari`.
    pub url: String,
    /// The Stasis application name (`Stasis(<app>,...)` in the dialplan).
    #[serde(default = "app_default")]
    pub app: String,
    /// The `ari.conf` user.
    pub user: String,
    /// The password, inline (prefer `password_file`).
    #[serde(default, skip_serializing)]
    pub password: Option<String>,
    /// A file holding the password (trailing newline ignored).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// `basic` (Authorization header) or `api_key` (query parameter).
    #[serde(default = "auth_default")]
    pub auth: String,
    /// TCP connect timeout, ms.
    #[serde(default = "connect_timeout_ms_default")]
    pub connect_timeout_ms: u64,
    /// Whole-request timeout of a REST call, ms.
    #[serde(default = "request_timeout_ms_default")]
    pub request_timeout_ms: u64,
    /// First reconnect delay bound, ms.
    #[serde(default = "reconnect_backoff_base_ms_default")]
    pub reconnect_backoff_base_ms: u64,
    /// Largest reconnect delay bound, ms.
    #[serde(default = "reconnect_backoff_cap_ms_default")]
    pub reconnect_backoff_cap_ms: u64,
    /// WebSocket ping interval, ms.
    #[serde(default = "ping_interval_ms_default")]
    pub ping_interval_ms: u64,
    /// Silence after which the link is declared dead, ms.
    #[serde(default = "link_idle_timeout_ms_default")]
    pub link_idle_timeout_ms: u64,
    /// `moh` or `ringing` for callers waiting in a queue.
    #[serde(default = "waiting_media_default")]
    pub waiting_media: WaitingMedia,
    /// Music-on-hold class (`musiconhold.conf`) for waiting and held callers.
    #[serde(default = "moh_class_default")]
    pub moh_class: String,
    /// Dialplan context where a redirected caller continues, at
    /// `<number>,1`.
    #[serde(default = "redirect_context_default")]
    pub redirect_context: String,
    /// Dial string template of an outbound customer leg; `{number}` is
    /// replaced by the number dialed.
    #[serde(default = "outbound_endpoint_default")]
    pub outbound_endpoint: String,
    /// Longest wait for an announcement before the hang-up after it, ms.
    #[serde(default = "announcement_wait_ms_max_default")]
    pub announcement_wait_ms_max: u64,
    /// Longest wait for an alerting phone after a desktop accept, ms.
    #[serde(default = "remote_answer_wait_ms_default")]
    pub remote_answer_wait_ms: u64,
    /// SIP header added to PJSIP offers of auto-accept agents
    /// (`Name: value`), so the phone answers by itself; empty for none.
    #[serde(default = "auto_answer_header_default")]
    pub auto_answer_header: String,
    /// How long Asterisk may stay unreachable before its calls are ended
    /// `pbx_lost`, ms.
    #[serde(default = "lost_after_ms_default")]
    pub lost_after_ms: u64,
}

fn app_default() -> String {
    "edgecc".into()
}
fn auth_default() -> String {
    "basic".into()
}
fn connect_timeout_ms_default() -> u64 {
    CONNECT_TIMEOUT_MS_DEFAULT
}
fn request_timeout_ms_default() -> u64 {
    REQUEST_TIMEOUT_MS_DEFAULT
}
fn reconnect_backoff_base_ms_default() -> u64 {
    RECONNECT_BACKOFF_BASE_MS_DEFAULT
}
fn reconnect_backoff_cap_ms_default() -> u64 {
    RECONNECT_BACKOFF_CAP_MS_DEFAULT
}
fn ping_interval_ms_default() -> u64 {
    PING_INTERVAL_MS_DEFAULT
}
fn link_idle_timeout_ms_default() -> u64 {
    LINK_IDLE_TIMEOUT_MS_DEFAULT
}
fn waiting_media_default() -> WaitingMedia {
    WaitingMedia::Moh
}
fn moh_class_default() -> String {
    "default".into()
}
fn redirect_context_default() -> String {
    "edgecc-redirect".into()
}
fn outbound_endpoint_default() -> String {
    "Local/{number}@edgecc-outbound".into()
}
fn announcement_wait_ms_max_default() -> u64 {
    ANNOUNCEMENT_WAIT_MS_MAX_DEFAULT
}
fn remote_answer_wait_ms_default() -> u64 {
    REMOTE_ANSWER_WAIT_MS_DEFAULT
}
fn lost_after_ms_default() -> u64 {
    LOST_AFTER_MS_DEFAULT
}
fn auto_answer_header_default() -> String {
    "Call-Info: answer-after=0".into()
}

/// How credentials travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AriAuth {
    /// `Authorization: Basic`.
    Basic,
    /// `?api_key=user:password`.
    ApiKey,
}

/// The resolved, checked `[pbx.ari]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AriSettings {
    /// Base URL without a trailing slash (`http://host:8088/ari`).
    pub url: String,
    /// The WebSocket URL derived from it (`ws://host:8088/ari/events`).
    pub ws_url: String,
    /// Stasis application.
    pub app: String,
    /// ARI user.
    pub user: String,
    /// ARI password (never serialised).
    #[serde(skip_serializing)]
    pub password: String,
    /// How credentials travel.
    pub auth: AriAuth,
    /// Connect timeout.
    #[serde(rename = "connect_timeout_ms", serialize_with = "duration_ms")]
    pub connect_timeout: Duration,
    /// Request timeout.
    #[serde(rename = "request_timeout_ms", serialize_with = "duration_ms")]
    pub request_timeout: Duration,
    /// Reconnect backoff base, ms.
    pub reconnect_backoff_base_ms: u64,
    /// Reconnect backoff cap, ms.
    pub reconnect_backoff_cap_ms: u64,
    /// Ping interval.
    #[serde(rename = "ping_interval_ms", serialize_with = "duration_ms")]
    pub ping_interval: Duration,
    /// Idle timeout of the link.
    #[serde(rename = "link_idle_timeout_ms", serialize_with = "duration_ms")]
    pub link_idle_timeout: Duration,
    /// Waiting callers hear this.
    pub waiting_media: WaitingMedia,
    /// MOH class.
    pub moh_class: String,
    /// Redirect context.
    pub redirect_context: String,
    /// Outbound customer dial string template.
    pub outbound_endpoint: String,
    /// Announcement wait bound.
    #[serde(rename = "announcement_wait_ms_max", serialize_with = "duration_ms")]
    pub announcement_wait_max: Duration,
    /// Remote answer wait bound.
    #[serde(rename = "remote_answer_wait_ms", serialize_with = "duration_ms")]
    pub remote_answer_wait: Duration,
    /// `(name, value)` of the auto-answer SIP header, if any.
    pub auto_answer_header: Option<(String, String)>,
    /// How long Asterisk may stay unreachable (the link down, no
    /// reconcile) before the calls it had are ended `pbx_lost`.
    #[serde(rename = "lost_after_ms", serialize_with = "duration_ms")]
    pub lost_after: Duration,
}

impl AriSettings {
    /// Settings for a test or the emulator: `url` with `user`/`password`,
    /// app `app`, every other value its default.
    pub fn for_test(url: &str, app: &str, user: &str, password: &str) -> AriSettings {
        let raw = AriConfig {
            url: url.into(),
            app: app.into(),
            user: user.into(),
            password: Some(password.into()),
            password_file: None,
            auth: auth_default(),
            connect_timeout_ms: CONNECT_TIMEOUT_MS_DEFAULT,
            request_timeout_ms: REQUEST_TIMEOUT_MS_DEFAULT,
            reconnect_backoff_base_ms: RECONNECT_BACKOFF_BASE_MS_DEFAULT,
            reconnect_backoff_cap_ms: RECONNECT_BACKOFF_CAP_MS_DEFAULT,
            ping_interval_ms: PING_INTERVAL_MS_DEFAULT,
            link_idle_timeout_ms: LINK_IDLE_TIMEOUT_MS_DEFAULT,
            waiting_media: WaitingMedia::Moh,
            moh_class: moh_class_default(),
            redirect_context: redirect_context_default(),
            outbound_endpoint: outbound_endpoint_default(),
            announcement_wait_ms_max: ANNOUNCEMENT_WAIT_MS_MAX_DEFAULT,
            remote_answer_wait_ms: REMOTE_ANSWER_WAIT_MS_DEFAULT,
            auto_answer_header: auto_answer_header_default(),
            lost_after_ms: LOST_AFTER_MS_DEFAULT,
        };
        resolve(&raw).expect("test settings are valid")
    }
}

/// Writes a duration as whole ms (as the TOML keys are written).
fn duration_ms<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_millis() as u64)
}

/// Checks `[pbx.ari]` and reads the password file. Errors name the
/// dotted key.
pub fn resolve(raw: &AriConfig) -> Result<AriSettings, SettingError> {
    let key = |k: &str| format!("pbx.ari.{k}");
    let url = raw.url.trim_end_matches('/').to_string();
    let ws_url = if let Some(rest) = url.strip_prefix("http://") {
        format!("ws://{rest}/events")
    } else if let Some(rest) = url.strip_prefix("https://") {
        format!("wss://{rest}/events")
    } else {
        return Err(SettingError::new(
            &key("url"),
            format!("{:?} must start with http:// or https://", raw.url),
        ));
    };
    let uri: Result<awc::http::Uri, _> = url.parse();
    if uri
        .as_ref()
        .ok()
        .and_then(|u| u.host())
        .is_none_or(str::is_empty)
    {
        return Err(SettingError::new(
            &key("url"),
            format!("{:?} is not a URL with a host", raw.url),
        ));
    }
    let name_ok = |s: &str| {
        !s.is_empty()
            && s.len() <= 64
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    };
    if !name_ok(&raw.app) {
        return Err(SettingError::new(
            &key("app"),
            format!(
                "{:?} is not an application name: 1 to 64 letters, digits, '-', '_' or '.'",
                raw.app
            ),
        ));
    }
    if raw.user.is_empty() || raw.user.contains(':') {
        return Err(SettingError::new(
            &key("user"),
            "must be a non-empty name without ':'",
        ));
    }
    let password = match (&raw.password, &raw.password_file) {
        (Some(_), Some(_)) => {
            return Err(SettingError::new(
                &key("password_file"),
                "give either password or password_file, not both",
            ))
        }
        (None, None) => {
            return Err(SettingError::new(
                &key("password_file"),
                "is needed (or password)",
            ))
        }
        (Some(p), None) => p.clone(),
        (None, Some(path)) => crate::net::read_secret_text(&key("password_file"), path)?,
    };
    if password.is_empty() {
        return Err(SettingError::new(&key("password"), "is empty"));
    }
    let auth = match raw.auth.as_str() {
        "basic" => AriAuth::Basic,
        "api_key" => AriAuth::ApiKey,
        other => {
            return Err(SettingError::new(
                &key("auth"),
                format!("{other:?} is not an auth mode: use \"basic\" or \"api_key\""),
            ))
        }
    };
    let timeout = |k: &str, ms: u64| crate::net::check_timeout(&key(k), ms, TIMEOUT_MS_MAX);
    let connect_timeout = timeout("connect_timeout_ms", raw.connect_timeout_ms)?;
    let request_timeout = timeout("request_timeout_ms", raw.request_timeout_ms)?;
    let ping_interval = timeout("ping_interval_ms", raw.ping_interval_ms)?;
    let link_idle_timeout = timeout("link_idle_timeout_ms", raw.link_idle_timeout_ms)?;
    if link_idle_timeout <= ping_interval {
        return Err(SettingError::new(
            &key("link_idle_timeout_ms"),
            "must be longer than ping_interval_ms",
        ));
    }
    if raw.reconnect_backoff_base_ms == 0 || raw.reconnect_backoff_base_ms > 10_000 {
        return Err(SettingError::new(
            &key("reconnect_backoff_base_ms"),
            format!("{} is outside 1..=10000", raw.reconnect_backoff_base_ms),
        ));
    }
    if raw.reconnect_backoff_cap_ms < raw.reconnect_backoff_base_ms
        || raw.reconnect_backoff_cap_ms > 60_000
    {
        return Err(SettingError::new(
            &key("reconnect_backoff_cap_ms"),
            format!(
                "{} must be at least reconnect_backoff_base_ms and at most 60000",
                raw.reconnect_backoff_cap_ms
            ),
        ));
    }
    if !raw.moh_class.is_empty() && !name_ok(&raw.moh_class) {
        return Err(SettingError::new(
            &key("moh_class"),
            format!("{:?} is not a class name", raw.moh_class),
        ));
    }
    if !name_ok(&raw.redirect_context) {
        return Err(SettingError::new(
            &key("redirect_context"),
            format!("{:?} is not a dialplan context name", raw.redirect_context),
        ));
    }
    if !raw.outbound_endpoint.contains("{number}") || !raw.outbound_endpoint.contains('/') {
        return Err(SettingError::new(
            &key("outbound_endpoint"),
            format!(
                "{:?} must be a dial string with {{number}}, e.g. \"PJSIP/{{number}}@trunk\"",
                raw.outbound_endpoint
            ),
        ));
    }
    let announcement_wait_max = timeout("announcement_wait_ms_max", raw.announcement_wait_ms_max)?;
    let remote_answer_wait = timeout("remote_answer_wait_ms", raw.remote_answer_wait_ms)?;
    let auto_answer_header = if raw.auto_answer_header.trim().is_empty() {
        None
    } else {
        match raw.auto_answer_header.split_once(':') {
            Some((n, v)) if name_ok(n.trim()) && !v.trim().is_empty() => {
                Some((n.trim().to_string(), v.trim().to_string()))
            }
            _ => {
                return Err(SettingError::new(
                    &key("auto_answer_header"),
                    format!("{:?} is not \"Name: value\"", raw.auto_answer_header),
                ))
            }
        }
    };
    if !(LOST_AFTER_MS_MIN..=LOST_AFTER_MS_MAX).contains(&raw.lost_after_ms) {
        return Err(SettingError::new(
            &key("lost_after_ms"),
            format!(
                "{} is outside {LOST_AFTER_MS_MIN}..={LOST_AFTER_MS_MAX}",
                raw.lost_after_ms
            ),
        ));
    }
    Ok(AriSettings {
        url,
        ws_url,
        app: raw.app.clone(),
        user: raw.user.clone(),
        password,
        auth,
        connect_timeout,
        request_timeout,
        reconnect_backoff_base_ms: raw.reconnect_backoff_base_ms,
        reconnect_backoff_cap_ms: raw.reconnect_backoff_cap_ms,
        ping_interval,
        link_idle_timeout,
        waiting_media: raw.waiting_media,
        moh_class: raw.moh_class.clone(),
        redirect_context: raw.redirect_context.clone(),
        outbound_endpoint: raw.outbound_endpoint.clone(),
        announcement_wait_max,
        remote_answer_wait,
        auto_answer_header,
        lost_after: Duration::from_millis(raw.lost_after_ms),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw() -> AriConfig {
        toml::from_str(
            "url = \"http://127.0.0.1:8088/ari/\"\nuser = \"edgecc\"\npassword = \"s\"\n",
        )
        .unwrap()
    }

    /// Defaults fill in; the WebSocket URL follows the base URL.
    #[test]
    fn defaults_and_ws_url() {
        let s = resolve(&raw()).unwrap();
        assert_eq!(s.url, "http://127.0.0.1:8088/ari");
        assert_eq!(s.ws_url, "ws://127.0.0.1:8088/ari/events");
        assert_eq!(s.app, "edgecc");
        assert_eq!(s.auth, AriAuth::Basic);
        assert_eq!(
            s.auto_answer_header,
            Some(("Call-Info".into(), "answer-after=0".into()))
        );
        let mut r = raw();
        r.url = "https://pbx.example:8089/ari".into();
        assert_eq!(
            resolve(&r).unwrap().ws_url,
            "wss://pbx.example:8089/ari/events"
        );
    }

    /// Each bad value names its key.
    #[test]
    fn bad_values_name_their_key() {
        type Change = Box<dyn Fn(&mut AriConfig)>;
        let cases: Vec<(Change, &str)> = vec![
            (Box::new(|r| r.url = "ftp://x".into()), "pbx.ari.url"),
            (Box::new(|r| r.app = "a b".into()), "pbx.ari.app"),
            (Box::new(|r| r.user = "a:b".into()), "pbx.ari.user"),
            (Box::new(|r| r.password = None), "pbx.ari.password_file"),
            (Box::new(|r| r.auth = "digest".into()), "pbx.ari.auth"),
            (
                Box::new(|r| r.request_timeout_ms = 0),
                "pbx.ari.request_timeout_ms",
            ),
            (
                Box::new(|r| r.reconnect_backoff_cap_ms = 1),
                "pbx.ari.reconnect_backoff_cap_ms",
            ),
            (
                Box::new(|r| r.outbound_endpoint = "x".into()),
                "pbx.ari.outbound_endpoint",
            ),
            (
                Box::new(|r| r.link_idle_timeout_ms = 10),
                "pbx.ari.link_idle_timeout_ms",
            ),
            (
                Box::new(|r| r.auto_answer_header = "nocolon".into()),
                "pbx.ari.auto_answer_header",
            ),
            (
                Box::new(|r| r.lost_after_ms = LOST_AFTER_MS_MIN - 1),
                "pbx.ari.lost_after_ms",
            ),
            (
                Box::new(|r| r.lost_after_ms = LOST_AFTER_MS_MAX + 1),
                "pbx.ari.lost_after_ms",
            ),
            (
                Box::new(|r| r.password_file = Some("/nonexistent/ari".into())),
                "pbx.ari.password_file",
            ),
        ];
        for (change, key) in cases {
            let mut r = raw();
            change(&mut r);
            let SettingError { key: k, message: m } = resolve(&r).unwrap_err();
            assert_eq!(k, key, "{m}");
        }
    }

    /// A password file is read and its trailing newline dropped.
    #[test]
    fn password_file_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pw");
        std::fs::write(&p, "edgecc-secret\n").unwrap();
        let mut r = raw();
        r.password = None;
        r.password_file = Some(p);
        assert_eq!(resolve(&r).unwrap().password, "edgecc-secret");
    }
}
