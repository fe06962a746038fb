import Core
import Foundation
import Runtime
import SwiftProtobuf

/// Writes a native model as an ONNX model (opset 17, standard operators only) that computes
/// the same numbers: one input `embedding` (float32 [N, D]), one output per card column
/// (float32 [N]) and `label` (int64 [N]) when the graph ends in `argmax`. The card and the
/// provenance travel in `metadata_props`; docs/ONNX.md says how each native op maps.
public enum ONNXExport {
    public static let opsetVersion: Int64 = 17
    /// The IR version that goes with opset 17.
    public static let irVersion: Int64 = 8
    public static let inputName = "embedding"
    public static let labelOutput = "label"
    /// `metadata_props` keys: the native format tag, the card and the provenance as JSON,
    /// exactly as a native file's `__metadata__` holds them.
    public static let formatKey = "clipsafety.format", modelKey = "clipsafety.model", sourceKey = "clipsafety.source"

    /// The ONNX bytes of `model` (deterministic: the same model gives the same bytes).
    public static func serialized(_ model: NativeModel) throws -> Data {
        try model.validate(limits: nil)
        var proto = Onnx_ModelProto()
        proto.irVersion = irVersion
        var opset = Onnx_OperatorSetIdProto()
        opset.domain = ""
        opset.version = opsetVersion
        proto.opsetImport = [opset]
        proto.producerName = "clipsafety"
        proto.producerVersion = clipsafetyVersion
        proto.docString = meaning(of: model.card)
        proto.graph = try graph(of: model)
        let metadata = try model.metadata()
        proto.metadataProps = [(formatKey, NativeModel.formatTag), (modelKey, metadata["model"] ?? ""),
                               (sourceKey, metadata["source"] ?? "")].map { key, value in
            var entry = Onnx_StringStringEntryProto()
            entry.key = key
            entry.value = value
            return entry
        }
        do {
            return try proto.serializedBytes()
        } catch {
            throw ClipSafetyError(.malformed, "ONNX: the model cannot be serialised (\(error))")
        }
    }

    /// Writes `model` as ONNX to `path`, atomically.
    public static func write(_ model: NativeModel, to path: String) throws {
        let bytes = try serialized(model)
        try AtomicFile.write(bytes, to: path)
    }

    /// What the outputs mean, for `doc_string`: the card's own sentence and one line per output.
    static func meaning(of card: ModelCard) -> String {
        var lines = ["\(card.name): takes `\(inputName)`, float32 [N, \(card.embeddingDim)], \(card.backbone) CLIP embeddings (precondition: \(card.inputPrecondition))."]
        if let d = card.description { lines.append(d) }
        for column in card.outputColumns { lines.append("`\(column)`: \(columnMeaning(card))") }
        if card.task == .promptClassifier || card.task == .unknown, card.outputColumns.count > 1 {
            lines.append("`\(labelOutput)` (when present): index of the largest column, the first on ties; class names \(card.labels).")
        }
        if card.task == .unknown { lines.append("Task unknown: nobody stated what these numbers mean; make no decision from them.") }
        return lines.joined(separator: "\n")
    }

    static func columnMeaning(_ card: ModelCard) -> String {
        var text: String
        switch card.outputKind {
        case .probability: text = "probability"
        case .score: text = "score"
        case .logits: text = "logit (unnormalised class score)"
        }
        if let r = card.outputRange, r.count == 2 { text += " in [\(r[0]), \(r[1])]" } else { text += ", unbounded" }
        if let p = card.positiveLabel { text += "; higher means more \(p)" }
        if let t = card.threshold {
            text += "; positive when > \(t)" + (card.thresholdSource.map { " (\($0))" } ?? "")
        }
        return text + "."
    }

    // MARK: graph

    static func graph(of model: NativeModel) throws -> Onnx_GraphProto {
        let card = model.card
        let outputs = card.outputColumns + (model.graph.last == .argmax ? [labelOutput] : [])
        guard Set(outputs).count == outputs.count, !outputs.contains(inputName), !outputs.contains(where: \.isEmpty) else {
            throw ClipSafetyError.mismatch("ONNX: output names \(outputs) must be distinct, non-empty and not '\(inputName)'")
        }
        if let clash = model.tensors.first(where: { outputs.contains($0.name) || $0.name == inputName }) {
            throw ClipSafetyError.mismatch("ONNX: tensor '\(clash.name)' has the name of a graph input or output")
        }
        var builder = ONNXGraphBuilder(reserved: [inputName] + outputs)
        for tensor in model.tensors.sorted(by: { $0.name < $1.name }) where !isVocabulary(tensor.name, model.graph) {
            try builder.initializer(tensor)
        }
        var state = ExportState(activation: inputName, width: card.embeddingDim)
        for (index, op) in model.graph.enumerated() {
            try emit(op, index: index, model: model, state: &state, builder: &builder)
        }
        for (k, column) in card.outputColumns.enumerated() {
            let at = try builder.int64s("column_\(k)", [Int64(k)], shape: [])
            builder.add("Gather", [state.activation, at], name: "output.\(column)", output: column, attributes: [.int("axis", 1)])
        }
        var g = Onnx_GraphProto()
        g.name = card.name
        g.node = builder.nodes
        g.initializer = builder.initializers
        g.input = [valueInfo(inputName, ONNXDataType.float, [nil, card.embeddingDim], doc: "CLIP embeddings, one per row")]
        g.output = card.outputColumns.map { valueInfo($0, ONNXDataType.float, [nil], doc: columnMeaning(card)) }
        if model.graph.last == .argmax {
            g.output.append(valueInfo(labelOutput, ONNXDataType.int64, [nil], doc: "index of the largest column (first on ties): \(card.labels)"))
        }
        return g
    }

