//! A flat vector index: unit vectors stored row after row, scored by dot product (cosine, since
//! every vector is L2-normalised), and the `k` best rows picked out.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use crate::error::{Error, Result};

/// Unit vectors of one fixed dimension, stored contiguously (row-major) and searched exhaustively.
///
/// Rows are numbered from 0 in push order. Scores are dot products, which equal cosine similarity
/// for the L2-normalised vectors an [`Embedder`](super::Embedder) returns.
#[derive(Debug, Clone, PartialEq)]
pub struct VectorIndex {
    dim: usize,
    rows: usize,
    data: Vec<f32>,
}

impl VectorIndex {
    /// An empty index for vectors of `dim` components.
    pub fn new(dim: usize) -> Self {
        VectorIndex { dim, rows: 0, data: Vec::new() }
    }

    /// An empty index for vectors of `dim` components, with room for `rows` rows.
    pub fn with_capacity(dim: usize, rows: usize) -> Self {
        VectorIndex { dim, rows: 0, data: Vec::with_capacity(dim.saturating_mul(rows)) }
    }

    /// The number of components of every vector.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The number of rows.
    pub fn len(&self) -> usize {
        self.rows
    }

    /// Whether the index has no rows.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Appends `vector` and returns its row number.
    ///
    /// Fails, leaving the index unchanged, when `vector` does not have [`dim`](Self::dim)
    /// components or holds a NaN or an infinity.
    pub fn push(&mut self, vector: &[f32]) -> Result<usize> {
        self.check(vector, "vector")?;
        self.data.extend_from_slice(vector);
        self.rows += 1;
        Ok(self.rows - 1)
    }

    /// The vector stored at `row`, if there is one.
    pub fn row(&self, row: usize) -> Option<&[f32]> {
        if row >= self.rows {
            return None;
        }
        self.data.get(row * self.dim..(row + 1) * self.dim)
    }

    /// The score of every row against `query`, in row order: the dot product, which is the
    /// cosine similarity for unit vectors.
    ///
    /// Fails when `query` does not have [`dim`](Self::dim) components or is not finite.
    pub fn cosine_all(&self, query: &[f32]) -> Result<Vec<f32>> {
        self.check(query, "query")?;
        let mut scores = vec![0.0; self.rows];
        self.scores_into(query, &mut scores);
        Ok(scores)
    }

    /// [`cosine_all`](Self::cosine_all) into `out` (resized to [`len`](Self::len)), so a caller
    /// scoring query after query can keep one buffer. Every score is bitwise the one [`dot`] gives
    /// for its row. Where the CPU has AVX, rows are scored four at a time in 256-bit registers
    /// (independent sums, so one row's additions do not wait for each other's; see
    /// `dot_rows_avx`), each with the same eight lanes in the same order; elsewhere one row after
    /// the other.
    ///
    /// Fails like [`cosine_all`](Self::cosine_all).
    pub fn cosine_into(&self, query: &[f32], out: &mut Vec<f32>) -> Result<()> {
        self.check(query, "query")?;
        out.clear();
        out.resize(self.rows, 0.0);
        self.scores_into(query, out);
        Ok(())
    }

    /// The kernel behind [`cosine_into`](Self::cosine_into); `out` has one slot per row and
    /// `query` is checked.
    fn scores_into(&self, query: &[f32], out: &mut [f32]) {
        if self.dim == 0 {
            return;
        }
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx") {
            // SAFETY: the CPU has AVX (checked just above), the only feature `dot_rows_avx` enables.
            unsafe { dot_rows_avx(&self.data, query, out) };
            return;
        }
        dot_rows(&self.data, query, out);
    }

    /// The `k` rows that score best against `query`, best first, as `(row, score)`.
    ///
    /// Ties are broken by the lower row number, so the result is deterministic (scores compare by
    /// `f32::total_cmp`, which puts -0.0 below 0.0). Returns every row when `k` is at least
    /// [`len`](Self::len). Fails like [`cosine_all`](Self::cosine_all).
    pub fn top_k(&self, query: &[f32], k: usize) -> Result<Vec<(usize, f32)>> {
        let scores = self.cosine_all(query)?;
        Ok(best_k(&scores, k))
    }

    fn check(&self, vector: &[f32], what: &str) -> Result<()> {
        if vector.len() != self.dim {
            return Err(Error::Embeddings(format!("{what} has {} components, the index holds {}-dimensional vectors", vector.len(), self.dim)));
        }
        if let Some(i) = vector.iter().position(|x| !x.is_finite()) {
            return Err(Error::Embeddings(format!("{what} component {i} is {}", vector[i])));
        }
        Ok(())
    }
}

