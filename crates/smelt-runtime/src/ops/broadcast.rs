//! NumPy-style broadcasting: the output shape of two or more shapes, and elementwise maps over
//! broadcast operands without materializing them.

/// The broadcast of `a` and `b`, `None` when they are incompatible.
pub fn broadcast_shape(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let r = a.len().max(b.len());
    let mut out = vec![0; r];
    for i in 0..r {
        let da = if i + a.len() >= r { a[i + a.len() - r] } else { 1 };
        let db = if i + b.len() >= r { b[i + b.len() - r] } else { 1 };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return None,
        };
    }
    Some(out)
}

/// Strides of a row-major `shape` seen as broadcast to `out` (0 along broadcast dims).
pub fn strides_for(shape: &[usize], out: &[usize]) -> Vec<usize> {
    let r = out.len();
    let mut strides = vec![0; r];
    let mut acc = 1;
    for i in (0..shape.len()).rev() {
        let oi = i + r - shape.len();
        strides[oi] = if shape[i] == 1 { 0 } else { acc };
        acc *= shape[i];
    }
    strides
}

/// For every element of `out` (row-major), the index of the element of `shape` it reads.
pub fn index_map(shape: &[usize], out: &[usize]) -> Vec<usize> {
    let n: usize = out.iter().product();
    let mut res = Vec::with_capacity(n);
    if n == 0 {
        return res;
    }
    let st = strides_for(shape, out);
    let r = out.len();
    if r == 0 {
        res.push(0);
        return res;
    }
    let mut idx = vec![0usize; r];
    let mut off = 0usize;
    let inner = out[r - 1];
    let s_in = st[r - 1];
    loop {
        for j in 0..inner {
            res.push(off + j * s_in);
        }
        let mut d = r - 1;
        loop {
            if d == 0 {
                return res;
            }
            d -= 1;
            idx[d] += 1;
            off += st[d];
            if idx[d] < out[d] {
                break;
            }
            off -= st[d] * out[d];
            idx[d] = 0;
        }
    }
}

/// `f(a, b)` over the broadcast of `a` (shape `ash`) and `b` (shape `bsh`) to `out`.
pub fn binary<A: Copy, B: Copy, O>(
    a: &[A],
    ash: &[usize],
    b: &[B],
    bsh: &[usize],
    out: &[usize],
    f: impl Fn(A, B) -> O,
) -> Vec<O> {
    if ash == out && bsh == out {
        return a.iter().zip(b).map(|(&x, &y)| f(x, y)).collect();
    }
    if b.len() == 1 && ash == out {
        let y = b[0];
        return a.iter().map(|&x| f(x, y)).collect();
    }
    if a.len() == 1 && bsh == out {
        let x = a[0];
        return b.iter().map(|&y| f(x, y)).collect();
    }
    let ia = index_map(ash, out);
    let ib = index_map(bsh, out);
    ia.into_iter().zip(ib).map(|(i, j)| f(a[i], b[j])).collect()
}

/// `v` (shape `shape`) broadcast to `out`.
pub fn expand<T: Copy>(v: &[T], shape: &[usize], out: &[usize]) -> Vec<T> {
    if shape == out {
        return v.to_vec();
    }
    index_map(shape, out).into_iter().map(|i| v[i]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_broadcast_like_numpy() {
        assert_eq!(broadcast_shape(&[2, 1, 3], &[4, 1]), Some(vec![2, 4, 3]));
        assert_eq!(broadcast_shape(&[], &[5]), Some(vec![5]));
        assert_eq!(broadcast_shape(&[2, 3], &[4, 3]), None);
        assert_eq!(broadcast_shape(&[0, 3], &[1, 3]), Some(vec![0, 3]));
    }

    #[test]
    fn binary_matches_hand_computed_broadcast() {
        // [[1],[2]] + [10, 20, 30] = [[11,21,31],[12,22,32]]
        let r = binary(&[1, 2], &[2, 1], &[10, 20, 30], &[3], &[2, 3], |x, y| x + y);
        assert_eq!(r, vec![11, 21, 31, 12, 22, 32]);
    }
}
