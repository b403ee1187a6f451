//! The slow path: UDP (SO_REUSEPORT workers) and TCP authoritative server.
use std::{net::SocketAddr, sync::Arc};

use crate::zone::Catalog;

pub struct Server;
pub struct ServerHandle;

impl Server {
    pub fn start(_listen: &[SocketAddr], _catalog: Arc<Catalog>) -> anyhow::Result<ServerHandle> {
        todo!()
    }
}

impl ServerHandle {
    pub fn replace_catalog(&self, _catalog: Arc<Catalog>) {}
    pub fn stop(self) {}
}
