//! On the host: opening kernel IPVS either works or says plainly that there is none.

use lvslab_ipvs_nl::{Error, KernelIpvs};

#[test]
fn opening_matches_what_proc_says_about_ipvs() {
    let has_ipvs = std::path::Path::new("/proc/net/ip_vs").exists();
    match KernelIpvs::open() {
        Ok(mut k) => {
            assert!(
                has_ipvs,
                "the IPVS family answered but /proc/net/ip_vs is missing"
            );
            let info = k.info().expect("IPVS_CMD_GET_INFO");
            assert!(info.conn_tab_size > 0, "{info:?}");
        }
        Err(Error::NoIpvs) => {
            assert!(
                !has_ipvs,
                "/proc/net/ip_vs exists but the family was not found"
            );
            let msg = Error::NoIpvs.to_string();
            assert!(msg.contains("help:"), "{msg}");
        }
        Err(e) => panic!("neither IPVS nor a clear refusal: {e}"),
    }
}
