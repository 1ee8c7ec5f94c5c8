//! Where webhook deliveries may go: a URL's host is resolved and every address checked
//! before a connection is made. Refused unless allowed by configuration: loopback (the
//! server itself), link-local (the cloud metadata address 169.254.169.254 among them; and
//! AWS's IPv6 one, fd00:ec2::254),
//! unspecified, multicast and broadcast addresses.
//!
//! Invariants: a delivery connects only to an address this policy passed (the one it
//! checked, not a second lookup); `http://` and `https://` URLs only, with a host.

use std::net::{IpAddr, SocketAddr};

/// The allow-list of addresses the default policy refuses.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    allow: Vec<(IpAddr, u8)>,
}

/// A URL taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `http` or `https`.
    pub scheme: String,
    /// Host as written.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Path and query.
    pub path: String,
}

/// Splits an `http(s)://host[:port]/path` URL.
pub fn parse_url(url: &str) -> Result<Target, String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| format!("`{url}` is not an http:// or https:// URL"))?;
    let default_port = match scheme {
        "http" => 80,
        "https" => 443,
        _ => return Err(format!("`{url}`: only http:// and https:// URLs")),
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].to_string()),
        None => (rest, "/".to_string()),
    };
    if authority.contains('@') {
        return Err(format!(
            "`{url}`: no credentials in the URL (sign with the secret)"
        ));
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, p) = v6
            .split_once(']')
            .ok_or_else(|| format!("`{url}`: bad IPv6 host"))?;
        (h.to_string(), p.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (authority.to_string(), None),
        }
    };
    let port = match port {
        Some(p) => p.parse().map_err(|_| format!("`{url}`: bad port"))?,
        None => default_port,
    };
    if host.is_empty() {
        return Err(format!("`{url}`: no host"));
    }
    Ok(Target {
        scheme: scheme.to_string(),
        host,
        port,
        path,
    })
}

impl Policy {
    /// A policy allowing `allow` (IPs or CIDR blocks) on top of the default.
    pub fn new(allow: &[String]) -> Result<Policy, String> {
        let mut parsed = Vec::new();
        for item in allow {
            let (ip, bits) = match item.split_once('/') {
                Some((ip, bits)) => (ip, Some(bits)),
                None => (item.as_str(), None),
            };
            let ip: IpAddr = ip.parse().map_err(|_| {
                format!("server.webhooks.allow: `{item}` is not an IP or CIDR block")
            })?;
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let bits =
                match bits {
                    Some(b) => b.parse::<u8>().ok().filter(|b| *b <= max).ok_or_else(|| {
                        format!("server.webhooks.allow: `{item}`: bad prefix length")
                    })?,
                    None => max,
                };
            parsed.push((ip, bits));
        }
        Ok(Policy { allow: parsed })
    }

    /// Why `ip` may not be reached, if it may not.
    pub fn refuses(&self, ip: IpAddr) -> Option<&'static str> {
        if self.allow.iter().any(|(net, bits)| within(ip, *net, *bits)) {
            return None;
        }
        let why = match ip {
            IpAddr::V4(v4) if v4.is_loopback() => "a loopback address (the server itself)",
            IpAddr::V4(v4) if v4.is_link_local() => "a link-local address (cloud metadata)",
            IpAddr::V4(v4) if v4.is_unspecified() || v4.is_broadcast() || v4.is_multicast() => {
                "not a host address"
            }
            IpAddr::V6(v6) if v6.is_loopback() => "a loopback address (the server itself)",
            IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80 => {
                "a link-local address (cloud metadata)"
            }
            IpAddr::V6(v6) if v6.is_unspecified() || v6.is_multicast() => "not a host address",
            // The cloud metadata service's IPv6 address (AWS).
            IpAddr::V6(v6) if v6.segments() == [0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254] => {
                "a cloud metadata address"
            }
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => return self.refuses(IpAddr::V4(v4)),
                None => return None,
            },
            _ => return None,
        };
        Some(why)
    }

    /// Resolves `target`'s host and checks every address: the first allowed one, or why
    /// none may be reached.
    pub async fn resolve(&self, target: &Target) -> Result<SocketAddr, String> {
        let addresses: Vec<SocketAddr> =
            tokio::net::lookup_host((target.host.as_str(), target.port))
                .await
                .map_err(|e| format!("{}: {e}", target.host))?
                .collect();
        let mut why = format!("{}: no address", target.host);
        for a in &addresses {
            match self.refuses(a.ip()) {
                None => return Ok(*a),
                Some(reason) => {
                    why = format!("{} resolves to {}: {reason}, refused by the webhook policy (server.webhooks.allow)", target.host, a.ip())
                }
            }
        }
        Err(why)
    }
}

fn within(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_and_metadata_are_refused_unless_allowed() {
        let p = Policy::new(&[]).unwrap();
        for refused in [
            "127.0.0.1",
            "169.254.169.254",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "fd00:ec2::254",
        ] {
            assert!(p.refuses(refused.parse().unwrap()).is_some(), "{refused}");
        }
        for ok in ["203.0.113.7", "10.1.2.3", "2001:db8::1"] {
            assert!(p.refuses(ok.parse().unwrap()).is_none(), "{ok}");
        }
        let allowed = Policy::new(&["127.0.0.1".into(), "169.254.0.0/16".into()]).unwrap();
        assert!(allowed.refuses("127.0.0.1".parse().unwrap()).is_none());
        assert!(allowed.refuses("127.0.0.2".parse().unwrap()).is_some());
        assert!(allowed
            .refuses("169.254.169.254".parse().unwrap())
            .is_none());
        assert!(Policy::new(&["10.0.0.0/33".into()]).is_err());
        assert!(Policy::new(&["example".into()]).is_err());
    }

    #[test]
    fn urls_are_taken_apart_or_refused() {
        let t = parse_url("http://hooks.example:8443/ioc/alerts?x=1").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("hooks.example", 8443, "/ioc/alerts?x=1")
        );
        assert_eq!(parse_url("https://[2001:db8::1]/h").unwrap().port, 443);
        for bad in [
            "ftp://x/",
            "http://",
            "http://user:pw@host/",
            "hooks.example/x",
            "http://h:port/",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }
}
