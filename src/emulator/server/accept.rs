//! Accepting connections within the limits: the connection limit, the
//! process's descriptors, and shedding the connections that never had a
//! quest admitted (oldest first) to make room for newcomers (see
//! [`limits`](super::limits)).

use std::collections::HashMap;
use std::io;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::thread;
use std::time::{Duration, Instant};

use super::conn::{run_conn, ConnInner, ServerConn, Writer};
use super::limits::descriptor_budget;
use super::{lock, Shared};
use crate::fpnn::codec::VERSION;

/// Safety net for writes to a client that stopped reading.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections (sockets) open in this process, in every server.
pub(super) static OPEN_CONNECTIONS: AtomicUsize = AtomicUsize::new(0);

/// Every running server of the process, to make room across servers when
/// the process runs short of descriptors.
static SERVERS: Mutex<Vec<Weak<Shared>>> = Mutex::new(Vec::new());

/// Registers a started server.
pub(super) fn register(shared: &Arc<Shared>) {
    let mut servers = lock(&SERVERS);
    servers.retain(|s| s.strong_count() > 0);
    servers.push(Arc::downgrade(shared));
}

pub(super) fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut short_of_descriptors = false;
    loop {
        let incoming = listener.accept();
        if shared.stopping.load(Ordering::SeqCst) {
            break;
        }
        let stream = match incoming {
            Ok((s, _)) => s,
            Err(e) if out_of_descriptors(&e) => {
                // The newcomer waits in the backlog meanwhile.
                if !short_of_descriptors {
                    log::warn!("accept failed: {e}; closing unauthenticated connections");
                    short_of_descriptors = true;
                }
                if !make_room(&shared, true, "the process is out of descriptors") {
                    thread::sleep(Duration::from_millis(10));
                }
                thread::sleep(Duration::from_millis(1));
                continue;
            }
            Err(e) => {
                log::warn!("accept failed: {e}");
                thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        short_of_descriptors = false;
        shared.accepted.fetch_add(1, Ordering::SeqCst);
        if shared.faults.refusing() {
            log::debug!("refusing a connection (fault)");
            let _ = stream.shutdown(Shutdown::Both);
            continue;
        }
        if !room_for_one(&shared) {
            let peer = stream
                .peer_addr()
                .map(|a| a.to_string())
                .unwrap_or_default();
            log::warn!(
                "refusing {peer}: the connection limit is reached and every open \
                 connection has had a quest admitted"
            );
            let _ = stream.shutdown(Shutdown::Both);
            continue;
        }
        if let Err(e) = start_conn(&shared, stream) {
            log::warn!("cannot start a connection: {e}");
        }
    }
}

fn out_of_descriptors(e: &io::Error) -> bool {
    #[cfg(unix)]
    {
        matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE))
    }
    #[cfg(not(unix))]
    {
        let _ = e;
        false
    }
}

/// Open (not closing) connections of a server.
fn open_in(shared: &Shared) -> usize {
    lock(&shared.conns)
        .values()
        .filter(|c| !c.is_closed())
        .count()
}

/// Makes sure one more connection fits this server's limit and the
/// process's descriptor budget, shedding an unauthenticated connection if
/// need be. False: no room (every open connection is authenticated).
fn room_for_one(shared: &Arc<Shared>) -> bool {
    let limit = shared.limits.max_connections;
    if open_in(shared) >= limit {
        let why = format!("the connection limit ({limit}) is reached");
        if !make_room(shared, false, &why) {
            return false;
        }
    }
    let budget = descriptor_budget();
    if OPEN_CONNECTIONS.load(Ordering::SeqCst) >= budget {
        let open: usize = servers().iter().map(|s| open_in(s)).sum();
        if open >= budget {
            let why = format!("the process's descriptor budget ({budget}) is reached");
            return make_room(shared, true, &why);
        }
    }
    true
}

fn servers() -> Vec<Arc<Shared>> {
    lock(&SERVERS).iter().filter_map(Weak::upgrade).collect()
}

