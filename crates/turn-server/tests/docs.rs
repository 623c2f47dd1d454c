//! `docs/turnserver.md` documents every configuration key and flag.

#[test]
fn every_key_is_documented() {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/turnserver.md"
    ))
    .expect("docs/turnserver.md");
    let missing: Vec<&str> = turn_server::config::KEYS
        .iter()
        .map(|k| k.name)
        .filter(|name| !doc.contains(&format!("| `{name}` |")))
        .collect();
    assert!(
        missing.is_empty(),
        "not in the key table of docs/turnserver.md: {missing:?}"
    );
}
