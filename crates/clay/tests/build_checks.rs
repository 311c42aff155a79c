//! What a build promises without booting: reproducible bytes, an initramfs that matches the tree, and clear
//! refusals that leave nothing behind.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

fn build_with_epoch(source: &Path, out: &Path) {
    let st = clay()
        .args(["build", source.to_str().unwrap(), "-o", out.to_str().unwrap(), "--cmdline", "console=ttyS0"])
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .status()
        .unwrap();
    assert!(st.success());
}

#[test]
fn same_epoch_gives_identical_bytes_even_after_mtimes_change() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("rootfs");
    tiny_system(&root);
    build_with_epoch(&root, &work.path().join("a.efi"));
    sh(&format!("find {} -exec touch -h {{}} +", root.display()));
    build_with_epoch(&root, &work.path().join("b.efi"));
    let a = std::fs::read(work.path().join("a.efi")).unwrap();
    let b = std::fs::read(work.path().join("b.efi")).unwrap();
    assert!(a == b, "two builds with the same SOURCE_DATE_EPOCH differ");
}

#[test]
fn initramfs_reads_back_with_bsdtar_as_the_tree() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("rootfs");
    tiny_system(&root);
    sh(&format!(
        r#"cd {0}
        mkdir -p usr/bin var/lib && printf data > usr/bin/tool && chown 12:34 usr/bin/tool && chmod 2755 usr/bin/tool
        ln usr/bin/tool usr/bin/tool-link && mknod dev/null c 1 3 && mkfifo var/lib/fifo
        setcap cap_net_raw+ep usr/bin/tool && setfattr -n user.clay -v yes var/lib"#,
        root.display()
    ));
    let efi = work.path().join("os.efi");
    // The RAM root model: the whole tree is the initramfs.
    clay_ok(&["build", root.to_str().unwrap(), "--root", "ram", "-o", efi.to_str().unwrap()]);
    std::fs::write(work.path().join("initrd.zst"), pe_section(&efi, ".initrd")).unwrap();
    let listing = sh(&format!("cd {} && zstd -dc initrd.zst | bsdtar -tvf - --numeric-owner", work.path().display()));
    let find = |name: &str| -> Vec<String> {
        let line = listing.lines().find(|l| l.ends_with(&format!(" {name}")) || l.contains(&format!(" {name} ")));
        line.unwrap_or_else(|| panic!("{name} missing from\n{listing}")).split_whitespace().map(str::to_owned).collect()
    };
    assert_eq!(find("usr/bin/tool")[..4], ["-rwxr-sr-x", "2", "12", "34"]);
    assert_eq!(find("usr/bin/tool-link")[..4], ["-rwxr-sr-x", "2", "12", "34"]);
    assert_eq!(find("dev/null")[0], "crw-r--r--");
    assert_eq!(find("var/lib/fifo")[0], "prw-r--r--");
    assert_eq!(find("bin/sh").last().unwrap(), "busybox");
    assert!(find("init")[0].starts_with("-rwxr-xr-x"));
    assert!(find("dev/console")[0].starts_with("crw-------"));
    assert!(!listing.lines().any(|l| l.ends_with(".efi") || l.contains("boot/vmlinuz")), "/boot is left out");
    // Every name in the source is in the archive.
    let names = sh(&format!("cd {} && find . -mindepth 1 | sed 's|^./||' | sort", root.display()));
    for name in names.lines().filter(|n| !n.starts_with("boot/")) {
        let listed = |l: &str| {
            l.ends_with(&format!(" {name}"))
                || l.contains(&format!(" {name} -> "))
                || l.contains(&format!(" {name} link to "))
        };
        assert!(listing.lines().any(listed), "{name} missing from\n{listing}");
    }
    // xattrs travel in the manifest clay-init applies at boot.
    sh(&format!(
        "cd {} && mkdir x && cd x && zstd -dc ../initrd.zst | bsdtar -xf - .clay/xattrs",
        work.path().display()
    ));
    let manifest = std::fs::read(work.path().join("x/.clay/xattrs")).unwrap();
    let text = String::from_utf8_lossy(&manifest);
    assert!(text.contains("usr/bin/tool") && text.contains("security.capability"), "{text}");
    assert!(text.contains("var/lib") && text.contains("user.clay"), "{text}");
}

