//! Health checks with keepalived's semantics: checkers probe the reals,
//! the engine turns their results into UP/DOWN (delay_loop, retry,
//! delay_before_retry, warmup, alpha) and quorum decisions, and the
//! director applies those to the data plane.

pub mod checkers;
pub mod engine;
pub mod notify;
pub mod quorum;
pub mod script;

use std::{future::Future, net::IpAddr, pin::Pin, time::Duration};

/// A boxed future, as the `Checker` trait returns (no async-trait crate).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What one probe found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub up: bool,
    /// Why, in a few words, for the one-line state-change log.
    pub reason: String,
    /// MISC_CHECK with misc_dynamic: the weight the script asked for.
    pub weight: Option<u32>,
}

impl Outcome {
    pub fn up(reason: impl Into<String>) -> Outcome {
        Outcome {
            up: true,
            reason: reason.into(),
            weight: None,
        }
    }

    pub fn down(reason: impl Into<String>) -> Outcome {
        Outcome {
            up: false,
            reason: reason.into(),
            weight: None,
        }
    }
}

/// One health probe of one real (TCP_CHECK, HTTP_GET, ...). A checker does
/// one probe per call, bounded by its own connect timeout; scheduling and
/// retries are the engine's.
pub trait Checker: Send + Sync {
    /// e.g. "TCP_CHECK 10.0.0.11:80", for logs.
    fn describe(&self) -> String;
    fn check(&self) -> BoxFuture<'_, Outcome>;
}

/// The timing keepalived applies to one checker (after inheritance).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    pub delay_loop: Duration,
    /// Extra attempts after a failure while the real is UP.
    pub retry: u32,
    pub delay_before_retry: Duration,
    /// The first check waits a random time up to this.
    pub warmup: Duration,
    /// With alpha, the real starts DOWN and needs a success to come UP.
    pub alpha: bool,
}

/// Identifies a real of a virtual server in health events.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RealId {
    pub service: crate::model::ServiceId,
    pub addr: IpAddr,
    pub port: u16,
}
