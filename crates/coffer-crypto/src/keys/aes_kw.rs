//! AES key wrap (RFC 3394, the KW of NIST SP 800-38F) on aws-lc's AES block operation.
//!
//! aws-lc-rs wraps with 128- and 256-bit keys only, so A192KW runs here; A128KW and A256KW use
//! aws-lc's own wrap, and the tests check this code against it for those sizes and against
//! RFC 3394 §4 for all three. The block operation is aws-lc's AES in ECB mode on one 16-byte
//! block at a time, which is exactly the cipher function W and W⁻¹ are defined over.
//!
//! Every buffer that holds key data (the registers R and each block) is wiped on drop, and the
//! integrity check value is compared in constant time.

use aws_lc_rs::cipher::{self, DecryptingKey, DecryptionContext, EncryptingKey, UnboundCipherKey};
use aws_lc_rs::error::Unspecified;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// The default initial value of RFC 3394 §2.2.3.1.
const IV: [u8; 8] = [0xa6; 8];
const HALF: usize = 8;
/// The shortest key data: two 64-bit blocks (RFC 3394 §2).
pub(super) const MIN_KEY_DATA: usize = 16;

/// Wraps `key_data` (a multiple of 8 bytes, at least 16) under `kek`.
pub(super) fn wrap(
    cipher: &'static cipher::Algorithm,
    kek: &[u8],
    key_data: &[u8],
) -> Result<Vec<u8>, Unspecified> {
    if key_data.len() < MIN_KEY_DATA || !key_data.len().is_multiple_of(HALF) {
        return Err(Unspecified);
    }
    let aes = EncryptingKey::ecb(UnboundCipherKey::new(cipher, kek)?)?;
    let n = u64::try_from(key_data.len() / HALF).map_err(|_| Unspecified)?;
    let mut a = IV;
    let mut r = Zeroizing::new(key_data.to_vec());
    let mut block = Zeroizing::new([0u8; 2 * HALF]);
    for j in 0..6u64 {
        for (i, r_i) in (1u64..).zip(r.chunks_exact_mut(HALF)) {
            // B = AES(K, A | R[i]); A = MSB(64, B) ^ t where t = (n*j)+i; R[i] = LSB(64, B)
            let (b_hi, b_lo) = block.split_at_mut(HALF);
            b_hi.copy_from_slice(&a);
            b_lo.copy_from_slice(r_i);
            aes.encrypt(&mut block[..])?;
            let t = (n * j + i).to_be_bytes();
            let (b_hi, b_lo) = block.split_at(HALF);
            for ((a_k, b_k), t_k) in a.iter_mut().zip(b_hi).zip(t) {
                *a_k = b_k ^ t_k;
            }
            r_i.copy_from_slice(b_lo);
        }
    }
    let mut out = Vec::with_capacity(HALF + r.len());
    out.extend_from_slice(&a);
    out.extend_from_slice(&r);
    Ok(out)
}

/// Unwraps what [`wrap`] made; fails on a wrong length or a failed integrity check.
pub(super) fn unwrap(
    cipher: &'static cipher::Algorithm,
    kek: &[u8],
    wrapped: &[u8],
) -> Result<Zeroizing<Vec<u8>>, Unspecified> {
    if wrapped.len() < HALF + MIN_KEY_DATA || !wrapped.len().is_multiple_of(HALF) {
        return Err(Unspecified);
    }
    let aes = DecryptingKey::ecb(UnboundCipherKey::new(cipher, kek)?)?;
    let (c0, rest) = wrapped.split_at(HALF);
    let n = u64::try_from(rest.len() / HALF).map_err(|_| Unspecified)?;
    let mut a = Zeroizing::new([0u8; HALF]);
    a.copy_from_slice(c0);
    let mut r = Zeroizing::new(rest.to_vec());
    let mut block = Zeroizing::new([0u8; 2 * HALF]);
    for j in (0..6u64).rev() {
        for (i, r_i) in (1u64..=n).rev().zip(r.chunks_exact_mut(HALF).rev()) {
            // B = AES-1(K, (A ^ t) | R[i]) where t = n*j+i; A = MSB(64, B); R[i] = LSB(64, B)
            let t = (n * j + i).to_be_bytes();
            let (b_hi, b_lo) = block.split_at_mut(HALF);
            for ((b_k, a_k), t_k) in b_hi.iter_mut().zip(a.iter()).zip(t) {
                *b_k = a_k ^ t_k;
            }
            b_lo.copy_from_slice(r_i);
            aes.decrypt(&mut block[..], DecryptionContext::None)?;
            let (b_hi, b_lo) = block.split_at(HALF);
            a.copy_from_slice(b_hi);
            r_i.copy_from_slice(b_lo);
        }
    }
    if bool::from(a[..].ct_eq(&IV[..])) {
        Ok(r)
    } else {
        Err(Unspecified)
    }
}

