//! Fuzzes the gguf reader: any bytes must give a model or an error, never a panic, a hang or a
//! huge allocation.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let bytes = bytes::Bytes::copy_from_slice(data);
    if let Ok(model) = smelt_formats::gguf::parse(bytes, Path::new("fuzz.gguf")) {
        // What parse promises about an accepted file: each tensor holds exactly its stored
        // size, from inside the input.
        for t in &model.tensors {
            let size = if t.numel() == 0 { Some(0) } else { t.dtype.storage_bytes(&t.shape) };
            assert_eq!(size, Some(t.data.len() as u64), "{}", t.name);
            assert!(t.location.offset + t.data.len() as u64 <= data.len() as u64, "{}", t.name);
        }
    }
});
