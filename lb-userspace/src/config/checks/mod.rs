//! Checks across the model: what keepalived rejects or silently fixes up,
//! and what XVS cannot do yet.

mod checkers;
mod lvs;
mod vrrp;

use super::{diag::Diags, model::Config};

pub(crate) fn check(c: &Config, d: &mut Diags) {
    vrrp::check(c, d);
    lvs::check(c, d);
    checkers::check(c, d);
}
