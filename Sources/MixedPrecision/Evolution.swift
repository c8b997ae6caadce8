import Foundation
import Network
import Runtime
import Tensors

/// APQ's evolutionary search (../shared/METHODS.md §4): a population of weight-width policies
/// under a budget, ranked by a predictor; each generation keeps the `parents` best predicted and
/// fills the rest with mutations (each layer redrawn with probability `mutation`) and uniform
/// crossovers of two parents. Candidates over the budget are rejected, so every policy the search
/// holds, and the one it returns, meets the budget. Before returning, the `topK` best predicted of
/// the last population are measured for real, and the best measured policy wins. With `rounds` > 1
/// (our addition), each round ends by measuring its finalists, the predictor is refined on every
/// policy measured so far, and the next round goes on from the population it left.
public struct Evolution: Sendable {
    public struct Options: Sendable {
        public var population = 100
        public var parents = 25
        public var iterations = 500
        /// The chance each layer of a mutated child is redrawn.
        public var mutation = 0.1
        /// The share of children made by mutation (the rest by crossover), as once-for-all's search.
        public var mutationShare = 0.5
        /// How many of the last population's best predicted are measured before one is returned.
        public var topK = 5
        /// Rounds of `iterations` generations, the predictor refined on the measured policies
        /// between them (1: APQ's search, its predictor fixed).
        public var rounds = 1
        public var seed: UInt64 = 0
        /// What the predictions score (the progress line shows them so).
        public var predicts = PredictionTarget.accuracy
        public init() {}
    }

    /// What may be searched: the candidate widths, every layer's cost at each, the limit, the
    /// pinned layers (first/last at 8 bits, as APQ) and the layers that must share a width.
    public struct Space: Sendable {
        public let choices: [Int]
        /// cost[layer][choice]
        public let costs: [[Double]]
        public let budget: Double
        /// Layer → index into `choices`.
        public let pinned: [Int: Int]
        /// Groups of layers taking one width (layers reading the same input).
        public let ties: [[Int]]
        /// The width dimension searched beside the bits, when it is (APQ's joint space).
        public let pruning: Pruning?
        public var layers: Int { costs.count }
        /// Genes of a candidate: one width per layer, then one keep ratio per pruned layer.
        var genes: Int { layers + (pruning?.layers.count ?? 0) }
        /// How many values gene `i` takes.
        func alphabet(_ i: Int) -> Int { i < layers ? choices.count : pruning!.ratios.count }

        /// Channel pruning searched with the bits: each of `layers` keeps one of `ratios` of its
        /// output channels (L1 norm, as `Model.pruned`), and its reader loses the same inputs.
        /// `costs[layer][(width · R + own keep) · R + input keep]` (R ratios; a layer neither
        /// pruned nor reading a pruned one has the same cost at every keep index).
        public struct Pruning: Sendable {
            public let ratios: [Double]
            public let layers: [Int]
            let outGene: [Int?], inGene: [Int?]
            let costs: [[Double]]
        }

        public init(choices: [Int], costs: [[Double]], budget: Double, pinned: [Int: Int] = [:], ties: [[Int]] = []) throws {
            guard !choices.isEmpty, Set(choices).count == choices.count, choices.allSatisfy({ (1...8).contains($0) }) else {
                throw MixedPrecisionError("evolve: expected distinct candidate widths in 1…8, found \(choices)")
            }
            guard !costs.isEmpty, costs.allSatisfy({ $0.count == choices.count && $0.allSatisfy(\.isFinite) }) else {
                throw MixedPrecisionError("evolve: expected a finite cost per layer and width")
            }
            guard budget.isFinite, budget > 0 else { throw MixedPrecisionError("evolve: expected a positive finite budget, found \(budget)") }
            for (l, c) in pinned where !(0..<costs.count).contains(l) || !(0..<choices.count).contains(c) {
                throw MixedPrecisionError("evolve: pinned layer \(l) or width index \(c) out of range")
            }
            for group in ties where group.contains(where: { !(0..<costs.count).contains($0) }) {
                throw MixedPrecisionError("evolve: tied layers \(group) out of range")
            }
            self.choices = choices.sorted(); self.budget = budget; self.pinned = pinned; self.ties = ties; self.pruning = nil
            // Columns follow the sorted widths.
            let order = choices.indices.sorted { choices[$0] < choices[$1] }
            self.costs = costs.map { row in order.map { row[$0] } }
        }