/// The oldest open connection of `shared` that has not had a quest
/// admitted.
fn oldest_unauthenticated(shared: &Shared) -> Option<ServerConn> {
    lock(&shared.conns)
        .values()
        .find(|c| !c.is_closed() && !c.is_authenticated())
        .cloned()
}

/// Closes the oldest connection that has not had a quest admitted: of this
/// server, or (`anywhere`) of any server of the process. False when there
/// is none.
fn make_room(shared: &Arc<Shared>, anywhere: bool, why: &str) -> bool {
    let victim = if anywhere {
        let mut all: Vec<ServerConn> = servers()
            .iter()
            .filter_map(|s| oldest_unauthenticated(s))
            .collect();
        all.sort_by_key(|c| c.inner.opened);
        all.into_iter().next()
    } else {
        oldest_unauthenticated(shared)
    };
    let Some(victim) = victim else {
        return false;
    };
    log::info!(
        "conn {} ({}): closed to make room ({why}): it had no quest admitted in {:?}",
        victim.id(),
        victim.peer_addr(),
        victim.inner.opened.elapsed()
    );
    victim.close_because(format!("closed to make room: {why}"));
    true
}

/// `conn`'s read buffer took the bytes of this server's unauthenticated
/// connections to `total`, over their budget: closes the oldest of them
/// holding bytes until what they hold brings the total within the budget.
pub(super) fn shed_buffers(shared: &Shared, conn: &ServerConn, total: usize) {
    let budget = shared.limits.unauthenticated_buffer;
    let mut freed = 0;
    let victims: Vec<ServerConn> = lock(&shared.conns)
        .values()
        .filter(|c| !c.is_authenticated() && c.inner.buffered.load(Ordering::Relaxed) > 0)
        .cloned()
        .collect();
    for victim in victims {
        if total.saturating_sub(freed) <= budget {
            break;
        }
        let held = victim.inner.buffered.load(Ordering::Relaxed);
        freed += held;
        if victim.is_closed() {
            // Being closed already: its bytes are about to be released.
            continue;
        }
        log::info!(
            "conn {} ({}): closed: unauthenticated connections hold {total} bytes of \
             unfinished frames, over the budget of {budget} (it held {held}){}",
            victim.id(),
            victim.peer_addr(),
            if victim.id() == conn.id() {
                ""
            } else {
                "; the oldest go first"
            }
        );
        victim.close_because(format!(
            "closed: unauthenticated connections hold more than {budget} bytes"
        ));
    }
}

fn start_conn(shared: &Arc<Shared>, stream: TcpStream) -> io::Result<()> {
    let _ = stream.set_nodelay(true);
    stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
    let peer = stream.peer_addr()?;
    let local = stream.local_addr()?;
    let id = shared.next_conn_id.fetch_add(1, Ordering::SeqCst);
    OPEN_CONNECTIONS.fetch_add(1, Ordering::SeqCst);
    let conn = ServerConn {
        inner: Arc::new(ConnInner {
            id,
            peer,
            local,
            opened: Instant::now(),
            stream,
            writer: Mutex::new(Writer::new()),
            closed: AtomicBool::new(false),
            authenticated: AtomicBool::new(false),
            buffered: AtomicUsize::new(0),
            close_reason: Mutex::new(None),
            encryption: Mutex::new(None),
            next_seq: AtomicU32::new(1),
            version: AtomicU8::new(VERSION),
            pending: Mutex::new(HashMap::new()),
            server: Arc::downgrade(shared),
        }),
    };
    lock(&shared.conns).insert(id, conn.clone());
    let thread_shared = shared.clone();
    let thread_conn = conn.clone();
    let spawned = thread::Builder::new()
        .name(format!("emu-conn-{id}"))
        .spawn(move || run_conn(thread_shared, thread_conn));
    match spawned {
        Ok(handle) => {
            let mut threads = lock(&shared.threads);
            threads.retain(|t| !t.is_finished());
            threads.push(handle);
            Ok(())
        }
        Err(e) => {
            lock(&shared.conns).remove(&id);
            conn.close();
            Err(e)
        }
    }
}
