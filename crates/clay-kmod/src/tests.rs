#![allow(clippy::unwrap_used, clippy::expect_used, clippy::cast_possible_truncation)]

use std::io::Write;

use clay_tree::{Content, Inode, Kind, Metadata, Tree};

use super::*;

const R: &str = "6.1.0-test";

/// A minimal relocatable ELF object holding a `.modinfo` section with `info` strings.
fn fake_module(info: &[&str], wide: bool, big: bool) -> Vec<u8> {
    let mut modinfo = Vec::new();
    for s in info {
        modinfo.extend_from_slice(s.as_bytes());
        modinfo.push(0);
    }
    let names = b"\0.modinfo\0.shstrtab\0".to_vec();
    let (ehsize, shentsize) = if wide { (64usize, 64usize) } else { (52, 40) };
    let modinfo_off = ehsize;
    let names_off = modinfo_off + modinfo.len();
    let shoff = names_off + names.len();
    let put = |out: &mut Vec<u8>, v: u64, n: usize| {
        let bytes = v.to_le_bytes();
        if big {
            out.extend(bytes[..n].iter().rev());
        } else {
            out.extend_from_slice(&bytes[..n]);
        }
    };
    let addr = if wide { 8 } else { 4 };
    let mut out = b"\x7fELF".to_vec();
    out.extend_from_slice(&[if wide { 2 } else { 1 }, if big { 2 } else { 1 }, 1, 0]);
    out.resize(16, 0);
    put(&mut out, 1, 2); // e_type ET_REL
    put(&mut out, 62, 2); // e_machine
    put(&mut out, 1, 4); // e_version
    put(&mut out, 0, addr); // e_entry
    put(&mut out, 0, addr); // e_phoff
    put(&mut out, shoff as u64, addr); // e_shoff
    put(&mut out, 0, 4); // e_flags
    put(&mut out, ehsize as u64, 2);
    put(&mut out, 0, 2); // e_phentsize
    put(&mut out, 0, 2); // e_phnum
    put(&mut out, shentsize as u64, 2);
    put(&mut out, 3, 2); // e_shnum
    put(&mut out, 2, 2); // e_shstrndx
    assert_eq!(out.len(), ehsize);
    out.extend_from_slice(&modinfo);
    out.extend_from_slice(&names);
    let sections = [
        (0u64, 0u64, 0u64, 0u64),
        (1, 1, modinfo_off as u64, modinfo.len() as u64),
        (10, 3, names_off as u64, names.len() as u64),
    ];
    for (name, kind, offset, size) in sections {
        let start = out.len();
        put(&mut out, name, 4);
        put(&mut out, kind, 4);
        put(&mut out, 0, addr); // sh_flags
        put(&mut out, 0, addr); // sh_addr
        put(&mut out, offset, addr);
        put(&mut out, size, addr);
        put(&mut out, 0, 4); // sh_link
        put(&mut out, 0, 4); // sh_info
        put(&mut out, 1, addr); // sh_addralign
        put(&mut out, 0, addr); // sh_entsize
        assert_eq!(out.len() - start, shentsize);
    }
    out
}

fn ko(info: &[&str]) -> Vec<u8> {
    fake_module(info, true, false)
}

fn tree(files: &[(&str, Vec<u8>)], links: &[(&str, &str)]) -> Tree {
    let meta = Metadata::root_owned(0o755, 0);
    let mut t = Tree::new(meta.clone());
    for (path, bytes) in files {
        let inode = Inode { meta: meta.clone(), kind: Kind::File(Content::from_bytes(bytes.clone())) };
        t.insert(path.as_bytes(), inode, &meta).unwrap();
    }
    for (path, target) in links {
        let inode = Inode { meta: meta.clone(), kind: Kind::Symlink(target.as_bytes().to_vec()) };
        t.insert(path.as_bytes(), inode, &meta).unwrap();
    }
    t
}

fn m(rel: &str) -> String {
    format!("lib/modules/{R}/{rel}")
}

