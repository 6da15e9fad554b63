//! The EAL, initialised once for the whole test binary (DPDK allows one init per process).

use shardnet_dpdk::Eal;
use std::sync::OnceLock;

pub fn eal() -> &'static Eal {
    static EAL: OnceLock<&'static Eal> = OnceLock::new();
    EAL.get_or_init(|| match Eal::init(&Eal::default_args()) {
        Ok(eal) => eal,
        Err(e) => panic!("EAL init with {:?}: {e}", Eal::default_args()),
    })
}
