//! The file-gate clients: one unencrypted FPNN client per gate endpoint,
//! shared by every thread and clone of an RTM client, closed after an idle
//! period (by the next send, or by one process-wide reaper thread that
//! holds the caches weakly) and by `close()`.
//!
//! A gate client runs on its RTM client's runtime (callback pool, timer,
//! supervisor, pending cap and counters): a gate connection adds only its
//! reader and writer threads, which end when the gate idles out.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::fpnn::conn::lock;
use crate::fpnn::{ClientConfig, FpnnClient, Runtime};

use super::files::DEFAULT_FILE_GATE_IDLE;

// ---------------------------------------------------------------------------
// The file-gate clients
// ---------------------------------------------------------------------------

/// The file-gate clients of one RTM client (and its clones), one per
/// endpoint.
///
/// Lock order: the reaper's lock, then a cache's `state`. A gate client is
/// never closed while `state` is held (closing joins its threads, which may
/// be releasing a ticket).
pub(crate) struct FileGates {
    /// The gates' configuration: the RTM client's, unencrypted, without
    /// keepalive or background reconnect.
    config: ClientConfig,
    /// The RTM client's runtime, which the gate clients run on.
    rt: Arc<Runtime>,
    state: Mutex<GatesState>,
}

struct GatesState {
    closed: bool,
    idle: Duration,
    next_id: u64,
    /// Whether the reaper holds this cache.
    registered: bool,
    gates: HashMap<String, Gate>,
}

struct Gate {
    id: u64,
    client: FpnnClient,
    in_flight: usize,
    last_used: Instant,
}

/// A file in flight on a gate; dropping it marks the gate used now.
pub(crate) struct GateTicket {
    gates: Weak<FileGates>,
    endpoint: String,
    id: u64,
}

impl Drop for GateTicket {
    fn drop(&mut self) {
        if let Some(gates) = self.gates.upgrade() {
            gates.release(&self.endpoint, self.id);
        }
    }
}

impl GatesState {
    /// Takes out the idle gates (but `keep`) into `out`; returns when the
    /// next of the others may become idle.
    fn take_idle(
        &mut self,
        now: Instant,
        keep: Option<&str>,
        out: &mut Vec<FpnnClient>,
    ) -> Option<Instant> {
        let idle = self.idle;
        let mut next: Option<Instant> = None;
        self.gates.retain(|endpoint, g| {
            if keep == Some(endpoint.as_str()) {
                return true;
            }
            let due = if g.in_flight > 0 {
                now.checked_add(idle)
            } else {
                g.last_used.checked_add(idle)
            };
            if g.in_flight == 0 && due.is_some_and(|due| due <= now) {
                out.push(g.client.clone());
                return false;
            }
            if let Some(due) = due {
                next = Some(next.map_or(due, |n| n.min(due)));
            }
            true
        });
        next
    }
}

impl FileGates {
    pub(crate) fn new(rtm: &FpnnClient) -> FileGates {
        let mut config = rtm.config().clone();
        config.encryption = None;
        config.keepalive = None;
        config.reconnect = None;
        FileGates {
            config,
            rt: rtm.runtime().clone(),
            state: Mutex::new(GatesState {
                closed: false,
                idle: DEFAULT_FILE_GATE_IDLE,
                next_id: 1,
                registered: false,
                gates: HashMap::new(),
            }),
        }
    }

    /// The gate client of `endpoint` (made when there is none), marked in
    /// use until the ticket drops. Closes the other idle gates on the way.
    pub(crate) fn acquire(self: &Arc<Self>, endpoint: &str) -> Result<(FpnnClient, GateTicket)> {
        let now = Instant::now();
        let mut to_close = Vec::new();
        let acquired = {
            let mut st = lock(&self.state);
            if st.closed {
                return Err(Error::ClientClosed);
            }
            st.take_idle(now, Some(endpoint), &mut to_close);
            let reuse = st
                .gates
                .get(endpoint)
                .is_some_and(|g| !g.client.is_closed());
            if !reuse {
                let client = FpnnClient::new_sharing(endpoint, self.config.clone(), &self.rt);
                match client {
                    Ok(client) => {
                        let id = st.next_id;
                        st.next_id += 1;
                        let gate = Gate {
                            id,
                            client,
                            in_flight: 0,
                            last_used: now,
                        };
                        if let Some(old) = st.gates.insert(endpoint.to_string(), gate) {
                            to_close.push(old.client);
                        }
                    }
                    Err(e) => {
                        drop(st);
                        close_all(to_close);
                        return Err(e);
                    }
                }
            }
            let register = !st.registered;
            st.registered = true;
            let gate = st
                .gates
                .get_mut(endpoint)
                .expect("the gate was just found or inserted");
            gate.in_flight += 1;
            gate.last_used = now;
            let ticket = GateTicket {
                gates: Arc::downgrade(self),
                endpoint: endpoint.to_string(),
                id: gate.id,
            };
            (gate.client.clone(), ticket, register)
        };
        close_all(to_close);
        let (client, ticket, register) = acquired;
        if register {
            reaper_register(Arc::downgrade(self));
        }
        Ok((client, ticket))
    }

