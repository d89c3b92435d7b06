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
    let indices: Vec<usize> = (0..shape.iter().product()).collect();
    binary(&indices, shape, &[()], &[], out, |i, _| i)
}

/// `out`'s dims with `a`'s and `b`'s strides (as broadcast to it), size-1 dims dropped and
/// neighbours merged wherever both operands step through them as one (so a trailing run that
/// is contiguous, or broadcast, in both becomes a single inner dim).
fn coalesce(ash: &[usize], bsh: &[usize], out: &[usize]) -> (Vec<usize>, Vec<usize>, Vec<usize>) {
    let (sa, sb) = (strides_for(ash, out), strides_for(bsh, out));
    let (mut dims, mut xa, mut xb): (Vec<usize>, Vec<usize>, Vec<usize>) =
        (Vec::new(), Vec::new(), Vec::new());
    for i in 0..out.len() {
        if out[i] == 1 {
            continue;
        }
        if let (Some(d), Some(pa), Some(pb)) = (dims.last_mut(), xa.last(), xb.last()) {
            if *pa == sa[i] * out[i] && *pb == sb[i] * out[i] {
                *d *= out[i];
                *xa.last_mut().expect("same length") = sa[i];
                *xb.last_mut().expect("same length") = sb[i];
                continue;
            }
        }
        dims.push(out[i]);
        xa.push(sa[i]);
        xb.push(sb[i]);
    }
    (dims, xa, xb)
}

/// `f(a, b)` over the broadcast of `a` (shape `ash`) and `b` (shape `bsh`) to `out`.
///
/// Row by row over the coalesced output dims: the inner loop reads each operand either
/// contiguously or as one repeated element, so it vectorizes, and no per-element index is
/// stored. Elements are computed independently, in output order.
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
    let n: usize = out.iter().product();
    let mut res = Vec::with_capacity(n);
    if n == 0 {
        return res;
    }
    let (dims, sa, sb) = coalesce(ash, bsh, out);
    let r = dims.len();
    if r == 0 {
        res.push(f(a[0], b[0]));
        return res;
    }
    let (inner, ia, ib) = (dims[r - 1], sa[r - 1], sb[r - 1]);
    let mut idx = vec![0usize; r];
    let (mut oa, mut ob) = (0usize, 0usize);
    loop {
        match (ia, ib) {
            (1, 1) => res.extend(a[oa..oa + inner].iter().zip(&b[ob..ob + inner]).map(|(&x, &y)| f(x, y))),
            (1, 0) => {
                let y = b[ob];
                res.extend(a[oa..oa + inner].iter().map(|&x| f(x, y)));
            }
            (0, 1) => {
                let x = a[oa];
                res.extend(b[ob..ob + inner].iter().map(|&y| f(x, y)));
            }
            _ => res.extend((0..inner).map(|j| f(a[oa + j * ia], b[ob + j * ib]))),
        }
        let mut d = r - 1;
        loop {
            if d == 0 {
                return res;
            }
            d -= 1;
            idx[d] += 1;
            oa += sa[d];
            ob += sb[d];
            if idx[d] < dims[d] {
                break;
            }
            oa -= sa[d] * dims[d];
            ob -= sb[d] * dims[d];
            idx[d] = 0;
        }
    }
}

/// `v` (shape `shape`) broadcast to `out`.
pub fn expand<T: Copy>(v: &[T], shape: &[usize], out: &[usize]) -> Vec<T> {
    if shape == out {
        return v.to_vec();
    }
    binary(v, shape, &[()], &[], out, |x, _| x)
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

    /// The index of the element of `shape` that output element `lin` (row-major in `out`)
    /// reads, by unravelling it: numpy's definition, element by element.
    fn source_index(lin: usize, shape: &[usize], out: &[usize]) -> usize {
        let (mut rest, mut src, mut mul) = (lin, 0, 1);
        for d in (0..out.len()).rev() {
            let i = rest % out[d];
            rest /= out[d];
            if let Some(sd) = (d + shape.len()).checked_sub(out.len()) {
                src += if shape[sd] == 1 { 0 } else { i * mul };
                mul *= shape[sd];
            }
        }
        src
    }

    fn binary_by_index(a: &[i64], ash: &[usize], b: &[i64], bsh: &[usize], out: &[usize]) -> Vec<i64> {
        let n: usize = out.iter().product();
        (0..n).map(|l| a[source_index(l, ash, out)] * 1000 + b[source_index(l, bsh, out)]).collect()
    }

    #[test]
    fn binary_equals_the_indexed_definition_on_every_broadcast_pattern() {
        let cases: &[(&[usize], &[usize])] = &[
            (&[2, 3, 4], &[4]),
            (&[2, 3, 4], &[3, 1]),
            (&[2, 1, 4], &[1, 3, 1]),
            (&[1, 16, 5, 7], &[1, 1, 5, 7]),
            (&[2, 3, 1], &[2, 3, 5]),
            (&[4, 1, 3, 1], &[1, 2, 1, 6]),
            (&[1, 1], &[1]),
            (&[3, 1, 1, 2], &[3, 4, 5, 2]),
            (&[0, 3], &[1, 3]),
            (&[], &[2, 2]),
        ];
        for &(ash, bsh) in cases {
            let out = broadcast_shape(ash, bsh).unwrap();
            let a: Vec<i64> = (0..ash.iter().product::<usize>() as i64).collect();
            let b: Vec<i64> = (0..bsh.iter().product::<usize>() as i64).map(|x| x + 500).collect();
            let want = binary_by_index(&a, ash, &b, bsh, &out);
            assert_eq!(binary(&a, ash, &b, bsh, &out, |x, y| x * 1000 + y), want, "{ash:?} with {bsh:?}");
            let swapped: Vec<i64> = binary_by_index(&b, bsh, &a, ash, &out);
            assert_eq!(binary(&b, bsh, &a, ash, &out, |x, y| x * 1000 + y), swapped, "{bsh:?} with {ash:?}");
            let n: usize = out.iter().product();
            assert_eq!(index_map(ash, &out), (0..n).map(|l| source_index(l, ash, &out)).collect::<Vec<_>>());
            assert_eq!(
                expand(&a, ash, &out),
                (0..n).map(|l| a[source_index(l, ash, &out)]).collect::<Vec<_>>()
            );
        }
    }
}
