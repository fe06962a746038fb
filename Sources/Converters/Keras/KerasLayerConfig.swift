import Foundation
import Runtime

// Keras model configs (the JSON of a legacy .h5 `model_config` attribute or a .keras
// `config.json`) reduced to the layer chain clipsafety runs, and the chain turned into native
// graph ops with the weights a format-specific store supplies. The JSON is only read as data:
// class names select from a fixed list, and nothing in the config is imported or evaluated.

/// Activation functions clipsafety runs; any other is refused.
enum KerasActivation: String {
    case linear, relu, sigmoid
}

/// What one supported Keras layer does at inference.
enum KerasLayerKind {
    /// The model input; `width` when the config gives the shape.
    case input(width: Int?)
    /// `(x − mean) / max(√variance, ε)`. `mean`/`variance` come from the config when it holds
    /// them, else from the stored weights (nil here).
    case normalization(mean: [Double]?, variance: [Double]?)
    case dense(units: Int, useBias: Bool, activation: KerasActivation)
    /// `Activation` and `ReLU` layers.
    case activation(KerasActivation)
    /// Identity at inference; `rate` as the config gives it (for `inspect`).
    case dropout(rate: Double?)
}

/// One layer of a config.
struct KerasLayer {
    /// The layer's name in the config (legacy `.h5` weight groups use it).
    var name: String
    var className: String
    /// The group name Keras 3 gives the layer in `model.weights.h5`: its class in snake case,
    /// numbered from the second layer of the same class on (`dense`, `dense_1`, …).
    var trackingName: String
    var kind: KerasLayerKind

    /// True when the layer's values live in the weights file.
    var ownsWeights: Bool {
        switch kind {
        case .dense: return true
        case .normalization(let mean, _): return mean == nil
        case .input, .activation, .dropout: return false
        }
    }

    /// `layer 'dense_0' (Dense)`, for messages.
    var label: String { "layer '\(name)' (\(className))" }
}

/// A Keras `Sequential` or single-chain `Functional` model config.
struct KerasModelConfig {
    /// `Sequential` or `Functional`.
    var modelClass: String
    /// The model's own name, if the config gives one.
    var modelName: String?
    /// Layers in config order (Keras' `model.layers` order, which the weight files follow).
    var layers: [KerasLayer]
    /// Layers from input to output.
    var chain: [KerasLayer]
    /// Input width from the config, when given.
    var inputWidth: Int?

    static let supportedClasses = ["InputLayer", "Normalization", "Dense", "ReLU", "Activation", "Dropout"]
    static let modelClasses: Set<String> = ["Sequential", "Functional", "Model"]

    /// Parses the config JSON. Throws `.unsafe` for Lambda layers, `.unsupported` for other
    /// layers outside the supported list and for models that are not one chain.
    init(json: Data) throws {
        let root: Any
        do {
            root = try JSONSerialization.jsonObject(with: json)
        } catch {
            throw ClipSafetyError.malformed("Keras config is not valid JSON")
        }
        guard let model = root as? [String: Any] else { throw ClipSafetyError.malformed("Keras config is not a JSON object") }
        guard let className = model["class_name"] as? String else {
            throw ClipSafetyError.malformed("Keras config has no 'class_name'")
        }
        try Self.checkBuiltIn(model, what: "model class '\(className)'")
        guard Self.modelClasses.contains(className) else {
            throw ClipSafetyError.unsupported("Keras model class '\(className)' is not supported (only Sequential and Functional models; custom model classes are never imported)")
        }
        guard let body = model["config"] as? [String: Any], let rawLayers = body["layers"] as? [Any] else {
            throw ClipSafetyError.malformed("Keras config of the \(className) model has no 'config.layers' list")
        }
        modelClass = className == "Model" ? "Functional" : className
        modelName = body["name"] as? String

        var parsed: [(layer: KerasLayer, json: [String: Any])] = []
        var usedTracking: [String: Int] = [:]
        for (index, raw) in rawLayers.enumerated() {
            guard let entry = raw as? [String: Any] else {
                throw ClipSafetyError.malformed("Keras config: layer \(index) is not an object")
            }
            let layer = try Self.parseLayer(entry, index: index, tracking: &usedTracking)
            parsed.append((layer, entry))
        }
        guard !parsed.isEmpty else { throw ClipSafetyError.mismatch("Keras config has no layers") }
        var seen = Set<String>()
        for p in parsed where !seen.insert(p.layer.name).inserted {
            throw ClipSafetyError.malformed("Keras config names two layers '\(p.layer.name)'")
        }
        layers = parsed.map(\.layer)

        if modelClass == "Sequential" {
            chain = layers
            inputWidth = try Self.sequentialInputWidth(body, parsed.map(\.json))
        } else {
            chain = try Self.functionalChain(body, parsed)
            if case .input(let w)? = chain.first?.kind { inputWidth = w } else { inputWidth = nil }
        }
        for (i, layer) in chain.enumerated() where i > 0 {
            if case .input = layer.kind {
                throw ClipSafetyError.unsupported("Keras config: \(layer.label) is a second input; only single-input chains are supported")
            }
        }
    }

