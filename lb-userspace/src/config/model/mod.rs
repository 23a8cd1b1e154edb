//! The typed configuration: what keepalived.conf says, with keepalived's
//! defaults. Values that inherit (virtual server → real server → checker)
//! are stored as written (`Option`); `config::resolve` computes the
//! effective ones.

mod checker;
mod global;
mod lvs;
mod vrrp;

pub use checker::*;
pub use global::*;
pub use lvs::*;
pub use vrrp::*;

use super::diag::Pos;

/// A whole configuration, in the order it was written.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Config {
    pub global: GlobalDefs,
    pub vrrp_scripts: Vec<VrrpScript>,
    pub vrrp_sync_groups: Vec<VrrpSyncGroup>,
    pub vrrp_instances: Vec<VrrpInstance>,
    pub virtual_server_groups: Vec<VirtualServerGroup>,
    pub virtual_servers: Vec<VirtualServer>,
    pub track_files: Vec<TrackFile>,
    /// The `SSL { }` context for SSL_GET checkers.
    pub ssl: Option<SslContext>,
}

/// A script to run, as in `notify_master "/path/x.sh arg" [user [group]]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Script {
    /// The command line as written (quotes removed).
    pub command: String,
    pub user: Option<String>,
    pub group: Option<String>,
    pub pos: Pos,
}

/// `track_file NAME { file PATH; weight N [reverse]; init_file [V] [overwrite] }`
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrackFile {
    pub name: String,
    pub file: Option<String>,
    /// Default 1.
    pub weight: i32,
    pub reverse: bool,
    /// `init_file [VALUE] [overwrite]`: the value written at startup.
    pub init_file: Option<TrackFileInit>,
    pub pos: Pos,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrackFileInit {
    /// Default 0.
    pub value: i64,
    pub overwrite: bool,
}

/// `SSL { password; ca; certificate; key }`
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SslContext {
    pub password: Option<String>,
    pub ca: Option<String>,
    pub certificate: Option<String>,
    pub key: Option<String>,
}
