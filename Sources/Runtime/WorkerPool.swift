import CThreads
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Threads kept for `Parallel.run`: one per core beyond the caller's, each spinning briefly
/// for the next job and then sleeping on a condition variable. A job is a body and a worker
/// count; the caller runs worker 0 itself and waits, spinning, for the rest.
///
/// Dispatch's `concurrentPerform` wakes a sleeping thread for every call, about 40–50 µs on
/// this machine's VM: two 27 µs halves took 66–77 µs, more than one thread alone. Kernels
/// that split a layer, or each K slice of a GEMM, into parallel regions of tens of
/// microseconds lost most of their second core to it. Here a helper that ran the last job is
/// still spinning when the next arrives.
///
/// One job runs at a time: a caller that finds the pool busy (another thread's job, or a
/// nested `Parallel.run` inside a body) gets false from `tryRun` and uses Dispatch instead.
final class WorkerPool: @unchecked Sendable {
    static let shared = WorkerPool(helpers: max(0, Parallel.availableCores - 1))

    let helpers: Int
    /// Bumped once per job, the job's worker count in its low 8 bits (so a helper reads the
    /// count of the job it saw); helpers run a job when they see a generation they have not run.
    private let generation = Atomic<Int>(0)
    /// Helpers still running the current job.
    private let remaining = Atomic<Int>(0)
    private let busy = Atomic<Bool>(false)
    private let sleepers = Atomic<Int>(0)
    /// The current job, published by `generation` (written before it is bumped, read after).
    private var body: ((Int) -> Void)? = nil
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    /// How long an idle helper spins before it sleeps.
    static let spinNanoseconds: UInt64 = 300_000

    init(helpers: Int) {
        self.helpers = helpers
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(condition, nil)
        for index in 0..<helpers {
            let context = Unmanaged.passRetained(Helper(pool: self, index: index + 1)).toOpaque()
            var thread = pthread_t()
            var attributes = pthread_attr_t()
            pthread_attr_init(&attributes)
            pthread_attr_setstacksize(&attributes, 8 << 20)
            pthread_create(&thread, &attributes, { raw in
                let helper = Unmanaged<Helper>.fromOpaque(raw!).takeRetainedValue()
                helper.pool.loop(index: helper.index)
                return nil
            }, context)
            pthread_attr_destroy(&attributes)
            pthread_detach(thread)
        }
    }

    private final class Helper {
        let pool: WorkerPool, index: Int
        init(pool: WorkerPool, index: Int) { self.pool = pool; self.index = index }
    }

    /// Runs `body(w)` for w in 0..<workers, worker 0 on the calling thread; false (nothing run)
    /// when the pool is busy or has too few helpers.
    func tryRun(workers: Int, _ body: (Int) -> Void) -> Bool {
        guard workers - 1 <= helpers, workers < 256, busy.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged else { return false }
        withoutActuallyEscaping(body) { escaping in
            self.body = escaping
            remaining.store(workers - 1, ordering: .relaxed)
            let g = generation.load(ordering: .relaxed)
            generation.store((g >> 8 + 1) << 8 | workers, ordering: .sequentiallyConsistent)
            if sleepers.load(ordering: .sequentiallyConsistent) > 0 {
                pthread_mutex_lock(mutex)
                pthread_cond_broadcast(condition)
                pthread_mutex_unlock(mutex)
            }
            escaping(0)
            while remaining.load(ordering: .acquiring) > 0 { spinPause() }
            self.body = nil
        }
        busy.store(false, ordering: .releasing)
        return true
    }

    private func loop(index: Int) {
        var seen = 0
        while true {
            // Spin for the next job, then sleep until one is posted.
            var current = generation.load(ordering: .acquiring)
            if current == seen {
                let start = Self.now()
                var spins = 0
                while current == seen {
                    spinPause()
                    spins += 1
                    if spins & 255 == 0 && Self.now() - start > Self.spinNanoseconds { break }
                    current = generation.load(ordering: .acquiring)
                }
            }
            if current == seen {
                pthread_mutex_lock(mutex)
                sleepers.add(1, ordering: .sequentiallyConsistent)
                while generation.load(ordering: .sequentiallyConsistent) == seen { pthread_cond_wait(condition, mutex) }
                sleepers.subtract(1, ordering: .sequentiallyConsistent)
                pthread_mutex_unlock(mutex)
                current = generation.load(ordering: .acquiring)
            }
            seen = current
            guard index < current & 0xff else { continue }
            runJob(index)
            remaining.subtract(1, ordering: .releasing)
        }
    }

    /// Runs this helper's share; not inlined, so the body is released before the helper reports
    /// done (the caller's `withoutActuallyEscaping` checks nothing kept it).
    @inline(never) private func runJob(_ index: Int) { body?(index) }

    private static func now() -> UInt64 {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return UInt64(t.tv_sec) &* 1_000_000_000 &+ UInt64(t.tv_nsec)
    }
}

/// A pause for spin-wait loops (x86 `pause`, otherwise nothing).
@inline(__always) func spinPause() { mpq_spin_pause() }
