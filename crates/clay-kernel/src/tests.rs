use super::*;
use clay_tree::{Inode, Metadata};

fn meta() -> Metadata {
    Metadata::root_owned(0o755, 0)
}

/// A fake bzImage whose boot header names `release`.
fn bzimage(release: &str) -> Vec<u8> {
    let mut img = vec![0u8; 0x400];
    img[0x202..0x206].copy_from_slice(b"HdrS");
    img[0x206..0x208].copy_from_slice(&0x020fu16.to_le_bytes());
    img[0x20e..0x210].copy_from_slice(&(0x300u16 - 0x200).to_le_bytes());
    let s = format!("{release} (builder@example) #1 SMP\0");
    img[0x300..0x300 + s.len()].copy_from_slice(s.as_bytes());
    img
}

fn tree(files: &[(&str, Vec<u8>)], dirs: &[&str], links: &[(&str, &str)]) -> Tree {
    let mut t = Tree::new(meta());
    for d in dirs {
        t.insert(d.as_bytes(), Inode::directory(meta()), &meta()).unwrap();
    }
    for (p, data) in files {
        let inode = Inode { meta: meta(), kind: Kind::File(Content::from_bytes(data.clone())) };
        t.insert(p.as_bytes(), inode, &meta()).unwrap();
    }
    for (p, target) in links {
        let inode = Inode { meta: meta(), kind: Kind::Symlink(target.as_bytes().to_vec()) };
        t.insert(p.as_bytes(), inode, &meta()).unwrap();
    }
    t
}

#[test]
fn debian_and_ubuntu() {
    let rel = "6.1.0-56-cloud-amd64";
    let t = tree(
        &[(&format!("boot/vmlinuz-{rel}"), bzimage(rel)), (&format!("boot/initrd.img-{rel}"), vec![1])],
        &[&format!("usr/lib/modules/{rel}/kernel")],
        &[("lib", "usr/lib"), ("vmlinuz", &format!("boot/vmlinuz-{rel}")), ("boot/vmlinuz", "vmlinuz-x")],
    );
    let k = find_kernel(&t, None).unwrap();
    assert_eq!(k.path, format!("/boot/vmlinuz-{rel}"));
    assert_eq!(k.release.as_deref(), Some(rel));
    assert!(k.has_modules);
}

#[test]
fn fedora_keeps_the_kernel_with_its_modules() {
    let rel = "6.11.4-301.fc41.x86_64";
    let t = tree(&[(&format!("usr/lib/modules/{rel}/vmlinuz"), bzimage(rel))], &["boot"], &[]);
    let k = find_kernel(&t, None).unwrap();
    assert_eq!(k.path, format!("/usr/lib/modules/{rel}/vmlinuz"));
    assert_eq!(k.release.as_deref(), Some(rel));
}

#[test]
fn arch_copies_in_boot_and_modules_count_once() {
    let rel = "6.11.5-arch1-1";
    let t = tree(
        &[("boot/vmlinuz-linux", bzimage(rel)), (&format!("usr/lib/modules/{rel}/vmlinuz"), bzimage(rel))],
        &[],
        &[],
    );
    let k = find_kernel(&t, None).unwrap();
    assert_eq!(k.path, "/boot/vmlinuz-linux");
    assert_eq!(k.release.as_deref(), Some(rel));
}

#[test]
fn alpine_names_the_flavour_and_the_release_comes_from_the_module_directory() {
    // No readable boot header (e.g. a non-x86 image): fall back to the only module directory.
    let t = tree(&[("boot/vmlinuz-lts", vec![0; 64])], &["lib/modules/6.6.58-0-lts/kernel"], &[]);
    let k = find_kernel(&t, None).unwrap();
    assert_eq!(k.path, "/boot/vmlinuz-lts");
    assert_eq!(k.release.as_deref(), Some("6.6.58-0-lts"));
    assert!(k.has_modules);
}

#[test]
fn none_and_several_name_what_was_searched_and_found() {
    let t = tree(&[("boot/config-6.1", vec![1])], &[], &[("vmlinuz", "boot/vmlinuz-6.1")]);
    let err = find_kernel(&t, None).unwrap_err().to_string();
    assert!(err.starts_with("no kernel found in the image; searched /boot/vmlinuz-*, "), "{err}");
    assert!(err.ends_with("pass --kernel PATH"), "{err}");

    let t = tree(&[("boot/vmlinuz-virt", bzimage("6.6-virt")), ("boot/vmlinuz-lts", bzimage("6.6-lts"))], &[], &[]);
    let err = find_kernel(&t, None).unwrap_err().to_string();
    assert_eq!(err, "found 2 kernels (/boot/vmlinuz-lts, /boot/vmlinuz-virt); pick one with --kernel PATH");
    let k = find_kernel(&t, Some("/boot/vmlinuz-virt")).unwrap();
    assert_eq!(k.release.as_deref(), Some("6.6-virt"));
    assert!(!k.has_modules);
}

#[test]
fn leftovers_are_not_kernels() {
    let t = tree(
        &[
            ("boot/vmlinuz-6.1", bzimage("6.1")),
            ("boot/vmlinuz-6.0.old", bzimage("6.0")),
            ("boot/vmlinuz-0-rescue-abc", bzimage("r")),
        ],
        &[],
        &[],
    );
    assert_eq!(find_kernel(&t, None).unwrap().path, "/boot/vmlinuz-6.1");
}

#[test]
fn requested_kernel_must_be_a_file() {
    let t = tree(&[], &["boot"], &[("boot/vmlinuz", "nowhere")]);
    assert!(matches!(find_kernel(&t, Some("/boot/none")), Err(KernelError::Missing(_))));
    assert!(matches!(find_kernel(&t, Some("/boot/vmlinuz")), Err(KernelError::NotAFile(_))));
}

#[test]
fn microcode_images_are_found_in_boot() {
    let t = tree(
        &[("boot/intel-ucode.img", vec![1]), ("boot/amd-ucode.img", vec![2]), ("boot/initrd.img", vec![3])],
        &[],
        &[],
    );
    let names: Vec<String> = microcode_images(&t).into_iter().map(|(p, _)| p).collect();
    assert_eq!(names, ["/boot/amd-ucode.img", "/boot/intel-ucode.img"]);
}

#[test]
fn bzimage_header_parsing_never_panics() {
    assert_eq!(bzimage_release(&bzimage("6.1.0-1-amd64")).as_deref(), Some("6.1.0-1-amd64"));
    assert_eq!(bzimage_release(b"short"), None);
    let mut img = bzimage("x");
    img[0x20e..0x210].copy_from_slice(&0xffffu16.to_le_bytes());
    assert_eq!(bzimage_release(&img), None);
    for len in 0..0x320 {
        let _ = bzimage_release(&bzimage("6.1")[..len]);
    }
}
