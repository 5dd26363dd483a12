//! The callback pool: the threads that run user callbacks and server-quest
//! handlers, so that none of them ever runs on the reader thread.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crossbeam_channel::{unbounded, Receiver, Sender};
use rmpv::Value;

use super::codec::RawAnswer;
use super::conn::MethodName;
use super::watch::{self, Watch};
use crate::error::{Error, Result};

/// A boxed answer callback.
pub(crate) type AnswerCallback = Box<dyn FnOnce(Result<Value>) + Send + 'static>;

/// A unit of work for the pool.
pub(crate) enum Job {
    /// Complete a callback with its result.
    Answer(AnswerCallback, Result<Value>),
    /// Complete several callbacks, in order (the answers of one read).
    Answers(Vec<AnsweredCall>),
    /// Run any task (server quests, events).
    Task(Box<dyn FnOnce() + Send + 'static>),
}

impl Job {
    fn run(self) {
        match self {
            Job::Answer(cb, result) => {
                watch::set_answer_bytes(0);
                guard(move || cb(result))
            }
            Job::Answers(batch) => super::conn::run_batch(|| {
                watch::batch(|observed| {
                    for call in batch {
                        let (cb, result) = call.decode(observed);
                        guard(move || cb(result));
                    }
                })
            }),
            Job::Task(task) => {
                watch::set_answer_bytes(0);
                guard(task)
            }
        }
    }
}

/// A callback call whose answer arrived, still encoded.
pub(crate) struct AnsweredCall {
    pub cb: AnswerCallback,
    /// Kept so that it is freed here, not on the reader thread.
    pub method: MethodName,
    pub answer: RawAnswer,
}

impl AnsweredCall {
    /// Decodes the answer (on the pool thread that runs the callback). A
    /// panic while decoding (not expected: the payload was checked) fails
    /// this call alone. The answer's size is noted for the observer, when
    /// there is one (`observed`).
    fn decode(self, observed: bool) -> (AnswerCallback, Result<Value>) {
        let AnsweredCall { cb, method, answer } = self;
        let result = catch_unwind(AssertUnwindSafe(move || {
            if observed {
                super::client::decode_answer(answer)
            } else {
                answer.into_result()
            }
        }))
        .unwrap_or_else(|_| {
            Err(Error::Protocol(crate::error::ProtocolError::Other(
                "the answer could not be decoded".into(),
            )))
        });
        if let Err(Error::Protocol(e)) = &result {
            log::warn!("the answer to `{method}` cannot be decoded: {e}");
        }
        (cb, result)
    }
}

/// Runs user code; a panic is logged and the thread carries on.
fn guard(f: impl FnOnce()) {
    if catch_unwind(AssertUnwindSafe(f)).is_err() {
        log::error!("a user callback panicked; the callback thread carries on");
    }
}

/// How long the late-callback thread waits for more work before it ends.
const LATE_IDLE: Duration = Duration::from_millis(500);

/// Runs `job` on the process's late-callback thread (`fpnn-late`): the
/// callbacks of calls made on a closed client, whose pool is gone. It is
/// started on demand and ends after [`LATE_IDLE`] without work, so a
/// callback never runs on the thread that made its call, before the call
/// returned.
fn run_late(job: Job) {
    static LATE: Mutex<Option<Sender<Job>>> = Mutex::new(None);
    let mut late = LATE.lock().unwrap_or_else(|e| e.into_inner());
    let job = match late.as_ref() {
        Some(tx) => match tx.send(job) {
            Ok(()) => return,
            Err(e) => e.into_inner(),
        },
        None => job,
    };
    let (tx, rx) = unbounded::<Job>();
    let _ = tx.send(job);
    let thread_rx = rx.clone();
    let spawned = thread::Builder::new()
        .name("fpnn-late".into())
        .spawn(move || loop {
            let rx = &thread_rx;
            match rx.recv_timeout(LATE_IDLE) {
                Ok(job) => job.run(),
                Err(_) => {
                    // Senders send under the lock: checked under it, an
                    // empty channel stays empty once this thread is gone.
                    let mut late = LATE.lock().unwrap_or_else(|e| e.into_inner());
                    if rx.is_empty() {
                        *late = None;
                        return;
                    }
                }
            }
        });
    match spawned {
        Ok(_) => *late = Some(tx),
        Err(e) => {
            // No thread can be started: the job is lost unless it runs
            // here (the one case where it runs on the caller's thread).
            log::error!("cannot start the late-callback thread: {e}");
            drop(late);
            if let Ok(job) = rx.try_recv() {
                job.run();
            }
        }
    }
}

/// A fixed set of named worker threads fed by one channel.
pub(crate) struct Pool {
    tx: Mutex<Option<Sender<Job>>>,
    workers: Mutex<Vec<JoinHandle<()>>>,
    /// The client's counters: the calls completed here end on them.
    watch: Arc<Watch>,
}

impl Pool {
    pub(crate) fn new(threads: usize, name: &str, watch: Arc<Watch>) -> std::io::Result<Pool> {
        let (tx, rx): (Sender<Job>, Receiver<Job>) = unbounded();
        let mut workers = Vec::new();
        for i in 0..threads.max(1) {
            let rx = rx.clone();
            let w = watch.clone();
            let handle = thread::Builder::new()
                .name(format!("{name}-cb-{i}"))
                .spawn(move || {
                    watch::set_current(Some(w));
                    for job in rx.iter() {
                        job.run();
                    }
                    watch::set_current(None);
                })?;
            workers.push(handle);
        }
        Ok(Pool {
            tx: Mutex::new(Some(tx)),
            workers: Mutex::new(workers),
            watch,
        })
    }

    /// `job` wrapped to run with this pool's counters on the late-callback
    /// thread.
    fn late(&self, job: Job) -> Job {
        let w = self.watch.clone();
        Job::Task(Box::new(move || {
            watch::set_current(Some(w));
            job.run();
            watch::set_current(None);
        }))
    }

    /// Queues a job. After [`shutdown`](Pool::shutdown) the job runs on
    /// the process's late-callback thread instead (see [`run_late`]): it
    /// still runs exactly once, and never on the calling thread.
    pub(crate) fn submit(&self, job: Job) {
        let tx = self.tx.lock().unwrap_or_else(|e| e.into_inner()).clone();
        match tx {
            Some(tx) => {
                if let Err(e) = tx.send(job) {
                    run_late(self.late(e.into_inner()));
                }
            }
            None => run_late(self.late(job)),
        }
    }

    /// Completes `cb` with `result` on a pool thread.
    pub(crate) fn complete(&self, cb: AnswerCallback, result: Result<Value>) {
        self.submit(Job::Answer(cb, result));
    }

    /// Completes several callbacks on one pool thread, in order.
    pub(crate) fn complete_all(&self, batch: Vec<AnsweredCall>) {
        if !batch.is_empty() {
            self.submit(Job::Answers(batch));
        }
    }

    /// Completes `cb` with an error on a pool thread.
    pub(crate) fn fail(&self, cb: AnswerCallback, err: Error) {
        self.complete(cb, Err(err));
    }

    /// Lets the workers finish every queued job, then joins them (except the
    /// calling thread, when it is a worker: a thread never joins itself).
    pub(crate) fn shutdown(&self) {
        drop(self.tx.lock().unwrap_or_else(|e| e.into_inner()).take());
        let workers = std::mem::take(&mut *self.workers.lock().unwrap_or_else(|e| e.into_inner()));
        let me = thread::current().id();
        for w in workers {
            if w.thread().id() == me {
                continue;
            }
            let _ = w.join();
        }
    }
}
