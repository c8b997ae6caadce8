import Foundation
import Network
import Tensors

/// Arithmetic, comparison and indexing on script values. Tensors go to the Tensors library
/// (elementwise with broadcasting); lists of numbers are elementwise too.
enum Operations {
    static func fail(_ message: String, _ at: SourceLocation?) -> ScriptError { .runtime(message, at) }

    static func negate(_ v: Value, at: SourceLocation) throws -> Value {
        switch v {
        case .number(let x): return .number(-x)
        case .tensor(let t): return .tensor(-t)
        case .list: return try binary(.multiply, v, .number(-1), at: at)
        default: throw fail("expected a Number, List or Tensor after '-', got \(v.typeName)", at)
        }
    }

    @inline(__always)
    static func numeric(_ op: BinaryOperator, _ a: Double, _ b: Double, at: SourceLocation) throws -> Double {
        switch op {
        case .add: return a + b
        case .subtract: return a - b
        case .multiply: return a * b
        case .divide: return a / b
        case .remainder:
            guard b != 0 else { throw fail("remainder by zero", at) }
            let r = a.truncatingRemainder(dividingBy: b)
            return r != 0 && (r < 0) != (b < 0) ? r + b : r  // the sign of the divisor, as Python
        case .power: return pow(a, b)
        default: throw fail("'\(op.rawValue)' does not apply to numbers", at)
        }
    }

    static func tensorOp(_ op: BinaryOperator, _ a: Tensor, _ b: Tensor, at: SourceLocation) throws -> Value {
        do {
            switch op {
            case .add: return .tensor(try a + b)
            case .subtract: return .tensor(try a - b)
            case .multiply: return .tensor(try a * b)
            case .divide: return .tensor(try a / b)
            case .power: return .tensor(try a.pow(b))
            case .remainder: return .tensor(try Tensor.zip(a, b, operation: "%") { x, y in
                    let r = x.truncatingRemainder(dividingBy: y); return r != 0 && (r < 0) != (y < 0) ? r + y : r })
            case .matmul: return Convert.value(try a.matmul(b))
            default: throw fail("'\(op.rawValue)' does not apply to tensors", at)
            }
        } catch let e as TensorError {
            throw fail("\(e)", at)
        }
    }

    /// An operator on two numbers: the common case in loops, inlined where code runs.
    @inline(__always)
    static func numbers(_ op: BinaryOperator, _ a: Double, _ b: Double, at: SourceLocation) throws -> Value {
        switch op {
        case .add: return .number(a + b)
        case .subtract: return .number(a - b)
        case .multiply: return .number(a * b)
        case .less: return .bool(a < b)
        case .lessEqual: return .bool(a <= b)
        case .greater: return .bool(a > b)
        case .greaterEqual: return .bool(a >= b)
        case .equal: return .bool(a == b)
        case .notEqual: return .bool(a != b)
        case .matmul: throw fail("'@' multiplies matrices; for numbers use '*'", at)
        default: return .number(try numeric(op, a, b, at: at))
        }
    }

    static func binary(_ op: BinaryOperator, _ l: Value, _ r: Value, at: SourceLocation) throws -> Value {
        if case .number(let a) = l, case .number(let b) = r { return try numbers(op, a, b, at: at) }
        switch op {
        case .equal: return .bool(equal(l, r))
        case .notEqual: return .bool(!equal(l, r))
        case .less, .lessEqual, .greater, .greaterEqual: return .bool(try compare(op, l, r, at: at))
        default: break
        }
        switch (l, r) {
        case (.string(let a), .string(let b)) where op == .add:
            do { try MemoryBudget.check(bytes: a.utf8.count + b.utf8.count, for: "a string of \(a.utf8.count + b.utf8.count) bytes") }
            catch { throw fail("\(error)", at) }
            return .string(a + b)
        case (.tensor(let a), _):
            return try tensorOp(op, a, try Convert.tensor(r, what: "the right operand of '\(op.rawValue)'", at: at), at: at)
        case (_, .tensor(let b)):
            return try tensorOp(op, try Convert.tensor(l, what: "the left operand of '\(op.rawValue)'", at: at), b, at: at)
        case (.list, _), (_, .list), (.range, _), (_, .range):
            if op == .matmul {
                return try tensorOp(op, try Convert.tensor(l, what: "the left operand of '@'", at: at),
                                    try Convert.tensor(r, what: "the right operand of '@'", at: at), at: at)
            }
            return try listOp(op, l, r, at: at)
        default:
            if op == .add && (l.typeName == "String" || r.typeName == "String") {
                throw fail("cannot add \(l.typeName) and \(r.typeName); use interpolation: \"\\(x)\"", at)
            }
            throw fail("'\(op.rawValue)' does not apply to \(l.typeName) and \(r.typeName)", at)
        }
    }

