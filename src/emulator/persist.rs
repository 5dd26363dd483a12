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
//!
//! # Saving
//!
//! * **Saves never stall clients.** A save takes a snapshot under the state
//!   lock (the families' small parts are copied; the message log, the
//!   large part, is shared chunk by chunk, copy on write), releases the
//!   lock, and only then serialises and writes: quests go on meanwhile.
//!   Save time is linear in the state's size.
//! * **A crash never leaves a half-written state.**
//!   [`RtmEmulator::save_state`] writes `.NAME.tmp-PID` beside the target,
//!   flushes it to disk (`fsync`), renames it over the target and flushes
//!   the directory: `kill -9` at any moment leaves the previous or the new
//!   state, whole.
//!
//! # Loading
//!
//! A file is checked before it is used, and refused with
//! `ErrorKind::InvalidData` and a message that names the field: another
//! project's state, a newer version, a malformed file, or message cursor
//! ids that would break the history cursors (`messages.last_id` below 0,
//! an id below 1, an id twice, or an id above `messages.last_id`).
//!
//! # One emulator per file
//!
//! [`StateFile::lock`] is how a long-running emulator holds its file (the
//! `rtm-emulator` program does): a second emulator given the same file is
//! refused (`ErrorKind::ResourceBusy`, naming the file and the holder's
//! pid) instead of both overwriting each other; temporary files left by a
//! save that was killed are removed; and [`StateFile::save`] retries a
//! failed save (for example when file descriptors run out) and logs every
//! failure.
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
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;

use super::rtm::{RtmEmulator, RtmState};
use super::server::lock;

/// The `format` field of a state file.
const FORMAT: &str = "rtm-emulator-state";
/// The `version` field this emulator writes (and the highest it reads).
const VERSION: u32 = 1;

/// How many times [`StateFile::save`] tries a save before it gives up.
pub const SAVE_ATTEMPTS: u32 = 3;
/// The wait before the first retry of a failed save; it doubles after each.
pub const SAVE_RETRY_WAIT: Duration = Duration::from_millis(100);

/// The state file as written: the header and a snapshot.
#[derive(Serialize)]
struct StateFileOut<'a> {
    format: &'static str,
    version: u32,
    pid: i64,
    saved_at_ms: i64,
    state: &'a Snapshot,
}

#[derive(serde::Deserialize)]
struct StateFileIn {
    format: String,
    version: u32,
    pid: i64,
    state: RtmState,
}

/// The saved part of the state at one moment, taken under the state lock
/// ([`Snapshot::of`]) and serialised after it is released. Its fields are
/// those of `RtmState` that are saved, in the same order (a test checks
/// that both write the same JSON).
#[derive(Serialize)]
pub(crate) struct Snapshot {
    voice: super::voice::VoiceRooms,
    rtc: super::rtc::RtcRooms,
    clock_offset_ms: i64,
    users: super::users::Users,
    relations: super::relations::Relations,
    data: super::data::Data,
    groups: super::groups::Groups,
    rooms: super::rooms::RoomsState,
    devices: super::devices::Devices,
    im: super::imserver::ImServer,
    messages: super::messages::MessagesSnapshot,
    moderation: super::moderation::Moderation,
    files: super::files::Files,
    /// The emulator's clock when it was taken (not a state field).
    #[serde(skip)]
    taken_at_ms: i64,
}