#[test]
fn inspect_shows_sections_cmdline_kernel_and_os() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("rootfs");
    let release = tiny_system(&root);
    let efi = work.path().join("os.efi");
    clay_ok(&["build", root.to_str().unwrap(), "-o", efi.to_str().unwrap(), "--cmdline", "quiet console=ttyS0"]);
    let text = String::from_utf8(clay_ok(&["inspect", efi.to_str().unwrap()]).stdout).unwrap();
    assert!(text.contains("Unified Kernel Image"), "{text}");
    assert!(text.contains(&format!("kernel:    {release}")), "{text}");
    assert!(text.contains("cmdline:   quiet console=ttyS0"), "{text}");
    assert!(text.contains("OS:        claylinux tiny example"), "{text}");
    for s in [".linux", ".osrel", ".cmdline", ".initrd", ".uname", ".sbat"] {
        assert!(text.contains(&format!("    {s}")), "{s} missing: {text}");
    }
    let json: serde_json::Value =
        serde_json::from_slice(&clay_ok(&["inspect", "--json", efi.to_str().unwrap()]).stdout).unwrap();
    assert_eq!(json["kernel_release"], release.as_str());
    // The default root model keeps the OS as a squashfs in an initramfs that is not compressed again.
    assert_eq!(json["root"]["model"], "compressed");
    assert_eq!(json["initrd_compression"], "none (or early microcode first)");
    assert_eq!(json["signed"], false);
}

/// Asserts the directory holds exactly `expected` names: no output and no temporary file left over.
fn assert_only(dir: &Path, expected: &[&str]) {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    assert_eq!(names, expected, "unexpected files in {}", dir.display());
}

#[test]
fn bad_input_gets_one_clear_sentence_and_no_output() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("rootfs");
    tiny_system(&root);
    let out = work.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let efi = out.join("os.efi");
    let build = |source: &Path, extra: &[&str]| {
        let mut c = clay();
        c.args(["build", source.to_str().unwrap(), "-o", efi.to_str().unwrap()]).args(extra);
        c
    };

    // No kernel.
    let bare = work.path().join("bare");
    sh(&format!("mkdir -p {0}/etc && cp -a {1}/bin {0}/", bare.display(), root.display()));
    let err = clay_err(&mut build(&bare, &[]));
    assert!(err.contains("clay: error: no kernel found in the image; searched /boot/vmlinuz-*"), "{err}");

    // Two kernels.
    sh(&format!("cp {0}/boot/vmlinuz-* {0}/boot/vmlinuz-other && printf x >> {0}/boot/vmlinuz-other", root.display()));
    let err = clay_err(&mut build(&root, &[]));
    assert!(err.contains("found 2 kernels (/boot/vmlinuz-"), "{err}");
    assert!(err.contains("pick one with --kernel PATH"), "{err}");
    sh(&format!("rm {}/boot/vmlinuz-other", root.display()));

    // A missing stub.
    let err = clay_err(&mut build(&root, &["--stub", "/nonexistent/linuxx64.efi.stub"]));
    assert!(err.contains("cannot read the EFI stub `/nonexistent/linuxx64.efi.stub`"), "{err}");

    // A file of 4 GiB (sparse, so the test costs nothing).
    sh(&format!("truncate -s 4G {}/big.img", root.display()));
    let err = clay_err(&mut build(&root, &["--root", "ram"]));
    assert!(err.contains("`big.img` is 4294967296 bytes; cpio newc records sizes in 32 bits"), "{err}");
    sh(&format!("rm {}/big.img", root.display()));

    // An unknown compression, a missing source, an image transport not supported yet.
    let err = clay_err(&mut build(&root, &["--compression", "bzip2"]));
    assert!(err.contains("unknown compression `bzip2`"), "{err}");
    let err = clay_err(&mut build(&work.path().join("missing"), &[]));
    assert!(err.contains("does not exist"), "{err}");
    let err = clay_err(clay().args(["build", "oci-archive:x.tar", "-o", efi.to_str().unwrap()]));
    assert!(err.contains("`x.tar` does not exist"), "{err}");
    let err = clay_err(clay().args(["build", "containers-storage:x", "-o", efi.to_str().unwrap()]));
    assert!(err.contains("the containers-storage: transport is not supported yet"), "{err}");

    // An unreadable file: run clay as an unprivileged user on a tree with a file only root may read.
    sh(&format!(
        "cp -a {0} {1}/ro && chmod -R o+rX {1} && printf s > {1}/ro/secret && chmod 600 {1}/ro/secret && chmod 777 {2}",
        root.display(),
        work.path().display(),
        out.display()
    ));
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", env!("CARGO_BIN_EXE_clay"), "build"])
        .arg(work.path().join("ro"))
        .args(["-o", efi.to_str().unwrap()]);
    let err = clay_err(&mut cmd);
    assert!(err.contains("secret`: Permission denied"), "{err}");

    assert_only(&out, &[]);
}

