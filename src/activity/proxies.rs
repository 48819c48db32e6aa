//! Which client address a row records: the peer's, or, when the peer is a trusted
//! proxy, the one the proxies report in `Forwarded` (RFC 7239) or `X-Forwarded-For`.

use std::net::IpAddr;
use std::str::FromStr;

use http::HeaderMap;

/// The proxies whose `Forwarded` / `X-Forwarded-For` headers are believed: none by
/// default, so that a client cannot choose the address recorded for it.
///
/// The chain is read from the right (the hop nearest to us): trusted proxies are skipped,
/// and the first address that is not one is the client's.
///
/// ```
/// use tower_bearer::activity::TrustedProxies;
///
/// let proxies = TrustedProxies::new(["10.0.0.0/8", "::1"])?;
/// assert!(proxies.trusts("10.1.2.3".parse()?));
/// assert!(!proxies.trusts("192.0.2.1".parse()?));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    networks: Vec<Network>,
}

/// A proxy that is not an address or a network (`10.0.0.0/8`, `2001:db8::/32`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an IP address or network")]
pub struct InvalidProxy(String);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Network {
    address: IpAddr,
    prefix: u8,
}

impl Network {
    fn contains(self, ip: IpAddr) -> bool {
        match (self.address, canonical(ip)) {
            (IpAddr::V4(network), IpAddr::V4(ip)) => {
                masked(u128::from(u32::from(network)), 32, self.prefix)
                    == masked(u128::from(u32::from(ip)), 32, self.prefix)
            }
            (IpAddr::V6(network), IpAddr::V6(ip)) => {
                masked(u128::from(network), 128, self.prefix)
                    == masked(u128::from(ip), 128, self.prefix)
            }
            _ => false,
        }
    }
}

fn masked(bits: u128, width: u8, prefix: u8) -> u128 {
    let host_bits = u32::from(width - prefix);
    bits.checked_shr(host_bits).unwrap_or(0)
}

/// IPv4-mapped IPv6 addresses (`::ffff:10.0.0.1`, what a dual-stack socket reports) are
/// their IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

impl FromStr for Network {
    type Err = InvalidProxy;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || InvalidProxy(text.to_owned());
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let address = canonical(address.trim().parse::<IpAddr>().map_err(|_| invalid())?);
        let width = if address.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => width,
            Some(prefix) => match prefix.trim().parse::<u8>() {
                Ok(prefix) if prefix <= width => prefix,
                _ => return Err(invalid()),
            },
        };
        Ok(Network { address, prefix })
    }
}

impl TrustedProxies {
    /// Trusts no proxy: the peer's address is recorded (the default).
    pub fn none() -> Self {
        Self::default()
    }

    /// Trusts these addresses and networks (`"10.0.0.0/8"`, `"127.0.0.1"`, `"fd00::/8"`).
    pub fn new<I>(proxies: I) -> Result<Self, InvalidProxy>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let networks = proxies
            .into_iter()
            .map(|proxy| proxy.as_ref().parse())
            .collect::<Result<_, _>>()?;
        Ok(Self { networks })
    }

    /// Whether `ip` is a trusted proxy.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.networks.iter().any(|network| network.contains(ip))
    }

    /// The client's address: the peer's, unless it is a trusted proxy; then the nearest
    /// untrusted address of the forwarding chain (`Forwarded` when present, otherwise
    /// `X-Forwarded-For`), or the farthest trusted one when every hop is trusted. A hop
    /// that is not an address (`unknown`, an obfuscated name, garbage) ends the walk at
    /// the last trusted hop: nothing beyond it can be believed.
    pub fn client_ip(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        let peer = canonical(peer?);
        if !self.trusts(peer) {
            return Some(peer);
        }
        let forwarded = headers.get_all(http::header::FORWARDED);
        let hops: Vec<&str> = if forwarded.iter().next().is_some() {
            forwarded
                .iter()
                .filter_map(|value| value.to_str().ok())
                .flat_map(|value| value.split(','))
                .map(forwarded_for)
                .collect()
        } else {
            headers
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|value| value.to_str().ok())
                .flat_map(|value| value.split(','))
                .map(str::trim)
                .collect()
        };
        let mut client = peer;
        for hop in hops.iter().rev() {
            let Some(ip) = parse_hop(hop) else {
                break;
            };
            client = ip;
            if !self.trusts(ip) {
                break;
            }
        }
        Some(client)
    }
}

/// The `for=` parameter of one `Forwarded` element; empty when it has none.
fn forwarded_for(element: &str) -> &str {
    element
        .split(';')
        .filter_map(|pair| pair.split_once('='))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("for"))
        .map_or("", |(_, value)| value.trim())
}

