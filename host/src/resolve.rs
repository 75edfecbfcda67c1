//! Name resolution for the service and the proxy: host entries first (the platform's `ip host`
//! table, or a `cslu-local` record kept on the device), then DNS when a name server is
//! configured, the way a network device resolves.
//!
//! An IP literal never goes to DNS. A name that does not resolve says why: no name server
//! configured, the name server did not answer, or the name is unknown. These are the seed's
//! "no DNS server" `COMM_FAILED`, told apart from "DNS works but no Internet" (a connect
//! failure after a successful resolution).

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

/// How host names become addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolver {
    /// Static entries, tried before DNS: a name (compared without regard to ASCII case) and
    /// its addresses, in the order they are tried.
    pub hosts: Vec<(String, Vec<IpAddr>)>,
    /// `true` when the system's DNS (its name servers, `getaddrinfo`) may be asked; `false`
    /// on a device with no name server configured.
    pub dns: bool,
}

impl Default for Resolver {
    fn default() -> Self {
        Resolver::system()
    }
}

impl Resolver {
    /// The system's resolver, without host entries.
    pub fn system() -> Self {
        Resolver {
            hosts: Vec::new(),
            dns: true,
        }
    }

    /// Adds a host entry (`ip host NAME ADDRESS…`); later entries for the same name add
    /// addresses after the earlier ones.
    pub fn with_host(mut self, name: &str, addrs: &[IpAddr]) -> Self {
        match self
            .hosts
            .iter_mut()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            Some((_, a)) => a.extend_from_slice(addrs),
            None => self.hosts.push((name.to_string(), addrs.to_vec())),
        }
        self
    }

    /// The addresses of `host` with `port`, in the order to try them; `Err` says why there
    /// are none, in words for the operator.
    pub fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        if let Some((_, addrs)) = self
            .hosts
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(host))
        {
            if addrs.is_empty() {
                return Err(format!("{host}: its host entry holds no address"));
            }
            return Ok(addrs.iter().map(|ip| SocketAddr::new(*ip, port)).collect());
        }
        if !self.dns {
            return Err(format!("{host}: no DNS server configured, no host entry"));
        }
        match (host, port).to_socket_addrs() {
            Ok(a) => {
                let addrs: Vec<SocketAddr> = a.collect();
                if addrs.is_empty() {
                    Err(format!("{host}: DNS returned no address"))
                } else {
                    Ok(addrs)
                }
            }
            // getaddrinfo's own words tell "Temporary failure in name resolution" (no name
            // server answered) from "Name or service not known" (the name does not exist).
            Err(e) => Err(format!("{host}: DNS: {}", lookup_text(&e))),
        }
    }
}

/// The resolver's message without std's generic prefix.
fn lookup_text(e: &std::io::Error) -> String {
    let text = e.to_string();
    text.strip_prefix("failed to lookup address information: ")
        .unwrap_or(&text)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn literals_never_go_to_dns_and_host_entries_come_first() {
        let r = Resolver {
            hosts: Vec::new(),
            dns: false,
        };
        assert_eq!(
            r.resolve("::1", 8182).unwrap(),
            [SocketAddr::from((Ipv6Addr::LOCALHOST, 8182))]
        );
        assert_eq!(
            r.resolve("127.0.0.1", 80).unwrap(),
            [SocketAddr::from((Ipv4Addr::LOCALHOST, 80))]
        );
        let e = r.resolve("cslu-local", 8182).unwrap_err();
        assert!(e.contains("no DNS server configured"), "{e}");
        let r = r
            .with_host("CSLU-local", &[IpAddr::V6(Ipv6Addr::LOCALHOST)])
            .with_host("cslu-local", &[IpAddr::V4(Ipv4Addr::LOCALHOST)]);
        assert_eq!(
            r.resolve("cslu-local", 8182).unwrap(),
            [
                SocketAddr::from((Ipv6Addr::LOCALHOST, 8182)),
                SocketAddr::from((Ipv4Addr::LOCALHOST, 8182))
            ]
        );
    }

    #[test]
    fn an_unknown_name_says_so() {
        let e = Resolver::system()
            .resolve("cslu-local.invalid", 8182)
            .unwrap_err();
        assert!(e.starts_with("cslu-local.invalid: DNS: "), "{e}");
    }
}