    // MARK: layers

    /// Refuses objects that Keras would load from a module outside Keras itself.
    static func checkBuiltIn(_ object: [String: Any], what: String) throws {
        if let module = object["module"] as? String, module != "keras", !module.hasPrefix("keras.") {
            throw ClipSafetyError.unsupported("Keras config: \(what) comes from module '\(module)', not Keras; custom code is never imported")
        }
        if let registered = object["registered_name"] as? String, let cls = object["class_name"] as? String,
           registered != cls, !(object["module"] as? String ?? "").hasPrefix("keras") {
            throw ClipSafetyError.unsupported("Keras config: \(what) is registered as '\(registered)', a custom object; custom code is never imported")
        }
    }

    static func parseLayer(_ entry: [String: Any], index: Int, tracking: inout [String: Int]) throws -> KerasLayer {
        guard let className = entry["class_name"] as? String else {
            throw ClipSafetyError.malformed("Keras config: layer \(index) has no 'class_name'")
        }
        let config = entry["config"] as? [String: Any] ?? [:]
        guard let name = (entry["name"] as? String) ?? (config["name"] as? String), !name.isEmpty else {
            throw ClipSafetyError.malformed("Keras config: layer \(index) (\(className)) has no name")
        }
        guard !name.contains("/"), name != ".", name != ".." else {
            throw ClipSafetyError.malformed("Keras config: layer name '\(name)' is not a plain name")
        }
        let label = "layer '\(name)' (\(className))"
        if className == "Lambda" || className == "TFOpLambda" || className.hasSuffix(">Lambda") {
            throw ClipSafetyError.unsafe("Keras config: \(label) is a Lambda layer: it carries Python code, which clipsafety never runs")
        }
        if modelClasses.contains(className) {
            throw ClipSafetyError.unsupported("Keras config: \(label) is a nested model; only flat models are supported")
        }
        guard supportedClasses.contains(className) else {
            throw ClipSafetyError.unsupported("Keras config: \(label) has a class clipsafety does not support (supported: \(supportedClasses.joined(separator: ", "))); custom layers are never imported")
        }
        try checkBuiltIn(entry, what: label)

        let kind: KerasLayerKind
        switch className {
        case "InputLayer":
            try checkFloatDType(config["dtype"], label: label)
            kind = .input(width: try inputWidth(config, label: label))
        case "Normalization":
            kind = try normalization(config, label: label)
        case "Dense":
            kind = try dense(config, label: label)
        case "ReLU":
            for key in ["max_value", "negative_slope", "threshold"] {
                if let v = config[key], !(v is NSNull), (v as? Double) != 0 {
                    throw ClipSafetyError.unsupported("Keras config: \(label) sets \(key) = \(v); only the plain ReLU is supported")
                }
            }
            kind = .activation(.relu)
        case "Activation":
            kind = .activation(try activation(config["activation"], label: label))
        default:  // Dropout
            kind = .dropout(rate: config["rate"] as? Double)
        }

        let base = snakeCase(className)
        let tracked: String
        if let used = tracking[base] {
            tracking[base] = used + 1
            tracked = "\(base)_\(used + 1)"
        } else {
            tracking[base] = 0
            tracked = base
        }
        return KerasLayer(name: name, className: className, trackingName: tracked, kind: kind)
    }

    /// Keras' `to_snake_case`: drop non-word characters, `_` before capitalised words and at
    /// lower→upper boundaries, lower case (`InputLayer` → `input_layer`, `ReLU` → `re_lu`).
    static func snakeCase(_ name: String) -> String {
        func replace(_ s: String, _ pattern: String, _ template: String) -> String {
            guard let re = try? NSRegularExpression(pattern: pattern) else { return s }
            return re.stringByReplacingMatches(in: s, range: NSRange(s.startIndex..., in: s), withTemplate: template)
        }
        var s = replace(name, "\\W+", "")
        s = replace(s, "(.)([A-Z][a-z]+)", "$1_$2")
        s = replace(s, "([a-z])([A-Z])", "$1_$2")
        return s.lowercased()
    }

