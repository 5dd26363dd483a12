//! The emulator's state as JSON: saved and loaded by the standalone
//! `rtm-emulator` program (`--state FILE`), usable from tests too.
//!
//! The file holds everything the API families keep (rooms, users, tokens,
//! relations, groups, messages, files, ...) and the clock offset of
//! [`RtmEmulator::advance_clock`], but not what belongs to connections (the
//! listen state) nor the anti-replay memory of recent signatures:
//!
//! ```json
//! {"format": "rtm-emulator-state", "version": 1, "pid": 11000001,
//!  "saved_at_ms": 1700000000000, "state": {"voice": {"10": {...}}, ...}}
//! ```
//!
//! Map keys that are ids are written as decimal strings (JSON keys are
//! strings) and read back as ids. A field missing from the file loads as
//! its default, so a file saved by an older emulator still loads.
//! [`RtmEmulator::save_state`] writes a temporary file beside the target
//! and renames it over the target: a crash never leaves a half-written
//! state.
//!
//! ```
//! use rtm_server_sdk::emulator::{EmulatorOptions, RtmEmulator};
//! use rtm_server_sdk::RtmServerClient;
//!
//! let emu = RtmEmulator::start(11000001, "secret").unwrap();
//! let client = RtmServerClient::new(11000001, "secret", emu.endpoint()).unwrap();
//! client.pull_into_voice_room(7, &[1, 2]).unwrap();
//! let saved = emu.state_json();
//!
//! // Another emulator (a restart) starts from that state.
//! let options = EmulatorOptions::new().state_json(saved);
//! let emu2 = RtmEmulator::start_with_options(11000001, "secret", options).unwrap();
//! assert_eq!(emu2.voice_room(7).unwrap().members.len(), 2);
//! ```

use std::fs;
use std::io::{self, Write};
use std::path::Path;

use super::rtm::{RtmEmulator, RtmState};
use super::server::lock;

/// The `format` field of a state file.
const FORMAT: &str = "rtm-emulator-state";
/// The `version` field this emulator writes (and the highest it reads).
const VERSION: u32 = 1;

#[derive(serde::Serialize)]
struct StateFileRef<'a> {
    format: &'static str,
    version: u32,
    pid: i64,
    saved_at_ms: i64,
    state: &'a RtmState,
}

#[derive(serde::Deserialize)]
struct StateFile {
    format: String,
    version: u32,
    pid: i64,
    state: RtmState,
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// Parses a state file's text and checks it belongs to project `pid`.
pub(crate) fn parse_state(json: &str, pid: i64) -> io::Result<RtmState> {
    let file: StateFile = serde_json::from_str(json)
        .map_err(|e| invalid(format!("not an emulator state file: {e}")))?;
    if file.format != FORMAT {
        return Err(invalid(format!(
            "not an emulator state file (format `{}`, expected `{FORMAT}`)",
            file.format
        )));
    }
    if file.version > VERSION {
        return Err(invalid(format!(
            "the state file has version {}, newer than this emulator's {VERSION}",
            file.version
        )));
    }
    if file.pid != pid {
        return Err(invalid(format!(
            "the state file belongs to project {}, not {pid}",
            file.pid
        )));
    }
    Ok(file.state)
}

impl RtmEmulator {
    /// The emulator's state as JSON (see the [module docs](self) for what
    /// it holds).
    pub fn state_json(&self) -> String {
        let st = lock(&self.shared.state);
        let file = StateFileRef {
            format: FORMAT,
            version: VERSION,
            pid: self.shared.pid,
            saved_at_ms: st.now_ms(),
            state: &st,
        };
        serde_json::to_string_pretty(&file).expect("the emulator state serializes to JSON")
    }

    /// Replaces the emulator's state with `json` (from
    /// [`state_json`](Self::state_json)). The open connections keep their
    /// listen state, and recently seen signatures stay refused.
    ///
    /// # Errors
    ///
    /// `ErrorKind::InvalidData` when `json` is not a state file of this
    /// project (the state is then unchanged).
    pub fn restore_state_json(&self, json: &str) -> io::Result<()> {
        let mut new = parse_state(json, self.shared.pid)?;
        let mut st = lock(&self.shared.state);
        // What belongs to this run, not to the file: the connections'
        // listen state, the file gate's endpoint (the anti-replay memory is
        // not part of the state).
        new.listen = std::mem::take(&mut st.listen);
        new.files.gate_addr = st.files.gate_addr;
        *st = new;
        Ok(())
    }