/// An address as proxies write it: `192.0.2.1`, `192.0.2.1:4711`, `"[2001:db8::1]:4711"`,
/// `2001:db8::1`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    let hop = hop
        .strip_prefix('"')
        .and_then(|hop| hop.strip_suffix('"'))
        .unwrap_or(hop);
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    if let Some(rest) = hop.strip_prefix('[') {
        let (inside, _port) = rest.split_once(']')?;
        return inside.parse::<IpAddr>().ok().map(canonical);
    }
    let (address, port) = hop.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    address.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use proptest::prelude::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let proxies = TrustedProxies::new(["10.0.0.0/8"]).unwrap();
        let spoofed = headers(&[("x-forwarded-for", "1.2.3.4")]);
        assert_eq!(
            proxies.client_ip(Some(ip("192.0.2.9")), &spoofed),
            Some(ip("192.0.2.9"))
        );
        assert_eq!(
            TrustedProxies::none().client_ip(Some(ip("10.0.0.1")), &spoofed),
            Some(ip("10.0.0.1"))
        );
    }

    #[test]
    fn the_nearest_untrusted_hop_is_the_client() {
        let proxies = TrustedProxies::new(["10.0.0.0/8", "::1"]).unwrap();
        let chain = headers(&[
            ("x-forwarded-for", "6.6.6.6, 198.51.100.7"),
            ("x-forwarded-for", "10.0.0.2"),
        ]);
        assert_eq!(
            proxies.client_ip(Some(ip("10.0.0.1")), &chain),
            Some(ip("198.51.100.7"))
        );
        let forwarded = headers(&[(
            "forwarded",
            r#"for=6.6.6.6, for="[2001:db8:cafe::17]:4711";proto=https, for=10.0.0.3:80"#,
        )]);
        assert_eq!(
            proxies.client_ip(Some(ip("::1")), &forwarded),
            Some(ip("2001:db8:cafe::17"))
        );
        // Forwarded wins over X-Forwarded-For.
        let both = headers(&[
            ("forwarded", "for=203.0.113.5"),
            ("x-forwarded-for", "6.6.6.6"),
        ]);
        assert_eq!(
            proxies.client_ip(Some(ip("10.0.0.1")), &both),
            Some(ip("203.0.113.5"))
        );
    }

    #[test]
    fn an_unreadable_hop_stops_at_the_last_trusted_one() {
        let proxies = TrustedProxies::new(["10.0.0.0/8"]).unwrap();
        let chain = headers(&[("x-forwarded-for", "6.6.6.6, unknown, 10.0.0.5")]);
        assert_eq!(
            proxies.client_ip(Some(ip("10.0.0.1")), &chain),
            Some(ip("10.0.0.5"))
        );
        let all_trusted = headers(&[("x-forwarded-for", "10.9.9.9, 10.0.0.5")]);
        assert_eq!(
            proxies.client_ip(Some(ip("10.0.0.1")), &all_trusted),
            Some(ip("10.9.9.9"))
        );
        assert_eq!(
            proxies.client_ip(Some(ip("10.0.0.1")), &HeaderMap::new()),
            Some(ip("10.0.0.1"))
        );
        assert_eq!(proxies.client_ip(None, &chain), None);
    }

    #[test]
    fn mapped_addresses_are_their_ipv4_address() {
        let proxies = TrustedProxies::new(["127.0.0.1"]).unwrap();
        let chain = headers(&[("x-forwarded-for", "192.0.2.1")]);
        assert_eq!(
            proxies.client_ip(Some(ip("::ffff:127.0.0.1")), &chain),
            Some(ip("192.0.2.1"))
        );
        assert_eq!(
            TrustedProxies::none().client_ip(Some(ip("::ffff:192.0.2.4")), &chain),
            Some(ip("192.0.2.4"))
        );
    }

    #[test]
    fn networks_parse_strictly() {
        for good in [
            "10.0.0.0/8",
            "0.0.0.0/0",
            "::/0",
            "fd00::/8",
            "127.0.0.1",
            "::1/128",
        ] {
            assert!(TrustedProxies::new([good]).is_ok(), "{good}");
        }
        for bad in [
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/",
            "/8",
            "localhost",
            "10.0.0.0/-1",
            "10.0.0.0/8/8",
        ] {
            assert!(TrustedProxies::new([bad]).is_err(), "{bad}");
        }
        let everything = TrustedProxies::new(["0.0.0.0/0"]).unwrap();
        assert!(everything.trusts(ip("8.8.8.8")));
        assert!(!everything.trusts(ip("::2")));
    }

    proptest! {
        #[test]
        fn any_header_yields_the_peer_or_an_address_in_it(
            peer in any::<[u8; 4]>(),
            xff in "[ -~]{0,80}",
            forwarded in proptest::option::of("[ -~]{0,80}"),
        ) {
            let peer = IpAddr::from(peer);
            let proxies = TrustedProxies::new(["0.0.0.0/0"]).unwrap();
            let mut map = HeaderMap::new();
            map.insert("x-forwarded-for", HeaderValue::from_str(&xff).unwrap());
            if let Some(forwarded) = &forwarded {
                map.insert("forwarded", HeaderValue::from_str(forwarded).unwrap());
            }
            let client = proxies.client_ip(Some(peer), &map).unwrap();
            prop_assert!(client == peer || xff.contains(&client.to_string())
                || forwarded.as_deref().is_some_and(|f| f.contains(&client.to_string()))
                || matches!(client, IpAddr::V6(_)));
        }

        #[test]
        fn a_generated_chain_resolves_to_its_last_untrusted_hop(
            untrusted in proptest::collection::vec(any::<[u8; 4]>().prop_map(|b| [b[0] | 0x80, b[1], b[2], b[3]]), 1..4),
            trusted in proptest::collection::vec(any::<[u8; 3]>(), 0..4),
        ) {
            // 10/8 is trusted; the untrusted hops are outside it (first octet ≥ 128).
            let proxies = TrustedProxies::new(["10.0.0.0/8"]).unwrap();
            let mut hops: Vec<String> = untrusted.iter().map(|b| IpAddr::from(*b).to_string()).collect();
            hops.extend(trusted.iter().map(|b| format!("10.{}.{}.{}", b[0], b[1], b[2])));
            let map = headers(&[("x-forwarded-for", &hops.join(", "))]);
            let expected = IpAddr::from(*untrusted.last().unwrap());
            prop_assert_eq!(proxies.client_ip(Some(ip("10.0.0.1")), &map), Some(expected));
        }
    }
}
