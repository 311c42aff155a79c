//! End to end: the tiny system as a container image (`podman import`, then a `podman build` layer that adds a file
//! and deletes one), saved as oci-archive, docker-archive and an OCI layout (`skopeo copy`), each built into a UKI
//! that boots under OVMF with the layer's changes applied. Needs podman and skopeo (scripts/setup.sh).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use clay_testkit::registry::{Registry, Tls};
use common::*;

/// What the image's upper layer writes, as the tiny init reports it.
const ADDED: &str = "added by a container layer";

/// podman with its storage (vfs, so no mounts are needed) and run state inside `work`: the host's image store is
/// never touched, and tests can run side by side.
fn podman(work: &Path) -> String {
    format!(
        "podman --root {0}/storage --runroot {0}/run --storage-driver vfs --cgroup-manager=cgroupfs \
         --events-backend=none",
        work.display()
    )
}

#[test]
fn container_images_in_every_local_transport_boot_with_their_layers_merged() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let root = w.join("rootfs");
    tiny_system(&root);
    let podman = podman(w);
    sh(&format!(
        "cd {w}
         tar --numeric-owner --xattrs -cf base.tar -C {root} .
         {podman} import base.tar localhost/clay-tiny-base >/dev/null
         printf '%s\\n' 'FROM localhost/clay-tiny-base' \
           'RUN echo \"{ADDED}\" > /etc/added-by-layer && rm /bin/vi' > Containerfile
         {podman} build --isolation=chroot --cgroup-manager=cgroupfs -q -t localhost/clay-tiny-layered \
           -f Containerfile . >/dev/null
         {podman} save -q --format oci-archive -o image-oci.tar localhost/clay-tiny-layered
         {podman} save -q --format docker-archive -o image-docker.tar localhost/clay-tiny-layered
         {podman} save -q -m --format docker-archive -o images-docker.tar localhost/clay-tiny-base \
           localhost/clay-tiny-layered
         skopeo copy -q oci-archive:image-oci.tar oci:layout:latest
         {podman} rmi -f localhost/clay-tiny-layered localhost/clay-tiny-base >/dev/null",
        w = w.display(),
        root = root.display(),
    ));

    let sources = [
        format!("oci-archive:{}/image-oci.tar", w.display()),
        // The archive's own ref name holds a `/` and a `:`; the tag still splits off after the existing path.
        format!("oci-archive:{}/image-oci.tar:localhost/clay-tiny-layered:latest", w.display()),
        format!("docker-archive:{}/image-docker.tar", w.display()),
        format!("oci:{}/layout:latest", w.display()),
    ];
    for (i, source) in sources.iter().enumerate() {
        let efi = w.join(format!("out/image-{i}.efi"));
        clay_ok(&["build", source, "-f", "efi", "-o", efi.to_str().unwrap(), "--cmdline", TINY_CMDLINE]);
        // The second spelling reads the same image; booting it again would prove nothing new.
        if i == 1 {
            continue;
        }
        let console = boot_efi(&efi, TINY_MARKER, 1024, 180);
        assert!(console.contains(&format!("tiny: layer-file {ADDED}, /bin/vi absent")), "{source}:\n{console}");
        assert!(console.contains("tiny: hosts 127.0.0.1 localhost tiny"), "{source}:\n{console}");
    }
    // The oci-archive's layers are gzip: while they inflated, blocks of the root image were compressed ahead on
    // the idle cores. The docker-archive's layers are plain, so none were. The same image gives the same bytes.
    let ahead = std::fs::read(w.join("out/image-0.efi")).unwrap();
    let plain = std::fs::read(w.join("out/image-2.efi")).unwrap();
    assert!(ahead == plain, "the UKI from gzip layers differs from the UKI from the same layers uncompressed");

    // `podman save -m` put the base and the layered image in one archive: one is chosen by its tag (in any
    // spelling that normalises to it) or by position, and is the same image, so the same bytes, as saved alone.
    let several = format!("docker-archive:{}/images-docker.tar", w.display());
    let uki_of = |source: &str, name: &str| {
        let efi = w.join("out").join(name);
        let out = clay_ok(&["build", source, "-f", "efi", "-o", efi.to_str().unwrap(), "--cmdline", TINY_CMDLINE]);
        (std::fs::read(efi).unwrap(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    for (i, which) in ["localhost/clay-tiny-layered", "localhost/clay-tiny-layered:latest", "@1"].iter().enumerate() {
        let (uki, _) = uki_of(&format!("{several}:{which}"), &format!("chosen-{i}.efi"));
        assert!(uki == plain, "`{several}:{which}` is not the layered image");
    }
    assert!(uki_of(&format!("{several}:@0"), "base.efi").0 != plain, "`{several}:@0` is the layered image too");
    // A short name means Docker Hub's image, which the archive does not hold; podman users mean their own.
    let (uki, stderr) = uki_of(&format!("{several}:clay-tiny-layered"), "short.efi");
    assert!(uki == plain, "`{several}:clay-tiny-layered` is not the layered image");
    assert!(
        stderr.contains(
            "`clay-tiny-layered` means `docker.io/library/clay-tiny-layered:latest`, which the archive does not hold; \
             read `localhost/clay-tiny-layered:latest`, as podman names its own images"
        ),
        "{stderr}"
    );
    let out = w.join("out/several.efi");
    let err = clay_err(clay().args(["build", &several, "-f", "efi", "-o", out.to_str().unwrap()]));
    assert!(err.contains(&format!("holds several images; name one as `{several}:REF` or by position")), "{err}");
    assert!(err.contains("`localhost/clay-tiny-base:latest` (@0), `localhost/clay-tiny-layered:latest` (@1)"), "{err}");
    let err = clay_err(clay().args(["build", &format!("{several}:clay-tiny-other"), "-o", out.to_str().unwrap()]));
    assert!(err.contains("has no image tagged `clay-tiny-other`; it has `localhost/clay-tiny-base:latest`"), "{err}");
    assert!(!out.exists());

    // A layer changed after it was saved. The docker-archive's layers are plain tars, so this one still reads and
    // the OS is built from it while its digest is checked; the check fails and nothing is written.
    let mut bytes = std::fs::read(w.join("image-docker.tar")).unwrap();
    let needle = format!("{ADDED}\n");
    let at = bytes.windows(needle.len()).position(|win| win == needle.as_bytes()).unwrap();
    bytes[at] ^= 0x20;
    let tampered = w.join("tampered.tar");
    std::fs::write(&tampered, bytes).unwrap();
    let out_dir = w.join("tampered-out");
    let err = clay_err(
        clay()
            .args(["build", &format!("docker-archive:{}", tampered.display()), "-f", "efi", "-o"])
            .arg(out_dir.join("os.efi")),
    );
    assert!(err.contains("does not match its digest"), "{err}");
    let left: Vec<_> =
        std::fs::read_dir(&out_dir).map(|d| d.map(|e| e.unwrap().file_name()).collect()).unwrap_or_default();
    assert!(left.is_empty(), "a build from a tampered layer left {left:?}");

    // The same image from a real registry on loopback (htpasswd auth): skopeo pushes it, clay pulls it with the
    // credentials of an auth file, and the UKI boots; wrong credentials fail in one sentence with no output.
    let reg = Registry::start();
    sh(&format!(
        "skopeo --insecure-policy copy -q --dest-tls-verify=false --dest-creds {creds} oci-archive:{w}/image-oci.tar \
         docker://{host}/clay/tiny:1",
        creds = reg.creds(),
        w = w.display(),
        host = reg.host()
    ));
    let reference = format!("docker://{}/clay/tiny:1", reg.host());
    let efi = w.join("out/registry.efi");
    let good = reg.auth_file(w, clay_testkit::registry::USER, clay_testkit::registry::PASSWORD);
    let out = clay()
        .args(["build", &reference, "--tls-verify=false", "-f", "efi", "--cmdline", TINY_CMDLINE, "-o"])
        .arg(&efi)
        .env("REGISTRY_AUTH_FILE", &good)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let console = boot_efi(&efi, TINY_MARKER, 1024, 180);
    assert!(console.contains(&format!("tiny: layer-file {ADDED}, /bin/vi absent")), "registry:\n{console}");
    let bad = reg.auth_file(w, clay_testkit::registry::USER, "wrong");
    let out_bad = w.join("out/bad.efi");
    let err = clay_err(
        clay()
            .args(["build", &reference, "--tls-verify=false", "-f", "efi", "-o"])
            .arg(&out_bad)
            .env("REGISTRY_AUTH_FILE", &bad),
    );
    assert!(err.contains("refused the credentials for user `clay`"), "{err}");
    assert!(!out_bad.exists());

    // The same credentials from a credential helper that docker's config.json names for this registry, as
    // `gcloud auth configure-docker` or docker-credential-ecr-login set up: the same image, so the same bytes.
    let docker_config = w.join("docker-config");
    let bin = w.join("helper-bin");
    std::fs::create_dir_all(&docker_config).unwrap();
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::write(
        docker_config.join("config.json"),
        format!(r#"{{"auths":{{}},"credHelpers":{{"{}":"claytest"}}}}"#, reg.host()),
    )
    .unwrap();
    let helper = bin.join("docker-credential-claytest");
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh
read -r server
[ \"$1 $server\" = \"get {}\" ] || exit 1
             echo '{{\"ServerURL\":\"x\",\"Username\":\"{}\",\"Secret\":\"{}\"}}'
",
            reg.host(),
            clay_testkit::registry::USER,
            clay_testkit::registry::PASSWORD
        ),
    )
    .unwrap();
    sh(&format!("chmod 755 {}", helper.display()));
    let helped = w.join("out/helped.efi");
    let empty = w.join("no-auth-here");
    let out = clay()
        .args(["build", &reference, "--tls-verify=false", "-f", "efi", "--cmdline", TINY_CMDLINE, "-o"])
        .arg(&helped)
        .env_remove("REGISTRY_AUTH_FILE")
        .env("XDG_RUNTIME_DIR", &empty)
        .env("XDG_CONFIG_HOME", &empty)
        .env("DOCKER_CONFIG", &docker_config)
        .env("PATH", format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(std::fs::read(&helped).unwrap() == std::fs::read(&efi).unwrap(), "the helper's pull differs");

    // registries.conf as podman reads it: the image named by a name that only the file's table maps to this
    // registry (plain HTTP allowed by `insecure`, without --tls-verify), behind a mirror that is down. The same
    // image, so the same bytes; clay says where it came from.
    let conf = w.join("registries.conf");
    std::fs::write(
        &conf,
        format!(
            "[[registry]]\nprefix = \"registry.example/clay\"\nlocation = \"{host}/clay\"\ninsecure = true\n\
             [[registry.mirror]]\nlocation = \"127.0.0.1:{dead}/mirror\"\ninsecure = true\n",
            host = reg.host(),
            dead = clay_testkit::registry::free_port()
        ),
    )
    .unwrap();
    let mapped = w.join("out/mapped.efi");
    let out = clay()
        .args(["build", "docker://registry.example/clay/tiny:1", "-f", "efi", "--cmdline", TINY_CMDLINE, "-o"])
        .arg(&mapped)
        .arg("--registries-conf")
        .arg(&conf)
        .env("REGISTRY_AUTH_FILE", &good)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(said.contains(&format!("clay: pulled from {}/clay/tiny:1, as registries.conf says", reg.host())), "{said}");
    assert!(std::fs::read(&mapped).unwrap() == std::fs::read(&efi).unwrap(), "the mapped pull differs");

    // A registry on https whose certificate a private CA signed, and which asks clients for a certificate of that
    // CA: trusted and answered through a certificate directory, as podman reads them, with the same bytes.
    let tls = Registry::start_with(Tls::Ca { client_certs: true });
    let certs = w.join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    let (client_cert, client_key) = tls.client();
    std::fs::copy(tls.ca(), certs.join("ca.crt")).unwrap();
    std::fs::copy(&client_cert, certs.join("client.cert")).unwrap();
    std::fs::copy(&client_key, certs.join("client.key")).unwrap();
    sh(&format!(
        "skopeo --insecure-policy copy -q --dest-cert-dir {certs} --dest-creds {creds} oci-archive:{w}/image-oci.tar \
         docker://{host}/clay/tiny:1",
        certs = certs.display(),
        creds = tls.creds(),
        w = w.display(),
        host = tls.host()
    ));
    let reference = format!("docker://{}/clay/tiny:1", tls.host());
    let out_tls = w.join("out/tls.efi");
    let err = clay_err(clay().args(["build", &reference, "--creds", &tls.creds(), "-f", "efi", "-o"]).arg(&out_tls));
    assert!(err.contains("failed the TLS handshake; if a private CA signed its certificate"), "{err}");
    assert!(!out_tls.exists());
    let built = clay()
        .args(["build", &reference, "--creds", &tls.creds(), "--cert-dir", certs.to_str().unwrap()])
        .args(["-f", "efi", "--cmdline", TINY_CMDLINE, "-o"])
        .arg(&out_tls)
        .output()
        .unwrap();
    assert!(built.status.success(), "{}", String::from_utf8_lossy(&built.stderr));
    assert!(std::fs::read(&out_tls).unwrap() == std::fs::read(&efi).unwrap(), "the https pull differs");
    // The CA in the system's bundle (SSL_CERT_FILE, as OpenSSL reads it) and the client certificate in the user's
    // per-registry directory, ~/.config/containers/certs.d/HOST:PORT.
    let home = w.join("home");
    let per_host = home.join(".config/containers/certs.d").join(tls.host());
    std::fs::create_dir_all(&per_host).unwrap();
    std::fs::copy(&client_cert, per_host.join("me.cert")).unwrap();
    std::fs::copy(&client_key, per_host.join("me.key")).unwrap();
    let out_system = w.join("out/system-ca.efi");
    let built = clay()
        .args(["build", &reference, "--creds", &tls.creds(), "-f", "efi", "--cmdline", TINY_CMDLINE, "-o"])
        .arg(&out_system)
        .env("HOME", &home)
        .env("SSL_CERT_FILE", tls.ca())
        .output()
        .unwrap();
    assert!(built.status.success(), "{}", String::from_utf8_lossy(&built.stderr));
    assert!(std::fs::read(&out_system).unwrap() == std::fs::read(&efi).unwrap(), "the system-CA pull differs");

    // The image is linux/amd64 only: another platform is refused with what there is.
    let out = w.join("out/arm.efi");
    let err = clay_err(clay().args(["build", &sources[0], "-o", out.to_str().unwrap(), "--platform", "linux/arm64"]));
    assert!(err.contains("has no image for linux/arm64; it has linux/amd64"), "{err}");
    assert!(!out.exists());
}

#[test]
fn a_containerfile_is_built_with_podman_and_boots() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let root = w.join("rootfs");
    tiny_system(&root);
    let env = private_podman_env(w);
    let env_prefix: String = env.iter().map(|(k, v)| format!("{k}={v} ")).collect();
    sh(&format!(
        "cd {w} && tar --numeric-owner --xattrs -cf base.tar -C {root} . && mkdir ctx && \
         {env_prefix} podman import base.tar localhost/clay-tiny-base >/dev/null",
        w = w.display(),
        root = root.display()
    ));
    // Two stages: --target picks the one that makes the OS.
    std::fs::write(
        w.join("ctx/Containerfile"),
        format!(
            "FROM localhost/clay-tiny-base AS os\nRUN echo \"{ADDED}\" > /etc/added-by-layer && rm /bin/vi\n\n\
             FROM localhost/clay-tiny-base AS other\nRUN echo other > /etc/added-by-layer\n"
        ),
    )
    .unwrap();
    let efi = w.join("out/built.efi");
    let mut cmd = clay();
    cmd.args(["build", "--containerfile"])
        .arg(w.join("ctx/Containerfile"))
        .args(["--target", "os", "-f", "efi", "--cmdline", TINY_CMDLINE, "-o", efi.to_str().unwrap()])
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let console = boot_efi(&efi, TINY_MARKER, 1024, 180);
    assert!(console.contains(&format!("tiny: layer-file {ADDED}, /bin/vi absent")), "{console}");
    // The engine's store keeps nothing of the build.
    let images = sh(&format!("{env_prefix} podman images --format '{{{{.Repository}}}}'"));
    assert!(!images.contains("clay-build-"), "{images}");

    // Bad input: a missing Containerfile, and SOURCE together with --containerfile.
    let mut cmd = clay();
    cmd.args(["build", "--containerfile", "/nonexistent/Containerfile", "-o"]).arg(w.join("out/x"));
    let err = clay_err(&mut cmd);
    assert!(err.contains("the Containerfile `/nonexistent/Containerfile` does not exist"), "{err}");
    let mut cmd = clay();
    cmd.args(["build", "rootfs", "--containerfile", "ctx/Containerfile", "-o"]).arg(w.join("out/x"));
    let err = clay_err(&mut cmd);
    assert!(err.contains("cannot be used with"), "{err}");
}
