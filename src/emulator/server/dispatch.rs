//! What the server does with each frame: the `*key` handshake, quests it
//! answers itself (`*key`, `*ping`), refused quests, and the service.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use rmpv::Value;

use super::conn::ServerConn;
use super::{lock, now_ms, Reply, Shared};
use crate::codes;
use crate::error::ProtocolError;
use crate::fpnn::codec::{decode_frame, map_get, Frame, Header, Quest, HEADER_LEN};
use crate::fpnn::crypto::{CipherMode, Decryptor, KeyBits};

/// Room for the header, seq and method on top of the payload limit.
const FRAME_OVERHEAD: usize = HEADER_LEN + 4 + 255;

/// How a connection to an encrypted server starts.
pub(super) enum Start {
    /// With a `*key` frame of this many bytes: the rest is encrypted.
    Encrypted(Box<Decryptor>, usize),
    /// With another frame, on a server that allows plain clients.
    Plain,
}

/// Tries to complete the `*key` handshake from the raw bytes received so far.
/// `Ok(None)`: more bytes needed. `Ok(Some(start))`: how the connection
/// goes on. `Err`: close the connection without answering.
pub(super) fn try_handshake(
    shared: &Arc<Shared>,
    conn: &ServerConn,
    pre: &[u8],
) -> Result<Option<Start>, String> {
    if pre.len() < HEADER_LEN {
        return Ok(None);
    }
    let mut raw = [0u8; HEADER_LEN];
    raw.copy_from_slice(&pre[..HEADER_LEN]);
    let header = Header::parse(&raw).map_err(|e| format!("bad first frame: {e}"))?;
    if header.psize as usize > shared.limits.max_payload {
        return Err(format!(
            "{}",
            ProtocolError::FrameTooLarge {
                size: header.psize as u64,
                max: shared.limits.max_payload as u64
            }
        ));
    }
    let len = header.frame_len() as usize;
    if pre.len() < len {
        return Ok(None);
    }
    let frame = decode_frame(&pre[..len], shared.limits.max_payload)
        .map_err(|e| format!("bad first frame: {e}"))?;
    let quest = match frame {
        Frame::Quest(q) if q.method == "*key" && q.seq.is_some() => q,
        _ if shared.allow_plain => {
            conn.inner.version.store(header.version, Ordering::SeqCst);
            log::debug!("conn {}: not encrypted", conn.id());
            return Ok(Some(Start::Plain));
        }
        Frame::Quest(q) => {
            return Err(format!(
                "the first quest is `{}`, not a two-way `*key`, on an encrypted server",
                q.method
            ))
        }
        Frame::Answer(_) => return Err("the first frame is an answer, not `*key`".into()),
    };
    shared.record(&quest.method, &pre[len - header.psize as usize..len]);
    let public_key = match map_get(&quest.payload, "publicKey") {
        Some(Value::Binary(b)) => b.clone(),
        Some(Value::String(s)) => s.as_bytes().to_vec(),
        _ => return Err("`*key` without a publicKey".into()),
    };
    // The C++ server reads these with defaults.
    let stream_mode = map_get(&quest.payload, "streamMode")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let bits = match map_get(&quest.payload, "bits") {
        None => 128,
        Some(v) => v
            .as_i64()
            .and_then(|b| u32::try_from(b).ok())
            .ok_or("`*key` with a non-integer bits")?,
    };
    let key = shared.encryption.as_ref().expect("encrypted server");
    let max_frame = shared.limits.max_payload.saturating_add(FRAME_OVERHEAD);
    let (encryptor, decryptor) = key
        .accept(&public_key, stream_mode, bits, max_frame)
        .map_err(|e| format!("`*key` refused: {e}"))?;
    lock(&conn.inner.writer).encryptor = Some(encryptor);
    conn.inner.version.store(header.version, Ordering::SeqCst);
    let mode = if stream_mode {
        CipherMode::Stream
    } else {
        CipherMode::Package
    };
    let key_bits = if bits == 128 {
        KeyBits::Aes128
    } else {
        KeyBits::Aes256
    };
    *lock(&conn.inner.encryption) = Some((mode, key_bits));
    log::debug!("conn {}: encrypted ({mode:?} mode, AES-{bits})", conn.id());
    // Faults apply (a frozen server does not answer `*key` either).
    conn.deliver(quest.seq, Reply::ok(), false);
    shared.service.on_encrypted(conn);
    Ok(Some(Start::Encrypted(Box::new(decryptor), len)))
}

/// Whether the server answers `method` itself (never offered to
/// [`Service::admit`]).
pub(super) fn server_answers(shared: &Shared, method: &str) -> bool {
    method == "*key" || (method == "*ping" && !shared.service.handles_ping())
}

/// Answers a quest that [`Service::admit`] refused: nothing of it is
/// recorded or decoded. Faults apply as to any quest.
pub(super) fn refuse_quest(
    shared: &Arc<Shared>,
    conn: &ServerConn,
    seq: Option<u32>,
    method: &str,
    reply: Reply,
) {
    if shared.faults.should_drop() {
        log::debug!(
            "conn {}: dropping the connection on `{method}` (fault)",
            conn.id()
        );
        conn.close();
        return;
    }
    if shared.faults.frozen() {
        log::debug!("conn {}: frozen, `{method}` ignored", conn.id());
        return;
    }
    log::debug!("conn {}: `{method}` refused before decoding", conn.id());
    conn.deliver(seq, reply, false);
}

/// Handles a quest that was admitted (or that the server answers itself):
/// it was recorded already.
pub(super) fn handle_quest(shared: &Arc<Shared>, conn: &ServerConn, quest: Quest) {
    if shared.faults.should_drop() {
        log::debug!(
            "conn {}: dropping the connection on `{}` (fault)",
            conn.id(),
            quest.method
        );
        conn.close();
        return;
    }
    if shared.faults.frozen() {
        log::debug!("conn {}: frozen, `{}` ignored", conn.id(), quest.method);
        return;
    }
    let reply = match quest.method.as_str() {
        "*key" if shared.encryption.is_some() => {
            log::debug!("conn {}: `*key` is not the first quest", conn.id());
            Reply::Close
        }
        "*key" => {
            log::warn!(
                "conn {} ({}): the client starts an encrypted connection (`*key`), but \
                 this server has no key (rtm-emulator: --key): answered {}",
                conn.id(),
                conn.peer_addr(),
                codes::FPNN_EC_CORE_UNKNOWN_METHOD
            );
            Reply::error(
                codes::FPNN_EC_CORE_UNKNOWN_METHOD,
                "encryption is not enabled on this server",
            )
        }
        "*ping" if !shared.service.handles_ping() => {
            Reply::Answer(Value::Map(vec![(Value::from("ts"), Value::from(now_ms()))]))
        }
        _ => shared.service.on_quest(conn, &quest),
    };
    conn.deliver(quest.seq, reply, false);
}