    static func checkFloatDType(_ value: Any?, label: String) throws {
        guard let dtype = value as? String else { return }
        guard ["float16", "float32", "float64", "bfloat16"].contains(dtype) else {
            throw ClipSafetyError.unsupported("Keras config: \(label) takes \(dtype) input; only floating-point embeddings are supported")
        }
    }

    /// The width of a `[null, D]` batch shape, from `batch_shape` (Keras 3) or
    /// `batch_input_shape` (Keras 2); nil when neither is given.
    static func inputWidth(_ config: [String: Any], label: String) throws -> Int? {
        guard let shape = (config["batch_shape"] ?? config["batch_input_shape"]) as? [Any] else { return nil }
        return try width(ofBatchShape: shape, label: label)
    }

    static func width(ofBatchShape shape: [Any], label: String) throws -> Int {
        guard shape.count == 2 else {
            throw ClipSafetyError.unsupported("Keras config: \(label) has input shape of rank \(shape.count); only [batch, features] inputs are supported")
        }
        guard let w = shape[1] as? Int, w > 0 else {
            throw ClipSafetyError.malformed("Keras config: \(label) has input width \(shape[1]), not a positive integer")
        }
        return w
    }

    static func activation(_ value: Any?, label: String) throws -> KerasActivation {
        var name: String?
        if value == nil || value is NSNull {
            name = "linear"
        } else if let s = value as? String {
            name = s
        } else if let d = value as? [String: Any] {
            // Keras 3 may write a built-in activation as {"module": "keras.activations", "config": "relu", …}.
            try checkBuiltIn(d, what: "the activation of \(label)")
            name = (d["config"] as? String) ?? (d["class_name"] as? String)
        }
        guard let name, let act = KerasActivation(rawValue: name) else {
            throw ClipSafetyError.unsupported("Keras config: \(label) uses activation \(value.map { "\($0)" } ?? "?"); only linear, relu and sigmoid are supported")
        }
        return act
    }

    static func dense(_ config: [String: Any], label: String) throws -> KerasLayerKind {
        guard let units = config["units"] as? Int, units > 0 else {
            throw ClipSafetyError.malformed("Keras config: \(label) has no positive integer 'units'")
        }
        let useBias = config["use_bias"] as? Bool ?? true
        for key in ["quantization_config", "lora_rank"] {
            if let v = config[key], !(v is NSNull), (v as? Int) != 0 {
                throw ClipSafetyError.unsupported("Keras config: \(label) sets \(key); quantized and LoRA Dense layers are not supported")
            }
        }
        return .dense(units: units, useBias: useBias, activation: try activation(config["activation"], label: label))
    }

    static func normalization(_ config: [String: Any], label: String) throws -> KerasLayerKind {
        if let invert = config["invert"] as? Bool, invert {
            throw ClipSafetyError.unsupported("Keras config: \(label) is an inverse normalization (invert = true)")
        }
        let axis = config["axis"]
        let axes: [Any] = (axis as? [Any]) ?? (axis.map { [$0] } ?? [-1])
        guard axes.count == 1, let a = axes[0] as? Int, a == -1 || a == 1 else {
            throw ClipSafetyError.unsupported("Keras config: \(label) normalizes over axis \(axis ?? "null"); only the feature axis (-1) is supported")
        }
        let mean = try statistics(config["mean"], key: "mean", label: label)
        let variance = try statistics(config["variance"], key: "variance", label: label)
        guard (mean == nil) == (variance == nil) else {
            throw ClipSafetyError.malformed("Keras config: \(label) gives only one of mean and variance")
        }
        return .normalization(mean: mean, variance: variance)
    }

    /// A number or (nested) list of numbers, flattened; nil for null or absent.
    static func statistics(_ value: Any?, key: String, label: String) throws -> [Double]? {
        guard let value, !(value is NSNull) else { return nil }
        var out: [Double] = []
        func flatten(_ v: Any, depth: Int) throws {
            if let n = v as? Double {
                out.append(n)
            } else if let list = v as? [Any], depth < 4 {
                for item in list { try flatten(item, depth: depth + 1) }
            } else {
                throw ClipSafetyError.malformed("Keras config: \(label) \(key) is not a number or a list of numbers")
            }
        }
        try flatten(value, depth: 0)
        return out
    }

