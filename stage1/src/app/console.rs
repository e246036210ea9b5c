//! The terminal of an interactive app (`rkt run --interactive` with stdin a terminal).
//!
//! As runc/crun with a console socket: the app's spec says `process.terminal`, libcontainer
//! creates a pty inside the container, makes its slave the app's controlling terminal and stdio
//! (and `/dev/console`), and sends the master over [`ConsoleSocket`]. stage1 puts its own
//! terminal into raw mode and relays bytes between it and the master from its single-threaded
//! poll loop ([`Console`]); the caller's window size follows on SIGWINCH. Dropping the
//! [`Console`] restores the caller's terminal.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::termios::{self, SetArg, Termios};

use crate::{sys, Error};

/// Name of the console socket in the pod's libcontainer state dir.
pub const SOCKET_NAME: &str = "console.sock";

/// Bytes read from stdin and not yet written to the master before stdin stops being read.
const MAX_PENDING: usize = 64 * 1024;

/// Whether stage1's stdin is a terminal (then an interactive app gets a pty).
pub fn stdin_is_tty() -> bool {
    nix::unistd::isatty(std::io::stdin().as_raw_fd()).unwrap_or(false)
}

/// The unix socket libcontainer sends the pty master to.
#[derive(Debug)]
pub struct ConsoleSocket {
    listener: UnixListener,
    path: PathBuf,
}

impl ConsoleSocket {
    /// Listen at `dir/`[`SOCKET_NAME`]. `dir` may be relative to the current directory (a
    /// socket path is limited to 108 bytes); `abs_dir` is the same dir, absolute, for
    /// libcontainer.
    pub fn bind(dir: &Path, abs_dir: &Path) -> Result<ConsoleSocket, Error> {
        let p = dir.join(SOCKET_NAME);
        let _ = std::fs::remove_file(&p);
        let listener = UnixListener::bind(&p).map_err(|e| Error::io(&p, e))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| Error::io(&p, e))?;
        Ok(ConsoleSocket {
            listener,
            path: abs_dir.join(SOCKET_NAME),
        })
    }

    /// The socket's absolute path (`ContainerBuilder::with_console_socket`).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The pty master libcontainer sent (it does so before the container counts as created).
    pub fn receive_master(&self, within: Duration) -> Result<OwnedFd, Error> {
        let err = |m: &'static str| Error::Console(m);
        let deadline = Instant::now() + within;
        let stream = loop {
            match self.listener.accept() {
                Ok((s, _)) => break s,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(err("no terminal from the app's container"));
                    }
                    let mut fds = [PollFd::new(self.listener.as_fd(), PollFlags::POLLIN)];
                    let ms = PollTimeout::try_from(left.as_millis().min(60_000) as i32 + 1)
                        .unwrap_or(PollTimeout::MAX);
                    match poll(&mut fds, ms) {
                        Ok(_) | Err(Errno::EINTR) => {}
                        Err(e) => return Err(Error::Sys("polling the console socket".into(), e)),
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::io(&self.path, e)),
            }
        };
        stream
            .set_nonblocking(false)
            .and_then(|()| stream.set_read_timeout(Some(within)))
            .map_err(|e| Error::io(&self.path, e))?;
        match sys::recv_fd(stream.as_fd()) {
            Ok(Some(fd)) => Ok(fd),
            Ok(None) => Err(err("the message carried no terminal")),
            Err(e) => Err(Error::Sys("receiving the app's terminal".into(), e)),
        }
    }
}

impl Drop for ConsoleSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Which fds the relay polls and for what: `(stdin, master)`.
pub fn interest(
    stdin_open: bool,
    master_open: bool,
    pending: usize,
) -> (Option<PollFlags>, Option<PollFlags>) {
    let stdin = (stdin_open && master_open && pending < MAX_PENDING).then_some(PollFlags::POLLIN);
    let master = master_open.then(|| {
        if pending > 0 {
            PollFlags::POLLIN | PollFlags::POLLOUT
        } else {
            PollFlags::POLLIN
        }
    });
    (stdin, master)
}

/// Which of the caller's stdio fds are terminals, and so how a pty is relayed to them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Relay {
    /// Caller fds 0, 1, 2 that are terminals: the process gets the pty slave in their place
    /// (the others it inherits as they are).
    pub ttys: [bool; 3],
}

