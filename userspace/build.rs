//! Builds the XDP program (xdp-ebpf/) for bpfel-unknown-none with Debian's Rust 1.96, whose
//! prebuilt `core` for the BPF target makes build-std unnecessary.
use anyhow::{Context as _, anyhow};
use aya_build::{Package, Toolchain};

fn main() -> anyhow::Result<()> {
    let metadata = cargo_metadata::MetadataCommand::new()
        .manifest_path("../xdp-ebpf/Cargo.toml")
        .no_deps()
        .exec()
        .context("cargo metadata for xdp-ebpf")?;
    let ebpf = metadata
        .packages
        .into_iter()
        .find(|p| p.name == "xdp-ebpf")
        .ok_or_else(|| anyhow!("xdp-ebpf package not found"))?;
    let root_dir = ebpf
        .manifest_path
        .parent()
        .ok_or_else(|| anyhow!("xdp-ebpf manifest has no parent"))?
        .as_str()
        .to_owned();
    // The shared map layouts are a dependency of the program too.
    println!("cargo:rerun-if-changed=../common/src");
    aya_build::build_ebpf(
        [Package {
            name: "xdp-ebpf",
            root_dir: &root_dir,
            ..Default::default()
        }],
        Toolchain::Custom("debian-1.96"),
    )
}
