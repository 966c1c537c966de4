//! The SEV-SNP certificate table a host hands the guest with its report (configfs-tsm's
//! `auxblob`): entries of a 16-byte GUID, a u32 offset and a u32 length (little-endian), ended
//! by an all-zero entry, followed by the certificates the offsets point into.

use crate::{Error, Result};

/// The VCEK's GUID, 63da758d-e664-4564-adc5-f4b93be8accd.
pub const VCEK_GUID: [u8; 16] = [
    0x63, 0xda, 0x75, 0x8d, 0xe6, 0x64, 0x45, 0x64, 0xad, 0xc5, 0xf4, 0xb9, 0x3b, 0xe8, 0xac, 0xcd,
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

/// The VCEK (DER) in `table`.
pub fn vcek(table: &[u8]) -> Result<Vec<u8>> {
    entries(table)?
        .into_iter()
        .find(|(guid, _)| *guid == VCEK_GUID)
        .map(|(_, cert)| cert.to_vec())
        .ok_or(Error::CertTable("no VCEK entry"))
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
    fn finds_the_vcek_among_other_certificates() {
        let table = build(&[(ASK_GUID, b"ask"), (VCEK_GUID, b"the vcek")]);
        assert_eq!(vcek(&table).unwrap(), b"the vcek");
        assert_eq!(entries(&table).unwrap().len(), 2);
    }

    #[test]
    fn refuses_tables_without_a_vcek_an_end_or_with_entries_out_of_bounds() {
        assert!(matches!(
            vcek(&build(&[(ASK_GUID, b"ask")])),
            Err(Error::CertTable("no VCEK entry"))
        ));
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