#[test]
fn registries_conf_blocks_images_and_a_broken_one_is_named() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let out = w.join("out");
    std::fs::create_dir(&out).unwrap();
    let efi = out.join("os.efi");
    let conf = w.join("registries.conf");
    std::fs::write(
        &conf,
        "[[registry]]\nprefix = \"docker.io/library\"\nlocation = \"docker.io/library\"\nblocked = true\n",
    )
    .unwrap();
    let build = |image: &str| {
        let mut c = clay();
        c.args(["build", image, "-o", efi.to_str().unwrap()]).env("HOME", w);
        c
    };
    // Named by podman's variable: the short name is Docker Hub's library, which the file blocks, before any request.
    let err = clay_err(build("docker://alpine:3").env("CONTAINERS_REGISTRIES_CONF", &conf));
    let said = format!("pulling docker.io/library/alpine:3 is blocked: {} blocks `docker.io/library`", conf.display());
    assert!(err.contains(&said), "{err}");
    // Named by the option, which comes before the variable.
    let broken = w.join("broken.conf");
    std::fs::write(&broken, "[[registry]]\nlocation = \"https://mirror.example\"\n").unwrap();
    let err = clay_err(
        build("docker://alpine:3").arg("--registries-conf").arg(&broken).env("CONTAINERS_REGISTRIES_CONF", &conf),
    );
    let said = format!(
        "the registries configuration {} is unusable: `https://mirror.example` has a URL scheme",
        broken.display()
    );
    assert!(err.contains(&said), "{err}");
    let err = clay_err(build("docker://alpine:3").arg("--registries-conf").arg(w.join("none.conf")));
    assert!(err.contains("none.conf is unusable: reading it failed"), "{err}");
    assert_only(&out, &[]);
    // A build from a directory does not read it.
    let root = w.join("rootfs");
    tiny_system(&root);
    let built = clay()
        .args(["build", root.to_str().unwrap(), "-o", efi.to_str().unwrap()])
        .env("CONTAINERS_REGISTRIES_CONF", &broken)
        .output()
        .unwrap();
    assert!(built.status.success(), "{}", String::from_utf8_lossy(&built.stderr));
}

#[test]
fn sockets_are_skipped_with_a_warning() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("rootfs");
    tiny_system(&root);
    sh(&format!("python3 -c 'import socket; socket.socket(socket.AF_UNIX).bind(\"{}/run/app.sock\")'", root.display()));
    let efi = work.path().join("os.efi");
    let out = clay_ok(&["build", root.to_str().unwrap(), "-o", efi.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("clay: warning: skipping socket `") && stderr.contains("app.sock"), "{stderr}");
}

#[test]
fn a_full_disk_fails_cleanly() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("rootfs");
    tiny_system(&root);
    let small = work.path().join("small");
    std::fs::create_dir(&small).unwrap();
    // A 4 MiB filesystem cannot hold the UKI (the kernel alone is larger). Needs root, as CI has.
    sh(&format!("mount -t tmpfs -o size=4m clay-test {}", small.display()));
    let result = clay().args(["build", root.to_str().unwrap(), "-o"]).arg(small.join("os.efi")).output().unwrap();
    let leftover: Vec<_> = std::fs::read_dir(&small).unwrap().map(|e| e.unwrap().file_name()).collect();
    sh(&format!("umount {}", small.display()));
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(!result.status.success());
    assert!(stderr.contains("No space left on device"), "{stderr}");
    assert!(leftover.is_empty(), "left behind: {leftover:?}");
}

/// The request line of the HTTP request `reader` is at (its headers read and dropped); `None` if it cannot be read.
fn read_request(reader: &mut impl std::io::BufRead) -> Option<String> {
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).map_or(true, |n| n == 0) || header.trim().is_empty() {
            break;
        }
    }
    Some(line.trim().to_owned())
}

