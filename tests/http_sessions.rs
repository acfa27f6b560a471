//! Sessions across a restart (issue 15), over real HTTP on 127.0.0.1: a
//! desktop's or a wallboard's token still works after the system stopped
//! and a new one started on the same data directory (REST and WebSocket);
//! a logout and a password change stay done; a corrupt session record is
//! skipped; the token itself is never written to the data directory.
//!
//! Each life of the daemon runs on its own actix system in its own
//! thread, assembled as `edgecc run` assembles it, so that everything it
//! held (actors, HTTP workers, the storage) is gone before the next life
//! opens the directory.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::Value;

use crate::util::{http_config, HTTP_TEST_PASSWORD};
use edgecc::system::storage::Tree;

/// Long token lifetime and desktop grace: these tests are not about them.
const LONG_MS: u64 = 3_600_000;

/// One running life of the daemon, as a test sees it.
struct Life {
    /// `http://127.0.0.1:PORT`.
    base: String,
    /// `127.0.0.1:PORT`, for WebSocket URLs.
    addr: String,
    /// Applies a reloaded config (users), as SIGHUP does.
    control: edgecc::http::HttpControl,
    /// The life's data directory, to look into the sessions tree.
    storage: edgecc_storage::Storage,
}

impl Life {
    fn client() -> awc::Client {
        awc::Client::builder()
            .timeout(Duration::from_secs(10))
            .finish()
    }

    /// Logs `user` in; answers the token.
    async fn login(&self, user: &str) -> String {
        let mut res = Self::client()
            .post(format!("{}/api/v1/session", self.base))
            .force_close()
            .send_json(&serde_json::json!({"agent_id": user, "password": HTTP_TEST_PASSWORD}))
            .await
            .expect("login request");
        assert_eq!(res.status().as_u16(), 200, "login {user}");
        let v: Value = res.json().await.expect("login json");
        v["token"].as_str().expect("token").to_owned()
    }

    /// `method path` with `token`; answers the status.
    async fn status(&self, method: &str, path: &str, token: &str) -> u16 {
        let method = awc::http::Method::from_bytes(method.as_bytes()).expect("method");
        Self::client()
            .request(method, format!("{}{path}", self.base))
            .force_close()
            .insert_header(("Authorization", format!("Bearer {token}")))
            .send()
            .await
            .expect("request")
            .status()
            .as_u16()
    }

    /// Opens the event stream with `?token=`; answers the first message's
    /// `type`, or the handshake's refusal status. Closes the stream as a
    /// browser does (the server's end of it holds the storage until then).
    async fn ws_first(&self, token: &str) -> Result<String, u16> {
        let url = format!("ws://{}/api/v1/events?token={token}", self.addr);
        let mut conn = match awc::Client::new().ws(url).connect().await {
            Ok((_, conn)) => conn,
            Err(awc::error::WsClientError::InvalidResponseStatus(s)) => return Err(s.as_u16()),
            Err(e) => panic!("ws connect: {e}"),
        };
        let first = loop {
            let frame = tokio::time::timeout(Duration::from_secs(10), conn.next())
                .await
                .expect("a message within 10 s");
            match frame {
                Some(Ok(awc::ws::Frame::Text(bytes))) => {
                    let v: Value = serde_json::from_slice(&bytes).expect("json message");
                    break v["type"].as_str().unwrap_or("").to_owned();
                }
                Some(Ok(_)) => {}
                other => panic!("stream ended before a message: {other:?}"),
            }
        };
        let _ = conn.send(awc::ws::Message::Close(None)).await;
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            while let Some(Ok(frame)) = conn.next().await {
                if matches!(frame, awc::ws::Frame::Close(_)) {
                    break;
                }
            }
        })
        .await;
        Ok(first)
    }
}

/// Opens the data directory once the previous life let it go: sled's own
/// threads (its flusher, its I/O pool) hold its file lock for a while after
/// the storage closed, seconds on a box busy with fsyncs (a new process
/// never sees this: the old one has exited). Bounded.
fn open_when_free(config: &edgecc::config::Config, data_dir: &Path) -> edgecc_storage::Storage {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        match edgecc::system::storage::open_storage(config, data_dir) {
            Ok(storage) => return storage,
            Err(e) if matches!(e.source, edgecc_storage::StorageError::Locked { .. }) => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "the previous life still holds the directory"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("storage: {e}"),
        }
    }
}

/// Runs one life of the daemon on `data_dir` with `config`: starts the
/// system with HTTP on its own actix system in a new thread, runs `body`,
/// shuts the system down; answers what `body` answered once the thread
/// (and so everything the life held) is gone.
fn life<T, F, Fut>(data_dir: &Path, config: edgecc::config::Config, body: F) -> T
where
    T: Send + 'static,
    F: FnOnce(Life) -> Fut + Send + 'static,
    Fut: Future<Output = T>,
{
    let data_dir = data_dir.to_path_buf();
    std::thread::spawn(move || {
        actix_rt::System::new().block_on(async move {
            let storage = open_when_free(&config, &data_dir);
            let system = edgecc::system::SystemParts::new(config, storage)
                .serve_http(None)
                .start()
                .await
                .expect("system");
            let http = system.http.as_ref().expect("http");
            let life = Life {
                base: format!("http://{}", http.local_addr),
                addr: http.local_addr.to_string(),
                control: http.control.clone(),
                storage: system.storage.clone(),
            };
            let out = body(life).await;
            system.shutdown().await;
            out
        })
    })
    .join()
    .expect("life thread")
}