        /// The space of `model` under `cost` ≤ `budget`: every layer over `choices`, the first and
        /// last at `ends` (nil: free), layers reading one input tied unless `tieSharedInputs` is false.
        public init(model: Model, choices: [Int], cost: CostModel, budget: Double, ends: Int? = nil, tieSharedInputs: Bool = true) throws {
            let sorted = choices.sorted()
            var pinned: [Int: Int] = [:]
            if let ends, model.layers.count > 0 {
                guard let e = sorted.firstIndex(of: ends) else {
                    throw MixedPrecisionError("evolve: the ends are pinned at \(ends) bits, which is not a candidate width (\(sorted.map(String.init).joined(separator: ", ")))")
                }
                pinned[0] = e; pinned[model.layers.count - 1] = e
            }
            try self.init(choices: sorted, costs: try model.layers.map { l in try sorted.map { try cost.cost(l, bits: $0) } },
                          budget: budget, pinned: pinned, ties: tieSharedInputs ? model.layersSharingInputs : [])
        }

        /// The joint space of `model`: as `init(model:…)`, and each of `prune` (layer names, each
        /// prunable alone) keeping one of `ratios` of its channels. Costs count the kept channels
        /// (the pruned layer's outputs, its reader's inputs), exactly as the pruned model's
        /// layers cost; a measured latency table has no pruned entries and is refused.
        public init(model: Model, choices: [Int], cost: CostModel, budget: Double, ends: Int? = nil, tieSharedInputs: Bool = true,
                    prune: [String], ratios: [Double]) throws {
            let plain = try Space(model: model, choices: choices, cost: cost, budget: budget, ends: ends, tieSharedInputs: tieSharedInputs)
            if case .table = cost { throw MixedPrecisionError("evolve: a measured latency table has no entries for pruned layers; search pruning under energy, bitops or size") }
            let ratios = Array(Set(ratios)).sorted()
            guard !ratios.isEmpty, ratios.allSatisfy({ $0.isFinite && $0 > 0 && $0 <= 1 }) else {
                throw MixedPrecisionError("evolve: keep ratios must lie in (0, 1], found \(ratios)")
            }
            guard !prune.isEmpty, Set(prune).count == prune.count else { throw MixedPrecisionError("evolve: expected distinct layers to prune, found \(prune)") }
            let prunable = model.prunableLayers
            let pruned: [(layer: Int, reader: Int)] = try prune.map { name in
                guard let i = model.layers.firstIndex(where: { $0.name == name }) else {
                    throw MixedPrecisionError("evolve: no layer named '\(name)'; prunable layers are \(prunable.joined(separator: ", "))")
                }
                guard let r = model.pruningReader(i) else {
                    throw MixedPrecisionError("evolve: layer '\(name)' cannot be pruned alone; prunable layers are \(prunable.joined(separator: ", "))")
                }
                return (i, r)
            }
            var outGene = [Int?](repeating: nil, count: model.layers.count), inGene = outGene
            for (g, p) in pruned.enumerated() { outGene[p.layer] = g; inGene[p.reader] = g }
            let r = ratios.count, sorted = plain.choices
            let table: [[Double]] = try model.layers.enumerated().map { l, layer in
                var row: [Double] = []
                for b in sorted {
                    for o in 0..<r {
                        for i in 0..<r {
                            var shaped = layer
                            if outGene[l] != nil { shaped = shaped.keeping(outputs: Model.channelsKept(layer.weightShape[0], ratio: ratios[o])) }
                            if let g = inGene[l] {
                                let producer = model.layers[pruned[g].layer].weightShape[0]
                                let per = layer.weightShape[1] / max(1, producer)
                                shaped = shaped.keeping(inputs: Model.channelsKept(producer, ratio: ratios[i]) * per)
                            }
                            row.append(try cost.cost(shaped, bits: b))
                        }
                    }
                }
                return row
            }
            self.choices = plain.choices; self.costs = plain.costs; self.budget = budget; self.pinned = plain.pinned; self.ties = plain.ties
            self.pruning = Pruning(ratios: ratios, layers: pruned.map(\.layer), outGene: outGene, inGene: inGene, costs: table)
        }

