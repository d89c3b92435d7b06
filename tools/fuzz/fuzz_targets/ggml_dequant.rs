//! Fuzzes ggml dequantization: any dtype, any source bytes, any destination length must give
//! a result or an error (exactly when the lengths disagree or the type is unsupported), never a
//! panic; whole-tensor and into-slice decoding must agree bit for bit.
#![no_main]
use libfuzzer_sys::fuzz_target;
use smelt_tensor::{DType, ALL_DTYPES};
fuzz_target!(|data: &[u8]| {
    if data.len() < 3 { return; }
    let dtype: DType = ALL_DTYPES[data[0] as usize % ALL_DTYPES.len()];
    let want = u16::from_le_bytes([data[1], data[2]]) as usize;
    let src = &data[3..];
    let mut dst = vec![0.0f32; want];
    let r = smelt_quant::ggml::dequantize(dtype, src, &mut dst);
    let supported = smelt_quant::ggml::SUPPORTED.contains(&dtype);
    let ok_len = supported && src.len() as u64 % dtype.block_bytes() == 0
        && src.len() as u64 / dtype.block_bytes() * dtype.block_elems() == want as u64;
    assert_eq!(r.is_ok(), ok_len, "{dtype} src {} dst {want}: {r:?}", src.len());
    if ok_len {
        let v = smelt_quant::ggml::dequantize_to_vec(dtype, src).unwrap();
        assert!(v.iter().zip(&dst).all(|(a, b)| a.to_bits() == b.to_bits()));
    }
});
