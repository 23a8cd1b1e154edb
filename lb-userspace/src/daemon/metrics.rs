//! Prometheus metrics on `--metrics-listen ADDR` (off by default; loopback
//! is the documented choice). Each scrape takes one snapshot of the
//! director and encodes it with prometheus-client; counters keep their
//! data-plane totals, so `rate()` works as usual.

use super::Shared;
use crate::ipvsadm::listing::ServiceTable;
use prometheus_client::{
    collector::Collector,
    encoding::{text::encode, DescriptorEncoder, EncodeMetric},
    metrics::{counter::ConstCounter, gauge::ConstGauge, MetricType},
    registry::Registry,
};
use std::time::Duration;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

/// What one scrape reports.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub table: ServiceTable,
    pub verdicts: Vec<(&'static str, u64)>,
    pub active: bool,
    pub unresolved_reals: usize,
    /// VRRP instances by name, as configured.
    pub vrrp_instances: Vec<String>,
    /// Their states, as the VRRP runtime last reported them.
    pub vrrp: Vec<crate::vrrp::runtime::InstanceStatus>,
    /// Health-check state of every configured real.
    pub healthy: std::collections::BTreeMap<crate::health::RealId, bool>,
}

/// The states a VRRP instance can be in, as keepalived names them.
const VRRP_STATES: [&str; 4] = ["MASTER", "BACKUP", "FAULT", "STOP"];

type Labels = Vec<(&'static str, String)>;

#[derive(Debug)]
struct SnapshotCollector(Snapshot);

impl Collector for SnapshotCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = &self.0;
        single(
            &mut enc,
            "xvs_director_active",
            "1 while this director forwards (VRRP MASTER)",
            s.active as i64,
        )?;
        single(
            &mut enc,
            "xvs_reals_unresolved",
            "Real servers whose MAC is not known yet",
            s.unresolved_reals as i64,
        )?;
        let verdicts: Vec<(Labels, u64)> = s
            .verdicts
            .iter()
            .map(|(v, n)| (vec![("verdict", v.to_string())], *n))
            .collect();
        counter(
            &mut enc,
            "xvs_packets",
            "Packets seen by the data plane, by verdict",
            &verdicts,
        )?;
        vrrp_metrics(&mut enc, s)?;
        service_metrics(&mut enc, &s.table)?;
        real_metrics(&mut enc, &s.table)?;
        health_metrics(&mut enc, s)
    }
}

/// One series per instance and state, 1 for the current one; adverts
/// sent, received and rejected (by reason); the advertised priority.
fn vrrp_metrics(enc: &mut DescriptorEncoder, s: &Snapshot) -> Result<(), std::fmt::Error> {
    let state_of = |name: &str| {
        s.vrrp
            .iter()
            .find(|v| v.name == name)
            .map_or("STOP", |v| v.state.as_str())
    };
    let rows: Vec<(Labels, i64)> = s
        .vrrp_instances
        .iter()
        .flat_map(|name| {
            let current = state_of(name);
            VRRP_STATES.iter().map(move |state| {
                let labels = vec![("instance", name.clone()), ("state", state.to_string())];
                (labels, (*state == current) as i64)
            })
        })
        .collect();
    gauge(
        enc,
        "xvs_vrrp_state",
        "1 for the VRRP state each instance is in",
        &rows,
    )?;
    let per = |f: fn(&crate::vrrp::runtime::InstanceStatus) -> u64| -> Vec<(Labels, u64)> {
        s.vrrp
            .iter()
            .map(|v| (vec![("instance", v.name.clone())], f(v)))
            .collect()
    };
    let prio: Vec<(Labels, i64)> = s
        .vrrp
        .iter()
        .map(|v| (vec![("instance", v.name.clone())], i64::from(v.priority)))
        .collect();
    gauge(
        enc,
        "xvs_vrrp_priority",
        "The priority each instance advertises (base plus tracking)",
        &prio,
    )?;
    counter(
        enc,
        "xvs_vrrp_adverts_sent",
        "VRRP adverts sent",
        &per(|v| v.adverts_sent),
    )?;
    counter(
        enc,
        "xvs_vrrp_adverts_received",
        "Valid VRRP adverts received",
        &per(|v| v.adverts_received),
    )?;
    counter(
        enc,
        "xvs_vrrp_became_master",
        "Transitions to MASTER",
        &per(|v| v.became_master),
    )?;
    let rejected: Vec<(Labels, u64)> = s
        .vrrp
        .iter()
        .flat_map(|v| {
            v.rejected.iter().map(|(reason, n)| {
                (
                    vec![("instance", v.name.clone()), ("reason", reason.clone())],
                    *n,
                )
            })
        })
        .collect();
    counter(
        enc,
        "xvs_vrrp_adverts_rejected",
        "VRRP adverts that failed a check, by reason",
        &rejected,
    )
}

fn service_labels(s: &crate::ipvsadm::listing::Service) -> Labels {
    vec![
        ("protocol", s.proto.to_string()),
        ("vip", s.addr.to_string()),
        ("port", s.port.to_string()),
    ]
}

