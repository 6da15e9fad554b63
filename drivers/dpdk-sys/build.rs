//! Finds the system DPDK with pkg-config, generates bindings with bindgen and compiles the C
//! shim (bindgen's wrappers of static inline functions plus `shim.c`) with the `cc` crate.

use std::env;
use std::path::PathBuf;
use std::process::Command;

/// Functions the safe layer calls. Static inline ones get a wrapper from bindgen's
/// `wrap_static_fns`, compiled below.
const FUNCTIONS: &[&str] = &[
    "rte_eal_init",
    "rte_eal_cleanup",
    "rte_lcore_id",
    "rte_socket_id",
    "rte_strerror",
    "rte_pktmbuf_pool_create",
    "rte_mempool_free",
    "rte_mempool_avail_count",
    "rte_mempool_in_use_count",
    "rte_pktmbuf_alloc",
    "rte_pktmbuf_free",
    "rte_pktmbuf_append",
    "rte_pktmbuf_reset",
    "rte_pktmbuf_data_room_size",
    "rte_pktmbuf_headroom",
    "rte_pktmbuf_tailroom",
    "rte_mbuf_refcnt_read",
    "rte_ring_create",
    "rte_ring_free",
    "rte_ring_count",
    "rte_eth_from_rings",
    "rte_vdev_init",
    "rte_vdev_uninit",
    "rte_eth_dev_count_avail",
    "rte_eth_dev_is_valid_port",
    "rte_eth_dev_get_port_by_name",
    "rte_eth_dev_socket_id",
    "rte_eth_dev_info_get",
    "rte_eth_dev_configure",
    "rte_eth_dev_adjust_nb_rx_tx_desc",
    "rte_eth_rx_queue_setup",
    "rte_eth_tx_queue_setup",
    "rte_eth_dev_start",
    "rte_eth_dev_stop",
    "rte_eth_dev_rx_intr_enable",
    "rte_eth_dev_rx_intr_disable",
    "rte_eth_dev_close",
    "rte_eth_macaddr_get",
    "rte_eth_dev_default_mac_addr_set",
    "rte_eth_dev_get_mtu",
    "rte_eth_dev_set_mtu",
    "rte_eth_link_get_nowait",
    "rte_eth_promiscuous_enable",
    "rte_eth_stats_get",
    "rte_eth_dev_rss_hash_conf_get",
    "rte_eth_dev_rss_hash_update",
    "rte_eth_dev_rss_reta_query",
    "rte_eth_rx_burst",
    "rte_eth_tx_burst",
    "shardnet_.*",
];

/// Constants the safe layer uses (`clang_macro_fallback` evaluates the `RTE_BIT64(..)` ones).
const VARS: &[&str] = &[
    "RTE_ETH_RX_OFFLOAD_.*",
    "RTE_ETH_TX_OFFLOAD_.*",
    "RTE_ETH_RSS_.*",
    "RTE_ETH_LINK_.*",
    "RTE_ETH_RETA_GROUP_SIZE",
    "RTE_MBUF_F_.*",
    "RTE_MAX_ETHPORTS",
    "RTE_ETHER_ADDR_LEN",
    "RTE_ETHER_MTU",
    "RING_F_.*",
    "SOCKET_ID_ANY",
    "LCORE_ID_ANY",
];

fn main() {
    println!("cargo:rerun-if-changed=wrapper.h");
    println!("cargo:rerun-if-changed=shim.h");
    println!("cargo:rerun-if-changed=shim.c");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");

    let library = match pkg_config::Config::new()
        .atleast_version("22.11")
        .probe("libdpdk")
    {
        Ok(library) => library,
        Err(e) => {
            eprintln!(
                "shardnet-dpdk-sys needs DPDK 22.11 or later found through pkg-config (`libdpdk`).\n\
                 On Debian/Ubuntu: apt-get install libdpdk-dev pkg-config libclang-dev\n\
                 pkg-config said: {e}"
            );
            std::process::exit(1);
        }
    };
    // The ring PMD's `rte_eth_from_rings` and the vdev bus are drivers, which libdpdk.pc
    // lists only for static linking: link them by name.
    println!("cargo:rustc-link-lib=rte_net_ring");
    println!("cargo:rustc-link-lib=rte_bus_vdev");

    // All of `pkg-config --cflags` (it includes `-include rte_config.h` and `-march=...`,
    // which the pkg_config crate does not expose).
    let cflags = Command::new(env::var("PKG_CONFIG").unwrap_or_else(|_| "pkg-config".into()))
        .args(["--cflags", "libdpdk"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let cflags: Vec<String> = cflags.split_whitespace().map(str::to_owned).collect();
    let mut clang_args: Vec<String> = Vec::new();
    let mut i = 0;
    while i < cflags.len() {
        // Keep "-include FILE" together.
        if cflags[i] == "-include" && i + 1 < cflags.len() {
            clang_args.push(cflags[i].clone());
            clang_args.push(cflags[i + 1].clone());
            i += 2;
            continue;
        }
        clang_args.push(cflags[i].clone());
        i += 1;
    }
    for path in &library.include_paths {
        clang_args.push(format!("-I{}", path.display()));
    }

    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let wrapper = manifest.join("wrapper.h");
    let extern_c = out.join("static_fns");

    let mut builder = bindgen::Builder::default()
        .header(wrapper.display().to_string())
        .clang_args(&clang_args)
        .clang_arg(format!("-I{}", manifest.display()))
        .wrap_static_fns(true)
        .wrap_static_fns_path(&extern_c)
        .clang_macro_fallback()
        .allowlist_recursively(true)
        // Known trouble on 22.11: packed bitfield unions bindgen lays out wrongly.
        .opaque_type("rte_l2tpv2_.*")
        .opaque_type("rte_gtp_psc_.*")
        .opaque_type("rte_arp_hdr")
        .opaque_type("rte_arp_ipv4")
        .derive_default(true)
        .layout_tests(false)
        .generate_comments(false)
        .prepend_enum_name(false)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()));
    for f in FUNCTIONS {
        builder = builder.allowlist_function(f);
    }
    for v in VARS {
        builder = builder.allowlist_var(v);
    }
    let bindings = match builder.generate() {
        Ok(b) => b,
        Err(e) => {
            eprintln!("bindgen failed on wrapper.h ({e}); is libclang-dev installed?");
            std::process::exit(1);
        }
    };
    bindings
        .write_to_file(out.join("bindings.rs"))
        .expect("OUT_DIR is writable");

    let mut build = cc::Build::new();
    build
        .file(extern_c.with_extension("c"))
        .file(manifest.join("shim.c"))
        .include(&manifest)
        .warnings(false);
    for path in &library.include_paths {
        build.include(path);
    }
    for flag in &clang_args {
        if !flag.starts_with("-I") {
            build.flag(flag);
        }
    }
    build.compile("shardnet_dpdk_shim");
}
