//! The binaries as built by `make build` / `make release`: `rkt` and `rkt-stage1` are
//! static-pie (no dynamic loader on `rkt run`'s path, still position independent).

use rkt_tests::bin_dir;

/// What the ELF header and program headers of `path` say: (PIE or shared object, has an
/// interpreter, i.e. needs the dynamic loader).
fn elf_kind(path: &std::path::Path) -> (bool, bool) {
    let b = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(&b[..4], b"\x7fELF", "{} is not ELF", path.display());
    assert_eq!(b[4], 2, "{}: not 64-bit", path.display());
    let u16_at = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]) as usize;
    let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap()) as usize;
    let pie = u16_at(16) == 3; // ET_DYN
    let (phoff, phentsize, phnum) = (u64_at(32), u16_at(54), u16_at(56));
    let interp = (0..phnum).any(|i| {
        let o = phoff + i * phentsize;
        u32::from_le_bytes(b[o..o + 4].try_into().unwrap()) == 3 // PT_INTERP
    });
    (pie, interp)
}

#[test]
fn rkt_and_stage1_are_static_pie() {
    for name in ["rkt", "rkt-stage1"] {
        let p = bin_dir().join(name);
        let (pie, interp) = elf_kind(&p);
        assert!(pie, "{} is not position independent", p.display());
        assert!(
            !interp,
            "{} needs the dynamic loader: build with `make build` or `make release`",
            p.display()
        );
    }
}

#[test]
fn the_elf_reader_sees_a_dynamic_binary() {
    // /bin/sh of Debian: a dynamically linked PIE
    assert_eq!(elf_kind(std::path::Path::new("/bin/sh")), (true, true));
}
