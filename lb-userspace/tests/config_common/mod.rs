//! Helpers shared by the config_* integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

use xvs::config::{parse_str, Config, Diagnostic, LoadOptions};

/// The fixtures directory.
pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/config")
}

/// Options with a fixed config id, so tests do not depend on the host name.
pub fn opts(id: &str) -> LoadOptions {
    LoadOptions {
        lenient: false,
        config_id: Some(id.into()),
    }
}

/// Parses text called "t.conf"; returns the config and the diagnostics as
/// printed.
pub fn parse(text: &str) -> (Option<Config>, Vec<String>) {
    parse_with(text, &opts("test"))
}

pub fn parse_with(text: &str, o: &LoadOptions) -> (Option<Config>, Vec<String>) {
    let (config, diags) = parse_str("t.conf", text, o);
    (config, lines(&diags))
}

pub fn lines(diags: &[Diagnostic]) -> Vec<String> {
    diags.iter().map(ToString::to_string).collect()
}

/// Parses text that must be free of errors and warnings.
pub fn parse_clean(text: &str) -> Config {
    let (config, diags) = parse(text);
    assert!(diags.is_empty(), "unexpected diagnostics: {diags:#?}");
    config.expect("no errors, so a config")
}

/// A minimal valid DR virtual server around the given body lines.
pub fn vs(body: &str) -> String {
    format!(
        "virtual_server 192.0.2.1 80 {{\n    lvs_sched rr\n    lvs_method DR\n    protocol TCP\n{body}\n}}\n"
    )
}

/// Asserts that `diags` contains `expected` exactly.
pub fn assert_has(diags: &[String], expected: &str) {
    assert!(
        diags.iter().any(|d| d == expected),
        "expected diagnostic\n  {expected}\nin\n  {}",
        diags.join("\n  ")
    );
}
