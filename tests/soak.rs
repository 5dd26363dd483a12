//! A soak: 200,000 calls from 16 threads while the server drops the
//! connection every few thousand quests. In its own test binary so that the
//! thread count and memory of the process belong to this test alone.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use common::{thread_count, wait_until, watchdog};
use rtm_server_sdk::emulator::{EmulatorOptions, RtmEmulator};
use rtm_server_sdk::fpnn::ReconnectStrategy;
use rtm_server_sdk::{ClientConfig, RtmServerClient};

const PID: i64 = 1;
const SECRET: &str = "soak";

/// Counts the live heap bytes of this test process, so that growth is
/// measured exactly rather than through RSS (which allocator arenas and
/// fragmentation blur).
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every method forwards to the system allocator unchanged and only
// adds bookkeeping.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc(layout);
        if !p.is_null() {
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = System.realloc(ptr, layout, new_size);
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            LIVE.fetch_add(new_size, Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn live_heap() -> usize {
    LIVE.load(Ordering::Relaxed)
}

fn run(
    client: &RtmServerClient,
    threads: usize,
    per_thread: usize,
    ok: &Arc<AtomicUsize>,
    failed: &Arc<AtomicUsize>,
) {
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let c = client.clone();
            let ok = ok.clone();
            let failed = failed.clone();
            thread::Builder::new()
                .name(format!("soak-{t}"))
                .spawn(move || {
                    for i in 0..per_thread {
                        // Mix the two forms: every 8th call is a callback.
                        let result = if i % 8 == 0 {
                            let (tx, rx) = crossbeam_channel::bounded(1);
                            c.get_voice_room_member_count_with_callback(1, move |r| {
                                tx.send(r).unwrap()
                            });
                            rx.recv_timeout(Duration::from_secs(30))
                                .expect("every callback completes")
                        } else {
                            c.get_voice_room_member_count(1)
                        };
                        match result {
                            Ok(1) => ok.fetch_add(1, Ordering::Relaxed),
                            Ok(n) => panic!("wrong count {n}"),
                            Err(e) => {
                                assert!(e.is_connection_error(), "untyped failure: {e:?}");
                                failed.fetch_add(1, Ordering::Relaxed)
                            }
                        };
                    }
                })
                .unwrap()
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
}

#[test]
fn soak_200k_calls_with_dropped_connections() {
    watchdog(Duration::from_secs(300), || {
        // A replay memory the warm-up fills (the default holds half a
        // million signatures), well above the quests of one second.
        let options = EmulatorOptions::new().remembered_signs(50_000);
        let emu = RtmEmulator::start_with_options(PID, SECRET, options).unwrap();
        // The memory keeps the signatures of its clock's last two seconds
        // beyond its capacity (more or fewer with the call rate): with its
        // clock ahead, the client's fresh signatures fall outside that
        // grace, so the memory stays at its capacity.
        emu.advance_clock(Duration::from_secs(10));
        let config = ClientConfig::default()
            .quest_timeout(Duration::from_secs(20))
            .reconnect(ReconnectStrategy::default().first_interval(Duration::from_millis(50)));
        let ok = Arc::new(AtomicUsize::new(0));
        let failed = Arc::new(AtomicUsize::new(0));
        let client = RtmServerClient::with_config(PID, SECRET, emu.endpoint(), config).unwrap();
        client.pull_into_voice_room(1, &[1]).unwrap();
        // A 100,000-call warm-up fills the allocator's pools and the
        // emulator's bounded logs (the replay memory, received quests, which
        // live in this process too); then 200,000 calls, across which threads and
        // the live heap must not grow. The server drops the connection every
        // 3000 quests throughout.
        emu.server().faults().set_drop_every(3000);
        run(&client, 16, 6_250, &ok, &failed);
        let threads_before = thread_count();
        let heap_before = live_heap();
        ok.store(0, Ordering::Relaxed);
        failed.store(0, Ordering::Relaxed);
        run(&client, 16, 12_500, &ok, &failed);
        emu.server().faults().set_drop_every(0);
        let total = ok.load(Ordering::Relaxed) + failed.load(Ordering::Relaxed);
        assert_eq!(total, 200_000, "every call returned");
        assert!(
            emu.server().connection_count() > 50,
            "the server dropped the connection many times ({})",
            emu.server().connection_count()
        );
        // Most calls succeed: a dropped quest is resent once.
        assert!(
            ok.load(Ordering::Relaxed) > 190_000,
            "ok {}",
            ok.load(Ordering::Relaxed)
        );
        assert_eq!(client.get_voice_room_member_count(1).unwrap(), 1);
        assert_eq!(client.fpnn().pending_calls(), 0);
        // No thread growth (the replaced connections' reader threads are
        // gone), and no memory growth beyond allocator noise.
        assert!(
            wait_until(Duration::from_secs(5), || thread_count() <= threads_before),
            "threads: {} before, {} after",
            threads_before,
            thread_count()
        );
        let grown = live_heap().saturating_sub(heap_before);
        assert!(grown < 1 << 20, "the live heap grew by {grown} bytes");
        eprintln!(
            "soak: {} ok, {} failed, {} connections, live heap {} -> {} KiB",
            ok.load(Ordering::Relaxed),
            failed.load(Ordering::Relaxed),
            emu.server().connection_count(),
            heap_before / 1024,
            live_heap() / 1024
        );
    });
}
