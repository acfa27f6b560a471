//! What edgecc writes is private whatever the umask it is started with:
//! the outbox holds callers' numbers and customer ids. (Issue 17.)

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::util::{edgecc, stderr};

/// Runs `edgecc args…` under umask 022 (a login shell's default), with
/// the environment `edgecc()` gives it, started through `sh` to set the mask.
fn run_with_umask_022(args: &[&str]) -> std::process::Output {
    let reference = edgecc();
    let mut sh = std::process::Command::new("sh");
    sh.arg("-c")
        .arg("umask 022 && exec \"$0\" \"$@\"")
        .arg(reference.get_program())
        .args(args);
    for (k, v) in reference.get_envs() {
        match v {
            Some(v) => sh.env(k, v),
            None => sh.env_remove(k),
        };
    }
    sh.output().expect("run edgecc through sh")
}

/// Every directory under `root` (itself included) is 0700 and every file
/// 0600; answers the paths that are not.
fn not_private(root: &Path) -> Vec<String> {
    let mut wrong = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let meta = std::fs::symlink_metadata(&p).expect("metadata");
        let mode = meta.permissions().mode() & 0o777;
        if meta.is_dir() {
            if mode != 0o700 {
                wrong.push(format!("{} {mode:o}", p.display()));
            }
            for e in std::fs::read_dir(&p).expect("read dir") {
                stack.push(e.expect("entry").path());
            }
        } else if mode & 0o077 != 0 {
            wrong.push(format!("{} {mode:o}", p.display()));
        }
    }
    wrong
}

/// Goal: a data directory and a backup made by hand under umask 022 are
/// readable by their owner only. Method: a one-second demo on a given
/// `--data-dir` creates the directory and fills it (sled's files, the log,
/// the demo's secret), `backup --offline` writes a backup, both started
/// through `sh -c 'umask 022; exec edgecc …'`.
#[test]
fn data_directory_and_backup_are_private_under_umask_022() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let socket = tmp.path().join("admin.sock");
    let d = data.to_str().unwrap();
    let s = socket.to_str().unwrap();
    let o = run_with_umask_022(&[
        "demo",
        "--duration",
        "1",
        "--crm-outage",
        "none",
        "--data-dir",
        d,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let backup = tmp.path().join("edgecc.backup");
    let o = run_with_umask_022(&[
        "--data-dir",
        d,
        "--admin-socket",
        s,
        "backup",
        "--offline",
        backup.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut wrong = not_private(&data);
    let mode = std::fs::metadata(&backup)
        .expect("backup")
        .permissions()
        .mode()
        & 0o777;
    if mode & 0o077 != 0 {
        wrong.push(format!("{} {mode:o}", backup.display()));
    }
    assert!(wrong.is_empty(), "readable by others: {wrong:#?}");
}