/// Best score first; equal scores by lower row. Scores are finite (inputs are checked), and
/// `total_cmp` keeps this a total order regardless.
fn rank(a: &(usize, f32), b: &(usize, f32)) -> Ordering {
    b.1.total_cmp(&a.1).then(a.0.cmp(&b.0))
}

/// The `k` best `(row, score)` pairs of `scores`, best first.
///
/// For small `k` this is one pass with a bounded heap (no allocation proportional to the number
/// of rows); for large `k`, a partial sort of all rows.
fn best_k(scores: &[f32], k: usize) -> Vec<(usize, f32)> {
    if k == 0 {
        return Vec::new();
    }
    if k.saturating_mul(8) >= scores.len() {
        let mut all: Vec<(usize, f32)> = scores.iter().copied().enumerate().collect();
        if k < all.len() {
            all.select_nth_unstable_by(k - 1, rank);
            all.truncate(k);
        }
        all.sort_unstable_by(rank);
        return all;
    }
    // A max-heap under `rank` keeps the worst of the kept rows on top; `floor` is its score.
    let mut heap: BinaryHeap<Ranked> = BinaryHeap::with_capacity(k);
    let mut floor = f32::NEG_INFINITY;
    for (row, &score) in scores.iter().enumerate() {
        if heap.len() < k {
            heap.push(Ranked(row, score));
            if heap.len() == k {
                floor = heap.peek().map_or(floor, |w| w.1);
            }
        } else if score.total_cmp(&floor) == Ordering::Greater {
            // Rows come in increasing order, so a tie never beats a kept row.
            if let Some(mut worst) = heap.peek_mut() {
                *worst = Ranked(row, score);
            }
            floor = heap.peek().map_or(floor, |w| w.1);
        }
    }
    heap.into_sorted_vec().into_iter().map(|Ranked(row, score)| (row, score)).collect()
}

/// A `(row, score)` pair ordered by [`rank`]: "greater" is worse.
#[derive(Debug, Clone, Copy)]
struct Ranked(usize, f32);

impl Ord for Ranked {
    fn cmp(&self, other: &Self) -> Ordering {
        rank(&(self.0, self.1), &(other.0, other.1))
    }
}

impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Ranked {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Ranked {}

/// Rows scored together by [`dot_rows_avx`]: enough independent sums to hide the latency of a
/// vector addition (a few cycles, one per chunk of 8 per row), few enough that their accumulators
/// and the query's chunk stay in registers.
/// (The loop of [`dot_rows_avx`] zips exactly four rows.)
#[cfg(target_arch = "x86_64")]
const ROWS_AT_ONCE: usize = 4;

/// Rows are interleaved only while the index is at most this large: from a cache it is up to twice
/// as fast (384 dimensions, scores of every row, best of 5: 600 rows 27.9 µs one row at a time with
/// SSE, 19.4 with AVX, 13.8 four at a time; 5,000 rows 208 / 150 / 131 µs), but read from memory
/// four streams are slower than one (100,000 rows: 7.4 ms one at a time, 15.6 ms four at a time).
#[cfg(target_arch = "x86_64")]
const INTERLEAVE_MAX_BYTES: usize = 8 << 20;

/// `out[r]` = [`dot`]`(row r of data, q)` for the `out.len()` rows of `q.len()` components stored
/// row after row in `data`: the portable kernel, one row after the other.
fn dot_rows(data: &[f32], q: &[f32], out: &mut [f32]) {
    for (row, s) in data.chunks_exact(q.len()).zip(out) {
        *s = dot(row, q);
    }
}

/// [`dot_rows`] with 256-bit AVX registers, bitwise the same: a row's eight lanes are one register
/// (two SSE registers in [`dot`]), each lane adds `x[i] * y[i]` in the same order (a multiply,
/// then an add: AVX alone has no fused multiply-add, and none is asked for), and the lanes are
/// reduced by [`reduce`] as [`dot`] reduces them. [`ROWS_AT_ONCE`] rows are interleaved, so their
/// sums proceed in parallel and the query's chunk is loaded once for them (up to
/// [`INTERLEAVE_MAX_BYTES`] of rows; beyond, one row after the other, still in AVX). Written with
/// intrinsics: auto-vectorized, the interleaved rows came out transposed and spilled to the stack.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
fn dot_rows_avx(data: &[f32], q: &[f32], out: &mut [f32]) {
    use std::arch::x86_64::{__m256, _mm256_add_ps, _mm256_loadu_ps, _mm256_mul_ps, _mm256_setzero_ps, _mm256_storeu_ps};
    let dim = q.len();
    let (q8, q_tail) = q.as_chunks::<8>();
    let whole = q8.len() * 8;
    let load = |x: &[f32; 8]| -> __m256 {
        // SAFETY: `x` is 8 readable f32s; the load is unaligned.
        unsafe { _mm256_loadu_ps(x.as_ptr()) }
    };
    if std::mem::size_of_val(data) > INTERLEAVE_MAX_BYTES {
        dot_rows(data, q, out);
        return;
    }
    let mut blocks = data.chunks_exact(dim * ROWS_AT_ONCE).zip(out.chunks_exact_mut(ROWS_AT_ONCE));
    for (rows, scores) in &mut blocks {
        let row = |r: usize| &rows[r * dim..(r + 1) * dim];
        let chunks = |r: usize| row(r).as_chunks::<8>().0.iter();
        let mut acc = [_mm256_setzero_ps(); ROWS_AT_ONCE];
        // Zipped, not indexed: no bounds check in the loop.
        for ((((y, x0), x1), x2), x3) in q8.iter().zip(chunks(0)).zip(chunks(1)).zip(chunks(2)).zip(chunks(3)) {
            let y = load(y);
            for (a, x) in acc.iter_mut().zip([x0, x1, x2, x3]) {
                *a = _mm256_add_ps(*a, _mm256_mul_ps(load(x), y));
            }
        }
        for (r, s) in scores.iter_mut().enumerate() {
            let mut lanes = [0.0f32; 8];
            // SAFETY: `lanes` is 8 writable f32s; the store is unaligned.
            unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), acc[r]) };
            *s = reduce(&lanes, &row(r)[whole..], q_tail);
        }
    }
    let done = out.len() / ROWS_AT_ONCE * ROWS_AT_ONCE;
    dot_rows(&data[done * dim..], q, &mut out[done..]);
}

