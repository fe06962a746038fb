import Foundation
import Runtime

/// Heads stored as a Keras layer chain (`.h5` and `.keras` configs, a SavedModel's Keras
/// metadata): the one place Keras layers become native ops. Layer classes are matched against a
/// fixed list; anything else — Lambda layers (Python code), custom or foreign classes, nested
/// models, models that are not one chain — is refused by name. Nothing is imported or run.
enum KerasChainHead {
    /// The classes run as native ops (`MultiCategoryEncoding` too, where the file's graph holds
    /// its lookup tables).
    static let supportedClasses = ["InputLayer", "Normalization", "Dense", "ReLU", "Activation", "Dropout"]
    static let encodingClass = "MultiCategoryEncoding"

    /// The head of a description with a Keras model; nil when it has none.
    static func recognise(_ d: FileDescription) throws -> RecognisedHead? {
        guard let modelClass = d.modelClass else { return nil }
        guard KerasArchitecture.modelClasses.contains(modelClass) else {
            throw ClipSafetyError.unsupported("Keras model class '\(modelClass)' is not supported (only Sequential and Functional models; custom model classes are never imported)")
        }
        guard !d.layers.isEmpty else { throw ClipSafetyError.mismatch("Keras config has no layers") }
        for layer in d.layers { try checkNotLambda(layer) }
        for layer in d.layers { try checkNestedObjects(layer, tracedGraph: !d.signatures.isEmpty) }
        for layer in d.layers { try checkClass(layer, tracedGraph: !d.signatures.isEmpty) }
        guard let chain = d.chain else {
            throw ClipSafetyError.unsupported(d.chainProblem ?? "Keras config: the layers do not form one chain from input to output")
        }
        var builder = KerasChainBuilder(description: d)
        for name in chain {
            guard let layer = d.layers.first(where: { $0.name == name }) else {
                throw ClipSafetyError.malformed("Keras config: the chain names layer '\(name)', which the config does not define")
            }
            try builder.add(layer)
        }
        return try builder.head(notes: ["\(modelClass) Keras model: \(chain.count) layers in one chain, run as native ops"])
    }

    /// The class without autokeras' `Custom>` registration prefix.
    static func baseClass(_ layer: DescribedLayer) -> String {
        layer.className.hasPrefix("Custom>") ? String(layer.className.dropFirst("Custom>".count)) : layer.className
    }

    static func label(_ layer: DescribedLayer) -> String { "layer '\(layer.name)' (\(layer.className))" }

    /// Refuses Lambda layers as unsafe, wherever they stand: running the model would run their code.
    static func checkNotLambda(_ layer: DescribedLayer) throws {
        let cls = layer.className
        if cls == "Lambda" || cls == "TFOpLambda" || cls.hasSuffix(">Lambda") {
            throw ClipSafetyError.unsafe("Keras config: \(label(layer)) is a Lambda layer: it carries Python code, which clipsafety never runs")
        }
    }

    /// Refuses, as `scan` reports them, a TFSMLayer (it loads another SavedModel from a path)
    /// and any object nested in a layer's config (initializer, regularizer, constraint, …) that
    /// names a module outside Keras or a class registered by user code: loading the file in
    /// Keras would import them. clipsafety never would, but a file that asks is not converted.
    static func checkNestedObjects(_ layer: DescribedLayer, tracedGraph: Bool) throws {
        if layer.className == "TFSMLayer" {
            throw ClipSafetyError.unsafe("Keras config: \(label(layer)) is a TFSMLayer: it loads another SavedModel from a path")
        }
        var collector = ScanCollector()
        KerasConfigScan.walk(layer.config, path: "", part: "config", revivedFromGraph: tracedGraph, into: &collector)
        let refused = collector.findings.first { f in
            guard !f.allowed else { return false }
            switch f.kind {
            case .lambda, .layer, .moduleReference: return true
            case .customObject: return f.target.contains(">")
            default: return false
            }
        }
        if let f = refused {
            let path = f.locations.first?.part.map { " at \($0.dropFirst("config: ".count))" } ?? ""
            throw ClipSafetyError.unsafe("Keras config: \(label(layer)) holds \(f.target)\(path): Keras would import it by name; refused (nothing was imported)")
        }
    }

    /// Refuses a layer of a class clipsafety does not run.
    static func checkClass(_ layer: DescribedLayer, tracedGraph: Bool) throws {
        let cls = layer.className
        if KerasArchitecture.modelClasses.contains(cls) {
            throw ClipSafetyError.unsupported("Keras config: \(label(layer)) is a nested model; only flat models are supported")
        }
        if baseClass(layer) == encodingClass && tracedGraph { return }
        guard supportedClasses.contains(cls) else {
            throw ClipSafetyError.unsupported("Keras config: \(label(layer)) has a class clipsafety does not support (supported: \(supportedClasses.joined(separator: ", ")); \(encodingClass) only in a SavedModel, whose graph holds its lookups); custom layers are never imported")
        }
    }

    /// The ops of a built-in activation: a name, null (linear), or Keras 3's
    /// `{"module": "keras.activations", "config": "relu"}`.
    static func activation(_ value: JSONValue?, label: String) throws -> [GraphOp] {
        var name: String?
        switch value {
        case nil, .null?: name = "linear"
        case .string(let s)?: name = s
        case let object? where object.object != nil:
            guard let raw = object["class_name"]?.string, KerasArchitecture.className(of: object) == raw else {
                throw ClipSafetyError.unsupported("Keras config: the activation of \(label) is not a Keras one; custom code is never imported")
            }
            name = object["config"]?.string ?? raw
        default: name = nil
        }
        switch name {
        case "linear": return []
        case "relu": return [.relu]
        case "sigmoid": return [.sigmoid]
        default:
            throw ClipSafetyError.unsupported("Keras config: \(label) uses activation \(text(value)); only linear, relu and sigmoid are supported")
        }
    }

    /// A config value for a message.
    static func text(_ value: JSONValue?) -> String {
        switch value {
        case .string(let s)?: return s
        case .number(let n)?: return "\(n)"
        case .bool(let b)?: return "\(b)"
        case nil, .null?: return "null"
        default: return "a \(value?.array != nil ? "list" : "object")"
        }
    }

    /// The role a weight's name states (`kernel` in `d/kernel:0`, `bias` in
    /// `layer_with_weights-2/bias/.ATTRIBUTES/VARIABLE_VALUE`); nil for bare indices (`vars/0`).
    static func role(of name: String) -> String? {
        let suffix = "/.ATTRIBUTES/VARIABLE_VALUE"
        let path = name.hasSuffix(suffix) ? name.dropLast(suffix.count) : Substring(name)
        let last = path.split(separator: "/").last ?? path
        let base = last.split(separator: ":").first ?? last
        return base.allSatisfy(\.isNumber) ? nil : String(base)
    }
}
