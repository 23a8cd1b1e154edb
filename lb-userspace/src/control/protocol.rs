//! Wire types of the control protocol, version 1. Every message carries
//! `"version"`; a daemon answers a version it does not speak with an error.

use crate::{
    ipvsadm::{
        args::{RealServer, VirtualService},
        listing::{Connection, ServiceTable, Timeouts},
    },
    model::ServiceId,
};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

pub const VERSION: u32 = 1;
/// Requests larger than this are refused unread.
pub const MAX_REQUEST_BYTES: usize = 1 << 20;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Request {
    pub version: u32,
    #[serde(flatten)]
    pub body: RequestBody,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "snake_case")]
pub enum RequestBody {
    /// Daemon and data-plane status.
    Status,
    /// The service table with counters, rates and connection counts.
    List,
    /// The connection table (`-L -c`).
    Connections,
    Timeouts,
    /// ipvsadm-style edits, applied in order, all or nothing. They last
    /// until the next reload, as they do for ipvsadm under keepalived.
    Edit {
        edits: Vec<Edit>,
    },
    /// Re-read the configuration (as SIGHUP does).
    Reload,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Edit {
    AddService {
        service: VirtualService,
    },
    EditService {
        service: VirtualService,
    },
    DeleteService {
        id: ServiceId,
    },
    AddServer {
        server: RealServer,
    },
    EditServer {
        server: RealServer,
    },
    DeleteServer {
        service: ServiceId,
        addr: IpAddr,
        port: u16,
    },
    Clear,
    Zero {
        service: Option<ServiceId>,
    },
    SetTimeouts {
        timeouts: Timeouts,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub version: u32,
    #[serde(flatten)]
    pub body: ResponseBody,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum ResponseBody {
    Error { message: String },
    Done,
    Status { status: Status },
    Table { table: ServiceTable },
    Connections { connections: Vec<Connection> },
    Timeouts { timeouts: Timeouts },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub version: String,
    pub instance: String,
    pub config_file: String,
    pub interface: String,
    pub xdp_mode: String,
    /// Whether this director forwards (VRRP MASTER).
    pub active: bool,
    pub services: usize,
    /// Reals whose next-hop MAC is not known yet: they get no traffic.
    pub unresolved_reals: Vec<IpAddr>,
    /// VRRP instances and their states (absent from older daemons).
    #[serde(default)]
    pub vrrp: Vec<crate::vrrp::runtime::InstanceStatus>,
}

impl Response {
    pub fn new(body: ResponseBody) -> Response {
        Response {
            version: VERSION,
            body,
        }
    }

    pub fn error(message: impl Into<String>) -> Response {
        Response::new(ResponseBody::Error {
            message: message.into(),
        })
    }
}

impl Request {
    pub fn new(body: RequestBody) -> Request {
        Request {
            version: VERSION,
            body,
        }
    }
}

/// Parses one request line; a bad one gives the message for the error reply.
pub fn parse_request(line: &str) -> Result<Request, String> {
    #[derive(Deserialize)]
    struct VersionOnly {
        version: Option<u32>,
    }
    let probe: VersionOnly =
        serde_json::from_str(line).map_err(|e| format!("malformed request: {e}"))?;
    match probe.version {
        Some(VERSION) => {}
        Some(v) => {
            return Err(format!(
                "protocol version {v} not supported (this daemon speaks {VERSION})"
            ))
        }
        None => return Err("request has no \"version\"".to_string()),
    }
    serde_json::from_str(line).map_err(|e| format!("bad request: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip() {
        let req = Request::new(RequestBody::Edit {
            edits: vec![Edit::Clear, Edit::Zero { service: None }],
        });
        let line = serde_json::to_string(&req).unwrap();
        assert_eq!(parse_request(&line).unwrap(), req);
        assert_eq!(
            serde_json::to_string(&Request::new(RequestBody::List)).unwrap(),
            r#"{"version":1,"request":"list"}"#
        );
    }

    #[test]
    fn bad_requests_get_error_replies() {
        for bad in [
            "",
            "{",
            "[]",
            r#"{"request":"list"}"#,
            r#"{"version":2,"request":"list"}"#,
            r#"{"version":1,"request":"explode"}"#,
            r#"{"version":1,"request":"edit","edits":[{"op":"add_service"}]}"#,
        ] {
            assert!(parse_request(bad).is_err(), "{bad}");
        }
    }
}
