import Foundation
import Kernels
import Runtime
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
        /// A vector layer's gathered input and its sums.
        let vectorIn: UnsafeMutablePointer<UInt8>, vectorOut: UnsafeMutablePointer<Int32>
        /// Threads a vector layer's rows may spread over (more than 1 only when a single image runs).
        var threads = 1
        /// A depthwise layer's sums for one pixel, and a 3×3 one's pairs of neighbouring codes.
        let depthwiseSums: UnsafeMutablePointer<Int32>, depthwisePairs: UnsafeMutablePointer<Int32>
        /// A global average's per-channel sums (as many as the widest slot has channels).
        let channelSums: UnsafeMutablePointer<Int64>
        /// Where the AVX2 tile takes 8-bit weights: the layer's input codes widened to Int16
        /// (as long as the largest code buffer where the CPU has AVX2), and the tile's rows into it.
        let wide: UnsafeMutablePointer<Int16>
        let rowsWide = UnsafeMutablePointer<UnsafePointer<Int16>>.allocate(capacity: IGEMM.tileRows)
        /// Bytes past each code buffer's end that wide loads (the depthwise kernel's 16-byte
        /// loads past a pixel's last channel) may read.
        static let slack = 64
        init(_ plan: Plan) {
            depthwiseSums = .allocate(capacity: max(plan.depthwiseChannels, 16))
            depthwiseSums.initialize(repeating: 0, count: max(plan.depthwiseChannels, 16))
            // On 64-byte lines: every load and store of the pair kernels is a whole vector of 16 channels.
            depthwisePairs = UnsafeMutableRawPointer.allocate(byteCount: max(plan.depthwisePairs, 1) * 4, alignment: 64)
                .bindMemory(to: Int32.self, capacity: max(plan.depthwisePairs, 1))
            depthwisePairs.initialize(repeating: 0, count: max(plan.depthwisePairs, 1))
            let channels = max(plan.slots.map(\.c).max() ?? 0, 1)
            channelSums = .allocate(capacity: channels)
            channelSums.initialize(repeating: 0, count: channels)
            vectorIn = .allocate(capacity: max(plan.vectorLength, 1))
            vectorIn.initialize(repeating: 0, count: max(plan.vectorLength, 1))
            // Whole blocks of 8 for the lane-wise epilogue.
            vectorOut = .allocate(capacity: (plan.vectorOutputs + 7) / 8 * 8 + 8)
            vectorOut.initialize(repeating: 0, count: (plan.vectorOutputs + 7) / 8 * 8 + 8)
            bytes = plan.buffers.map { $0.bytes ? UnsafeMutablePointer<UInt8>.allocate(capacity: $0.count + Self.slack) : nil }
            let wideCount = IGEMM.hasAVX2 ? (plan.buffers.filter(\.bytes).map(\.count).max() ?? 0) : 0
            wide = .allocate(capacity: wideCount + 1)
            wide.initialize(repeating: 0, count: wideCount + 1)
            ints = plan.buffers.map { $0.bytes ? nil : UnsafeMutablePointer<Int32>.allocate(capacity: max($0.count, 1)) }
            for (b, info) in zip(bytes, plan.buffers) { b?.initialize(repeating: 0, count: info.count + Self.slack) }
            for (b, info) in zip(ints, plan.buffers) { b?.initialize(repeating: 0, count: max(info.count, 1)) }
        }
        deinit {
            bytes.forEach { $0?.deallocate() }
            ints.forEach { $0?.deallocate() }
            rowsIn.deallocate(); rowsOut.deallocate(); rowsRes.deallocate(); rowsWide.deallocate(); wide.deallocate()
            vectorIn.deallocate(); vectorOut.deallocate(); depthwiseSums.deallocate(); depthwisePairs.deallocate()
            channelSums.deallocate()
        }
    }

    /// Runs the plan on one image (NCHW floats), writing its logits.
    func execute(_ plan: Plan, _ ws: Workspace, image: UnsafePointer<Float>, logits: UnsafeMutablePointer<Float>) {
        func bytes(_ s: Int) -> UnsafeMutablePointer<UInt8> { ws.bytes[plan.slots[s].buffer]! }
        func ints(_ s: Int) -> UnsafeMutablePointer<Int32> { ws.ints[plan.slots[s].buffer]! }
        /// A binary slot's packed words.
        func words(_ s: Int) -> UnsafeMutablePointer<UInt64> { UnsafeMutableRawPointer(bytes(s)).assumingMemoryBound(to: UInt64.self) }
        /// Element e of a slot (a code or a sum) as a signed integer.
        @inline(__always) func read(_ s: Slot, _ b: UnsafeMutablePointer<UInt8>?, _ i: UnsafeMutablePointer<Int32>?, _ e: Int) -> Int64 {
            if let b { return s.signed ? Int64(Int8(bitPattern: b[e])) : Int64(b[e]) }
            return Int64(i![e])
        }
        for step in plan.steps {
            switch step {
            case let .input(to, p):
                let s = plan.slots[to], out = bytes(to)
                if p.binary {
                    BinaryConv.pack(pixels: s.h * s.w, channels: s.c, into: words(to)) { px, ch in image[ch * s.h * s.w + px] < 0 }
                    continue
                }
                for ch in 0..<s.c {
                    for y in 0..<s.h {
                        InputCodes.plane(image + (ch * s.h + y) * s.w, count: s.w, scale: p.scale, lo: p.qmin, hi: p.qmax,
                                         into: out + s.offset(y, 0) + ch, stride: s.stride)
                    }
                }
            case .layer(let l):
                runLayer(l, plan, ws)
            case .xnor(let l):
                runXnor(l, plan, ws)
            case .depthwise(let l):
                runDepthwise(l, plan, ws)
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
            case let .quantize(from, to, scales, lo, hi, binary):
                let s = plan.slots[from], t = plan.slots[to]
                let (a, b) = (ints(from), bytes(to))
                if binary {
                    packSigns(s, bytes: nil, ints: a, into: words(to))
                    continue
                }
                for y in 0..<s.h {
                    Requantize.codes(pixels: s.w, scales, src: a + s.offset(y, 0), srcStride: s.stride, dst: b + t.offset(y, 0), dstStride: t.stride,
                                     lo: lo, hi: hi)
                }
            case let .sign(from, to):
                packSigns(plan.slots[from], bytes: plan.slots[from].codes ? bytes(from) : nil, ints: plan.slots[from].codes ? nil : ints(from), into: words(to))
            case let .unpack(from, to):
                let s = plan.slots[from], t = plan.slots[to], (a, b) = (words(from), bytes(to))
                let n = (s.c + 63) / 64
                for y in 0..<s.h {
                    for x in 0..<s.w {
                        for ch in 0..<s.c { b[t.offset(y, x) + ch] = (a[(y * s.w + x) * n + ch / 64] >> UInt64(ch % 64)) & 1 == 1 ? 0xFF : 1 }
                    }
                }
            case let .maxPool(from, to, a):
                let s = plan.slots[from], t = plan.slots[to]
                let (kh, kw, sh, sw, pt, pl) = (a.kernel[0], a.kernel[1], a.strides[0], a.strides[1], a.pads[0], a.pads[1])
                if s.codes && !s.signed && !s.binary && t.codes && pt <= s.pad && pl <= s.pad
                    && (t.h - 1) * sh - pt + kh <= s.h + s.pad && (t.w - 1) * sw - pl + kw <= s.w + s.pad {
                    // Unsigned codes whose windows stay within the zero border: a row of windows
                    // at a time, 64 channels a vector (the border's zeros change no maximum).
                    let (src, dst) = (bytes(from), bytes(to))
                    for oy in 0..<t.h {
                        WindowMaximum.unsignedRow(src + s.offset(oy * sh - pt, -pl), count: t.w, windowStep: sw * s.stride, kh: kh, kw: kw,
                                                  rowStep: s.offset(1, 0) - s.offset(0, 0), pixelStep: s.stride, channels: s.c,
                                                  into: dst + t.offset(oy, 0), dstStep: t.stride)
                    }
                    continue
                }
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
            case let .averagePool(from, to, a):
                let (s, t) = (plan.slots[from], plan.slots[to])
                let (src, dst) = (bytes(from), bytes(to))
                for oy in 0..<t.h {
                    for ox in 0..<t.w {
                        for ch in 0..<s.c {
                            var sum: Int64 = 0, count: Int64 = 0
                            for ky in 0..<a.kernel[0] {
                                let iy = oy * a.strides[0] - a.pads[0] + ky
                                for kx in 0..<a.kernel[1] {
                                    let ix = ox * a.strides[1] - a.pads[1] + kx
                                    guard iy >= 0 && iy < s.h && ix >= 0 && ix < s.w else { if a.countIncludePad { count += 1 }; continue }
                                    sum += read(s, src, nil, s.offset(iy, ix) + ch); count += 1
                                }
                            }
                            dst[t.offset(oy, ox) + ch] = UInt8(truncatingIfNeeded: Self.dividedHalfToEven(sum, by: max(1, count)))
                        }
                    }
                }
            case let .globalAverage(from, to):
                let (s, t) = (plan.slots[from], plan.slots[to])
                let (a, b) = (bytes(from), bytes(to))
                let d = Int64(s.h * s.w)
                // Pixel by pixel into one Int64 sum per channel: a loop over contiguous codes the
                // compiler vectorizes (one strided walk per channel cost 6% of MobileNetV2's time).
                let sums = ws.channelSums
                sums.update(repeating: 0, count: s.c)
                for y in 0..<s.h {
                    for x in 0..<s.w {
                        let p = a + s.offset(y, x)
                        if s.signed {
                            for ch in 0..<s.c { sums[ch] &+= Int64(Int8(bitPattern: p[ch])) }
                        } else {
                            for ch in 0..<s.c { sums[ch] &+= Int64(p[ch]) }
                        }
                    }
                }
                for ch in 0..<s.c { b[t.offset(0, 0) + ch] = UInt8(truncatingIfNeeded: Self.dividedHalfToEven(sums[ch], by: d)) }
            case let .lookup(from, to, table, lowest):
                let (s, t) = (plan.slots[from], plan.slots[to])
                let (a, b) = (bytes(from), bytes(to))
                table.withUnsafeBufferPointer { table in
                    for y in 0..<s.h {
                        for x in 0..<s.w {
                            let (i, o) = (s.offset(y, x), t.offset(y, x))
                            for ch in 0..<s.c { b[o + ch] = table[Int(read(s, a, nil, i + ch) - Int64(lowest))] }
                        }
                    }
                }
            case let .concat(inputs, to, dyadics, lo, hi):
                let t = plan.slots[to], out = bytes(to)
                var base = 0
                for (slot, d) in zip(inputs, dyadics) {
                    let s = plan.slots[slot]
                    let (b, i) = (s.codes ? bytes(slot) : nil, s.codes ? nil : ints(slot))
                    for y in 0..<s.h {
                        for x in 0..<s.w {
                            let (a, o) = (s.offset(y, x), t.offset(y, x) + base)
                            for ch in 0..<s.c {
                                let q = min(max((d.count == 1 ? d[0] : d[ch]).apply(read(s, b, i, a + ch)), Int64(lo)), Int64(hi))
                                out[o + ch] = UInt8(truncatingIfNeeded: q)
                            }
                        }
                    }
                    base += s.c
                }
            case let .add(x, y, to, da, db, nil) where !plan.slots[to].codes:
                // Sums out (no ReLU after it): each branch scaled into the output, then added.
                let t = plan.slots[to]
                for (position, (slot, d)) in [(x, da), (y, db)].enumerated() {
                    let s = plan.slots[slot]
                    addScaled(s, bytes: s.codes ? bytes(slot) : nil, ints: s.codes ? nil : ints(slot), d, into: ints(to), t, accumulate: position == 1)
                }
            case let .add(x, y, to, da, db, codes):
                let (xs, ys, t) = (plan.slots[x], plan.slots[y], plan.slots[to])
                let (xb, xi) = (xs.codes ? bytes(x) : nil, xs.codes ? nil : ints(x))
                let (yb, yi) = (ys.codes ? bytes(y) : nil, ys.codes ? nil : ints(y))
                let (tb, ti) = (t.codes ? bytes(to) : nil, t.codes ? nil : ints(to))
                @inline(__always) func scaled(_ v: Int64, _ d: Requantize.Scales, _ ch: Int) -> Int32 {
                    d.apply(Int32(truncatingIfNeeded: v), channel: ch)
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
        if let v = l.vector {
            // Gather the receptive field tap by tap (flipped as the tile flips it), zero to the
            // whole blocks the kernel reads, multiply, and finish each column.
            let run = l.groupsPerTap * 4, x = ws.vectorIn, from = input + l.starts[0]
            for (t, tap) in l.taps.enumerated() {
                let src = from + Int(tap), dst = x + t * run
                if l.flip == 0 { dst.update(from: src, count: run) } else { for u in 0..<run { dst[u] = src[u] ^ 0x80 } }
            }
            precondition(v.paddedLength <= plan.vectorLength, "vector buffer of \(plan.vectorLength) bytes for \(v.paddedLength)")
            (x + v.k).update(repeating: 0, count: v.paddedLength - v.k)
            GEMV.multiply(v, padded: x, y: ws.vectorOut, threads: ws.threads)
            let out = output + l.outStarts[0] * elementBytes
            let res = residual.map { $0 + l.resStarts[0] * residualBytes } ?? UnsafeRawPointer(input)
            if l.epilogue.finishesCodesInLanes {
                l.epilogue.finishCodes(ws.vectorOut, count: l.cout, out: out.assumingMemoryBound(to: UInt8.self))
            } else {
                for j in 0..<l.cout { l.epilogue.finish(ws.vectorOut[j], column: j, out: out, res: res) }
            }
            return
        }
        let pixels = l.starts.count
        let backend = IGEMM.activeBackend
        if backend == .vnni {
            func share(_ pixels: Range<Int>, _ columns: Range<Int>) {
                IGEMM.convLayerVNNI(input: input, starts: l.starts, output: output, outStarts: l.outStarts, elementBytes: elementBytes,
                                    residual: residual, resStarts: l.resStarts, residualBytes: residualBytes, taps: l.taps,
                                    gpp: l.groupsPerTap, flip: l.flip, weights: l.weights, cout: l.cout, epilogue: l.epilogue,
                                    pixels: pixels, columns: columns)
            }
            let tiles = (pixels + IGEMM.tileRows - 1) / IGEMM.tileRows, blocks = (l.cout + 31) / 32
            let workers = min(ws.threads, tiles * blocks)
            if workers <= 1 { share(0..<pixels, 0..<l.cout); return }
            // One image, several threads: each takes whole tiles of pixels where there are many
            // (its share of the input stays in its cache), else column blocks of 32 (each reads
            // only its share of the weights: ResNet-50's 7×7 stage has 5 tiles and 16–64 blocks).
            let byTiles = tiles >= 4 * workers
            Parallel.forEach(workers, threads: workers) { w, _ in
                if byTiles {
                    let (t0, t1) = (w * tiles / workers, (w + 1) * tiles / workers)
                    share((t0 * IGEMM.tileRows)..<min(pixels, t1 * IGEMM.tileRows), 0..<l.cout)
                } else {
                    let (b0, b1) = (w * blocks / workers, (w + 1) * blocks / workers)
                    share(0..<pixels, (b0 * 32)..<min(l.cout, b1 * 32))
                }
            }
            return
        }
        if backend == .avx2 && !l.weights.widened.isEmpty {
            // The AVX2 tile on 8-bit weights multiplies Int16 codes: the whole input once.
            IGEMM.widenCodes(input, count: plan.slots[l.input].elements, flip: UInt8(l.flip & 0xFF), into: ws.wide)
            l.taps.withUnsafeBufferPointer { taps in
                var p0 = 0
                while p0 < pixels {
                    let rows = min(IGEMM.tileRows, pixels - p0)
                    for i in 0..<rows {
                        ws.rowsWide[i] = UnsafePointer(ws.wide + l.starts[p0 + i])
                        ws.rowsOut[i] = output + l.outStarts[p0 + i] * elementBytes
                        ws.rowsRes[i] = residual.map { $0 + l.resStarts[p0 + i] * residualBytes } ?? UnsafeRawPointer(input)
                    }
                    IGEMM.convTileWide(rows: rows, cols: l.cout, a: ws.rowsWide, taps: taps.baseAddress!, ntaps: taps.count, gpp: l.groupsPerTap,
                                       weights: l.weights, column: 0, epilogue: l.epilogue, out: ws.rowsOut, res: ws.rowsRes)
                    p0 += rows
                }
            }
            return
        }
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

    /// Packs the signs of a slot's codes or sums (bit set for a negative value; unsigned codes
    /// have none) into `words` per pixel, `⌈c/64⌉` words each, a row at a time (`Requantize.signs`).
    func packSigns(_ s: Slot, bytes: UnsafeMutablePointer<UInt8>?, ints: UnsafeMutablePointer<Int32>?, into out: UnsafeMutablePointer<UInt64>) {
        let n = (s.c + 63) / 64
        for y in 0..<s.h {
            let dst = out + y * s.w * n
            if let ints {
                Requantize.signs(pixels: s.w, channels: s.c, src: ints + s.offset(y, 0), srcStride: s.stride, dst: dst)
            } else if s.signed, let bytes {
                Requantize.signs(pixels: s.w, channels: s.c, codes: bytes + s.offset(y, 0), srcStride: s.stride, dst: dst)
            } else {
                dst.update(repeating: 0, count: s.w * n)
            }
        }
    }

    /// Writes (or with `accumulate` adds) slot `s`'s values requantized by `d` into the Int32
    /// sums of `t`.
    func addScaled(_ s: Slot, bytes: UnsafeMutablePointer<UInt8>?, ints: UnsafeMutablePointer<Int32>?, _ d: Requantize.Scales,
                   into out: UnsafeMutablePointer<Int32>, _ t: Slot, accumulate: Bool) {
        if let ints {
            for y in 0..<t.h {
                Requantize.sums(pixels: t.w, d, src: ints + s.offset(y, 0), srcStride: s.stride, dst: out + t.offset(y, 0),
                                dstStride: t.stride, accumulate: accumulate)
            }
            return
        }
        for y in 0..<t.h {
            for x in 0..<t.w {
                let src = s.offset(y, x), dst = out + t.offset(y, x)
                for ch in 0..<s.c {
                    let v = s.signed ? Int32(Int8(bitPattern: bytes![src + ch])) : Int32(bytes![src + ch])
                    let q = d.apply(v, channel: ch)
                    dst[ch] = accumulate ? dst[ch] &+ q : q
                }
            }
        }
    }

    /// A depthwise layer on one image: each output pixel's channel sums, then the epilogue.
    func runDepthwise(_ l: DepthwiseStep, _ plan: Plan, _ ws: Workspace) {
        let outSlot = plan.slots[l.output]
        let output = outSlot.codes ? UnsafeMutableRawPointer(ws.bytes[outSlot.buffer]!) : UnsafeMutableRawPointer(ws.ints[outSlot.buffer]!)
        DepthwiseConv.run(input: UnsafePointer(ws.bytes[plan.slots[l.input].buffer]!), signed: l.signed, starts: l.starts, outStarts: l.outStarts,
                          taps: l.taps, weights: l.weights, ldw: l.ldw, channels: l.channels, epilogue: l.epilogue, output: output,
                          scratch: ws.depthwiseSums, grid: l.grid, pairs: ws.depthwisePairs)
    }

    /// A binary layer on one image: XNOR-popcount over the packed input, in place, through its
    /// epilogue (with the residual branch and the signs when it took them).
    func runXnor(_ l: XnorStep, _ plan: Plan, _ ws: Workspace) {
        func raw(_ slot: Int) -> UnsafeMutableRawPointer {
            let s = plan.slots[slot]
            return s.codes ? UnsafeMutableRawPointer(ws.bytes[s.buffer]!) : UnsafeMutableRawPointer(ws.ints[s.buffer]!)
        }
        BinaryConv.layer(l.layout, input: UnsafePointer(raw(l.input).assumingMemoryBound(to: UInt64.self)), weights: l.weights, shift: l.shift,
                         epilogue: l.epilogue, output: raw(l.output), outStarts: l.outStarts, residual: l.residual.map { UnsafeRawPointer(raw($0)) },
                         resStarts: l.resStarts, signs: l.signs.map { raw($0).assumingMemoryBound(to: UInt64.self) })
    }

    /// sum / d rounded half to even, as the simulation's fake quantization rounds the average.
    static func dividedHalfToEven(_ sum: Int64, by d: Int64) -> Int64 {
        var q = sum >= 0 ? sum / d : -((-sum) / d)
        let r = sum - q * d
        if 2 * abs(r) > d || (2 * abs(r) == d && q % 2 != 0) { q += sum >= 0 ? 1 : -1 }
        return q
    }
}

