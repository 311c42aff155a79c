//! Builds clay-init as a static, stripped executable for this build's target and leaves it at `$OUT_DIR/clay-init`.
//!
//! A nested `cargo build` is the only stable way to get a binary of another package with its own flags: the init
//! needs `+crt-static` and a non-PIE relocation model (so it is "statically linked", not "static-pie"), `panic=abort`
//! and size optimization, none of which the outer build should get. The nested build uses its own target directory
//! under `OUT_DIR`, so it never waits for the outer build's directory lock, and starts from a cleared environment so
//! nothing of the outer build (its flags, target dir, wrappers, profile overrides) leaks in.

use std::env;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

/// The binary to build and the file name it gets in `OUT_DIR`.
const INIT: &str = "clay-init";

/// Rust flags for the init, as `CARGO_ENCODED_RUSTFLAGS` (0x1f-separated). `-Crelocation-model=static` links a
/// classic static executable: the kernel and `file` then see no interpreter and no self-relocation.
const RUSTFLAGS: &str = "-Ctarget-feature=+crt-static\x1f-Crelocation-model=static";

/// Release profile of the nested build, set through the environment so the workspace profile stays untouched.
const PROFILE: [(&str, &str); 5] = [
    ("CARGO_PROFILE_RELEASE_OPT_LEVEL", "s"),
    ("CARGO_PROFILE_RELEASE_LTO", "true"),
    ("CARGO_PROFILE_RELEASE_PANIC", "abort"),
    ("CARGO_PROFILE_RELEASE_STRIP", "symbols"),
    ("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "1"),
];

/// Variables passed through to the nested cargo; everything else is cleared.
const KEEP: &[&str] = &[
    "PATH",
    "HOME",
    "CARGO_HOME",
    "RUSTUP_HOME",
    "RUSTUP_TOOLCHAIN",
    // The compiler the outer cargo resolved, so both builds use the same one (not a wrapper: those are
    // RUSTC_WRAPPER and RUSTC_WORKSPACE_WRAPPER, which are dropped).
    "RUSTC",
    // The outer build's jobserver: the nested cargo takes job slots from it instead of starting its own.
    "CARGO_MAKEFLAGS",
    // What fetching crates may need when the registry cache lacks something.
    "CARGO_NET_OFFLINE",
    "CARGO_HTTP_CAINFO",
    "CARGO_HTTP_PROXY",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "TMPDIR",
];

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn var(name: &str) -> Result<OsString, String> {
    env::var_os(name).ok_or_else(|| format!("cargo did not set {name} for the build script"))
}

fn run() -> Result<(), String> {
    let manifest_dir = PathBuf::from(var("CARGO_MANIFEST_DIR")?);
    let out_dir = PathBuf::from(var("OUT_DIR")?);
    let target = var("TARGET")?.into_string().map_err(|t| format!("TARGET {t:?} is not UTF-8"))?;
    let cargo = var("CARGO")?;
    let workspace = manifest_dir.join("../..");

    for path in [
        "../clay-init/src",
        "../clay-init/Cargo.toml",
        "../clay-manifest",
        "../clay-gpt",
        "../clay-ioctl",
        "../clay-verity",
        "../../Cargo.lock",
        "../../Cargo.toml",
    ] {
        println!("cargo:rerun-if-changed={path}");
    }
    println!("cargo:rustc-env=CLAY_INIT_TARGET={target}");

    let target_dir = out_dir.join("init-target");
    let mut command = Command::new(&cargo);
    command
        .env_clear()
        .envs(KEEP.iter().filter_map(|name| env::var_os(name).map(|value| (name, value))))
        .env("CARGO_ENCODED_RUSTFLAGS", RUSTFLAGS)
        .envs(PROFILE)
        // Config files are found from the working directory: use the workspace's, as the outer build did.
        .current_dir(&workspace)
        .arg("build")
        .arg("--manifest-path")
        .arg(workspace.join("Cargo.toml"))
        .args(["--package", INIT, "--bin", INIT, "--release", "--target", &target])
        .arg("--target-dir")
        .arg(&target_dir)
        .stdin(Stdio::null());
    let output = command.output().map_err(|err| format!("cannot run {}: {err}", Path::new(&cargo).display()))?;
    if !output.status.success() {
        return Err(format!(
            "the nested build of {INIT} for {target} failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ));
    }

    let built = target_dir.join(&target).join("release").join(INIT);
    let dest = out_dir.join(INIT);
    std::fs::copy(&built, &dest)
        .map_err(|err| format!("cannot copy {} to {}: {err}", built.display(), dest.display()))?;
    Ok(())
}
