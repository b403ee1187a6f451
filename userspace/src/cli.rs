//! The `rampart` command line (clap).
pub fn main() -> std::process::ExitCode {
    std::process::ExitCode::SUCCESS
}
