import Foundation
import Runtime

/// Converts a legacy Keras HDF5 model (`model.save("x.h5")`): the architecture is the JSON
/// `model_config` attribute of the root group, the weights live under
/// `model_weights/<layer>/<weight name>` as listed by the `layer_names` and `weight_names`
/// attributes. Read in memory through libhdf5; nothing in the file is executed.
public enum KerasH5Converter {
    public static let sourceFormat = "keras-h5"

    /// The head of a Keras `.h5` model. (Interim: the Keras reader and the Keras chain
    /// recogniser replace this.)
    static func head(bytes: Data, limits: ReaderLimits) throws -> RecognisedHead {
        let file = try HDF5File(image: bytes, limits: limits)
        guard let configText = try file.root.stringAttribute("model_config") else {
            throw ClipSafetyError.unsupported("Keras .h5 without a 'model_config' attribute: a weights-only file (save_weights) has no architecture to convert")
        }
        let config = try KerasModelConfig(json: Data(configText.utf8))
        guard try file.root.exists("model_weights") else {
            throw ClipSafetyError.mismatch("Keras .h5 has a model_config but no 'model_weights' group")
        }
        let store = try KerasH5WeightStore(group: try file.root.group("model_weights"), config: config)
        let graph = try KerasGraphBuilder.build(config, weights: store)
        return RecognisedHead(graph: graph.graph, tensors: graph.tensors, inputWidth: graph.inputWidth,
                              outputWidth: graph.outputWidth, layers: graph.layers, notes: [
            "\(config.modelClass) Keras model: architecture from the model_config attribute, weights from model_weights/<layer name>",
        ])
    }
}

/// The weights of a legacy `.h5`: `layer_names` lists the layer groups; each group's
/// `weight_names` lists its datasets, in the order Keras assigns them (kernel, bias; mean,
/// variance, count).
struct KerasH5WeightStore: KerasWeightStore {
    let group: HDF5Group
    /// Weight dataset paths (relative to the layer group) by layer name.
    let weightNames: [String: [String]]

    init(group: HDF5Group, config: KerasModelConfig) throws {
        self.group = group
        guard let layerNames = try group.stringsAttribute("layer_names") else {
            throw ClipSafetyError.malformed("Keras .h5: model_weights has no 'layer_names' attribute")
        }
        var names: [String: [String]] = [:]
        for layer in layerNames {
            guard names[layer] == nil else { throw ClipSafetyError.malformed("Keras .h5: layer_names lists '\(layer)' twice") }
            let layerGroup = try group.group(layer)
            guard let weights = try layerGroup.stringsAttribute("weight_names") else {
                throw ClipSafetyError.malformed("Keras .h5: layer group '\(layer)' has no 'weight_names' attribute")
            }
            names[layer] = weights
        }
        weightNames = names

        // Keras assigns stored weights to layers by position: the layers with weights in the
        // file, in layer_names order, must be the config's layers that own weights.
        let stored = layerNames.filter { !(names[$0] ?? []).isEmpty }
        let expected = config.layers.filter(\.ownsWeights)
        for layer in expected where !stored.contains(layer.name) {
            throw ClipSafetyError.mismatch("Keras .h5: \(layer.label) has no stored weights (missing from layer_names, or its weight_names is empty)")
        }
        let expectedNames = expected.map(\.name)
        for name in stored where !expectedNames.contains(name) {
            let what = config.layers.first { $0.name == name }.map(\.label) ?? "'\(name)', which the config does not define,"
            throw ClipSafetyError.mismatch("Keras .h5: the file stores weights for \(what) but that layer takes none")
        }
        guard stored == expectedNames else {
            throw ClipSafetyError.mismatch("Keras .h5: layer_names orders the layers with weights as \(stored); the config has \(expectedNames)")
        }
    }

    func weightCount(for layer: KerasLayer) throws -> Int {
        weightNames[layer.name]?.count ?? 0
    }

    func weight(_ index: Int, role: String, of layer: KerasLayer) throws -> HDF5FloatArray {
        guard let names = weightNames[layer.name], index >= 0, index < names.count else {
            throw ClipSafetyError.mismatch("Keras .h5: \(layer.label) has no stored \(role)")
        }
        let name = names[index]
        // `dense_0/kernel` (Keras 3) or `dense_0/kernel:0` (Keras 2): the last component names the role.
        let last = name.split(separator: "/").last.map(String.init) ?? name
        let base = last.split(separator: ":").first.map(String.init) ?? last
        guard base == role else {
            throw ClipSafetyError.mismatch("Keras .h5: \(layer.label) weight \(index) is '\(name)', where Keras expects its \(role)")
        }
        let layerGroup = try group.group(layer.name)
        guard try layerGroup.exists(name) else {
            throw ClipSafetyError.mismatch("Keras .h5: \(layer.label) \(role) '\(name)' is listed in weight_names but missing from the file")
        }
        return try layerGroup.floatDataset(name)
    }
}