impl Snapshot {
    /// The saved part of `st`: the families' parts copied, the message log
    /// shared (one pointer per chunk of messages).
    pub(crate) fn of(st: &RtmState) -> Snapshot {
        Snapshot {
            voice: st.voice.clone(),
            rtc: st.rtc.clone(),
            clock_offset_ms: st.clock_offset_ms,
            users: st.users.clone(),
            relations: st.relations.clone(),
            data: st.data.clone(),
            groups: st.groups.clone(),
            rooms: st.rooms.clone(),
            devices: st.devices.clone(),
            im: st.im.clone(),
            messages: st.messages.snapshot(),
            moderation: st.moderation.clone(),
            files: st.files.clone(),
            taken_at_ms: st.now_ms(),
        }
    }
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// Parses a state file's text and checks it belongs to project `pid` and
/// is consistent.
pub(crate) fn parse_state(json: &str, pid: i64) -> io::Result<RtmState> {
    let file: StateFileIn = serde_json::from_str(json).map_err(|e| {
        invalid(if e.is_data() {
            format!("invalid emulator state file: {e}")
        } else {
            format!("not an emulator state file: {e}")
        })
    })?;
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

/// Saves of one process, one at a time (they share the temporary name).
static SAVING: Mutex<()> = Mutex::new(());

/// The temporary file a save of `path` by this process writes first:
/// `.NAME.tmp-PID` in the same directory.
fn temp_path(path: &Path) -> io::Result<PathBuf> {
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("`{}` is not a file path", path.display()),
        )
    })?;
    let name = name.to_string_lossy();
    Ok(path.with_file_name(format!(".{name}.tmp-{}", std::process::id())))
}

