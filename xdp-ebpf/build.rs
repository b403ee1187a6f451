//! Rebuild when the linker changes (aya template); bpf-linker is found on PATH.
fn main() {
    if let Ok(p) = which::which("bpf-linker") {
        println!("cargo:rerun-if-changed={}", p.display());
    }
}