/// A row's dot product from its eight lanes and its tail (`x_tail · y_tail`, added in order at
/// the end), as [`dot`] reduces it.
#[inline(always)]
fn reduce(acc: &[f32; 8], x_tail: &[f32], y_tail: &[f32]) -> f32 {
    let mut tail = 0.0f32;
    for (x, y) in x_tail.iter().zip(y_tail) {
        tail += x * y;
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
}

/// Dot product of two equally long slices.
///
/// Eight independent accumulators over chunks of eight let the compiler keep the sum in vector
/// registers (no reassociation of a single float sum is needed); the tail is added at the end.
/// This is the definition every score of the index follows bitwise ([`dot_rows`]).
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let (a8, a_tail) = a.as_chunks::<8>();
    let (b8, b_tail) = b.as_chunks::<8>();
    let mut acc = [0.0f32; 8];
    for (x, y) in a8.iter().zip(b8) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    reduce(&acc, a_tail, b_tail)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn unit(v: Vec<f32>) -> Vec<f32> {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        if n == 0.0 { v } else { v.into_iter().map(|x| x / n).collect() }
    }

    /// The oracle: one sequential f64 sum per row.
    fn naive_scores(rows: &[Vec<f32>], q: &[f32]) -> Vec<f32> {
        rows.iter().map(|r| r.iter().zip(q).map(|(a, b)| f64::from(*a) * f64::from(*b)).sum::<f64>() as f32).collect()
    }

    /// The oracle for selection: sort everything.
    fn naive_top_k(scores: &[f32], k: usize) -> Vec<(usize, f32)> {
        let mut all: Vec<(usize, f32)> = scores.iter().copied().enumerate().collect();
        all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        all.truncate(k);
        all
    }

    fn rows_and_query() -> impl Strategy<Value = (usize, Vec<Vec<f32>>, Vec<f32>)> {
        (0usize..40).prop_flat_map(|dim| {
            let v = proptest::collection::vec(-1.0f32..1.0, dim);
            (Just(dim), proptest::collection::vec(v.clone().prop_map(unit), 0..200), v.prop_map(unit))
        })
    }

    proptest! {
        #[test]
        fn cosine_all_matches_naive((dim, rows, q) in rows_and_query()) {
            let mut index = VectorIndex::new(dim);
            for r in &rows {
                index.push(r)?;
            }
            let fast = index.cosine_all(&q)?;
            let slow = naive_scores(&rows, &q);
            prop_assert_eq!(fast.len(), slow.len());
            for (f, s) in fast.iter().zip(&slow) {
                prop_assert!((f - s).abs() <= 1e-5, "fast {} vs naive {}", f, s);
            }
        }

        /// Every score is bitwise `dot` of its row, through the dispatched kernel (AVX where the
        /// CPU has it), the portable one, and into a reused buffer.
        #[test]
        fn scores_are_dot_bitwise((dim, rows, q) in rows_and_query(), stale in 0usize..5) {
            let mut index = VectorIndex::new(dim);
            for r in &rows {
                index.push(r)?;
            }
            let want: Vec<u32> = rows.iter().map(|r| if dim == 0 { 0.0f32 } else { dot(r, &q) }.to_bits()).collect();
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<u32>>();
            prop_assert_eq!(bits(&index.cosine_all(&q)?), want.clone());
            let mut out = vec![f32::NAN; stale];
            index.cosine_into(&q, &mut out)?;
            prop_assert_eq!(bits(&out), want.clone());
            if dim > 0 {
                let mut portable = vec![0.0; rows.len()];
                dot_rows(&index.data, &q, &mut portable);
                prop_assert_eq!(bits(&portable), want);
            }
        }

        #[test]
        fn top_k_matches_naive((dim, rows, q) in rows_and_query(), k in 0usize..70) {
            let mut index = VectorIndex::new(dim);
            for r in &rows {
                index.push(r)?;
            }
            let scores = index.cosine_all(&q)?;
            // Selection is exact against a full sort of the same scores.
            prop_assert_eq!(index.top_k(&q, k)?, naive_top_k(&scores, k));
            // And the scores it reports are the naive ones, up to float rounding.
            let slow = naive_scores(&rows, &q);
            let mut want = slow.clone();
            want.sort_by(|a, b| b.total_cmp(a));
            want.truncate(k);
            let got: Vec<f32> = index.top_k(&q, k)?.into_iter().map(|(_, s)| s).collect();
            prop_assert_eq!(got.len(), want.len());
            for (g, w) in got.iter().zip(&want) {
                prop_assert!((g - w).abs() <= 1e-5);
            }
        }

        #[test]
        fn best_k_with_many_ties_matches_naive(
            scores in proptest::collection::vec(prop_oneof![Just(-1.0f32), Just(-0.0), Just(0.0), Just(0.5), Just(1.0)], 0..300),
            k in 0usize..40,
        ) {
            prop_assert_eq!(best_k(&scores, k), naive_top_k(&scores, k));
        }

        #[test]
        fn dot_matches_naive(pairs in proptest::collection::vec((-10.0f32..10.0, -10.0f32..10.0), 0..200)) {
            let (a, b): (Vec<f32>, Vec<f32>) = pairs.into_iter().unzip();
            let slow: f64 = a.iter().zip(&b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum();
            let bound = 1e-4 * (1.0 + a.iter().zip(&b).map(|(x, y)| f64::from((x * y).abs())).sum::<f64>());
            prop_assert!((f64::from(dot(&a, &b)) - slow).abs() <= bound);
        }
    }

    #[test]
    fn push_rejects_wrong_dim_and_non_finite() {
        let mut index = VectorIndex::new(3);
        assert_eq!(index.push(&[1.0, 0.0, 0.0]).ok(), Some(0));
        assert!(matches!(index.push(&[1.0, 0.0]), Err(Error::Embeddings(_))));
        assert!(matches!(index.push(&[f32::NAN, 0.0, 0.0]), Err(Error::Embeddings(_))));
        assert!(matches!(index.cosine_all(&[1.0]), Err(Error::Embeddings(_))));
        assert_eq!(index.len(), 1);
        assert_eq!(index.row(0), Some(&[1.0, 0.0, 0.0][..]));
        assert_eq!(index.row(1), None);
    }

    #[test]
    fn top_k_of_hand_made_vectors() -> Result<()> {
        let mut index = VectorIndex::new(2);
        let s = std::f32::consts::FRAC_1_SQRT_2;
        for v in [[1.0, 0.0], [0.0, 1.0], [s, s], [-1.0, 0.0], [s, s]] {
            index.push(&v)?;
        }
        let top = index.top_k(&[1.0, 0.0], 3)?;
        assert_eq!(top, vec![(0, 1.0), (2, s), (4, s)]);
        assert_eq!(index.top_k(&[1.0, 0.0], 0)?, vec![]);
        assert_eq!(index.top_k(&[1.0, 0.0], 99)?.len(), 5);
        assert_eq!(VectorIndex::new(2).top_k(&[1.0, 0.0], 3)?, vec![]);
        Ok(())
    }

    /// At the model's dimension (384, no tail) and with a tail, over row counts around the block
    /// size and past the interleaving limit, every score is bitwise `dot` of its row.
    #[test]
    fn scores_at_model_dimension_are_dot_bitwise() -> Result<()> {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        };
        // 5,500 rows of 384 are past `INTERLEAVE_MAX_BYTES`: one row at a time.
        for (dim, rows) in [384, 387].into_iter().flat_map(|d| [0, 1, 3, 4, 5, 8, 9, 600].map(|r| (d, r))).chain([(384, 5_500)]) {
            let mut index = VectorIndex::new(dim);
            let data: Vec<Vec<f32>> = (0..rows).map(|_| (0..dim).map(|_| next()).collect()).collect();
            for r in &data {
                index.push(r)?;
            }
            let q: Vec<f32> = (0..dim).map(|_| next()).collect();
            let got = index.cosine_all(&q)?;
            for (r, g) in data.iter().zip(&got) {
                assert_eq!(g.to_bits(), dot(r, &q).to_bits(), "dim {dim}, rows {rows}");
            }
        }
        Ok(())
    }

    #[test]
    fn zero_dim_index_scores_zero() -> Result<()> {
        let mut index = VectorIndex::new(0);
        index.push(&[])?;
        index.push(&[])?;
        assert_eq!(index.cosine_all(&[])?, vec![0.0, 0.0]);
        Ok(())
    }
}
