//! Sealing and unsealing secret values with a vault data key (AES-256-GCM with the
//! vault/kind/name/version binding), at 1 KB and at the 25 KB maximum.
//!
//! Run: `cargo bench --profile dev --bench seal` (dependencies are optimised in the dev
//! profile; see Cargo.toml).

#![allow(clippy::expect_used)] // a benchmark that cannot set up should stop loudly

use coffer_crypto::{RootKey, SealContext};
use coffer_types::ObjectKind;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

fn seal_unseal(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = RootKey::generate(&dir.path().join("root.key")).expect("root key");
    let (key, _) = root.new_data_key("bench-kv").expect("data key");
    let context = SealContext {
        vault: "bench-kv",
        kind: ObjectKind::Secret,
        name: "sqldb-password",
        version: "0123456789abcdef0123456789abcdef",
    };
    let mut group = c.benchmark_group("seal");
    for size in [1_024usize, 25_600] {
        let value = vec![b'x'; size];
        let sealed = key.seal(&context, &value).expect("seal");
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::new("seal", size), &value, |b, v| {
            b.iter(|| key.seal(&context, v).expect("seal"))
        });
        group.bench_with_input(BenchmarkId::new("unseal", size), &sealed, |b, s| {
            b.iter(|| key.unseal(&context, s).expect("unseal"))
        });
    }
    group.finish();
}

criterion_group!(benches, seal_unseal);
criterion_main!(benches);
