//! rampart: anycast DNS edge node. XDP fast path, authoritative slow path, health-driven BGP.
mod answer;
mod cli;
mod compile;
mod fastpath;
mod limits;
mod metrics;
mod parallel;
mod server;
mod wire;
mod zone;

fn main() -> std::process::ExitCode {
    cli::main()
}
