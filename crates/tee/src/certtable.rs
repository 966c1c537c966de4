//! The SEV-SNP certificate table a host hands the guest with its report (configfs-tsm's
//! `auxblob`): entries of a 16-byte GUID, a u32 offset and a u32 length (little-endian), ended
//! by an all-zero entry, followed by the certificates the offsets point into.

use covenant_attest::snp::SnpSigner;

use crate::{Error, Result};

/// The VCEK's GUID, 63da758d-e664-4564-adc5-f4b93be8accd.
pub const VCEK_GUID: [u8; 16] = [
    0x63, 0xda, 0x75, 0x8d, 0xe6, 0x64, 0x45, 0x64, 0xad, 0xc5, 0xf4, 0xb9, 0x3b, 0xe8, 0xac, 0xcd,
];

/// The VLEK's GUID, a8074bc2-a25a-483e-aae6-39c045a0b8a1.
pub const VLEK_GUID: [u8; 16] = [
    0xa8, 0x07, 0x4b, 0xc2, 0xa2, 0x5a, 0x48, 0x3e, 0xaa, 0xe6, 0x39, 0xc0, 0x45, 0xa0, 0xb8, 0xa1,
];

const ENTRY_LEN: usize = 24;

/// The certificates in `table`, by GUID, in table order.
pub fn entries(table: &[u8]) -> Result<Vec<([u8; 16], &[u8])>> {
    if table.is_empty() {
        return Err(Error::CertTable("the host supplied no certificate table"));
    }
    let mut out = Vec::new();
    for index in 0.. {
        let at = index * ENTRY_LEN;
        let entry = table
            .get(at..at + ENTRY_LEN)
            .ok_or(Error::CertTable("no terminating entry"))?;
        let mut guid = [0u8; 16];
        guid.copy_from_slice(&entry[..16]);
        if guid == [0; 16] {
            return Ok(out);
        }
        let word = |i: usize| {
            let mut b = [0u8; 4];
            b.copy_from_slice(&entry[i..i + 4]);
            u32::from_le_bytes(b) as usize
        };
        let (offset, length) = (word(16), word(20));
        let cert = offset
            .checked_add(length)
            .and_then(|end| table.get(offset..end))
            .ok_or(Error::CertTable("an entry points outside the table"))?;
        out.push((guid, cert));
    }
    Ok(out)
}

/// The certificate (DER) of the key that signed a report of `signer`, from `table`.
///
/// A VLEK must be there: it is the cloud's key and no public service hands it out. A VCEK may
/// be missing (no table at all, or no entry): then `None`, and the verifier fetches it from a
/// key distribution service by the report's chip id and TCB. A malformed table is an error.
pub fn endorsement_key(table: &[u8], signer: SnpSigner) -> Result<Option<Vec<u8>>> {
    let (guid, missing) = match signer {
        SnpSigner::Vcek if table.is_empty() => return Ok(None),
        SnpSigner::Vcek => (VCEK_GUID, None),
        SnpSigner::Vlek => (VLEK_GUID, Some(Error::CertTable("no VLEK entry"))),
    };
    match entries(table)?.into_iter().find(|(g, _)| *g == guid) {
        Some((_, cert)) => Ok(Some(cert.to_vec())),
        None => missing.map_or(Ok(None), Err),
    }
}

/// A table holding `certs` (GUID, DER), as a host builds it.
pub fn build(certs: &[([u8; 16], &[u8])]) -> Vec<u8> {
    let mut table = Vec::new();
    let mut offset = ENTRY_LEN * (certs.len() + 1);
    for (guid, cert) in certs {
        table.extend_from_slice(guid);
        table.extend_from_slice(&(offset as u32).to_le_bytes());
        table.extend_from_slice(&(cert.len() as u32).to_le_bytes());
        offset += cert.len();
    }
    table.extend_from_slice(&[0; ENTRY_LEN]);
    for (_, cert) in certs {
        table.extend_from_slice(cert);
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    const ASK_GUID: [u8; 16] = [0x4a; 16];

    #[test]
    fn finds_the_signers_certificate_among_other_certificates() {
        let table = build(&[
            (ASK_GUID, b"ask"),
            (VCEK_GUID, b"the vcek"),
            (VLEK_GUID, b"the vlek"),
        ]);
        let key = |signer| endorsement_key(&table, signer).unwrap().unwrap();
        assert_eq!(key(SnpSigner::Vcek), b"the vcek");
        assert_eq!(key(SnpSigner::Vlek), b"the vlek");
        assert_eq!(entries(&table).unwrap().len(), 3);
    }

    #[test]
    fn a_missing_vcek_is_left_to_the_verifier_but_a_missing_vlek_is_an_error() {
        let ask_only = build(&[(ASK_GUID, b"ask")]);
        assert_eq!(endorsement_key(&ask_only, SnpSigner::Vcek).unwrap(), None);
        assert_eq!(endorsement_key(&[], SnpSigner::Vcek).unwrap(), None);
        assert!(matches!(
            endorsement_key(&ask_only, SnpSigner::Vlek),
            Err(Error::CertTable("no VLEK entry"))
        ));
        assert!(matches!(
            endorsement_key(&[], SnpSigner::Vlek),
            Err(Error::CertTable("the host supplied no certificate table"))
        ));
    }

    #[test]
    fn refuses_tables_without_an_end_or_with_entries_out_of_bounds() {
        let mut cut = build(&[(VCEK_GUID, b"v")]);
        cut.truncate(30);
        assert!(entries(&cut).is_err());
        let mut wild = build(&[(VCEK_GUID, b"v")]);
        wild[20] = 0xff;
        assert!(matches!(
            entries(&wild),
            Err(Error::CertTable("an entry points outside the table"))
        ));
        assert!(matches!(
            entries(&[]),
            Err(Error::CertTable("the host supplied no certificate table"))
        ));
    }
}