        /// A candidate's cost (widths as choice indices, then keep ratios as ratio indices).
        func cost(_ genome: [Int]) -> Double {
            guard let pruning else { return genome.enumerated().reduce(0) { $0 + costs[$1.offset][$1.element] } }
            let r = pruning.ratios.count
            var total = 0.0
            for l in 0..<layers {
                let o = pruning.outGene[l].map { genome[layers + $0] } ?? 0, i = pruning.inGene[l].map { genome[layers + $0] } ?? 0
                total += pruning.costs[l][(genome[l] * r + o) * r + i]
            }
            return total
        }
        public func cost(bits: [Int], keep: [Double] = []) throws -> Double { cost(try genome(Point(bits: bits, keep: keep))) }

        func genome(_ point: Point) throws -> [Int] {
            let bits = point.bits
            guard bits.count == layers else { throw MixedPrecisionError("evolve: expected \(layers) widths, found \(bits.count)") }
            let widths = try bits.map { b in
                guard let i = choices.firstIndex(of: b) else { throw MixedPrecisionError("evolve: \(b) bits is not a candidate width (\(choices))") }
                return i
            }
            guard let pruning else {
                guard point.keep.isEmpty else { throw MixedPrecisionError("evolve: this space prunes nothing, found keep ratios \(point.keep)") }
                return widths
            }
            guard point.keep.count == pruning.layers.count else { throw MixedPrecisionError("evolve: expected \(pruning.layers.count) keep ratios, found \(point.keep.count)") }
            return try widths + point.keep.map { k in
                guard let i = pruning.ratios.firstIndex(of: k) else { throw MixedPrecisionError("evolve: keep ratio \(k) is not a candidate (\(pruning.ratios))") }
                return i
            }
        }
        func bits(_ genome: [Int]) -> [Int] { genome.prefix(layers).map { choices[$0] } }
        func point(_ genome: [Int]) -> Point {
            Point(bits: bits(genome), keep: pruning.map { p in genome.dropFirst(layers).map { p.ratios[$0] } } ?? [])
        }

        /// The genes a search may change: unpinned layers leading their tie group, and the keep ratios.
        var free: [Int] {
            (0..<layers).filter { l in pinned[l] == nil && !ties.contains { $0.contains(l) && $0[0] != l } } + Array(layers..<genes)
        }

        /// The pins and ties applied: each tied group takes its first layer's width.
        func legal(_ g: [Int]) -> [Int] {
            var g = g
            for (l, c) in pinned { g[l] = c }
            for group in ties { let c = g[group[0]]; for l in group { g[l] = c } }
            return g
        }

        /// The cheapest policy: every free layer at the narrowest width (and the lowest keep ratio).
        public var cheapest: (bits: [Int], cost: Double) {
            let g = legal(Array(repeating: 0, count: genes))
            return (bits(g), cost(g))
        }

        /// A budget nothing meets is an error naming the cheapest cost.
        public func checkFeasible() throws {
            let c = cheapest
            guard c.cost <= budget else {
                throw MixedPrecisionError("evolve: no policy meets the budget \(Self.shown(budget)): the cheapest (free layers at \(choices[0]) bits\(pinned.isEmpty ? "" : ", pinned layers as pinned")) costs \(Self.shown(c.cost))\(pruning.map { " (every pruned layer keeping \($0.ratios[0]))" } ?? "")")
            }
        }
        static func shown(_ x: Double) -> String { String(format: "%.6g", x) }

