//! `rkt-monitor`: see the `stage1-monitor` library. A static binary with its own entry point and
//! no libc; `sys` holds the pieces a C runtime would otherwise provide.
#![no_std]
#![no_main]

mod sys;
