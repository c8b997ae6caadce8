/// Every builtin, one table per category (as Lua registers its libraries), each in its file
/// `Builtins+Category.swift`; help and the reference list them by category in this order.
public enum Builtins {
    public static let all: [Builtin] = output + tensors + data + models + quantizers + kernels + sensitivity + search + predictors + agents + costs
    public static let categories = ["output", "tensors", "data", "models", "quantizers", "kernels", "sensitivity", "search", "costs"]
}

extension Builtins {
    /// Data and a model the examples share.
    static let mnist = "fashion_mnist(split: \"train\", limit: 64)"
    static let mlp = "load(\"../shared/reference/fmnist_mlp.onnx\")"
}
