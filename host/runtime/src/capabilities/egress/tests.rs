use super::AddressClass::*;
use super::*;

#[test]
fn classification_table() {
    let cases: &[(&str, AddressClass)] = &[
        // IPv4
        ("8.8.8.8", Public),
        ("1.1.1.1", Public),
        ("93.184.216.34", Public),
        ("0.0.0.0", Unspecified),
        ("0.1.2.3", Reserved),
        ("10.0.0.1", Private),
        ("10.255.255.255", Private),
        ("11.0.0.1", Public),
        ("100.63.255.255", Public),
        ("100.64.0.1", SharedAddressSpace),
        ("100.127.255.255", SharedAddressSpace),
        ("100.128.0.0", Public),
        ("127.0.0.1", Loopback),
        ("127.255.0.9", Loopback),
        ("169.254.169.254", LinkLocal),
        ("169.254.0.1", LinkLocal),
        ("172.15.255.255", Public),
        ("172.16.0.1", Private),
        ("172.31.255.255", Private),
        ("172.32.0.0", Public),
        ("192.0.0.8", Reserved),
        ("192.0.2.1", Documentation),
        ("192.88.99.1", Reserved),
        ("192.168.1.1", Private),
        ("192.169.0.1", Public),
        ("198.18.0.1", Reserved),
        ("198.19.255.255", Reserved),
        ("198.20.0.0", Public),
        ("198.51.100.7", Documentation),
        ("203.0.113.9", Documentation),
        ("224.0.0.1", Multicast),
        ("239.255.255.250", Multicast),
        ("240.0.0.1", Reserved),
        ("255.255.255.254", Reserved),
        ("255.255.255.255", Broadcast),
        // IPv6
        ("::", Unspecified),
        ("::1", Loopback),
        ("2606:4700:4700::1111", Public),
        ("2a00:1450:4001:80b::200e", Public),
        ("fc00::1", UniqueLocal),
        ("fd12:3456:789a::1", UniqueLocal),
        ("fe80::1", LinkLocal),
        ("febf::1", LinkLocal),
        ("fec0::1", Private),
        ("ff02::1", Multicast),
        ("2001:db8::1", Documentation),
        ("3fff::1", Documentation),
        ("2001::1", Reserved),
        ("100::1", Reserved),
        ("::2", Reserved),
        ("::127.0.0.1", Reserved),
        ("4000::1", Reserved),
        ("64:ff9b:1::1", Private),
        // IPv4 inside IPv6
        ("::ffff:127.0.0.1", Loopback),
        ("::ffff:10.0.0.1", Private),
        ("::ffff:169.254.169.254", LinkLocal),
        ("::ffff:0.0.0.0", Unspecified),
        ("::ffff:8.8.8.8", Public),
        ("64:ff9b::127.0.0.1", Loopback),
        ("64:ff9b::8.8.8.8", Public),
        ("2002:7f00:1::1", Loopback),
        ("2002:a00:1::1", Private),
        ("2002:808:808::1", Public),
    ];
    for (text, expected) in cases {
        let ip: IpAddr = text.parse().unwrap();
        assert_eq!(classify(ip), *expected, "{text}");
        assert_eq!(expected.is_public(), *expected == Public);
    }
}

