//! What is measured: `VectorIndex::cosine_all` (one dot product per stored row) and
//! `VectorIndex::top_k(query, 10)` (the same scores plus selecting the ten best), single-threaded.
//!
//! Corpus: 1k, 10k and 100k random unit vectors of dimension 384 (all-MiniLM-L6-v2's size), from
//! the crate's seeded SplitMix64 generator (`ctxwin::replay::synth::Rng`, hence the bench needs the
//! `replay` feature), so every run scores the same data. The query is one of the stored rows;
//! before timing, each size checks that the query's best match is its own row with a score of 1
//! and that `cosine_all` agrees with a plain f64 dot product. Building the index is not timed.
//!
//! Run: `cargo bench --bench vectors -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ctxwin::VectorIndex;
use ctxwin::replay::synth::Rng;

const DIM: usize = 384;
const SIZES: [usize; 3] = [1_000, 10_000, 100_000];
const SEED: u64 = 0x00c7_0a11_2024;

/// A random unit vector of dimension `DIM`.
fn unit_vector(rng: &mut Rng) -> Vec<f32> {
    let v: Vec<f32> = (0..DIM).map(|_| rng.next_f32()).collect();
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.into_iter().map(|x| x / norm).collect()
}

fn build(rows: usize) -> VectorIndex {
    let mut rng = Rng::new(SEED);
    let mut index = VectorIndex::with_capacity(DIM, rows);
    for _ in 0..rows {
        if let Err(e) = index.push(&unit_vector(&mut rng)) {
            panic!("bench data rejected: {e}");
        }
    }
    index
}

/// The check each size must pass before it is timed.
fn check(index: &VectorIndex, query_row: usize, query: &[f32]) {
    let top = match index.top_k(query, 10) {
        Ok(top) => top,
        Err(e) => panic!("top_k failed: {e}"),
    };
    assert_eq!(top.len(), 10);
    assert_eq!(top[0].0, query_row, "the query's own row must come first");
    assert!((top[0].1 - 1.0).abs() < 1e-5, "self-similarity {}", top[0].1);
    assert!(top.windows(2).all(|w| w[0].1 >= w[1].1), "top_k is not sorted");
    let scores = match index.cosine_all(query) {
        Ok(s) => s,
        Err(e) => panic!("cosine_all failed: {e}"),
    };
    assert_eq!(scores.len(), index.len());
    for row in [0, index.len() / 3, index.len() - 1] {
        let naive: f64 = index.row(row).unwrap_or_default().iter().zip(query).map(|(a, b)| f64::from(*a) * f64::from(*b)).sum();
        assert!((f64::from(scores[row]) - naive).abs() < 1e-5, "row {row}: {} vs {naive}", scores[row]);
    }
}

fn bench_vectors(c: &mut Criterion) {
    let mut cosine = c.benchmark_group("cosine_all");
    let indexes: Vec<(usize, VectorIndex)> = SIZES.iter().map(|&n| (n, build(n))).collect();
    for (n, index) in &indexes {
        let query_row = n / 2;
        let query = index.row(query_row).unwrap_or_default().to_vec();
        check(index, query_row, &query);
        cosine.throughput(Throughput::Elements(*n as u64));
        cosine.bench_with_input(BenchmarkId::from_parameter(n), &query, |b, q| b.iter(|| index.cosine_all(black_box(q))));
    }
    cosine.finish();

    let mut top = c.benchmark_group("top_k10");
    for (n, index) in &indexes {
        let query = index.row(n / 2).unwrap_or_default().to_vec();
        top.throughput(Throughput::Elements(*n as u64));
        top.bench_with_input(BenchmarkId::from_parameter(n), &query, |b, q| b.iter(|| index.top_k(black_box(q), 10)));
    }
    top.finish();
}

criterion_group!(benches, bench_vectors);
criterion_main!(benches);
