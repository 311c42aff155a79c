//! End to end: the imager workflow (examples/imager). scripts/build-imager.sh builds the static clay and the
//! `FROM scratch` imager image with podman; a Containerfile whose `system` stage is the tiny example (imported as a
//! local image, no registry) runs `clay build` in the imager with the system stage mounted, `podman build --output`
//! writes the results to the host, and the UKI boots. Needs podman, musl-tools and the musl Rust target
//! (scripts/setup.sh). The static build is cached in `target/imager-static`: minutes cold, seconds warm.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// The cargo target directory this test was built in (`CARGO_BIN_EXE_clay` is `TARGET/PROFILE/clay`).
fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_clay")).parent().unwrap().parent().unwrap().to_owned()
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A command with the private podman environment.
fn with_env(mut cmd: Command, env: &[(String, String)]) -> Command {
    cmd.envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    cmd
}

fn run(mut cmd: Command) -> String {
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{cmd:?} failed:\n{}\n{stderr}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_imager_builds_a_bootable_os_inside_a_container_build() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let env = private_podman_env(w);
    // Its own target directory: cargo test holds the lock of the one it runs from, and the musl build must not
    // wait for it. It stays between runs, so only a cold cache pays for the whole static build.
    let static_target = target_dir().join("imager-static");

    // The imager, built by the script users run (podman, the private store).
    let mut cmd = with_env(Command::new("bash"), &env);
    cmd.arg(repo().join("scripts/build-imager.sh"))
        .arg("localhost/claylinux-imager")
        .args(["--isolation=chroot", "--cgroup-manager=cgroupfs"])
        .env("CARGO_TARGET_DIR", &static_target)
        .env("CONTAINER_ENGINE", "podman");
    let started = std::time::Instant::now();
    let tag = run(cmd);
    eprintln!("imager: static clay and imager image in {:.1} s", started.elapsed().as_secs_f64());
    assert_eq!(tag.lines().last(), Some("localhost/claylinux-imager"), "{tag}");

    // The binary is static: no interpreter, no shared libraries (the RUN below proves it too: the imager has no libc).
    let binary = static_target.join("x86_64-unknown-linux-musl/release/clay");
    let file = sh(&format!("file -b {}", binary.display()));
    assert!(file.contains("statically linked") && !file.contains("interpreter"), "{file}");
    let ldd = sh(&format!("ldd {} 2>&1 || true", binary.display()));
    assert!(ldd.contains("not a dynamic executable"), "{ldd}");
    let mut cmd = with_env(Command::new("podman"), &env);
    cmd.args(["image", "inspect", "--format", "{{.Config.Entrypoint}}", "localhost/claylinux-imager"]);
    let entrypoint = run(cmd);
    assert_eq!(entrypoint.trim(), "[/usr/bin/clay]");

    // The OS as a local image, as `FROM debian... AS system` would be.
    let root = w.join("rootfs");
    tiny_system(&root);
    let mut cmd = with_env(Command::new("bash"), &env);
    cmd.arg("-euc").arg(format!(
        "tar --numeric-owner --xattrs -cf {w}/base.tar -C {root} . && \
         podman import {w}/base.tar localhost/clay-tiny-base >/dev/null",
        w = w.display(),
        root = root.display()
    ));
    run(cmd);

    // The seeds' workflow: mount the system stage into the imager, keep only /out. A UKI to boot, and a hybrid ISO
    // whose BIOS entry needs the syslinux files the imager carries. `ARG IMAGER` as in examples/imager.
    let ctx = w.join("ctx");
    std::fs::create_dir(&ctx).unwrap();
    std::fs::write(
        ctx.join("Containerfile"),
        format!(
            "ARG IMAGER=localhost/claylinux-imager\n\
             FROM localhost/clay-tiny-base AS system\n\n\
             FROM ${{IMAGER}} AS build\n\
             RUN --mount=from=system,target=/system [\"clay\", \"build\", \"/system\", \"-f\", \"efi\", \"-f\", \"iso\", \
             \"--firmware\", \"hybrid\", \"--cmdline\", \"{TINY_CMDLINE}\", \"-o\", \"/out/os\"]\n\n\
             FROM scratch\nCOPY --from=build /out/ /\n"
        ),
    )
    .unwrap();
    let out = w.join("OUT");
    let mut cmd = with_env(Command::new("podman"), &env);
    cmd.args(["build", "--isolation=chroot", "--cgroup-manager=cgroupfs", "--output"])
        .arg(format!("type=local,dest={}", out.display()))
        .arg(&ctx);
    let started = std::time::Instant::now();
    run(cmd);
    eprintln!("imager: the example's podman build in {:.1} s", started.elapsed().as_secs_f64());

    let mut names: Vec<String> =
        std::fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["os.efi", "os.iso"]);
    let inspect = String::from_utf8(clay_ok(&["inspect", out.join("os.iso").to_str().unwrap()]).stdout).unwrap();
    assert!(inspect.contains("El Torito BIOS entry") && inspect.contains("El Torito UEFI entry"), "{inspect}");

    let started = std::time::Instant::now();
    let console = boot_efi(&out.join("os.efi"), TINY_MARKER, 1024, 180);
    eprintln!("imager: booted in {:.1} s", started.elapsed().as_secs_f64());
    assert!(console.contains("tiny: cmdline console=ttyS0 panic=-1 tiny.poweroff"), "{console}");
}