/// A registry on loopback that serves one image, `clay/slow:1`, whose layer never finishes downloading: it sends a
/// little, says so through `started`, and stalls.
fn stalling_registry(started: std::sync::Arc<std::sync::atomic::AtomicBool>) -> u16 {
    use sha2::{Digest, Sha256};
    use std::io::{BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let sha = |b: &[u8]| format!("sha256:{:x}", Sha256::digest(b));
    let config = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#.to_vec();
    let layer_digest = sha(b"never sent whole");
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{layer_digest}","size":67108864}}]}}"#,
        sha(&config),
        config.len()
    );
    let config_path = format!("/v2/clay/slow/blobs/{}", sha(&config));
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let Some(line) = read_request(&mut reader) else { continue };
            let path = line.split_whitespace().nth(1).unwrap_or_default().to_owned();
            let (kind, body): (&str, Vec<u8>) = match path.as_str() {
                "/v2/" => ("application/json", b"{}".to_vec()),
                "/v2/clay/slow/manifests/1" => ("application/vnd.oci.image.manifest.v1+json", manifest.clone().into()),
                p if p == config_path => ("application/octet-stream", config.clone()),
                p if p.contains("/blobs/") => {
                    let head =
                        "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 67108864\r\n\r\n";
                    let _ = stream.write_all(head.as_bytes());
                    let _ = stream.write_all(&vec![0u8; 256 << 10]);
                    started.store(true, std::sync::atomic::Ordering::SeqCst);
                    std::thread::sleep(std::time::Duration::from_secs(60));
                    continue;
                }
                _ => {
                    let _ =
                        stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                    continue;
                }
            };
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
        }
    });
    port
}

#[test]
fn registries_are_reached_through_the_proxy_the_environment_names() {
    use std::io::{BufRead, BufReader, Write};
    // A proxy that opens tunnels (CONNECT) only to the registry, a host that does not resolve, and answers for it
    // at the other end: in plain HTTP, refusing TLS. Only a request through the proxy can get an answer.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let proxy = format!("http://{}", listener.local_addr().unwrap());
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let request = |reader: &mut BufReader<std::net::TcpStream>| {
                let line = read_request(reader).unwrap_or_default();
                log.lock().unwrap().push(line.clone());
                line
            };
            if !request(&mut reader).starts_with("CONNECT registry.invalid:5000 ") {
                let _ = stream.write_all(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n");
                continue;
            }
            let _ = stream.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n");
            // Through the tunnel: a TLS handshake (0x16) is dropped; a plain request is answered.
            if reader.fill_buf().map_or(true, |b| b.first() == Some(&0x16)) {
                continue;
            }
            let (status, body) = match request(&mut reader).split_whitespace().nth(1) {
                Some("/v2/") => ("200 OK", "{}"),
                _ => ("404 Not Found", r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#),
            };
            let reply = format!(
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(reply.as_bytes());
        }
    });
    let out = tempfile::tempdir().unwrap();
    let err = clay_err(
        clay()
            .args(["build", "docker://registry.invalid:5000/clay/x:1", "--tls-verify=false", "-o"])
            .arg(out.path().join("os.efi"))
            .env("HTTPS_PROXY", &proxy)
            .env_remove("ALL_PROXY")
            .env_remove("all_proxy")
            .env_remove("NO_PROXY")
            .env_remove("no_proxy"),
    );
    assert!(err.contains("the registry registry.invalid:5000 has no manifest `1` of clay/x"), "{err}");
    let seen = seen.lock().unwrap();
    assert!(seen.iter().any(|l| l.starts_with("CONNECT registry.invalid:5000")), "{seen:?}");
    assert!(seen.iter().any(|l| l.starts_with("GET /v2/clay/x/manifests/1 ")), "{seen:?}");
    assert_only(out.path(), &[]);
}

#[test]
fn an_interrupted_pull_leaves_nothing_in_the_temporary_directory() {
    let work = tempfile::tempdir().unwrap();
    let tmp = work.path().join("tmp");
    let out = work.path().join("out");
    std::fs::create_dir_all(&tmp).unwrap();
    let started = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let port = stalling_registry(started.clone());
    let child = clay()
        .args(["build", &format!("docker://127.0.0.1:{port}/clay/slow:1"), "--tls-verify=false", "-o"])
        .arg(out.join("os.efi"))
        .env("TMPDIR", &tmp)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Interrupt once the layer is coming in, the pulled blobs half written under TMPDIR.
    wait_until("the pull never reached the layer", || started.load(std::sync::atomic::Ordering::SeqCst));
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(std::fs::read_dir(&tmp).unwrap().count() > 0, "the pull keeps nothing under TMPDIR");
    sh(&format!("kill -INT {}", child.id()));
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(130), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stderr).contains("interrupted; no output was written"));
    assert_only(&tmp, &[]);
    assert!(!out.exists() || std::fs::read_dir(&out).unwrap().count() == 0);
}

