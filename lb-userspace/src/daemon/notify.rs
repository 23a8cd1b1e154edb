//! systemd integration: sd_notify states for `Type=notify` units. Without
//! NOTIFY_SOCKET (not under systemd) these do nothing.

use sd_notify::NotifyState;

pub fn ready() {
    let _ = sd_notify::notify(&[NotifyState::Ready]);
}

pub fn reloading() {
    let _ = sd_notify::notify(&[NotifyState::Reloading]);
}

pub fn stopping() {
    let _ = sd_notify::notify(&[NotifyState::Stopping]);
}

pub fn status(text: &str) {
    let _ = sd_notify::notify(&[NotifyState::Status(text)]);
}
