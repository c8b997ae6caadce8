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
/// between batches. Buffers above 32 MiB (a 4096² layer's gradient is 64 MiB) are not mapped
/// apart either (`M_MMAP_MAX` 0), and every thread allocates from the main heap (`M_ARENA_MAX`
/// 1): a script runs on a thread of its own, whose arena's heaps are at most 64 MiB, so such a
/// buffer was mapped and faulted in afresh every step (one epoch of the 4096-wide MLP: 816k
/// page faults, 134k with both). The executables call it first thing; a library user may too.
public enum Memory {
    public static func keepFreedMemory() {
        #if canImport(Glibc)
        _ = mallopt(M_MMAP_THRESHOLD, 32 << 20)
        _ = mallopt(M_TRIM_THRESHOLD, Int32.max)
        _ = mallopt(M_TOP_PAD, 256 << 20)
        _ = mallopt(M_MMAP_MAX, 0)
        _ = mallopt(M_ARENA_MAX, 1)
        #endif
    }
}
