//! The kernel command line, split the way the kernel splits it (`lib/cmdline.c: next_arg`, `kernel/params.c`).
//!
//! The kernel consumes `init=` itself and never passes it to the initramfs `/init`, so clay-init reads
//! `/proc/cmdline` and must agree with the kernel on what each parameter is: double quotes group words, a quote
//! right after `=` is stripped together with a closing one, and `--` ends the kernel's part of the line.

/// The init run when the command line names none, as the kernel itself would try first.
pub const DEFAULT_INIT: &[u8] = b"/sbin/init";

/// What clay-init takes from the kernel command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BootOptions {
    /// The value of the last `init=`, if any and not empty.
    pub init: Option<Vec<u8>>,
    /// `clay.debug`: report each step on the console.
    pub debug: bool,
    /// `clay.rescue`: prepare the system, then start the rescue shell instead of the init.
    pub rescue: bool,
    /// `roothash=`: the dm-verity root hash of a verity root, as hex text.
    pub roothash: Option<Vec<u8>>,
    /// `clay.rootwait=SECONDS`: how long to wait for the disk's partitions to appear.
    pub rootwait: Option<u64>,
}

impl BootOptions {
    /// Reads the options from the contents of `/proc/cmdline`.
    pub fn parse(cmdline: &[u8]) -> Self {
        let mut options = BootOptions::default();
        for (param, value) in params(cmdline) {
            match param {
                b"init" => options.init = value.filter(|v| !v.is_empty()).map(<[u8]>::to_vec),
                b"clay.debug" => options.debug = flag(value),
                b"clay.rescue" => options.rescue = flag(value),
                b"roothash" => options.roothash = value.map(<[u8]>::to_vec),
                b"clay.rootwait" => {
                    options.rootwait = value.and_then(|v| std::str::from_utf8(v).ok()?.parse().ok());
                }
                _ => {}
            }
        }
        options
    }

    /// The program to hand over to: `init=`, else [`DEFAULT_INIT`].
    pub fn init(&self) -> &[u8] {
        self.init.as_deref().unwrap_or(DEFAULT_INIT)
    }
}

/// A boolean parameter: present alone means on; `=0`, `=n`, `=no`, `=off` and `=false` mean off.
fn flag(value: Option<&[u8]>) -> bool {
    !matches!(value, Some(b"0" | b"n" | b"N" | b"no" | b"off" | b"false"))
}

/// `isspace()` of the kernel's `lib/ctype.c`, which also counts Latin-1 NBSP (0xa0) as a space.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | 0xa0)
}

fn skip_spaces(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|&b| !is_space(b)).unwrap_or(s.len());
    &s[start..]
}

/// The kernel's parameters as `(name, value)` pairs, up to a bare `--`.
pub fn params(cmdline: &[u8]) -> impl Iterator<Item = (&[u8], Option<&[u8]>)> {
    let mut rest = skip_spaces(cmdline);
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let (param, value, tail) = next_arg(rest);
        rest = tail;
        if param == b"--" && value.is_none() {
            rest = &[];
            return None;
        }
        Some((param, value))
    })
}

