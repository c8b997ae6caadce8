import Foundation
import Kernels
import Network
import Tensors

// Running a plan on one image: per-worker buffers and one helper per kind of step.
extension IntegerModel {
    /// One worker's buffers: every slot's storage for one image, and the patch sliver.
    final class Workspace {
        let bytes: [UnsafeMutablePointer<UInt8>?]
        let ints: [UnsafeMutablePointer<Int32>?]
        let rowsIn = UnsafeMutablePointer<UnsafePointer<UInt8>>.allocate(capacity: IGEMM.tileRows)
        let rowsOut = UnsafeMutablePointer<UnsafeMutableRawPointer>.allocate(capacity: IGEMM.tileRows)
        let rowsRes = UnsafeMutablePointer<UnsafeRawPointer>.allocate(capacity: IGEMM.tileRows)
        init(_ plan: Plan) {
            bytes = plan.buffers.map { $0.bytes ? UnsafeMutablePointer<UInt8>.allocate(capacity: max($0.count, 1)) : nil }
            ints = plan.buffers.map { $0.bytes ? nil : UnsafeMutablePointer<Int32>.allocate(capacity: max($0.count, 1)) }
            for (b, info) in zip(bytes, plan.buffers) { b?.initialize(repeating: 0, count: max(info.count, 1)) }
            for (b, info) in zip(ints, plan.buffers) { b?.initialize(repeating: 0, count: max(info.count, 1)) }
        }
        deinit {
            bytes.forEach { $0?.deallocate() }
            ints.forEach { $0?.deallocate() }
            rowsIn.deallocate(); rowsOut.deallocate(); rowsRes.deallocate()
        }
    }