#[cfg(test)]
mod tests {
    use aws_lc_rs::key_wrap::{self, AesKek, KeyWrap};

    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn cipher_for(kek: &[u8]) -> &'static cipher::Algorithm {
        match kek.len() {
            16 => &cipher::AES_128,
            24 => &cipher::AES_192,
            _ => &cipher::AES_256,
        }
    }

    /// RFC 3394 §4.1–4.6: every KEK size with every key data size it defines.
    #[test]
    fn rfc3394_vectors() {
        let kek = hex("000102030405060708090A0B0C0D0E0F1011121314151617 18191A1B1C1D1E1F");
        let data = hex("00112233445566778899AABBCCDDEEFF0001020304050607 08090A0B0C0D0E0F");
        let vectors = [
            (16, 16, "1FA68B0A8112B447 AEF34BD8FB5A7B82 9D3E862371D2CFE5"),
            (24, 16, "96778B25AE6CA435 F92B5B97C050AED2 468AB8A17AD84E5D"),
            (32, 16, "64E8C3F9CE0F5BA2 63E9777905818A2A 93C8191E7D6E8AE7"),
            (
                24,
                24,
                "031D33264E15D332 68F24EC260743EDC E1C6C7DDEE725A93 6BA814915C6762D2",
            ),
            (
                32,
                24,
                "A8F9BC1612C68B3F F6E6F4FBE30E71E4 769C8B80A32CB895 8CD5D17D6B254DA1",
            ),
            (
                32,
                32,
                "28C9F404C4B810F4 CBCCB35CFB87F826 3F5786E2D80ED326 CBC7F0E71A99F43B \
                 FB988B9B7A02DD21",
            ),
        ];
        for (kek_len, data_len, expected) in vectors {
            let kek = &kek[..kek_len];
            let data = &data[..data_len];
            let expected = hex(expected);
            let wrapped = wrap(cipher_for(kek), kek, data).unwrap();
            assert_eq!(wrapped, expected, "wrap {kek_len}/{data_len}");
            let unwrapped = unwrap(cipher_for(kek), kek, &wrapped).unwrap();
            assert_eq!(unwrapped.as_slice(), data, "unwrap {kek_len}/{data_len}");
        }
    }

    /// For 128- and 256-bit KEKs, this code and aws-lc's wrap agree on random keys and data
    /// of several lengths, in both directions.
    #[test]
    fn agrees_with_aws_lc() {
        for (kek_len, aws) in [(16, &key_wrap::AES_128), (32, &key_wrap::AES_256)] {
            for data_len in [16, 24, 32, 40, 64, 264] {
                let mut kek = vec![0u8; kek_len];
                let mut data = vec![0u8; data_len];
                crate::fill_random(&mut kek).unwrap();
                crate::fill_random(&mut data).unwrap();
                let ours = wrap(cipher_for(&kek), &kek, &data).unwrap();
                let mut theirs = vec![0u8; data_len + 8];
                let theirs = AesKek::new(aws, &kek)
                    .unwrap()
                    .wrap(&data, &mut theirs)
                    .unwrap()
                    .to_vec();
                assert_eq!(ours, theirs, "{kek_len}/{data_len}");
                let mut plain = vec![0u8; data_len];
                let plain = AesKek::new(aws, &kek)
                    .unwrap()
                    .unwrap(&ours, &mut plain)
                    .unwrap();
                assert_eq!(plain, data.as_slice());
                assert_eq!(
                    unwrap(cipher_for(&kek), &kek, &theirs).unwrap().as_slice(),
                    data
                );
            }
        }
    }

    #[test]
    fn tampering_and_bad_lengths_are_refused() {
        let kek = [7u8; 24];
        let data = [9u8; 32];
        let wrapped = wrap(&cipher::AES_192, &kek, &data).unwrap();
        for i in 0..wrapped.len() {
            let mut bad = wrapped.clone();
            bad[i] ^= 0x80;
            assert!(unwrap(&cipher::AES_192, &kek, &bad).is_err(), "flip at {i}");
        }
        assert!(unwrap(&cipher::AES_192, &[8u8; 24], &wrapped).is_err());
        for len in [0, 8, 16, 23, 25, 41] {
            assert!(
                unwrap(&cipher::AES_192, &kek, &vec![0u8; len]).is_err(),
                "{len}"
            );
        }
        for len in [0, 8, 15, 17, 33] {
            assert!(
                wrap(&cipher::AES_192, &kek, &vec![0u8; len]).is_err(),
                "{len}"
            );
        }
        assert!(
            wrap(&cipher::AES_192, &[0u8; 16], &data).is_err(),
            "KEK of the wrong size"
        );
    }
}
