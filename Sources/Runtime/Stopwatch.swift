import Dispatch

/// Timing for benchmarks and measured cost tables.
public enum Stopwatch {
    /// Best time in seconds of `body` over repeats lasting at least `budget` seconds (and at
    /// least 3 runs), after one warm-up run.
    public static func best(budget: Double = 0.3, _ body: () -> Void) -> Double {
        body()
        var best = Double.infinity, spent = 0.0, runs = 0
        while spent < budget || runs < 3 {
            let t0 = DispatchTime.now().uptimeNanoseconds
            body()
            let dt = Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9
            best = min(best, dt); spent += dt; runs += 1
        }
        return best
    }
}
