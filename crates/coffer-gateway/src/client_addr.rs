//! Where a request really comes from: the TCP peer, unless that peer is a trusted proxy, which
//! may name the client in a PROXY protocol v2 header (before TLS) or in `X-Forwarded-For`.
//! From any other peer neither is believed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use coffer_types::IpNet;
use coffer_types::net::canonical_ip;

/// The proxies and load balancers whose word on the client's address is believed.
#[derive(Debug, Clone, Default)]
pub(crate) struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    pub(crate) fn new(nets: Vec<IpNet>) -> Self {
        Self(nets)
    }

    pub(crate) fn contains(&self, addr: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(addr))
    }
}

/// The 12 bytes every PROXY protocol v2 header starts with.
const SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// The fixed part: signature, version and command, family and protocol, length.
const FIXED_LEN: usize = 16;
/// The longest address block accepted; real headers carry addresses and a few TLVs.
const MAX_BLOCK: usize = 2_048;

#[derive(Debug, thiserror::Error)]
pub(crate) enum ProxyHeaderError {
    #[error("reading the PROXY header failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("the PROXY header is malformed: {0}")]
    Malformed(&'static str),
}

/// Reads a PROXY protocol v2 header from the start of `stream`, if there is one, and returns
/// the client it names (`None` for a LOCAL header, an unspecified family, or no header at all).
/// Bytes that do not start a PROXY header are left unread for the TLS handshake. The caller
/// bounds the time this takes.
pub(crate) async fn read_proxy_header(
    stream: &mut tokio::net::TcpStream,
) -> Result<Option<SocketAddr>, ProxyHeaderError> {
    let mut fixed = [0u8; FIXED_LEN];
    loop {
        let seen = stream.peek(&mut fixed).await?;
        if seen == 0 {
            return Ok(None);
        }
        let compared = seen.min(SIGNATURE.len());
        if fixed[..compared] != SIGNATURE[..compared] {
            return Ok(None);
        }
        if seen == FIXED_LEN {
            break;
        }
        // Part of the header has arrived: wait a moment for the rest rather than spin.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let block_len = usize::from(u16::from_be_bytes([fixed[14], fixed[15]]));
    if block_len > MAX_BLOCK {
        return Err(ProxyHeaderError::Malformed("address block too long"));
    }
    let mut header = vec![0u8; FIXED_LEN + block_len];
    tokio::io::AsyncReadExt::read_exact(stream, &mut header).await?;
    parse_v2(&header)
}

/// Parses a whole PROXY protocol v2 header (fixed part and address block).
pub(crate) fn parse_v2(header: &[u8]) -> Result<Option<SocketAddr>, ProxyHeaderError> {
    if header.len() < FIXED_LEN || header[..12] != SIGNATURE {
        return Err(ProxyHeaderError::Malformed("no PROXY v2 signature"));
    }
    let version_command = header[12];
    if version_command >> 4 != 2 {
        return Err(ProxyHeaderError::Malformed("not version 2"));
    }
    let block_len = usize::from(u16::from_be_bytes([header[14], header[15]]));
    let block = header
        .get(FIXED_LEN..FIXED_LEN + block_len)
        .ok_or(ProxyHeaderError::Malformed("truncated"))?;
    match version_command & 0x0f {
        // LOCAL: the proxy's own connection (a health check); the peer is the client.
        0 => return Ok(None),
        1 => {}
        _ => return Err(ProxyHeaderError::Malformed("unknown command")),
    }
    let short = ProxyHeaderError::Malformed("address block too short for its family");
    match header[13] {
        // TCP over IPv4: source, destination, source port, destination port.
        0x11 => {
            let a = block.get(..12).ok_or(short)?;
            let ip = Ipv4Addr::new(a[0], a[1], a[2], a[3]);
            let port = u16::from_be_bytes([a[8], a[9]]);
            Ok(Some(SocketAddr::new(IpAddr::V4(ip), port)))
        }
        0x21 => {
            let a = block.get(..36).ok_or(short)?;
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&a[..16]);
            let port = u16::from_be_bytes([a[32], a[33]]);
            Ok(Some(SocketAddr::new(
                IpAddr::V6(Ipv6Addr::from(octets)),
                port,
            )))
        }
        // UNSPEC, UDP, UNIX sockets: nothing to judge; the peer stands.
        _ => Ok(None),
    }
}

/// The longest `X-Forwarded-For` header read, and the most hops walked.
const MAX_FORWARDED_LEN: usize = 4_096;
const MAX_HOPS: usize = 16;

/// One `X-Forwarded-For` entry as an address: `a.b.c.d`, `a.b.c.d:port`, an IPv6 address, or
/// `[v6]` / `[v6]:port`.
fn hop_address(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Some(rest) = entry.strip_prefix('[') {
        let (inside, _) = rest.split_once(']')?;
        return inside.parse::<Ipv6Addr>().ok().map(IpAddr::V6);
    }
    entry.parse::<SocketAddr>().ok().map(|s| s.ip())
}

/// The client of a request that arrived from `peer` with `forwarded_for`. Unless the peer is a
/// trusted proxy the header is ignored. Otherwise it is walked from the right, past trusted
/// proxies: the first other address is the client; an entry that is not an address stops the
/// walk at the last trusted hop; if every entry is trusted, the left-most is the client.
pub(crate) fn forwarded_client(
    peer: IpAddr,
    forwarded_for: Option<&str>,
    trusted: &TrustedProxies,
) -> IpAddr {
    let peer = canonical_ip(peer);
    let Some(header) = forwarded_for else {
        return peer;
    };
    if !trusted.contains(peer) || header.len() > MAX_FORWARDED_LEN {
        return peer;
    }
    let mut client = peer;
    for entry in header.rsplit(',').take(MAX_HOPS) {
        let Some(hop) = hop_address(entry).map(canonical_ip) else {
            return client;
        };
        client = hop;
        if !trusted.contains(hop) {
            return hop;
        }
    }
    client
}

/// Every `X-Forwarded-For` header of a request, joined in the order received: a proxy may add
/// a header of its own rather than append to the client's. Bytes that are not text become
/// U+FFFD, so an entry with them stops the walk instead of hiding the whole header.
pub(crate) fn join_forwarded_for<'a>(values: impl Iterator<Item = &'a [u8]>) -> Option<String> {
    let parts: Vec<String> = values
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect();
    if parts.is_empty() {
        return None;
    }
    let joined = parts.join(",");
    // Only the right end matters (proxies append): a long header is cut to its last 4 KiB of
    // whole entries, never dropped, since dropping it would make the proxy itself the client.
    const KEEP: usize = 4_000;
    let mut cut = joined.len().saturating_sub(KEEP);
    while !joined.is_char_boundary(cut) {
        cut += 1;
    }
    if cut == 0 {
        return Some(joined);
    }
    Some(
        joined[cut..]
            .split_once(',')
            .map_or(String::new(), |(_, rest)| rest.to_owned()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn trusted(nets: &[&str]) -> TrustedProxies {
        TrustedProxies::new(nets.iter().map(|n| IpNet::parse(n).unwrap()).collect())
    }

    fn v4_header(src: [u8; 4], port: u16, tlvs: &[u8]) -> Vec<u8> {
        let mut h = SIGNATURE.to_vec();
        let len = 12 + tlvs.len() as u16;
        h.extend_from_slice(&[0x21, 0x11]);
        h.extend_from_slice(&len.to_be_bytes());
        h.extend_from_slice(&src);
        h.extend_from_slice(&[127, 0, 0, 1]);
        h.extend_from_slice(&port.to_be_bytes());
        h.extend_from_slice(&443u16.to_be_bytes());
        h.extend_from_slice(tlvs);
        h
    }

    #[test]
    fn parses_proxy_v2_headers() {
        assert_eq!(
            parse_v2(&v4_header([198, 51, 100, 7], 4000, &[])).unwrap(),
            Some("198.51.100.7:4000".parse().unwrap())
        );
        // TLVs after the addresses are skipped.
        assert_eq!(
            parse_v2(&v4_header([198, 51, 100, 7], 4000, &[0x04, 0, 1, 0xaa])).unwrap(),
            Some("198.51.100.7:4000".parse().unwrap())
        );
        let mut v6 = SIGNATURE.to_vec();
        v6.extend_from_slice(&[0x21, 0x21, 0, 36]);
        let src: Ipv6Addr = "2001:db8::42".parse().unwrap();
        v6.extend_from_slice(&src.octets());
        v6.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
        v6.extend_from_slice(&[0x1f, 0x90, 0x01, 0xbb]);
        assert_eq!(
            parse_v2(&v6).unwrap(),
            Some("[2001:db8::42]:8080".parse().unwrap())
        );
        let mut local = SIGNATURE.to_vec();
        local.extend_from_slice(&[0x20, 0x00, 0, 0]);
        assert_eq!(parse_v2(&local).unwrap(), None);

        let mut bad_version = v4_header([1, 2, 3, 4], 1, &[]);
        bad_version[12] = 0x11;
        assert!(parse_v2(&bad_version).is_err());
        let mut bad_command = v4_header([1, 2, 3, 4], 1, &[]);
        bad_command[12] = 0x22;
        assert!(parse_v2(&bad_command).is_err());
        let mut short = v4_header([1, 2, 3, 4], 1, &[]);
        short[15] = 8;
        short.truncate(FIXED_LEN + 8);
        assert!(parse_v2(&short).is_err());
        let truncated = &v4_header([1, 2, 3, 4], 1, &[])[..20];
        assert!(parse_v2(truncated).is_err());
    }

    #[tokio::test]
    async fn a_header_is_consumed_and_tls_bytes_are_left_alone() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        for with_header in [true, false] {
            let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
            let (mut server, _) = listener.accept().await.unwrap();
            let mut sent = if with_header {
                v4_header([192, 0, 2, 1], 5555, &[])
            } else {
                Vec::new()
            };
            sent.extend_from_slice(b"\x16\x03\x01hello");
            // Written in two pieces, so the reader sees a partial header first.
            client.write_all(&sent[..7]).await.unwrap();
            let writer = tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                client.write_all(&sent[7..]).await.unwrap();
                client
            });
            let named = read_proxy_header(&mut server).await.unwrap();
            let _client = writer.await.unwrap();
            let mut rest = [0u8; 8];
            server.read_exact(&mut rest).await.unwrap();
            assert_eq!(&rest, b"\x16\x03\x01hello");
            if with_header {
                assert_eq!(named, Some("192.0.2.1:5555".parse().unwrap()));
            } else {
                assert_eq!(named, None);
            }
        }
        // An oversized block is refused before anything is allocated for it.
        let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut server, _) = listener.accept().await.unwrap();
        let mut huge = SIGNATURE.to_vec();
        huge.extend_from_slice(&[0x21, 0x11, 0xff, 0xff]);
        client.write_all(&huge).await.unwrap();
        assert!(read_proxy_header(&mut server).await.is_err());
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let proxies = trusted(&["10.0.0.0/24", "2001:db8:ffff::/48"]);
        // An untrusted peer's header changes nothing.
        assert_eq!(
            forwarded_client(ip("203.0.113.9"), Some("198.51.100.7"), &proxies),
            ip("203.0.113.9")
        );
        assert_eq!(
            forwarded_client(ip("10.0.0.5"), Some("198.51.100.7"), &proxies),
            ip("198.51.100.7")
        );
        // A chain: the right-most untrusted hop is the client; what it claims is not believed.
        assert_eq!(
            forwarded_client(
                ip("10.0.0.5"),
                Some("1.1.1.1, 198.51.100.7, 10.0.0.9"),
                &proxies
            ),
            ip("198.51.100.7")
        );
        // Garbage stops the walk at the last trusted hop.
        assert_eq!(
            forwarded_client(
                ip("10.0.0.5"),
                Some("198.51.100.7, not-an-ip, 10.0.0.9"),
                &proxies
            ),
            ip("10.0.0.9")
        );
        // Every hop trusted: the left-most.
        assert_eq!(
            forwarded_client(ip("10.0.0.5"), Some("10.0.0.1, 10.0.0.2"), &proxies),
            ip("10.0.0.1")
        );
        // IPv6, ports, brackets and mapped addresses.
        assert_eq!(
            forwarded_client(ip("2001:db8:ffff::1"), Some("[2001:db8::42]:443"), &proxies),
            ip("2001:db8::42")
        );
        assert_eq!(
            forwarded_client(ip("::ffff:10.0.0.5"), Some("198.51.100.7:8080"), &proxies),
            ip("198.51.100.7")
        );
        assert_eq!(
            forwarded_client(ip("10.0.0.5"), Some("::ffff:192.0.2.4"), &proxies),
            ip("192.0.2.4")
        );
        assert_eq!(
            forwarded_client(ip("10.0.0.5"), Some(""), &proxies),
            ip("10.0.0.5")
        );
        let long = "1.2.3.4,".repeat(600);
        assert_eq!(
            forwarded_client(ip("10.0.0.5"), Some(&long), &proxies),
            ip("10.0.0.5")
        );
    }
}
