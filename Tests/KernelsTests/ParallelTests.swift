import Foundation
import Testing
import Runtime

/// Both ways of dealing items to workers run every item exactly once, with a worker index
/// below the number of workers, whatever the count and the threads (more threads than items,
/// one item, none).
@Test(arguments: [1, 2, 3, 8])
func parallelLoopsRunEveryItemOnce(_ threads: Int) {
    final class Tally: @unchecked Sendable {
        let lock = NSLock()
        var runs: [Int], badWorkers = 0
        init(_ count: Int) { runs = [Int](repeating: 0, count: count) }
    }
    for count in [0, 1, 2, 7, 1000] {
        for dynamic in [false, true] {
            let tally = Tally(count), workers = max(1, min(threads, count))
            let body: (Int, Int) -> Void = { item, worker in
                tally.lock.lock(); defer { tally.lock.unlock() }
                tally.runs[item] += 1
                if worker < 0 || worker >= workers { tally.badWorkers += 1 }
            }
            if dynamic { Parallel.forEachDynamic(count, threads: threads, body) } else { Parallel.forEach(count, threads: threads, body) }
            #expect(tally.runs.allSatisfy { $0 == 1 }, "count \(count), threads \(threads), dynamic \(dynamic)")
            #expect(tally.badWorkers == 0)
        }
    }
}