/// One step of the kernel's `next_arg()`: the parameter, its value, and the rest of the line.
fn next_arg(args: &[u8]) -> (&[u8], Option<&[u8]>, &[u8]) {
    let (args, quoted) = match args.strip_prefix(b"\"") {
        Some(inner) => (inner, true),
        None => (args, false),
    };
    let mut in_quote = quoted;
    let mut equals = None;
    let mut end = args.len();
    for (i, &b) in args.iter().enumerate() {
        if is_space(b) && !in_quote {
            end = i;
            break;
        }
        if equals.is_none() && b == b'=' {
            equals = Some(i);
        }
        if b == b'"' {
            in_quote = !in_quote;
        }
    }
    let word = &args[..end];
    let tail = skip_spaces(args.get(end + 1..).unwrap_or(&[]));
    // The kernel drops a closing quote at the end of the word when the value, or the whole word, was quoted.
    match equals {
        None => {
            let param = if quoted { word.strip_suffix(b"\"").unwrap_or(word) } else { word };
            (param, None, tail)
        }
        Some(eq) => {
            let param = &word[..eq];
            let mut value = &word[eq + 1..];
            if let Some(inner) = value.strip_prefix(b"\"") {
                value = inner.strip_suffix(b"\"").unwrap_or(inner);
            } else if quoted {
                value = value.strip_suffix(b"\"").unwrap_or(value);
            }
            (param, Some(value), tail)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(cmdline: &str) -> Vec<(String, Option<String>)> {
        params(cmdline.as_bytes())
            .map(|(p, v)| {
                let s = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
                (s(p), v.map(s))
            })
            .collect()
    }

    #[test]
    fn plain_init() {
        let o = BootOptions::parse(b"console=ttyS0 init=/bin/sh quiet\n");
        assert_eq!(o.init(), b"/bin/sh");
        assert!(!o.debug && !o.rescue);
    }

    #[test]
    fn missing_init_falls_back_to_sbin_init() {
        let o = BootOptions::parse(b"console=ttyS0 panic=-1\n");
        assert_eq!(o.init, None);
        assert_eq!(o.init(), b"/sbin/init");
        assert_eq!(BootOptions::parse(b"").init(), b"/sbin/init");
        assert_eq!(BootOptions::parse(b"init=").init(), b"/sbin/init");
    }

    #[test]
    fn last_init_wins() {
        assert_eq!(BootOptions::parse(b"init=/a init=/b").init(), b"/b");
    }

    #[test]
    fn quoted_values() {
        let o = BootOptions::parse(b"root=x init=\"/usr/lib/my init\" clay.debug");
        assert_eq!(o.init(), b"/usr/lib/my init");
        assert!(o.debug);
        assert_eq!(
            all(r#"a="b c" "d=e f" "g h" i"#),
            [
                ("a".into(), Some("b c".into())),
                ("d".into(), Some("e f".into())),
                ("g h".into(), None),
                ("i".into(), None),
            ]
        );
    }

    #[test]
    fn quotes_inside_a_value_are_kept_like_the_kernel_does() {
        // `next_arg` only strips a quote right after `=` and one closing the word.
        assert_eq!(all(r#"x=a"b c"d"#), [("x".into(), Some(r#"a"b c"d"#.into()))]);
        assert_eq!(all(r#"x="unterminated y"#), [("x".into(), Some("unterminated y".into()))]);
    }

    #[test]
    fn verity_parameters() {
        let o = BootOptions::parse(b"quiet roothash=abcd clay.rootwait=90");
        assert_eq!(o.roothash.as_deref(), Some(b"abcd".as_slice()));
        assert_eq!(o.rootwait, Some(90));
        assert_eq!(BootOptions::parse(b"clay.rootwait=soon").rootwait, None);
    }

    #[test]
    fn flags() {
        let o = BootOptions::parse(b"clay.debug clay.rescue");
        assert!(o.debug && o.rescue);
        let o = BootOptions::parse(b"clay.debug=1 clay.rescue=0");
        assert!(o.debug && !o.rescue);
        let o = BootOptions::parse(b"clay.debug=off clay.debugx clay");
        assert!(!o.debug && !o.rescue);
    }

    #[test]
    fn double_dash_ends_kernel_parameters() {
        let o = BootOptions::parse(b"init=/a -- init=/b clay.debug");
        assert_eq!(o.init(), b"/a");
        assert!(!o.debug);
        // `--` with a value is an ordinary parameter.
        assert_eq!(BootOptions::parse(b"--=x init=/c").init(), b"/c");
    }

    #[test]
    fn whitespace_of_every_kind() {
        assert_eq!(
            all("  a=1\t\tb \n c\r\n"),
            [("a".into(), Some("1".into())), ("b".into(), None), ("c".into(), None)]
        );
        assert_eq!(params(b"a\xa0b").count(), 2);
        assert_eq!(params(b" \n ").count(), 0);
    }
}
