import Network
import Tensors

extension IntegerModel {
    /// The engine as a QDQ ONNX model ONNX Runtime runs: its `simulation` graph (batch norm
    /// folded, fake quantization at the engine's points with its scales) with every weight
    /// stored as the engine's codes (INT4 when they fit 4 bits, else INT8) and per-channel
    /// scales, the biases as the engine's Int32 biases in float (see `ONNXExporter`).
    public func onnx() throws -> [UInt8] {
        var codes: [String: ONNXExporter.QuantizedConstant] = [:]
        for (i, layer) in folded.layers.enumerated() {
            codes[layer.weight] = ONNXExporter.QuantizedConstant(codes: layers[i].codes, shape: layer.weightShape,
                                                                 scales: layers[i].scales.map(Float.init))
        }
        return try ONNXExporter.export(simulation, quantizedWeights: codes)
    }

    /// Writes `onnx()` to `path` atomically.
    public func saveONNX(to path: String) throws {
        try FileIO.writeAtomically(try onnx(), to: path)
    }
}
