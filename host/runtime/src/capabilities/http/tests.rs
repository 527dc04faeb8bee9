use super::*;

#[test]
fn entries_are_normalised_or_refused() {
    assert_eq!(
        normalize_host_entry(" Example.COM ").unwrap(),
        "example.com"
    );
    assert_eq!(normalize_host_entry("127.0.0.1:9").unwrap(), "127.0.0.1:9");
    assert_eq!(
        normalize_host_entry("*.atlassian.net").unwrap(),
        "*.atlassian.net"
    );
    assert!(normalize_host_entry("https://example.com/x").is_err());
    assert!(normalize_host_entry("user@example.com").is_err());
    assert!(normalize_host_entry("").is_err());
    assert!(normalize_host_entry("*.com").is_err());
}