impl Relay {
    /// The relay for stage1's own stdio, `None` when none of it is a terminal.
    pub fn of_stdio() -> Option<Relay> {
        let tty = |fd: i32| nix::unistd::isatty(fd).unwrap_or(false);
        Relay::new([tty(0), tty(1), tty(2)])
    }

    /// `None` when no fd is a terminal (then no pty is needed).
    pub fn new(ttys: [bool; 3]) -> Option<Relay> {
        ttys.contains(&true).then_some(Relay { ttys })
    }

    /// Whether the caller's stdin is read and copied to the pty (and put into raw mode).
    pub fn reads_stdin(&self) -> bool {
        self.ttys[0]
    }

    /// The caller fd the pty's output is written to: stdout if it is a terminal, else stderr
    /// if it is, else stdin (a terminal is normally open for both reading and writing).
    pub fn out_fd(&self) -> i32 {
        [1, 2, 0]
            .into_iter()
            .find(|&fd| self.ttys[fd as usize])
            .unwrap_or(1)
    }

    /// The caller's terminal whose window size the pty follows.
    pub fn term_fd(&self) -> i32 {
        (0..3).find(|&fd| self.ttys[fd as usize]).unwrap_or(0)
    }
}

/// The relay between stage1's terminal (stdin/stdout, see [`Relay`]) and a pty master: an
/// interactive app's, or the one `rkt enter` gives the entered command.
#[derive(Debug)]
pub struct Console {
    master: OwnedFd,
    saved: Option<Termios>,
    pending: Vec<u8>,
    stdin_open: bool,
    master_open: bool,
    stdout_ok: bool,
    out: i32,
    term: i32,
}

impl Console {
    /// Take over the pty `master`: stdin goes raw, the app gets the caller's window size.
    pub fn start(master: OwnedFd) -> Result<Console, Error> {
        Console::start_with(master, Relay { ttys: [true; 3] })
    }

    /// Take over the pty `master` for a caller whose terminals are `relay`'s: stdin, when it is
    /// a terminal, goes raw and is copied to the pty; the pty's output goes to
    /// [`Relay::out_fd`]; the pty gets the caller's window size.
    pub fn start_with(master: OwnedFd, relay: Relay) -> Result<Console, Error> {
        use nix::fcntl::{fcntl, FcntlArg, OFlag};
        let fl = fcntl(master.as_raw_fd(), FcntlArg::F_GETFL)
            .map_err(|e| Error::Sys("reading the pty master's flags".into(), e))?;
        fcntl(
            master.as_raw_fd(),
            FcntlArg::F_SETFL(OFlag::from_bits_truncate(fl) | OFlag::O_NONBLOCK),
        )
        .map_err(|e| Error::Sys("making the pty master non-blocking".into(), e))?;
        let mut c = Console {
            master,
            saved: None,
            pending: Vec::new(),
            stdin_open: relay.reads_stdin(),
            master_open: true,
            stdout_ok: true,
            out: relay.out_fd(),
            term: relay.term_fd(),
        };
        if relay.reads_stdin() {
            c.saved = Some(make_raw(std::io::stdin().as_fd())?);
        }
        c.resize();
        Ok(c)
    }

