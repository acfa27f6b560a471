//! The `edgecc` binary: parses the command line and hands over to
//! [`edgecc::cli`]. Nothing else lives here, so the integration tests drive
//! exactly what an installer runs.

fn main() -> std::process::ExitCode {
    // Before any thread starts: see the module's note.
    edgecc::memory::tune_allocator();
    edgecc::cli::main()
}
