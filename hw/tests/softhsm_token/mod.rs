//! A private SoftHSM2 token for one test binary: its own token directory
//! (SOFTHSM2_CONF points there), initialised once, shared by the binary's
//! tests. PKCS#11 is initialised once per process, so every test of the
//! binary uses this token.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use hw::{HsmConfig, PinSource};

pub const PIN: &str = "4713-sigil-test";

pub struct Token {
    _dir: tempfile::TempDir,
    pub config: HsmConfig,
}

pub fn module() -> PathBuf {
    let module = std::env::var_os("SIGIL_PKCS11_MODULE").map_or_else(
        || PathBuf::from("/usr/lib/softhsm/libsofthsm2.so"),
        PathBuf::from,
    );
    assert!(
        module.exists(),
        "{} is missing: install SoftHSM2 (apt-get install softhsm2, or run scripts/setup.sh)",
        module.display()
    );
    module
}

pub fn token() -> &'static Token {
    static TOKEN: OnceLock<Token> = OnceLock::new();
    TOKEN.get_or_init(|| {
        let module = module();
        let dir = tempfile::tempdir().expect("tempdir");
        let tokens = dir.path().join("tokens");
        std::fs::create_dir(&tokens).expect("token dir");
        let conf = dir.path().join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                tokens.display()
            ),
        )
        .expect("softhsm2.conf");
        // Set before PKCS#11 is initialised in this process (the first
        // Hsm::open happens after this fixture is built).
        std::env::set_var("SOFTHSM2_CONF", &conf);
        let status = Command::new("softhsm2-util")
            .args([
                "--init-token",
                "--free",
                "--label",
                "sigil-test",
                "--pin",
                PIN,
                "--so-pin",
                "so-pin-0000",
            ])
            .env("SOFTHSM2_CONF", &conf)
            .output()
            .expect("softhsm2-util runs (apt-get install softhsm2)");
        assert!(
            status.status.success(),
            "init token: {}",
            String::from_utf8_lossy(&status.stderr)
        );
        let pin = dir.path().join("user.pin");
        std::fs::write(&pin, format!("{PIN}\n")).expect("pin file");
        let mut config = HsmConfig::new(module, "sigil-test", PinSource::File(pin));
        config.sessions = 4;
        Token { _dir: dir, config }
    })
}
