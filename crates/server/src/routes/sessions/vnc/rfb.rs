//! The viewer's half of RFB (RFC 6143), read just far enough to tell watching from driving.
//!
//! A viewer's bytes are cut into whole messages whatever the WebSocket framing (a message
//! split across frames waits for its rest; a frame may hold several). Each message is
//! `Control` (the handshake, and what the viewer asks to receive: pixel format, encodings,
//! update requests, fences), always forwarded, or `Input` (keys, pointer, clipboard,
//! desktop size), forwarded only while the user has taken the browser over. A message this
//! reader does not know ends the connection: its length is unknown, so the stream cannot
//! stay in step.

/// The longest clipboard text a viewer may send.
pub const MAX_CUT_TEXT: usize = 1 << 20;
/// The longest fence payload (RFB's `ClientFence`).
const MAX_FENCE: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Control,
    Input,
}

/// One whole message of the viewer, as it goes to the display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientMessage {
    pub kind: Kind,
    pub bytes: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RfbError {
    #[error("the viewer sent no RFB 3.x protocol version")]
    Version,
    #[error("the viewer chose security type {0}, which the live view does not pass on")]
    Security(u8),
    #[error("the viewer sent message type {0}, which the live view does not know")]
    UnknownMessage(u8),
    #[error("the viewer sent a message of {0} bytes, over the limit")]
    TooLong(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// `RFB 003.00x\n`, 12 bytes.
    Version,
    /// RFB 3.7 and later: the security type the viewer picks, 1 byte.
    SecurityChoice,
    /// VNC authentication: the viewer's answer to the challenge, 16 bytes.
    VncAuthResponse,
    /// The shared flag, 1 byte.
    ClientInit,
    Messages,
}

/// Cuts a viewer's byte stream into messages; see the module documentation.
#[derive(Debug)]
pub struct ClientFilter {
    phase: Phase,
    /// Bytes of a message not yet whole.
    pending: Vec<u8>,
}

impl Default for ClientFilter {
    fn default() -> Self {
        Self::new()
    }
}

fn u16_at(bytes: &[u8], at: usize) -> usize {
    usize::from(u16::from_be_bytes([bytes[at], bytes[at + 1]]))
}

impl ClientFilter {
    pub fn new() -> Self {
        Self {
            phase: Phase::Version,
            pending: Vec::new(),
        }
    }

    /// Adds bytes from the viewer and returns the whole messages they complete, in order.
    /// The bytes of an unfinished message wait for the next call. An error means the
    /// connection must end.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Vec<ClientMessage>, RfbError> {
        self.pending.extend_from_slice(bytes);
        let mut messages = Vec::new();
        let mut start = 0;
        while let Some((length, kind)) = self.next_message(&self.pending[start..])? {
            let mut message = self.pending[start..start + length].to_vec();
            self.advance(&mut message)?;
            start += length;
            messages.push(ClientMessage {
                kind,
                bytes: message,
            });
        }
        self.pending.drain(..start);
        Ok(messages)
    }

    /// The length and kind of the message at the start of `rest`, once `rest` holds all of
    /// it; `None` while more bytes are needed.
    fn next_message(&self, rest: &[u8]) -> Result<Option<(usize, Kind)>, RfbError> {
        let Some(&message_type) = rest.first() else {
            return Ok(None);
        };
        let fixed = |length: usize, kind: Kind| Ok(Some((length, kind)));
        // A header of `header` bytes, then a body whose length it gives.
        let sized = |header: usize, body: &dyn Fn(&[u8]) -> Result<usize, RfbError>, kind: Kind| {
            if rest.len() < header {
                return Ok(None);
            }
            Ok(Some((header + body(rest)?, kind)))
        };
        let whole = match self.phase {
            Phase::Version => fixed(12, Kind::Control),
            Phase::SecurityChoice | Phase::ClientInit => fixed(1, Kind::Control),
            Phase::VncAuthResponse => fixed(16, Kind::Control),
            Phase::Messages => match message_type {
                // SetPixelFormat
                0 => fixed(20, Kind::Control),
                // SetEncodings: u16 count of i32 encodings
                2 => sized(4, &|b| Ok(4 * u16_at(b, 2)), Kind::Control),
                // FramebufferUpdateRequest
                3 => fixed(10, Kind::Control),
                // KeyEvent
                4 => fixed(8, Kind::Input),
                // PointerEvent
                5 => fixed(6, Kind::Input),
                // ClientCutText: an i32 length, negative in the extended clipboard format
                6 => sized(
                    8,
                    &|b| {
                        let length = i32::from_be_bytes([b[4], b[5], b[6], b[7]]).unsigned_abs();
                        let length = usize::try_from(length).unwrap_or(usize::MAX);
                        if length > MAX_CUT_TEXT {
                            return Err(RfbError::TooLong(length));
                        }
                        Ok(length)
                    },
                    Kind::Input,
                ),
                // EnableContinuousUpdates
                150 => fixed(10, Kind::Control),
                // ClientFence: flags, then a u8 length of payload
                248 => sized(
                    9,
                    &|b| {
                        let length = usize::from(b[8]);
                        if length > MAX_FENCE {
                            return Err(RfbError::TooLong(length));
                        }
                        Ok(length)
                    },
                    Kind::Control,
                ),
                // SetDesktopSize: a u8 count of 16-byte screens; resizes the agent's browser
                251 => sized(8, &|b| Ok(16 * usize::from(b[6])), Kind::Input),
                // QEMU: only the extended key event (sub-type 0) has a known length
                255 => match rest.get(1) {
                    None => Ok(None),
                    Some(0) => fixed(12, Kind::Input),
                    Some(_) => Err(RfbError::UnknownMessage(255)),
                },
                other => Err(RfbError::UnknownMessage(other)),
            },
        }?;
        Ok(whole.filter(|(length, _)| *length <= rest.len()))
    }

    /// Moves past a whole handshake message; the shared flag is always set, so one viewer
    /// never disconnects the others.
    fn advance(&mut self, message: &mut [u8]) -> Result<(), RfbError> {
        self.phase = match self.phase {
            Phase::Version => {
                let minor = message
                    .strip_prefix(b"RFB 003.")
                    .and_then(|rest| rest.strip_suffix(b"\n"))
                    .filter(|digits| digits.iter().all(u8::is_ascii_digit))
                    .and_then(|digits| std::str::from_utf8(digits).ok())
                    .and_then(|digits| digits.parse::<u16>().ok())
                    .ok_or(RfbError::Version)?;
                // Before 3.7 the server alone picks the security type.
                if minor >= 7 {
                    Phase::SecurityChoice
                } else {
                    Phase::ClientInit
                }
            }
            Phase::SecurityChoice => match message[0] {
                1 => Phase::ClientInit,
                2 => Phase::VncAuthResponse,
                other => return Err(RfbError::Security(other)),
            },
            Phase::VncAuthResponse => Phase::ClientInit,
            Phase::ClientInit => {
                message[0] = 1;
                Phase::Messages
            }
            Phase::Messages => Phase::Messages,
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HANDSHAKE: &[u8] = b"RFB 003.008\n\x01\x01";

    fn key(down: bool) -> Vec<u8> {
        vec![4, u8::from(down), 0, 0, 0, 0, 0, 0x61]
    }

    fn pointer() -> Vec<u8> {
        vec![5, 1, 0, 10, 0, 20]
    }

    fn update_request() -> Vec<u8> {
        vec![3, 1, 0, 0, 0, 0, 4, 0, 3, 0]
    }

    fn encodings(list: &[i32]) -> Vec<u8> {
        let mut m = vec![2, 0];
        m.extend_from_slice(&(list.len() as u16).to_be_bytes());
        for e in list {
            m.extend_from_slice(&e.to_be_bytes());
        }
        m
    }

    fn cut_text(text: &[u8]) -> Vec<u8> {
        let mut m = vec![6, 0, 0, 0];
        m.extend_from_slice(&(text.len() as i32).to_be_bytes());
        m.extend_from_slice(text);
        m
    }

    /// A filter past the handshake.
    fn ready() -> ClientFilter {
        let mut filter = ClientFilter::new();
        let handshake = filter.feed(HANDSHAKE).expect("handshake");
        assert_eq!(handshake.len(), 3);
        filter
    }

    /// What reaches the display when the user does (or does not) drive.
    fn forwarded(messages: &[ClientMessage], user_drives: bool) -> Vec<u8> {
        messages
            .iter()
            .filter(|m| m.kind == Kind::Control || user_drives)
            .flat_map(|m| m.bytes.clone())
            .collect()
    }

    #[test]
    fn the_handshake_passes_and_the_viewer_is_always_shared() {
        let mut filter = ClientFilter::new();
        // An exclusive viewer (shared flag 0) would disconnect the others.
        let messages = filter.feed(b"RFB 003.008\n\x01\x00").expect("handshake");
        let bytes: Vec<Vec<u8>> = messages.iter().map(|m| m.bytes.clone()).collect();
        assert_eq!(bytes, [b"RFB 003.008\n".to_vec(), vec![1], vec![1]]);
        assert!(messages.iter().all(|m| m.kind == Kind::Control));

        // RFB 3.3: no security choice from the viewer.
        let mut old = ClientFilter::new();
        let messages = old.feed(b"RFB 003.003\n\x01").expect("3.3");
        assert_eq!(messages.len(), 2);
        assert_eq!(old.phase, Phase::Messages);

        // VNC authentication: a 16-byte answer before ClientInit.
        let mut auth = ClientFilter::new();
        let mut bytes = b"RFB 003.008\n\x02".to_vec();
        bytes.extend_from_slice(&[7; 16]);
        bytes.push(1);
        assert_eq!(auth.feed(&bytes).expect("auth").len(), 4);
        assert_eq!(auth.phase, Phase::Messages);
    }

    #[test]
    fn a_bad_version_or_security_type_ends_the_connection() {
        assert_eq!(
            ClientFilter::new().feed(b"GET / HTTP/1.1\r\n"),
            Err(RfbError::Version)
        );
        assert_eq!(
            ClientFilter::new().feed(b"RFB 004.000\n"),
            Err(RfbError::Version)
        );
        assert_eq!(
            ClientFilter::new().feed(b"RFB 003.008\n\x13"),
            Err(RfbError::Security(19))
        );
    }

    #[test]
    fn messages_split_across_frames_wait_for_their_rest() {
        let mut filter = ready();
        let mut stream = encodings(&[0, 7, -223]);
        stream.extend(key(true));
        stream.extend(cut_text(b"hello"));
        stream.extend(update_request());
        // One byte per frame: every message still comes out whole, once, in order.
        let mut messages = Vec::new();
        for byte in &stream {
            messages.extend(filter.feed(std::slice::from_ref(byte)).expect("byte"));
        }
        let kinds: Vec<Kind> = messages.iter().map(|m| m.kind).collect();
        assert_eq!(
            kinds,
            [Kind::Control, Kind::Input, Kind::Input, Kind::Control]
        );
        assert_eq!(forwarded(&messages, true), stream);
        assert!(filter.pending.is_empty());
    }

    #[test]
    fn several_messages_in_one_frame_come_out_one_by_one() {
        let mut filter = ClientFilter::new();
        let mut frame = HANDSHAKE.to_vec();
        frame.extend(update_request());
        frame.extend(pointer());
        frame.extend(key(true));
        frame.extend(key(false));
        // Half of the next message rides along.
        frame.extend(&update_request()[..4]);
        let messages = filter.feed(&frame).expect("frame");
        assert_eq!(messages.len(), 3 + 4);
        assert_eq!(filter.pending, update_request()[..4]);
        let rest = filter.feed(&update_request()[4..]).expect("rest");
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].bytes, update_request());
    }

    #[test]
    fn input_is_dropped_while_the_agent_drives_and_forwarded_while_the_user_does() {
        let mut frame = update_request();
        frame.extend(key(true));
        frame.extend(pointer());
        frame.extend(cut_text(b"secret"));
        frame.extend([150, 1, 0, 0, 0, 0, 4, 0, 3, 0]);
        frame.extend([255, 0, 0, 1, 0, 0, 0, 0x61, 0, 0, 0, 30]);
        frame.extend([251, 0, 4, 0, 3, 0, 1, 0]);
        frame.extend([0; 16]);
        let messages = ready().feed(&frame).expect("frame");
        let mut control = update_request();
        control.extend([150, 1, 0, 0, 0, 0, 4, 0, 3, 0]);
        assert_eq!(forwarded(&messages, false), control, "the agent drives");
        assert_eq!(forwarded(&messages, true), frame, "the user drives");
    }

    #[test]
    fn fences_and_pixel_formats_pass_through() {
        let mut frame = vec![0; 20];
        frame.extend([248, 0, 0, 0, 0, 0, 0, 0, 3, 1, 2, 3]);
        let messages = ready().feed(&frame).expect("frame");
        assert!(messages.iter().all(|m| m.kind == Kind::Control));
        assert_eq!(forwarded(&messages, false), frame);
    }

    #[test]
    fn an_unknown_message_ends_the_connection() {
        assert_eq!(ready().feed(&[7, 0, 0]), Err(RfbError::UnknownMessage(7)));
        assert_eq!(
            ready().feed(&[255, 1, 0, 0]),
            Err(RfbError::UnknownMessage(255))
        );
        // Known messages before it in the same frame do not hide it.
        let mut frame = key(true);
        frame.push(200);
        assert_eq!(ready().feed(&frame), Err(RfbError::UnknownMessage(200)));
    }

    #[test]
    fn clipboard_text_is_bounded_in_both_formats() {
        let mut header = vec![6, 0, 0, 0];
        header.extend_from_slice(&((MAX_CUT_TEXT + 1) as i32).to_be_bytes());
        assert_eq!(
            ready().feed(&header),
            Err(RfbError::TooLong(MAX_CUT_TEXT + 1))
        );
        // Extended clipboard: the length is negative.
        let mut extended = vec![6, 0, 0, 0];
        extended.extend_from_slice(&(-4i32).to_be_bytes());
        extended.extend_from_slice(&[0, 0, 0, 1]);
        let messages = ready().feed(&extended).expect("extended");
        assert_eq!(messages.len(), 1);
        assert_eq!(messages[0].kind, Kind::Input);
        let mut huge = vec![6, 0, 0, 0];
        huge.extend_from_slice(&i32::MIN.to_be_bytes());
        assert!(matches!(ready().feed(&huge), Err(RfbError::TooLong(_))));
    }
}
