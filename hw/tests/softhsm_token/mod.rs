//! A private SoftHSM2 token for one test binary, made with
//! `hw::SoftHsmToken` and shared by the binary's tests (PKCS#11 is
//! initialised once per process, and SoftHSM reads SOFTHSM2_CONF then).

use std::sync::OnceLock;

use hw::{HsmConfig, SoftHsmToken};

pub struct Token {
    _dir: tempfile::TempDir,
    pub config: HsmConfig,
    /// Read by the PIN-secrecy test; not every binary sharing this fixture does.
    #[allow(dead_code)]
    pub pin: String,
}

pub fn token() -> &'static Token {
    static TOKEN: OnceLock<Token> = OnceLock::new();
    TOKEN.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let token = SoftHsmToken::create(dir.path(), "sigil-test")
            .unwrap_or_else(|e| panic!("{e} (or run scripts/setup.sh)"));
        // Before the first Hsm::open of this process, which comes after.
        std::env::set_var("SOFTHSM2_CONF", &token.conf);
        let mut config = token.config;
        config.sessions = 4;
        let pin = std::fs::read_to_string(dir.path().join("user.pin")).expect("pin file");
        Token {
            _dir: dir,
            config,
            pin,
        }
    })
}
