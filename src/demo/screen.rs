//! The demo's own output. On a terminal: one status line rewritten in place
//! (events print above it) while log lines go to a file the first lines
//! name; otherwise (a pipe, a file, CI) plain lines, one status a second,
//! and the logs on stderr as usual.

use std::io::{IsTerminal as _, Write as _};
use std::path::PathBuf;

/// Widest status line drawn when the terminal's width is unknown.
const COLUMNS_DEFAULT: usize = 120;

/// Where the demo's log lines go when its output is a terminal: a file in
/// the temp directory named after the process (so the CLI's log set-up and
/// the demo name the same file). `None` when stdout is not a terminal.
pub fn terminal_log_file() -> Option<PathBuf> {
    std::io::stdout()
        .is_terminal()
        .then(|| std::env::temp_dir().join(format!("edgecc-demo-{}.log", std::process::id())))
}

/// The demo's screen.
pub struct Screen {
    /// Whether stdout is a terminal (in-place status line).
    tty: bool,
    /// Whether a status line is on screen now, to be cleared first.
    status_shown: bool,
}

impl Screen {
    /// For the process's stdout.
    pub fn new() -> Screen {
        Screen {
            tty: std::io::stdout().is_terminal(),
            status_shown: false,
        }
    }

    /// Prints an event or a result line (above the status line).
    pub fn line(&mut self, text: &str) {
        let mut out = std::io::stdout().lock();
        if self.status_shown {
            let _ = write!(out, "\r\x1b[2K");
            self.status_shown = false;
        }
        let _ = writeln!(out, "{text}");
    }

    /// Shows the status: in place on a terminal (cut to its width), else a
    /// plain line.
    pub fn status(&mut self, text: &str) {
        let mut out = std::io::stdout().lock();
        if !self.tty {
            let _ = writeln!(out, "{text}");
            return;
        }
        let width = columns().saturating_sub(1).max(20);
        let cut: String = text.chars().take(width).collect();
        let _ = write!(out, "\r\x1b[2K{cut}");
        let _ = out.flush();
        self.status_shown = true;
    }

    /// Ends the status line (before the summary).
    pub fn finish(&mut self) {
        if self.status_shown {
            println!();
            self.status_shown = false;
        }
    }
}

impl Default for Screen {
    fn default() -> Self {
        Screen::new()
    }
}

/// The terminal's width in columns (`COLUMNS`, else the ioctl, else 120).
fn columns() -> usize {
    if let Some(n) = std::env::var("COLUMNS").ok().and_then(|c| c.parse().ok()) {
        return n;
    }
    let mut ws = std::mem::MaybeUninit::<libc::winsize>::zeroed();
    // SAFETY: TIOCGWINSZ writes a `winsize` into the buffer we own; on a
    // non-terminal it fails and we fall back.
    let rc = unsafe { libc::ioctl(1, libc::TIOCGWINSZ, ws.as_mut_ptr()) };
    if rc == 0 {
        // SAFETY: zero-initialised, and the ioctl succeeded.
        let ws = unsafe { ws.assume_init() };
        if ws.ws_col > 0 {
            return usize::from(ws.ws_col);
        }
    }
    COLUMNS_DEFAULT
}
