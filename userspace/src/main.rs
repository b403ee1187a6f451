//! rampart: anycast DNS edge node. XDP fast path, authoritative slow path, health-driven BGP.

/// A zone's load and compile make and free millions of small blocks on several threads:
/// mimalloc is faster there than glibc's malloc (see `heap::release_freed_memory`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    rampart::cli::main()
}
