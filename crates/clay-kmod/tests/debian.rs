//! Resolution against the real Debian cloud kernel package the tests cache, checked against kmod's own tools:
//! `modinfo` for each module's dependencies, `depmod` + `modprobe --show-depends` for the whole load set.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use clay_kmod::{modinfo, normalize, resolve, Resolution, Want};
use clay_testkit::sh;
use clay_tree::Tree;

const WANTED: &[&str] = &["dm-verity", "overlay", "squashfs", "loop", "virtio_blk", "virtio_pci", "erofs", "ext4"];

fn wanted() -> Vec<Want<'static>> {
    WANTED.iter().map(|n| Want::required(n)).collect()
}

/// The unpacked kernel package (`$CACHE/claylinux/kernel/root`) and the kernel's release.
fn package() -> &'static (PathBuf, String) {
    static PACKAGE: OnceLock<(PathBuf, String)> = OnceLock::new();
    PACKAGE.get_or_init(|| {
        let dir = clay_testkit::kernel_modules_dir();
        assert!(dir.join("modules.builtin").is_file(), "{} is missing; make-rootfs.sh caches it", dir.display());
        assert!(!dir.join("modules.dep").exists(), "the package itself ships no modules.dep");
        (clay_testkit::kernel_package_root(), clay_testkit::example_kernel_release())
    })
}

fn read(root: &Path) -> Tree {
    clay_source::read_dir(root, &mut |w| panic!("{w:?}")).unwrap()
}

/// A copy of the package's modules in a usrmerged layout (`/lib -> usr/lib`), after `depmod` ran on it.
fn depmodded() -> &'static Path {
    static COPY: OnceLock<PathBuf> = OnceLock::new();
    COPY.get_or_init(|| {
        let (root, release) = package();
        let dir = tempfile::tempdir().unwrap().keep();
        sh(&format!(
            "mkdir -p {d}/usr/lib/modules && cp -a {root}/lib/modules/{release} {d}/usr/lib/modules/ && \
             ln -s usr/lib {d}/lib && depmod -b {d} {release} && test -s {d}/lib/modules/{release}/modules.dep",
            d = dir.display(),
            root = root.display()
        ));
        dir
    })
}

/// What modprobe would load for the wanted modules: module paths relative to the module directory.
fn modprobe_set() -> BTreeSet<String> {
    let (_, release) = package();
    let base = depmodded();
    let prefix = format!("insmod {}/lib/modules/{release}/", base.display());
    let mut set = BTreeSet::new();
    for name in WANTED {
        let out = sh(&format!("modprobe -d {} -S {release} --show-depends {name}", base.display()));
        for line in out.lines() {
            if let Some(rel) = line.trim().strip_prefix(&prefix) {
                set.insert(rel.to_owned());
            } else {
                assert!(line.starts_with("builtin "), "unexpected modprobe line {line:?}");
            }
        }
    }
    set
}

fn relative_set(res: &Resolution, release: &str, dir: &str) -> BTreeSet<String> {
    let prefix = format!("{dir}/{release}/");
    res.load.iter().map(|m| m.path.strip_prefix(&prefix).unwrap().to_owned()).collect()
}

/// Every module comes after the modules `modinfo -F depends` names for it (the host's kmod reads the file).
fn assert_dependency_order(res: &Resolution, host_root: &Path) {
    let files: Vec<String> = res.load.iter().map(|m| host_root.join(&m.path[1..]).display().to_string()).collect();
    let out = sh(&format!("for f in {}; do modinfo -F depends \"$f\"; echo --; done", files.join(" ")));
    let lists: Vec<&str> = out.split("--\n").collect();
    for (i, module) in res.load.iter().enumerate() {
        let deps: Vec<String> = lists[i].trim().split(',').filter(|d| !d.is_empty()).map(normalize).collect();
        for dep in deps {
            let at = res.load.iter().position(|m| m.name == dep);
            assert!(at.is_some_and(|at| at < i), "{} loads before its dependency {dep}: {res:?}", module.name);
        }
    }
}

#[test]
fn debian_package_without_modules_dep() {
    let (root, release) = package();
    let res = resolve(&read(root), release, &wanted()).unwrap();
    assert_eq!(res.builtin, ["ext4"]);
    assert!(res.missing_optional.is_empty(), "{res:?}");
    assert_dependency_order(&res, root);
    for m in &res.load {
        assert_eq!(m.bytes, std::fs::read(root.join(&m.path[1..])).unwrap(), "{}", m.path);
    }
    // The same modules modprobe would insert, softdeps included (erofs -> libcrc32c -> pre: crc32c -> the
    // crc32c-intel module by alias, found in the modules' modinfo since the package has no modules.alias).
    assert_eq!(relative_set(&res, release, "/lib/modules"), modprobe_set());
    let names: Vec<&str> = res.load.iter().map(|m| m.name.as_str()).collect();
    for needed in
        ["reed_solomon", "dm_mod", "dm_bufio", "dm_verity", "virtio_ring", "virtio", "libcrc32c", "crc32c_intel"]
    {
        assert!(names.contains(&needed), "{needed} missing from {names:?}");
    }
}