    /// Writes [`state_json`](Self::state_json) to `path`, through a
    /// temporary file in the same directory renamed over `path`, so that
    /// `path` always holds a whole state.
    ///
    /// # Errors
    ///
    /// When the file cannot be written or renamed.
    pub fn save_state(&self, path: impl AsRef<Path>) -> io::Result<()> {
        let path = path.as_ref();
        let json = self.state_json();
        let name = path
            .file_name()
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("`{}` is not a file path", path.display()),
                )
            })?
            .to_string_lossy()
            .into_owned();
        let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
        let written = (|| {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(json.as_bytes())?;
            f.write_all(b"\n")?;
            f.sync_all()
        })();
        if let Err(e) = written.and_then(|()| fs::rename(&tmp, path)) {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        Ok(())
    }

    /// Replaces the emulator's state with the one saved in `path` (see
    /// [`restore_state_json`](Self::restore_state_json)).
    ///
    /// # Errors
    ///
    /// When the file cannot be read, or (`ErrorKind::InvalidData`) is not a
    /// state file of this project.
    pub fn load_state(&self, path: impl AsRef<Path>) -> io::Result<()> {
        let json = fs::read_to_string(path)?;
        self.restore_state_json(&json)
    }
}

/// `#[serde(with = "super::persist::value")]` for an [`rmpv::Value`] field:
/// a `str` is written as a JSON string, a `bin` as `{"bin": "<hex>"}`, and
/// anything else as `{"msgpack": "<hex of its msgpack encoding>"}`, so that
/// every value comes back exactly as it was. (A family may keep its own
/// encoding instead; hence the `allow`.)
#[allow(dead_code)]
pub(crate) mod value {
    use rmpv::Value;
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    #[serde(untagged)]
    enum Repr {
        Str(String),
        Bin { bin: String },
        Packed { msgpack: String },
    }