    /// The current activation while the native ops are turned into nodes.
    struct ExportState {
        var activation: String
        var width: Int
    }

    /// Vocabulary tensors (`keys`, `values`) become thresholds and values, not initializers.
    static func isVocabulary(_ name: String, _ graph: [GraphOp]) -> Bool {
        graph.contains { op in
            if case .categoricalLookup(let columns) = op { return columns.contains { $0.keys == name || $0.values == name } }
            return false
        }
    }

    static func emit(_ op: GraphOp, index: Int, model: NativeModel, state: inout ExportState, builder: inout ONNXGraphBuilder) throws {
        let a = state.activation
        func tensor(_ name: String) throws -> Tensor {
            guard let t = model.tensor(named: name) else { throw ClipSafetyError.mismatch("graph: no tensor '\(name)'") }
            return t
        }
        switch op {
        case .imputeNaN(let columns, let value):
            state.activation = try imputeNaN(a, columns: columns, value: value, width: state.width, index: index, builder: &builder)
        case .categoricalLookup(let columns):
            state.activation = try ONNXCategorical.emit(columns, activation: a, width: state.width, model: model, index: index, builder: &builder)
        case .normalize(let mean, let variance, let rule, let epsilon):
            state.activation = try normalize(a, mean: try tensor(mean), variance: try tensor(variance), rule: rule,
                                             epsilon: epsilon, index: index, builder: &builder)
        case .dense(let weight, let bias):
            let w = try tensor(weight)
            var inputs = [a, builder.asFloat32(w)]
            if let bias { inputs.append(builder.asFloat32(try tensor(bias))) }
            state.activation = builder.add("Gemm", inputs, name: "\(index).dense", attributes: [.int("transB", 1)])
            state.width = w.shape.first ?? 0
        case .promptScores(let prompts):
            let p = try tensor(prompts)
            state.activation = builder.add("Gemm", [a, builder.asFloat32(p)], name: "\(index).prompt_scores", attributes: [.int("transB", 1)])
            state.width = p.shape.first ?? 0
        case .relu:
            state.activation = builder.add("Relu", [a], name: "\(index).relu")
        case .sigmoid:
            state.activation = builder.add("Sigmoid", [a], name: "\(index).sigmoid")
        case .argmax:
            builder.add("ArgMax", [a], name: "\(index).argmax", output: labelOutput,
                        attributes: [.int("axis", 1), .int("keepdims", 0), .int("select_last_index", 0)])
        }
    }

    /// `Where(IsNaN(A) [and the column mask], value, A)`.
    static func imputeNaN(_ a: String, columns: [Int]?, value: Float, width: Int, index: Int, builder: inout ONNXGraphBuilder) throws -> String {
        var isNaN = builder.add("IsNaN", [a], name: "\(index).impute_nan.is_nan")
        if let columns {
            var mask = [Bool](repeating: false, count: width)
            for c in columns where c >= 0 && c < width { mask[c] = true }
            let m = try builder.bools("impute_nan.\(index).columns", mask, shape: [width])
            isNaN = builder.add("And", [isNaN, m], name: "\(index).impute_nan.in_columns")
        }
        let v = try builder.floats("impute_nan.\(index).value", [value], shape: [])
        return builder.add("Where", [isNaN, v, a], name: "\(index).impute_nan")
    }

    /// `(A − mean) / den`, with `den = max(√variance, ε)` or `√variance + ε` computed in
    /// float32 from the stored variance; ε is stored as float64 (the card's number) and cast.
    static func normalize(_ a: String, mean: Tensor, variance: Tensor, rule: NormalizeDenominator, epsilon: Double,
                          index: Int, builder: inout ONNXGraphBuilder) throws -> String {
        var m = builder.asFloat32(mean), v = builder.asFloat32(variance)
        if mean.shape.count != 1 || variance.shape.count != 1 {
            let flat = try builder.int64s("normalize.\(index).flat", [-1], shape: [1])
            if mean.shape.count != 1 { m = builder.add("Reshape", [m, flat], name: "\(mean.name).flat") }
            if variance.shape.count != 1 { v = builder.add("Reshape", [v, flat], name: "\(variance.name).flat") }
        }
        let shifted = builder.add("Sub", [a, m], name: "\(index).normalize.shift")
        let root = builder.add("Sqrt", [v], name: "\(index).normalize.sqrt")
        let e64 = try builder.double("normalize.\(index).epsilon", epsilon)
        let e = builder.add("Cast", [e64], name: "\(index).normalize.epsilon", attributes: [.int("to", Int64(ONNXDataType.float))])
        let den = builder.add(rule == .maxSqrtVarianceEpsilon ? "Max" : "Add", [root, e], name: "\(index).normalize.denominator")
        return builder.add("Div", [shifted, den], name: "\(index).normalize")
    }

    static func valueInfo(_ name: String, _ elementType: Int32, _ dims: [Int?], doc: String) -> Onnx_ValueInfoProto {
        var tensorType = Onnx_TypeProto.Tensor()
        tensorType.elemType = elementType
        var shape = Onnx_TensorShapeProto()
        shape.dim = dims.map { d in
            var dim = Onnx_TensorShapeProto.Dimension()
            if let d { dim.dimValue = Int64(d) } else { dim.dimParam = "N" }
            return dim
        }
        tensorType.shape = shape
        var type = Onnx_TypeProto()
        type.tensorType = tensorType
        var info = Onnx_ValueInfoProto()
        info.name = name
        info.type = type
        info.docString = doc
        return info
    }
}
