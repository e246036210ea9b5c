//! What the C runtime would provide: the entry point, `memcpy` & co. (the compiler emits calls to
//! them), the panic handler and the unwinding personality symbol that `core` refers to (never
//! called: the binary is built with `panic=abort`).
#![allow(unsafe_code)]

use stage1_monitor::sys::Process;

/// The kernel starts the process here with the stack pointer at `argc`.
#[cfg(target_arch = "x86_64")]
#[unsafe(naked)]
#[unsafe(no_mangle)]
extern "C" fn _start() -> ! {
    // pass the initial stack pointer, align the stack as the ABI requires, never return
    core::arch::naked_asm!(
        "xor ebp, ebp",
        "mov rdi, rsp",
        "and rsp, -16",
        "call {entry}",
        "ud2",
        entry = sym entry
    )
}

/// The kernel starts the process here with the stack pointer at `argc`.
#[cfg(target_arch = "aarch64")]
#[unsafe(naked)]
#[unsafe(no_mangle)]
extern "C" fn _start() -> ! {
    core::arch::naked_asm!(
        "mov x29, xzr",
        "mov x30, xzr",
        "mov x0, sp",
        "bl {entry}",
        "brk #1",
        entry = sym entry
    )
}

extern "C" fn entry(sp: *const usize) -> ! {
    // SAFETY: `_start` passes the stack pointer the kernel started the process with.
    let p = unsafe { Process::from_initial_stack(sp) };
    stage1_monitor::monitor::main(&p)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    stage1_monitor::monitor::warn(format_args!("bug: {info}"));
    stage1_monitor::sys::exit(254)
}

/// Referenced by `core`'s unwind tables; with `panic=abort` nothing unwinds, so nothing calls it.
#[unsafe(no_mangle)]
extern "C" fn rust_eh_personality() {}

// Byte loops through volatile accesses, so the compiler cannot turn them back into calls to
// themselves. The monitor copies a few hundred bytes in its whole life.

/// # Safety
/// `d` must be valid for `n` bytes of writes.
#[unsafe(no_mangle)]
unsafe extern "C" fn memset(d: *mut u8, c: i32, n: usize) -> *mut u8 {
    for i in 0..n {
        // SAFETY: `i < n` and the caller guarantees `d..d+n` is writable.
        unsafe { core::ptr::write_volatile(d.add(i), c as u8) };
    }
    d
}

/// # Safety
/// `s` readable and `d` writable for `n` bytes; they must not overlap.
#[unsafe(no_mangle)]
unsafe extern "C" fn memcpy(d: *mut u8, s: *const u8, n: usize) -> *mut u8 {
    for i in 0..n {
        // SAFETY: `i < n`; the caller guarantees both ranges.
        unsafe { core::ptr::write_volatile(d.add(i), core::ptr::read_volatile(s.add(i))) };
    }
    d
}

/// # Safety
/// `s` readable and `d` writable for `n` bytes; they may overlap.
#[unsafe(no_mangle)]
unsafe extern "C" fn memmove(d: *mut u8, s: *const u8, n: usize) -> *mut u8 {
    if (d as usize) <= (s as usize) {
        for i in 0..n {
            // SAFETY: forward copy is safe when the destination starts before the source.
            unsafe { core::ptr::write_volatile(d.add(i), core::ptr::read_volatile(s.add(i))) };
        }
    } else {
        for i in (0..n).rev() {
            // SAFETY: backward copy when the destination starts after the source.
            unsafe { core::ptr::write_volatile(d.add(i), core::ptr::read_volatile(s.add(i))) };
        }
    }
    d
}

/// # Safety
/// `a` and `b` readable for `n` bytes.
#[unsafe(no_mangle)]
unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    for i in 0..n {
        // SAFETY: `i < n`; the caller guarantees both ranges.
        let (x, y) = unsafe {
            (
                core::ptr::read_volatile(a.add(i)),
                core::ptr::read_volatile(b.add(i)),
            )
        };
        if x != y {
            return i32::from(x) - i32::from(y);
        }
    }
    0
}

/// # Safety
/// As [`memcmp`].
#[unsafe(no_mangle)]
unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: same contract.
    unsafe { memcmp(a, b, n) }
}

/// # Safety
/// `s` must point to a NUL-terminated string.
#[unsafe(no_mangle)]
unsafe extern "C" fn strlen(s: *const u8) -> usize {
    let mut n = 0;
    // SAFETY: the caller guarantees a NUL before the end of the readable memory.
    while unsafe { core::ptr::read_volatile(s.add(n)) } != 0 {
        n += 1;
    }
    n
}

/// The library is compiled with the dev profile's unwind strategy, so its cleanup paths name
/// this; with `panic=abort` no panic unwinds, so it is never reached.
#[unsafe(no_mangle)]
extern "C" fn _Unwind_Resume() -> ! {
    stage1_monitor::sys::exit(254)
}
