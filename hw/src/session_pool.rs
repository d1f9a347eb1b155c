//! The HSM connection: one PKCS#11 context per module per process, and a
//! pool of long-lived, logged-in sessions that signatures check out.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::MechanismType;
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use zeroize::Zeroizing;

use crate::error::describe;
use crate::{HsmConfig, HsmError};

/// PKCS#11 may be initialised once per module per process: every [`Hsm`]
/// on the same module shares its context.
fn context(module: &Path) -> Result<Pkcs11, HsmError> {
    static CONTEXTS: OnceLock<Mutex<HashMap<PathBuf, Pkcs11>>> = OnceLock::new();
    let contexts = CONTEXTS.get_or_init(|| Mutex::new(HashMap::new()));
    let mut contexts = contexts
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(context) = contexts.get(module) {
        return Ok(context.clone());
    }
    let module_error = |message: String| HsmError::Module {
        module: module.display().to_string(),
        message,
    };
    if !module.exists() {
        return Err(module_error(
            "no such file (for SoftHSM2: apt-get install softhsm2)".into(),
        ));
    }
    let context = Pkcs11::new(module).map_err(|e| module_error(describe(&e)))?;
    match context.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => return Err(module_error(describe(&e))),
    }
    contexts.insert(module.to_owned(), context.clone());
    Ok(context)
}

/// PKCS#11 login state belongs to the process, not the session: once one
/// [`Hsm`] has logged in to a token, any other login "succeeds" with
/// `CKR_USER_ALREADY_LOGGED_IN` whatever PIN it gives. So the process
/// remembers a digest of the PIN each token was logged in with, and a
/// second open with a different PIN is refused.
fn check_pin_for_process(
    module: &Path,
    slot: Slot,
    pin: &str,
    token: &str,
) -> Result<(), HsmError> {
    static LOGINS: OnceLock<Mutex<HashMap<(PathBuf, u64), aws_lc_rs::digest::Digest>>> =
        OnceLock::new();
    let logins = LOGINS.get_or_init(|| Mutex::new(HashMap::new()));
    let mut logins = logins
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, pin.as_bytes());
    match logins.get(&(module.to_owned(), slot.id())) {
        Some(known) if known.as_ref() != digest.as_ref() => Err(HsmError::Login {
            token: token.to_owned(),
            message: "wrong pin (this process is logged in to the token with another)".into(),
        }),
        Some(_) => Ok(()),
        None => {
            logins.insert((module.to_owned(), slot.id()), digest);
            Ok(())
        }
    }
}

/// Counters an operator pages on (exported by the front door as metrics).
#[derive(Debug, Default)]
pub struct HsmCounters {
    /// Signatures made.
    pub signatures: AtomicU64,
    /// Operations that failed in the HSM (including injected failures).
    pub failures: AtomicU64,
    /// Sessions dropped after a fault and replaced by a new one.
    pub sessions_replaced: AtomicU64,
    /// Checkouts that found no free session in time.
    pub busy: AtomicU64,
    /// Times the pool found the application logged out after a failure and
    /// logged back in.
    pub relogins: AtomicU64,
}

/// Errors after which a session is not trusted again: it is dropped and a
/// new one opened (and logged in) in its place.
fn breaks_the_session(error: &CkError) -> bool {
    matches!(
        error,
        CkError::Pkcs11(
            RvError::SessionHandleInvalid
                | RvError::SessionClosed
                | RvError::DeviceError
                | RvError::DeviceRemoved
                | RvError::DeviceMemory
                | RvError::TokenNotPresent
                | RvError::TokenNotRecognized
                | RvError::UserNotLoggedIn
                | RvError::GeneralError
                | RvError::CryptokiNotInitialized,
            _
        )
    )
}

/// A connection to one token: the shared context, the token's slot, and the
/// session pool.
pub struct Hsm {
    context: Pkcs11,
    slot: Slot,
    token_label: String,
    pin: Zeroizing<String>,
    idle: Receiver<Session>,
    returns: Sender<Session>,
    missing: AtomicUsize,
    checkout_timeout: Duration,
    counters: Arc<HsmCounters>,
    mechanisms: Vec<MechanismType>,
    control: Mutex<()>,
    /// Failures [`Hsm::danger_inject_failures`] asked for, still to come.
    #[cfg(any(test, feature = "test-support"))]
    injected_failures: AtomicU64,
}

