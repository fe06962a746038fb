import Foundation
import Runtime

/// Describes a Keras 3 `.keras` archive: a zip holding `config.json` (the architecture),
/// `metadata.json` and `model.weights.h5`. The zip and the HDF5 member are read in memory
/// (libzip, then libhdf5's file-image driver); nothing is extracted or executed.
///
/// `model.weights.h5` keeps a layer's weights in `layers/<tracking name>/vars/0, 1, …`, where
/// the tracking name is the layer's class in snake case, numbered per class in layer order
/// (`dense`, `dense_1`, …), not the layer's name. Keras 2.13–2.15 wrote
/// `_layer_checkpoint_dependencies` for `layers`.
enum KerasV3Reader {
    static func describe(_ bytes: Data, limits: ReaderLimits) throws -> FileDescription {
        let zip = try ZipArchive(bytes: bytes, limits: limits)
        guard let configData = try zip.read(named: "config.json") else {
            throw ClipSafetyError.malformed(".keras archive has no config.json")
        }
        var architecture = try KerasArchitecture(json: configData, what: ".keras config.json", limits: limits)
        if let metadata = try zip.read(named: "metadata.json") {
            guard try JSONValue(parsing: metadata, what: ".keras archive: metadata.json", limits: limits).object != nil else {
                throw ClipSafetyError.malformed(".keras archive: metadata.json is not a JSON object")
            }
        }
        guard let image = try zip.read(named: "model.weights.h5") else {
            throw ClipSafetyError.malformed(".keras archive has no model.weights.h5")
        }
        let file: HDF5File
        do {
            file = try HDF5File(image: image, limits: limits)
        } catch let e as ClipSafetyError {
            throw ClipSafetyError(e.kind, "model.weights.h5: \(e.message)")
        }
        let (root, rootPath) = try layersGroup(file)
        var tensors: [DescribedTensor] = []
        for (i, tracking) in trackingNames(architecture.layers).enumerated() {
            let layer = architecture.layers[i]
            guard let vars = try varsGroup(root, tracking: tracking, layer: layer) else {
                architecture.layers[i].notes.append("model.weights.h5 has no group layers/\(tracking)/vars")
                continue
            }
            var weights = try (0..<vars.memberCount()).map { k in
                try weight(file, vars: vars, index: k, name: "\(rootPath)/\(tracking)/vars/\(k)", layer: layer)
            }
            // Layers built from sublayers (LSTM's cell) and nested models (a Sequential inside
            // a Functional: `layers/sequential/layers/dense/vars`) keep their weights further down.
            for sub in try nestedVars(root, tracking: tracking) {
                let group = try root.group("\(tracking)/\(sub)")
                weights += try (0..<group.memberCount()).map { k in
                    try weight(file, vars: group, index: k, name: "\(rootPath)/\(tracking)/\(sub)/\(k)", layer: layer)
                }
            }
            tensors += weights
            architecture.layers[i].weights = weights.map(\.name)
            if !weights.isEmpty { architecture.layers[i].notes.append("weights in model.weights.h5 at layers/\(tracking)") }
        }
        return architecture.description(format: .kerasV3, tensors: tensors, notes: [
            "architecture from config.json, weights from model.weights.h5 (groups named by Keras' tracking names, not the layer names)",
        ])
    }

    /// The group holding one group per layer, and its name.
    static func layersGroup(_ file: HDF5File) throws -> (HDF5Group, String) {
        for name in ["layers", "_layer_checkpoint_dependencies"] where try file.root.exists(name) {
            return (try file.root.group(name), name)
        }
        throw ClipSafetyError.mismatch("model.weights.h5 has no 'layers' group")
    }

    /// Keras' tracking names of the layers, in order.
    static func trackingNames(_ layers: [DescribedLayer]) -> [String] {
        var used: [String: Int] = [:]
        return layers.map { layer in
            let base = snakeCase(layer.className)
            let n = used[base, default: -1] + 1
            used[base] = n
            return n == 0 ? base : "\(base)_\(n)"
        }
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

    /// Every `vars` group below a layer's own (an LSTM's `cell/vars`, a nested model's
    /// `layers/dense/vars`), relative to the layer's group, in Keras' order: a parent's before
    /// its sublayers', siblings by name with numbers compared as numbers (`dense_2` before
    /// `dense_10`). Found through the bounded walk of hard links (`HDF5Group.tree`).
    static func nestedVars(_ root: HDF5Group, tracking: String) throws -> [String] {
        let layer = try root.group(tracking)
        let prefix = layer.path + "/"
        let groups = try layer.tree().filter { $0.kind == .group && $0.path.hasPrefix(prefix) && $0.path.hasSuffix("/vars") }
        let relative = groups.map { String($0.path.dropFirst(prefix.count)) }.filter { $0 != "vars" }
        return relative.sorted { a, b in
            let x = a.split(separator: "/"), y = b.split(separator: "/")
            for (p, q) in zip(x, y) where p != q {
                if p == "vars" || q == "vars" { return p == "vars" }
                return p.compare(q, options: .numeric) == .orderedAscending
            }
            return x.count < y.count
        }
    }

    /// The layer's `vars` group, nil when the file has none. Recent Keras writes the layer's
    /// name as a `name` attribute there; when present it must be this layer's.
    static func varsGroup(_ root: HDF5Group, tracking: String, layer: DescribedLayer) throws -> HDF5Group? {
        guard try root.exists(tracking + "/vars") else { return nil }
        let vars = try root.group(tracking + "/vars")
        if let owner = try vars.stringAttribute("name"), owner != layer.name {
            throw ClipSafetyError.mismatch("model.weights.h5: group '\(vars.path)' belongs to layer '\(owner)', but Keras' tracking order assigns it to layer '\(layer.name)' (\(layer.className))")
        }
        return vars
    }

    static func weight(_ file: HDF5File, vars: HDF5Group, index: Int, name: String, layer: DescribedLayer) throws -> DescribedTensor {
        guard try vars.exists(String(index)) else {
            throw ClipSafetyError.mismatch("model.weights.h5: layer '\(layer.name)' (\(layer.className)) has no \(name), though its group holds \(index + 1) or more members")
        }
        return try HDF5DatasetReference(file: file, group: vars, path: String(index)).described(as: name)
    }
}
