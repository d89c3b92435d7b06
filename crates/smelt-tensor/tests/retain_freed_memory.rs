//! `retain_freed_memory`: after it, memory freed by one "run" serves the next without page
//! faults (glibc on Linux). Its own test binary: no other test allocates meanwhile.

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn minor_faults() -> i64 {
    // SAFETY: getrusage writes into the zeroed struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) }, 0);
    u.ru_minflt
}

/// Page faults taken by allocating and writing a 16 MiB tensor (a prefill's logits).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn faults_of_one_tensor() -> i64 {
    let before = minor_faults();
    let v = vec![1.0f32; 4 << 20];
    std::hint::black_box(&v);
    drop(v);
    minor_faults() - before
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn a_freed_tensor_is_reused_without_page_faults() {
    smelt_tensor::storage::retain_freed_memory();
    let first = faults_of_one_tensor();
    let again: Vec<i64> = (0..3).map(|_| faults_of_one_tensor()).collect();
    // 16 MiB is 4096 pages; the first allocation faults them in (fewer with huge pages), the
    // next ones reuse them.
    assert!(first > 0, "the first allocation took no page faults");
    for f in again {
        assert!(f < 64, "a reused 16 MiB tensor took {f} page faults (first: {first})");
    }
}