    // MARK: model structure

    static func sequentialInputWidth(_ body: [String: Any], _ entries: [[String: Any]]) throws -> Int? {
        if let first = entries.first, let config = first["config"] as? [String: Any] {
            let label = "layer '\(config["name"] as? String ?? "0")' (\(first["class_name"] as? String ?? "?"))"
            if let w = try inputWidth(config, label: label) { return w }
        }
        if let shape = body["build_input_shape"] as? [Any] {
            return try width(ofBatchShape: shape, label: "the Sequential model's build_input_shape")
        }
        return nil
    }

    /// The layers of a Functional model from input to output, checking that they form one
    /// chain: one input, one output, every layer called once on exactly the previous layer.
    static func functionalChain(_ body: [String: Any], _ parsed: [(layer: KerasLayer, json: [String: Any])]) throws -> [KerasLayer] {
        let input = try endpoint(body["input_layers"], key: "input_layers")
        let output = try endpoint(body["output_layers"], key: "output_layers")
        var byName: [String: (layer: KerasLayer, json: [String: Any])] = [:]
        for p in parsed { byName[p.layer.name] = p }

        var reversed: [KerasLayer] = []
        var current = output
        while true {
            guard let p = byName[current] else {
                throw ClipSafetyError.malformed("Keras config: the chain reaches layer '\(current)', which the config does not define")
            }
            guard reversed.count < parsed.count else {
                throw ClipSafetyError.malformed("Keras config: the layer graph has a cycle")
            }
            reversed.append(p.layer)
            let inbound = try inboundLayer(p.json, label: p.layer.label)
            if case .input = p.layer.kind {
                guard inbound == nil else { throw ClipSafetyError.malformed("Keras config: \(p.layer.label) has inbound layers") }
                break
            }
            guard let inbound else {
                throw ClipSafetyError.malformed("Keras config: \(p.layer.label) has no inbound layer")
            }
            current = inbound
        }
        guard reversed.last?.name == input else {
            throw ClipSafetyError.malformed("Keras config: the chain from the output starts at '\(reversed.last?.name ?? "")', not at the declared input '\(input)'")
        }
        let onChain = Set(reversed.map(\.name))
        if let stray = parsed.first(where: { !onChain.contains($0.layer.name) }) {
            throw ClipSafetyError.unsupported("Keras config: \(stray.layer.label) is not on the path from input to output; only single-chain models are supported")
        }
        return reversed.reversed()
    }

    /// The single layer named by `input_layers`/`output_layers`: `["name", 0, 0]` (Keras 3)
    /// or `[["name", 0, 0]]`.
    static func endpoint(_ value: Any?, key: String) throws -> String {
        guard let list = value as? [Any], !list.isEmpty else {
            throw ClipSafetyError.malformed("Keras config: Functional model has no '\(key)'")
        }
        if let name = list[0] as? String { return name }
        guard list.count == 1 else {
            throw ClipSafetyError.unsupported("Keras config: the model has \(list.count) \(key == "input_layers" ? "inputs" : "outputs"); only single-chain models are supported")
        }
        guard let inner = list[0] as? [Any], let name = inner.first as? String else {
            throw ClipSafetyError.malformed("Keras config: '\(key)' is not a layer reference")
        }
        return name
    }

    /// The one layer feeding this one, nil when it has none. Refuses layers called more than
    /// once or on more than one tensor (Keras 2 and Keras 3 `inbound_nodes` forms).
    static func inboundLayer(_ entry: [String: Any], label: String) throws -> String? {
        guard let nodes = entry["inbound_nodes"] as? [Any], !nodes.isEmpty else { return nil }
        guard nodes.count == 1 else {
            throw ClipSafetyError.unsupported("Keras config: \(label) is called \(nodes.count) times; shared layers are not supported")
        }
        var sources: [String] = []
        if let node = nodes[0] as? [String: Any] {
            // Keras 3: {"args": [keras tensor, …], "kwargs": {…}}.
            collectTensors(node["args"] ?? [], into: &sources, depth: 0)
            var fromKwargs: [String] = []
            collectTensors(node["kwargs"] ?? [:], into: &fromKwargs, depth: 0)
            guard fromKwargs.isEmpty else {
                throw ClipSafetyError.unsupported("Keras config: \(label) receives tensors as keyword arguments; only single-chain models are supported")
            }
        } else if let node = nodes[0] as? [Any] {
            // Keras 2: [["layer", node, tensor, {kwargs}], …].
            for item in node {
                guard let ref = item as? [Any], let name = ref.first as? String else {
                    throw ClipSafetyError.malformed("Keras config: \(label) has an unreadable inbound node")
                }
                sources.append(name)
            }
        } else {
            throw ClipSafetyError.malformed("Keras config: \(label) has an unreadable inbound node")
        }
        guard sources.count == 1 else {
            throw ClipSafetyError.unsupported("Keras config: \(label) takes \(sources.count) inputs; only single-chain models are supported")
        }
        return sources[0]
    }