/// Every file under `dir`.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// Whether any file under `dir` contains `needle`.
fn on_disk(dir: &Path, needle: &[u8]) -> bool {
    files(dir).iter().any(|f| {
        std::fs::read(f)
            .map(|bytes| bytes.windows(needle.len()).any(|w| w == needle))
            .unwrap_or(false)
    })
}

/// Goal: a restart logs no one out, and what ended stays ended. Method:
/// life 1 logs in an agent (ann), a supervisor's wallboard (sue) and an
/// admin (root), and root logs out; life 2 on the same directory: ann's
/// token works over REST and opens the event stream (snapshot), sue's
/// opens the wallboard, root's is refused; ann logs out, bob logs in, and
/// a reload changes sue's password (her session ends at once); life 3,
/// started with the changed config and a corrupt record planted in the
/// sessions tree: bob's token works, ann's and sue's do not, and the tree
/// holds bob's session alone (the rest removed at the start). No token is
/// found in any file of the data directory, while its SHA-256 is.
#[test]
fn sessions_survive_a_restart_and_revocations_stay() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let config = http_config(LONG_MS, LONG_MS);

    let (ann, sue, root) = life(&data, config.clone(), |l| async move {
        let ann = l.login("ann").await;
        let sue = l.login("sue").await;
        let root = l.login("root").await;
        assert_eq!(l.status("GET", "/api/v1/me", &ann).await, 200);
        assert_eq!(l.status("DELETE", "/api/v1/session", &root).await, 204);
        (ann, sue, root)
    });
    assert!(
        !on_disk(&data, ann.as_bytes()),
        "the token is never written"
    );
    assert!(
        on_disk(&data, &edgecc::http::sessions::TokenHash::of(&ann).0),
        "its hash is (the search can find what is there)"
    );

    let mut changed = config.clone();
    let sue_user = changed
        .users
        .iter_mut()
        .find(|u| u.id == "sue")
        .expect("sue");
    sue_user.password_hash = edgecc::http::hash_password("a new password").expect("hash");
    let reload = changed.clone();
    let (ann2, sue2) = (ann.clone(), sue.clone());
    let bob = life(&data, config.clone(), move |l| async move {
        assert_eq!(
            l.status("GET", "/api/v1/me", &ann2).await,
            200,
            "ann after restart"
        );
        assert_eq!(l.ws_first(&ann2).await, Ok("snapshot".to_string()));
        assert_eq!(l.status("GET", "/api/v1/wallboard", &sue2).await, 200);
        assert_eq!(l.ws_first(&sue2).await, Ok("wallboard".to_string()));
        assert_eq!(
            l.status("GET", "/api/v1/me", &root).await,
            401,
            "logged out"
        );
        assert_eq!(l.ws_first(&root).await, Err(401));

        assert_eq!(l.status("DELETE", "/api/v1/session", &ann2).await, 204);
        assert_eq!(l.status("GET", "/api/v1/me", &ann2).await, 401);
        let bob = l.login("bob").await;
        l.control.apply(&reload);
        assert_eq!(
            l.status("GET", "/api/v1/wallboard", &sue2).await,
            401,
            "password changed"
        );
        assert_eq!(l.status("GET", "/api/v1/me", &bob).await, 200);
        bob
    });

    // A corrupt record and a key that is no hash, as a damaged disk or an
    // older version might leave.
    {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let storage = open_when_free(&changed, &data);
            let tree = Tree::HttpSessions.open(&storage).expect("tree");
            tree.put(&[7u8; 32], b"{\"v\":1,\"user_id\":")
                .await
                .expect("put");
            tree.put(b"short", b"\xff\xfe").await.expect("put");
        });
    }

    let (ann3, sue3) = (ann.clone(), sue.clone());
    life(&data, changed.clone(), move |l| async move {
        assert_eq!(l.status("GET", "/api/v1/me", &bob).await, 200, "bob kept");
        assert_eq!(l.ws_first(&bob).await, Ok("snapshot".to_string()));
        assert_eq!(
            l.status("GET", "/api/v1/me", &ann3).await,
            401,
            "ann logged out"
        );
        assert_eq!(
            l.status("GET", "/api/v1/wallboard", &sue3).await,
            401,
            "sue's password changed"
        );
        assert_eq!(l.ws_first(&sue3).await, Err(401));
        // The start removed the corrupt entries and the ended sessions;
        // the live one stays.
        let tree = Tree::HttpSessions.open(&l.storage).expect("tree");
        let keys: Vec<Vec<u8>> = tree.iter().map(|kv| kv.expect("entry").0).collect();
        let bob_key = edgecc::http::sessions::TokenHash::of(&bob).0.to_vec();
        assert_eq!(keys, vec![bob_key], "only bob's session is left");
    });
}
