//! The RADIUS decoder on arbitrary datagrams: never a panic, and every accepted packet keeps
//! the invariants the server relies on.
#![no_main]

use libfuzzer_sys::fuzz_target;
use radiusd::packet::{Packet, HEADER_LEN, MAX_ATTRIBUTES, MAX_PACKET_LEN};

fuzz_target!(|data: &[u8]| {
    for parsed in [Packet::parse(data), Packet::parse_response(data)] {
        let Ok(p) = parsed else { continue };
        assert!(p.raw().len() >= HEADER_LEN && p.raw().len() <= MAX_PACKET_LEN);
        assert!(data.starts_with(p.raw()));
        assert!(p.attribute_count() <= MAX_ATTRIBUTES);
        let mut covered = HEADER_LEN;
        for a in p.attributes() {
            assert_eq!(a.offset, covered, "attributes are contiguous");
            assert!(!a.value.is_empty(), "no empty attribute is accepted");
            covered += a.value.len() + 2;
        }
        assert_eq!(covered, p.raw().len(), "attributes fill the packet");
        let _ = (p.user_name(), p.user_password(), p.state(), p.proxy_states().count());
        if let Some(at) = p.message_authenticator_offset() {
            assert!(at + 16 <= p.raw().len());
        }
        let _ = format!("{p:?}");
    }
});
