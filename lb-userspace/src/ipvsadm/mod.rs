//! ipvsadm's command line and output for `xvsadm`.
//!
//! The ground truth is ipvsadm 1.31 (Debian 12's package; ipvsadm.c and
//! libipvs/libipvs.c at commit a0e3834 of github.com/cezarsa/ipvsadm).
//! Comments cite them as `ipvsadm.c:LINE` and `libipvs.c:LINE`.
//!
//! - [`args`]: the command line into a typed [`Command`];
//! - [`listing`]: the model of what is listed, filled by the daemon;
//! - [`format`]: that model rendered exactly as ipvsadm prints it;
//! - [`restore`]: `-R` input (the `-S` syntax) into commands;
//! - [`resolve`]: names for addresses and ports (`-n` turns them off).

pub mod args;
mod c_compat;
pub mod format;
pub mod listing;
pub mod resolve;
pub mod restore;
mod sort;

pub use args::{
    parse_args, ArgError, Command, Invocation, ListRequest, ListWhat, RealServer, VirtualService,
};
pub use format::ListFormat;
pub use listing::{Connection, Dest, ServiceTable, Timeouts};
pub use resolve::{NoNames, Resolver, SystemResolver};
pub use restore::{parse_restore, RestoreError};
