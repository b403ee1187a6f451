//! Where cache misses go: hickory's recursor (iteration from root hints) or its stub resolver
//! (forwarding), both validating DNSSEC when asked; their results as a [`Resolved`].

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use hickory_proto::dnssec::{Proof, TrustAnchors};
use hickory_proto::op::{Query, ResponseCode};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_recursor::{DnssecPolicy, Recursor};
use hickory_resolver::config::{
    NameServerConfig, NameServerConfigGroup, ResolverConfig as StubConfig, ResolverOpts,
};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::{ResolveError, TokioResolver};

use super::ResolverConfig;
use super::cache::{Resolved, Security};

/// CNAME links followed after the first answer (as Unbound's default max chain of 8 or so).
const MAX_CNAME_LINKS: usize = 8;

/// The library that resolves misses.
pub enum Upstream {
    /// Iterates from the root hints: bailiwick filtering, random IDs, source ports and 0x20 case.
    Recursor {
        recursor: Recursor,
        validating: bool,
    },
    /// Asks the forwarders with RD set.
    Forwarder {
        resolver: TokioResolver,
        validating: bool,
    },
}

impl Upstream {
    /// From the section: forwarders if any are given, else the root hints.
    pub fn new(config: &ResolverConfig) -> Result<Upstream> {
        let anchors = match &config.trust_anchor {
            Some(path) => Some(Arc::new(
                TrustAnchors::from_file(path)
                    .with_context(|| format!("reading the trust anchor {}", path.display()))?,
            )),
            None => None,
        };
        if !config.forwarders.is_empty() {
            let mut group = NameServerConfigGroup::new();
            for addr in &config.forwarders {
                for protocol in [
                    hickory_proto::xfer::Protocol::Udp,
                    hickory_proto::xfer::Protocol::Tcp,
                ] {
                    group.push(NameServerConfig::new(*addr, protocol));
                }
            }
            let mut opts = ResolverOpts::default();
            opts.validate = config.dnssec;
            opts.edns0 = true;
            opts.timeout = config.timeout();
            opts.preserve_intermediates = true;
            let mut builder = TokioResolver::builder_with_config(
                StubConfig::from_parts(None, vec![], group),
                TokioConnectionProvider::default(),
            )
            .with_options(opts);
            // (ResolverOpts::trust_anchor, a path, is not read by the builder in 0.25.)
            if let Some(anchors) = anchors {
                builder = builder.with_trust_anchor(anchors);
            }
            let resolver = builder.build();
            return Ok(Upstream::Forwarder {
                resolver,
                validating: config.dnssec,
            });
        }
        let policy = if config.dnssec {
            DnssecPolicy::ValidateWithStaticKey {
                trust_anchor: anchors,
            }
        } else {
            DnssecPolicy::SecurityUnaware
        };
        let recursor = Recursor::builder()
            .dnssec_policy(policy)
            .case_randomization(true)
            .build(NameServerConfigGroup::from_ips_clear(
                &config.root_hints,
                53,
                true,
            ))
            .context("starting the recursor")?;
        Ok(Upstream::Recursor {
            recursor,
            validating: config.dnssec,
        })
    }

    /// Resolves one question, following CNAMEs (the recursor gives the first link of a chain
    /// only); failures (timeouts, unreachable servers) are SERVFAIL.
    pub async fn resolve(&self, name: Name, qtype: RecordType, dnssec_ok: bool) -> Resolved {
        let mut whole = self.resolve_once(name.clone(), qtype, dnssec_ok).await;
        whole.answer = in_chain_order(std::mem::take(&mut whole.answer), &name);
        for _ in 0..MAX_CNAME_LINKS {
            let Some(target) = dangling_cname(&whole, qtype) else {
                break;
            };
            let next = self.resolve_once(target, qtype, dnssec_ok).await;
            if next.rcode == ResponseCode::ServFail {
                return next;
            }
            whole.rcode = next.rcode;
            whole.security = worst(whole.security, next.security);
            whole.answer.extend(next.answer);
            whole.authority = next.authority;
        }
        whole
    }

