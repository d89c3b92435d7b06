//! Matrix transposition, the layout change the dot-product kernels need for a `B` stored
//! `k×n` (done once per constant weight by callers that keep it, per call otherwise).

/// Row-major `rows×cols` to `cols×rows`, in cache-sized tiles.
///
/// # Panics
/// When `src.len() != rows·cols`.
pub fn transpose<T: Copy + Default>(rows: usize, cols: usize, src: &[T]) -> Vec<T> {
    assert_eq!(src.len(), rows * cols, "transpose: {} elements, rows·cols = {}", src.len(), rows * cols);
    let mut out = vec![T::default(); src.len()];
    const TILE: usize = 32;
    for r0 in (0..rows).step_by(TILE) {
        for c0 in (0..cols).step_by(TILE) {
            for r in r0..(r0 + TILE).min(rows) {
                for c in c0..(c0 + TILE).min(cols) {
                    out[c * rows + r] = src[r * cols + c];
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::transpose;

    #[test]
    fn transposes_across_tile_edges() {
        let (rows, cols) = (33, 65);
        let src: Vec<u32> = (0..rows * cols).map(|i| i as u32).collect();
        let t = transpose(rows, cols, &src);
        for r in 0..rows {
            for c in 0..cols {
                assert_eq!(t[c * rows + r], src[r * cols + c]);
            }
        }
        assert!(transpose::<f32>(0, 5, &[]).is_empty());
    }
}