        /// `count` policies drawn uniformly (every layer's width independently) and kept only when
        /// within the budget: random search's candidates. Gives up after `maxDraws` draws (by
        /// default 1000 per policy wanted and at least 10 million: a tight budget that one draw in
        /// thousands meets still gets its policies, in about a second), with an error saying how
        /// many it found.
        public func random(count: Int, seed: UInt64, maxDraws: Int? = nil) throws -> [[Int]] {
            try randomPoints(count: count, seed: seed, maxDraws: maxDraws).map(\.bits)
        }

        /// As `random`, with each pruned layer's keep ratio drawn too.
        public func randomPoints(count: Int, seed: UInt64, maxDraws: Int? = nil) throws -> [Point] {
            guard (0...100_000).contains(count) else { throw MixedPrecisionError("evolve: expected a count of 0…100000, found \(count)") }
            try checkFeasible()
            let limit = maxDraws ?? max(1000 * count, 10_000_000)
            var rng = RandomGenerator(seed: seed)
            var out: [Point] = [], draws = 0
            while out.count < count {
                draws += 1
                if draws % 100_000 == 0 { try Interrupt.check() }
                guard draws <= limit else {
                    throw MixedPrecisionError("evolve: only \(out.count) of \(limit) uniform draws met the budget \(Self.shown(budget)); give a looser budget, fewer samples or fewer wide choices (the widths drawn: \(choices.map(String.init).joined(separator: ", ")))")
                }
                let g = legal((0..<genes).map { Int(rng.next() % UInt64(alphabet($0))) })
                if cost(g) <= budget { out.append(point(g)) }
            }
            return out
        }

        /// A uniform draw, then free layers lowered one width at a time (at random) until it fits.
        func repairedDraw(_ rng: inout RandomGenerator) -> [Int] {
            var g = legal((0..<genes).map { Int(rng.next() % UInt64(alphabet($0))) })
            let leaders = free
            while cost(g) > budget {
                let lowerable = leaders.filter { g[$0] > 0 }
                guard !lowerable.isEmpty else { break }
                g[lowerable[Int(rng.next() % UInt64(lowerable.count))]] -= 1
                g = legal(g)
            }
            return g
        }
    }

    /// One point of the space: weight widths per layer and, when pruning is searched, the keep
    /// ratio of each pruned layer (empty otherwise).
    public struct Point: Hashable, Sendable {
        public var bits: [Int]
        public var keep: [Double]
        public init(bits: [Int], keep: [Double] = []) { self.bits = bits; self.keep = keep }
    }

    public struct Candidate: Sendable {
        public var bits: [Int]
        /// Keep ratios of the pruned layers (empty when pruning is not searched).
        public var keep: [Double]
        public var predicted: Double
        /// The measured accuracy, when it was measured.
        public var measured: Double?
        /// The choosing score (higher is better) when the run was given one (`rank`).
        public var score: Double?
        public var cost: Double
    }

    public struct Generation: Sendable {
        public var iteration: Int
        public var bestPredicted: Double
        /// The best accuracy measured so far (each generation's best predicted policy is measured
        /// when it is new).
        public var bestMeasured: Double?
        /// The best predicted policy's cost over the budget.
        public var budgetUse: Double
        public var line: String
    }

    public struct Result: Sendable {
        /// The best measured of the finalists and the policies measured during the search.
        public var best: Candidate
        /// Every measured candidate, best measured first.
        public var measured: [Candidate]
        public var history: [Generation]
        public var predictions: Int
        public var interrupted: Bool
    }

    public var options: Options
    public init(options: Options = Options()) { self.options = options }

