//! Checker checks: what each checker needs, and which XVS refuses.

use crate::config::{
    diag::Diags,
    model::{Checker, CheckerKind, Config},
};

pub(super) fn check(c: &Config, d: &mut Diags) {
    let checkers = c
        .virtual_servers
        .iter()
        .flat_map(|vs| vs.real_servers.iter())
        .flat_map(|rs| rs.checkers.iter());
    for ck in checkers {
        checker(c, ck, d);
    }
}

fn checker(c: &Config, ck: &Checker, d: &mut Diags) {
    let name = ck.name();
    match &ck.kind {
        CheckerKind::Dns(_) | CheckerKind::Smtp(_) => d.not_implemented(
            &ck.pos,
            format!("{name} is valid keepalived syntax but not supported by XVS yet"),
        ),
        CheckerKind::Http(h) | CheckerKind::Ssl(h) => {
            if h.urls.is_empty() {
                d.error(&ck.pos, format!("{name} has no url {{ }} to check"));
            }
            for url in h.urls.iter().filter(|u| u.path.is_none()) {
                d.error(&url.pos, "url has no path");
            }
        }
        CheckerKind::Misc(m) if m.misc_path.is_none() => {
            d.error(&ck.pos, "MISC_CHECK has no misc_path")
        }
        CheckerKind::Udp(u) if u.min_reply_length > u.max_reply_length => d.warning(
            &ck.pos,
            format!(
                "UDP_CHECK min_reply_length {} is above max_reply_length {}; the check always fails",
                u.min_reply_length, u.max_reply_length
            ),
        ),
        CheckerKind::Bfd(b) => {
            if b.name.is_none() {
                d.error(&ck.pos, "BFD_CHECK has no name");
            }
            d.not_implemented(
                &ck.pos,
                "BFD_CHECK needs a bfd_instance, which is valid keepalived syntax but not implemented by XVS yet",
            );
        }
        CheckerKind::File(f) => match &f.track_file {
            None => d.error(&ck.pos, "FILE_CHECK has no track_file"),
            Some((file, pos)) if !c.track_files.iter().any(|t| &t.name == file) => {
                d.error(pos, format!("'{file}' does not name a track_file"))
            }
            Some(_) => {}
        },
        _ => {}
    }
    families(ck, d);
}

/// connect_ip and bindto must be of one family.
fn families(ck: &Checker, d: &mut Diags) {
    if let (Some(ip), Some(bind)) = (ck.common.connect_ip, ck.common.bindto) {
        if ip.is_ipv4() != bind.is_ipv4() {
            d.error(
                &ck.pos,
                format!(
                    "{}: connect_ip and bindto are of different address families",
                    ck.name()
                ),
            );
        }
    }
}
