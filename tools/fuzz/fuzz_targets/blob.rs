//! Fuzzes the smelt blob reader: any bytes must give a blob or an error, never a panic, a hang
//! or a huge allocation. Half the inputs get their header and directory CRCs recomputed first,
//! so that the checks behind the CRCs are reached. A blob that parses must keep every promise
//! `blob::parse` makes, and whatever it holds must survive a rewrite by `BlobWriter`.
#![no_main]

use std::io::Cursor;
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use smelt_formats::blob::{self, BlobWriter, Compression, EntryDecl, TensorSections};

fn reseal(v: &mut [u8]) {
    if v.len() < 128 {
        return;
    }
    let u64_at = |v: &[u8], at: usize| u64::from_le_bytes(v[at..at + 8].try_into().unwrap());
    if let Some(end) = u64_at(v, 32).checked_add(u64_at(v, 40)).filter(|&e| e >= 128 && e <= v.len() as u64) {
        let crc = crc32fast::hash(&v[128..end as usize]);
        v[96..100].copy_from_slice(&crc.to_le_bytes());
    }
    let crc = crc32fast::hash(&v[..124]);
    v[124..128].copy_from_slice(&crc.to_le_bytes());
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let mut v = rest.to_vec();
    if mode & 1 == 1 {
        reseal(&mut v);
    }
    let len = v.len() as u64;
    let Ok(b) = blob::parse(bytes::Bytes::from(v), Path::new("fuzz.smelt")) else { return };

    // parse's promises: sections aligned, inside the data region, in order.
    let mut previous_end = b.header().data_offset;
    for e in b.entries() {
        for (kind, s) in e.sections() {
            assert_eq!(s.offset % 64, 0, "{} {kind}", e.name);
            assert!(s.offset >= previous_end && s.offset + s.len() <= len, "{} {kind}", e.name);
            previous_end = s.offset + s.len();
        }
    }
    let _ = b.verify_checksums();
    let meta = b.metadata().ok().flatten();
    // The ONNX graph in the metadata: the ONNX reader's checks with external data refused, and
    // every initializer mapped to an entry of the right dims.
    if let Ok(Some(g)) = b.onnx_graph() {
        for i in &g.initializers {
            assert_eq!(b.entries()[i.entry].dims, i.dims, "{}", i.name);
        }
    }
    let _ = b.tensor_summaries();

    // Everything that decodes can be written again, and reads back the same.
    let mut raw = Vec::new();
    for e in b.entries() {
        match e.decompressed_data() {
            Ok(d) => {
                assert_eq!(d.len() as u64, e.data_raw_len, "{}", e.name);
                raw.push(d);
            }
            Err(_) => return,
        }
    }
    let decls = b.entries().iter().map(|e| EntryDecl {
        name: e.name.clone(),
        scheme: e.scheme,
        dtype: e.dtype,
        dims: e.dims.clone(),
        block_size: e.block_size,
        axis: e.axis,
        flags: e.flags,
        compression: if mode & 2 == 2 { Compression::Lz4 } else { Compression::None },
    });
    let mut w = BlobWriter::with_entries(Cursor::new(Vec::new()), meta.as_ref(), decls)
        .expect("declarations the reader accepted");
    let section = |s: &Option<blob::Section>| s.as_ref().map_or(bytes::Bytes::new(), |s| s.bytes.clone());
    for (e, d) in b.entries().iter().zip(&raw) {
        let (scales, zeros, aux) = (section(&e.scales), section(&e.zeros), section(&e.aux));
        w.write_tensor(TensorSections { data: d, scales: &scales, zeros: &zeros, aux: &aux })
            .expect("sections the reader accepted");
    }
    let out = w.finish().expect("a complete blob").into_inner();
    let again = blob::parse(bytes::Bytes::from(out), Path::new("rewritten.smelt"))
        .expect("the writer's output parses");
    again.verify_checksums().expect("the writer's CRCs");
    assert_eq!(again.entries().len(), b.entries().len());
    for ((x, y), d) in b.entries().iter().zip(again.entries()).zip(&raw) {
        assert_eq!(
            (&x.name, x.scheme, x.dtype, &x.dims, x.flags, x.axis),
            (&y.name, y.scheme, y.dtype, &y.dims, y.flags, y.axis)
        );
        assert_eq!(&y.decompressed_data().unwrap()[..], &d[..], "{}", x.name);
        assert_eq!(section(&x.scales), section(&y.scales));
        assert_eq!(section(&x.zeros), section(&y.zeros));
        assert_eq!(section(&x.aux), section(&y.aux));
    }
});
