import Foundation
import Runtime

/// Reads an ONNX graph, node by node in topological order, as a chain of native ops: each
/// value is known symbolically (the current activation, a constant, a normalisation's pieces,
/// an output column), and a node is accepted only where it extends the one chain.
struct ONNXChain {
    /// What a value of the ONNX graph is, as far as the chain is concerned.
    enum Value {
        /// The activation after `generation` activation-changing nodes (0: the graph input).
        case activation(generation: Int)
        /// A constant; `float32` when it reaches the graph as float32 (stored so, or cast).
        case constant(Tensor, float32: Bool)
        /// `Sqrt` of a variance.
        case root(variance: Tensor)
        /// A normalisation denominator built from a variance.
        case denominator(variance: Tensor, rule: NormalizeDenominator, epsilon: Double)
        /// `activation − mean`, waiting for its `Div`.
        case shifted(mean: Tensor, generation: Int)
        /// ArgMax of the activation `generation`.
        case labels(generation: Int)
        /// One column of the activation `generation`.
        case column(Int, generation: Int)
    }

    private var values: [String: Value] = [:]
    /// Initializers, read when a node uses them.
    private let initializers: [String: Onnx_TensorProto]
    private let limits: ReaderLimits
    private(set) var graph: [GraphOp] = []
    private(set) var tensors: [Tensor] = []
    /// Where each kept tensor is in `tensors`.
    private var kept: [String: Int] = [:]
    private(set) var layers: [SourceLayer] = []
    private var generation = 0
    private var width: Int
    let inputWidth: Int

