/// The syntax tree. Every node keeps where it was written, for error messages.
public indirect enum ExprKind: Sendable {
    case number(Double)
    case string([StringSegment])
    case bool(Bool)
    case null
    case name(Name)
    case list([Expr])
    case record([(String, Expr)])
    case range(Expr, Expr, inclusive: Bool)
    case unary(String, Expr)
    case binary(BinaryOperator, Expr, Expr)
    /// `and` / `or`, which short-circuit.
    case logical(String, Expr, Expr)
    case call(Expr, [Argument])
    case index(Expr, [Expr])
    case field(Expr, String)
    case function(Function)
    case conditional(Expr, [Stmt], else: [Stmt]?)
}

/// Binary operators, resolved once by the parser (matching strings on every evaluation is slow).
public enum BinaryOperator: String, Sendable {
    case add = "+", subtract = "-", multiply = "*", divide = "/", remainder = "%", power = "**", matmul = "@"
    case equal = "==", notEqual = "!=", less = "<", lessEqual = "<=", greater = ">", greaterEqual = ">="
}

public struct Expr: Sendable {
    public var kind: ExprKind
    public var location: SourceLocation
}

public enum StringSegment: Sendable {
    case text(String)
    case expression(Expr)
}

public struct Argument: Sendable {
    public var label: String?
    public var value: Expr
}

public struct Parameter: Sendable {
    public var name: String
    public var defaultValue: Expr?
    let symbol: Int
    init(name: String, defaultValue: Expr?) { self.name = name; self.defaultValue = defaultValue; symbol = Symbols.id(name) }
}

/// A function literal or declaration: parameters and body.
public final class Function: @unchecked Sendable {
    public let name: String
    public let parameters: [Parameter]
    public let body: [Stmt]
    public let location: SourceLocation
    let symbol: Int
    init(name: String, parameters: [Parameter], body: [Stmt], location: SourceLocation) {
        self.name = name; self.parameters = parameters; self.body = body; self.location = location
        symbol = Symbols.id(name)
    }
}

public indirect enum StmtKind: Sendable {
    case expression(Expr)
    /// `target = value`: target is a name, `a.b` or `a[i]`.
    case assign(Expr, Expr)
    case function(Function)
    case forIn(Name, Expr, [Stmt])
    case whileLoop(Expr, [Stmt])
    case breakLoop
    case continueLoop
    case returnValue(Expr?)
}

public struct Stmt: Sendable {
    public var kind: StmtKind
    public var location: SourceLocation
    /// Whether a statement at the prompt ended with `;` (its value is not shown).
    public var silent = false
}
