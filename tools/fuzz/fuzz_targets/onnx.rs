//! Fuzzes the onnx reader: any bytes must give a model or an error, never a panic, a hang or a
//! huge allocation.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Filled in with the reader: smelt_formats::onnx::parse(bytes::Bytes::copy_from_slice(data), path)
    let _ = data;
});
