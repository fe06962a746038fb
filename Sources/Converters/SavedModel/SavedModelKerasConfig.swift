import Foundation
import Runtime

/// The Keras functional model a SavedModel's `keras_metadata.pb` describes: its layers in
/// config order, each with its class, config, and — for layers that own weights — the
/// checkpoint prefix (`layer_with_weights-K`) under which `variables.index` stores them.
///
/// Only a linear chain of the layer classes clipsafety runs is accepted; any other class is
/// refused by name.
struct SavedModelKerasConfig {
    /// The layer classes the SavedModel converter supports.
    static let supportedClasses: Set<String> = [
        "InputLayer", "MultiCategoryEncoding", "Normalization", "Dense", "ReLU", "Activation", "Dropout",
    ]

    enum Layer {
        case input(width: Int)
        /// One entry per input column: `none` (number, NaN → 0) or `int` (vocabulary index).
        case multiCategoryEncoding(categorical: [Bool])
        case normalization(checkpoint: String)
        case dense(units: Int, activation: Activation, useBias: Bool, checkpoint: String)
        case activation(Activation)
        case dropout(rate: Double?)
    }

    enum Activation: String {
        case linear, relu, sigmoid
    }

    struct NamedLayer {
        var name: String
        var className: String
        var layer: Layer

        /// Facts for `inspect` the graph does not keep (a Dropout's rate).
        var notes: [String] {
            if case .dropout(let rate?) = layer { return ["rate \(rate)"] }
            return []
        }
    }

    var layers: [NamedLayer]

    /// Parses `keras_metadata.pb` bytes.
    init(metadata bytes: Data, limits: ReaderLimits) throws {
        let proto = try SavedModelProtobuf.decode(Keras_SavedMetadata.self, from: bytes, what: "keras_metadata.pb", limits: limits)
        guard let root = proto.nodes.first(where: { $0.nodePath == "root" }) else {
            throw ClipSafetyError.malformed("keras_metadata.pb: no node for the model ('root')")
        }
        let model = try Self.json(root.metadata, what: "keras_metadata.pb root")
        let className = model["class_name"] as? String ?? "?"
        guard className == "Functional" || className == "Model" || className == "Sequential" else {
            throw ClipSafetyError.unsupported("keras_metadata.pb: the model is a \(className); only functional models are supported")
        }
        guard let config = model["config"] as? [String: Any], let layerList = config["layers"] as? [[String: Any]] else {
            throw ClipSafetyError.malformed("keras_metadata.pb: the model config has no layer list")
        }
        // Checkpoint prefixes: root.layer_with_weights-K nodes name the layer they hold.
        var prefixByName: [String: String] = [:]
        for node in proto.nodes {
            let path = node.nodePath
            guard path.hasPrefix("root.layer_with_weights-"), !path.dropFirst(5).contains(".") else { continue }
            let meta = try Self.json(node.metadata, what: "keras_metadata.pb \(path)")
            guard let name = meta["name"] as? String else {
                throw ClipSafetyError.malformed("keras_metadata.pb: \(path) has no layer name")
            }
            guard prefixByName.updateValue(String(path.dropFirst(5)), forKey: name) == nil else {
                throw ClipSafetyError.malformed("keras_metadata.pb: two checkpoint nodes name the layer '\(name)'")
            }
        }
        var parsed: [NamedLayer] = []
        for (i, entry) in layerList.enumerated() {
            parsed.append(try Self.layer(entry, index: i, previous: parsed.last?.name, prefixes: prefixByName))
        }
        if let outputs = config["output_layers"] as? [Any], let last = parsed.last {
            let names = outputs.compactMap { ($0 as? [Any])?.first as? String }
            guard names == [last.name] else {
                throw ClipSafetyError.unsupported("keras model: outputs \(names) are not the single last layer '\(last.name)'")
            }
        }
        layers = parsed
    }

