//! decode → encode → decode: a packet the decoder accepts is re-encoded from its attributes
//! (as a test client would) and must decode to the same attributes; the server's reply to it
//! must decode and echo its Proxy-States in order, or fail with an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use radiusd::packet::{
    attr, encode_request, encode_response_to, Packet, ResponseCode,
};

const SECRET: &[u8] = b"fuzz-secret";

fuzz_target!(|data: &[u8]| {
    let Ok(p) = Packet::parse(data) else { return };
    let attrs: Vec<(u8, &[u8])> = p
        .attributes()
        .filter(|a| a.attr_type != attr::MESSAGE_AUTHENTICATOR)
        .map(|a| (a.attr_type, a.value))
        .collect();
    let ma = p.has_message_authenticator().then_some(SECRET);
    let bytes = encode_request(p.code(), p.identifier(), p.authenticator(), &attrs, ma)
        .expect("what was decoded can be encoded");
    let again = Packet::parse(&bytes).expect("what was encoded decodes");
    let attrs2: Vec<(u8, &[u8])> = again
        .attributes()
        .filter(|a| a.attr_type != attr::MESSAGE_AUTHENTICATOR)
        .map(|a| (a.attr_type, a.value))
        .collect();
    assert_eq!(attrs, attrs2);
    assert_eq!(p.has_message_authenticator(), again.has_message_authenticator());
    assert_eq!((p.code(), p.identifier()), (again.code(), again.identifier()));

    for code in [ResponseCode::AccessAccept, ResponseCode::AccessReject] {
        let message: &[u8] = b"Authentication failed";
        let reply = [(attr::REPLY_MESSAGE, message)];
        let Ok(out) = encode_response_to(&p, code, &reply, SECRET) else { continue };
        let r = Packet::parse_response(&out).expect("a reply we encode decodes");
        assert!(r.proxy_states().eq(p.proxy_states()));
        assert_eq!(r.identifier(), p.identifier());
    }
});
