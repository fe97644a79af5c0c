//! How the plugin binary is linked and whether it is stripped, from its ELF headers
//! (what `file` and `readelf -S` would tell): 64-bit little-endian ELF only.

const PT_INTERP: u32 = 3;
const SHT_SYMTAB: u32 = 2;
const ET_EXEC: u16 = 2;
const ET_DYN: u16 = 3;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Linkage {
    /// Has a program interpreter (the dynamic loader).
    Dynamic,
    /// No interpreter, fixed addresses.
    Static,
    /// No interpreter, position-independent (the musl build).
    StaticPie,
}

impl Linkage {
    pub fn name(self) -> &'static str {
        match self {
            Linkage::Dynamic => "dynamic",
            Linkage::Static => "static",
            Linkage::StaticPie => "static-pie",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ElfInfo {
    pub linkage: Linkage,
    /// No symbol table section.
    pub stripped: bool,
}

/// What `image` (a whole executable file) is; `None` unless it is a 64-bit
/// little-endian ELF executable with sane headers.
pub fn inspect(image: &[u8]) -> Option<ElfInfo> {
    if image.get(..6)? != [0x7f, b'E', b'L', b'F', 2, 1] {
        return None;
    }
    let e_type = u16_at(image, 16)?;
    let interp = table(image, 32, 54, 56)?.any(|at| u32_at(image, at) == Some(PT_INTERP));
    let symtab = table(image, 40, 58, 60)?.any(|at| u32_at(image, at + 4) == Some(SHT_SYMTAB));
    let linkage = match (interp, e_type) {
        (true, _) => Linkage::Dynamic,
        (false, ET_DYN) => Linkage::StaticPie,
        (false, ET_EXEC) => Linkage::Static,
        _ => return None,
    };
    Some(ElfInfo {
        linkage,
        stripped: !symtab,
    })
}

/// The offsets of the entries of a header table (program or section headers) whose
/// offset, entry size and count are at these positions of the ELF header.
fn table(
    image: &[u8],
    off_at: usize,
    size_at: usize,
    count_at: usize,
) -> Option<impl Iterator<Item = usize>> {
    let off = usize::try_from(u64_at(image, off_at)?).ok()?;
    let size = usize::from(u16_at(image, size_at)?);
    let count = usize::from(u16_at(image, count_at)?);
    if off.checked_add(size.checked_mul(count)?)? > image.len() {
        return None;
    }
    Some((0..count).map(move |i| off + i * size))
}

fn bytes<const N: usize>(image: &[u8], at: usize) -> Option<[u8; N]> {
    image.get(at..at.checked_add(N)?)?.try_into().ok()
}

fn u16_at(image: &[u8], at: usize) -> Option<u16> {
    bytes(image, at).map(u16::from_le_bytes)
}

fn u32_at(image: &[u8], at: usize) -> Option<u32> {
    bytes(image, at).map(u32::from_le_bytes)
}

fn u64_at(image: &[u8], at: usize) -> Option<u64> {
    bytes(image, at).map(u64::from_le_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF64 image: header, the given program header types, then the given
    /// section header types.
    fn image(e_type: u16, phdrs: &[u32], shdrs: &[u32]) -> Vec<u8> {
        let mut v = vec![0u8; 64];
        v[..6].copy_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1]);
        v[16..18].copy_from_slice(&e_type.to_le_bytes());
        let phoff = 64u64;
        let shoff = phoff + 56 * phdrs.len() as u64;
        v[32..40].copy_from_slice(&phoff.to_le_bytes());
        v[40..48].copy_from_slice(&shoff.to_le_bytes());
        v[54..56].copy_from_slice(&56u16.to_le_bytes());
        v[56..58].copy_from_slice(&(phdrs.len() as u16).to_le_bytes());
        v[58..60].copy_from_slice(&64u16.to_le_bytes());
        v[60..62].copy_from_slice(&(shdrs.len() as u16).to_le_bytes());
        for &t in phdrs {
            let mut p = vec![0u8; 56];
            p[..4].copy_from_slice(&t.to_le_bytes());
            v.extend(p);
        }
        for &t in shdrs {
            let mut s = vec![0u8; 64];
            s[4..8].copy_from_slice(&t.to_le_bytes());
            v.extend(s);
        }
        v
    }

    #[test]
    fn linkage_from_interpreter_and_type() {
        let dynamic = inspect(&image(ET_DYN, &[6, PT_INTERP, 1], &[])).unwrap();
        assert_eq!(dynamic.linkage, Linkage::Dynamic);
        let pie = inspect(&image(ET_DYN, &[6, 1], &[])).unwrap();
        assert_eq!(pie.linkage, Linkage::StaticPie);
        let fixed = inspect(&image(ET_EXEC, &[1], &[])).unwrap();
        assert_eq!(fixed.linkage, Linkage::Static);
        assert_eq!(Linkage::StaticPie.name(), "static-pie");
    }

    #[test]
    fn stripped_means_no_symbol_table() {
        assert!(inspect(&image(ET_DYN, &[1], &[0, 3, 1])).unwrap().stripped);
        assert!(
            !inspect(&image(ET_DYN, &[1], &[0, SHT_SYMTAB, 3]))
                .unwrap()
                .stripped
        );
    }

    #[test]
    fn not_elf64_le_or_truncated_is_none() {
        assert_eq!(inspect(b"#!/bin/sh\n"), None);
        let mut truncated = image(ET_DYN, &[1, 1], &[]);
        truncated.truncate(100);
        assert_eq!(inspect(&truncated), None);
        let mut elf32 = image(ET_DYN, &[1], &[]);
        elf32[4] = 1;
        assert_eq!(inspect(&elf32), None);
    }
}