    /// Layer names of the Keras 3 tensors (`__keras_tensor__` objects) inside `value`.
    static func collectTensors(_ value: Any, into out: inout [String], depth: Int) {
        guard depth < 8 else { return }
        if let d = value as? [String: Any] {
            if d["class_name"] as? String == "__keras_tensor__" {
                let history = (d["config"] as? [String: Any])?["keras_history"] as? [Any]
                out.append(history?.first as? String ?? "")
                return
            }
            for v in d.values { collectTensors(v, into: &out, depth: depth + 1) }
        } else if let list = value as? [Any] {
            for v in list { collectTensors(v, into: &out, depth: depth + 1) }
        }
    }
}

/// Where a converter finds a layer's stored weights (legacy `model_weights`, `.keras` `vars`).
protocol KerasWeightStore {
    /// How many weights the file stores for `layer` (0 when none).
    func weightCount(for layer: KerasLayer) throws -> Int
    /// Weight `index` of `layer`; `role` is Keras' name for it (`kernel`, `bias`, `mean`, …).
    func weight(_ index: Int, role: String, of layer: KerasLayer) throws -> HDF5FloatArray
}

/// A model chain turned into native ops and tensors.
struct KerasGraph {
    var graph: [GraphOp]
    var tensors: [Tensor]
    var inputWidth: Int
    var outputWidth: Int
    /// True when the last op is a sigmoid (outputs are probabilities).
    var endsWithSigmoid: Bool
    /// The chain's layers with the number of ops each became (for `inspect`).
    var layers: [SourceLayer] = []
}

/// Builds the native graph from a config and a weight store.
enum KerasGraphBuilder {
    /// Keras' backend epsilon, the floor of the Normalization denominator (not stored in configs).
    static let normalizationEpsilon = 1e-7

    static func build(_ config: KerasModelConfig, weights: some KerasWeightStore) throws -> KerasGraph {
        var ops: [GraphOp] = []
        var tensors: [Tensor] = []
        var width = config.inputWidth
        var denseCount = 0
        var normCount = 0
        var sourceLayers: [SourceLayer] = []

        for layer in config.chain {
            let opsBefore = ops.count
            defer {
                var notes: [String] = []
                if case .dropout(let rate?) = layer.kind { notes.append("rate \(rate)") }
                sourceLayers.append(SourceLayer(name: layer.name, className: layer.className, opCount: ops.count - opsBefore, notes: notes))
            }
            let stored = try weights.weightCount(for: layer)
            switch layer.kind {
            case .input, .activation, .dropout:
                guard stored == 0 else {
                    throw ClipSafetyError.mismatch("\(layer.label) takes no weights, but the file stores \(stored)")
                }
            case .normalization, .dense:
                break
            }
            switch layer.kind {
            case .input:
                break
            case .dropout:
                break
            case .activation(let act):
                ops.append(contentsOf: activationOps(act))
            case .normalization(let configMean, let configVariance):
                normCount += 1
                let prefix = normCount == 1 ? "norm" : "norm_\(normCount)"
                let (mean, variance) = try normalizationValues(layer, configMean, configVariance, stored: stored, width: &width, weights: weights)
                tensors.append(Tensor(name: prefix + ".mean", shape: mean.shape, floats: mean.values))
                tensors.append(Tensor(name: prefix + ".variance", shape: variance.shape, floats: variance.values))
                ops.append(.normalize(mean: prefix + ".mean", variance: prefix + ".variance",
                                      denominator: .maxSqrtVarianceEpsilon, epsilon: normalizationEpsilon))
            case .dense(let units, let useBias, let act):
                denseCount += 1
                let prefix = "linear_\(denseCount)"
                let expected = useBias ? 2 : 1
                guard stored == expected else {
                    throw ClipSafetyError.mismatch("\(layer.label) stores \(stored) weights; expected \(expected) (\(useBias ? "kernel, bias" : "kernel"))")
                }
                let kernel = try weights.weight(0, role: "kernel", of: layer)
                guard kernel.shape.count == 2, kernel.shape[1] == units else {
                    throw ClipSafetyError.mismatch("\(layer.label) kernel has shape \(kernel.shape); the config says [in, \(units)]")
                }
                let inputs = kernel.shape[0]
                if let w = width, w != inputs {
                    throw ClipSafetyError.mismatch("\(layer.label) kernel has shape \(kernel.shape), but its input is \(w) wide")
                }
                tensors.append(Tensor(name: prefix + ".weight", shape: [units, inputs], floats: transpose(kernel.values, rows: inputs, columns: units)))
                var biasName: String?
                if useBias {
                    let bias = try weights.weight(1, role: "bias", of: layer)
                    guard bias.shape == [units] else {
                        throw ClipSafetyError.mismatch("\(layer.label) bias has shape \(bias.shape); the config says [\(units)]")
                    }
                    tensors.append(Tensor(name: prefix + ".bias", shape: [units], floats: bias.values))
                    biasName = prefix + ".bias"
                }
                ops.append(.dense(weight: prefix + ".weight", bias: biasName))
                ops.append(contentsOf: activationOps(act))
                width = units
            }
        }
        guard let inputWidth = config.inputWidth ?? firstWidth(tensors) else {
            throw ClipSafetyError.mismatch("Keras model: the input width is not given by the config nor by any weight")
        }
        guard !ops.isEmpty, let outputWidth = width else {
            throw ClipSafetyError.unsupported("Keras model computes nothing (no Dense, Normalization or activation layer)")
        }
        return KerasGraph(graph: ops, tensors: tensors, inputWidth: inputWidth, outputWidth: outputWidth,
                          endsWithSigmoid: ops.last == .sigmoid, layers: sourceLayers)
    }

