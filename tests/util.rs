//! Helpers: run the `edgecc` binary, start a daemon on a temporary data
//! directory and stop it again.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// How long a daemon may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// The binary under test.
pub fn edgecc() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_edgecc"));
    c.env_remove("STATE_DIRECTORY")
        .env_remove("RUNTIME_DIRECTORY")
        .env("EDGECC_LOG", "warn");
    c
}

/// Runs `edgecc args…` to completion.
pub fn run(args: &[&str]) -> Output {
    edgecc().args(args).output().expect("run edgecc")
}

/// Stdout of a command as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Stderr of a command as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A daemon running on its own temporary directory; killed when dropped.
pub struct Daemon {
    /// The process.
    child: Child,
    /// Holds the data directory and the socket.
    pub dir: tempfile::TempDir,
}

impl Daemon {
    /// Starts `edgecc run` on `dir` and waits until its admin socket answers.
    pub fn start_in(dir: tempfile::TempDir) -> Daemon {
        let child = edgecc()
            .args(["--data-dir"])
            .arg(dir.path().join("data"))
            .arg("--admin-socket")
            .arg(dir.path().join("admin.sock"))
            .arg("run")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn edgecc run");
        let daemon = Daemon { child, dir };
        let deadline = Instant::now() + START_TIMEOUT;
        while std::os::unix::net::UnixStream::connect(daemon.socket()).is_err() {
            assert!(Instant::now() < deadline, "daemon did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        daemon
    }

    /// The data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The admin socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("admin.sock")
    }

    /// Runs `edgecc --data-dir D --admin-socket S args…`.
    pub fn cli(&self, args: &[&str]) -> Output {
        cli_on(&self.data_dir(), &self.socket(), args)
    }

    /// Sends SIGTERM and waits for a clean exit; gives back the directory.
    pub fn stop(mut self) -> tempfile::TempDir {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let status = self.child.wait().expect("wait for daemon");
        assert!(status.success(), "daemon exited with {status}");
        let dir = tempfile::tempdir().expect("tempdir");
        std::mem::replace(&mut self.dir, dir)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `edgecc --data-dir D --admin-socket S args…`.
pub fn cli_on(data_dir: &Path, socket: &Path, args: &[&str]) -> Output {
    edgecc()
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--admin-socket")
        .arg(socket)
        .args(args)
        .output()
        .expect("run edgecc")
}
