//! CSRF tokens of the console's forms: an HMAC-SHA256 of the session the
//! form was rendered for, under a key drawn at random when the process
//! starts (a restart logs everyone out anyway: sessions live in memory).
//!
//! Owns: making and checking tokens. Must not: decide who the session
//! belongs to (session.rs) or answer requests.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::hmac;

/// The key the tokens of this process are signed with.
pub struct CsrfKey(hmac::Key);

impl std::fmt::Debug for CsrfKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CsrfKey(..)")
    }
}

impl CsrfKey {
    /// A new key from the system's random source.
    ///
    /// # Panics
    /// When the operating system has no random source (ring's
    /// `SystemRandom` failing means no session token could be issued
    /// either).
    #[allow(clippy::expect_used)]
    pub fn random() -> Self {
        let rng = ring::rand::SystemRandom::new();
        Self(hmac::Key::generate(hmac::HMAC_SHA256, &rng).expect("the system random source"))
    }

    /// A key from fixed bytes (tests).
    pub fn from_bytes(key: &[u8]) -> Self {
        Self(hmac::Key::new(hmac::HMAC_SHA256, key))
    }

    /// The token of the forms rendered for `session` (the session's access
    /// token; a fixed word where there is no session, `--auth none`).
    pub fn token(&self, session: &str) -> String {
        URL_SAFE_NO_PAD.encode(hmac::sign(&self.0, session.as_bytes()).as_ref())
    }

    /// Whether `token` is the token of `session`, compared in constant time
    /// (ring's verify); a malformed token is not.
    pub fn verify(&self, session: &str, token: &str) -> bool {
        match URL_SAFE_NO_PAD.decode(token.trim()) {
            Ok(tag) => hmac::verify(&self.0, session.as_bytes(), &tag).is_ok(),
            Err(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_token_checks_for_its_session_only() {
        let key = CsrfKey::from_bytes(b"k");
        let t = key.token("session-a");
        assert!(key.verify("session-a", &t));
        assert!(!key.verify("session-b", &t));
        assert!(!key.verify("session-a", ""));
        assert!(!key.verify("session-a", "not base64 !"));
        // A token of another process's key is refused.
        assert!(!CsrfKey::random().verify("session-a", &t));
        // One flipped character is refused.
        let mut bad = t.into_bytes();
        bad[0] = if bad[0] == b'A' { b'B' } else { b'A' };
        assert!(!key.verify("session-a", &String::from_utf8(bad).expect("ascii")));
    }

    #[test]
    fn two_random_keys_differ() {
        assert_ne!(CsrfKey::random().token("s"), CsrfKey::random().token("s"));
    }

    proptest! {
        #[test]
        fn tokens_are_url_safe_and_round_trip(session in ".{0,64}", other in ".{0,64}") {
            let key = CsrfKey::from_bytes(b"proptest");
            let t = key.token(&session);
            prop_assert!(t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
            prop_assert!(key.verify(&session, &t));
            prop_assert_eq!(key.verify(&other, &t), other == session);
        }
    }
}
