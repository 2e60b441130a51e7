//! Passwords (argon2id), random tokens, who is calling (a session cookie or an API token),
//! CSRF protection for cookie writes, and the sign-in rate limit.
//!
//! - A session is a random 32-byte token in the `radlab_session` cookie (HttpOnly,
//!   SameSite=Strict, Secure when the server is told it sits behind TLS); the catalog keeps
//!   only its BLAKE3 hash. Each session has a CSRF token, returned at sign-in; a request that
//!   authenticates by cookie and changes anything (any method but GET, HEAD, OPTIONS) must
//!   repeat it in `X-CSRF-Token`.
//! - An API token (`Authorization: Bearer rl_...`) is for scripts; it needs no CSRF token
//!   (a browser never sends it by itself).
//! - Sign-in failures are counted per user name and per client address: after 5 for a name,
//!   or 50 from an address (a hospital's users may share one behind NAT), in 5 minutes,
//!   sign-in answers 429 with Retry-After until the window moves on.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use radlab_store::{SiteRole, User};

use crate::AppState;
use crate::error::ApiError;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "radlab_session";

/// An argon2id hash (PHC string) of a password, with a random salt.
pub fn hash_password(password: &str) -> Result<String, ApiError> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|_| ApiError::internal())?;
    let salt = SaltString::encode_b64(&salt).map_err(|_| ApiError::internal())?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|_| ApiError::internal())
}

/// Whether `password` matches a stored hash.
pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A password policy a hospital's IT accepts: at least 12 characters.
pub fn check_password(password: &str) -> Result<(), ApiError> {
    if password.chars().count() < 12 {
        return Err(ApiError::bad_request(
            "the password is too short: use at least 12 characters",
        ));
    }
    Ok(())
}

/// A random token: `prefix` and 32 random bytes in hex.
pub fn random_token(prefix: &str) -> Result<String, ApiError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|_| ApiError::internal())?;
    Ok(format!("{prefix}{}", hex::encode(bytes)))
}

/// What the catalog keeps of a token.
pub fn token_hash(token: &str) -> String {
    blake3::hash(token.as_bytes()).to_hex().to_string()
}

pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// How the caller proved who they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    /// A session cookie; its CSRF token.
    Session {
        token_hash: String,
        csrf: String,
    },
    ApiToken,
}

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: User,
    pub via: Via,
}

impl Caller {
    pub fn require_admin(&self) -> Result<(), ApiError> {
        if self.user.site_role == SiteRole::Admin {
            Ok(())
        } else {
            Err(ApiError::forbidden("this needs a site administrator"))
        }
    }
}

/// The value of a cookie in the request's `Cookie` headers.
pub fn cookie<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts
        .headers
        .get_all("cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(auth) = parts.headers.get("authorization") {
            let token = auth
                .to_str()
                .ok()
                .and_then(|v| v.strip_prefix("Bearer "))
                .ok_or_else(ApiError::unauthenticated)?;
            let user = state
                .catalog
                .api_token_user(&token_hash(token.trim()))
                .await?
                .ok_or_else(ApiError::unauthenticated)?;
            return Ok(Caller {
                user,
                via: Via::ApiToken,
            });
        }
        let token = cookie(parts, SESSION_COOKIE).ok_or_else(ApiError::unauthenticated)?;
        let hash = token_hash(token);
        let (user, csrf) = state
            .catalog
            .session(&hash, unix_now())
            .await?
            .ok_or_else(ApiError::unauthenticated)?;
        let safe = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
        if !safe {
            let sent = parts
                .headers
                .get("x-csrf-token")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !constant_time_eq(sent.as_bytes(), csrf.as_bytes()) {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "csrf",
                    "a write with a session cookie needs its X-CSRF-Token header (the \
                     csrf_token that sign-in returned)",
                ));
            }
        }
        Ok(Caller {
            user,
            via: Via::Session {
                token_hash: hash,
                csrf,
            },
        })
    }
}

/// Equal, in time that does not depend on where they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Sign-in failures per key (a user name, a client address) in a sliding window.
#[derive(Debug)]
pub struct LoginLimiter {
    window: Duration,
    per_user: usize,
    per_address: usize,
    failures: Mutex<HashMap<String, Vec<Instant>>>,
}

impl Default for LoginLimiter {
    fn default() -> Self {
        LoginLimiter {
            window: Duration::from_secs(300),
            per_user: 5,
            per_address: 50,
            failures: Mutex::new(HashMap::new()),
        }
    }
}

impl LoginLimiter {
    /// The keys a failure counts against, with their limits.
    fn keys(&self, username: &str, ip: Option<IpAddr>) -> Vec<(String, usize)> {
        let mut keys = vec![(format!("user:{}", username.to_lowercase()), self.per_user)];
        if let Some(ip) = ip {
            keys.push((format!("ip:{ip}"), self.per_address));
        }
        keys
    }

    /// `Some(seconds)` to wait when a key has used up its failures.
    pub fn blocked(&self, username: &str, ip: Option<IpAddr>) -> Option<u64> {
        let now = Instant::now();
        let mut map = self.failures.lock().ok()?;
        let mut wait = None;
        for (key, limit) in self.keys(username, ip) {
            if let Some(times) = map.get_mut(&key) {
                times.retain(|t| now.duration_since(*t) < self.window);
                if times.len() >= limit {
                    let oldest = times[0];
                    let left = self.window.saturating_sub(now.duration_since(oldest));
                    wait = Some(wait.unwrap_or(0).max(left.as_secs() + 1));
                }
            }
        }
        wait
    }

    pub fn failed(&self, username: &str, ip: Option<IpAddr>) {
        if let Ok(mut map) = self.failures.lock() {
            for (key, _) in self.keys(username, ip) {
                map.entry(key).or_default().push(Instant::now());
            }
        }
    }

    pub fn succeeded(&self, username: &str) {
        if let Ok(mut map) = self.failures.lock() {
            map.remove(&format!("user:{}", username.to_lowercase()));
        }
    }
}
