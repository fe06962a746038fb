import Foundation
import Runtime

/// A Keras model config — a legacy `.h5` `model_config` attribute, a `.keras` `config.json`, the
/// root node of a SavedModel's `keras_metadata.pb` — described as data: every layer whatever its
/// class, what feeds it, the layer chain when there is one, and the input width. Nothing in the
/// config is imported or evaluated, and no class is refused here: which layers clipsafety runs
/// is `KerasChainHead`'s decision. Only configs that are not Keras configs at all are refused.
struct KerasArchitecture {
    /// The model's class; qualified by its module when that is not Keras (see `className`).
    var modelClass: String
    /// Layers in config order (Keras' `model.layers` order, which the weight files follow);
    /// their `weights` are for the format reader to fill in.
    var layers: [DescribedLayer]
    /// Layer names from input to output when the layers form one chain.
    var chain: [String]?
    /// Why they do not, when they do not.
    var chainProblem: String?
    /// The width of the `[batch, D]` input the config declares, when it declares one.
    var inputWidth: Int?

    static let modelClasses: Set<String> = ["Sequential", "Functional", "Model"]

    /// Parses config JSON; `what` names it in messages.
    init(json: Data, what: String, limits: ReaderLimits) throws {
        try self.init(model: try JSONValue(parsing: json, what: what, limits: limits))
    }

    init(model: JSONValue) throws {
        guard model.object != nil else { throw ClipSafetyError.malformed("Keras config is not a JSON object") }
        guard let className = Self.className(of: model) else {
            throw ClipSafetyError.malformed("Keras config has no 'class_name'")
        }
        guard let body = model["config"], let entries = body["layers"]?.array else {
            throw ClipSafetyError.malformed("Keras config of the \(className) model has no 'config.layers' list")
        }
        modelClass = className
        let parsed = try entries.enumerated().map { try Self.layer($1, index: $0) }
        var seen = Set<String>()
        for layer in parsed where !seen.insert(layer.name).inserted {
            throw ClipSafetyError.malformed("Keras config names two layers '\(layer.name)'")
        }
        layers = parsed
        guard Self.modelClasses.contains(className) else {
            chainProblem = "Keras config: how a '\(className)' model connects its layers is in its own code, not in the config"
            return
        }
        do {
            chain = try KerasTopology(body: body, entries: entries, layers: parsed, sequential: className == "Sequential").chain()
        } catch let e as ClipSafetyError where e.kind == .unsupported {
            chainProblem = e.message
        }
        inputWidth = Self.inputWidth(body: body, layers: parsed, sequential: className == "Sequential")
    }

    /// The class a config entry names. A class from a module outside Keras is qualified by it
    /// (`my_package.layers.Dense`), and a custom registered object is named by its registration
    /// (`my_package>MyLayer`), so that no foreign class passes for a Keras one.
    static func className(of entry: JSONValue) -> String? {
        guard let cls = entry["class_name"]?.string else { return nil }
        let module = entry["module"]?.string
        let fromKeras = module.map { $0 == "keras" || $0.hasPrefix("keras.") }
        if let module, fromKeras == false { return module + "." + cls }
        if let registered = entry["registered_name"]?.string, registered != cls, fromKeras != true { return registered }
        return cls
    }

    /// One layer entry, described.
    static func layer(_ entry: JSONValue, index: Int) throws -> DescribedLayer {
        guard entry.object != nil else { throw ClipSafetyError.malformed("Keras config: layer \(index) is not an object") }
        guard let className = className(of: entry) else {
            throw ClipSafetyError.malformed("Keras config: layer \(index) has no 'class_name'")
        }
        let config = entry["config"] ?? .object([:])
        guard let name = entry["name"]?.string ?? config["name"]?.string, !name.isEmpty else {
            throw ClipSafetyError.malformed("Keras config: layer \(index) (\(className)) has no name")
        }
        guard !name.contains("/"), name != ".", name != ".." else {
            throw ClipSafetyError.malformed("Keras config: layer name '\(name)' is not a plain name")
        }
        let calls = try KerasTopology.calls(entry, label: "layer '\(name)' (\(className))")
        return DescribedLayer(name: name, className: className, inbound: calls.flatMap { $0.args + $0.kwargs }, config: config)
    }