    /// Lists of numbers are elementwise (a number broadcasts). Anything else in them is an error.
    static func listOp(_ op: BinaryOperator, _ l: Value, _ r: Value, at: SourceLocation) throws -> Value {
        func items(_ v: Value) -> [Value]? {
            switch v {
            case .list(let xs): return xs
            case .range(let lo, let hi): return (lo..<hi).map { .number(Double($0)) }
            default: return nil
            }
        }
        let a = items(l), b = items(r)
        if let a, let b {
            guard a.count == b.count else { throw fail("'\(op.rawValue)' on lists of different lengths (\(a.count) and \(b.count))", at) }
            return .list(try zip(a, b).map { try binary(op, $0, $1, at: at) })
        }
        if let a { return .list(try a.map { try binary(op, $0, r, at: at) }) }
        if let b { return .list(try b.map { try binary(op, l, $0, at: at) }) }
        throw fail("'\(op.rawValue)' does not apply to \(l.typeName) and \(r.typeName)", at)
    }

    static func equal(_ l: Value, _ r: Value) -> Bool {
        switch (l, r) {
        case (.null, .null): return true
        case (.bool(let a), .bool(let b)): return a == b
        case (.number(let a), .number(let b)): return a == b
        case (.string(let a), .string(let b)): return a == b
        case (.list(let a), .list(let b)): return a.count == b.count && zip(a, b).allSatisfy { equal($0, $1) }
        case (.range(let a, let b), .range(let c, let d)): return a == c && b == d
        case (.range(let lo, let hi), .list), (.list, .range(let lo, let hi)):
            let other: Value = { if case .list = l { return l }; return r }()
            return equal(.list((lo..<hi).map { .number(Double($0)) }), other)
        case (.record(let a), .record(let b)):
            return a.keys.sorted() == b.keys.sorted() && a.keys.allSatisfy { equal(a[$0]!, b[$0]!) }
        case (.tensor(let a), .tensor(let b)): return a == b
        case (.model(let a), .model(let b)): return a === b
        case (.closure(let a), .closure(let b)): return a === b
        case (.builtin(let a), .builtin(let b)): return a === b
        default: return false
        }
    }

    static func compare(_ op: BinaryOperator, _ l: Value, _ r: Value, at: SourceLocation) throws -> Bool {
        switch (l, r) {
        case (.number(let a), .number(let b)):
            switch op { case .less: return a < b; case .lessEqual: return a <= b; case .greater: return a > b; default: return a >= b }
        case (.string(let a), .string(let b)):
            switch op { case .less: return a < b; case .lessEqual: return a <= b; case .greater: return a > b; default: return a >= b }
        default:
            throw fail("cannot compare \(l.typeName) and \(r.typeName) with '\(op.rawValue)'", at)
        }
    }

    static func position(_ v: Value, count: Int, at: SourceLocation) throws -> Int {
        guard case .number(let x) = v, let k = Convert.whole(x) else {
            throw fail("expected an integer index, got \(v.typeName == "Number" ? v.shown : v.typeName)", at)
        }
        let i = k < 0 ? k + count : k
        guard i >= 0 && i < count else { throw fail("index \(k) out of range: expected 0..<\(count)", at) }
        return i
    }

