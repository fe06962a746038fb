import Foundation
import Runtime

/// Turns a Keras layer chain into native ops and tensors, one layer at a time, tracking the
/// width between layers. Tensor names follow upstream's PyTorch port: `norm.mean`,
/// `norm.variance`, `linear_K.weight` ([out, in]), `linear_K.bias`, plus
/// `encoding.<column>.keys` / `.values` for the categorical lookups.
struct KerasChainBuilder {
    /// Keras' `backend.epsilon()`, the floor of the Normalization denominator (not stored in configs).
    static let normalizationEpsilon = 1e-7

    let description: FileDescription
    /// The serving signature's input width, when the file has a signature.
    let signatureWidth: Int?
    var graph: [GraphOp] = []
    var tensors: [Tensor] = []
    var layers: [SourceLayer] = []
    var width: Int?
    var denseCount = 0
    var normCount = 0
    var sawEncoding = false

    init(description: FileDescription) {
        self.description = description
        signatureWidth = description.signatures.first?.input.shape?.last ?? nil
        width = description.inputWidth
    }

    /// Adds the ops of the next layer of the chain.
    mutating func add(_ layer: DescribedLayer) throws {
        let before = graph.count
        var notes = layer.notes
        let cls = KerasChainHead.baseClass(layer)
        switch cls {
        case "MultiCategoryEncoding": try addEncoding(layer)
        case "Normalization": try addNormalization(layer)
        case "Dense": try addDense(layer)
        default:
            try expectWeights(layer, count: 0, naming: "none")
            switch cls {
            case "InputLayer": try addInput(layer)
            case "ReLU": try addReLU(layer)
            case "Activation": graph += try KerasChainHead.activation(layer.config["activation"], label: KerasChainHead.label(layer))
            default: if let rate = layer.config["rate"]?.number { notes.append("rate \(rate)") }  // Dropout: identity at inference
            }
        }
        layers.append(SourceLayer(name: layer.name, className: cls, opCount: graph.count - before, notes: notes))
    }

    /// The finished head; refuses chains that compute nothing or leave the input width unknown.
    func head(notes: [String]) throws -> RecognisedHead {
        let traced = description.lookups.map(\.column)
        guard sawEncoding || traced.isEmpty else {
            throw ClipSafetyError.mismatch("saved_model.pb looks up columns \(traced), but the Keras config has no MultiCategoryEncoding")
        }
        guard let inputWidth = signatureWidth ?? description.inputWidth ?? firstWidth() else {
            throw ClipSafetyError.mismatch("Keras model: the input width is not given by the config nor by any weight")
        }
        guard !graph.isEmpty, let outputWidth = width else {
            throw ClipSafetyError.unsupported("Keras model computes nothing (no Dense, Normalization or activation layer)")
        }
        return RecognisedHead(graph: graph, tensors: tensors, inputWidth: inputWidth, outputWidth: outputWidth,
                              layers: layers, notes: notes)
    }

    /// The input width implied by the first weight tensor (for configs without an input shape).
    func firstWidth() -> Int? {
        guard let first = tensors.first else { return nil }
        return first.name.hasSuffix(".weight") ? first.shape.last : first.elementCount
    }

    // MARK: weights

    /// Refuses a layer whose stored weights are not `count` many; the layer's notes say where
    /// the reader looked.
    func expectWeights(_ layer: DescribedLayer, count: Int, naming: String) throws {
        guard layer.weights.count != count else { return }
        let where_ = layer.notes.isEmpty ? "" : " (\(layer.notes.joined(separator: "; ")))"
        let message = count == 0 ? "takes no weights, but the file stores \(layer.weights.count)"
            : "stores \(layer.weights.count) weights; expected \(count) (\(naming))"
        throw ClipSafetyError.mismatch("\(KerasChainHead.label(layer)) \(message)\(where_)")
    }

    /// Weight `index` of `layer`, which Keras knows as `role`; a name that states another role
    /// is refused (Keras assigns weights by position).
    func weight(_ layer: DescribedLayer, _ index: Int, role: String) throws -> Tensor {
        let label = KerasChainHead.label(layer)
        guard index < layer.weights.count, let t = description.tensor(layer.weights[index]) else {
            throw ClipSafetyError.mismatch("\(label) has no stored \(role)")
        }
        if let stated = KerasChainHead.role(of: t.name), stated != role {
            throw ClipSafetyError.mismatch("\(label) weight \(index) is '\(t.name)', where Keras expects its \(role)")
        }
        let tensor = try t.read()
        guard tensor.dtype.isFloatingPoint else {
            throw ClipSafetyError.mismatch("\(label) \(role) holds \(tensor.dtype.rawValue), not floating-point values")
        }
        return tensor
    }

