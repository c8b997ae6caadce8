/// Every builtin, one table per library (as Lua registers its libraries).
public enum Builtins {
    public static let all: [Builtin] = output + tensors + data + models + quantization + kernels + search
    public static let categories = ["output", "tensors", "data", "models", "quantizers", "kernels", "sensitivity", "search", "costs"]
}