    static func json(_ text: String, what: String) throws -> [String: Any] {
        guard let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)), let dict = object as? [String: Any] else {
            throw ClipSafetyError.malformed("\(what): metadata is not a JSON object")
        }
        return dict
    }

    static func layer(_ entry: [String: Any], index: Int, previous: String?, prefixes: [String: String]) throws -> NamedLayer {
        guard let rawClass = entry["class_name"] as? String, let config = entry["config"] as? [String: Any] else {
            throw ClipSafetyError.malformed("keras model: layer \(index) has no class_name or config")
        }
        let className = rawClass.hasPrefix("Custom>") ? String(rawClass.dropFirst("Custom>".count)) : rawClass
        guard supportedClasses.contains(className) else {
            throw ClipSafetyError.unsupported("keras model: layer \(index) is a \(rawClass); the SavedModel converter supports \(supportedClasses.sorted().joined(separator: ", "))")
        }
        let name = entry["name"] as? String ?? config["name"] as? String ?? "layer \(index)"
        try checkChain(entry, name: name, previous: previous)
        func checkpoint() throws -> String {
            guard let p = prefixes[name] else {
                throw ClipSafetyError.malformed("keras model: no checkpoint node (layer_with_weights-K) holds the weights of '\(name)'")
            }
            return p
        }
        let layer: Layer
        switch className {
        case "InputLayer":
            guard let shape = (config["batch_input_shape"] as? [String: Any])?["items"] as? [Any] ?? config["batch_input_shape"] as? [Any],
                  shape.count == 2, let width = shape[1] as? Int, width > 0 else {
                throw ClipSafetyError.unsupported("keras model: input '\(name)' is not a batch of vectors (shape [None, D])")
            }
            layer = .input(width: width)
        case "MultiCategoryEncoding":
            guard let encoding = config["encoding"] as? [String] else {
                throw ClipSafetyError.malformed("keras model: MultiCategoryEncoding '\(name)' has no encoding list")
            }
            var categorical: [Bool] = []
            for (c, e) in encoding.enumerated() {
                switch e {
                case "none": categorical.append(false)
                case "int": categorical.append(true)
                default:
                    throw ClipSafetyError.unsupported("keras model: MultiCategoryEncoding '\(name)' column \(c) uses encoding '\(e)'; only 'none' and 'int' are supported")
                }
            }
            layer = .multiCategoryEncoding(categorical: categorical)
        case "Normalization":
            let axis = (config["axis"] as? [String: Any])?["items"] as? [Int] ?? (config["axis"] as? [Int]) ?? (config["axis"] as? Int).map { [$0] }
            guard axis == [-1] else {
                throw ClipSafetyError.unsupported("keras model: Normalization '\(name)' has axis \(String(describing: config["axis"])); only the last axis is supported")
            }
            if let invert = config["invert"] as? Bool, invert {
                throw ClipSafetyError.unsupported("keras model: Normalization '\(name)' is inverted; not supported")
            }
            layer = .normalization(checkpoint: try checkpoint())
        case "Dense":
            guard let units = config["units"] as? Int, units > 0 else {
                throw ClipSafetyError.malformed("keras model: Dense '\(name)' has no positive 'units'")
            }
            layer = .dense(units: units, activation: try activation(config["activation"], layer: name),
                           useBias: config["use_bias"] as? Bool ?? true, checkpoint: try checkpoint())
        case "ReLU":
            let maxValue = config["max_value"]
            let slope = (config["negative_slope"] as? Double) ?? 0
            let threshold = (config["threshold"] as? Double) ?? 0
            guard maxValue == nil || maxValue is NSNull, slope == 0, threshold == 0 else {
                throw ClipSafetyError.unsupported("keras model: ReLU '\(name)' has max_value, negative_slope or threshold set; only the plain ReLU is supported")
            }
            layer = .activation(.relu)
        case "Activation":
            layer = .activation(try activation(config["activation"], layer: name))
        default:  // Dropout: the identity at inference.
            layer = .dropout(rate: config["rate"] as? Double)
        }
        return NamedLayer(name: name, className: className, layer: layer)
    }

    static func activation(_ value: Any?, layer: String) throws -> Activation {
        guard let text = value as? String, let a = Activation(rawValue: text) else {
            throw ClipSafetyError.unsupported("keras model: layer '\(layer)' has activation \(value.map { "\($0)" } ?? "none"); supported: linear, relu, sigmoid")
        }
        return a
    }

    /// Each layer must take exactly the previous layer's output (a linear chain).
    static func checkChain(_ entry: [String: Any], name: String, previous: String?) throws {
        let inbound = entry["inbound_nodes"] as? [Any] ?? []
        guard let previous else {
            guard inbound.isEmpty else {
                throw ClipSafetyError.unsupported("keras model: first layer '\(name)' has inputs; expected an InputLayer")
            }
            return
        }
        guard inbound.count == 1, let call = inbound.first as? [Any], call.count == 1,
              let source = call.first as? [Any], source.first as? String == previous else {
            throw ClipSafetyError.unsupported("keras model: layer '\(name)' does not take exactly the output of '\(previous)'; only a chain of layers is supported")
        }
    }
}