    pub(crate) fn serialize<S: Serializer>(v: &Value, s: S) -> Result<S::Ok, S::Error> {
        let repr = match v {
            Value::String(text) if text.as_str().is_some() => {
                Repr::Str(text.as_str().unwrap_or_default().to_string())
            }
            Value::Binary(b) => Repr::Bin {
                bin: hex::encode(b),
            },
            other => {
                let mut bytes = Vec::new();
                crate::fpnn::codec::write_value(&mut bytes, other);
                Repr::Packed {
                    msgpack: hex::encode(bytes),
                }
            }
        };
        repr.serialize(s)
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
        Ok(match Repr::deserialize(d)? {
            Repr::Str(s) => Value::from(s),
            Repr::Bin { bin } => Value::Binary(hex::decode(bin).map_err(D::Error::custom)?),
            Repr::Packed { msgpack } => {
                let bytes = hex::decode(msgpack).map_err(D::Error::custom)?;
                rmpv::decode::read_value(&mut bytes.as_slice()).map_err(D::Error::custom)?
            }
        })
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        struct Holder(#[serde(with = "super")] Value);

        #[test]
        fn every_value_round_trips() {
            for v in [
                Value::from("héllo"),
                Value::Binary(vec![0, 1, 255]),
                Value::from(-5),
                Value::Nil,
                Value::Array(vec![Value::from(1), Value::from("x")]),
            ] {
                let json = serde_json::to_string(&Holder(v.clone())).unwrap();
                assert_eq!(serde_json::from_str::<Holder>(&json).unwrap().0, v);
            }
            assert_eq!(
                serde_json::to_string(&Holder(Value::from("a"))).unwrap(),
                "\"a\""
            );
            assert_eq!(
                serde_json::to_string(&Holder(Value::Binary(vec![1, 2]))).unwrap(),
                r#"{"bin":"0102"}"#
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emulator::EmulatorOptions;
    use crate::rtm::{AdminCommand, ListenTargets, RtcRoomOptions, RtcRoomType};
    use crate::RtmServerClient;

    const PID: i64 = 11000001;
    const SECRET: &str = "persist-secret";

    #[test]
    fn save_load_and_restore_keep_rooms_and_connections() {
        let emu = RtmEmulator::start(PID, SECRET).unwrap();
        let c = RtmServerClient::new(PID, SECRET, emu.endpoint()).unwrap();
        c.pull_into_voice_room(10, &[1, 2]).unwrap();
        c.pull_into_rtc_room(20, &[3], RtcRoomType::Video, RtcRoomOptions::default())
            .unwrap();
        c.admin_command(20, &[3], AdminCommand::ForbidSendingAudio)
            .unwrap();
        let mut targets = ListenTargets::new();
        targets.uids = vec![9];
        c.add_listen(&targets).unwrap();
        emu.advance_clock(std::time::Duration::from_secs(100));
        let dir = std::env::temp_dir().join(format!("rtm-persist-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.json");
        emu.save_state(&path).unwrap();
        // Nothing is left beside the file.
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);
        let json = fs::read_to_string(&path).unwrap();
        assert!(json.contains(FORMAT), "{json}");
        assert!(!json.contains("seen") && !json.contains("listen"), "{json}");

        let rooms = emu.rooms();
        c.close_voice_room(10).unwrap();
        assert!(emu.voice_room(10).is_none());
        emu.load_state(&path).unwrap();
        assert_eq!(emu.rooms(), rooms);
        assert!(emu.rtc_room(20).unwrap().user_flags[&3].audio_forbidden);
        // The connection kept its listen state, the file gate its endpoint.
        assert!(emu.listen_state()[0].uids.contains(&9));
        assert_eq!(emu.file_gate_endpoint(), emu.file_gate().endpoint());

        // Another emulator starts from the file, clock offset included.
        let options = EmulatorOptions::new().state_json(json.clone());
        let emu2 = RtmEmulator::start_with_options(PID, SECRET, options).unwrap();
        assert_eq!(emu2.rooms(), rooms);
        assert!(emu2.now_ms() - crate::emulator::server::now_ms() >= 99_000);

        // Another project's state, or garbage, is refused and changes nothing.
        let e = RtmEmulator::start_with_options(
            PID + 1,
            SECRET,
            EmulatorOptions::new().state_json(json),
        )
        .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(e.to_string().contains("belongs to project"), "{e}");
        let e = emu.restore_state_json("{\"x\": 1}").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert_eq!(emu.rooms(), rooms);
        // A file from an older emulator (fewer fields) loads.
        emu.restore_state_json(&format!(
            r#"{{"format":"{FORMAT}","version":1,"pid":{PID},"state":{{"voice":{{"5":{{"rid":5}}}}}}}}"#
        ))
        .unwrap();
        assert_eq!(emu.voice_room(5).unwrap().rid, 5);
        assert!(emu.rooms().rtc.is_empty());
        let _ = fs::remove_dir_all(&dir);
    }

    /// A state file in the layout the emulator wrote before its rooms,
    /// groups and listen moved into families of their own.
    const SAVED_BEFORE_THE_FAMILIES: &str = r#"{
        "format": "rtm-emulator-state", "version": 1, "pid": 11000001,
        "saved_at_ms": 1700000000000,
        "state": {
            "voice": {"10": {"rid": 10, "members": [1, 2], "managers": [1],
                "owner": 1, "invited": [], "mic_status": null}},
            "rtc": {"20": {"rid": 20, "members": [3], "administrators": [],
                "owner": 3, "invited": [], "mic_status": true, "room_type": 2,
                "voice_range": null, "max_receive_streams": null,
                "user_flags": {"3": {"audio_forbidden": true,
                    "video_forbidden": false, "mic_closed": false,
                    "camera_closed": false}}}},
            "clock_offset_ms": 0,
            "groups": {"groups": {"7": {"gid": 7, "members": [1],
                "public_info": "g", "private_info": "", "bans": {}}},
                "all_bans": {}},
            "rooms": {"rooms": {"8": {"rid": 8, "members": [2],
                "public_info": "", "private_info": "r", "bans": {}}},
                "all_bans": {}}
        }
    }"#;

    #[test]
    fn a_state_file_of_the_earlier_layout_loads() {
        let options = EmulatorOptions::new().state_json(SAVED_BEFORE_THE_FAMILIES);
        let emu = RtmEmulator::start_with_options(PID, SECRET, options).unwrap();
        let voice = emu.voice_room(10).unwrap();
        assert_eq!((voice.owner, voice.members.len()), (Some(1), 2));
        let rtc = emu.rtc_room(20).unwrap();
        assert!(rtc.user_flags[&3].audio_forbidden);
        assert_eq!(rtc.mic_status, Some(true));
        assert_eq!(emu.group(7).unwrap().public_info, "g");
        assert_eq!(emu.room(8).unwrap().private_info, "r");
        // And it is written back in the same layout.
        let json = emu.state_json();
        for key in [r#""voice": {"#, r#""groups": {"#, r#""rooms": {"#] {
            assert!(json.contains(key), "{key} in {json}");
        }
        assert!(json.contains(r#""10": {"#) && json.contains(r#""7": {"#));
    }
}
