import Foundation
import Runtime

/// Describes a legacy Keras HDF5 file (`model.save("x.h5")`): the architecture is the JSON
/// `model_config` attribute of the root group; the weights live under
/// `model_weights/<layer>/<weight name>` as the `layer_names` and `weight_names` attributes list
/// them, in the order Keras assigns them. Read in memory through libhdf5; nothing is executed.
enum KerasH5Reader {
    static func describe(_ bytes: Data, limits: ReaderLimits) throws -> FileDescription {
        let file = try HDF5File(image: bytes, limits: limits)
        guard let configText = try file.root.stringAttribute("model_config") else {
            return try weightsOnly(file)
        }
        var architecture = try KerasArchitecture(json: Data(configText.utf8), what: "Keras .h5 model_config", limits: limits)
        guard try file.root.exists("model_weights") else {
            throw ClipSafetyError.mismatch("Keras .h5 has a model_config but no 'model_weights' group")
        }
        let stored = try storedWeights(file, group: try file.root.group("model_weights"), prefix: "model_weights/", architecture: architecture)
        for i in architecture.layers.indices {
            architecture.layers[i].weights = stored.first { $0.layer == architecture.layers[i].name }?.tensors.map(\.name) ?? []
        }
        try checkOrder(stored.filter { !$0.tensors.isEmpty }.map(\.layer), architecture)
        return architecture.description(format: .kerasH5, tensors: stored.flatMap(\.tensors), notes: [
            "architecture from the model_config attribute, weights from model_weights/<layer name>",
        ])
    }

    /// Keras hands the stored weights to the layers that take weights by position, not by
    /// name: the layers with stored weights must be config layers, in config order, for the
    /// names to say where each weight goes.
    static func checkOrder(_ stored: [String], _ architecture: KerasArchitecture) throws {
        let configOrder = architecture.layers.map(\.name)
        for name in stored where !configOrder.contains(name) {
            throw ClipSafetyError.mismatch("Keras .h5: the file stores weights for '\(name)', which the config does not define")
        }
        let expected = configOrder.filter(stored.contains)
        guard stored == expected else {
            throw ClipSafetyError.mismatch("Keras .h5: layer_names orders the layers with weights as \(stored); the config has \(expected)")
        }
    }

    /// A file `save_weights` wrote: its weights when the root lists them, and no architecture.
    static func weightsOnly(_ file: HDF5File) throws -> FileDescription {
        guard try file.root.stringsAttribute("layer_names") != nil else {
            var d = FileDescription(format: .hdf5, notes: ["no 'model_config' or 'layer_names' attribute: not a Keras model or weights file"])
            d.objects = try file.root.tree()
            return d
        }
        let note = "no 'model_config' attribute: a weights-only file (save_weights), without an architecture"
        let stored = try storedWeights(file, group: file.root, prefix: "", architecture: nil)
        return FileDescription(format: .kerasH5, tensors: stored.flatMap(\.tensors), notes: [note])
    }

    /// Every layer group `layer_names` lists with the datasets its `weight_names` lists, in order.
    static func storedWeights(_ file: HDF5File, group: HDF5Group, prefix: String,
                              architecture: KerasArchitecture?) throws -> [(layer: String, tensors: [DescribedTensor])] {
        guard let layerNames = try group.stringsAttribute("layer_names") else {
            throw ClipSafetyError.malformed("Keras .h5: \(group.path) has no 'layer_names' attribute")
        }
        var seen = Set<String>()
        return try layerNames.map { layer in
            guard seen.insert(layer).inserted else { throw ClipSafetyError.malformed("Keras .h5: layer_names lists '\(layer)' twice") }
            let layerGroup = try group.group(layer)
            guard let weights = try layerGroup.stringsAttribute("weight_names") else {
                throw ClipSafetyError.malformed("Keras .h5: layer group '\(layer)' has no 'weight_names' attribute")
            }
            let label = architecture?.layers.first { $0.name == layer }.map { "layer '\(layer)' (\($0.className))" } ?? "layer group '\(layer)'"
            return (layer, try weights.map { weight in
                guard try layerGroup.exists(weight) else {
                    throw ClipSafetyError.mismatch("Keras .h5: \(label) lists '\(weight)' in weight_names, but the file has no such dataset")
                }
                return try HDF5DatasetReference(file: file, group: layerGroup, path: weight).described(as: "\(prefix)\(layer)/\(weight)")
            })
        }
    }
}