fn names(res: &Resolution) -> Vec<&str> {
    res.load.iter().map(|m| m.name.as_str()).collect()
}

fn err(t: &Tree, wanted: &[Want<'_>]) -> String {
    resolve(t, R, wanted).unwrap_err().to_string()
}

#[test]
fn dependencies_come_first_in_wanted_order() {
    let t = tree(
        &[
            (&m("kernel/a.ko"), ko(&["depends=b,c", "license=GPL"])),
            (&m("kernel/sub/b.ko"), ko(&["depends=c"])),
            (&m("kernel/c.ko"), ko(&["depends="])),
            (&m("kernel/d.ko"), ko(&[])),
        ],
        &[],
    );
    let res = resolve(&t, R, &[Want::required("d"), Want::required("a"), Want::required("c")]).unwrap();
    assert_eq!(names(&res), ["d", "c", "b", "a"]);
    assert_eq!(res.load[2].path, format!("/lib/modules/{R}/kernel/sub/b.ko"));
    assert_eq!(res.load[3].bytes, ko(&["depends=b,c", "license=GPL"]));
    assert!(res.builtin.is_empty() && res.missing_optional.is_empty());
}

#[test]
fn dash_and_underscore_are_one_name() {
    let t = tree(
        &[(&m("kernel/md/dm-verity.ko"), ko(&["depends=dm_mod"])), (&m("kernel/md/dm_mod.ko"), ko(&["depends="]))],
        &[],
    );
    let res =
        resolve(&t, R, &[Want::required("dm_verity"), Want::required("dm-verity"), Want::required("dm-mod")]).unwrap();
    assert_eq!(names(&res), ["dm_mod", "dm_verity"]);
    assert_eq!(res.load[1].path, format!("/lib/modules/{R}/kernel/md/dm-verity.ko"));
}

#[test]
fn cycles_end_and_load_each_module_once() {
    let t = tree(
        &[
            (&m("a.ko"), ko(&["depends=b"])),
            (&m("b.ko"), ko(&["depends=c"])),
            (&m("c.ko"), ko(&["depends=a,c"])),
            (&m("self.ko"), ko(&["depends=self", "softdep=pre: self post: self"])),
        ],
        &[],
    );
    let res = resolve(&t, R, &[Want::required("a"), Want::required("b"), Want::required("self")]).unwrap();
    assert_eq!(names(&res), ["c", "b", "a", "self"]);
}

#[test]
fn builtin_and_missing_optional() {
    let t = tree(
        &[
            (&m("modules.builtin"), b"kernel/fs/ext4/ext4.ko\nkernel/fs/jbd2/jbd2.ko\n\n".to_vec()),
            (&m("kernel/a.ko"), ko(&["depends="])),
        ],
        &[],
    );
    let wanted = [Want::required("ext4"), Want::optional("nvme"), Want::required("a"), Want::optional("nvme")];
    let res = resolve(&t, R, &wanted).unwrap();
    assert_eq!(names(&res), ["a"]);
    assert_eq!(res.builtin, ["ext4"]);
    assert_eq!(res.missing_optional, ["nvme"]);
}

#[test]
fn usr_lib_through_a_symlinked_lib() {
    let t = tree(&[(&format!("usr/lib/modules/{R}/kernel/loop.ko"), ko(&[]))], &[("lib", "usr/lib")]);
    let res = resolve(&t, R, &[Want::required("loop")]).unwrap();
    assert_eq!(res.load[0].path, format!("/lib/modules/{R}/kernel/loop.ko"));
    // Split /usr without /lib/modules.
    let t = tree(&[(&format!("usr/lib/modules/{R}/kernel/loop.ko"), ko(&[]))], &[]);
    let res = resolve(&t, R, &[Want::required("loop")]).unwrap();
    assert_eq!(res.load[0].path, format!("/usr/lib/modules/{R}/kernel/loop.ko"));
    // A /lib/modules/<release> symlink into /usr.
    let t = tree(
        &[(&format!("usr/lib/modules/{R}/kernel/loop.ko"), ko(&[]))],
        &[(&format!("lib/modules/{R}"), &format!("/usr/lib/modules/{R}"))],
    );
    assert_eq!(names(&resolve(&t, R, &[Want::required("loop")]).unwrap()), ["loop"]);
}

#[test]
fn modules_dep_wins_over_modinfo() {
    let t = tree(
        &[
            (
                &m("modules.dep"),
                b"kernel/a.ko: kernel/c.ko kernel/b.ko\nkernel/b.ko: kernel/c.ko\nkernel/c.ko:\n".to_vec(),
            ),
            (&m("kernel/a.ko"), ko(&["depends=nonexistent"])),
            (&m("kernel/b.ko"), ko(&[])),
            (&m("kernel/c.ko.xz"), xz(&ko(&[]))),
            // Not in modules.dep (installed after depmod ran): its own modinfo counts.
            (&m("extra/e.ko"), ko(&["depends=a"])),
        ],
        &[],
    );
    let res = resolve(&t, R, &[Want::required("e")]).unwrap();
    assert_eq!(names(&res), ["c", "b", "a", "e"]);
    assert_eq!(res.load[0].bytes, ko(&[]));
}

#[test]
fn soft_dependencies_and_aliases() {
    let files = [
        (m("kernel/fs.ko"), ko(&["depends=lib", "softdep=pre: crc32c missing-soft post: after", "softdep=pre: pre2"])),
        (m("kernel/lib.ko"), ko(&[])),
        (m("kernel/crc32c-intel.ko"), ko(&["alias=crypto-crc32c", "alias=crc32c", "alias=cpu:type:x86*"])),
        (m("kernel/after.ko"), ko(&[])),
        (m("kernel/pre2.ko"), ko(&[])),
        (m("modules.builtin"), b"kernel/crypto/crc32c_generic.ko\nkernel/crypto/sha256.ko\n".to_vec()),
        (m("modules.builtin.modinfo"), b"crc32c_generic.alias=crc32c\0sha256.alias=crypto-sha256\0".to_vec()),
    ];
    let refs: Vec<(&str, Vec<u8>)> = files.iter().map(|(p, b)| (p.as_str(), b.clone())).collect();
    let wanted = [Want::required("fs"), Want::required("crypto-sha256"), Want::optional("cpu:type:x86*")];
    // Aliases gathered from the modules' own modinfo.
    let res = resolve(&tree(&refs, &[]), R, &wanted).unwrap();
    assert_eq!(names(&res), ["crc32c_intel", "pre2", "lib", "fs", "after"]);
    assert_eq!(res.builtin, ["sha256"]);
    assert_eq!(res.missing_optional, ["missing-soft", "cpu:type:x86*"]);
    // modules.alias when depmod wrote one (here without crc32c: the built-in alias answers).
    let alias_file = m("modules.alias");
    let mut with_alias = refs.clone();
    with_alias.push((&alias_file, b"alias fs-thing fs\n".to_vec()));
    let res = resolve(&tree(&with_alias, &[]), R, &[Want::required("fs-thing")]).unwrap();
    assert_eq!(names(&res), ["pre2", "lib", "fs", "after"]);
    assert_eq!(res.builtin, ["crc32c_generic"]);
}

#[test]
fn compressed_modules_come_back_identical() {
    let a = ko(&["depends=b,c", "name=a"]);
    let b = ko(&["depends=c"]);
    let c = ko(&["name=c"]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&b).unwrap();
    let t = tree(
        &[
            (&m("a.ko.xz"), xz(&a)),
            (&m("b.ko.gz"), gz.finish().unwrap()),
            (&m("c.ko.zst"), zstd::encode_all(&c[..], 3).unwrap()),
        ],
        &[],
    );
    let res = resolve(&t, R, &[Want::required("a")]).unwrap();
    assert_eq!(names(&res), ["c", "b", "a"]);
    assert_eq!([&res.load[0].bytes, &res.load[1].bytes, &res.load[2].bytes], [&c, &b, &a]);
    assert!(res.load[0].path.ends_with("/c.ko.zst"));
}

fn xz(bytes: &[u8]) -> Vec<u8> {
    let mut e = xz2::write::XzEncoder::new(Vec::new(), 6);
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

#[test]
fn error_sentences() {
    let t = tree(
        &[
            (&m("kernel/a.ko"), ko(&["depends=gone"])),
            (&m("kernel/text.ko"), b"not an ELF file".to_vec()),
            (&m("kernel/bad.ko.xz"), b"\xfd7zXZ\0garbage".to_vec()),
            (&m("kernel/nomodinfo.ko"), fake_module(&[], true, false)[..64].to_vec()),
        ],
        &[],
    );
    assert_eq!(
        err(&t, &[Want::required("loop")]),
        format!(
            "the kernel {R} has no module `loop`: it is neither built in (modules.builtin) nor in /lib/modules/{R}; \
             install the kernel's modules package in the image"
        )
    );
    assert_eq!(
        err(&t, &[Want::required("a")]),
        format!(
            "the module `a` (/lib/modules/{R}/kernel/a.ko) depends on `gone`, which is neither built in \
             (modules.builtin) nor in /lib/modules/{R}; reinstall the kernel's modules package in the image"
        )
    );
    assert_eq!(
        err(&t, &[Want::optional("text")]),
        format!(
            "/lib/modules/{R}/kernel/text.ko is not a kernel module: it does not start with the ELF magic (\\x7fELF)"
        )
    );
    assert!(err(&t, &[Want::required("bad")])
        .starts_with(&format!("cannot decompress the module /lib/modules/{R}/kernel/bad.ko.xz: ")));
    assert_eq!(
        err(&t, &[Want::required("nomodinfo")]),
        format!("/lib/modules/{R}/kernel/nomodinfo.ko is not a kernel module: its ELF section header table lies outside the file")
    );
    let empty = tree(&[("etc/hostname", b"x".to_vec())], &[]);
    assert_eq!(
        err(&empty, &[Want::optional("overlay"), Want::required("loop")]),
        format!(
            "the kernel {R} has no module `loop`: the image has no /lib/modules/{R} directory; install the kernel's \
             modules package in the image"
        )
    );
    let res = resolve(&empty, R, &[Want::optional("overlay"), Want::optional("loop")]).unwrap();
    assert_eq!(res.missing_optional, ["overlay", "loop"]);
    // A release that would climb out of /lib/modules finds nothing.
    assert!(matches!(resolve(&t, "../..", &[Want::required("a")]), Err(KmodError::NoModuleDir { .. })));
}

#[test]
fn modinfo_of_every_elf_flavour() {
    let info = ["license=GPL", "depends=a,b", "flag", "softdep=pre: x y"];
    let expected: Vec<(String, String)> =
        [("license", "GPL"), ("depends", "a,b"), ("flag", ""), ("softdep", "pre: x y")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
    for wide in [false, true] {
        for big in [false, true] {
            assert_eq!(modinfo(&fake_module(&info, wide, big)).unwrap(), expected, "wide {wide} big {big}");
        }
    }
    assert_eq!(modinfo(b"\x7fELF\x03\x01"), Err(ElfError::Class(3)));
    assert_eq!(modinfo(b"\x7fELF\x02\x07"), Err(ElfError::ByteOrder(7)));
    assert_eq!(modinfo(b"\x7fEL"), Err(ElfError::NotElf));
}

#[test]
fn damaged_modules_never_panic() {
    let good = fake_module(&["depends=a", "alias=x"], true, false);
    for len in 0..good.len() {
        let _ = modinfo(&good[..len]);
    }
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..20_000 {
        let mut bytes = good.clone();
        for _ in 0..4 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let at = (seed % bytes.len() as u64) as usize;
            bytes[at] = (seed >> 32) as u8;
        }
        let _ = modinfo(&bytes);
    }
    // Section table entries as big as the address space allows.
    let mut huge = good.clone();
    huge[0x28..0x30].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(modinfo(&huge).is_err());
}
