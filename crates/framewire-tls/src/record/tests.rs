use rustls::ConnectionTrafficSecrets;
use rustls::crypto::cipher::{AeadKey, Iv};

use super::*;

fn secrets(k: u8, chacha: bool) -> ConnectionTrafficSecrets {
    let key = AeadKey::from([k; 32]);
    let iv = Iv::from([k.wrapping_add(1); 12]);
    if chacha {
        ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv }
    } else {
        ConnectionTrafficSecrets::Aes256Gcm { key, iv }
    }
}

fn pair(chacha: bool) -> (Protection, Protection) {
    let s = secrets(7, chacha);
    (Protection::new(&s, 0).unwrap(), Protection::new(&s, 0).unwrap())
}

/// Opens every whole record of `wire`: (content type, plaintext) each.
fn open_all(rx: &mut Protection, wire: &mut [u8]) -> Result<Vec<(u8, Vec<u8>)>, RecordError> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(len) = complete_record(&wire[at..])? {
        let (typ, r) = rx.open(&mut wire[at..at + len])?;
        out.push((typ, wire[at + r.start..at + r.end].to_vec()));
        at += len;
    }
    assert_eq!(at, wire.len(), "a partial record was left");
    Ok(out)
}

#[test]
fn records_sealed_are_opened_in_order_with_their_content_types() {
    for chacha in [false, true] {
        let (mut tx, mut rx) = pair(chacha);
        let big: Vec<u8> = (0..MAX_PLAINTEXT).map(|i| (i * 31) as u8).collect();
        let mut wire = Vec::new();
        tx.seal(b"hello", APPLICATION_DATA, &mut wire).unwrap();
        tx.seal(&big, APPLICATION_DATA, &mut wire).unwrap();
        tx.seal(&key_update(false), HANDSHAKE, &mut wire).unwrap();
        tx.seal(b"", APPLICATION_DATA, &mut wire).unwrap();
        assert_eq!(wire.len(), 5 + MAX_PLAINTEXT + 5 + 4 * OVERHEAD);
        // The plaintext is not on the wire.
        assert!(!wire.windows(5).any(|w| w == b"hello"));
        assert_eq!(&wire[..3], &[APPLICATION_DATA, 3, 3]);
        let got = open_all(&mut rx, &mut wire).unwrap();
        assert_eq!(
            got,
            vec![
                (APPLICATION_DATA, b"hello".to_vec()),
                (APPLICATION_DATA, big.clone()),
                (HANDSHAKE, key_update(false).to_vec()),
                (APPLICATION_DATA, Vec::new()),
            ]
        );
        assert_eq!((tx.seq(), rx.seq()), (4, 4));
    }
}

#[test]
fn an_altered_or_replayed_or_foreign_record_is_refused() {
    let (mut tx, mut rx) = pair(false);
    let mut one = Vec::new();
    tx.seal(b"frame bytes", APPLICATION_DATA, &mut one).unwrap();
    // A flipped bit anywhere in the body (or the header, which is the
    // additional data) fails the tag.
    for i in 1..one.len() {
        let mut w = one.clone();
        w[i] ^= 0x20;
        let mut rx = pair(false).1;
        let r = complete_record(&w).and_then(|l| match l {
            Some(l) if l == w.len() => rx.open(&mut w).map(|_| ()),
            _ => Err(RecordError::BadRecord),
        });
        assert!(r.is_err(), "flipping byte {i} went unnoticed");
    }
    // The same record twice: the second is under the next sequence number.
    let mut a = one.clone();
    rx.open(&mut a).unwrap();
    let mut b = one.clone();
    assert_eq!(rx.open(&mut b), Err(RecordError::BadRecord));
    // Another key.
    let mut other = Protection::new(&secrets(9, false), 0).unwrap();
    let mut c = one.clone();
    assert_eq!(other.open(&mut c), Err(RecordError::BadRecord));
}

