//! Who the client is: the peer's address, or, when the peer is a trusted proxy, the one
//! the proxies report in the header they write: `X-Forwarded-For`, or `Forwarded`
//! (RFC 7239), never both.
//!
//! One reading for the whole registry
//! ([`RegistryBuilder::trusted_proxies`](crate::registry::RegistryBuilder::trusted_proxies)):
//! the activity log records the address that a key's IP allow-list is checked against.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use http::{HeaderMap, Request};

/// The proxies whose forwarding header is believed: none by default, so that a client
/// cannot choose the address recorded for it.
///
/// Only the header the proxies write is read ([`ForwardedHeader`]: `X-Forwarded-For` by
/// default): a proxy that appends to `X-Forwarded-For` passes a client's own `Forwarded`
/// header on untouched, so reading both would let the client choose. The chain is read
/// from the right (the hop nearest to us): trusted proxies are skipped, and the first
/// address that is not one is the client's.
///
/// ```
/// use http::HeaderMap;
/// use tower_bearer::client_ip::{ForwardedHeader, TrustedProxies};
///
/// let proxies = TrustedProxies::new(["10.0.0.0/8", "::1"])?;
/// assert!(proxies.trusts("10.1.2.3".parse()?));
/// assert!(!proxies.trusts("192.0.2.1".parse()?));
///
/// let mut headers = HeaderMap::new();
/// headers.insert("forwarded", "for=6.6.6.6".parse()?); // the client's own
/// headers.insert("x-forwarded-for", "203.0.113.9, 10.0.0.7".parse()?);
/// let peer = Some("10.0.0.1".parse()?);
/// assert_eq!(proxies.client_ip(peer, &headers), Some("203.0.113.9".parse()?));
///
/// // Proxies that write RFC 7239's `Forwarded` instead:
/// let proxies = proxies.header(ForwardedHeader::Forwarded);
/// assert_eq!(proxies.client_ip(peer, &headers), Some("6.6.6.6".parse()?));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    networks: Vec<Network>,
    header: ForwardedHeader,
}

/// The header trusted proxies write the client's address into; the other one is ignored.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, …` (nginx's `$proxy_add_x_forwarded_for`, most
    /// load balancers): the default.
    #[default]
    XForwardedFor,
    /// `Forwarded: for=client, for=proxy1` (RFC 7239): the `for=` parameters.
    Forwarded,
}

/// A forwarding header name that is neither `x-forwarded-for` nor `forwarded`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a forwarding header: expected x-forwarded-for or forwarded")]
pub struct InvalidForwardedHeader(String);

impl FromStr for ForwardedHeader {
    type Err = InvalidForwardedHeader;

    /// `x-forwarded-for` or `forwarded`, in any case.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.eq_ignore_ascii_case("x-forwarded-for") {
            Ok(Self::XForwardedFor)
        } else if text.eq_ignore_ascii_case("forwarded") {
            Ok(Self::Forwarded)
        } else {
            Err(InvalidForwardedHeader(text.to_owned()))
        }
    }
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
pub(crate) fn canonical(ip: IpAddr) -> IpAddr {
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
        Ok(Self {
            networks,
            header: ForwardedHeader::default(),
        })
    }

    /// Reads the client's address from `header`, the one the trusted proxies write
    /// (default [`ForwardedHeader::XForwardedFor`]); the other header is ignored.
    #[must_use]
    pub fn header(mut self, header: ForwardedHeader) -> Self {
        self.header = header;
        self
    }

    /// The header the client's address is read from.
    pub fn forwarded_header(&self) -> ForwardedHeader {
        self.header
    }

    /// Whether `ip` is a trusted proxy.
    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.networks.iter().any(|network| network.contains(ip))
    }

    /// The client's address: the peer's, unless it is a trusted proxy; then the nearest
    /// untrusted address of the chain in [the proxies' header](Self::header), or the
    /// farthest trusted one when every hop is trusted. A hop that is not an address
    /// (`unknown`, an obfuscated name, garbage) ends the walk at the last trusted hop:
    /// nothing beyond it can be believed.
    pub fn client_ip(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        let peer = canonical(peer?);
        if !self.trusts(peer) {
            return Some(peer);
        }
        let (name, hop): (_, fn(&str) -> &str) = match self.header {
            ForwardedHeader::XForwardedFor => ("x-forwarded-for", str::trim),
            ForwardedHeader::Forwarded => (http::header::FORWARDED.as_str(), forwarded_for),
        };
        // Several header lines are one list, in order (RFC 9110 §5.3).
        let hops: Vec<&str> = headers
            .get_all(name)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(hop)
            .collect();
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

    /// The client address of `request`: [`client_ip`](Self::client_ip) of its peer (as
    /// axum's `into_make_service_with_connect_info` records it, or a `SocketAddr` in its
    /// extensions) and its headers.
    pub fn client_ip_of<B>(&self, request: &Request<B>) -> Option<IpAddr> {
        self.client_ip(peer(request), request.headers())
    }
}

