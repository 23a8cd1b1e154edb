//! The keepalived.conf parser on arbitrary input: it must never panic, and
//! must return a configuration exactly when it reports no error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xvs::config::{has_errors, parse_str, LoadOptions};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // The first byte picks the mode, so both are explored.
    let opts = LoadOptions {
        lenient: data.first().is_some_and(|b| b & 1 == 1),
        config_id: Some("lb1".into()),
    };
    // A directory that does not exist keeps relative includes from reading
    // the fuzzer's working directory.
    let (config, diags) = parse_str("/nonexistent/fuzz/keepalived.conf", &text, &opts);
    assert_eq!(config.is_some(), !has_errors(&diags));
    for d in &diags {
        let _ = d.to_string();
    }
});
