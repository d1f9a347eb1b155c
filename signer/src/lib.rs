//! Sigil's signing core.
//!
//! What it does: names the algorithms Sigil signs with (RS256, PS256, ES256,
//! ES384, EdDSA; never anything symmetric, never `none`), defines the
//! key-backend traits ([`SigningKey`], [`KeyBackend`]) that AWS-LC keys here
//! and PKCS#11 keys in crate `hw` implement, keeps a key ring per tenant
//! with rotation states ([`KeyRing`], [`KeyRingView`]), encodes JWS/JWTs
//! ([`jwt`]) and JWKS, wraps software keys at rest under a master key
//! ([`MasterKey`]), and runs the batched [`SignerPool`].
//!
//! What it does not do: no sockets, files (other than the master key file),
//! or clock reads; `now` is always a parameter. Persistence of key rings is
//! the directory's; serving JWKS is the front door's.
//!
//! Who calls it: `frontdoor` on the request path (views, JWT building,
//! signing) and on its control path (generating, storing and loading keys,
//! rotation), `hw` (implements the backend traits), `benches`. The shared
//! backend suite and the external verifiers (`conformance`) exist only
//! for tests, behind the `test-support` feature.
//!
//! Threads: everything here is `Send + Sync` and lock-free on the read path;
//! a [`KeyRing`] is changed by one owner, readers share immutable
//! [`KeyRingView`]s. The [`SignerPool`] owns its signing threads.
#![forbid(unsafe_code)]

mod algorithm;
pub mod b64;
#[cfg(any(test, feature = "test-support"))]
pub mod conformance;
mod error;
pub mod jwt;
mod key;
mod keyring;
pub mod logout_token;
mod pool;
pub mod saml;
mod session_ref;
mod software;
mod time;
mod wrap;
pub mod x509;

pub use algorithm::{Algorithm, KeySpec, RsaBits};
pub use error::Error;
pub use key::{GeneratedKey, JwkParams, KeyBackend, Kid, PublicKey, SigningKey, StoredKey};
pub use keyring::{
    render_jwks, ActiveKey, KeyEntry, KeyPolicy, KeyRing, KeyRingView, KeyState, PublishedKey,
};
pub use pool::{
    PendingSignature, PoolConfig, PoolStats, RejectReason, Rejected, Signer, SignerPool,
    SigningMode,
};
pub use session_ref::public_session_id;
pub use software::{SoftwareBackend, SoftwareKey, BACKEND_NAME as SOFTWARE_BACKEND};
pub use time::Timestamp;
pub use wrap::MasterKey;
