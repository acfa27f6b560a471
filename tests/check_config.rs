//! `edgecc check-config`: the effective configuration with secrets
//! redacted, secret files checked, systemd credentials resolved; exit 0
//! or 1 with the file and the key named.

use crate::util::{edgecc, http_test_hash, stderr, stdout};

/// A config with a user (argon2 hash), a webhook whose URL carries a user,
/// a password and a token, and a secret file given by credential name.
fn config_text(secret_file: &str) -> String {
    format!(
        r#"
[site]
id = "branch-7"
[crm]
kind = "webhook"
[crm.webhook]
url = "https://crmuser:hunter2@crm.example.com/hook?token=tok-123&region=eu"
secret_file = "{secret_file}"
[[users]]
id = "root"
role = "admin"
password_hash = "{}"
"#,
        http_test_hash()
    )
}

/// Goal: nothing secret is printed, the rest is. Method: check a config
/// whose secrets are a password hash, URL credentials and a token, with
/// the webhook key as a systemd credential in `$CREDENTIALS_DIRECTORY`.
#[test]
fn prints_effective_configuration_with_secrets_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let creds = dir.path().join("credentials");
    std::fs::create_dir(&creds).unwrap();
    std::fs::write(creds.join("edgecc.webhook_secret"), "whsec_live_value\n").unwrap();
    let file = dir.path().join("edgecc.toml");
    std::fs::write(&file, config_text("edgecc.webhook_secret")).unwrap();

    let o = edgecc()
        .args(["check-config", file.to_str().unwrap()])
        .env("CREDENTIALS_DIRECTORY", &creds)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    for secret in [
        http_test_hash(),
        "hunter2",
        "tok-123",
        "whsec_live_value",
        "crmuser",
    ] {
        assert!(!out.contains(secret), "{secret:?} printed:\n{out}");
    }
    assert!(out.contains("branch-7"), "{out}");
    assert!(
        out.contains("<redacted>@crm.example.com/hook?token=<redacted>&region=eu"),
        "{out}"
    );
    let resolved = creds.join("edgecc.webhook_secret");
    assert!(
        out.contains(resolved.to_str().unwrap()),
        "credential path resolved:\n{out}"
    );
    assert!(out.contains("id = \"root\""), "{out}");

    // The same with --credentials-dir instead of the environment.
    let o = edgecc()
        .args(["check-config", "--credentials-dir"])
        .arg(&creds)
        .arg(&file)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    // --quiet: nothing on stdout when good.
    let o = edgecc()
        .args(["check-config", "--quiet", file.to_str().unwrap()])
        .env("CREDENTIALS_DIRECTORY", &creds)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "");
}

/// Goal: secret problems fail the check with the file and the key named.
/// Method: a credential name without a credentials directory, a missing
/// credential, a missing absolute secret file, a relative path with
/// directories; `--quiet` must not hide errors.
#[test]
fn secret_file_problems_name_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("edgecc.toml");
    let f = file.to_str().unwrap();
    let key = "crm.webhook.secret_file";

    std::fs::write(&file, config_text("edgecc.webhook_secret")).unwrap();
    let o = edgecc()
        .args(["check-config", "--quiet", f])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.contains(f) && e.contains(key) && e.contains("CREDENTIALS_DIRECTORY"),
        "{e}"
    );

    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let o = edgecc()
        .args(["check-config", f])
        .env("CREDENTIALS_DIRECTORY", &empty)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.contains(key) && e.contains("edgecc.webhook_secret"),
        "{e}"
    );

    std::fs::write(&file, config_text("/nonexistent/webhook_secret")).unwrap();
    let o = edgecc().args(["check-config", f]).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.contains(f) && e.contains(key) && e.contains("/nonexistent/webhook_secret"),
        "{e}"
    );
    assert_eq!(stdout(&o), "", "nothing printed for a bad file");

    std::fs::write(&file, config_text("secrets/webhook")).unwrap();
    let o = edgecc()
        .args(["check-config", f])
        .env("CREDENTIALS_DIRECTORY", &empty)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("relative path"), "{}", stderr(&o));
}

/// Goal: `check-config` never hangs on a secret that is not a file and
/// says what an installer should fix. Method: a FIFO nobody writes to as
/// the webhook secret is refused at once (bounded wait) as not a regular
/// file; a world-readable secret and a plaintext listener beyond loopback
/// pass with a warning each on stderr; a private secret on loopback warns
/// of nothing. (Issue 17.)
#[test]
fn secret_files_must_be_files_and_warnings_name_risks() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("edgecc.toml");
    let f = file.to_str().unwrap();

    let fifo = dir.path().join("fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo on a NUL-terminated path we own.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    std::fs::write(&file, config_text(fifo.to_str().unwrap())).unwrap();
    let mut child = edgecc()
        .args(["check-config", f])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("check-config hangs on a FIFO secret");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("not a regular file"), "{}", stderr(&o));

    let secret = dir.path().join("secret");
    std::fs::write(&secret, "s3cret\n").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(&file, config_text(secret.to_str().unwrap())).unwrap();
    let o = edgecc().args(["check-config", f]).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stderr(&o).contains("warning"), "{}", stderr(&o));

    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
    let text = format!(
        "{}\n[http]\nlisten = \"0.0.0.0:8080\"\n",
        config_text(secret.to_str().unwrap())
    );
    std::fs::write(&file, text).unwrap();
    let o = edgecc().args(["check-config", f]).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("warning") && e.contains("readable by every user"),
        "{e}"
    );
    assert!(e.contains("http.listen") && e.contains("plain HTTP"), "{e}");
}
