import Dispatch
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// How the kernels spread work across cores.
///
/// `forEach` splits work statically: worker `t` of `T` takes items `t, t+T, t+2T, …` (uniform
/// tasks, each worker owning one scratch buffer). `forEachDynamic` hands each worker the next
/// item left, for loops whose workers may run at different speeds (a shared machine's cores).
public enum Parallel {
    /// Cores this process may use (at least 1).
    public static let availableCores: Int = {
        #if canImport(Glibc)
        let n = Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        return max(1, n)
        #else
        return 1
        #endif
    }()

    nonisolated(unsafe) private static var _defaultThreads = availableCores

    /// Set by `withThreads` for the work it runs (per thread, not per process).
    @TaskLocal static var override: Int?

    /// The number of threads kernels use when a call does not say. Clamped to 1…64. Inside
    /// `withThreads(n) { … }` it reads n on that thread.
    public static var defaultThreads: Int {
        get { override ?? _defaultThreads }
        set { _defaultThreads = min(64, max(1, newValue)) }
    }

    /// Runs `body` with `defaultThreads` = `threads` on this thread (a worker that already owns
    /// a core runs its share single-threaded this way).
    public static func withThreads<R>(_ threads: Int, _ body: () throws -> R) rethrows -> R {
        try $override.withValue(max(1, threads)) { try body() }
    }

    /// Runs `body(worker)` for `worker` in `0..<workers`, on up to `workers` threads; returns
    /// when all are done. With one worker the body runs on the calling thread.
    public static func run(workers: Int, _ body: (Int) -> Void) {
        if workers <= 1 { body(0); return }
        if WorkerPool.shared.tryRun(workers: workers, body) { return }
        DispatchQueue.concurrentPerform(iterations: workers, execute: body)
    }

    /// Runs `body(item, worker)` for every item in `0..<count`, items dealt round-robin to
    /// `min(threads, count)` workers.
    public static func forEach(_ count: Int, threads: Int = defaultThreads, _ body: (Int, Int) -> Void) {
        let workers = min(max(1, threads), count)
        if workers <= 0 { return }
        run(workers: workers) { w in
            var item = w
            while item < count {
                body(item, w)
                item += workers
            }
        }
    }

    /// Runs `body(range, worker)` over `0..<count` in one contiguous chunk per worker — on all
    /// `defaultThreads` from `minimum` elements (enough work to pay for the hand-off), else
    /// inline as worker 0 — and returns how many workers there were (chunks may be empty).
    @discardableResult
    public static func chunks(_ count: Int, minimum: Int = 1 << 16, _ body: (Range<Int>, Int) -> Void) -> Int {
        if count <= 0 { return 0 }
        let workers = count >= minimum ? defaultThreads : 1
        let chunk = (count + workers - 1) / workers
        run(workers: workers) { w in
            let r = Swift.min(count, w * chunk)..<Swift.min(count, (w + 1) * chunk)
            if !r.isEmpty { body(r, w) }
        }
        return workers
    }

    /// Runs `body(item, worker)` for every item in `0..<count`, each worker taking the next
    /// item not yet taken: a worker on a core that runs slower (another tenant on a shared
    /// machine) takes fewer. Which worker runs an item is not fixed, so the items' results
    /// must not depend on it (a worker index still names one scratch buffer at a time).
    public static func forEachDynamic(_ count: Int, threads: Int = defaultThreads, _ body: (Int, Int) -> Void) {
        let workers = min(max(1, threads), count)
        if workers <= 0 { return }
        if workers == 1 { for item in 0..<count { body(item, 0) }; return }
        let next = Atomic<Int>(0)
        run(workers: workers) { w in
            while true {
                let item = next.wrappingAdd(1, ordering: .relaxed).oldValue
                if item >= count { return }
                body(item, w)
            }
        }
    }
}
