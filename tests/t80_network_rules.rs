//! Per-vault network rules against the real binary: the firewall judges the TCP peer (bound to
//! other 127.0.0.0/8 addresses here), IPv6 rules, PROXY protocol v2 and X-Forwarded-For only from
//! trusted proxies, virtual networks from the node configuration, and private listeners when
//! public network access is disabled. Refusals are 403 ForbiddenByFirewall, audited and counted.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::IpAddr;

use coffer_proto::v1 as pb;
use coffer_proto::v1::secret_service_client::SecretServiceClient;
use coffer_proto::v1::vault_service_client::VaultServiceClient;
use common::{DevServer, vault_with_secret, with_bearer};
use tonic::Code;
use tonic::transport::Channel;

const V: &str = "fenced-kv";

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

async fn create_vault_with_secret(server: &DevServer, channel: Channel) {
    vault_with_secret(server, channel, V, "db-password", "hunter2-but-longer").await;
}

async fn update_rules(
    server: &DevServer,
    channel: Channel,
    request: pb::UpdateNetworkRulesRequest,
) -> Result<pb::Vault, tonic::Status> {
    VaultServiceClient::new(channel)
        .update_network_rules(with_bearer(
            &server.token,
            pb::UpdateNetworkRulesRequest {
                vault: V.into(),
                ..request
            },
        ))
        .await
        .map(tonic::Response::into_inner)
}

async fn get_secret(server: &DevServer, channel: Channel) -> Result<pb::Secret, tonic::Status> {
    get_secret_with(server, channel, None).await
}

async fn get_secret_with(
    server: &DevServer,
    channel: Channel,
    forwarded_for: Option<&str>,
) -> Result<pb::Secret, tonic::Status> {
    let mut request = with_bearer(
        &server.token,
        pb::GetSecretRequest {
            vault: V.into(),
            name: "db-password".into(),
            ..Default::default()
        },
    );
    if let Some(xff) = forwarded_for {
        request
            .metadata_mut()
            .insert("x-forwarded-for", xff.parse().unwrap());
    }
    SecretServiceClient::new(channel)
        .get_secret(request)
        .await
        .map(tonic::Response::into_inner)
}

