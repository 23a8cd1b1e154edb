//! Embeds the XDP objects built by `cargo xtask build-ebpf`, so one binary
//! carries its data plane.
use std::{env, fs, path::PathBuf};

fn main() {
    let root = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap()).join("..");
    let default_dir = root.join("target/bpf/bpfel-unknown-none/release");
    let dir = env::var_os("XVS_BPF_DIR")
        .map(PathBuf::from)
        .unwrap_or(default_dir);
    let out = PathBuf::from(env::var("OUT_DIR").unwrap());
    println!("cargo:rerun-if-env-changed=XVS_BPF_DIR");
    for name in ["xvs", "xvs-baseline"] {
        let src = dir.join(name);
        println!("cargo:rerun-if-changed={}", src.display());
        if let Err(e) = fs::copy(&src, out.join(format!("{name}.bpf.o"))) {
            panic!(
                "cannot read the eBPF object {}: {e}\n\
                 Build it first with `cargo xtask build-ebpf` (or use `cargo xtask build`).",
                src.display()
            );
        }
    }
}
