//! The stage1 ↔ helper protocol ([`crate::app::helper`]) as typed messages over two pipes: one
//! JSON object per line ([`Sender`], [`Receiver`]).
//!
//! stage1 sends [`ToHelper::Go`] once the app's bundle is written; the helper answers
//! [`FromHelper::Created`] or [`FromHelper::Failed`]. Before that, libcontainer's own error
//! line arrives as [`FromHelper::Log`] ([`LogWriter`]): when libcontainer's clean-up kills the
//! helper before it can answer, that line is the only word on why ([`Verdict`]). A line that is
//! not a message of the protocol is refused, not guessed at.

use std::io::{BufRead, BufReader, Write};
use std::marker::PhantomData;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// stage1 → helper.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ToHelper {
    /// The bundle is written: create the container.
    Go,
}

/// helper → stage1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FromHelper {
    /// The container exists; the host PID of its init, which waits for the start.
    Created(i32),
    /// The container could not be created; the one-line cause.
    Failed(String),
    /// A line libcontainer logged at error level.
    Log(String),
}

/// What went wrong on the channel itself.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    /// Reading or writing the pipe failed.
    #[error("helper channel: {0}")]
    Io(#[from] std::io::Error),
    /// A line that is no message of the protocol.
    #[error("helper channel: malformed message {line:?}: {source}")]
    Malformed {
        /// The line (cut to 200 bytes).
        line: String,
        /// The parse error.
        source: serde_json::Error,
    },
}

/// The sending end of a pipe, for messages `M`.
#[derive(Debug)]
pub struct Sender<M> {
    out: std::fs::File,
    _m: PhantomData<fn(M)>,
}

impl<M: Serialize> Sender<M> {
    /// Messages to `out` (a pipe's write end).
    pub fn new(out: std::fs::File) -> Self {
        Sender {
            out,
            _m: PhantomData,
        }
    }

    /// Send `m` as one line, in one write (atomic on a pipe up to `PIPE_BUF`).
    pub fn send(&self, m: &M) -> Result<(), ChannelError> {
        let mut line = serde_json::to_vec(m).map_err(std::io::Error::from)?;
        line.push(b'\n');
        (&self.out).write_all(&line)?;
        Ok(())
    }

    /// Another sender on the same pipe.
    pub fn try_clone(&self) -> Result<Self, ChannelError> {
        Ok(Sender::new(self.out.try_clone()?))
    }
}

/// The receiving end of a pipe, for messages `M`.
#[derive(Debug)]
pub struct Receiver<M> {
    r: BufReader<std::fs::File>,
    _m: PhantomData<fn() -> M>,
}

impl<M: DeserializeOwned> Receiver<M> {
    /// Messages from `input` (a pipe's read end).
    pub fn new(input: std::fs::File) -> Self {
        Receiver {
            r: BufReader::new(input),
            _m: PhantomData,
        }
    }

    /// The next message; None at EOF (every writer is gone).
    pub fn recv(&mut self) -> Result<Option<M>, ChannelError> {
        let mut line = String::new();
        if self.r.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        parse(&line).map(Some)
    }
}

fn parse<M: DeserializeOwned>(line: &str) -> Result<M, ChannelError> {
    serde_json::from_str(line).map_err(|source| ChannelError::Malformed {
        line: line.trim_end().chars().take(200).collect(),
        source,
    })
}

/// Writes each event libcontainer logs as one [`FromHelper::Log`] (a `MakeWriter` for the
/// helper's tracing subscriber): the formatted event is collected and sent when the writer is
/// dropped, i.e. once per event.
#[derive(Debug)]
pub struct LogWriter(pub Sender<FromHelper>);

/// One event's text on its way to [`LogWriter`]'s channel.
#[derive(Debug)]
pub struct LogLine<'a> {
    to: &'a Sender<FromHelper>,
    buf: Vec<u8>,
}

impl Write for LogLine<'_> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LogLine<'_> {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.buf);
        for l in text.lines().filter(|l| !l.trim().is_empty()) {
            let _ = self.to.send(&FromHelper::Log(l.to_string()));
        }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogLine<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        LogLine {
            to: &self.0,
            buf: Vec::new(),
        }
    }
}

/// What stage1 makes of the helper's messages: the first [`FromHelper::Created`] or
/// [`FromHelper::Failed`] decides; without either (the helper died), the cause in the last
/// [`FromHelper::Log`] line.
#[derive(Debug, Default)]
struct Verdict {
    last_log: Option<String>,
}