    /// A list, or the `items` of a Keras 2 `__tuple__` object.
    static func list(_ value: JSONValue?) -> [JSONValue]? {
        value?.array ?? value?["items"]?.array
    }

    /// The batch shape an input config declares: `batch_shape` (Keras 3) or `batch_input_shape`
    /// (Keras 2); nil when it declares none.
    static func batchShape(_ config: JSONValue) -> [JSONValue]? {
        list(config["batch_shape"]) ?? list(config["batch_input_shape"])
    }

    /// D of a `[batch, D]` shape with D a positive whole number; nil for any other shape.
    static func width(ofBatchShape shape: [JSONValue]?) -> Int? {
        guard let shape, shape.count == 2, let w = shape[1].int, w > 0 else { return nil }
        return w
    }

    /// The declared input width: a Sequential model's first layer or `build_input_shape`, else
    /// the first InputLayer's shape.
    static func inputWidth(body: JSONValue, layers: [DescribedLayer], sequential: Bool) -> Int? {
        if sequential, let first = layers.first {
            return width(ofBatchShape: batchShape(first.config)) ?? width(ofBatchShape: list(body["build_input_shape"]))
        }
        return layers.first { $0.className == "InputLayer" }.flatMap { width(ofBatchShape: batchShape($0.config)) }
    }
}

/// How a config's layers connect: each layer's calls and the tensors passed to them, and the
/// one chain from input to output when there is one. Configs that contradict themselves are
/// refused as malformed; ones that are well-formed but not one chain throw `.unsupported`.
struct KerasTopology {
    /// One call of a layer: the layers whose outputs it takes positionally and by keyword.
    struct Call {
        var args: [String]
        var kwargs: [String]
    }

    let body: JSONValue
    let entries: [JSONValue]
    let layers: [DescribedLayer]
    let sequential: Bool

    /// Layer names from input to output.
    func chain() throws -> [String] {
        let order = sequential ? layers : try functionalChain()
        for layer in order.dropFirst() where layer.className == "InputLayer" {
            throw ClipSafetyError.unsupported("Keras config: layer '\(layer.name)' (InputLayer) is a second input; only single-input chains are supported")
        }
        return order.map(\.name)
    }

    /// Walks from the declared output back to the declared input, one inbound layer at a time,
    /// and checks that every layer was on the way.
    func functionalChain() throws -> [DescribedLayer] {
        let input = try endpoint("input_layers")
        let output = try endpoint("output_layers")
        var index: [String: Int] = [:]
        for (i, l) in layers.enumerated() { index[l.name] = i }
        var reversed: [DescribedLayer] = []
        var current = output
        while true {
            guard let i = index[current] else {
                throw ClipSafetyError.malformed("Keras config: the chain reaches layer '\(current)', which the config does not define")
            }
            guard reversed.count < layers.count else { throw ClipSafetyError.malformed("Keras config: the layer graph has a cycle") }
            let layer = layers[i]
            reversed.append(layer)
            let inbound = try singleInbound(entries[i], label: label(layer))
            if layer.className == "InputLayer" {
                guard inbound == nil else { throw ClipSafetyError.malformed("Keras config: \(label(layer)) has inbound layers") }
                break
            }
            guard let inbound else { throw ClipSafetyError.malformed("Keras config: \(label(layer)) has no inbound layer") }
            current = inbound
        }
        guard reversed.last?.name == input else {
            throw ClipSafetyError.malformed("Keras config: the chain from the output starts at '\(reversed.last?.name ?? "")', not at the declared input '\(input)'")
        }
        let onChain = Set(reversed.map(\.name))
        if let stray = layers.first(where: { !onChain.contains($0.name) }) {
            throw ClipSafetyError.unsupported("Keras config: \(label(stray)) is not on the path from input to output; only single-chain models are supported")
        }
        return reversed.reversed()
    }