    /// Runs the plan on one image (NCHW floats), writing its logits.
    func execute(_ plan: Plan, _ ws: Workspace, image: UnsafePointer<Float>, logits: UnsafeMutablePointer<Float>) {
        func bytes(_ s: Int) -> UnsafeMutablePointer<UInt8> { ws.bytes[plan.slots[s].buffer]! }
        func ints(_ s: Int) -> UnsafeMutablePointer<Int32> { ws.ints[plan.slots[s].buffer]! }
        /// Element e of a slot (a code or a sum) as a signed integer.
        @inline(__always) func read(_ s: Slot, _ b: UnsafeMutablePointer<UInt8>?, _ i: UnsafeMutablePointer<Int32>?, _ e: Int) -> Int64 {
            if let b { return s.signed ? Int64(Int8(bitPattern: b[e])) : Int64(b[e]) }
            return Int64(i![e])
        }
        for step in plan.steps {
            switch step {
            case let .input(to, p):
                let s = plan.slots[to], out = bytes(to)
                for ch in 0..<s.c {
                    for y in 0..<s.h {
                        for x in 0..<s.w {
                            let v = image[(ch * s.h + y) * s.w + x]
                            if p.binary { out[s.offset(y, x) + ch] = v >= 0 ? 1 : 0xFF; continue }
                            let q = (Double(v) / p.scale).rounded(.toNearestOrAwayFromZero)
                            out[s.offset(y, x) + ch] = UInt8(truncatingIfNeeded: Int32(min(max(q, Double(p.qmin)), Double(p.qmax))))
                        }
                    }
                }
            case .layer(let l):
                runLayer(l, plan, ws)
            case .xnor(let l):
                runXnor(l, plan, ws)
            case let .relu(from, to):
                let (s, t) = (plan.slots[from], plan.slots[to])
                for y in 0..<s.h {
                    for x in 0..<s.w {
                        let (a, b) = (s.offset(y, x), t.offset(y, x))
                        if s.codes {
                            let (src, dst) = (bytes(from), bytes(to))
                            for ch in 0..<s.c { dst[b + ch] = Int8(bitPattern: src[a + ch]) < 0 ? 0 : src[a + ch] }
                        } else {
                            let (src, dst) = (ints(from), ints(to))
                            for ch in 0..<s.c { dst[b + ch] = max(src[a + ch], 0) }
                        }
                    }
                }
            case let .quantize(from, to, dyadics, lo, hi, binary):
                let s = plan.slots[from], t = plan.slots[to]
                let (a, b) = (ints(from), bytes(to))
                for y in 0..<s.h {
                    for x in 0..<s.w {
                        for ch in 0..<s.c {
                            if binary { b[t.offset(y, x) + ch] = a[s.offset(y, x) + ch] >= 0 ? 1 : 0xFF; continue }
                            let d = dyadics.count == 1 ? dyadics[0] : dyadics[ch]
                            let q = min(max(d.apply(Int64(a[s.offset(y, x) + ch])), Int64(lo)), Int64(hi))
                            b[t.offset(y, x) + ch] = UInt8(truncatingIfNeeded: q)
                        }
                    }
                }
            case let .maxPool(from, to, a):
                let s = plan.slots[from], t = plan.slots[to]
                let (sb, si) = (s.codes ? bytes(from) : nil, s.codes ? nil : ints(from))
                let (tb, ti) = (t.codes ? bytes(to) : nil, t.codes ? nil : ints(to))
                for oy in 0..<t.h {
                    for ox in 0..<t.w {
                        for ch in 0..<s.c {
                            var m = Int64.min
                            for ky in 0..<a.kernel[0] {
                                let iy = oy * a.strides[0] - a.pads[0] + ky
                                guard iy >= 0 && iy < s.h else { continue }
                                for kx in 0..<a.kernel[1] {
                                    let ix = ox * a.strides[1] - a.pads[1] + kx
                                    guard ix >= 0 && ix < s.w else { continue }
                                    m = max(m, read(s, sb, si, s.offset(iy, ix) + ch))
                                }
                            }
                            let e = t.offset(oy, ox) + ch
                            if let tb { tb[e] = UInt8(truncatingIfNeeded: m) } else { ti![e] = Int32(truncatingIfNeeded: m) }
                        }
                    }
                }
            case let .globalAverage(from, to):
                let (s, t) = (plan.slots[from], plan.slots[to])
                let (a, b) = (bytes(from), bytes(to))
                let d = Int64(s.h * s.w)
                for ch in 0..<s.c {
                    var sum: Int64 = 0
                    for y in 0..<s.h { for x in 0..<s.w { sum += read(s, a, nil, s.offset(y, x) + ch) } }
                    // Divide rounding half to even, as the simulation's fake quantization does.
                    var q = sum >= 0 ? sum / d : -((-sum) / d)
                    let r = sum - q * d
                    if 2 * abs(r) > d || (2 * abs(r) == d && q % 2 != 0) { q += sum >= 0 ? 1 : -1 }
                    b[t.offset(0, 0) + ch] = UInt8(truncatingIfNeeded: q)
                }
            case let .add(x, y, to, da, db, codes):
                let (xs, ys, t) = (plan.slots[x], plan.slots[y], plan.slots[to])
                let (xb, xi) = (xs.codes ? bytes(x) : nil, xs.codes ? nil : ints(x))
                let (yb, yi) = (ys.codes ? bytes(y) : nil, ys.codes ? nil : ints(y))
                let (tb, ti) = (t.codes ? bytes(to) : nil, t.codes ? nil : ints(to))
                @inline(__always) func scaled(_ v: Int64, _ d: [Dyadic]?, _ ch: Int) -> Int32 {
                    guard let d else { return Int32(truncatingIfNeeded: v) }
                    return Int32(truncatingIfNeeded: min(max((d.count == 1 ? d[0] : d[ch]).apply(v), Int64(Int32.min)), Int64(Int32.max)))
                }
                for py in 0..<t.h {
                    for px in 0..<t.w {
                        for ch in 0..<t.c {
                            let sum = scaled(read(xs, xb, xi, xs.offset(py, px) + ch), da, ch) &+ scaled(read(ys, yb, yi, ys.offset(py, px) + ch), db, ch)
                            if let (lo, hi) = codes {
                                tb![t.offset(py, px) + ch] = UInt8(truncatingIfNeeded: min(max(sum, lo), hi))
                            } else {
                                ti![t.offset(py, px) + ch] = sum
                            }
                        }
                    }
                }
            }
        }
        let s = plan.slots[plan.output]
        let (b, i) = (s.codes ? bytes(plan.output) : nil, s.codes ? nil : ints(plan.output))
        for ch in 0..<s.c {
            let scale = s.scales.count == 1 ? s.scales[0] : s.scales[ch]
            for y in 0..<s.h {
                for x in 0..<s.w {
                    logits[(ch * s.h + y) * s.w + x] = Float(Double(read(s, b, i, s.offset(y, x) + ch)) * scale)
                }
            }
        }
    }