    /// A generation's children of `parents`: the first share by mutation (each free gene redrawn
    /// with probability `mutation`), the rest by uniform crossover of two parents; a child over the
    /// budget or a copy of one already held is drawn again (after 100 tries, a repaired draw).
    func children(of parents: [[Int]], wanted: Int, space: Space, leaders: [Int], rng: inout RandomGenerator) -> [[Int]] {
        var seen = Set(parents)
        var children: [[Int]] = []
        let mutations = Int((Double(wanted) * options.mutationShare).rounded())
        while children.count < wanted {
            var child: [Int]? = nil
            for _ in 0..<100 {
                var g: [Int]
                if children.count < mutations {
                    g = parents[Int(rng.next() % UInt64(parents.count))]
                    for l in leaders where Double(rng.uniform()) < options.mutation { g[l] = Int(rng.next() % UInt64(space.alphabet(l))) }
                } else {
                    let a = parents[Int(rng.next() % UInt64(parents.count))], b = parents[Int(rng.next() % UInt64(parents.count))]
                    g = zip(a, b).map { rng.next() & 1 == 0 ? $0 : $1 }
                }
                g = space.legal(g)
                if space.cost(g) <= space.budget && !seen.contains(g) { child = g; break }
            }
            let c = child ?? space.repairedDraw(&rng)
            seen.insert(c); children.append(c)
        }
        return children
    }

    /// Searches `space` with `predict` (accuracies of many policies at once) and `measure` (the
    /// real accuracies of a few; fewer than asked, the first ones, when interrupted). `progress`
    /// sees one line per generation. Ctrl-C between generations still measures the finalists;
    /// Ctrl-C during a measurement ends the search with what was measured.
    public func run(_ space: Space, predict: ([[Int]]) throws -> [Double], measure: ([[Int]]) throws -> [Double],
                    progress: (Generation) -> Void = { _ in }) throws -> Result {
        try run(space, predictPoints: { try predict($0.map(\.bits)) }, measurePoints: { try measure($0.map(\.bits)) }, progress: progress)
    }

    /// As `run(_:predictPoints:measurePoints:rank:progress:refit:)` with `predictor` and `measure`
    /// (measured samples of points: accuracy, and the divergence when the predictor's target or
    /// `select` needs it). Between rounds the predictor is refined on every policy measured so far
    /// (`PolicyPredictor.refined(with:)`, on the figure its target names); the returned policy is
    /// the measured one best by `select`. Each point is measured once; the samples measured are
    /// returned beside the result, by point.
    public func run(_ space: Space, predictor: any PolicyPredictor, measure: ([Point]) throws -> [PolicySamples.Sample],
                    select: PredictionTarget = .accuracy, progress: (Generation) -> Void = { _ in }) throws -> (result: Result, samples: [Point: PolicySamples.Sample]) {
        // The refit and rank closures are optional (so escaping) but do not outlive this call.
        try withoutActuallyEscaping(measure) { measure in try withoutActuallyEscaping(progress) { progress in
            try run(space, predictor: predictor, escapingMeasure: measure, select: select, progress: progress)
        } }
    }

    private func run(_ space: Space, predictor: any PolicyPredictor, escapingMeasure measure: @escaping ([Point]) throws -> [PolicySamples.Sample],
                     select: PredictionTarget, progress: @escaping (Generation) -> Void) throws -> (result: Result, samples: [Point: PolicySamples.Sample]) {
        var seen: [Point: PolicySamples.Sample] = [:]
        // The samples of `points`, the first ones only when Ctrl-C stopped the measurement.
        func measured(_ points: [Point]) throws -> [PolicySamples.Sample] {
            var fresh: [Point] = []
            for p in points where seen[p] == nil && !fresh.contains(p) { fresh.append(p) }
            let got = fresh.isEmpty ? [] : try measure(fresh)
            guard got.count <= fresh.count else { throw MixedPrecisionError("evolve: measured \(got.count) policies for \(fresh.count)") }
            for (p, s) in zip(fresh, got) { seen[p] = s }
            return points.prefix { seen[$0] != nil }.map { seen[$0]! }
        }
        var o = options
        o.predicts = predictor.target
        let r = try Evolution(options: o).run(space, predictPoints: { try predictor.predict(points: $0) }, measurePoints: { try measured($0).map(\.accuracy) },
                                              rank: select == .accuracy ? nil : { try measured($0).map(select.score) }, progress: progress,
                                              refit: { points, _ in
                                                  let refined = try predictor.refined(with: try measured(points))
                                                  return { try refined.predict(points: $0) }
                                              })
        return (r, seen)
    }