/// Asserts a firewall refusal naming `client`.
fn assert_firewalled(result: Result<pb::Secret, tonic::Status>, client: &str) {
    let status = result.expect_err("the firewall should refuse");
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert_eq!(
        status.metadata().get("x-coffer-inner-error-code").unwrap(),
        "ForbiddenByFirewall"
    );
    assert!(
        status
            .message()
            .contains(&format!("Client address: {client}\r\n")),
        "{}",
        status.message()
    );
    assert!(status.message().contains(&format!("Vault: {V}")));
    assert!(!status.message().contains("hunter2"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deny_vault_admits_only_named_addresses_and_virtual_networks() {
    let dir = tempfile::tempdir().unwrap();
    let server = DevServer::start_with(
        &dir.path().join("d"),
        &["--virtual-network", "corp=127.0.0.4/32,10.9.0.0/16"],
    );
    let url = server.url();
    let local = server.grpc_channel().await;
    let from_2 = server.grpc_channel_from(&url, ip("127.0.0.2")).await;
    let from_4 = server.grpc_channel_from(&url, ip("127.0.0.4")).await;
    create_vault_with_secret(&server, local.clone()).await;

    // Open by default, as a new Azure vault is.
    get_secret(&server, from_2.clone()).await.unwrap();
    let vault = update_rules(
        &server,
        local.clone(),
        pb::UpdateNetworkRulesRequest {
            default_action: Some("Deny".into()),
            add_ip_rules: vec!["127.0.0.2".into()],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let acls = vault.network_acls.unwrap();
    assert_eq!(acls.default_action, "Deny");
    assert_eq!(acls.ip_rules, vec!["127.0.0.2".to_owned()]);

    assert_firewalled(get_secret(&server, local.clone()).await, "127.0.0.1");
    let secret = get_secret(&server, from_2.clone()).await.unwrap();
    assert_eq!(secret.value, "hunter2-but-longer");
    assert_firewalled(get_secret(&server, from_4.clone()).await, "127.0.0.4");

    // Management requests on the vault pass, so its administrator can always mend the rules.
    VaultServiceClient::new(local.clone())
        .get_vault(with_bearer(
            &server.token,
            pb::GetVaultRequest { name: V.into() },
        ))
        .await
        .unwrap();

    // A virtual network the configuration maps admits its range; an unknown one is refused
    // unless the caller says to ignore it.
    let unknown = update_rules(
        &server,
        local.clone(),
        pb::UpdateNetworkRulesRequest {
            add_virtual_network_rules: vec!["elsewhere".into()],
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(unknown.code(), Code::InvalidArgument);
    update_rules(
        &server,
        local.clone(),
        pb::UpdateNetworkRulesRequest {
            add_virtual_network_rules: vec!["corp".into()],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    get_secret(&server, from_4.clone()).await.unwrap();

    // Bad rules are refused whole and change nothing.
    for bad in [
        "127.0.0.300",
        "10.0.0.0/33",
        "",
        "fe80::/129",
        "not-an-address",
    ] {
        let e = update_rules(
            &server,
            local.clone(),
            pb::UpdateNetworkRulesRequest {
                add_ip_rules: vec!["192.0.2.1".into(), bad.into()],
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{bad}: {e:?}");
    }
    let e = update_rules(
        &server,
        local.clone(),
        pb::UpdateNetworkRulesRequest {
            default_action: Some("deny".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    let vault = update_rules(&server, local.clone(), Default::default())
        .await
        .unwrap();
    assert_eq!(vault.network_acls.unwrap().ip_rules, vec!["127.0.0.2"]);

    // Removing the rule closes the door again; allowing everyone opens it.
    update_rules(
        &server,
        local.clone(),
        pb::UpdateNetworkRulesRequest {
            remove_ip_rules: vec!["127.0.0.2/32".into()],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_firewalled(get_secret(&server, from_2.clone()).await, "127.0.0.2");
    update_rules(
        &server,
        local.clone(),
        pb::UpdateNetworkRulesRequest {
            default_action: Some("Allow".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    get_secret(&server, local.clone()).await.unwrap();

    // Every refusal is audited with the client address and the inner code, and counted.
    let refused: Vec<_> = server
        .audit_lines()
        .into_iter()
        .filter(|r| r["innerCode"] == "ForbiddenByFirewall")
        .collect();
    assert_eq!(refused.len(), 3, "{refused:?}");
    assert_eq!(refused[0]["callerIpAddress"], "127.0.0.1");
    assert_eq!(refused[0]["operationName"], "SecretGet");
    assert_eq!(refused[0]["httpStatus"], 403);
    assert_eq!(refused[2]["callerIpAddress"], "127.0.0.2");
    let (_, metrics) = server.https_get("/metrics");
    assert!(
        metrics.contains(&format!(
            "coffer_gateway_firewall_refused_requests_total{{vault=\"{V}\"}} 3"
        )),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_clients_are_judged_by_ipv6_rules() {
    let dir = tempfile::tempdir().unwrap();
    let server = DevServer::start_on(&dir.path().join("d"), "[::1]:0", &[], "info");
    let channel = server.grpc_channel().await;
    create_vault_with_secret(&server, channel.clone()).await;
    update_rules(
        &server,
        channel.clone(),
        pb::UpdateNetworkRulesRequest {
            default_action: Some("Deny".into()),
            add_ip_rules: vec!["2001:db8::/32".into(), "127.0.0.1".into()],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_firewalled(get_secret(&server, channel.clone()).await, "::1");
    update_rules(
        &server,
        channel.clone(),
        pb::UpdateNetworkRulesRequest {
            add_ip_rules: vec!["::1/128".into()],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    get_secret(&server, channel.clone()).await.unwrap();
}

/// A channel whose TCP connection starts with a PROXY protocol v2 header naming `source` as
/// the client, then carries TLS as usual.
async fn channel_through_proxy(
    server: &DevServer,
    local: IpAddr,
    source: std::net::SocketAddrV4,
) -> Result<Channel, tonic::transport::Error> {
    let target: std::net::SocketAddr = server.addr.parse().unwrap();
    let connector = tower::service_fn(move |_: tonic::transport::Uri| async move {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind(std::net::SocketAddr::new(local, 0))?;
        let mut tcp = socket.connect(target).await?;
        let mut header = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
        header.extend_from_slice(&[0x21, 0x11, 0, 12]);
        header.extend_from_slice(&source.ip().octets());
        header.extend_from_slice(&[127, 0, 0, 1]);
        header.extend_from_slice(&source.port().to_be_bytes());
        header.extend_from_slice(&target.port().to_be_bytes());
        tokio::io::AsyncWriteExt::write_all(&mut tcp, &header).await?;
        Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tcp))
    });
    server
        .endpoint(&server.url())
        .connect_with_connector(connector)
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_trusted_proxies_name_the_client() {
    let dir = tempfile::tempdir().unwrap();
    let server = DevServer::start_with(&dir.path().join("d"), &["--trusted-proxy", "127.0.0.3"]);
    let url = server.url();
    let local = server.grpc_channel().await;
    let proxy = server.grpc_channel_from(&url, ip("127.0.0.3")).await;
    create_vault_with_secret(&server, local.clone()).await;
    update_rules(
        &server,
        local.clone(),
        pb::UpdateNetworkRulesRequest {
            default_action: Some("Deny".into()),
            add_ip_rules: vec!["198.51.100.0/24".into(), "2001:db8::/32".into()],
            ..Default::default()
        },
    )
    .await
    .unwrap();

    // A spoofed header from an untrusted peer changes nothing.
    assert_firewalled(
        get_secret_with(&server, local.clone(), Some("198.51.100.7")).await,
        "127.0.0.1",
    );
    // The trusted proxy's header names the client, for the rules and the audit record.
    get_secret_with(&server, proxy.clone(), Some("203.0.113.5, 198.51.100.7"))
        .await
        .unwrap();
    get_secret_with(&server, proxy.clone(), Some("2001:db8::42"))
        .await
        .unwrap();
    assert_firewalled(
        get_secret_with(&server, proxy.clone(), Some("198.51.100.7, 203.0.113.5")).await,
        "203.0.113.5",
    );
    // Without a header the proxy itself is the client.
    assert_firewalled(get_secret(&server, proxy.clone()).await, "127.0.0.3");

    // PROXY protocol v2 from the trusted proxy names the client too...
    let proxied = channel_through_proxy(
        &server,
        ip("127.0.0.3"),
        "198.51.100.9:40000".parse().unwrap(),
    )
    .await
    .unwrap();
    get_secret(&server, proxied).await.unwrap();
    let blocked = channel_through_proxy(
        &server,
        ip("127.0.0.3"),
        "192.0.2.77:40000".parse().unwrap(),
    )
    .await
    .unwrap();
    assert_firewalled(get_secret(&server, blocked).await, "192.0.2.77");
    // ...while from an untrusted peer the header is not read, and the connection fails its
    // TLS handshake.
    let spoofed = channel_through_proxy(
        &server,
        ip("127.0.0.1"),
        "198.51.100.9:40000".parse().unwrap(),
    )
    .await;
    if let Ok(channel) = spoofed {
        let e = get_secret(&server, channel).await.unwrap_err();
        assert_ne!(e.code(), Code::Ok);
        assert!(e.metadata().get("x-coffer-error-code").is_none(), "{e:?}");
    }

    let admitted: Vec<String> = server
        .audit_lines()
        .into_iter()
        .filter(|r| r["operationName"] == "SecretGet" && r["resultCode"] == "OK")
        .map(|r| r["callerIpAddress"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        admitted,
        vec!["198.51.100.7", "2001:db8::42", "198.51.100.9"]
    );
    // The server still serves.
    get_secret_with(&server, proxy.clone(), Some("198.51.100.1"))
        .await
        .unwrap();

    // A client cannot turn itself into the proxy: a padded header is cut to its right end,
    // and a second header (a proxy that adds its own) is read after the first.
    let padded = format!("{}192.0.2.66", "198.51.100.7,".repeat(500));
    assert_firewalled(
        get_secret_with(&server, proxy.clone(), Some(&padded)).await,
        "192.0.2.66",
    );
    let mut request = with_bearer(
        &server.token,
        pb::GetSecretRequest {
            vault: V.into(),
            name: "db-password".into(),
            ..Default::default()
        },
    );
    request
        .metadata_mut()
        .append("x-forwarded-for", "198.51.100.7".parse().unwrap());
    request
        .metadata_mut()
        .append("x-forwarded-for", "192.0.2.67".parse().unwrap());
    assert_firewalled(
        SecretServiceClient::new(proxy)
            .get_secret(request)
            .await
            .map(tonic::Response::into_inner),
        "192.0.2.67",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_public_access_admits_only_private_listeners() {
    let dir = tempfile::tempdir().unwrap();
    let server = DevServer::start_with(&dir.path().join("d"), &["--private-listen", "127.0.0.1:0"]);
    assert_eq!(server.private_endpoints.len(), 1);
    let public = server.grpc_channel().await;
    let private = server
        .endpoint(&server.private_endpoints[0])
        .connect()
        .await
        .unwrap();
    create_vault_with_secret(&server, public.clone()).await;
    let vault = update_rules(
        &server,
        public.clone(),
        pb::UpdateNetworkRulesRequest {
            public_network_access: Some("Disabled".into()),
            bypass: Some("None".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(vault.public_network_access, "Disabled");

    let status = get_secret(&server, public.clone()).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(
        status
            .message()
            .starts_with("Public network access is disabled"),
        "{}",
        status.message()
    );
    assert_eq!(
        get_secret(&server, private.clone()).await.unwrap().value,
        "hunter2-but-longer"
    );
    // The firewall rules do not apply to a private endpoint.
    update_rules(
        &server,
        public.clone(),
        pb::UpdateNetworkRulesRequest {
            default_action: Some("Deny".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    get_secret(&server, private).await.unwrap();
    // An unauthenticated caller from a refused address hears about the firewall first.
    let status = SecretServiceClient::new(public.clone())
        .get_secret(pb::GetSecretRequest {
            vault: V.into(),
            name: "db-password".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
}

#[test]
fn the_cli_manages_rules_and_limits_and_picks_its_source_address() {
    let dir = tempfile::tempdir().unwrap();
    let server = DevServer::start(&dir.path().join("d"));
    server.ok(&["vault", "create", "--name", V, "--location", "eastus"]);
    server.ok(&[
        "secret",
        "set",
        "--vault",
        V,
        "--name",
        "db-password",
        "--value",
        "hunter2-but-longer",
    ]);
    let listed = server.json(&[
        "network-rule",
        "add",
        "--name",
        V,
        "--ip-address",
        "127.0.0.2",
        "--ip-address",
        "2001:db8::/32",
    ]);
    assert_eq!(
        listed["ipRules"],
        serde_json::json!([{"value": "127.0.0.2"}, {"value": "2001:db8::/32"}])
    );
    let vault = server.json(&[
        "vault",
        "update",
        "--name",
        V,
        "--default-action",
        "Deny",
        "--bypass",
        "None",
    ]);
    assert_eq!(vault["networkAcls"]["defaultAction"], "Deny");
    assert_eq!(vault["networkAcls"]["bypass"], "None");
    assert_eq!(vault["publicNetworkAccess"], "Enabled");

    let refused = server.fails(&["secret", "show", "--vault", V, "--name", "db-password"]);
    assert!(
        refused.contains("(Forbidden) Client address is not authorized"),
        "{refused}"
    );
    assert!(refused.contains("Client address: 127.0.0.1"), "{refused}");
    assert!(!refused.contains("hunter2"));
    let shown = server.json(&[
        "secret",
        "show",
        "--vault",
        V,
        "--name",
        "db-password",
        "--source-address",
        "127.0.0.2",
    ]);
    assert_eq!(shown["value"], "hunter2-but-longer");
    let env_source = server
        .command(&[
            "secret",
            "show",
            "--vault",
            V,
            "--name",
            "db-password",
            "--query",
            "value",
        ])
        .env("COFFER_SOURCE_ADDRESS", "127.0.0.2")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&env_source.stdout).trim(),
        "hunter2-but-longer"
    );

    server.ok(&[
        "network-rule",
        "add",
        "--name",
        V,
        "--ip-address",
        "127.0.0.3",
    ]);
    let listed = server.json(&[
        "network-rule",
        "remove",
        "--vault",
        V,
        "--ip-address",
        "127.0.0.2",
    ]);
    assert_eq!(
        listed["ipRules"],
        serde_json::json!([{"value": "127.0.0.3"}, {"value": "2001:db8::/32"}])
    );
    let bad = server.fails(&[
        "network-rule",
        "add",
        "--name",
        V,
        "--ip-address",
        "10.0.0.0/33",
    ]);
    assert!(bad.contains("(BadParameter)"), "{bad}");
    let bad = server.fails(&["network-rule", "add", "--name", V, "--vnet-name", "nowhere"]);
    assert!(bad.contains("(BadParameter)"), "{bad}");
    server.ok(&[
        "network-rule",
        "add",
        "--name",
        V,
        "--vnet-name",
        "nowhere",
        "--ignore-missing-vnet-service-endpoint",
    ]);
    let listed = server.json(&["network-rule", "list", "--name", V]);
    assert_eq!(
        listed["virtualNetworkRules"],
        serde_json::json!([{"id": "nowhere"}])
    );

    // A vault backup is data: the firewall applies. Its copy keeps the rules, so a restore
    // does not open what the original closed.
    let backup = dir.path().join("fenced.backup");
    let backup_arg = backup.to_str().unwrap();
    let refused = server.fails(&["vault", "backup", "--name", V, "--out", backup_arg]);
    assert!(
        refused.contains("ForbiddenByFirewall") || refused.contains("(Forbidden)"),
        "{refused}"
    );
    server.ok(&[
        "vault",
        "backup",
        "--name",
        V,
        "--out",
        backup_arg,
        "--source-address",
        "127.0.0.3",
    ]);
    let copy = server.json(&[
        "vault",
        "restore",
        "--in",
        backup_arg,
        "--name",
        "fenced-copy",
    ]);
    assert_eq!(copy["networkAcls"], vault_acls(&server));
    assert_eq!(copy["networkAcls"]["defaultAction"], "Deny");
    let refused = server.fails(&[
        "secret",
        "show",
        "--vault",
        "fenced-copy",
        "--name",
        "db-password",
    ]);
    assert!(refused.contains("(Forbidden)"), "{refused}");

    // Throttle limits through the CLI.
    let limits = server.json(&[
        "vault", "throttle", "set", "--name", V, "--class", "keys", "--rate", "300",
    ]);
    let keys = limits
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["class"] == "keys")
        .unwrap()
        .clone();
    assert_eq!(
        keys,
        serde_json::json!({"class": "keys", "rate": 300, "burst": 300, "default": false})
    );
    let bad = server.fails(&[
        "vault", "throttle", "set", "--name", V, "--class", "disks", "--rate", "3",
    ]);
    assert!(bad.contains("(BadParameter)"), "{bad}");
    let limits = server.json(&["vault", "throttle", "reset", "--name", V, "--class", "keys"]);
    assert!(
        limits
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["default"] == true)
    );
}

#[test]
fn trusted_services_pass_the_firewall_only_when_the_bypass_allows() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    // The dev administrator service principal, made on the first start, is then configured as
    // a trusted service.
    let first = DevServer::start(&data);
    let client_id = first.env_value("COFFER_CLIENT_ID");
    drop(first);
    let server = DevServer::start_with(&data, &["--trusted-service", &client_id]);
    let as_service = |args: &[&str]| {
        server
            .command(args)
            .env_remove("COFFER_TOKEN")
            .env("COFFER_TENANT", server.env_value("COFFER_TENANT"))
            .env("COFFER_CLIENT_ID", &client_id)
            .env(
                "COFFER_CLIENT_SECRET",
                server.env_value("COFFER_CLIENT_SECRET"),
            )
            .output()
            .unwrap()
    };
    server.ok(&["vault", "create", "--name", V, "--location", "eastus"]);
    server.ok(&["secret", "set", "--vault", V, "--name", "s", "--value", "v"]);
    server.ok(&["vault", "update", "--name", V, "--default-action", "Deny"]);
    let show = [
        "secret", "show", "--vault", V, "--name", "s", "--query", "value",
    ];
    // The bootstrap token is no trusted service; the configured principal is.
    let refused = server.fails(&show);
    assert!(refused.contains("ForbiddenByFirewall") || refused.contains("(Forbidden)"));
    let out = as_service(&show);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "v");
    // With the bypass off, or public access disabled and the bypass off, it is refused too.
    server.ok(&["vault", "update", "--name", V, "--bypass", "None"]);
    let out = as_service(&show);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Client address: 127.0.0.1"), "{stderr}");
    assert!(stderr.contains("oid="), "{stderr}");
    server.ok(&[
        "vault",
        "update",
        "--name",
        V,
        "--bypass",
        "AzureServices",
        "--public-network-access",
        "Disabled",
    ]);
    let out = as_service(&show);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn vault_acls(server: &DevServer) -> serde_json::Value {
    server.json(&["vault", "show", "--name", V])["networkAcls"].clone()
}
