import Foundation
import Kernels
import Network
import Tensors

/// How the engine runs: the graph compiled once into steps over per-image buffers. Codes are
/// bytes in NHWC order (each pixel's channels contiguous, padded to a multiple of 4), so a
/// convolution's patches are runs of 4-byte channel groups copied straight into the tile
/// kernel's layout, and a layer's requantization (bias, dyadic multiply, ReLU, clamp) happens in
/// the kernel's epilogue as the sums leave the registers. Where a layer's output passes through
/// ReLU, max pooling or flattening before it is quantized, the layer quantizes at once: those
/// commute with a monotone per-channel requantization, so the codes are the same. A layer that
/// feeds a residual add requantizes to the add's scale in its epilogue. Images run in parallel,
/// each worker with its own buffers.
extension IntegerModel {
    /// A value of the plan, per image: codes (bytes, `stride` ≥ c per pixel) or Int32 sums.
    struct Slot {
        var c: Int, h: Int, w: Int
        var codes: Bool
        var signed: Bool
        /// Per channel for sums; one entry for codes.
        var scales: [Double]
        /// Bytes (codes) or Int32s (sums) from one pixel to the next.
        var stride: Int
        /// The buffer holding it (aliases share one).
        var buffer: Int
        /// Zero pixels around codes (so convolutions read padding without bounds checks).
        var pad: Int = 0
        /// Binary codes (±1), packed: bit c mod 64 of word ⌊c/64⌋ (UInt64, `stride` bytes per pixel) set for −1.
        var binary = false
        var elements: Int { (h + 2 * pad) * (w + 2 * pad) * stride }
        /// Where pixel (y, x) starts, in elements.
        func offset(_ y: Int, _ x: Int) -> Int { ((y + pad) * (w + 2 * pad) + x + pad) * stride }
    }

    /// A convolution or linear layer: a kernel over the input slot's pixels (a linear layer is a
    /// kernel covering the whole input), weights in the input's memory order, read in place.
    final class LayerStep {
        /// The conv/linear layer (index into `layers`), the input and output slots.
        let layer: Int, input: Int, output: Int
        /// Per output pixel: where its receptive field starts in the input (bytes) and where its
        /// outputs go in the output slot (elements); the taps' byte offsets.
        let starts: [Int], outStarts: [Int], taps: [Int64]
        let groupsPerTap: Int, cout: Int
        let weights: IntegerWeights
        let epilogue: IntegerEpilogue
        /// Signed input codes run through the unsigned kernel shifted by 128 (bias corrected).
        let flip: UInt32
        /// A residual branch added in the epilogue: its slot and per-pixel starts (elements).
        var residual: Int? = nil
        var resStarts: [Int] = []
        /// A layer with one output pixel (linear layers, and convolutions covering their whole
        /// input) runs as a matrix–vector product (`GEMV`) with its weights read at the narrowest
        /// of 8, 4 or 2 bits that holds its codes: at one pixel every weight is read once per
        /// image, so reading fewer bytes is what buys time. Its receptive field is gathered into
        /// the worker's vector buffer (flipped like the tile's input) and the sums go through
        /// the same epilogue.
        var vector: GEMV.Weights? = nil
        init(layer: Int, input: Int, output: Int, starts: [Int], outStarts: [Int], taps: [Int64], groupsPerTap: Int, cout: Int,
             weights: IntegerWeights, epilogue: IntegerEpilogue, flip: Bool) {
            self.layer = layer; self.input = input; self.output = output; self.starts = starts; self.outStarts = outStarts; self.taps = taps
            self.groupsPerTap = groupsPerTap; self.cout = cout; self.weights = weights; self.epilogue = epilogue
            self.flip = flip ? 0x8080_8080 : 0
            // Each of the K = taps·groups·4 products is a code (0…255 after the flip) times a
            // weight code (−128…127).
            epilogue.foldBias(sumsWithin: Int64(taps.count * groupsPerTap * 4) * 255 * 128)
        }
    }