impl std::fmt::Debug for Hsm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hsm")
            .field("token_label", &self.token_label)
            .field("slot", &self.slot.id())
            .field("idle_sessions", &self.idle.len())
            .finish_non_exhaustive()
    }
}

impl Hsm {
    /// Opens the token named in `config` and its session pool, logged in as
    /// the user.
    ///
    /// # Errors
    /// [`HsmError`] when the module, the token, the PIN or a session fails;
    /// never with the PIN in the message.
    pub fn open(config: &HsmConfig) -> Result<Arc<Hsm>, HsmError> {
        if config.sessions == 0 {
            return Err(HsmError::Config("sessions must be at least 1".into()));
        }
        if config.token_label.is_empty() {
            return Err(HsmError::Config("token label is empty".into()));
        }
        let pin = config.pin.read()?;
        let context = context(&config.module)?;
        let pkcs11 = |operation: &'static str| {
            move |e: CkError| HsmError::Pkcs11 {
                operation,
                message: describe(&e),
            }
        };
        let slot = context
            .get_slots_with_initialized_token()
            .map_err(pkcs11("list slots"))?
            .into_iter()
            .find(|&slot| {
                context
                    .get_token_info(slot)
                    .is_ok_and(|info| info.label().trim_end() == config.token_label)
            })
            .ok_or_else(|| HsmError::TokenNotFound(config.token_label.clone()))?;
        let mechanisms = context
            .get_mechanism_list(slot)
            .map_err(pkcs11("list mechanisms"))?;
        let (returns, idle) = crossbeam_channel::bounded(config.sessions);
        let hsm = Hsm {
            context,
            slot,
            token_label: config.token_label.clone(),
            pin,
            idle,
            returns,
            missing: AtomicUsize::new(0),
            checkout_timeout: config.checkout_timeout,
            counters: Arc::new(HsmCounters::default()),
            mechanisms,
            control: Mutex::new(()),
            #[cfg(any(test, feature = "test-support"))]
            injected_failures: AtomicU64::new(0),
        };
        let first = hsm.new_session()?;
        check_pin_for_process(&config.module, slot, &hsm.pin, &hsm.token_label)?;
        let _ = hsm.returns.try_send(first);
        for _ in 1..config.sessions {
            let session = hsm.new_session()?;
            // The channel holds exactly `sessions`: this cannot be full.
            let _ = hsm.returns.try_send(session);
        }
        Ok(Arc::new(hsm))
    }

    fn new_session(&self) -> Result<Session, HsmError> {
        let session = self
            .context
            .open_rw_session(self.slot)
            .map_err(|e| HsmError::Pkcs11 {
                operation: "open session",
                message: describe(&e),
            })?;
        let pin = AuthPin::new(self.pin.as_str().into());
        match session.login(UserType::User, Some(&pin)) {
            // Login state belongs to the application, not the session: once
            // one session is logged in, all are.
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(session),
            Err(e) => Err(HsmError::Login {
                token: self.token_label.clone(),
                message: describe(&e),
            }),
        }
    }

    /// Runs `operation` on a session from the pool. A session that fails with
    /// a fault is dropped and replaced; the caller gets the error either way.
    ///
    /// # Errors
    /// [`HsmError::Busy`] when no session is free within the checkout
    /// timeout; [`HsmError::Pkcs11`] when the operation fails.
    pub fn with_session<T>(
        &self,
        name: &'static str,
        operation: impl FnOnce(&Session) -> cryptoki::error::Result<T>,
    ) -> Result<T, HsmError> {
        self.refill();
        let started = Instant::now();
        let session = self.idle.recv_timeout(self.checkout_timeout).map_err(|_| {
            self.counters.busy.fetch_add(1, Ordering::Relaxed);
            HsmError::Busy(started.elapsed().as_millis())
        })?;
        let result = if self.take_injected_failure() {
            Err(CkError::Pkcs11(
                RvError::DeviceError,
                cryptoki::context::Function::Sign,
            ))
        } else {
            operation(&session)
        };
        match result {
            Ok(value) => {
                let _ = self.returns.try_send(session);
                Ok(value)
            }
            Err(e) => {
                self.counters.failures.fetch_add(1, Ordering::Relaxed);
                if breaks_the_session(&e) || !self.ensure_logged_in(&session) {
                    drop(session);
                    self.replace();
                } else {
                    let _ = self.returns.try_send(session);
                }
                Err(HsmError::Pkcs11 {
                    operation: name,
                    message: describe(&e),
                })
            }
        }
    }

    /// After a failure: a token that lost its login (restart, an operator's
    /// logout) hides private keys, and every later request would fail. Log
    /// back in; `false` if that is not possible on this session.
    fn ensure_logged_in(&self, session: &Session) -> bool {
        let logged_in = session.get_session_info().is_ok_and(|info| {
            matches!(
                info.session_state(),
                cryptoki::session::SessionState::RwUser | cryptoki::session::SessionState::RoUser
            )
        });
        if logged_in {
            return true;
        }
        let pin = AuthPin::new(self.pin.as_str().into());
        match session.login(UserType::User, Some(&pin)) {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {
                self.counters.relogins.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(_) => false,
        }
    }

    /// Opens a session in place of a broken one; if the token is not
    /// reachable now, remembers the gap and tries again on later checkouts.
    fn replace(&self) {
        self.counters
            .sessions_replaced
            .fetch_add(1, Ordering::Relaxed);
        match self.new_session() {
            Ok(session) => {
                let _ = self.returns.try_send(session);
            }
            Err(_) => {
                self.missing.fetch_add(1, Ordering::AcqRel);
            }
        }
    }

    fn refill(&self) {
        while self
            .missing
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .is_ok()
        {
            match self.new_session() {
                Ok(session) => {
                    let _ = self.returns.try_send(session);
                }
                Err(_) => {
                    self.missing.fetch_add(1, Ordering::AcqRel);
                    return;
                }
            }
        }
    }

    /// Serialises control-path work (key generation) on this token.
    pub(crate) fn control(&self) -> MutexGuard<'_, ()> {
        self.control
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether the token offers `mechanism`.
    pub fn offers(&self, mechanism: MechanismType) -> bool {
        self.mechanisms.contains(&mechanism)
    }

    /// The token's label.
    pub fn token_label(&self) -> &str {
        &self.token_label
    }

    /// The counters.
    pub fn counters(&self) -> &Arc<HsmCounters> {
        &self.counters
    }

    /// Sessions waiting in the pool now.
    pub fn idle_sessions(&self) -> usize {
        self.idle.len()
    }

    /// Whether the operation about to run is one of the failures
    /// [`Hsm::danger_inject_failures`] asked for (and counts it).
    #[cfg(any(test, feature = "test-support"))]
    fn take_injected_failure(&self) -> bool {
        self.injected_failures
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .is_ok()
    }

    /// Without `test-support` nothing can inject a failure.
    #[cfg(not(any(test, feature = "test-support")))]
    fn take_injected_failure(&self) -> bool {
        false
    }

    /// Fault injection for tests (`test-support` only): the next `count`
    /// operations fail as if the device had returned `CKR_DEVICE_ERROR`,
    /// and their sessions are replaced.
    #[cfg(any(test, feature = "test-support"))]
    pub fn danger_inject_failures(&self, count: u64) {
        self.injected_failures.fetch_add(count, Ordering::AcqRel);
    }

    /// Fault drill for tests (`test-support` only): logs the application
    /// out of the token behind the pool's back (as an HSM restart or an
    /// operator would): private keys vanish from every session until the
    /// pool notices and logs back in.
    ///
    /// # Errors
    /// When no session is free or the logout fails.
    #[cfg(any(test, feature = "test-support"))]
    pub fn danger_logout(&self) -> Result<(), HsmError> {
        self.with_session("logout", Session::logout)
    }
}
