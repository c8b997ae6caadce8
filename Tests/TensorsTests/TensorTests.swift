import Testing
import Tensors

@Test func shapesAreChecked() throws {
    #expect(throws: TensorError.self) { try Tensor(shape: [2, 3], scalars: [1, 2, 3]) }
    #expect(throws: TensorError.self) { try Tensor.zeros([-1, 3]) }
    #expect(throws: TensorError.self) { try Tensor.zeros([1 << 40, 1 << 40]) }  // overflows Int
    #expect(throws: TensorError.self) { try Tensor.zeros([1 << 20, 1 << 20]) }  // over the limit
    let t = try Tensor(shape: [2, 3], scalars: [1, 2, 3, 4, 5, 6])
    #expect(try t.reshaped([3, -1]).shape == [3, 2])
    #expect(throws: TensorError.self) { try t.reshaped([4, -1]) }
    #expect(throws: TensorError.self) { try t.reshaped([-1, -1]) }
    #expect(try t.value(at: [1, 2]) == 6)
    #expect(try t.value(at: [-1, 0]) == 4)
    #expect(throws: TensorError.self) { try t.value(at: [2, 0]) }
    #expect(try t.slice(1).scalars == [4, 5, 6])
    #expect(try t.slice(0..<1).shape == [1, 3])
}

@Test func copyOnWrite() throws {
    let a = try Tensor(shape: [2], scalars: [1, 2])
    var b = a
    try b.setValue(9, at: [0])
    #expect(a.scalars == [1, 2])
    #expect(b.scalars == [9, 2])
}

@Test func broadcasting() throws {
    let a = try Tensor(shape: [2, 3], scalars: [1, 2, 3, 4, 5, 6])
    let row = try Tensor(shape: [3], scalars: [10, 20, 30])
    let col = try Tensor(shape: [2, 1], scalars: [100, 200])
    #expect(try (a + row).scalars == [11, 22, 33, 14, 25, 36])
    #expect(try (a * col).scalars == [100, 200, 300, 800, 1000, 1200])
    #expect(try (row - col).shape == [2, 3])
    #expect(try (row - col).scalars == [-90, -80, -70, -190, -180, -170])
    #expect(try (a / Tensor(2)).scalars == [0.5, 1, 1.5, 2, 2.5, 3])
    let c3 = try Tensor(shape: [2, 1, 2], scalars: [1, 2, 3, 4])
    let b3 = try Tensor(shape: [3, 1], scalars: [10, 20, 30])
    let s = try c3 + b3
    #expect(s.shape == [2, 3, 2])
    #expect(try s.value(at: [1, 2, 0]) == 33)
    #expect(throws: TensorError.self) { try a + Tensor(shape: [2], scalars: [1, 2]) }
    do { _ = try a + Tensor(shape: [4], scalars: [1, 2, 3, 4]); Issue.record("no error") } catch {
        #expect("\(error)".contains("[2, 3] and [4]"))
    }
}

@Test func reductions() throws {
    let a = try Tensor(shape: [2, 3], scalars: [1, 5, 3, 4, 2, 6])
    #expect(a.sum() == 21)
    #expect(a.mean() == 3.5)
    #expect(a.max() == 6 && a.min() == 1)
    #expect(try a.sum(axis: 0).scalars == [5, 7, 9])
    #expect(try a.sum(axis: 1, keepDims: true).shape == [2, 1])
    #expect(try a.mean(axis: -1).scalars == [3, 4])
    #expect(try a.max(axis: 0).scalars == [4, 5, 6])
    #expect(try a.argmax(axis: 1).scalars == [1, 2])
    #expect(try a.argmax() == 5)
    #expect(throws: TensorError.self) { try a.sum(axis: 2) }
    let tie = try Tensor(shape: [3], scalars: [2, 7, 7])
    #expect(try tie.argmax() == 1)
    #expect(try Tensor(shape: [2], scalars: [1, .nan]).max().isNaN)
}

@Test func matmulAndTranspose() throws {
    let a = try Tensor(shape: [2, 3], scalars: [1, 2, 3, 4, 5, 6])
    let b = try Tensor(shape: [3, 2], scalars: [7, 8, 9, 10, 11, 12])
    #expect(try a.matmul(b).scalars == [58, 64, 139, 154])
    #expect(try a.transposed().scalars == [1, 4, 2, 5, 3, 6])
    #expect(try a.matmul(Tensor([1, 1, 1])).scalars == [6, 15])
    #expect(throws: TensorError.self) { try a.matmul(a) }
}

@Test func randomIsSeededAndShaped() throws {
    var r1 = RandomGenerator(seed: 42), r2 = RandomGenerator(seed: 42), r3 = RandomGenerator(seed: 43)
    let a = try Tensor.random([1000], .normal(mean: 0, std: 1), using: &r1)
    let b = try Tensor.random([1000], .normal(mean: 0, std: 1), using: &r2)
    let c = try Tensor.random([1000], .normal(mean: 0, std: 1), using: &r3)
    #expect(a == b)
    #expect(a != c)
    var r = RandomGenerator(seed: 1)
    let big = try Tensor.random([100_000], .normal(mean: 2, std: 3), using: &r)
    let mean = big.mean()
    let std = try (big - Tensor(mean)).map { $0 * $0 }.mean().squareRoot()
    // 100,000 draws: the mean's standard error is 3/√1e5 ≈ 0.0095; allow 5 of them.
    #expect(abs(mean - 2) < 0.05)
    #expect(abs(std - 3) < 0.05)
    let u = try Tensor.random([10_000], .uniform(low: -1, high: 3), using: &r)
    #expect(u.min() >= -1 && u.max() < 3)
    let rad = try Tensor.random([1000], .rademacher, using: &r)
    #expect(rad.scalars.allSatisfy { $0 == 1 || $0 == -1 })
    #expect(abs(rad.mean()) < 0.15)
    #expect(throws: TensorError.self) { try Tensor.random([2], .uniform(low: 1, high: 0), using: &r) }
}