    /// A convolution or linear layer on one image, 12 output pixels at a time, each read in place
    /// from the (padded) input, 32 output channels per kernel call.
    func runLayer(_ l: LayerStep, _ plan: Plan, _ ws: Workspace) {
        let input = UnsafePointer(ws.bytes[plan.slots[l.input].buffer]!)
        let outSlot = plan.slots[l.output]
        let output = outSlot.codes ? UnsafeMutableRawPointer(ws.bytes[outSlot.buffer]!) : UnsafeMutableRawPointer(ws.ints[outSlot.buffer]!)
        let elementBytes = outSlot.codes ? 1 : 4
        var residual: UnsafeRawPointer? = nil, residualBytes = 1
        if let r = l.residual {
            let rs = plan.slots[r]
            residual = rs.codes ? UnsafeRawPointer(ws.bytes[rs.buffer]!) : UnsafeRawPointer(ws.ints[rs.buffer]!)
            residualBytes = rs.codes ? 1 : 4
        }
        let pixels = l.starts.count
        l.weights.data.withUnsafeBufferPointer { w in
            l.taps.withUnsafeBufferPointer { taps in
                var p0 = 0
                while p0 < pixels {
                    let rows = min(IGEMM.tileRows, pixels - p0)
                    for i in 0..<rows {
                        ws.rowsIn[i] = input + l.starts[p0 + i]
                        ws.rowsOut[i] = output + l.outStarts[p0 + i] * elementBytes
                        ws.rowsRes[i] = residual.map { $0 + l.resStarts[p0 + i] * residualBytes } ?? UnsafeRawPointer(input)
                    }
                    var column = 0
                    while column < l.cout {
                        let cols = min(32, l.cout - column)
                        IGEMM.convTile(rows: rows, cols: cols, a: ws.rowsIn, taps: taps.baseAddress!, ntaps: taps.count, gpp: l.groupsPerTap,
                                       flip: l.flip, weights: l.weights, base: w.baseAddress!, column: column, epilogue: l.epilogue,
                                       out: ws.rowsOut, res: ws.rowsRes)
                        column += cols
                    }
                    p0 += rows
                }
            }
        }
    }

    /// A binary layer on one image: each input pixel's signs packed into words, then per output
    /// pixel and channel Σ over valid taps of (C − 2·popcount(x XOR w)), plus the bias.
    func runXnor(_ l: XnorStep, _ plan: Plan, _ ws: Workspace) {
        let s = plan.slots[l.input], t = plan.slots[l.output]
        let input = ws.bytes[s.buffer]!, output = ws.ints[t.buffer]!
        var packed = [UInt64](repeating: 0, count: s.h * s.w * l.words)
        for y in 0..<s.h {
            for x in 0..<s.w {
                let base = s.offset(y, x)
                for ch in 0..<l.channels where Int8(bitPattern: input[base + ch]) < 0 {
                    packed[(y * s.w + x) * l.words + ch / 64] |= 1 << UInt64(ch % 64)
                }
            }
        }
        let taps = l.kh * l.kw
        for oy in 0..<l.outH {
            for ox in 0..<l.outW {
                let dst = t.offset(oy, ox)
                for co in 0..<l.cout {
                    var dot = 0
                    for ky in 0..<l.kh {
                        let iy = oy * l.sh - l.padTop + ky * l.dh
                        guard iy >= 0 && iy < s.h else { continue }
                        for kx in 0..<l.kw {
                            let ix = ox * l.sw - l.padLeft + kx * l.dw
                            guard ix >= 0 && ix < s.w else { continue }
                            let a = (iy * s.w + ix) * l.words, w = ((co * taps) + ky * l.kw + kx) * l.words
                            var differing = 0
                            for word in 0..<l.words { differing += (packed[a + word] ^ l.weights[w + word]).nonzeroBitCount }
                            dot += l.channels - 2 * differing
                        }
                    }
                    output[dst + co] = Int32(truncatingIfNeeded: dot) &+ l.bias[co]
                }
            }
        }
    }
}
