//! Password verification on a few dedicated threads.
//!
//! One argon2id check holds 19 MiB and tens of milliseconds of CPU. Run on the blocking pool, a
//! burst of parallel Basic-auth requests (say 200 clients starting an upload at the same moment,
//! before the verified-credential cache knows them) ran on as many threads at once, and the
//! allocator kept each thread's 19 MiB afterwards: hundreds of MiB of resident memory that never
//! went back. Here every check runs on one of [`PasswordChecks::threads`] threads that live as long
//! as the service, each reusing one [`airlock_identity::PasswordMemory`], so argon2 memory is
//! allocated once per thread; other checks queue (they are CPU-bound anyway), and every check,
//! successful or not, takes the same path.

use std::sync::{Arc, Mutex, mpsc};

/// A check to run: the secret, the stored PHC string, and where to send the verdict.
type Job = (String, String, tokio::sync::oneshot::Sender<bool>);

/// Runs password checks on dedicated threads.
pub(crate) struct PasswordChecks {
    jobs: Mutex<mpsc::Sender<Job>>,
}

impl PasswordChecks {
    /// Starts [`PasswordChecks::threads`] checker threads; they end when this is dropped.
    pub(crate) fn new() -> Self {
        let (sender, receiver) = mpsc::channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        for n in 0..Self::threads() {
            let receiver = receiver.clone();
            let started = std::thread::Builder::new()
                .name(format!("airlock-password-{n}"))
                .spawn(move || {
                    let mut memory = airlock_identity::PasswordMemory::default();
                    loop {
                        let next = receiver.lock().unwrap_or_else(|e| e.into_inner()).recv();
                        let Ok((secret, phc, reply)) = next else {
                            return;
                        };
                        let verdict =
                            airlock_identity::verify_password_in(&secret, &phc, &mut memory);
                        let _ = reply.send(verdict);
                    }
                });
            if let Err(err) = started {
                tracing::error!(error = %err, "cannot start a password-check thread");
            }
        }
        Self {
            jobs: Mutex::new(sender),
        }
    }

    /// How many checks run at once: the machine's cores (at least 1, at most 8).
    pub(crate) fn threads() -> usize {
        std::thread::available_parallelism().map_or(1, |n| n.get().clamp(1, 8))
    }

    /// Whether `secret` matches the stored argon2id hash `phc` (see
    /// [`airlock_identity::verify_password`]); `false` if the check could not run.
    pub(crate) async fn verify(&self, secret: String, phc: String) -> bool {
        let (reply, verdict) = tokio::sync::oneshot::channel();
        let sent = self
            .jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send((secret, phc, reply));
        sent.is_ok() && verdict.await.unwrap_or(false)
    }
}
