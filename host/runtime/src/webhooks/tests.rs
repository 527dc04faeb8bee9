use super::*;

/// A fixed "now": 2024-01-01T00:00:00Z.
const NOW_SECS: u64 = 1_704_067_200;

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(NOW_SECS)
}

/// HMAC-SHA256 computed directly with the `hmac` crate, independent of
/// the code under test.
fn hmac_of(secret: &[u8], message: &[u8]) -> Vec<u8> {
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(secret).unwrap();
    Mac::update(&mut m, message);
    m.finalize().into_bytes().to_vec()
}

fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

fn req<'a>(uri: &'a str, headers: &'a [(String, String)], body: &'a [u8]) -> WebhookRequest<'a> {
    WebhookRequest {
        method: "POST",
        uri,
        headers,
        body,
    }
}

const URI: &str = "https://junction.example.com/v1/webhooks/conn";

// ---- GitHub ----

#[test]
fn github_documented_example_vector() {
    // From GitHub's "Validating webhook deliveries" documentation.
    let h = headers(&[(
        "x-hub-signature-256",
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
    )]);
    let r = req(URI, &h, b"Hello, World!");
    assert_eq!(
        Scheme::Github.verify(&r, now(), b"It's a Secret to Everybody"),
        Ok(())
    );
    // The test's own HMAC agrees with the published vector.
    assert_eq!(
        hex::encode(hmac_of(b"It's a Secret to Everybody", b"Hello, World!")),
        "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    );
}

#[test]
fn github_tampered_wrong_secret_missing_malformed() {
    let sig = format!("sha256={}", hex::encode(hmac_of(b"s3cret", b"payload")));
    let h = headers(&[("X-Hub-Signature-256", &sig)]);
    assert_eq!(
        Scheme::Github.verify(&req(URI, &h, b"payload"), now(), b"s3cret"),
        Ok(())
    );
    assert_eq!(
        Scheme::Github.verify(&req(URI, &h, b"payloaD"), now(), b"s3cret"),
        Err(SignatureError::Mismatch)
    );
    assert_eq!(
        Scheme::Github.verify(&req(URI, &h, b"payload"), now(), b"other"),
        Err(SignatureError::Mismatch)
    );
    assert_eq!(
        Scheme::Github.verify(&req(URI, &[], b"payload"), now(), b"s3cret"),
        Err(SignatureError::Missing {
            header: "x-hub-signature-256".into()
        })
    );
    let bad = headers(&[("x-hub-signature-256", "sha1=abcd")]);
    assert!(matches!(
        Scheme::Github.verify(&req(URI, &bad, b"payload"), now(), b"s3cret"),
        Err(SignatureError::Malformed { .. })
    ));
    let bad = headers(&[("x-hub-signature-256", "sha256=zz")]);
    assert!(matches!(
        Scheme::Github.verify(&req(URI, &bad, b"payload"), now(), b"s3cret"),
        Err(SignatureError::Malformed { .. })
    ));
}

#[test]
fn empty_secret_never_verifies() {
    let sig = format!("sha256={}", hex::encode(hmac_of(b"", b"payload")));
    let h = headers(&[("x-hub-signature-256", &sig)]);
    assert_eq!(
        Scheme::Github.verify(&req(URI, &h, b"payload"), now(), b""),
        Err(SignatureError::Mismatch)
    );
}

#[test]
fn duplicate_signature_header_is_malformed() {
    let sig = format!("sha256={}", hex::encode(hmac_of(b"k", b"x")));
    let h = headers(&[("x-hub-signature-256", &sig), ("X-Hub-Signature-256", &sig)]);
    assert!(matches!(
        Scheme::Github.verify(&req(URI, &h, b"x"), now(), b"k"),
        Err(SignatureError::Malformed { .. })
    ));
}

// ---- Stripe ----

fn stripe_sig(secret: &[u8], t: u64, body: &[u8]) -> String {
    let mut payload = format!("{t}.").into_bytes();
    payload.extend_from_slice(body);
    hex::encode(hmac_of(secret, &payload))
}

#[test]
fn stripe_valid_and_rotated_keys() {
    let body = br#"{"id":"evt_1","type":"charge.succeeded"}"#;
    let t = NOW_SECS - 10;
    let good = stripe_sig(b"whsec_new", t, body);
    let h = headers(&[("stripe-signature", &format!("t={t},v1={good}"))]);
    assert_eq!(
        Scheme::Stripe.verify(&req(URI, &h, body), now(), b"whsec_new"),
        Ok(())
    );

    // Rotation: two v1 entries, only the second made with our secret, plus
    // a legacy v0 entry that must be ignored.
    let other = stripe_sig(b"whsec_old", t, body);
    let value = format!("t={t},v1={other},v1={good},v0=deadbeef");
    let h = headers(&[("Stripe-Signature", &value)]);
    assert_eq!(
        Scheme::Stripe.verify(&req(URI, &h, body), now(), b"whsec_new"),
        Ok(())
    );
    assert_eq!(
        Scheme::Stripe.verify(&req(URI, &h, body), now(), b"whsec_old"),
        Ok(())
    );
    assert_eq!(
        Scheme::Stripe.verify(&req(URI, &h, body), now(), b"whsec_wrong"),
        Err(SignatureError::Mismatch)
    );
    assert_eq!(
        Scheme::Stripe.verify(&req(URI, &h, b"{}"), now(), b"whsec_new"),
        Err(SignatureError::Mismatch)
    );
}

#[test]
fn stripe_timestamp_is_signed() {
    // Moving t forward to dodge the window breaks the signature.
    let body = b"{}";
    let t = NOW_SECS - 3600;
    let sig = stripe_sig(b"k", t, body);
    let h = headers(&[("stripe-signature", &format!("t={NOW_SECS},v1={sig}"))]);
    assert_eq!(
        Scheme::Stripe.verify(&req(URI, &h, body), now(), b"k"),
        Err(SignatureError::Mismatch)
    );
}

#[test]
fn stripe_stale_and_future() {
    let body = b"{}";
    for (t, skew) in [(NOW_SECS - 301, 301), (NOW_SECS + 301, -301)] {
        let sig = stripe_sig(b"k", t, body);
        let h = headers(&[("stripe-signature", &format!("t={t},v1={sig}"))]);
        assert_eq!(
            Scheme::Stripe.verify(&req(URI, &h, body), now(), b"k"),
            Err(SignatureError::Stale {
                skew_secs: skew,
                tolerance_secs: 300
            })
        );
    }
    // Exactly at the edge is still accepted.
    let t = NOW_SECS - 300;
    let sig = stripe_sig(b"k", t, body);
    let h = headers(&[("stripe-signature", &format!("t={t},v1={sig}"))]);
    assert_eq!(
        Scheme::Stripe.verify(&req(URI, &h, body), now(), b"k"),
        Ok(())
    );
}

#[test]
fn stripe_malformed_headers() {
    let sig = stripe_sig(b"k", NOW_SECS, b"{}");
    for value in [
        format!("v1={sig}"),
        format!("t=abc,v1={sig}"),
        format!("t=-5,v1={sig}"),
        format!("t={NOW_SECS}"),
        format!("t={NOW_SECS},v0={sig}"),
        "garbage".to_string(),
        format!("t={NOW_SECS},t={NOW_SECS},v1={sig}"),
    ] {
        let h = headers(&[("stripe-signature", &value)]);
        assert!(
            matches!(
                Scheme::Stripe.verify(&req(URI, &h, b"{}"), now(), b"k"),
                Err(SignatureError::Malformed { .. })
            ),
            "{value}"
        );
    }
    assert_eq!(
        Scheme::Stripe.verify(&req(URI, &[], b"{}"), now(), b"k"),
        Err(SignatureError::Missing {
            header: "stripe-signature".into()
        })
    );
}

// ---- Slack ----

fn slack_headers(secret: &[u8], ts: u64, body: &[u8]) -> Vec<(String, String)> {
    let mut base = format!("v0:{ts}:").into_bytes();
    base.extend_from_slice(body);
    let sig = format!("v0={}", hex::encode(hmac_of(secret, &base)));
    headers(&[
        ("x-slack-signature", &sig),
        ("x-slack-request-timestamp", &ts.to_string()),
    ])
}

#[test]
fn slack_valid_tampered_stale_future() {
    let body = b"token=x&team_id=T1&command=%2Fweather";
    let h = slack_headers(b"8f742231b10e8888abcd99yyyzzz85a5", NOW_SECS - 60, body);
    let secret = b"8f742231b10e8888abcd99yyyzzz85a5";
    assert_eq!(
        Scheme::Slack.verify(&req(URI, &h, body), now(), secret),
        Ok(())
    );
    assert_eq!(
        Scheme::Slack.verify(&req(URI, &h, b"token=y"), now(), secret),
        Err(SignatureError::Mismatch)
    );
    assert_eq!(
        Scheme::Slack.verify(&req(URI, &h, body), now(), b"wrong"),
        Err(SignatureError::Mismatch)
    );
    let stale = slack_headers(secret, NOW_SECS - 600, body);
    assert!(matches!(
        Scheme::Slack.verify(&req(URI, &stale, body), now(), secret),
        Err(SignatureError::Stale { skew_secs: 600, .. })
    ));
    let future = slack_headers(secret, NOW_SECS + 600, body);
    assert!(matches!(
        Scheme::Slack.verify(&req(URI, &future, body), now(), secret),
        Err(SignatureError::Stale {
            skew_secs: -600,
            ..
        })
    ));
    let only_sig = vec![h[0].clone()];
    assert_eq!(
        Scheme::Slack.verify(&req(URI, &only_sig, body), now(), secret),
        Err(SignatureError::Missing {
            header: "x-slack-request-timestamp".into()
        })
    );
}

// ---- HubSpot v3 ----

fn hubspot_headers(
    secret: &[u8],
    method: &str,
    signed_uri: &str,
    body: &[u8],
    ts_ms: u64,
) -> Vec<(String, String)> {
    let mut s = format!("{method}{signed_uri}").into_bytes();
    s.extend_from_slice(body);
    s.extend_from_slice(ts_ms.to_string().as_bytes());
    let sig = BASE64.encode(hmac_of(secret, &s));
    headers(&[
        ("x-hubspot-signature-v3", &sig),
        ("x-hubspot-request-timestamp", &ts_ms.to_string()),
    ])
}

#[test]
fn hubspot_v3_valid_with_decoded_uri() {
    let secret = b"yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy";
    let body = br#"[{"eventId":1,"subscriptionType":"contact.creation"}]"#;
    let ts = NOW_SECS * 1000 - 1_500;
    // HubSpot signs the URL with these escapes decoded; %20 stays.
    let received = "https://junction.example.com/v1/webhooks/hs?state=a%3Ab%2Fc%40d%2cx%20y";
    let signed = "https://junction.example.com/v1/webhooks/hs?state=a:b/c@d,x%20y";
    let h = hubspot_headers(secret, "POST", signed, body, ts);
    assert_eq!(
        Scheme::HubspotV3.verify(&req(received, &h, body), now(), secret),
        Ok(())
    );
    // Other method, other URI, other body, other secret: all mismatches.
    let mut r = req(received, &h, body);
    r.method = "PUT";
    assert_eq!(
        Scheme::HubspotV3.verify(&r, now(), secret),
        Err(SignatureError::Mismatch)
    );
    let other_uri = "https://junction.example.com/v1/webhooks/other";
    assert_eq!(
        Scheme::HubspotV3.verify(&req(other_uri, &h, body), now(), secret),
        Err(SignatureError::Mismatch)
    );
    assert_eq!(
        Scheme::HubspotV3.verify(&req(received, &h, b"[]"), now(), secret),
        Err(SignatureError::Mismatch)
    );
    assert_eq!(
        Scheme::HubspotV3.verify(&req(received, &h, body), now(), b"nope"),
        Err(SignatureError::Mismatch)
    );
}

#[test]
fn hubspot_v3_timestamp_in_milliseconds() {
    let secret = b"k";
    let stale = hubspot_headers(secret, "POST", URI, b"{}", (NOW_SECS - 301) * 1000);
    assert!(matches!(
        Scheme::HubspotV3.verify(&req(URI, &stale, b"{}"), now(), secret),
        Err(SignatureError::Stale { skew_secs: 301, .. })
    ));
    let future = hubspot_headers(secret, "POST", URI, b"{}", (NOW_SECS + 3600) * 1000);
    assert!(matches!(
        Scheme::HubspotV3.verify(&req(URI, &future, b"{}"), now(), secret),
        Err(SignatureError::Stale {
            skew_secs: -3600,
            ..
        })
    ));
    let fresh = hubspot_headers(secret, "POST", URI, b"{}", NOW_SECS * 1000 + 999);
    assert_eq!(
        Scheme::HubspotV3.verify(&req(URI, &fresh, b"{}"), now(), secret),
        Ok(())
    );
    let no_ts = vec![fresh[0].clone()];
    assert_eq!(
        Scheme::HubspotV3.verify(&req(URI, &no_ts, b"{}"), now(), secret),
        Err(SignatureError::Missing {
            header: "x-hubspot-request-timestamp".into()
        })
    );
    let bad = headers(&[
        ("x-hubspot-signature-v3", "not base64!"),
        ("x-hubspot-request-timestamp", "1"),
    ]);
    assert!(matches!(
        Scheme::HubspotV3.verify(&req(URI, &bad, b"{}"), now(), secret),
        Err(SignatureError::Malformed { .. })
    ));
}

#[test]
fn hubspot_uri_decoding_table() {
    assert_eq!(
        hubspot_decode_uri("%3A%2F%3F%40%21%24%27%28%29%2A%2C%3B"),
        ":/?@!$'()*,;"
    );
    assert_eq!(hubspot_decode_uri("%3a%2f"), ":/");
    // Not on the list, incomplete or invalid escapes are kept verbatim,
    // and decoding is one pass (no double decoding).
    assert_eq!(hubspot_decode_uri("%20%26%3D%25%2F"), "%20%26%3D%25/");
    assert_eq!(hubspot_decode_uri("a%253A"), "a%253A");
    assert_eq!(hubspot_decode_uri("%"), "%");
    assert_eq!(hubspot_decode_uri("x%3"), "x%3");
    assert_eq!(hubspot_decode_uri("%zz%3A"), "%zz:");
    assert_eq!(hubspot_decode_uri("é%2Fü"), "é/ü");
    assert_eq!(hubspot_decode_uri("%E9%3A"), "%E9:");
}

// ---- Generic ----

#[test]
fn generic_hex_and_base64() {
    let body = b"{\"a\":1}";
    let mac = hmac_of(b"gk", body);
    let hex_scheme = Scheme::GenericHmac {
        header: "X-Signature".into(),
        prefix: Some("sha256=".into()),
        encoding: Encoding::Hex,
    };
    let h = headers(&[("x-signature", &format!("sha256={}", hex::encode(&mac)))]);
    assert_eq!(hex_scheme.verify(&req(URI, &h, body), now(), b"gk"), Ok(()));
    let upper = headers(&[(
        "x-signature",
        &format!("sha256={}", hex::encode_upper(&mac)),
    )]);
    assert_eq!(
        hex_scheme.verify(&req(URI, &upper, body), now(), b"gk"),
        Ok(())
    );
    let no_prefix = headers(&[("x-signature", &hex::encode(&mac))]);
    assert!(matches!(
        hex_scheme.verify(&req(URI, &no_prefix, body), now(), b"gk"),
        Err(SignatureError::Malformed { .. })
    ));
    assert_eq!(
        hex_scheme.verify(&req(URI, &[], body), now(), b"gk"),
        Err(SignatureError::Missing {
            header: "x-signature".into()
        })
    );

    let b64_scheme = Scheme::GenericHmac {
        header: "x-webhook-signature".into(),
        prefix: None,
        encoding: Encoding::Base64,
    };
    let h = headers(&[("x-webhook-signature", &BASE64.encode(&mac))]);
    assert_eq!(b64_scheme.verify(&req(URI, &h, body), now(), b"gk"), Ok(()));
    assert_eq!(
        b64_scheme.verify(&req(URI, &h, b"{\"a\":2}"), now(), b"gk"),
        Err(SignatureError::Mismatch)
    );
    // A truncated signature is a mismatch, never a prefix match.
    let short = headers(&[("x-webhook-signature", &BASE64.encode(&mac[..16]))]);
    assert_eq!(
        b64_scheme.verify(&req(URI, &short, body), now(), b"gk"),
        Err(SignatureError::Mismatch)
    );
}

#[test]
fn scheme_config_shape() {
    let s: Scheme = serde_json::from_str(r#""hubspot_v3""#).unwrap();
    assert_eq!(s, Scheme::HubspotV3);
    let s: Scheme =
        serde_json::from_str(r#"{"generic_hmac":{"header":"x-sig","encoding":"base64"}}"#).unwrap();
    assert_eq!(
        s,
        Scheme::GenericHmac {
            header: "x-sig".into(),
            prefix: None,
            encoding: Encoding::Base64
        }
    );
    assert_eq!(
        serde_json::to_string(&Scheme::Stripe).unwrap(),
        r#""stripe""#
    );
}

#[test]
fn error_messages_do_not_leak_expected_signature() {
    let secret = b"super-secret-value";
    let expected = hex::encode(hmac_of(secret, b"body"));
    let h = headers(&[(
        "x-hub-signature-256",
        &format!("sha256={}", "00".repeat(32)),
    )]);
    let err = Scheme::Github
        .verify(&req(URI, &h, b"body"), now(), secret)
        .unwrap_err()
        .to_string();
    assert_eq!(err, "signature does not match");
    assert!(!err.contains(&expected) && !err.contains("super-secret"));
    let stale = SignatureError::Stale {
        skew_secs: -400,
        tolerance_secs: 300,
    };
    assert_eq!(
        stale.to_string(),
        "stale request: signed timestamp is 400s ahead of the host clock (tolerance 300s)"
    );
}
