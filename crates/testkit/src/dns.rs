//! A DNS server in the test process (hickory-server, UDP on loopback) answering for one zone,
//! whose TXT, A and CAA records a test sets (custom domains: the gateway's routing, `covenant
//! verify`).

// A fixture: a name or zone it cannot build is a bug in the test that asked, reported at once.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::{net::SocketAddr, sync::Arc};

use hickory_server::{
    Server,
    net::runtime::TokioRuntimeProvider,
    proto::rr::{
        Name, RData, Record,
        rdata::{A, CAA, SOA, TXT, caa::KeyValue},
    },
    store::in_memory::InMemoryZoneHandler,
    zone_handler::{AxfrPolicy, Catalog, ZoneType},
};

/// A running DNS server; it stops when dropped.
pub struct DnsServer {
    /// Where it answers (UDP).
    pub addr: SocketAddr,
    zone: Arc<InMemoryZoneHandler<TokioRuntimeProvider>>,
    _server: Server<Catalog>,
}

impl DnsServer {
    /// Serves `origin` (e.g. `example.test.`) with only an SOA record.
    pub async fn start(origin: &str) -> Self {
        let origin = Name::from_ascii(origin).unwrap();
        let zone = InMemoryZoneHandler::<TokioRuntimeProvider>::empty(
            origin.clone(),
            ZoneType::Primary,
            AxfrPolicy::Deny,
        );
        let soa = SOA::new(
            Name::from_ascii("ns.")
                .unwrap()
                .append_domain(&origin)
                .unwrap(),
            Name::from_ascii("admin.")
                .unwrap()
                .append_domain(&origin)
                .unwrap(),
            1,
            60,
            60,
            600,
            1,
        );
        assert!(
            zone.upsert(Record::from_rdata(origin.clone(), 1, RData::SOA(soa)), 1)
                .await
        );
        let zone = Arc::new(zone);
        let mut catalog = Catalog::new();
        catalog.upsert(origin.into(), vec![zone.clone()]);
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let mut server = Server::new(catalog);
        server.register_socket(socket);
        Self {
            addr,
            zone,
            _server: server,
        }
    }

    /// Adds a TXT record with `value` at `name` (fully qualified).
    pub async fn add_txt(&self, name: &str, value: &str) {
        let record = Record::from_rdata(
            Name::from_ascii(name).unwrap(),
            1,
            RData::TXT(TXT::new(vec![value.to_owned()])),
        );
        assert!(self.zone.upsert(record, 1).await);
    }

    /// Adds an A record at `name` (fully qualified) for `ip`.
    pub async fn add_a(&self, name: &str, ip: std::net::Ipv4Addr) {
        let record = Record::from_rdata(Name::from_ascii(name).unwrap(), 1, RData::A(A(ip)));
        assert!(self.zone.upsert(record, 1).await);
    }

    /// Adds a CAA `issue` record at `name` (fully qualified) letting the CA `issuer` (e.g.
    /// `ca.example`) issue certificates, only to ACME account `account` when one is given
    /// (RFC 8657 `accounturi`).
    pub async fn add_caa_issue(&self, name: &str, issuer: &str, account: Option<&str>) {
        let options = account
            .map(|a| vec![KeyValue::new("accounturi", a)])
            .unwrap_or_default();
        let caa = CAA::new_issue(false, Some(Name::from_ascii(issuer).unwrap()), options);
        let record = Record::from_rdata(Name::from_ascii(name).unwrap(), 1, RData::CAA(caa));
        assert!(self.zone.upsert(record, 1).await);
    }
}
