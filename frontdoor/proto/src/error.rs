//! The error answers of `sigil/1`: the codes (docs/protocol.md, "Error
//! codes") and the `{code, message}` body.

use serde::{Deserialize, Serialize};

/// The error codes of `sigil/1`, spelled on the wire in snake case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The request is malformed: undecodable, a missing or oversized field,
    /// an unknown operation. Also the code of the id-0 answer that closes a
    /// stream.
    BadRequest,
    /// The caller presented no client certificate, or one not registered
    /// (every operation but `health`, which is open to any caller).
    Unauthenticated,
    /// The caller may not act for this tenant, or the operation needs an
    /// admin certificate.
    Forbidden,
    /// No such tenant, user, app, SP or key.
    NotFound,
    /// The session is unknown, expired, idle too long, or revoked.
    SessionInvalid,
    /// The user is suspended or deactivated.
    UserInactive,
    /// The tenant is over its rate budget; retry later.
    RateLimited,
    /// The node is at its in-flight limit (the node's, split evenly over
    /// its cores: the share of the core serving the connection); retry
    /// later or elsewhere.
    Overloaded,
    /// The node cannot answer safely now (e.g. it has no fresh lease from
    /// every peer, or the directory is unreachable); it fails closed.
    Unavailable,
    /// A failure inside Sigil; the message says no more than needed.
    Internal,
    /// The request conflicts with the current state (e.g. another cluster
    /// membership change took the epoch first); look, then retry.
    Conflict,
    /// The user is not assigned to the app or SP (neither directly nor
    /// through a group), or the app has no assignment at all.
    NotAssigned,
    /// The user or password (or one-time code) is wrong: the same answer,
    /// in the same time, whether the user exists or not.
    InvalidCredentials,
}

impl ErrorCode {
    /// Every code, in documentation order.
    pub const ALL: [ErrorCode; 13] = [
        ErrorCode::BadRequest,
        ErrorCode::Unauthenticated,
        ErrorCode::Forbidden,
        ErrorCode::NotFound,
        ErrorCode::SessionInvalid,
        ErrorCode::UserInactive,
        ErrorCode::RateLimited,
        ErrorCode::Overloaded,
        ErrorCode::Unavailable,
        ErrorCode::Internal,
        ErrorCode::Conflict,
        ErrorCode::NotAssigned,
        ErrorCode::InvalidCredentials,
    ];

    /// The wire spelling, e.g. `rate_limited`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::Unauthenticated => "unauthenticated",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::SessionInvalid => "session_invalid",
            ErrorCode::UserInactive => "user_inactive",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Overloaded => "overloaded",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Internal => "internal",
            ErrorCode::Conflict => "conflict",
            ErrorCode::NotAssigned => "not_assigned",
            ErrorCode::InvalidCredentials => "invalid_credentials",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error answer's body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireError {
    /// One of the [`ErrorCode`]s.
    pub code: ErrorCode,
    /// A human-readable explanation; never secret material.
    pub message: String,
}
