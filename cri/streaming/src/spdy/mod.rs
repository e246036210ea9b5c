//! SPDY/3.1 as client-go's spdystream speaks it: the frame codec and a session.

pub mod frame;
pub mod session;
mod stream;
pub mod zlib;

pub use frame::{decode_frame, Frame, FrameError, Headers};
pub use session::{Session, SessionHandle, SpdyStream, StreamCheck, StreamReader, StreamWriter};
