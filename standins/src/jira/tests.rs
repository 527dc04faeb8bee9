use serde_json::json;

use super::*;

#[test]
fn project_keys() {
    for valid in ["AB", "ACME", "A1", "ABCDEFGHIJ", "X9Z"] {
        assert!(is_valid_project_key(valid), "{valid}");
    }
    for invalid in ["", "A", "acme", "1AB", "AB-C", "ABCDEFGHIJK", "ÄB", "A b"] {
        assert!(!is_valid_project_key(invalid), "{invalid}");
    }
}

#[test]
fn adf_documents() {
    assert!(is_adf_document(
        &json!({"type": "doc", "version": 1, "content": []})
    ));
    assert!(!is_adf_document(&json!("plain text")));
    assert!(!is_adf_document(
        &json!({"type": "doc", "version": 2, "content": []})
    ));
    assert!(!is_adf_document(
        &json!({"type": "paragraph", "version": 1, "content": []})
    ));
    assert!(!is_adf_document(&json!({"type": "doc", "version": 1})));
}