    /// The pty master (to poll).
    pub fn master(&self) -> BorrowedFd<'_> {
        self.master.as_fd()
    }

    /// What to poll for: `(stdin, master)`.
    pub fn interest(&self) -> (Option<PollFlags>, Option<PollFlags>) {
        interest(self.stdin_open, self.master_open, self.pending.len())
    }

    /// Copy the caller's window size to the app's terminal.
    pub fn resize(&self) {
        if let Ok(ws) = with_stdio(self.term, sys::get_winsize) {
            if let Err(e) = sys::set_winsize(self.master.as_fd(), &ws) {
                tracing::debug!("setting the app's window size: {e}");
            }
        }
    }

    /// Relay what poll reported (`revents` of stdin and of the master, if polled).
    pub fn handle(&mut self, stdin: Option<PollFlags>, master: Option<PollFlags>) {
        if master.is_some_and(|r| !r.is_empty()) {
            self.read_master();
        }
        if let Some(r) = stdin {
            if r.contains(PollFlags::POLLIN) {
                let mut buf = [0u8; 4096];
                match nix::unistd::read(std::io::stdin().as_raw_fd(), &mut buf) {
                    Ok(0) => self.stdin_open = false,
                    Ok(n) => self.pending.extend_from_slice(&buf[..n]),
                    Err(Errno::EINTR | Errno::EAGAIN) => {}
                    Err(_) => self.stdin_open = false,
                }
            } else if r.intersects(PollFlags::POLLHUP | PollFlags::POLLERR | PollFlags::POLLNVAL) {
                self.stdin_open = false;
            }
        }
        self.flush_pending();
    }

    /// After the app exited: copy what it left in the pty (bounded by `within`, as other
    /// processes of the pod may still hold the terminal).
    pub fn drain(&mut self, within: Duration) {
        let deadline = Instant::now() + within;
        while self.master_open {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let mut fds = [PollFd::new(self.master.as_fd(), PollFlags::POLLIN)];
            let ms = PollTimeout::try_from(left.as_millis() as i32 + 1).unwrap_or(PollTimeout::MAX);
            match poll(&mut fds, ms) {
                Ok(0) => break,
                Ok(_) | Err(Errno::EINTR) => self.read_master(),
                Err(_) => break,
            }
        }
    }

    /// Read the master until it would block; EOF/EIO (every slave closed) ends the relay.
    fn read_master(&mut self) {
        let mut buf = [0u8; 16 * 1024];
        for _ in 0..16 {
            match nix::unistd::read(self.master.as_raw_fd(), &mut buf) {
                Ok(0) | Err(Errno::EIO) => {
                    self.master_open = false;
                    return;
                }
                Ok(n) => self.write_out(&buf[..n]),
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => return,
                Err(e) => {
                    tracing::debug!("reading the pty master: {e}");
                    self.master_open = false;
                    return;
                }
            }
        }
    }

    fn flush_pending(&mut self) {
        if !self.master_open {
            self.pending.clear();
            return;
        }
        while !self.pending.is_empty() {
            match nix::unistd::write(self.master.as_fd(), &self.pending) {
                Ok(n) => {
                    self.pending.drain(..n);
                }
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => return,
                Err(_) => {
                    self.pending.clear();
                    return;
                }
            }
        }
    }

    /// Write to stdout (blocking; a non-blocking stdout gets up to a second per stall). Output
    /// that cannot be written is dropped so the app never blocks on a dead terminal.
    fn write_out(&mut self, data: &[u8]) {
        if !self.stdout_ok {
            return;
        }
        let ok = with_stdio(self.out, |out| write_all_out(out, data));
        self.stdout_ok &= ok;
    }

    /// Whether the pty is still open (some process of the pod holds its slave).
    pub fn is_open(&self) -> bool {
        self.master_open
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        if let Some(t) = self.saved.take() {
            let _ = termios::tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, &t);
        }
    }
}