fn service_metrics(enc: &mut DescriptorEncoder, t: &ServiceTable) -> Result<(), std::fmt::Error> {
    let per = |f: fn(&crate::ipvsadm::listing::Stats) -> u64| -> Vec<(Labels, u64)> {
        t.services
            .iter()
            .map(|s| (service_labels(s), f(&s.stats)))
            .collect()
    };
    counter(
        enc,
        "xvs_service_connections",
        "Connections scheduled by the service",
        &per(|s| s.conns),
    )?;
    counter(
        enc,
        "xvs_service_packets",
        "Packets forwarded for the service",
        &per(|s| s.inpkts),
    )?;
    counter(
        enc,
        "xvs_service_bytes",
        "Bytes forwarded for the service",
        &per(|s| s.inbytes),
    )
}

fn real_metrics(enc: &mut DescriptorEncoder, t: &ServiceTable) -> Result<(), std::fmt::Error> {
    let mut rows = Vec::new();
    for s in &t.services {
        for d in &s.dests {
            let mut labels = service_labels(s);
            labels.push(("real", d.addr.to_string()));
            labels.push(("real_port", d.port.to_string()));
            rows.push((labels, d));
        }
    }
    let counters = |f: fn(&crate::ipvsadm::listing::Dest) -> u64| -> Vec<(Labels, u64)> {
        rows.iter().map(|(l, d)| (l.clone(), f(d))).collect()
    };
    let gauges = |f: fn(&crate::ipvsadm::listing::Dest) -> i64| -> Vec<(Labels, i64)> {
        rows.iter().map(|(l, d)| (l.clone(), f(d))).collect()
    };
    counter(
        enc,
        "xvs_real_connections",
        "Connections scheduled to the real",
        &counters(|d| d.stats.conns),
    )?;
    counter(
        enc,
        "xvs_real_packets",
        "Packets forwarded to the real",
        &counters(|d| d.stats.inpkts),
    )?;
    counter(
        enc,
        "xvs_real_bytes",
        "Bytes forwarded to the real",
        &counters(|d| d.stats.inbytes),
    )?;
    gauge(
        enc,
        "xvs_real_weight",
        "Current weight (0 = no new connections)",
        &gauges(|d| d.weight as i64),
    )?;

    gauge(
        enc,
        "xvs_real_active_connections",
        "ActiveConn, as ipvsadm counts it",
        &gauges(|d| d.active_conns as i64),
    )?;
    gauge(
        enc,
        "xvs_real_inactive_connections",
        "InActConn, as ipvsadm counts it",
        &gauges(|d| d.inact_conns as i64),
    )
}

/// A gauge without labels.
fn single(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: i64,
) -> Result<(), std::fmt::Error> {
    ConstGauge::new(value).encode(enc.encode_descriptor(name, help, None, MetricType::Gauge)?)
}

/// Every configured real, listed or not: 1 while its checks pass.
fn health_metrics(enc: &mut DescriptorEncoder, s: &Snapshot) -> Result<(), std::fmt::Error> {
    let rows: Vec<(Labels, i64)> = s
        .healthy
        .iter()
        .map(|(id, up)| {
            let labels = vec![
                ("protocol", id.service.proto.to_string()),
                ("vip", id.service.vip.to_string()),
                ("port", id.service.port.to_string()),
                ("real", id.addr.to_string()),
                ("real_port", id.port.to_string()),
            ];
            (labels, *up as i64)
        })
        .collect();
    gauge(
        enc,
        "xvs_real_healthy",
        "1 while the real's health checks pass",
        &rows,
    )
}

fn counter(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: &[(Labels, u64)],
) -> Result<(), std::fmt::Error> {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, v) in rows {
        ConstCounter::new(*v).encode(m.encode_family(labels)?)?;
    }
    Ok(())
}

fn gauge(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: &[(Labels, i64)],
) -> Result<(), std::fmt::Error> {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, v) in rows {
        ConstGauge::new(*v).encode(m.encode_family(labels)?)?;
    }
    Ok(())
}

/// The exposition text for one snapshot.
pub fn render(snapshot: Snapshot) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(SnapshotCollector(snapshot)));
    let mut out = String::new();
    let _ = encode(&mut out, &registry);
    out
}

/// Serves GET /metrics until the listener fails.
pub async fn serve(listener: TcpListener, shared: Shared) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(Duration::from_secs(10), respond(stream, shared)).await;
        });
    }
}

async fn respond(mut stream: TcpStream, shared: Shared) -> std::io::Result<()> {
    let mut head = vec![0u8; 8192];
    let n = stream.read(&mut head).await?;
    let request = String::from_utf8_lossy(&head[..n]);
    let (status, body) =
        if request.starts_with("GET /metrics ") || request.starts_with("GET /metrics?") {
            let snapshot = shared.lock().unwrap_or_else(|p| p.into_inner()).metrics();
            match snapshot {
                Ok(s) => ("200 OK", render(s)),
                Err(e) => ("500 Internal Server Error", format!("{e:#}\n")),
            }
        } else {
            (
                "404 Not Found",
                "only /metrics is served here\n".to_string(),
            )
        };
    let reply = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/openmetrics-text; version=1.0.0; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(reply.as_bytes()).await
}