    async fn resolve_once(&self, name: Name, qtype: RecordType, dnssec_ok: bool) -> Resolved {
        match self {
            Upstream::Recursor {
                recursor,
                validating,
            } => {
                let query = Query::query(name, qtype);
                match recursor.resolve(query, Instant::now(), dnssec_ok).await {
                    Ok(lookup) => positive(lookup.records(), *validating),
                    Err(e) if e.is_nx_domain() || e.is_no_records_found() => {
                        let rcode = if e.is_nx_domain() {
                            ResponseCode::NXDomain
                        } else {
                            ResponseCode::NoError
                        };
                        let soa = e.clone().into_soa().map(|s| s.into_record_of_rdata());
                        negative(rcode, soa, e.authorities(), *validating)
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "recursion failed");
                        Resolved::failure()
                    }
                }
            }
            Upstream::Forwarder {
                resolver,
                validating,
            } => match resolver.lookup(name, qtype).await {
                Ok(lookup) => positive(lookup.records(), *validating),
                Err(e) => forwarded_error(e, *validating),
            },
        }
    }

    /// For the log at start.
    pub fn describe(&self) -> &'static str {
        match self {
            Upstream::Recursor { .. } => "recursion from the root hints",
            Upstream::Forwarder { .. } => "forwarding",
        }
    }
}

/// The target of a CNAME ending the answer without the asked type at it, if any.
fn dangling_cname(r: &Resolved, qtype: RecordType) -> Option<Name> {
    if r.rcode != ResponseCode::NoError || matches!(qtype, RecordType::CNAME | RecordType::ANY) {
        return None;
    }
    let mut target = None;
    for rec in &r.answer {
        if let RData::CNAME(t) = rec.data() {
            target = Some(t.0.clone());
        }
    }
    let target = target?;
    let answered = r
        .answer
        .iter()
        .any(|rec| rec.record_type() != RecordType::RRSIG && rec.name() == &target);
    (!answered).then_some(target)
}

/// The answer records in the order of the chain from `qname` (RFC 1034 §4.3.2: each CNAME
/// before its target's records); the forwarder's lookup gives them in any order.
fn in_chain_order(mut records: Vec<Record>, qname: &Name) -> Vec<Record> {
    let mut ordered = Vec::with_capacity(records.len());
    let mut owner = qname.clone();
    for _ in 0..=MAX_CNAME_LINKS {
        let (here, rest): (Vec<Record>, Vec<Record>) =
            records.into_iter().partition(|r| r.name() == &owner);
        records = rest;
        let next = here.iter().find_map(|r| match r.data() {
            RData::CNAME(t) => Some(t.0.clone()),
            _ => None,
        });
        ordered.extend(here);
        match next {
            Some(target) => owner = target,
            None => break,
        }
    }
    ordered.extend(records);
    ordered
}

/// The weaker of two parts' security: an answer is only as secure as every part of it.
fn worst(a: Security, b: Security) -> Security {
    match (a, b) {
        (Security::Bogus, _) | (_, Security::Bogus) => Security::Bogus,
        (Security::Secure, Security::Secure) => Security::Secure,
        _ => Security::Insecure,
    }
}

fn forwarded_error(e: ResolveError, validating: bool) -> Resolved {
    if e.is_nx_domain() || e.is_no_records_found() {
        let rcode = if e.is_nx_domain() {
            ResponseCode::NXDomain
        } else {
            ResponseCode::NoError
        };
        let authorities = match e.proto().map(|p| p.kind()) {
            Some(hickory_proto::ProtoErrorKind::NoRecordsFound { authorities, .. }) => {
                authorities.clone()
            }
            _ => None,
        };
        let soa = e.into_soa().map(|s| s.into_record_of_rdata());
        return negative(rcode, soa, authorities, validating);
    }
    tracing::debug!(error = %e, "forwarding failed");
    Resolved::failure()
}

/// Records found: secure only if every one was proven so.
fn positive(records: &[Record], validating: bool) -> Resolved {
    Resolved {
        rcode: ResponseCode::NoError,
        answer: records.to_vec(),
        authority: Vec::new(),
        security: security(records.iter(), validating),
    }
}

/// NXDOMAIN or NODATA: the SOA (and the denial's NSEC records) in the authority section.
fn negative(
    rcode: ResponseCode,
    soa: Option<Record>,
    authorities: Option<Arc<[Record]>>,
    validating: bool,
) -> Resolved {
    let mut authority: Vec<Record> = soa.into_iter().collect();
    for r in authorities.iter().flat_map(|a| a.iter()) {
        if r.record_type() != RecordType::SOA {
            authority.push(r.clone());
        }
    }
    Resolved {
        rcode,
        security: security(authority.iter(), validating),
        answer: Vec::new(),
        authority,
    }
}

fn security<'a>(
    mut records: impl Iterator<Item = &'a Record> + Clone,
    validating: bool,
) -> Security {
    if !validating {
        return Security::Insecure;
    }
    if records.clone().any(|r| r.proof() == Proof::Bogus) {
        Security::Bogus
    } else if records.clone().next().is_some() && records.all(|r| r.proof() == Proof::Secure) {
        Security::Secure
    } else {
        Security::Insecure
    }
}