/// The peer's address, as axum's `into_make_service_with_connect_info` records it, or as
/// a plain hyper server inserts it.
fn peer<B>(request: &Request<B>) -> Option<IpAddr> {
    #[cfg(feature = "axum")]
    if let Some(info) = request
        .extensions()
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
    {
        return Some(info.0.ip());
    }
    request.extensions().get::<SocketAddr>().map(SocketAddr::ip)
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
            proxies
                .clone()
                .header(ForwardedHeader::Forwarded)
                .client_ip(Some(ip("::1")), &forwarded),
            Some(ip("2001:db8:cafe::17"))
        );
    }

    #[test]
    fn only_the_named_header_is_read() {
        let proxies = TrustedProxies::new(["10.0.0.0/8"]).unwrap();
        let both = headers(&[
            ("forwarded", "for=6.6.6.6"),
            ("x-forwarded-for", "203.0.113.5, 10.0.0.9"),
        ]);
        let peer = Some(ip("10.0.0.1"));
        assert_eq!(proxies.client_ip(peer, &both), Some(ip("203.0.113.5")));
        let rfc = proxies.header(ForwardedHeader::Forwarded);
        assert_eq!(rfc.client_ip(peer, &both), Some(ip("6.6.6.6")));
        // A proxy that writes `Forwarded` ignores a client's `X-Forwarded-For`, and
        // without its header the peer (the proxy) is all that is known.
        let spoofed_xff = headers(&[("x-forwarded-for", "6.6.6.6")]);
        assert_eq!(rfc.client_ip(peer, &spoofed_xff), peer);
        // Header names parse in any case, and nothing else.
        assert_eq!(
            "X-Forwarded-For".parse(),
            Ok(ForwardedHeader::XForwardedFor)
        );
        assert_eq!("FORWARDED".parse(), Ok(ForwardedHeader::Forwarded));
        assert!("x-real-ip".parse::<ForwardedHeader>().is_err());
    }

    #[test]
    fn a_chain_of_several_proxies_resolves_to_the_client() {
        // client -> CDN (198.51.100.0/24, trusted) -> LB (10.0.0.2) -> us, each
        // appending what it saw; the client forged two entries of its own first.
        let proxies = TrustedProxies::new(["10.0.0.0/8", "198.51.100.0/24"]).unwrap();
        let chain = headers(&[(
            "x-forwarded-for",
            "1.1.1.1, 10.0.0.99, 203.0.113.77, 198.51.100.20",
        )]);
        assert_eq!(
            proxies.client_ip(Some(ip("10.0.0.2")), &chain),
            Some(ip("203.0.113.77"))
        );
        let rfc = proxies.header(ForwardedHeader::Forwarded);
        let chain = headers(&[
            ("forwarded", "for=1.1.1.1;proto=http"),
            (
                "forwarded",
                r#"for="203.0.113.77:5000", for=198.51.100.20;by=x"#,
            ),
        ]);
        assert_eq!(
            rfc.client_ip(Some(ip("10.0.0.2")), &chain),
            Some(ip("203.0.113.77"))
        );
    }

    #[test]
    fn malformed_values_never_name_an_untrusted_client_beyond_them() {
        let proxies = TrustedProxies::new(["10.0.0.0/8"]).unwrap();
        let peer = Some(ip("10.0.0.1"));
        for (value, expected) in [
            ("", "10.0.0.1"),
            (",,,", "10.0.0.1"),
            ("6.6.6.6, 300.1.1.1", "10.0.0.1"),
            ("6.6.6.6, 10.0.0.4:notaport", "10.0.0.1"),
            ("6.6.6.6, [::1", "10.0.0.1"),
            ("6.6.6.6, 203.0.113.1 extra", "10.0.0.1"),
            ("6.6.6.6,203.0.113.1", "203.0.113.1"),
            ("  203.0.113.1  ", "203.0.113.1"),
        ] {
            let map = headers(&[("x-forwarded-for", value)]);
            assert_eq!(
                proxies.client_ip(peer, &map),
                Some(ip(expected)),
                "{value:?}"
            );
        }
        let rfc = proxies.header(ForwardedHeader::Forwarded);
        for (value, expected) in [
            ("for=", "10.0.0.1"),
            ("by=203.0.113.1", "10.0.0.1"),
            ("for=unknown", "10.0.0.1"),
            ("for=_hidden", "10.0.0.1"),
            (r#"for="[2001:db8::1]""#, "2001:db8::1"),
            ("FOR=203.0.113.1", "203.0.113.1"),
        ] {
            let map = headers(&[("forwarded", value)]);
            assert_eq!(rfc.client_ip(peer, &map), Some(ip(expected)), "{value:?}");
        }
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
            // Each reading names the peer or an address of its own header only.
            let client = proxies.client_ip(Some(peer), &map).unwrap();
            prop_assert!(client == peer || xff.contains(&client.to_string())
                || matches!(client, IpAddr::V6(_)));
            let rfc = proxies.header(ForwardedHeader::Forwarded);
            let client = rfc.client_ip(Some(peer), &map).unwrap();
            prop_assert!(client == peer
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
