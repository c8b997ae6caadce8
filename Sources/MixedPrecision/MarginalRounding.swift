import Foundation

/// Discrete widths that meet a cost target, reached from a differentiable search's argmax by
/// moving along its learned distributions (HMQ's compression, EdMIPS' BitOps). A short search
/// ends with broad distributions whose argmax misses the target (E[b] = 2.7 with the argmax at 2);
/// this is the rounding that keeps to what was learned while meeting the cost.
///
/// Each decision d (a layer's weight width, or its input's) holds candidate `widths[d]` with
/// probabilities `marginals[d]`. `error(widths)` is the signed relative miss: positive when the
/// choice costs too much (widths must come down), negative when it costs too little. While
/// |error| > `tolerance`, one decision moves one candidate step (down when positive, up when
/// negative): the move with the largest ratio marginal(new)/marginal(old) among those that do
/// not cross the band to the other side; when every move crosses it, the one ending nearest the
/// target if nearer than where we are, and the rounding stops.
public enum MarginalRounding {
    public static func meet(_ chosen: [Int], widths: [[Int]], marginals: [[Float]], tolerance: Double, error: ([Int]) -> Double) -> [Int] {
        var current = chosen
        let limit = widths.reduce(0) { $0 + $1.count } + 1
        for _ in 0..<limit {
            let miss = error(current)
            guard abs(miss) > tolerance else { break }
            let lower = miss > 0
            var moves: [(choice: [Int], score: Float)] = []
            for d in current.indices {
                let order = widths[d].indices.sorted { widths[d][$0] < widths[d][$1] }
                guard let here = widths[d].firstIndex(of: current[d]), let at = order.firstIndex(of: here) else { continue }
                let step = lower ? at - 1 : at + 1
                guard order.indices.contains(step) else { continue }
                let next = order[step], m = marginals[d]
                var choice = current
                choice[d] = widths[d][next]
                moves.append((choice, m[next] / max(m[here], .leastNormalMagnitude)))
            }
            func crosses(_ c: [Int]) -> Bool { let e = error(c); return (e > 0) != lower && abs(e) > tolerance }
            // Sorting is stable: equal scores keep the decisions' order.
            if let move = moves.enumerated().sorted(by: { $0.element.score > $1.element.score || ($0.element.score == $1.element.score && $0.offset < $1.offset) })
                .map(\.element).first(where: { !crosses($0.choice) }) {
                current = move.choice
                continue
            }
            if let nearest = moves.map(\.choice).min(by: { abs(error($0)) < abs(error($1)) }), abs(error(nearest)) < abs(miss) {
                current = nearest
            }
            break
        }
        return current
    }
}