#[test]
fn padding_is_stripped_and_all_padding_refused() {
    // A peer may pad the inner plaintext with zeros after the content type.
    let s = secrets(3, false);
    let mut tx = Protection::new(&s, 0).unwrap();
    let mut rx = Protection::new(&s, 0).unwrap();
    let mut wire = Vec::new();
    // Sealed as application data "ab" followed by three zeros of padding,
    // whose last non-zero byte is the type: seal the bytes with type 0.
    tx.seal(&[b'a', b'b', APPLICATION_DATA, 0, 0], 0, &mut wire).unwrap();
    let (typ, r) = rx.open(&mut wire).unwrap();
    assert_eq!((typ, &wire[r]), (APPLICATION_DATA, &b"ab"[..]));
    let mut wire = Vec::new();
    tx.seal(&[0, 0], 0, &mut wire).unwrap();
    assert_eq!(rx.open(&mut wire), Err(RecordError::NoContentType));
}

#[test]
fn record_framing_waits_for_whole_records_and_refuses_bad_headers() {
    assert_eq!(complete_record(&[23, 3, 3]), Ok(None));
    assert_eq!(complete_record(&[23, 3, 3, 0, 40, 1, 2]), Ok(None));
    let mut r = vec![23, 3, 3, 0, 17];
    r.extend([0; 17]);
    assert_eq!(complete_record(&r), Ok(Some(22)));
    r.push(9);
    assert_eq!(complete_record(&r), Ok(Some(22)));
    assert_eq!(complete_record(&[22, 3, 3, 0, 17]), Err(RecordError::NotProtected(22)));
    let over = (MAX_BODY + 1) as u16;
    assert_eq!(
        complete_record(&[23, 3, 3, (over >> 8) as u8, over as u8]),
        Err(RecordError::Oversized(MAX_BODY + 1))
    );
    assert_eq!(complete_record(&[23, 3, 3, 0, 16]), Err(RecordError::BadRecord));
}

#[test]
fn handshake_messages_after_the_handshake() {
    // A ticket (type 4) is let go; key updates are read with their flag.
    let mut msgs = vec![4, 0, 0, 3, 9, 9, 9];
    msgs.extend(key_update(true));
    msgs.extend(key_update(false));
    assert_eq!(
        post_handshake(&msgs),
        Ok(vec![
            PostHandshake::Nothing,
            PostHandshake::KeyUpdate(true),
            PostHandshake::KeyUpdate(false)
        ])
    );
    assert_eq!(post_handshake(&[24, 0, 0, 1, 2]), Err(RecordError::BadRecord));
    assert_eq!(post_handshake(&[4, 0, 0, 9, 1]), Err(RecordError::BadRecord));
    assert_eq!(post_handshake(&[4, 0]), Err(RecordError::BadRecord));
}

#[test]
fn a_record_opened_into_another_buffer_is_the_same_as_in_place() {
    let (mut tx, mut rx) = pair(false);
    let (_, mut rx2) = pair(false);
    let data: Vec<u8> = (0..5000u32).map(|i| (i * 7) as u8).collect();
    let mut wire = Vec::new();
    tx.seal(&data, APPLICATION_DATA, &mut wire).unwrap();
    let mut out = vec![0xaa; data.len() + 1];
    assert_eq!(rx.open_into(&wire, &mut out), Ok((APPLICATION_DATA, data.len())));
    assert_eq!(&out[..data.len()], &data[..]);
    let (typ, r) = rx2.open(&mut wire.clone()).unwrap();
    assert_eq!((typ, r.len()), (APPLICATION_DATA, data.len()));
    // The wrong length of `out`, or an altered record: refused.
    let mut again = Vec::new();
    tx.seal(&data, APPLICATION_DATA, &mut again).unwrap();
    assert_eq!(rx.open_into(&again, &mut out[..10]), Err(RecordError::BadRecord));
    let mut tx3 = pair(false).0;
    let mut rx3 = pair(false).1;
    let mut w = Vec::new();
    tx3.seal(&data, APPLICATION_DATA, &mut w).unwrap();
    w[100] ^= 1;
    assert_eq!(rx3.open_into(&w, &mut out), Err(RecordError::BadRecord));
}
