//! Builds the XDP program (xdp-ebpf/) for bpfel-unknown-none with Debian's Rust 1.96, whose
//! prebuilt `core` for the BPF target makes build-std unnecessary, and the shared-mode entry
//! program (bpf/shared_entry.c) with clang for libxdp's dispatcher.
use std::{env, path::PathBuf, process::Command};

use anyhow::{Context as _, anyhow, bail};
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
    build_shared_entry()?;
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

/// The dispatcher component (`[xdp] attach = "shared"`): C, because libxdp loads it through
/// libbpf, which needs BTF-defined maps and the BTF of the function it replaces in the dispatcher.
fn build_shared_entry() -> anyhow::Result<()> {
    println!("cargo:rerun-if-changed=bpf/shared_entry.c");
    let out = PathBuf::from(env::var("OUT_DIR")?).join("shared-entry.o");
    let clang = env::var("RAMPART_BPF_CLANG").unwrap_or_else(|_| "clang-14".into());
    let status = Command::new(&clang)
        .args([
            "-O2",
            "-g",
            "-target",
            "bpf",
            "-I/usr/include/x86_64-linux-gnu",
        ])
        .arg(format!("-DJUMP_MAIN={}", rampart_common::JUMP_MAIN))
        .args(["-c", "bpf/shared_entry.c", "-o"])
        .arg(&out)
        .status()
        .with_context(|| {
            format!("running {clang} (scripts/setup installs clang-14 and libbpf-dev)")
        })?;
    if !status.success() {
        bail!("{clang} failed on bpf/shared_entry.c ({status})");
    }
    Ok(())
}