    static func bounds(_ lo: Int, _ hi: Int, count: Int, at: SourceLocation) throws -> Range<Int> {
        guard lo >= 0, hi <= count, lo <= hi else { throw fail("slice \(lo)..<\(hi) out of range: expected within 0..<\(count)", at) }
        return lo..<hi
    }

    static func index(_ base: Value, _ idx: [Value], at: SourceLocation) throws -> Value {
        switch base {
        case .list(let xs):
            guard idx.count == 1 else { throw fail("a list takes one index, got \(idx.count)", at) }
            if case .range(let lo, let hi) = idx[0] { return .list(Array(xs[try bounds(lo, hi, count: xs.count, at: at)])) }
            return xs[try position(idx[0], count: xs.count, at: at)]
        case .range(let lo, let hi):
            guard idx.count == 1 else { throw fail("a range takes one index, got \(idx.count)", at) }
            return .number(Double(lo + (try position(idx[0], count: hi - lo, at: at))))
        case .string(let s):
            let chars = Array(s)
            guard idx.count == 1 else { throw fail("a string takes one index, got \(idx.count)", at) }
            if case .range(let lo, let hi) = idx[0] { return .string(String(chars[try bounds(lo, hi, count: chars.count, at: at)])) }
            return .string(String(chars[try position(idx[0], count: chars.count, at: at)]))
        case .record(let r):
            guard idx.count == 1, case .string(let key) = idx[0] else { throw fail("a record is indexed by one String key", at) }
            guard let v = r[key] else { throw fail("no field \"\(key)\"; the record has \(r.keys.map { "'\($0)'" }.joined(separator: ", "))", at) }
            return v
        case .tensor(let t):
            var cur = t
            for (axis, i) in idx.enumerated() {
                guard cur.rank >= 1 else { throw fail("too many indices (\(idx.count)) for a tensor of shape \(t.shape)", at) }
                if case .range(let lo, let hi) = i {
                    guard axis == 0 else { throw fail("only the first index of a tensor may be a range", at) }
                    cur = try cur.slice(try bounds(lo, hi, count: cur.shape[0], at: at))
                    if idx.count > 1 { throw fail("a range index must be the only index", at) }
                } else {
                    do { cur = try cur.slice(try position(i, count: cur.shape[0], at: at)) } catch let e as TensorError { throw fail("\(e)", at) }
                }
            }
            return Convert.value(cur)
        case .dataset(let d):
            guard idx.count == 1 else { throw fail("a dataset takes one index", at) }
            if case .range(let lo, let hi) = idx[0] { return .dataset(try d.slice(try bounds(lo, hi, count: d.count, at: at))) }
            let i = try position(idx[0], count: d.count, at: at)
            return .record(Record([("image", .tensor(try d.images.slice(i))), ("label", .number(Double(d.labels[i])))]))
        default:
            throw fail("cannot index a \(base.typeName)", at)
        }
    }

    static func setIndex(_ base: Value, _ idx: [Value], _ value: Value, at: SourceLocation) throws -> Value {
        switch base {
        case .list(var xs):
            guard idx.count == 1 else { throw fail("a list takes one index, got \(idx.count)", at) }
            xs[try position(idx[0], count: xs.count, at: at)] = value
            return .list(xs)
        case .record(var r):
            guard idx.count == 1, case .string(let key) = idx[0] else { throw fail("a record is indexed by one String key", at) }
            r[key] = value
            return .record(r)
        case .tensor(var t):
            guard case .number(let x) = value else { throw fail("a tensor element must be a Number, got \(value.typeName)", at) }
            let positions = try idx.enumerated().map { axis, i -> Int in
                guard axis < t.rank else { throw fail("too many indices for shape \(t.shape)", at) }
                return try position(i, count: t.shape[axis], at: at)
            }
            guard positions.count == t.rank else { throw fail("expected \(t.rank) indices to set a tensor element, got \(positions.count)", at) }
            try t.setValue(Float(x), at: positions)
            return .tensor(t)
        default:
            throw fail("cannot assign into a \(base.typeName)", at)
        }
    }
}