    /// As `run(_:predict:measure:progress:)` over a space that may prune: the predictor and the
    /// measurement see each candidate's widths and keep ratios. With `rounds` > 1, `refit` gets
    /// every policy measured so far after each round and returns the next round's predictor.
    /// `rank`, when given, scores every measured policy at the end (higher is better; e.g. minus
    /// its validation output divergence, which is less noisy than its accuracy) and the best
    /// scored is returned instead of the best measured; fewer scores than asked (Ctrl-C) fall back
    /// to the accuracies.
    public func run(_ space: Space, predictPoints: ([Point]) throws -> [Double], measurePoints measure: ([Point]) throws -> [Double],
                    rank: (([Point]) throws -> [Double])? = nil, progress: (Generation) -> Void = { _ in },
                    refit: (([Point], [Double]) throws -> ([Point]) throws -> [Double])? = nil) throws -> Result {
        let o = options
        guard (2...10_000).contains(o.population), (1..<o.population).contains(o.parents), (0...100_000).contains(o.iterations),
              (0...1).contains(o.mutation), (0...1).contains(o.mutationShare), (1...1000).contains(o.topK), (1...100).contains(o.rounds) else {
            throw MixedPrecisionError("evolve: expected population 2…10000, 1 ≤ parents < population, iterations 0…100000, mutation and its share in 0…1, top 1…1000, rounds 1…100; found \(o.population), \(o.parents), \(o.iterations), \(o.mutation), \(o.mutationShare), \(o.topK), \(o.rounds)")
        }
        guard o.rounds == 1 || refit != nil else { throw MixedPrecisionError("evolve: \(o.rounds) rounds need a predictor that can be refined") }
        try space.checkFeasible()
        // The refined predictor of the rounds after the first.
        var refined: (([Point]) throws -> [Double])? = nil
        var rng = RandomGenerator(seed: o.seed)
        var predictions = 0
        func scored(_ genomes: [[Int]]) throws -> [(genome: [Int], predicted: Double)] {
            let points = genomes.map(space.point)
            let p = try refined.map { try $0(points) } ?? predictPoints(points)
            guard p.count == genomes.count, p.allSatisfy(\.isFinite) else {
                throw MixedPrecisionError("evolve: the predictor gave \(p.count) predictions for \(genomes.count) policies, or a non-finite one")
            }
            predictions += genomes.count
            return zip(genomes, p).map { ($0, $1) }.sorted { $0.predicted > $1.predicted }
        }
        var measuredByGenome: [[Int]: Double] = [:]
        var interrupted = false
        // `measure` may return fewer accuracies than asked (the first ones) when Ctrl-C stopped it:
        // the search then ends with what it measured.
        func measured(_ genomes: [[Int]]) throws {
            let fresh = Array(Set(genomes.filter { measuredByGenome[$0] == nil })).sorted { $0.lexicographicallyPrecedes($1) }
            guard !fresh.isEmpty else { return }
            let a = try measure(fresh.map(space.point))
            guard a.count <= fresh.count, a.allSatisfy(\.isFinite) else {
                throw MixedPrecisionError("evolve: measured \(a.count) accuracies for \(fresh.count) policies, or a non-finite one")
            }
            for (g, v) in zip(fresh, a) { measuredByGenome[g] = v }
            if a.count < fresh.count { interrupted = true }
        }
        var population = try scored((0..<o.population).map { _ in space.repairedDraw(&rng) })
        // The finalists: the population's best predicted distinct policies, measured.
        func measureFinalists() throws {
            var finalists: [[Int]] = []
            for c in population where !finalists.contains(c.genome) && finalists.count < o.topK { finalists.append(c.genome) }
            if !interrupted { try measured(finalists) }
        }
        var history: [Generation] = []
        let leaders = space.free
        var generation = 0
        rounds: for round in 0..<o.rounds {
            if round > 0 {
                // The finalists measured, the predictor taught every measured policy, the
                // population ranked again by it.
                try measureFinalists()
                if Interrupt.isRequested { Interrupt.clear(); interrupted = true }
                guard !interrupted, let refit else { break rounds }
                let known = measuredByGenome.sorted { $0.key.lexicographicallyPrecedes($1.key) }
                let next = try refit(known.map { space.point($0.key) }, known.map(\.value))
                // Ctrl-C during the refit (training stops between epochs) keeps the last predictor.
                if Interrupt.isRequested { Interrupt.clear(); interrupted = true; break rounds }
                refined = next
                population = try scored(population.map(\.genome))
            }
            // Ctrl-C inside a generation (the predictor's forward pass stops with `Interrupted`) ends
            // the search as one between generations does.
            for iteration in (round == 0 ? 0 : 1)..<(o.iterations + 1) {
                do {
                    if iteration > 0 {
                        if Interrupt.isRequested { Interrupt.clear(); interrupted = true }
                        if interrupted { break rounds }
                        // Parents: the best predicted distinct policies.
                        var parents: [[Int]] = [], kept: [(genome: [Int], predicted: Double)] = []
                        for c in population where parents.count < o.parents && !parents.contains(c.genome) { parents.append(c.genome); kept.append(c) }
                        population = kept + (try scored(children(of: parents, wanted: o.population - parents.count, space: space, leaders: leaders, rng: &rng)))
                        population.sort { $0.predicted > $1.predicted }
                    }
                    let best = population[0]
                    try measured([best.genome])
                    let bestMeasured = measuredByGenome.values.max()
                    let use = space.cost(best.genome) / space.budget
                    let total = o.iterations * o.rounds
                    let line = String(format: "generation %d/%d", generation, total) + (o.rounds > 1 ? " (round \(round + 1)/\(o.rounds))" : "")
                        + " · best predicted " + o.predicts.shown(score: best.predicted)
                        + (bestMeasured.map { String(format: " · best measured %.2f%%", 100 * $0) } ?? "")
                        + String(format: " · budget %.1f%%", 100 * use)
                    let g = Generation(iteration: generation, bestPredicted: best.predicted, bestMeasured: bestMeasured, budgetUse: use, line: line)
                    history.append(g)
                    progress(g)
                    generation += 1
                } catch is Interrupted {
                    Interrupt.clear(); interrupted = true; break rounds
                }
            }
        }
        try measureFinalists()
        let predictedByGenome = Dictionary(population.map { ($0.genome, $0.predicted) }, uniquingKeysWith: { a, _ in a })
        var all: [Candidate] = []
        for (g, a) in measuredByGenome {
            let p = try predictedByGenome[g] ?? (try scored([g]))[0].predicted
            all.append(Candidate(bits: space.bits(g), keep: space.point(g).keep, predicted: p, measured: a, cost: space.cost(g)))
        }
        guard !all.isEmpty else { throw MixedPrecisionError("evolve: interrupted before any policy was measured") }
        func order(_ c: Candidate) -> [Int] { c.bits + c.keep.map { Int($0 * 1e6) } }
        all.sort { ($0.measured!, $0.predicted) > ($1.measured!, $1.predicted) || (($0.measured!, $0.predicted) == ($1.measured!, $1.predicted) && order($0).lexicographicallyPrecedes(order($1))) }
        if let rank, !interrupted {
            let scores = try rank(all.map { Point(bits: $0.bits, keep: $0.keep) })
            guard scores.count <= all.count, scores.allSatisfy(\.isFinite) else {
                throw MixedPrecisionError("evolve: ranked \(scores.count) policies of \(all.count), or gave a non-finite score")
            }
            if scores.count == all.count {
                for i in all.indices { all[i].score = scores[i] }
                // Stable: equal scores keep the accuracy order.
                all = all.indices.sorted { (scores[$0], -$0) > (scores[$1], -$1) }.map { all[$0] }
            } else { interrupted = true }
        }
        return Result(best: all[0], measured: all, history: history, predictions: predictions, interrupted: interrupted)
    }
}