    init(graph: Onnx_GraphProto, limits: ReaderLimits) throws {
        self.limits = limits
        let constants = Dictionary(graph.initializer.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        initializers = constants
        let inputs = graph.input.filter { constants[$0.name] == nil }
        guard inputs.count == 1, let input = inputs.first, case .tensorType(let t)? = input.type.value, t.elemType == ONNXDataType.float,
              let shape = ONNXTypes.shape(input.type), shape.count == 2, let width = shape[1], width > 0 else {
            throw ClipSafetyError.unsupported("ONNX: convert reads graphs with one float32 input [N, D] (D fixed); this one has \(inputs.map { "\($0.name): \(ONNXTypes.typeText($0.type))" })")
        }
        self.width = width
        inputWidth = width
        values[input.name] = .activation(generation: 0)
    }

    // MARK: nodes

    mutating func apply(_ node: Onnx_NodeProto) throws {
        let before = graph.count
        guard ONNXTypes.isStandard(node.domain), node.output.count == 1, let output = node.output.first else {
            throw refusal(node, "")
        }
        values[output] = try value(of: node)
        layers.append(SourceLayer(name: node.name, className: node.opType, opCount: graph.count - before))
    }

    private mutating func value(of node: Onnx_NodeProto) throws -> Value {
        let args = try node.input.map { try operand($0, node) }
        switch (node.opType, args.count) {
        case ("Identity", 1): return args[0]
        case ("Constant", 0): return try constantAttribute(node)
        case ("Cast", 1): return try cast(args[0], node)
        case ("Reshape", 2): return try flatten(args[0], args[1], node)
        case ("Gemm", 2), ("Gemm", 3): return try gemm(args, node)
        case ("MatMul", 2): return try matMul(args, node)
        case ("Add", 2): return try add(args, node)
        case ("Max", 2): return try denominator(args, rule: .maxSqrtVarianceEpsilon, node)
        case ("Sqrt", 1):
            guard case .constant(let variance, true) = args[0] else { throw refusal(node, "Sqrt of a computed value") }
            return .root(variance: variance)
        case ("Sub", 2):
            guard case .activation(let g) = args[0], case .constant(let mean, true) = args[1] else { throw refusal(node, "Sub that is not activation − mean") }
            try current(g, node)
            try count(mean, width, node)
            return .shifted(mean: mean, generation: g)
        case ("Div", 2): return try divide(args, node)
        case ("Relu", 1), ("Sigmoid", 1):
            guard case .activation(let g) = args[0] else { throw refusal(node, "of a constant") }
            return try extend(g, with: node.opType == "Relu" ? .relu : .sigmoid, node)
        case ("ArgMax", 1): return try argmax(args[0], node)
        case ("Gather", 2): return try column(args, node)
        default: throw refusal(node, "")
        }
    }

    private func operand(_ name: String, _ node: Onnx_NodeProto) throws -> Value {
        if let v = values[name] { return v }
        if let proto = initializers[name] {
            let t = try ONNXTensorData.tensor(proto, limits: limits)
            return .constant(t, float32: t.dtype == .f32)
        }
        throw ClipSafetyError.malformed("ONNX: node '\(Self.label(node))' reads '\(name)', which no node, input or initializer provides")
    }

    private func constantAttribute(_ node: Onnx_NodeProto) throws -> Value {
        guard let a = node.attribute.first(where: { $0.name == "value" }), a.hasT else { throw refusal(node, "without a tensor value") }
        var t = try ONNXTensorData.tensor(a.t, limits: limits)
        t.name = node.output[0]
        return .constant(t, float32: t.dtype == .f32)
    }

    private func cast(_ v: Value, _ node: Onnx_NodeProto) throws -> Value {
        guard attribute(node, "to") == Int64(ONNXDataType.float) else { throw refusal(node, "to a type other than float") }
        switch v {
        case .constant(let t, _) where t.dtype.isFloatingPoint: return .constant(t, float32: true)
        case .activation: return v
        default: throw refusal(node, "of this value")
        }
    }

    private func flatten(_ v: Value, _ shape: Value, _ node: Onnx_NodeProto) throws -> Value {
        guard case .constant = v, case .constant(let s, _) = shape, (try? s.int64Values()) == [-1] else {
            throw refusal(node, "other than a constant flattened to one dimension")
        }
        return v
    }

    private mutating func gemm(_ args: [Value], _ node: Onnx_NodeProto) throws -> Value {
        guard attribute(node, "alpha", float: 1) == 1, attribute(node, "beta", float: 1) == 1, (attribute(node, "transA") ?? 0) == 0 else {
            throw refusal(node, "with alpha, beta or transA other than 1, 1, 0")
        }
        guard case .activation(let g) = args[0], case .constant(let w, true) = args[1], w.shape.count == 2 else {
            throw refusal(node, "that is not activation × constant matrix")
        }
        let transposed = (attribute(node, "transB") ?? 0) != 0
        let weight = transposed ? w : try Self.transpose(w)
        var bias: Tensor?
        if args.count == 3 {
            guard case .constant(let b, true) = args[2] else { throw refusal(node, "with a computed bias") }
            try count(b, weight.shape[0], node)
            bias = b
        }
        try current(g, node)
        guard weight.shape[1] == width else { throw refusal(node, "whose matrix takes \(weight.shape[1]) inputs, not \(width)") }
        let promptScores = bias == nil && transposed && node.name.hasSuffix("prompt_scores")
        try keep(weight)
        if let bias { try keep(bias) }
        let op: GraphOp = promptScores ? .promptScores(prompts: weight.name) : .dense(weight: weight.name, bias: bias?.name)
        width = weight.shape[0]
        return try extend(g, with: op, node)
    }

    private mutating func matMul(_ args: [Value], _ node: Onnx_NodeProto) throws -> Value {
        guard case .activation(let g) = args[0], case .constant(let w, true) = args[1], w.shape.count == 2 else {
            throw refusal(node, "that is not activation × constant matrix")
        }
        try current(g, node)
        guard w.shape[0] == width else { throw refusal(node, "whose matrix takes \(w.shape[0]) inputs, not \(width)") }
        let weight = try Self.transpose(w)
        try keep(weight)
        width = weight.shape[0]
        return try extend(g, with: .dense(weight: weight.name, bias: nil), node)
    }

    /// A bias after MatMul, or `√variance + ε`.
    private mutating func add(_ args: [Value], _ node: Onnx_NodeProto) throws -> Value {
        if case .root = args[0] { return try denominator(args, rule: .sqrtVariancePlusEpsilon, node) }
        if case .root = args[1] { return try denominator([args[1], args[0]], rule: .sqrtVariancePlusEpsilon, node) }
        let (a, c): (Value, Value) = if case .activation = args[0] { (args[0], args[1]) } else { (args[1], args[0]) }
        guard case .activation(let g) = a, case .constant(let b, true) = c,
              case .dense(let weight, nil)? = graph.last, g == generation, g > 0 else {
            throw refusal(node, "that is not the bias of the MatMul before it")
        }
        try count(b, width, node)
        try keep(b)
        graph[graph.count - 1] = .dense(weight: weight, bias: b.name)
        return a
    }

    private func denominator(_ args: [Value], rule: NormalizeDenominator, _ node: Onnx_NodeProto) throws -> Value {
        let ordered = if case .root = args[0] { args } else { [args[1], args[0]] }
        guard case .root(let variance) = ordered[0], case .constant(let e, true) = ordered[1], e.elementCount == 1,
              let epsilon = try? Self.scalar(e) else {
            throw refusal(node, "that is not √variance and a constant ε")
        }
        return .denominator(variance: variance, rule: rule, epsilon: epsilon)
    }

    private mutating func divide(_ args: [Value], _ node: Onnx_NodeProto) throws -> Value {
        guard case .shifted(let mean, let g) = args[0] else { throw refusal(node, "that does not follow a Sub of the mean") }
        try current(g, node)
        let op: GraphOp
        switch args[1] {
        case .denominator(let variance, let rule, let epsilon):
            try count(variance, width, node)
            try keep(mean)
            try keep(variance)
            op = .normalize(mean: mean.name, variance: variance.name, denominator: rule, epsilon: epsilon)
        case .constant(let std, true):
            try count(std, width, node)
            let variance = try varianceExactly(std, node)
            try keep(mean)
            try keep(variance)
            op = .normalize(mean: mean.name, variance: variance.name, denominator: .sqrtVariancePlusEpsilon, epsilon: 0)
        default:
            throw refusal(node, "by a computed value")
        }
        return try extend(g, with: op, node)
    }

    private func argmax(_ v: Value, _ node: Onnx_NodeProto) throws -> Value {
        guard case .activation(let g) = v else { throw refusal(node, "of a constant") }
        let axis = attribute(node, "axis") ?? 0
        guard axis == 1 || axis == -1, (attribute(node, "select_last_index") ?? 0) == 0 else {
            throw refusal(node, "over an axis other than the columns, or choosing the last index on ties")
        }
        try current(g, node)
        return .labels(generation: g)
    }

    private func column(_ args: [Value], _ node: Onnx_NodeProto) throws -> Value {
        guard case .activation(let g) = args[0], case .constant(let at, _) = args[1], at.shape.isEmpty,
              let k = try? at.int64Values().first, attribute(node, "axis") == 1, k >= 0, k < width else {
            throw refusal(node, "that is not one column of the activation")
        }
        try current(g, node)
        return .column(Int(k), generation: g)
    }

    // MARK: the end

    /// The head, once every node has been read: the graph outputs must be the final activation
    /// (whole, or each of its columns once) and, optionally, its ArgMax.
    func finish(outputs: [String]) throws -> RecognisedHead {
        var whole = false, columns: [Int] = [], labels = false
        for name in outputs {
            switch values[name] {
            case .activation(let g)? where g == generation && g > 0: whole = true
            case .column(let k, let g)? where g == generation: columns.append(k)
            case .labels(let g)? where g == generation: labels = true
            default: throw ClipSafetyError.unsupported("ONNX: output '\(name)' is not the result of the chain (its last activation, one of its columns or its ArgMax)")
            }
        }
        guard whole || columns.sorted() == Array(0..<width) else {
            throw ClipSafetyError.unsupported("ONNX: the outputs give columns \(columns.sorted()) of \(width); convert needs all of them")
        }
        guard !graph.isEmpty else { throw ClipSafetyError.unsupported("ONNX: the graph computes nothing clipsafety runs") }
        return RecognisedHead(graph: graph + (labels ? [.argmax] : []), tensors: tensors, inputWidth: inputWidth,
                              outputWidth: width, layers: layers, notes: ["ONNX graph read as a chain of \(graph.count) native ops"])
    }

    // MARK: helpers

    /// Appends `op` after activation `g` (which must be the current one); returns the new activation.
    private mutating func extend(_ g: Int, with op: GraphOp, _ node: Onnx_NodeProto) throws -> Value {
        try current(g, node)
        graph.append(op)
        generation += 1
        return .activation(generation: generation)
    }

    private func current(_ g: Int, _ node: Onnx_NodeProto) throws {
        guard g == generation else { throw refusal(node, "that branches off an earlier activation (convert reads one chain)") }
    }

    private func count(_ t: Tensor, _ expected: Int, _ node: Onnx_NodeProto) throws {
        guard t.elementCount == expected else { throw refusal(node, "whose '\(t.name)' has \(t.elementCount) elements, not \(expected)") }
    }

    /// Adds a tensor under its name; the same name twice must be the same tensor.
    private mutating func keep(_ t: Tensor) throws {
        if let existing = kept[t.name] {
            guard tensors[existing] == t else { throw ClipSafetyError.unsupported("ONNX: initializer '\(t.name)' is used in two different roles") }
            return
        }
        kept[t.name] = tensors.count
        tensors.append(t)
    }

    /// σ² as float32 with √σ² = σ exactly, so `sqrt(variance) + 0` reproduces the divisor.
    private func varianceExactly(_ std: Tensor, _ node: Onnx_NodeProto) throws -> Tensor {
        let sigma = try std.floatValues()
        let variance = sigma.map { $0 * $0 }
        guard zip(sigma, variance).allSatisfy({ s, v in s > 0 && v.isNormal && v.squareRoot() == s }) else {
            throw refusal(node, "by a divisor that is not exactly the square root of a float32 variance")
        }
        var name = std.name + ".variance"
        while initializers[name] != nil || kept[name] != nil { name += "_" }
        return Tensor(name: name, shape: std.shape, floats: variance)
    }

    static func transpose(_ w: Tensor) throws -> Tensor {
        let (rows, cols) = (w.shape[0], w.shape[1]), size = w.dtype.byteSize
        let src = [UInt8](w.data)
        var dst = [UInt8](repeating: 0, count: src.count)
        for r in 0..<rows {
            for c in 0..<cols {
                for b in 0..<size { dst[(c * rows + r) * size + b] = src[(r * cols + c) * size + b] }
            }
        }
        return try Tensor(name: w.name, dtype: w.dtype, shape: [cols, rows], data: Data(dst))
    }

    static func scalar(_ t: Tensor) throws -> Double {
        if t.dtype == .f64 {
            return t.data.withUnsafeBytes { Double(bitPattern: UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self))) }
        }
        return Double(try t.floatValues()[0])
    }

    private func attribute(_ node: Onnx_NodeProto, _ name: String) -> Int64? {
        node.attribute.first { $0.name == name }.map(\.i)
    }

    private func attribute(_ node: Onnx_NodeProto, _ name: String, float fallback: Float) -> Float {
        node.attribute.first { $0.name == name }?.f ?? fallback
    }

    static func label(_ node: Onnx_NodeProto) -> String { node.name.isEmpty ? node.opType : node.name }

    private func refusal(_ node: Onnx_NodeProto, _ why: String) -> ClipSafetyError {
        let op = ONNXTypes.qualifiedOp(node)
        return ClipSafetyError.unsupported("ONNX: node '\(Self.label(node))' (\(op)\(why.isEmpty ? "" : " " + why)) is not one clipsafety runs; convert reads chains of Gemm or MatMul+Add, Relu, Sigmoid, Sub/Div normalisation and ArgMax")
    }
}
