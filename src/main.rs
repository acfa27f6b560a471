//! The `edgecc` binary: parses the command line and hands over to
//! [`edgecc::cli`]. Nothing else lives here, so the integration tests drive
//! exactly what an installer runs.

fn main() -> std::process::ExitCode {
    // Before any thread starts: see the module's note.
    edgecc::memory::tune_allocator();
    // Everything edgecc creates is private whatever the caller's umask (the
    // data directory 0700, its files, sockets and backups 0600): the outbox
    // holds callers' numbers and customer ids. systemd's unit sets the same
    // (UMask=0077); this covers a run by hand.
    // SAFETY: umask only sets the process's file-mode creation mask.
    unsafe { libc::umask(0o077) };
    edgecc::cli::main()
}
