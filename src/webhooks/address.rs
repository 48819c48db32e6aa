//! Where a webhook may be delivered: `https` URLs whose host resolves to public
//! addresses only, checked when the endpoint is registered and again at every delivery
//! (a name that resolved to a public address yesterday may resolve to 127.0.0.1 today:
//! DNS rebinding), unless the application allows private targets explicitly.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use http::Uri;

/// Why an endpoint URL is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UnsafeUrl {
    /// Not an absolute `http(s)://host/…` URL, or longer than 2,048 bytes.
    #[error("not an absolute URL")]
    Invalid,
    /// `http`, where only `https` is allowed.
    #[error("the URL must use https")]
    NotHttps,
    /// `user:password@` in the URL: credentials belong in the signature.
    #[error("the URL must not carry credentials")]
    Credentials,
    /// The host is, or resolves to, a loopback, private, link-local, shared, multicast
    /// or otherwise non-public address (the cloud metadata address among them).
    #[error("the URL's host is not a public address")]
    NotPublic,
    /// The host's name could not be resolved.
    #[error("the URL's host does not resolve")]
    Unresolved,
}

/// The longest endpoint URL accepted.
pub const MAX_URL_LEN: usize = 2048;

/// Which targets are allowed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Targets {
    /// `https` to public addresses only (the default).
    #[default]
    Public,
    /// Any address, and plain `http` too: for tests and private networks, never for
    /// endpoints that tenants register on a shared service.
    AllowPrivate,
}

/// Checks the shape of `url`: absolute, `https` (or `http` with
/// [`Targets::AllowPrivate`]), no credentials, and, when the host is an address, a public
/// one. A name is checked when it is resolved ([`resolve`]).
pub fn check_url(url: &str, targets: Targets) -> Result<Uri, UnsafeUrl> {
    if url.len() > MAX_URL_LEN {
        return Err(UnsafeUrl::Invalid);
    }
    let uri: Uri = url.parse().map_err(|_| UnsafeUrl::Invalid)?;
    let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
        return Err(UnsafeUrl::Invalid);
    };
    match (scheme, targets) {
        ("https", _) | ("http", Targets::AllowPrivate) => {}
        ("http", Targets::Public) => return Err(UnsafeUrl::NotHttps),
        _ => return Err(UnsafeUrl::Invalid),
    }
    if authority.as_str().contains('@') {
        return Err(UnsafeUrl::Credentials);
    }
    let host = authority.host();
    if host.is_empty() {
        return Err(UnsafeUrl::Invalid);
    }
    if let Some(ip) = literal_ip(host) {
        if targets == Targets::Public && !is_public(ip) {
            return Err(UnsafeUrl::NotPublic);
        }
    }
    Ok(uri)
}