impl Verdict {
    /// Take `m` into account; Some once it decides.
    fn take(&mut self, m: FromHelper) -> Option<Result<i32, String>> {
        match m {
            FromHelper::Created(pid) if pid > 0 => Some(Ok(pid)),
            FromHelper::Created(pid) => Some(Err(format!("helper reported pid {pid}"))),
            FromHelper::Failed(e) => Some(Err(e)),
            FromHelper::Log(l) => {
                self.last_log = Some(l);
                None
            }
        }
    }

    /// The outcome when the channel ended (EOF, or `err`) without a decision.
    fn ended(self, err: Option<ChannelError>) -> Result<i32, String> {
        Err(match (self.last_log, err) {
            (Some(l), _) => crate::libcontainer_bypass::cause(&l).to_string(),
            (None, Some(e)) => e.to_string(),
            (None, None) => "creating the container failed (run with --debug for details)".into(),
        })
    }
}

/// Read the helper's messages up to its verdict (not to EOF: the app's process holds a copy of
/// the pipe until it execs); no channel at all is a failure without a cause.
pub fn read_verdict(rx: Option<&mut Receiver<FromHelper>>) -> Result<i32, String> {
    let mut v = Verdict::default();
    let Some(rx) = rx else {
        return v.ended(None);
    };
    loop {
        match rx.recv() {
            Ok(Some(m)) => {
                if let Some(d) = v.take(m) {
                    return d;
                }
            }
            Ok(None) => return v.ended(None),
            Err(e) => return v.ended(Some(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pipe<M: Serialize + DeserializeOwned>() -> (Sender<M>, Receiver<M>) {
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        (Sender::new(w.into()), Receiver::new(r.into()))
    }

    fn verdict_of(msgs: &[FromHelper]) -> Result<i32, String> {
        let (tx, mut rx) = pipe::<FromHelper>();
        for m in msgs {
            tx.send(m).unwrap();
        }
        drop(tx);
        read_verdict(Some(&mut rx))
    }

    #[test]
    fn messages_round_trip_one_per_line() {
        let (tx, mut rx) = pipe::<FromHelper>();
        let msgs = [
            FromHelper::Log("a\nmulti-line \"quoted\" text".into()),
            FromHelper::Failed("setting oom_score_adj to -5: denied".into()),
            FromHelper::Created(42),
        ];
        for m in &msgs {
            tx.send(m).unwrap();
        }
        drop(tx);
        for m in msgs {
            assert_eq!(rx.recv().unwrap(), Some(m));
        }
        assert_eq!(rx.recv().unwrap(), None);
        let (tx, mut rx) = pipe::<ToHelper>();
        tx.send(&ToHelper::Go).unwrap();
        assert_eq!(rx.recv().unwrap(), Some(ToHelper::Go));
    }

    #[test]
    fn verdicts() {
        assert_eq!(verdict_of(&[FromHelper::Created(42)]), Ok(42));
        assert_eq!(
            verdict_of(&[
                FromHelper::Log("noise".into()),
                FromHelper::Failed("setting oom_score_adj to -5: denied".into())
            ]),
            Err("setting oom_score_adj to -5: denied".into())
        );
        // killed by libcontainer's clean-up after logging its error
        let log = "failed to run container process exec process failed with error error in \
                   executing process : executable \"/bin/nope\" not found";
        assert_eq!(
            verdict_of(&[FromHelper::Log(log.into())]),
            Err("executable \"/bin/nope\" not found".into())
        );
        assert!(verdict_of(&[]).unwrap_err().contains("--debug"));
        assert!(verdict_of(&[FromHelper::Created(0)]).is_err());
    }

    #[test]
    fn a_line_outside_the_protocol_is_refused() {
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        let w = std::fs::File::from(w);
        (&w).write_all(b"ok 42\n").unwrap();
        drop(w);
        let mut rx = Receiver::<FromHelper>::new(r.into());
        let e = rx.recv().unwrap_err().to_string();
        assert!(e.contains("malformed message \"ok 42\""), "{e}");
    }

    #[test]
    fn each_logged_event_is_one_log_message() {
        let (tx, mut rx) = pipe::<FromHelper>();
        let sub = crate::libcontainer_bypass::error_log_subscriber(LogWriter(tx));
        tracing::subscriber::with_default(sub, || {
            tracing::error!(target: "libcontainer::container::builder_impl", "failed : cause");
            tracing::error!(target: "libcontainer::other", "filtered out");
        });
        assert_eq!(
            rx.recv().unwrap(),
            Some(FromHelper::Log("failed : cause".into()))
        );
        assert_eq!(rx.recv().unwrap(), None);
    }
}