/// Writes a file through `.NAME.tmp-PID`: written, flushed to disk,
/// renamed over `path`, and the directory flushed.
fn write_atomically(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<fs::File>) -> io::Result<()>,
) -> io::Result<()> {
    let tmp = temp_path(path)?;
    let _one_at_a_time = lock(&SAVING);
    let written = (|| {
        let mut out = BufWriter::with_capacity(1 << 20, fs::File::create(&tmp)?);
        write(&mut out)?;
        out.write_all(b"\n")?;
        let file = out.into_inner().map_err(io::IntoInnerError::into_error)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    sync_dir(path)
}

/// Flushes the directory of `path` (where the rename is recorded).
fn sync_dir(path: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        fs::File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        Ok(())
    }
}

impl RtmEmulator {
    /// A snapshot of the saved state (the state lock is held only while
    /// it is taken).
    pub(crate) fn snapshot(&self) -> Snapshot {
        Snapshot::of(&lock(&self.shared.state))
    }

    /// Writes the state file of `snap` to `out`.
    fn write_snapshot(&self, snap: &Snapshot, out: impl Write) -> io::Result<()> {
        let file = StateFileOut {
            format: FORMAT,
            version: VERSION,
            pid: self.shared.pid,
            saved_at_ms: snap.taken_at_ms,
            state: snap,
        };
        serde_json::to_writer_pretty(out, &file).map_err(io::Error::from)
    }

    /// The emulator's state as JSON (see the [module docs](self) for what
    /// it holds). Serialised from a snapshot, outside the state lock.
    pub fn state_json(&self) -> String {
        let snap = self.snapshot();
        let mut out = Vec::new();
        self.write_snapshot(&snap, &mut out)
            .expect("the emulator state serializes to JSON");
        String::from_utf8(out).expect("serde_json writes UTF-8")
    }

    /// Replaces the emulator's state with `json` (from
    /// [`state_json`](Self::state_json)). The open connections keep their
    /// listen state, and recently seen signatures stay refused.
    ///
    /// # Errors
    ///
    /// `ErrorKind::InvalidData` when `json` is not a consistent state file
    /// of this project (the state is then unchanged).
    pub fn restore_state_json(&self, json: &str) -> io::Result<()> {
        let mut new = parse_state(json, self.shared.pid)?;
        let mut st = lock(&self.shared.state);
        // What belongs to this run, not to the file: the connections'
        // listen state, the file gate's endpoint (the anti-replay memory is
        // not part of the state).
        new.listen = std::mem::take(&mut st.listen);
        new.files.gate_addr = st.files.gate_addr;
        let old = std::mem::replace(&mut *st, new);
        drop(st);
        // The old state is freed outside the lock.
        drop(old);
        Ok(())
    }

    /// Writes [`state_json`](Self::state_json) to `path`, through a
    /// temporary file in the same directory (`.NAME.tmp-PID`), flushed to
    /// disk and renamed over `path`, so that `path` always holds a whole
    /// state. The state lock is held only while a snapshot is taken.
    ///
    /// # Errors
    ///
    /// When the file cannot be written or renamed (the temporary file is
    /// then removed).
    pub fn save_state(&self, path: impl AsRef<Path>) -> io::Result<()> {
        let snap = self.snapshot();
        write_atomically(path.as_ref(), |out| self.write_snapshot(&snap, out))
    }

    /// Replaces the emulator's state with the one saved in `path` (see
    /// [`restore_state_json`](Self::restore_state_json)).
    ///
    /// # Errors
    ///
    /// When the file cannot be read, or (`ErrorKind::InvalidData`) is not a
    /// consistent state file of this project.
    pub fn load_state(&self, path: impl AsRef<Path>) -> io::Result<()> {
        let json = fs::read_to_string(path)?;
        self.restore_state_json(&json)
    }
}

/// A state file held by this process: one emulator per file.
///
/// [`lock`](Self::lock) takes an exclusive lock (`flock`) on
/// `.NAME.lock` beside the file, which records the holder's pid. Dropping
/// the `StateFile` removes the lock file and releases the lock; the
/// operating system releases it too when the process ends, however it ends
/// (after `kill -9` the unlocked lock file stays, and is taken over). A
/// second [`StateFile::lock`] of the same file, in this process or
/// another, is refused while the first is alive. (On platforms other than
/// Unix the file is not locked.)
///
/// ```
/// use rtm_server_sdk::emulator::persist::StateFile;
/// use rtm_server_sdk::emulator::{EmulatorOptions, RtmEmulator};
///
/// let dir = std::env::temp_dir().join(format!("rtm-state-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let file = StateFile::lock(dir.join("state.json")).unwrap();
/// let mut options = EmulatorOptions::new();
/// if let Some(json) = file.read().unwrap() {
///     options = options.state_json(json);
/// }
/// let emu = RtmEmulator::start_with_options(11000001, "secret", options).unwrap();
/// // A second holder is refused, naming the file and this process.
/// let e = StateFile::lock(dir.join("state.json")).unwrap_err();
/// assert_eq!(e.kind(), std::io::ErrorKind::ResourceBusy);
/// assert!(e.to_string().contains(&std::process::id().to_string()));
/// file.save(&emu).unwrap();
/// # drop(file);
/// # std::fs::remove_dir_all(&dir).unwrap();
/// ```
#[derive(Debug)]
pub struct StateFile {
    path: PathBuf,
    lock_path: PathBuf,
    /// The open, locked `.NAME.lock` (the lock lives as long as it).
    lock: fs::File,
    removed: Vec<PathBuf>,
}

impl Drop for StateFile {
    /// Removes the lock file, then releases the lock (a process that
    /// opened it meanwhile sees that it was removed and tries again).
    fn drop(&mut self) {
        let _ = self.lock.set_len(0);
        let _ = fs::remove_file(&self.lock_path);
    }
}

/// Opens and locks `lock_path` for the state file `path`.
fn open_locked(path: &Path, lock_path: &Path) -> io::Result<fs::File> {
    loop {
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(lock_path)
            .map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot open the lock file {}: {e}", lock_path.display()),
                )
            })?;
        try_lock(&file).map_err(|e| {
            if e.kind() != io::ErrorKind::WouldBlock {
                return io::Error::new(
                    e.kind(),
                    format!("cannot lock {}: {e}", lock_path.display()),
                );
            }
            let holder = fs::read_to_string(lock_path)
                .ok()
                .and_then(|t| t.trim().parse::<u32>().ok())
                .map_or("an unknown pid".to_string(), |p| format!("pid {p}"));
            io::Error::new(
                io::ErrorKind::ResourceBusy,
                format!(
                    "the state file {} is in use by another emulator ({holder}; lock file {})",
                    path.display(),
                    lock_path.display()
                ),
            )
        })?;
        // The previous holder removes the lock file as it ends: a lock
        // taken on a file that is no longer there is no lock.
        if same_file(&file, lock_path) {
            return Ok(file);
        }
    }
}

