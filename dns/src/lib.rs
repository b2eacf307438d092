//! emu's cluster DNS server: what CoreDNS is in a kubeadm cluster, run as the pods of Deployment
//! `kube-system/coredns` behind Service `kube-system/kube-dns`.
//!
//! It watches Services, EndpointSlices and Namespaces through the controller ([`feed`]), keeps
//! them as a [`Catalog`] in memory, and answers the Kubernetes DNS specification as CoreDNS's
//! `kubernetes` plugin does with the kubeadm Corefile (`pods insecure`, `ttl 30`,
//! `loadbalance`): see [`answer`] for the records, NXDOMAIN vs NODATA and TTLs.
//!
//! The decisions are pure functions without I/O: [`catalog`] (objects → what DNS knows) and
//! [`answer`] (catalog + question → response), unit-tested rule by rule. They live here rather
//! than in `emu-logic` because they are written in hickory's record types. [`server`] and
//! [`feed`] are the edges: sockets, and the watch on the controller.
//!
//! # Names outside the cluster
//!
//! CoreDNS forwards every other name to the node's resolvers. emu has no upstream: the
//! emulated cluster has no route to the internet, and a DNS pod whose resolver is the cluster
//! DNS itself would forward into a loop. So a name outside the cluster domain, and a reverse
//! name of an address that is neither a ClusterIP nor an endpoint, gets an immediate
//! **NXDOMAIN** without the AA and RA flags and without an SOA. NXDOMAIN rather than SERVFAIL:
//! glibc and musl go on through the `ndots:5` search list after an NXDOMAIN and report "name not
//! known" at the end, as for a name that does not exist anywhere; a SERVFAIL would make glibc
//! return `EAI_AGAIN` ("temporary failure") and retry, which is slower and misleading.
//!
//! An ExternalName Service is answered with its CNAME alone, except that a target inside the
//! cluster domain is followed (CoreDNS would resolve it through itself the same way).
//!
//! # Running it
//!
//! As a binary: `emu-dns --socket /var/run/emu/api.sock [--listen 0.0.0.0:53]
//! [--metrics 0.0.0.0:9153] [--cluster-domain cluster.local]`. From another crate:
//!
//! ```no_run
//! # async fn run() -> anyhow::Result<()> {
//! use emu_dns::{Catalog, CatalogConfig, DnsServer, ServerOptions, SharedCatalog};
//! use std::sync::Arc;
//! let config = CatalogConfig::default();
//! let catalog = Arc::new(SharedCatalog::new(Catalog::unsynced(config.clone())));
//! tokio::spawn(emu_dns::feed::follow_controller("/var/run/emu/api.sock".into(), config, catalog.clone()));
//! let server = DnsServer::bind(&ServerOptions::default(), catalog).await?;
//! server.run().await?;
//! # Ok(()) }
//! ```

pub mod answer;
pub mod catalog;
pub mod feed;
pub mod http;
pub mod metrics;
pub mod names;
pub mod server;
mod udp_batch;

pub use answer::{answer, shuffle_addresses, Response};
pub use catalog::{Catalog, CatalogConfig, PodRecords};
pub use server::{BoundAddrs, DnsServer, ServerError, ServerOptions, SharedCatalog};
