//! Fuzzes the safetensors reader: any bytes must give a model or an error, never a panic, a hang or a
//! huge allocation. Inputs that are UTF-8 also go through the HF config.json reader, which shares
//! the header's JSON object scanner.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let bytes = bytes::Bytes::copy_from_slice(data);
    if let Ok(model) = smelt_formats::safetensors::parse(bytes, Path::new("fuzz.safetensors")) {
        // What parse promises about an accepted file: each tensor holds exactly its stored size,
        // from inside the input, and the tensors tile the data section in order up to its end.
        let mut end = None;
        for t in &model.tensors {
            assert_eq!(t.dtype.storage_bytes(&t.shape), Some(t.data.len() as u64), "{}", t.name);
            if let Some(prev) = end {
                assert_eq!(
                    t.location.offset, prev,
                    "{} does not start where the previous tensor ends",
                    t.name
                );
            }
            end = Some(t.location.offset + t.data.len() as u64);
        }
        if let Some(end) = end {
            assert_eq!(end, data.len() as u64, "tensors end before the file does");
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = smelt_formats::config::parse_hf_config(text);
    }
});
