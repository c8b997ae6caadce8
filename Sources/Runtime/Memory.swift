#if canImport(Glibc)
import CMalloc
#endif

/// How the process's allocator treats the large, short-lived buffers training and Hessian
/// products make and drop every batch (activations, gradients, tangents: megabytes each).
/// glibc's defaults serve a buffer above its (adaptive) mmap threshold with a fresh mapping
/// and hand the top of the heap back to the kernel once 128 KiB are free, so each batch pays
/// page faults and zeroing for memory it just released (seen as system time: 1.6 s of a 15 s
/// Hutchinson run on ResNet-20). `keepFreedMemory` fixes the mmap threshold at 32 MiB (the
/// largest glibc accepts), stops trimming, and grows the heap 256 MiB at a time, so freed
/// buffers are reused; the resident size then stays at the run's peak instead of falling back
/// between batches. Every thread allocates from the main heap (`M_ARENA_MAX` 1): a script runs
/// on a thread of its own, whose arena's heaps are at most 64 MiB, so its large buffers were
/// mapped and faulted in afresh every step (one epoch of the 4096-wide MLP: 816k page faults,
/// 207k from the main heap). Buffers above 32 MiB are still mapped apart and returned when
/// freed: kept in the heap (`M_MMAP_MAX` 0: 134k faults) they fragment it, and a script
/// doubling a tensor under a 4 GiB address-space limit then died allocating instead of being
/// told the tensor is over the memory budget. The executables call it first thing; a library
/// user may too.
public enum Memory {
    public static func keepFreedMemory() {
        #if canImport(Glibc)
        _ = mallopt(M_MMAP_THRESHOLD, 32 << 20)
        _ = mallopt(M_TRIM_THRESHOLD, Int32.max)
        _ = mallopt(M_TOP_PAD, 256 << 20)
        _ = mallopt(M_ARENA_MAX, 1)
        #endif
    }
}