    static func activationOps(_ act: KerasActivation) -> [GraphOp] {
        switch act {
        case .linear: return []
        case .relu: return [.relu]
        case .sigmoid: return [.sigmoid]
        }
    }

    /// The input width implied by the first weight tensor (for configs without an input shape).
    static func firstWidth(_ tensors: [Tensor]) -> Int? {
        guard let first = tensors.first else { return nil }
        return first.name.hasSuffix(".weight") ? first.shape.last : first.elementCount
    }

    /// Mean and variance from the config (a number is broadcast) or from weights 0 and 1
    /// (weight 2, `count`, is only used while adapting and is ignored).
    static func normalizationValues(_ layer: KerasLayer, _ configMean: [Double]?, _ configVariance: [Double]?,
                                    stored: Int, width: inout Int?,
                                    weights: some KerasWeightStore) throws -> (HDF5FloatArray, HDF5FloatArray) {
        if let configMean, let configVariance {
            guard stored == 0 else {
                throw ClipSafetyError.mismatch("\(layer.label) has mean and variance in its config and \(stored) stored weights")
            }
            guard let w = width ?? (configMean.count > 1 ? configMean.count : nil) else {
                throw ClipSafetyError.mismatch("\(layer.label) gives scalar statistics, and the input width is not known")
            }
            func expand(_ values: [Double], _ key: String) throws -> HDF5FloatArray {
                if values.count == 1 { return HDF5FloatArray(shape: [w], values: Array(repeating: Float(values[0]), count: w), storedElementSize: 8) }
                guard values.count == w else {
                    throw ClipSafetyError.mismatch("\(layer.label) config \(key) has \(values.count) values; the input is \(w) wide")
                }
                return HDF5FloatArray(shape: [w], values: values.map { Float($0) }, storedElementSize: 8)
            }
            width = w
            return (try expand(configMean, "mean"), try expand(configVariance, "variance"))
        }
        guard stored == 2 || stored == 3 else {
            throw ClipSafetyError.mismatch("\(layer.label) stores \(stored) weights; expected mean, variance and optionally count")
        }
        let mean = try weights.weight(0, role: "mean", of: layer)
        let variance = try weights.weight(1, role: "variance", of: layer)
        let w = width ?? mean.values.count
        guard mean.values.count == w, variance.values.count == w, w > 0 else {
            throw ClipSafetyError.mismatch("\(layer.label) mean has shape \(mean.shape) and variance \(variance.shape); the input is \(w) wide")
        }
        width = w
        return (mean, variance)
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