/// The address a host written as one stands for (`[::1]` included).
fn literal_ip(host: &str) -> Option<IpAddr> {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

/// Resolves `uri`'s host and port; with [`Targets::Public`], every address must be
/// public (one private answer among public ones is how rebinding starts). The caller
/// connects to these addresses, not to the name again.
pub async fn resolve(uri: &Uri, targets: Targets) -> Result<Vec<SocketAddr>, UnsafeUrl> {
    let host = uri.host().ok_or(UnsafeUrl::Invalid)?;
    let port = uri.port_u16().unwrap_or(match uri.scheme_str() {
        Some("http") => 80,
        _ => 443,
    });
    resolve_host(host, port, targets).await
}

/// [`resolve`] for a host (a name or an address) and a port.
pub(super) async fn resolve_host(
    host: &str,
    port: u16,
    targets: Targets,
) -> Result<Vec<SocketAddr>, UnsafeUrl> {
    let addresses: Vec<SocketAddr> = match literal_ip(host) {
        Some(ip) => vec![SocketAddr::new(ip, port)],
        None => tokio::net::lookup_host((host, port))
            .await
            .map_err(|_| UnsafeUrl::Unresolved)?
            .collect(),
    };
    if addresses.is_empty() {
        return Err(UnsafeUrl::Unresolved);
    }
    if targets == Targets::Public && !addresses.iter().all(|address| is_public(address.ip())) {
        return Err(UnsafeUrl::NotPublic);
    }
    Ok(addresses)
}

/// Whether `ip` is a public, unicast address: not loopback, private (RFC 1918, unique
/// local), link-local (the cloud metadata address 169.254.169.254 among them), shared
/// (100.64/10), unspecified, broadcast, multicast, documentation, benchmarking or
/// reserved; an IPv4 address mapped into IPv6 is judged as IPv4.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => is_public_v4(ip),
        IpAddr::V6(ip) => match ip.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(ip),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0 // "this network"
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (18..20).contains(&b)) // benchmarking
        || a >= 240) // reserved
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00 // unique local
        || (first & 0xffc0) == 0xfe80 // link-local
        || (first == 0x2001 && ip.segments()[1] == 0x0db8) // documentation
        || ip.segments()[..6] == [0, 0, 0, 0, 0, 0]) // IPv4-compatible, deprecated
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_and_private_addresses() {
        for public in [
            "8.8.8.8",
            "1.1.1.1",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "192.0.2.1",
            "198.18.0.1",
            "240.0.0.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "ff02::1",
            "2001:db8::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
    }

    #[test]
    fn urls_are_https_without_credentials_to_public_hosts() {
        assert!(check_url("https://hooks.example.com/tower", Targets::Public).is_ok());
        assert!(check_url("https://8.8.8.8:8443/x", Targets::Public).is_ok());
        for (url, why) in [
            ("http://hooks.example.com/", UnsafeUrl::NotHttps),
            ("https://user:pw@hooks.example.com/", UnsafeUrl::Credentials),
            ("https://127.0.0.1/", UnsafeUrl::NotPublic),
            ("https://[::1]:8443/", UnsafeUrl::NotPublic),
            (
                "https://169.254.169.254/latest/meta-data",
                UnsafeUrl::NotPublic,
            ),
            ("ftp://hooks.example.com/", UnsafeUrl::Invalid),
            ("/relative", UnsafeUrl::Invalid),
            ("not a url", UnsafeUrl::Invalid),
        ] {
            assert_eq!(check_url(url, Targets::Public).unwrap_err(), why, "{url}");
        }
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_LEN));
        assert_eq!(
            check_url(&long, Targets::Public).unwrap_err(),
            UnsafeUrl::Invalid
        );
        // Allowed explicitly: plain http to 127.0.0.1, for tests.
        assert!(check_url("http://127.0.0.1:9000/hook", Targets::AllowPrivate).is_ok());
    }

    proptest::proptest! {
        /// An IPv4 address is judged the same written as itself or mapped into IPv6 (a
        /// `::ffff:127.0.0.1` must not pass for public), and no address of the private
        /// ranges passes, whatever its host part.
        #[test]
        fn mapped_addresses_are_judged_as_ipv4(octets: [u8; 4], host: u32) {
            let v4 = Ipv4Addr::from(octets);
            proptest::prop_assert_eq!(
                is_public(IpAddr::V4(v4)),
                is_public(IpAddr::V6(v4.to_ipv6_mapped()))
            );
            for (network, bits) in [(0x7f00_0000u32, 8), (0x0a00_0000, 8), (0xac10_0000, 12),
                (0xc0a8_0000, 16), (0xa9fe_0000, 16), (0x6440_0000, 10)] {
                let inside = Ipv4Addr::from(network | (host >> bits));
                proptest::prop_assert!(!is_public(IpAddr::V4(inside)), "{}", inside);
            }
        }
    }

    #[tokio::test]
    async fn a_name_resolving_to_a_private_address_is_refused_at_delivery() {
        let localhost: Uri = "https://localhost:8443/hook".parse().unwrap();
        assert_eq!(
            resolve(&localhost, Targets::Public).await.unwrap_err(),
            UnsafeUrl::NotPublic
        );
        let addresses = resolve(&localhost, Targets::AllowPrivate).await.unwrap();
        assert!(addresses.iter().all(|address| address.port() == 8443));
        let literal: Uri = "http://127.0.0.1:9000/".parse().unwrap();
        assert_eq!(
            resolve(&literal, Targets::AllowPrivate).await.unwrap(),
            [SocketAddr::from(([127, 0, 0, 1], 9000))]
        );
    }
}