    // MARK: layers

    /// Checks the declared input: a float `[batch, D]` whose D agrees with the serving signature.
    mutating func addInput(_ layer: DescribedLayer) throws {
        let label = KerasChainHead.label(layer)
        if let dtype = layer.config["dtype"]?.string, !["float16", "float32", "float64", "bfloat16"].contains(dtype) {
            throw ClipSafetyError.unsupported("Keras config: \(label) takes \(dtype) input; only floating-point embeddings are supported")
        }
        guard let shape = KerasArchitecture.batchShape(layer.config) else { return }
        guard shape.count == 2 else {
            throw ClipSafetyError.unsupported("Keras config: \(label) has input shape of rank \(shape.count); only [batch, features] inputs are supported")
        }
        guard let w = shape[1].int, w > 0 else {
            throw ClipSafetyError.malformed("Keras config: \(label) has input width \(KerasChainHead.text(shape[1])), not a positive integer")
        }
        if let s = signatureWidth, s != w {
            throw ClipSafetyError.mismatch("Keras model: input '\(layer.name)' has width \(w); the serving signature takes \(s)")
        }
        width = w
    }

    mutating func addReLU(_ layer: DescribedLayer) throws {
        for key in ["max_value", "negative_slope", "threshold"] {
            if let v = layer.config[key], v != .null, v.number != 0 {
                throw ClipSafetyError.unsupported("Keras config: \(KerasChainHead.label(layer)) sets \(key) = \(KerasChainHead.text(v)); only the plain ReLU is supported")
            }
        }
        graph.append(.relu)
    }

    mutating func addDense(_ layer: DescribedLayer) throws {
        let label = KerasChainHead.label(layer), config = layer.config
        guard let units = config["units"]?.int, units > 0 else {
            throw ClipSafetyError.malformed("Keras config: \(label) has no positive integer 'units'")
        }
        for key in ["quantization_config", "lora_rank"] {
            if let v = config[key], v != .null, v.int != 0 {
                throw ClipSafetyError.unsupported("Keras config: \(label) sets \(key); quantized and LoRA Dense layers are not supported")
            }
        }
        let useBias = config["use_bias"]?.bool ?? true
        let activation = try KerasChainHead.activation(config["activation"], label: label)
        try expectWeights(layer, count: useBias ? 2 : 1, naming: useBias ? "kernel, bias" : "kernel")
        denseCount += 1
        let prefix = "linear_\(denseCount)"
        let kernel = try weight(layer, 0, role: "kernel")
        guard kernel.shape.count == 2, kernel.shape[1] == units else {
            throw ClipSafetyError.mismatch("\(label) kernel has shape \(kernel.shape); the config says [in, \(units)]")
        }
        let inputs = kernel.shape[0]
        if let w = width, w != inputs {
            throw ClipSafetyError.mismatch("\(label) kernel has shape \(kernel.shape), but its input is \(w) wide")
        }
        tensors.append(Tensor(name: prefix + ".weight", shape: [units, inputs],
                              floats: Self.transpose(try kernel.floatValues(), rows: inputs, columns: units)))
        var biasName: String?
        if useBias {
            let bias = try weight(layer, 1, role: "bias")
            guard bias.shape == [units] else {
                throw ClipSafetyError.mismatch("\(label) bias has shape \(bias.shape); the config says [\(units)]")
            }
            tensors.append(Tensor(name: prefix + ".bias", shape: [units], floats: try bias.floatValues()))
            biasName = prefix + ".bias"
        }
        graph.append(.dense(weight: prefix + ".weight", bias: biasName))
        graph += activation
        width = units
    }

    /// `[rows, columns]` row-major → `[columns, rows]`.
    static func transpose(_ values: [Float], rows: Int, columns: Int) -> [Float] {
        var out = [Float](repeating: 0, count: values.count)
        for r in 0..<rows {
            for c in 0..<columns { out[c * rows + r] = values[r * columns + c] }
        }
        return out
    }
}
