//! Tiny hand-checked products: the public API computes what its documentation says.

#[test]
fn gemm_f32_small_hand_checked() {
    // A = [[1, 2, 3], [4, 5, 6]], B = [[1, 0], [0, 1], [1, 1]]
    let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
    let b = [1.0, 0.0, 0.0, 1.0, 1.0, 1.0];
    let mut c = [f32::NAN; 4];
    smelt_kernels::gemm_f32(2, 2, 3, &a, &b, &mut c);
    assert_eq!(c, [4.0, 5.0, 10.0, 11.0]);
    // Same B transposed (n×k).
    let bt = [1.0, 0.0, 1.0, 0.0, 1.0, 1.0];
    let mut c = [f32::NAN; 4];
    smelt_kernels::gemm_f32_bt(2, 2, 3, &a, &bt, &mut c);
    assert_eq!(c, [4.0, 5.0, 10.0, 11.0]);
}

#[test]
fn k_zero_gives_zeros() {
    let mut c = [f32::NAN; 6];
    smelt_kernels::gemm_f32(2, 3, 0, &[], &[], &mut c);
    assert_eq!(c, [0.0; 6]);
}

#[test]
#[should_panic]
fn length_mismatch_panics() {
    let mut c = [0.0; 4];
    smelt_kernels::gemm_f32(2, 2, 3, &[0.0; 5], &[0.0; 6], &mut c);
}
