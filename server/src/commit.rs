//! [`Committer`]: the one lock around the [`Backend`], with group commit.
//!
//! Requests are handled one at a time (the service and its SQLite connection are single
//! threaded), and every answer leaves only after the transaction holding its writes is
//! committed. Committing with `synchronous=FULL` waits for an fsync, which costs as much as
//! handling a small request; so when other requests are already queued for the lock, a
//! handled request leaves its batch open for them and waits, and the last request of the
//! queue (or the one that fills [`MAX_BATCH`]) commits for all of them: one fsync per batch
//! instead of one per request. When the commit fails, the batch is rolled back and every
//! request in it is answered `503` with the storage code; nothing of it stays.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};

use slup_core::Code;

use crate::backend::{now, Answer, Backend};
use crate::http;

/// Most requests one commit covers.
pub const MAX_BATCH: usize = 64;

/// How a finished batch ended, kept until each of its waiting requests has read it.
#[derive(Debug)]
struct Outcome {
    /// `None` while the batch is still open.
    result: Option<Result<(), (Code, String)>>,
    /// Requests of the batch still waiting for it.
    waiters: usize,
}

#[derive(Debug)]
struct State {
    backend: Backend,
    /// A batch transaction is open.
    open: bool,
    /// Id of the open batch (or of the next one).
    batch: u64,
    /// Requests handled in the open batch.
    in_batch: usize,
    /// Batches with requests waiting for their commit.
    outcomes: HashMap<u64, Outcome>,
    stats: CommitStats,
}

/// What the committer did since the start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CommitStats {
    /// Requests handled.
    pub requests: u64,
    /// Batches committed (or rolled back).
    pub commits: u64,
}

/// The backend behind one lock, committing in groups.
#[derive(Debug)]
pub struct Committer {
    state: Mutex<State>,
    committed: Condvar,
    /// Threads waiting for the lock: while there are some, an open batch has a committer.
    queued: AtomicUsize,
}

impl Committer {
    /// Takes the backend.
    pub fn new(backend: Backend) -> Self {
        Committer {
            state: Mutex::new(State {
                backend,
                open: false,
                batch: 0,
                in_batch: 0,
                outcomes: HashMap::new(),
                stats: CommitStats::default(),
            }),
            committed: Condvar::new(),
            queued: AtomicUsize::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.queued.fetch_add(1, Ordering::SeqCst);
        // A poisoned lock means a thread panicked while holding it; the backend itself is
        // consistent (SQLite rolls back an unfinished transaction on the next BEGIN failure).
        let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        self.queued.fetch_sub(1, Ordering::SeqCst);
        st
    }

    /// Commits the open batch (if any), records the result for its waiting requests and
    /// wakes them.
    fn commit_open(&self, st: &mut State) -> Result<(), (Code, String)> {
        if !st.open {
            return Ok(());
        }
        let result = st.backend.commit_batch();
        st.stats.commits = st.stats.commits.saturating_add(1);
        st.open = false;
        st.in_batch = 0;
        if let Some(o) = st.outcomes.get_mut(&st.batch) {
            o.result = Some(result.clone());
        }
        st.batch = st.batch.wrapping_add(1);
        self.committed.notify_all();
        result
    }

    /// Answers one request body; returns after the answer's writes are committed.
    pub fn handle(&self, body: &[u8]) -> Answer {
        let mut st = self.lock();
        if !st.open {
            if let Err(e) = st.backend.begin_batch() {
                return failure(e);
            }
            st.open = true;
        }
        let answer = st.backend.handle_in_batch(now(), body);
        st.in_batch = st.in_batch.saturating_add(1);
        st.stats.requests = st.stats.requests.saturating_add(1);
        let mine = st.batch;
        if self.queued.load(Ordering::SeqCst) > 0 && st.in_batch < MAX_BATCH {
            // A thread queued for the lock will handle its request in this batch and commit
            // it (or leave it to the next one): wait for that.
            st.outcomes
                .entry(mine)
                .or_insert(Outcome {
                    result: None,
                    waiters: 0,
                })
                .waiters += 1;
            loop {
                st = self.committed.wait(st).unwrap_or_else(|p| p.into_inner());
                let Some(o) = st.outcomes.get_mut(&mine) else {
                    // Only this request removes its own entry: cannot happen.
                    return failure((Code::StorageIo, "batch outcome lost".to_owned()));
                };
                let Some(result) = o.result.clone() else {
                    continue;
                };
                o.waiters = o.waiters.saturating_sub(1);
                if o.waiters == 0 {
                    st.outcomes.remove(&mine);
                }
                return match result {
                    Ok(()) => answer,
                    Err(e) => failure(e),
                };
            }
        }
        match self.commit_open(&mut st) {
            Ok(()) => answer,
            Err(e) => failure(e),
        }
    }

    /// Threads waiting for the lock right now.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::SeqCst)
    }

    /// Requests handled and batches committed so far.
    pub fn stats(&self) -> CommitStats {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).stats
    }

    /// Runs `f` on the backend outside any batch (administration, inspection): an open batch
    /// is committed first.
    pub fn with_backend<T>(&self, f: impl FnOnce(&mut Backend) -> T) -> T {
        let mut st = self.lock();
        // Its requests' answers depend on this commit; a failure reaches them, not `f`.
        let _ = self.commit_open(&mut st);
        f(&mut st.backend)
    }
}

/// The `503` answer of a request whose batch could not be committed.
fn failure((code, detail): (Code, String)) -> Answer {
    Answer {
        status: 503,
        body: http::error_json(code, &format!("service storage failed: {detail}")),
    }
}
