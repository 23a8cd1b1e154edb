//! The client side, used by `xvsadm`.

use super::protocol::{Request, RequestBody, Response, ResponseBody};
use anyhow::{bail, Context, Result};
use std::{
    io::{BufRead, BufReader, Write},
    os::unix::net::UnixStream,
    path::Path,
    time::Duration,
};

/// Sends one request and returns the daemon's reply; an error reply becomes `Err`.
pub fn call(socket: &Path, body: RequestBody) -> Result<ResponseBody> {
    let mut stream = UnixStream::connect(socket).with_context(|| {
        format!(
            "cannot reach xvsd at {} (is it running? use --socket or XVS_SOCKET)",
            socket.display()
        )
    })?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut line = serde_json::to_string(&Request::new(body))?;
    line.push('\n');
    stream.write_all(line.as_bytes())?;
    let mut reply = String::new();
    BufReader::new(stream).read_line(&mut reply)?;
    if reply.is_empty() {
        bail!("xvsd closed the connection without a reply");
    }
    let response: Response = serde_json::from_str(&reply).context("malformed reply from xvsd")?;
    match response.body {
        ResponseBody::Error { message } => bail!("{message}"),
        body => Ok(body),
    }
}
