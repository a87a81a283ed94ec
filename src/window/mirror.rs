//! Mirroring test-time augmentation: which axis sets are flipped and the flip itself.

/// Non-empty subsets of `axes` in `itertools.combinations` order (by size, then
/// lexicographically): for (0, 1, 2) that is z, y, x, zy, zx, yx, zyx. The identity pass is not
/// included; nnU-Net runs it first.
pub fn flip_sets(axes: &[usize]) -> Vec<[bool; 3]> {
    let n = axes.len();
    let mut sets = Vec::new();
    for size in 1..=n {
        // Index combinations of `size` out of `n`, lexicographic.
        let mut idx: Vec<usize> = (0..size).collect();
        loop {
            let mut flip = [false; 3];
            for &i in &idx {
                flip[axes[i]] = true;
            }
            sets.push(flip);
            // Advance to the next combination.
            let Some(pos) = (0..size).rev().find(|&p| idx[p] != p + n - size) else { break };
            idx[pos] += 1;
            for p in pos + 1..size {
                idx[p] = idx[p - 1] + 1;
            }
        }
    }
    sets
}

/// Copies `channels` blocks of `shape` voxels from `src` to `dst`, reversing the spatial axes
/// marked in `flip`. Flipping twice gives the input back.
pub fn flip_copy(src: &[f32], dst: &mut [f32], channels: usize, shape: [usize; 3], flip: [bool; 3]) {
    let [a, b, c] = shape;
    let block = a * b * c;
    debug_assert!(src.len() >= channels * block && dst.len() >= channels * block);
    for ch in 0..channels {
        let (s, d) = (&src[ch * block..(ch + 1) * block], &mut dst[ch * block..(ch + 1) * block]);
        for i in 0..a {
            let si = if flip[0] { a - 1 - i } else { i };
            for j in 0..b {
                let sj = if flip[1] { b - 1 - j } else { j };
                let from = &s[(si * b + sj) * c..(si * b + sj + 1) * c];
                let to = &mut d[(i * b + j) * c..(i * b + j + 1) * c];
                if flip[2] {
                    for (t, f) in to.iter_mut().zip(from.iter().rev()) {
                        *t = *f;
                    }
                } else {
                    to.copy_from_slice(from);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flip_sets_follow_itertools_order() {
        let t = true;
        let f = false;
        assert_eq!(
            flip_sets(&[0, 1, 2]),
            vec![[t, f, f], [f, t, f], [f, f, t], [t, t, f], [t, f, t], [f, t, t], [t, t, t]]
        );
        assert_eq!(flip_sets(&[0, 1]), vec![[t, f, f], [f, t, f], [t, t, f]]);
        assert_eq!(flip_sets(&[2]), vec![[f, f, t]]);
        assert!(flip_sets(&[]).is_empty());
    }

    #[test]
    fn flipping_twice_is_the_identity_and_once_reverses() {
        let shape = [2, 3, 4];
        let src: Vec<f32> = (0..48).map(|v| v as f32).collect();
        for flip in flip_sets(&[0, 1, 2]) {
            let mut once = vec![0.0; 48];
            let mut twice = vec![0.0; 48];
            flip_copy(&src, &mut once, 2, shape, flip);
            flip_copy(&once, &mut twice, 2, shape, flip);
            assert_eq!(twice, src);
            assert_ne!(once, src);
        }
        let mut x = vec![0.0; 48];
        flip_copy(&src, &mut x, 2, shape, [false, false, true]);
        assert_eq!(&x[..4], &[3.0, 2.0, 1.0, 0.0]);
    }
}