#[test]
fn depmod_output_gives_the_same_modules() {
    let (root, release) = package();
    let without = resolve(&read(root), release, &wanted()).unwrap();
    let base = depmodded();
    let with = resolve(&read(base), release, &wanted()).unwrap();
    assert_eq!(with.builtin, ["ext4"]);
    assert_eq!(relative_set(&with, release, "/lib/modules"), relative_set(&without, release, "/lib/modules"));
    assert_eq!(relative_set(&with, release, "/lib/modules"), modprobe_set());
    assert_dependency_order(&with, base);
    // modules.dep lists whole dependency chains: each module also follows everything listed for it.
    let dep = std::fs::read_to_string(base.join(format!("lib/modules/{release}/modules.dep"))).unwrap();
    let prefix = format!("/lib/modules/{release}/");
    for (i, m) in with.load.iter().enumerate() {
        let rel = m.path.strip_prefix(&prefix).unwrap();
        let line = dep.lines().find_map(|l| l.strip_prefix(rel).and_then(|l| l.strip_prefix(':'))).unwrap();
        for d in line.split_whitespace() {
            let at = with.load.iter().position(|m| m.path.strip_prefix(&prefix) == Some(d));
            assert!(at.is_some_and(|at| at < i), "{rel} loads before {d}");
        }
    }
}

#[test]
fn modinfo_matches_kmod() {
    let (root, release) = package();
    let dir = root.join("lib/modules").join(release).join("kernel");
    for rel in ["drivers/md/dm-verity.ko", "lib/libcrc32c.ko", "arch/x86/crypto/crc32c-intel.ko", "fs/erofs/erofs.ko"] {
        let file = dir.join(rel);
        let info = modinfo(&std::fs::read(&file).unwrap()).unwrap();
        for key in ["depends", "alias", "softdep", "vermagic", "license", "name"] {
            let ours: Vec<&str> = info.iter().filter(|(k, _)| k == key).map(|(_, v)| v.as_str()).collect();
            let theirs = sh(&format!("modinfo -0 -F {key} {}", file.display()));
            let theirs: Vec<&str> = theirs.split('\0').filter(|s| !s.is_empty()).collect();
            // kmod leaves out empty values (`depends=`).
            let ours: Vec<&str> = ours.into_iter().filter(|s| !s.is_empty()).collect();
            assert_eq!(ours, theirs, "{rel} {key}");
        }
    }
}

#[test]
fn compressed_modules_decompress_to_the_original_bytes() {
    let (root, release) = package();
    let copy = tempfile::tempdir().unwrap();
    let d = copy.path().join(format!("lib/modules/{release}/kernel"));
    sh(&format!(
        "mkdir -p {c}/lib/modules && cp -a {root}/lib/modules/{release} {c}/lib/modules/ && cd {d} && \
         xz --check=crc32 drivers/md/dm-verity.ko drivers/md/dm-bufio.ko && zstd -q --rm drivers/virtio/virtio.ko \
         fs/squashfs/squashfs.ko && gzip -n fs/overlayfs/overlay.ko",
        c = copy.path().display(),
        root = root.display(),
        d = d.display()
    ));
    let res = resolve(&read(copy.path()), release, &wanted()).unwrap();
    let plain = resolve(&read(root), release, &wanted()).unwrap();
    assert_eq!(res.load.len(), plain.load.len());
    for (m, p) in res.load.iter().zip(&plain.load) {
        assert_eq!(m.name, p.name);
        assert_eq!(m.bytes, p.bytes, "{}", m.path);
    }
    let paths: Vec<&str> = res.load.iter().map(|m| m.path.as_str()).collect();
    for suffix in ["/dm-verity.ko.xz", "/dm-bufio.ko.xz", "/virtio.ko.zst", "/squashfs.ko.zst", "/overlay.ko.gz"] {
        assert!(paths.iter().any(|p| p.ends_with(suffix)), "{suffix} not in {paths:?}");
    }

    // Damage: a truncated .ko.xz, a module that is not ELF, a dependency gone.
    sh(&format!(
        "cd {d} && head -c 1000 drivers/md/dm-bufio.ko.xz > x && mv x drivers/md/dm-bufio.ko.xz && \
         echo hello > fs/squashfs/squashfs.ko && rm fs/squashfs/squashfs.ko.zst && rm drivers/virtio/virtio.ko.zst",
        d = d.display()
    ));
    let tree = read(copy.path());
    let err = |name: &str| resolve(&tree, release, &[Want::required(name)]).unwrap_err().to_string();
    let dir = format!("/lib/modules/{release}");
    assert!(
        err("dm_verity").starts_with(&format!("cannot decompress the module {dir}/kernel/drivers/md/dm-bufio.ko.xz: ")),
        "{}",
        err("dm_verity")
    );
    assert_eq!(
        err("squashfs"),
        format!(
            "{dir}/kernel/fs/squashfs/squashfs.ko is not a kernel module: it does not start with the ELF magic \
             (\\x7fELF)"
        )
    );
    assert_eq!(
        err("virtio_blk"),
        format!(
            "the module `virtio_blk` ({dir}/kernel/drivers/block/virtio_blk.ko) depends on `virtio`, which is neither \
             built in (modules.builtin) nor in {dir}; reinstall the kernel's modules package in the image"
        )
    );
    assert_eq!(
        err("nosuchmodule"),
        format!(
            "the kernel {release} has no module `nosuchmodule`: it is neither built in (modules.builtin) nor in {dir}; \
             install the kernel's modules package in the image"
        )
    );
    sh(&format!("rm -r {}/lib/modules", copy.path().display()));
    assert_eq!(
        resolve(&read(copy.path()), release, &[Want::required("loop")]).unwrap_err().to_string(),
        format!(
            "the kernel {release} has no module `loop`: the image has no /lib/modules/{release} directory; install \
             the kernel's modules package in the image"
        )
    );
}