#[test]
fn wildcard_matching() {
    let p = HostPattern::parse("*.atlassian.net").unwrap();
    assert!(p.matches("acme.atlassian.net", 443));
    assert!(p.matches("a.b.atlassian.net", 443));
    assert!(p.matches("ACME.Atlassian.NET.", 80));
    assert!(!p.matches("atlassian.net", 443));
    assert!(!p.matches(".atlassian.net", 443));
    assert!(!p.matches("evilatlassian.net", 443));
    assert!(!p.matches("acme.atlassian.net.evil.com", 443));
    assert!(!p.matches("atlassian.net.com", 443));
    assert!(!p.matches("", 443));

    let p = HostPattern::parse("*.atlassian.net:8443").unwrap();
    assert!(p.matches("x.atlassian.net", 8443));
    assert!(!p.matches("x.atlassian.net", 443));

    for bad in [
        "*.com",
        "*",
        "*.",
        "a.*.com",
        "**.a.com",
        "api.example.com:http",
        "",
        "ex ample.com",
        "[::1",
    ] {
        assert!(HostPattern::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn exact_patterns_and_ports() {
    let p = HostPattern::parse("API.Example.com.").unwrap();
    assert!(p.matches("api.example.com", 443));
    assert!(p.matches("api.example.com", 8443));
    assert!(!p.matches("x.api.example.com", 443));
    assert_eq!(p.to_string(), "api.example.com");

    let p = HostPattern::parse("api.example.com:8443").unwrap();
    assert!(p.matches("api.example.com", 8443));
    assert!(!p.matches("api.example.com", 443));

    let p = HostPattern::parse("[0:0::1]:8080").unwrap();
    assert!(p.matches("::1", 8080));
    assert!(p.matches("[::1]", 8080));
    assert!(!p.matches("::1", 80));
    assert_eq!(p.to_string(), "[::1]:8080");
    let p = HostPattern::parse("fd00::1").unwrap();
    assert!(p.matches("[fd00:0::1]", 1));
}

#[test]
fn check_host_allowlist() {
    let policy =
        EgressPolicy::new(["api.hubapi.com", "*.atlassian.net:443"], [] as [&str; 0]).unwrap();
    assert_eq!(policy.check_host("api.hubapi.com", 443), Ok(()));
    assert_eq!(policy.check_host("acme.atlassian.net", 443), Ok(()));
    let err = policy.check_host("Evil.com", 443).unwrap_err();
    assert_eq!(
        err,
        EgressDenied::NotAllowed {
            target: "evil.com:443".into()
        }
    );
    assert_eq!(
        err.to_string(),
        "egress to evil.com:443 denied: host is not on the allowlist"
    );
    assert!(matches!(
        policy.check_host("acme.atlassian.net", 80),
        Err(EgressDenied::NotAllowed { .. })
    ));
    assert!(matches!(
        policy.check_host("bad host", 80),
        Err(EgressDenied::InvalidHost { .. })
    ));
    assert!(EgressPolicy::new(["ok.com"], ["*.com"]).is_err());
}

#[tokio::test]
async fn localhost_refused_unless_granted() {
    let policy = EgressPolicy::new(["localhost"], [] as [&str; 0]).unwrap();
    match policy.resolve_checked("localhost", 8080).await {
        Err(EgressDenied::NonPublicAddress { class, target, .. }) => {
            assert_eq!(class, Loopback);
            assert_eq!(target, "localhost:8080");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }

    let granted = EgressPolicy::new(["localhost"], ["localhost:8080"]).unwrap();
    let addrs = granted.resolve_checked("localhost", 8080).await.unwrap();
    assert!(!addrs.is_empty());
    assert!(
        addrs
            .iter()
            .all(|a| a.port() == 8080 && a.ip().is_loopback())
    );
    // The grant is for port 8080 only.
    let granted_other_port = EgressPolicy::new(["localhost"], ["localhost:9090"]).unwrap();
    assert!(matches!(
        granted_other_port.resolve_checked("localhost", 8080).await,
        Err(EgressDenied::NonPublicAddress { .. })
    ));
    // A grant does not replace the allowlist.
    let not_allowed = EgressPolicy::new(["example.com"], ["localhost"]).unwrap();
    assert!(matches!(
        not_allowed.resolve_checked("localhost", 8080).await,
        Err(EgressDenied::NotAllowed { .. })
    ));
}

#[tokio::test]
async fn ip_literals() {
    let granted = EgressPolicy::new(["127.0.0.1"], ["127.0.0.1"]).unwrap();
    assert_eq!(
        granted.resolve_checked("127.0.0.1", 9000).await.unwrap(),
        vec!["127.0.0.1:9000".parse::<SocketAddr>().unwrap()]
    );
    let ungranted = EgressPolicy::new(["127.0.0.1"], [] as [&str; 0]).unwrap();
    assert!(matches!(
        ungranted.resolve_checked("127.0.0.1", 9000).await,
        Err(EgressDenied::NonPublicAddress {
            class: Loopback,
            ..
        })
    ));

    let metadata = EgressPolicy::new(["169.254.169.254"], [] as [&str; 0]).unwrap();
    let err = metadata
        .resolve_checked("169.254.169.254", 80)
        .await
        .unwrap_err();
    assert_eq!(
        err,
        EgressDenied::NonPublicAddress {
            target: "169.254.169.254:80".into(),
            address: "169.254.169.254".parse().unwrap(),
            class: LinkLocal,
        }
    );
    assert!(err.to_string().contains("link-local"), "{err}");

    let mapped = EgressPolicy::new(["[::ffff:10.0.0.1]"], [] as [&str; 0]).unwrap();
    let err = mapped
        .resolve_checked("[::ffff:10.0.0.1]", 443)
        .await
        .unwrap_err();
    assert!(
        matches!(err, EgressDenied::NonPublicAddress { class: Private, .. }),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .starts_with("egress to [::ffff:10.0.0.1]:443 denied"),
        "{err}"
    );

    let public =
        EgressPolicy::new(["93.184.216.34", "[2606:4700:4700::1111]"], [] as [&str; 0]).unwrap();
    assert_eq!(
        public.resolve_checked("93.184.216.34", 443).await.unwrap(),
        vec!["93.184.216.34:443".parse::<SocketAddr>().unwrap()]
    );
    assert_eq!(
        public
            .resolve_checked("2606:4700:4700::1111", 443)
            .await
            .unwrap(),
        vec!["[2606:4700:4700::1111]:443".parse::<SocketAddr>().unwrap()]
    );
}
