//! The control socket's server side: one request line in, one reply line
//! out, per connection. Nothing a client sends can crash the daemon: every
//! request is bounded, parsed and validated, and answered with an error.

use super::{director::Director, Shared};
use crate::control::protocol::{
    parse_request, RequestBody, Response, ResponseBody, MAX_REQUEST_BYTES,
};
use anyhow::{Context, Result};
use std::{os::unix::fs::PermissionsExt, path::Path, time::Duration};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{UnixListener, UnixStream},
    sync::mpsc,
};

const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

/// Binds the socket root-only (0600), replacing a stale one.
pub fn bind(path: &Path) -> Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("removing stale {}", path.display())),
    }
    let listener =
        UnixListener::bind(path).with_context(|| format!("binding {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Serves clients until the listener fails. Reload requests are forwarded to
/// the main loop, which owns reloading.
pub async fn serve(listener: UnixListener, shared: Shared, reload: mpsc::Sender<()>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "control socket accept failed");
                continue;
            }
        };
        let shared = shared.clone();
        let reload = reload.clone();
        tokio::spawn(async move {
            if let Err(e) =
                tokio::time::timeout(CLIENT_TIMEOUT, client(stream, shared, reload)).await
            {
                tracing::debug!(error = %e, "control client timed out");
            }
        });
    }
}

async fn client(stream: UnixStream, shared: Shared, reload: mpsc::Sender<()>) {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut reader = BufReader::new(read.take(MAX_REQUEST_BYTES as u64 + 1));
    let reply = match reader.read_line(&mut line).await {
        Ok(_) if line.len() > MAX_REQUEST_BYTES => Response::error("request too large"),
        Ok(_) => match parse_request(line.trim_end()) {
            Ok(req) => answer(req.body, &shared, &reload).await,
            Err(message) => Response::error(message),
        },
        Err(e) => Response::error(format!("unreadable request: {e}")),
    };
    let mut out = serde_json::to_string(&reply).unwrap_or_else(|e| {
        format!(r#"{{"version":1,"reply":"error","message":"reply encoding failed: {e}"}}"#)
    });
    out.push('\n');
    let _ = write.write_all(out.as_bytes()).await;
}

async fn answer(body: RequestBody, shared: &Shared, reload: &mpsc::Sender<()>) -> Response {
    if let RequestBody::Reload = body {
        return match reload.send(()).await {
            Ok(()) => Response::new(ResponseBody::Done),
            Err(_) => Response::error("daemon is shutting down"),
        };
    }
    let mut director = shared.lock().unwrap_or_else(|p| p.into_inner());
    match handle(&mut director, body) {
        Ok(body) => Response::new(body),
        Err(e) => Response::error(format!("{e:#}")),
    }
}

fn handle(d: &mut Director, body: RequestBody) -> Result<ResponseBody> {
    Ok(match body {
        RequestBody::Status => ResponseBody::Status { status: d.status() },
        RequestBody::List => ResponseBody::Table { table: d.table()? },
        RequestBody::Connections => ResponseBody::Connections {
            connections: d.connections()?,
        },
        RequestBody::Timeouts => ResponseBody::Timeouts {
            timeouts: d.timeouts(),
        },
        RequestBody::Edit { edits } => {
            d.edit(&edits)?;
            ResponseBody::Done
        }
        RequestBody::Reload => unreachable!("handled before locking"),
    })
}