/// Run `f` on stdio fd `fd` (0, 1 or 2).
fn with_stdio<R>(fd: i32, f: impl FnOnce(BorrowedFd<'_>) -> R) -> R {
    match fd {
        0 => f(std::io::stdin().as_fd()),
        1 => f(std::io::stdout().as_fd()),
        _ => f(std::io::stderr().as_fd()),
    }
}

/// Write all of `data` to `out` (blocking; a non-blocking fd gets up to a second per stall);
/// false if it cannot be written.
fn write_all_out(out: BorrowedFd<'_>, mut data: &[u8]) -> bool {
    while !data.is_empty() {
        match nix::unistd::write(out, data) {
            Ok(n) => data = &data[n..],
            Err(Errno::EINTR) => {}
            Err(Errno::EAGAIN) => {
                let mut fds = [PollFd::new(out, PollFlags::POLLOUT)];
                if !matches!(poll(&mut fds, PollTimeout::from(1000u16)), Ok(n) if n > 0) {
                    return false;
                }
            }
            Err(_) => return false,
        }
    }
    true
}

/// Put the terminal `fd` into raw mode; returns its previous settings.
pub fn make_raw(fd: BorrowedFd<'_>) -> Result<Termios, Error> {
    let saved = termios::tcgetattr(fd)
        .map_err(|e| Error::Sys("reading the terminal's settings".into(), e))?;
    let mut raw = saved.clone();
    termios::cfmakeraw(&mut raw);
    termios::tcsetattr(fd, SetArg::TCSANOW, &raw)
        .map_err(|e| Error::Sys("putting the terminal into raw mode".into(), e))?;
    Ok(saved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_interest() {
        let r = PollFlags::POLLIN;
        let rw = PollFlags::POLLIN | PollFlags::POLLOUT;
        assert_eq!(interest(true, true, 0), (Some(r), Some(r)));
        assert_eq!(interest(true, true, 10), (Some(r), Some(rw)));
        // too much unwritten input: stop reading stdin until the app reads
        assert_eq!(interest(true, true, MAX_PENDING), (None, Some(rw)));
        assert_eq!(interest(false, true, 0), (None, Some(r)));
        // the app's terminal is gone: nothing to relay
        assert_eq!(interest(true, false, 0), (None, None));
    }

    #[test]
    fn relay_follows_the_callers_terminals() {
        assert_eq!(Relay::new([false; 3]), None);
        let all = Relay::new([true; 3]).unwrap();
        assert!(all.reads_stdin());
        assert_eq!((all.out_fd(), all.term_fd()), (1, 0));
        // `cmd < file` on a terminal: no stdin relay, output to the terminal on stdout
        let out = Relay::new([false, true, true]).unwrap();
        assert!(!out.reads_stdin());
        assert_eq!((out.out_fd(), out.term_fd()), (1, 1));
        // `cmd > file` on a terminal: the pty's output (echo, stderr) goes to stderr
        let err = Relay::new([true, false, true]).unwrap();
        assert_eq!((err.out_fd(), err.term_fd()), (2, 0));
        // only stdin: echo goes back to the terminal on stdin
        assert_eq!(Relay::new([true, false, false]).unwrap().out_fd(), 0);
        assert_eq!(Relay::new([false, false, true]).unwrap().term_fd(), 2);
    }

    #[test]
    fn raw_mode_and_restore() {
        let pty = nix::pty::openpty(None, None).unwrap();
        let before = termios::tcgetattr(pty.slave.as_fd()).unwrap();
        assert!(before.local_flags.contains(termios::LocalFlags::ICANON));
        let saved = make_raw(pty.slave.as_fd()).unwrap();
        let raw = termios::tcgetattr(pty.slave.as_fd()).unwrap();
        assert!(!raw.local_flags.contains(termios::LocalFlags::ICANON));
        assert!(!raw.local_flags.contains(termios::LocalFlags::ISIG));
        termios::tcsetattr(pty.slave.as_fd(), SetArg::TCSANOW, &saved).unwrap();
        let after = termios::tcgetattr(pty.slave.as_fd()).unwrap();
        assert_eq!(after.local_flags, before.local_flags);
    }

    #[test]
    fn winsize_copy() {
        let a = nix::pty::openpty(None, None).unwrap();
        let ws = nix::pty::Winsize {
            ws_row: 33,
            ws_col: 101,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        sys::set_winsize(a.master.as_fd(), &ws).unwrap();
        let got = sys::get_winsize(a.slave.as_fd()).unwrap();
        assert_eq!((got.ws_row, got.ws_col), (33, 101));
    }

    #[test]
    fn master_over_the_socket() {
        use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags, UnixAddr};
        let dir = tempfile::tempdir().unwrap();
        let sock = ConsoleSocket::bind(dir.path(), dir.path()).unwrap();
        assert_eq!(sock.path(), dir.path().join(SOCKET_NAME));
        let pty = nix::pty::openpty(None, None).unwrap();
        // as libcontainer does: connect, send "/dev/ptmx" with the master
        let c = std::os::unix::net::UnixStream::connect(sock.path()).unwrap();
        let fds = [pty.master.as_raw_fd()];
        sendmsg::<UnixAddr>(
            c.as_raw_fd(),
            &[std::io::IoSlice::new(b"/dev/ptmx")],
            &[ControlMessage::ScmRights(&fds)],
            MsgFlags::empty(),
            None,
        )
        .unwrap();
        let m = sock.receive_master(Duration::from_secs(2)).unwrap();
        // it is the same pty: a size set through it shows on the slave
        let ws = nix::pty::Winsize {
            ws_row: 7,
            ws_col: 9,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        sys::set_winsize(m.as_fd(), &ws).unwrap();
        assert_eq!(sys::get_winsize(pty.slave.as_fd()).unwrap().ws_col, 9);
        let p = sock.path().to_path_buf();
        drop(sock);
        assert!(!p.exists());
    }

    #[test]
    fn no_master_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let sock = ConsoleSocket::bind(dir.path(), dir.path()).unwrap();
        let e = sock
            .receive_master(Duration::from_millis(50))
            .unwrap_err()
            .to_string();
        assert!(e.contains("console socket"), "{e}");
    }
}