    func label(_ layer: DescribedLayer) -> String { "layer '\(layer.name)' (\(layer.className))" }

    /// The single layer named by `input_layers`/`output_layers`: `["name", 0, 0]` (Keras 3) or
    /// `[["name", 0, 0]]`.
    func endpoint(_ key: String) throws -> String {
        guard let list = body[key]?.array, !list.isEmpty else {
            throw ClipSafetyError.malformed("Keras config: Functional model has no '\(key)'")
        }
        if let name = list[0].string { return name }
        guard list.count == 1 else {
            throw ClipSafetyError.unsupported("Keras config: the model has \(list.count) \(key == "input_layers" ? "inputs" : "outputs"); only single-chain models are supported")
        }
        guard let name = list[0].array?.first?.string else {
            throw ClipSafetyError.malformed("Keras config: '\(key)' is not a layer reference")
        }
        return name
    }

    /// The one layer feeding this one, nil when none does; refuses layers called more than
    /// once, on more than one tensor or on keyword tensors.
    func singleInbound(_ entry: JSONValue, label: String) throws -> String? {
        let calls = try Self.calls(entry, label: label)
        guard let call = calls.first else { return nil }
        guard calls.count == 1 else {
            throw ClipSafetyError.unsupported("Keras config: \(label) is called \(calls.count) times; shared layers are not supported")
        }
        guard call.kwargs.isEmpty else {
            throw ClipSafetyError.unsupported("Keras config: \(label) receives tensors as keyword arguments; only single-chain models are supported")
        }
        guard call.args.count == 1 else {
            throw ClipSafetyError.unsupported("Keras config: \(label) takes \(call.args.count) inputs; only single-chain models are supported")
        }
        return call.args[0]
    }

    /// The calls in a layer's `inbound_nodes`: Keras 3 `{"args": […], "kwargs": {…}}` holding
    /// `__keras_tensor__` objects, or Keras 2 `[["layer", node, tensor, {kwargs}], …]`.
    static func calls(_ entry: JSONValue, label: String) throws -> [Call] {
        guard let nodes = entry["inbound_nodes"]?.array else { return [] }
        return try nodes.map { node in
            if node.object != nil {
                var args: [String] = [], kwargs: [String] = []
                collectTensors(node["args"] ?? .null, into: &args, depth: 0)
                collectTensors(node["kwargs"] ?? .null, into: &kwargs, depth: 0)
                return Call(args: args, kwargs: kwargs)
            }
            guard let refs = node.array else { throw ClipSafetyError.malformed("Keras config: \(label) has an unreadable inbound node") }
            return Call(args: try refs.map { ref in
                guard let name = ref.array?.first?.string else {
                    throw ClipSafetyError.malformed("Keras config: \(label) has an unreadable inbound node")
                }
                return name
            }, kwargs: [])
        }
    }

    /// Layer names of the Keras 3 tensors (`__keras_tensor__` objects) inside `value`.
    static func collectTensors(_ value: JSONValue, into out: inout [String], depth: Int) {
        guard depth < 8 else { return }
        switch value {
        case .object(let d):
            if d["class_name"]?.string == "__keras_tensor__" {
                out.append(value["config"]?["keras_history"]?.array?.first?.string ?? "")
                return
            }
            for v in d.values { collectTensors(v, into: &out, depth: depth + 1) }
        case .array(let list):
            for v in list { collectTensors(v, into: &out, depth: depth + 1) }
        default:
            return
        }
    }
}

extension KerasArchitecture {
    /// The file description of this architecture with what the format reader found beside it.
    func description(format: FileKind, tensors: [DescribedTensor], signatures: [ServingSignature] = [],
                     lookups: [DescribedLookup] = [], notes: [String]) -> FileDescription {
        FileDescription(format: format, tensors: tensors, layers: layers, modelClass: modelClass, chain: chain,
                        chainProblem: chainProblem, inputWidth: inputWidth, signatures: signatures,
                        lookups: lookups, notes: notes)
    }
}
