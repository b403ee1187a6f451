//! Rebuild when the linker changes (aya template); bpf-linker is found on PATH. Codegen (done by
//! bpf-linker) may use misaligned loads and stores: packet fields sit at any offset, and without
//! it LLVM splits every 2-, 4- and 8-byte packet access into single bytes, shifts and ors. The
//! kernel allows misaligned packet and map access where the CPU does (x86-64, arm64); the
//! verifier still checks stack accesses for alignment, which LLVM keeps aligned.
fn main() {
    if let Ok(p) = which::which("bpf-linker") {
        println!("cargo:rerun-if-changed={}", p.display());
    }
    println!("cargo:rustc-link-arg=--cpu-features=+allows-misaligned-mem-access");
}
