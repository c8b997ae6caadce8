import Kernels
import Tensors

/// Convolution: forward and backward in Tensors (Tensor.conv2d, Tensor.conv2dGradients), tangent
/// by linearity in x, W and b.
enum ConvOp {
    static func geometry(_ x: [Int], _ w: [Int], _ a: ConvAttributes) -> ConvGeometry {
        ConvGeometry(channels: w[1], height: x[2], width: x[3], kernelHeight: w[2], kernelWidth: w[3],
                     stride: (a.strides[0], a.strides[1]), padding: (a.pads[0], a.pads[1], a.pads[2], a.pads[3]),
                     dilation: (a.dilations[0], a.dilations[1]))
    }

    static func forward(_ x: Tensor, _ w: Tensor, _ b: Tensor?, _ a: ConvAttributes) throws -> Tensor {
        try Tensor.conv2d(x, weight: w, bias: b, stride: (a.strides[0], a.strides[1]),
                          padding: (a.pads[0], a.pads[1], a.pads[2], a.pads[3]),
                          dilation: (a.dilations[0], a.dilations[1]), groups: a.groups)
    }

    /// Gradients of x, W and b given dY (Tensor.conv2dGradients).
    static func backward(_ x: Tensor, _ w: Tensor, hasBias: Bool, _ a: ConvAttributes, _ dy: Tensor,
                         needInput: Bool) -> (dx: Tensor?, dw: Tensor, db: Tensor?) {
        let r = Tensor.conv2dGradients(x, weight: w, outputGradient: dy, hasBias: hasBias, stride: (a.strides[0], a.strides[1]),
                                       padding: (a.pads[0], a.pads[1], a.pads[2], a.pads[3]),
                                       dilation: (a.dilations[0], a.dilations[1]), groups: a.groups, needInput: needInput)
        return (r.input, r.weight, r.bias)
    }

    /// Directional derivative: conv(ẋ, W) + conv(x, Ẇ) + ḃ.
    static func tangent(_ x: Tensor, _ w: Tensor, _ b: Tensor?, _ a: ConvAttributes,
                        dx: Tensor?, dw: Tensor?, db: Tensor?) throws -> Tensor {
        var out: Tensor? = nil
        if let dx { out = try forward(dx, w, nil, a) }
        if let dw {
            let t = try forward(x, dw, nil, a)
            out = try out.map { try $0 + t } ?? t
        }
        if let db {
            let shaped = try db.reshaped([1, db.count, 1, 1])
            let zero = try Tensor.zeros(try forward(x, w, nil, a).shape)
            out = try (out ?? zero) + shaped
        }
        return try out ?? Tensor.zeros(try forward(x, w, nil, a).shape)
    }
}