    /// A layer with binary weights reading packed binary codes in place (`BinaryConv.layer`):
    /// XNOR and popcount over each valid tap (padding contributes nothing, as zeros do in the
    /// float convolution), then the epilogue a layer of wider weights would have (raw sums with
    /// the bias, codes, or sums scaled to the add it feeds — with the add's other branch when the
    /// add moved here), and, when a binary layer reads the result, its signs packed as well.
    final class XnorStep {
        let layer: Int, input: Int, output: Int
        let layout: BinaryConv.Layout
        var geometry: BinaryConv.Geometry { layout.geometry }
        let weights: BinaryConv.Weights
        /// Dots times 2^shift (`IntegerModel.refinement`).
        let shift: Int
        let epilogue: IntegerEpilogue
        /// Per output pixel, where its results go in the output slot (elements).
        let outStarts: [Int]
        /// A residual branch added in the epilogue: its slot and per-pixel starts (elements).
        var residual: Int? = nil
        var resStarts: [Int] = []
        /// A binary slot the results' signs are packed into (a `sign` step done here).
        var signs: Int? = nil
        init(layer: Int, input: Int, output: Int, geometry: BinaryConv.Geometry, weights: BinaryConv.Weights, shift: Int,
             epilogue: IntegerEpilogue, outStarts: [Int]) {
            self.layer = layer; self.input = input; self.output = output; self.layout = BinaryConv.Layout(geometry)
            self.weights = weights; self.shift = shift; self.epilogue = epilogue; self.outStarts = outStarts
            // |dots| ≤ taps·channels·2^shift.
            epilogue.foldBias(sumsWithin: Int64(geometry.taps * geometry.channels) << Int64(shift))
        }
    }

    /// A depthwise convolution (groups = channels, one filter per channel) over byte codes
    /// read in place (`DepthwiseConv`): per output pixel the channels' sums, then each channel
    /// through the epilogue.
    final class DepthwiseStep {
        let layer: Int, input: Int, output: Int
        /// Per output pixel: where its receptive field starts in the input (bytes) and where its
        /// outputs go (elements); the taps' byte offsets.
        let starts: [Int], outStarts: [Int], taps: [Int]
        /// Tap t's weights for channel c at t·ldw + c (ldw: channels rounded up to 16).
        let weights: [Int32], ldw: Int, channels: Int
        let signed: Bool
        let epilogue: IntegerEpilogue
        /// A 3×3 layer's pair layout (`DepthwiseConv.PairGrid`), nil for other windows.
        let grid: DepthwiseConv.PairGrid?
        init(layer: Int, input: Int, output: Int, starts: [Int], outStarts: [Int], taps: [Int], weights: [Int32], ldw: Int, channels: Int,
             signed: Bool, epilogue: IntegerEpilogue, grid: DepthwiseConv.PairGrid?) {
            self.layer = layer; self.input = input; self.output = output; self.starts = starts; self.outStarts = outStarts; self.taps = taps
            self.weights = weights; self.ldw = ldw; self.channels = channels; self.signed = signed; self.epilogue = epilogue; self.grid = grid
            // Each sum: one code (|x| ≤ 255) times a weight per tap.
            epilogue.foldBias(sumsWithin: Int64(taps.count) * 255 * Int64(weights.map { abs(Int64($0)) }.max() ?? 0))
        }
    }

    enum Step {
        case input(to: Int, point: Point)
        case layer(LayerStep)
        case xnor(XnorStep)
        case depthwise(DepthwiseStep)
        case relu(from: Int, to: Int)
        /// Sums to codes: per-channel dyadic, clamp; or, binary, the sign.
        case quantize(from: Int, to: Int, scales: Requantize.Scales, lo: Int32, hi: Int32, binary: Bool)
        /// Codes or sums to packed binary codes: each value's sign (sign(0) = +1).
        case sign(from: Int, to: Int)
        /// Packed binary codes to ±1 bytes (for a wider-weight layer reading them).
        case unpack(from: Int, to: Int)
        case maxPool(from: Int, to: Int, PoolAttributes)
        case globalAverage(from: Int, to: Int)
        /// Window averages of codes, rounding half to even (floor mode; padded taps counted
        /// when the attributes say so).
        case averagePool(from: Int, to: Int, PoolAttributes)
        /// Inputs (codes or sums) requantized to one point, each by its dyadics (one, or one per
        /// channel), clamped to [lo, hi] and written side by side along the channels.
        case concat(from: [Int], to: Int, dyadics: [[Dyadic]], lo: Int32, hi: Int32)
        /// Codes through a table (`table[code − lowest]`): an elementwise function of codes.
        case lookup(from: Int, to: Int, table: [UInt8], lowest: Int32)
        /// Both branches to the target scale, summed; with `codes`, ReLU and clamp to codes.
        case add(a: Int, b: Int, to: Int, da: Requantize.Scales, db: Requantize.Scales, codes: (lo: Int32, hi: Int32)?)
    }

    struct Plan {
        var slots: [Slot] = []
        var steps: [Step] = []
        var output: Int = 0
        /// Per buffer: element count and whether it holds bytes.
        var buffers: [(count: Int, bytes: Bool)] = []
        /// The largest input (padded to whole 256-code blocks) and output of the plan's vector (GEMV) layers.
        var vectorLength = 0, vectorOutputs = 0
        /// The widest depthwise layer's channels, rounded up to 16 (its sums buffer).
        var depthwiseChannels = 0
        /// The largest pair grid of the depthwise layers (Int32s).
        var depthwisePairs = 0
    }
}