/// Whether `file` is (still) the file at `path`.
fn same_file(file: &fs::File, path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match (file.metadata(), fs::metadata(path)) {
            (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (file, path);
        true
    }
}

impl StateFile {
    /// Takes `path` for this process: locks it, then removes the
    /// temporary files that saves of `path` killed mid-way left behind
    /// (`.NAME.tmp-PID` of a process that is gone, or of this process's
    /// pid). The file itself need not exist yet.
    ///
    /// # Errors
    ///
    /// `ErrorKind::ResourceBusy` when another holder has the file (the
    /// message names the file and the holder's pid);
    /// `ErrorKind::InvalidInput` when `path` names no file; an I/O error
    /// when the lock file cannot be created (for example, a missing
    /// directory).
    pub fn lock(path: impl AsRef<Path>) -> io::Result<StateFile> {
        let path = path.as_ref().to_path_buf();
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
        let lock_path = path.with_file_name(format!(".{name}.lock"));
        let mut file = open_locked(&path, &lock_path)?;
        file.set_len(0)?;
        writeln!(file, "{}", std::process::id())?;
        let removed = remove_stale_temps(&path, &name);
        for p in &removed {
            log::info!("removed {}, left by an interrupted save", p.display());
        }
        Ok(StateFile {
            path,
            lock_path,
            lock: file,
            removed,
        })
    }

    /// The state file's path.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The temporary files [`lock`](Self::lock) removed.
    #[must_use]
    pub fn removed_temp_files(&self) -> &[PathBuf] {
        &self.removed
    }

    /// The file's text, or `None` when it does not exist yet.
    ///
    /// # Errors
    ///
    /// When the file exists but cannot be read.
    pub fn read(&self) -> io::Result<Option<String>> {
        match fs::read_to_string(&self.path) {
            Ok(json) => Ok(Some(json)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Saves `emu`'s state to the file ([`RtmEmulator::save_state`]),
    /// trying up to [`SAVE_ATTEMPTS`] times, [`SAVE_RETRY_WAIT`] apart at
    /// first (doubling): a failure (for example "Too many open files") is
    /// logged as a warning, and the last one is returned.
    ///
    /// # Errors
    ///
    /// The error of the last attempt.
    pub fn save(&self, emu: &RtmEmulator) -> io::Result<()> {
        let mut wait = SAVE_RETRY_WAIT;
        let mut attempt = 1;
        loop {
            match emu.save_state(&self.path) {
                Ok(()) => return Ok(()),
                Err(e) if attempt >= SAVE_ATTEMPTS => return Err(e),
                Err(e) => {
                    log::warn!(
                        "saving the state to {} failed (attempt {attempt} of {SAVE_ATTEMPTS}): \
                         {e}; retrying in {} ms",
                        self.path.display(),
                        wait.as_millis()
                    );
                    std::thread::sleep(wait);
                    wait *= 2;
                    attempt += 1;
                }
            }
        }
    }
}

/// An exclusive, non-blocking `flock` (`WouldBlock` when held elsewhere).
#[cfg(unix)]
fn try_lock(file: &fs::File) -> io::Result<()> {
    use rustix::fs::{flock, FlockOperation};
    flock(file, FlockOperation::NonBlockingLockExclusive).map_err(io::Error::from)
}

#[cfg(not(unix))]
fn try_lock(_file: &fs::File) -> io::Result<()> {
    Ok(())
}

/// Whether process `pid` is alive (on Unix; elsewhere, assumed alive).
fn alive(pid: u32) -> bool {
    #[cfg(unix)]
    {
        use rustix::process::{test_kill_process, Pid};
        let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) else {
            return false;
        };
        match test_kill_process(pid) {
            Ok(()) => true,
            // It exists, but is not ours to signal.
            Err(e) => e == rustix::io::Errno::PERM,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = pid;
        true
    }
}

/// Removes `.NAME.tmp-PID` beside `path` for every PID that is gone or is
/// this process (which holds the lock and is not saving yet); returns the
/// files removed.
fn remove_stale_temps(path: &Path, name: &str) -> Vec<PathBuf> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let prefix = format!(".{name}.tmp-");
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(pid) = file_name
            .to_str()
            .and_then(|n| n.strip_prefix(&prefix))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if (pid == std::process::id() || !alive(pid)) && fs::remove_file(entry.path()).is_ok() {
            removed.push(entry.path());
        }
    }
    removed
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

    /// A directory of its own for one test.
    fn test_dir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("rtm-persist-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// An emulator with something in every family that a client reaches
    /// easily, and messages across several chunks.
    fn busy_emulator() -> RtmEmulator {
        let emu = RtmEmulator::start(PID, SECRET).unwrap();
        let c = RtmServerClient::new(PID, SECRET, emu.endpoint()).unwrap();
        c.pull_into_voice_room(10, &[1, 2]).unwrap();
        c.add_group_members(7, &[1, 2]).unwrap();
        c.add_friends(1, &[2]).unwrap();
        c.get_token(5).unwrap();
        for i in 0..2500 {
            c.send_group_message(
                1,
                7,
                30,
                format!("m{i}"),
                &crate::rtm::SendOptions::default(),
            )
            .unwrap();
        }
        emu.advance_clock(std::time::Duration::from_secs(5));
        emu
    }

    /// The snapshot writes exactly what the state itself would: no saved
    /// field is forgotten, none is out of order.
    #[test]
    fn a_snapshot_writes_the_state_alike() {
        let emu = busy_emulator();
        let st = lock(&emu.shared.state);
        let whole = serde_json::to_string_pretty(&*st).unwrap();
        let snap = serde_json::to_string_pretty(&Snapshot::of(&st)).unwrap();
        assert_eq!(snap, whole);
        assert!(whole.contains("\"m2499\""));
    }

    /// A writer that, at its first write, looks whether the state lock is
    /// free.
    struct LockProbe<'a> {
        emu: &'a RtmEmulator,
        free: Option<bool>,
    }

    impl Write for LockProbe<'_> {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.free.is_none() {
                self.free = Some(self.emu.shared.state.try_lock().is_ok());
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// A save serialises its snapshot with the state lock free, so quests
    /// go on meanwhile.
    #[test]
    fn a_save_serialises_outside_the_state_lock() {
        let emu = busy_emulator();
        let snap = emu.snapshot();
        let mut probe = LockProbe {
            emu: &emu,
            free: None,
        };
        emu.write_snapshot(&snap, &mut probe).unwrap();
        assert_eq!(
            probe.free,
            Some(true),
            "the state lock was held while serialising"
        );
        // A change after the snapshot is not in it, and did not wait for it.
        let c = RtmServerClient::new(PID, SECRET, emu.endpoint()).unwrap();
        c.close_voice_room(10).unwrap();
        let mut out = Vec::new();
        emu.write_snapshot(&snap, &mut out).unwrap();
        let saved: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert!(
            saved["state"]["voice"]["10"].is_object(),
            "{}",
            saved["state"]["voice"]
        );
        assert!(emu.voice_room(10).is_none());
    }

    #[test]
    fn a_corrupt_message_cursor_is_refused_at_load() {
        let emu = RtmEmulator::start(PID, SECRET).unwrap();
        for (messages, field) in [
            (r#"{"log": [], "last_id": -5}"#, "`messages.last_id` is -5"),
            (
                r#"{"log": [{"id": 9, "target": "Broadcast", "from": 1, "mtype": 30,
                    "mid": 1, "msg": {"Text": ""}, "attrs": "", "mtime": 0}], "last_id": 3}"#,
                "`messages.log` holds the cursor id 9, above `messages.last_id` 3",
            ),
        ] {
            let json = format!(
                r#"{{"format":"{FORMAT}","version":1,"pid":{PID},"state":{{"messages":{messages}}}}}"#
            );
            let e = emu.restore_state_json(&json).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidData);
            assert!(e.to_string().contains(field), "{e}");
            assert!(
                e.to_string().starts_with("invalid emulator state file"),
                "{e}"
            );
            let e = RtmEmulator::start_with_options(
                PID,
                SECRET,
                EmulatorOptions::new().state_json(json),
            )
            .unwrap_err();
            assert!(e.to_string().contains(field), "{e}");
        }
    }

    #[test]
    fn a_state_file_has_one_holder() {
        let dir = test_dir("lock");
        let path = dir.join("state.json");
        let held = StateFile::lock(&path).unwrap();
        assert_eq!(held.path(), path);
        assert_eq!(held.read().unwrap(), None);
        let e = StateFile::lock(&path).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::ResourceBusy);
        let msg = e.to_string();
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        assert!(
            msg.contains(&format!("pid {}", std::process::id())),
            "{msg}"
        );
        // Another file in the same directory is another lock.
        let other = StateFile::lock(dir.join("other.json")).unwrap();
        drop((held, other));
        // Released with its holder.
        let again = StateFile::lock(&path).unwrap();
        let emu = busy_emulator();
        again.save(&emu).unwrap();
        let json = again.read().unwrap().unwrap();
        let emu2 =
            RtmEmulator::start_with_options(PID, SECRET, EmulatorOptions::new().state_json(json))
                .unwrap();
        assert_eq!(emu2.message_count(), 2500);
        drop(again);
        // Its lock file goes with it.
        assert!(!dir.join(".state.json.lock").exists());
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn stale_temp_files_are_removed_when_the_file_is_taken() {
        let dir = test_dir("stale");
        let path = dir.join("state.json");
        // A pid that is gone: a child that has exited and been reaped.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let gone = child.id();
        child.wait().unwrap();
        let live = std::os::unix::process::parent_id();
        let names = [
            format!(".state.json.tmp-{gone}"),
            format!(".state.json.tmp-{}", std::process::id()),
            format!(".state.json.tmp-{live}"),
            format!(".other.json.tmp-{gone}"),
            ".state.json.tmp-x".to_string(),
        ];
        for n in &names {
            fs::write(dir.join(n), "partial").unwrap();
        }
        let file = StateFile::lock(&path).unwrap();
        let mut removed: Vec<String> = file
            .removed_temp_files()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        removed.sort();
        let mut want = vec![names[0].clone(), names[1].clone()];
        want.sort();
        assert_eq!(removed, want);
        for (i, n) in names.iter().enumerate() {
            assert_eq!(dir.join(n).exists(), i >= 2, "{n}");
        }
        drop(file);
        let _ = fs::remove_dir_all(&dir);
    }

    /// A save that fails is retried, and succeeds once the cause is gone.
    #[test]
    fn a_failed_save_is_retried() {
        let dir = test_dir("retry");
        let path = dir.join("state.json");
        let file = StateFile::lock(&path).unwrap();
        // A non-empty directory where the file goes: the rename fails.
        fs::create_dir_all(path.join("in-the-way")).unwrap();
        let emu = busy_emulator();
        let cleaner = {
            let path = path.clone();
            std::thread::spawn(move || {
                std::thread::sleep(SAVE_RETRY_WAIT / 2);
                fs::remove_dir_all(&path).unwrap();
            })
        };
        file.save(&emu).unwrap();
        cleaner.join().unwrap();
        assert!(file.read().unwrap().unwrap().contains("m2499"));
        // No temporary file is left beside it.
        let left: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".tmp-"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
        drop(file);
        let _ = fs::remove_dir_all(&dir);
    }
}
