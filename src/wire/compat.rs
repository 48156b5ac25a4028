//! Protocol v2 compatibility: packing the 4-byte ids and the message id into UUIDs.
//!
//! v2 runners identified requests and messages by 16-byte UUIDs. Rivet's pegboard-runner converts
//! by placing up to 14 bytes of data into a version-4 UUID, skipping the version byte (6, forced to
//! `0x40`) and the variant byte (8, forced to `0x80`):
//!
//! | UUID byte | 0..=5       | 6      | 7         | 8      | 9..=15       |
//! |-----------|-------------|--------|-----------|--------|--------------|
//! | content   | `data[0..6]`| `0x40` | `data[6]` | `0x80` | `data[7..14]`|
//!
//! Missing data bytes are zero. A v2 request id packs `gateway_id ‖ request_id` (8 bytes); a v2
//! message id packs `gateway_id ‖ request_id ‖ message_index (u16 LE)` (10 bytes).

use uuid::Uuid;

use super::types::{GatewayId, MessageId, RequestId};
use crate::index::MessageIndex;

/// Most data bytes a packed UUID can carry.
pub const MAX_PACKED_BYTES: usize = 14;

/// Packs up to 14 bytes into a version-4 UUID; returns `None` for longer input.
#[must_use]
pub fn pack_bytes(data: &[u8]) -> Option<Uuid> {
    if data.len() > MAX_PACKED_BYTES {
        return None;
    }
    let mut out = [0u8; 16];
    let mut src = data.iter().copied();
    for (pos, slot) in out.iter_mut().enumerate() {
        *slot = match pos {
            6 => 0x40,
            8 => 0x80,
            _ => src.next().unwrap_or(0),
        };
    }
    Some(Uuid::from_bytes(out))
}

/// The 14 data bytes of a packed UUID (the version and variant bytes are skipped).
#[must_use]
pub fn unpack_bytes(uuid: &Uuid) -> [u8; MAX_PACKED_BYTES] {
    let b = uuid.as_bytes();
    let mut out = [0u8; MAX_PACKED_BYTES];
    let data = b
        .iter()
        .enumerate()
        .filter(|(pos, _)| *pos != 6 && *pos != 8)
        .map(|(_, v)| *v);
    for (slot, v) in out.iter_mut().zip(data) {
        *slot = v;
    }
    out
}

/// The v2 request UUID of `(gateway_id, request_id)`.
#[must_use]
pub fn request_uuid(gateway_id: GatewayId, request_id: RequestId) -> Uuid {
    let mut data = [0u8; 8];
    data[..4].copy_from_slice(&gateway_id.0);
    data[4..].copy_from_slice(&request_id.0);
    packed(&data)
}

/// The `(gateway_id, request_id)` packed in a v2 request UUID.
#[must_use]
pub fn request_from_uuid(uuid: &Uuid) -> (GatewayId, RequestId) {
    let d = unpack_bytes(uuid);
    (
        GatewayId([d[0], d[1], d[2], d[3]]),
        RequestId([d[4], d[5], d[6], d[7]]),
    )
}

/// The v2 message UUID of a v7 [`MessageId`].
#[must_use]
pub fn message_uuid(id: &MessageId) -> Uuid {
    let mut data = [0u8; 10];
    data[..4].copy_from_slice(&id.gateway_id.0);
    data[4..8].copy_from_slice(&id.request_id.0);
    data[8..].copy_from_slice(&id.message_index.get().to_le_bytes());
    packed(&data)
}

/// The v7 [`MessageId`] packed in a v2 message UUID.
#[must_use]
pub fn message_id_from_uuid(uuid: &Uuid) -> MessageId {
    let d = unpack_bytes(uuid);
    MessageId {
        gateway_id: GatewayId([d[0], d[1], d[2], d[3]]),
        request_id: RequestId([d[4], d[5], d[6], d[7]]),
        message_index: MessageIndex::new(u16::from_le_bytes([d[8], d[9]])),
    }
}

fn packed<const N: usize>(data: &[u8; N]) -> Uuid {
    const { assert!(N <= MAX_PACKED_BYTES) };
    // N ≤ 14 is checked at compile time above, so packing cannot fail.
    pack_bytes(data).unwrap_or_else(Uuid::nil)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn layout_matches_upstream_table() {
        let data: [u8; 14] = core::array::from_fn(|i| 0xA0 + u8::try_from(i).unwrap());
        let u = pack_bytes(&data).unwrap();
        let b = u.as_bytes();
        assert_eq!(&b[..6], &data[..6]);
        assert_eq!(b[6], 0x40);
        assert_eq!(b[7], data[6]);
        assert_eq!(b[8], 0x80);
        assert_eq!(&b[9..], &data[7..]);
        assert_eq!(u.get_version_num(), 4);
        assert_eq!(u.get_variant(), uuid::Variant::RFC4122);
        assert_eq!(unpack_bytes(&u), data);
    }

    #[test]
    fn short_input_is_zero_padded_and_long_input_refused() {
        let u = pack_bytes(&[0xAA, 0xBB, 0xCC]).unwrap();
        assert_eq!(
            u.as_bytes(),
            &[
                0xAA, 0xBB, 0xCC, 0, 0, 0, 0x40, 0, 0x80, 0, 0, 0, 0, 0, 0, 0
            ]
        );
        assert!(pack_bytes(&[0; 15]).is_none());
        assert_eq!(pack_bytes(&[]).unwrap().get_version_num(), 4);
    }

    #[test]
    fn message_id_packing_is_le_index() {
        let id = MessageId {
            gateway_id: GatewayId([1, 2, 3, 4]),
            request_id: RequestId([5, 6, 7, 8]),
            message_index: MessageIndex::new(0x0A09),
        };
        let u = message_uuid(&id);
        assert_eq!(
            u.as_bytes(),
            &[1, 2, 3, 4, 5, 6, 0x40, 7, 0x80, 8, 9, 0x0A, 0, 0, 0, 0]
        );
        assert_eq!(message_id_from_uuid(&u), id);
    }

    proptest! {
        #[test]
        fn round_trips(g: [u8; 4], r: [u8; 4], i: u16) {
            let id = MessageId { gateway_id: GatewayId(g), request_id: RequestId(r), message_index: MessageIndex::new(i) };
            prop_assert_eq!(message_id_from_uuid(&message_uuid(&id)), id);
            prop_assert_eq!(request_from_uuid(&request_uuid(GatewayId(g), RequestId(r))), (GatewayId(g), RequestId(r)));
        }

        #[test]
        fn pack_unpack(data in proptest::collection::vec(any::<u8>(), 0..=14)) {
            let u = pack_bytes(&data).unwrap();
            let back = unpack_bytes(&u);
            prop_assert_eq!(&back[..data.len()], &data[..]);
            prop_assert!(back[data.len()..].iter().all(|b| *b == 0));
        }
    }
}