#[test]
fn an_interrupted_containerfile_build_leaves_nothing_in_the_engines_store() {
    // A stand-in podman that logs what it is asked, builds at once and saves until it is stopped.
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let (tmp, ctx) = (w.join("tmp"), w.join("ctx"));
    for dir in [&tmp, &ctx] {
        std::fs::create_dir_all(dir).unwrap();
    }
    std::fs::write(ctx.join("Containerfile"), "FROM scratch\n").unwrap();
    let saving = write_pid(&w.join("saving"));
    let podman = format!("echo \"$*\" >> {}/log\ncase \"$1\" in save)\n{saving}exec sleep 600 ;; esac\n", w.display());
    let path = stand_in(&w.join("bin"), "podman", &podman);
    let mut child = clay()
        .args(["build", "--containerfile"])
        .arg(ctx.join("Containerfile"))
        .arg("-o")
        .arg(w.join("out/os.efi"))
        .env("CLAY_CONTAINER_ENGINE", "podman")
        .env("PATH", path)
        .env("TMPDIR", &tmp)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let save = pid_from(&w.join("saving"), "the image's save");
    // Only clay gets the signal, as from `kill` or a service manager: it must stop the engine itself. A save left
    // running would hold clay's stderr, so it is ended either way before reading what clay said.
    sh(&format!("kill -INT {}", child.id()));
    let status = child.wait().unwrap();
    assert!(ends_soon(save), "clay left the engine's save running after it was interrupted");
    let mut said = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut said).unwrap();
    assert_eq!(status.code(), Some(130), "{said}");
    // The tag the build made is the one removed, and the saved archive's directory is gone.
    let log = std::fs::read_to_string(w.join("log")).unwrap();
    let tag = log.lines().next().and_then(|l| l.split_whitespace().skip_while(|a| *a != "-t").nth(1)).unwrap();
    assert!(tag.starts_with("localhost/clay-build-"), "{log}");
    assert_eq!(log.lines().last(), Some(format!("rmi -f {tag}").as_str()), "{log}");
    assert_only(&tmp, &[]);
    assert!(!w.join("out/os.efi").exists());
}

#[test]
fn a_credential_helper_still_running_is_stopped_with_clay() {
    // A credential helper that never answers: clay waits for it when it opens the registry session.
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let path = stand_in(
        &w.join("bin"),
        "docker-credential-claystall",
        &format!("{}exec sleep 600\n", write_pid(&w.join("helper"))),
    );
    std::fs::write(w.join("auth.json"), r#"{"credHelpers": {"127.0.0.1:9": "claystall"}}"#).unwrap();
    let mut child = clay()
        .args(["build", "docker://127.0.0.1:9/clay/never:1", "--tls-verify=false", "-o"])
        .arg(w.join("out/os.efi"))
        .env("PATH", path)
        .env("REGISTRY_AUTH_FILE", w.join("auth.json"))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let helper = pid_from(&w.join("helper"), "the credential helper");
    sh(&format!("kill -TERM {}", child.id()));
    let status = child.wait().unwrap();
    let stopped = ends_soon(helper);
    let mut said = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut said).unwrap();
    assert!(stopped, "clay left its credential helper running: {said}");
    // The helper's end is not reported as its failure: the interrupt is what ended the run.
    assert_eq!(status.code(), Some(130), "{said}");
    assert!(said.contains("interrupted") && !said.contains("error"), "{said}");
}

#[test]
fn an_interrupted_build_leaves_nothing() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("rootfs");
    tiny_system(&root);
    // Enough incompressible data that xz is still busy when the signal arrives.
    sh(&format!("head -c 64M /dev/urandom > {}/noise", root.display()));
    let out = work.path().join("out");
    let mut child = clay()
        .args(["build", root.to_str().unwrap(), "--root", "ram", "--compression", "xz:9", "-o"])
        .arg(out.join("os.efi"))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the output's temporary file exists, then interrupt.
    wait_until("the build never started writing", || std::fs::read_dir(&out).map(|d| d.count()).unwrap_or(0) > 0);
    sh(&format!("kill -TERM {}", child.id()));
    let status = child.wait().unwrap();
    assert!(!status.success());
    assert_only(&out, &[]);
}
