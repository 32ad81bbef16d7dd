//! The `torrentphile` binary: everything is in the library's `cli` module.

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    torrentphile::cli::main(&args)
}