    /// A file on gate `id` of `endpoint` is done.
    fn release(&self, endpoint: &str, id: u64) {
        let mut to_close = Vec::new();
        {
            let mut st = lock(&self.state);
            let idle_now = st.idle.is_zero();
            if let Some(g) = st.gates.get_mut(endpoint).filter(|g| g.id == id) {
                g.in_flight = g.in_flight.saturating_sub(1);
                g.last_used = Instant::now();
                if idle_now && g.in_flight == 0 {
                    if let Some(g) = st.gates.remove(endpoint) {
                        to_close.push(g.client);
                    }
                }
            }
        }
        close_all(to_close);
    }

    pub(crate) fn set_idle(&self, idle: Duration) {
        let mut to_close = Vec::new();
        {
            let mut st = lock(&self.state);
            st.idle = idle;
            st.take_idle(Instant::now(), None, &mut to_close);
        }
        close_all(to_close);
        reaper_kick();
    }

    /// Closes idle gates; returns when to look again (`None`: no gates).
    fn sweep(&self, now: Instant) -> Option<Instant> {
        let mut to_close = Vec::new();
        let next = {
            let mut st = lock(&self.state);
            st.take_idle(now, None, &mut to_close)
        };
        close_all(to_close);
        next
    }

    /// Closes every gate; later sends fail with a client-closed error.
    /// How long an unused gate connection stays open.
    pub(crate) fn idle(&self) -> Duration {
        lock(&self.state).idle
    }

    /// The number of gate clients open.
    pub(crate) fn count(&self) -> usize {
        lock(&self.state).gates.len()
    }

    pub(crate) fn close(&self) {
        let gates: Vec<FpnnClient> = {
            let mut st = lock(&self.state);
            st.closed = true;
            st.gates.drain().map(|(_, g)| g.client).collect()
        };
        close_all(gates);
        reaper_kick();
    }
}

impl Drop for FileGates {
    fn drop(&mut self) {
        // The gate clients close as their last handles drop; the reaper
        // lets go of this cache now rather than at its next deadline.
        reaper_kick();
    }
}

fn close_all(clients: Vec<FpnnClient>) {
    for c in clients {
        log::debug!("closing the file gate client of {}", c.endpoint());
        c.close();
    }
}

// ---------------------------------------------------------------------------
// The reaper: one thread for the whole process
// ---------------------------------------------------------------------------

struct Reaper {
    state: Mutex<ReaperState>,
    wake: Condvar,
}

struct ReaperState {
    caches: Vec<Weak<FileGates>>,
    running: bool,
    kicked: bool,
}

static REAPER: Reaper = Reaper {
    state: Mutex::new(ReaperState {
        caches: Vec::new(),
        running: false,
        kicked: false,
    }),
    wake: Condvar::new(),
};

/// Hands a cache that has gates to the reaper (starting its thread when
/// it is not running).
fn reaper_register(cache: Weak<FileGates>) {
    let mut st = lock(&REAPER.state);
    if !st.caches.iter().any(|c| c.ptr_eq(&cache)) {
        st.caches.push(cache);
    }
    st.kicked = true;
    if !st.running {
        match std::thread::Builder::new()
            .name("rtm-file-gates".into())
            .spawn(reaper_loop)
        {
            Ok(_) => st.running = true,
            Err(e) => log::warn!(
                "cannot start the file-gate reaper ({e}); idle gates close on the next send"
            ),
        }
    }
    REAPER.wake.notify_all();
}

/// Makes the reaper look again now.
fn reaper_kick() {
    let mut st = lock(&REAPER.state);
    st.kicked = true;
    REAPER.wake.notify_all();
}

fn reaper_loop() {
    loop {
        let caches: Vec<Arc<FileGates>> = {
            let mut st = lock(&REAPER.state);
            st.kicked = false;
            st.caches.iter().filter_map(Weak::upgrade).collect()
        };
        let now = Instant::now();
        let mut next: Option<Instant> = None;
        for cache in &caches {
            if let Some(due) = cache.sweep(now) {
                next = Some(next.map_or(due, |n| n.min(due)));
            }
        }
        // Let go of the caches without gates (they register again with
        // their next gate) and of the dropped ones. A cache is dropped
        // (which kicks the reaper) only once the lock is released.
        let mut held = Vec::new();
        let mut st = lock(&REAPER.state);
        st.caches.retain(|weak| match weak.upgrade() {
            None => false,
            Some(cache) => {
                let keep = {
                    let mut cs = lock(&cache.state);
                    if cs.gates.is_empty() {
                        cs.registered = false;
                    }
                    !cs.gates.is_empty()
                };
                held.push(cache);
                keep
            }
        });
        let done = st.caches.is_empty();
        if done {
            st.running = false;
        }
        drop(st);
        drop(held);
        drop(caches);
        if done {
            return;
        }
        let mut st = lock(&REAPER.state);
        while !st.kicked {
            match next {
                Some(due) => {
                    let now = Instant::now();
                    if due <= now {
                        break;
                    }
                    st = REAPER
                        .wake
                        .wait_timeout(st, due - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
                None => st = REAPER.wake.wait(st).unwrap_or_else(|e| e.into_inner()),
            }
        }
    }
}
