//! rampart: anycast DNS edge node. XDP fast path, authoritative slow path, health-driven BGP.
mod answer;
mod anycast;
mod cli;
mod compile;
mod config;
mod cookie;
mod fastpath;
mod identity;
mod instance;
mod limits;
mod metrics;
mod netlink;
mod parallel;
mod privileges;
mod respond;
mod server;
mod slow_limits;
mod wire;
mod zone;
mod zone_text;

fn main() -> std::process::ExitCode {
    cli::main()
}
