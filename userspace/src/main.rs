//! rampart: anycast DNS edge node. XDP fast path, authoritative slow path, health-driven BGP.
fn main() -> std::process::ExitCode {
    rampart::cli::main()
}
