import Foundation
import Runtime

/// Converts a Keras 3 `.keras` archive: a zip holding `config.json` (the architecture),
/// `metadata.json` and `model.weights.h5`. The zip and the HDF5 member are read in memory
/// (libzip, then libhdf5's file-image driver); nothing is extracted or executed.
public enum KerasV3Converter {
    public static let sourceFormat = "keras-v3"

    /// The head of a `.keras` archive. (Interim: the Keras reader and the Keras chain
    /// recogniser replace this.)
    static func head(bytes: Data, limits: ReaderLimits) throws -> RecognisedHead {
        let zip = try ZipArchive(bytes: bytes, limits: limits)
        guard let configData = try zip.read(named: "config.json") else {
            throw ClipSafetyError.malformed(".keras archive has no config.json")
        }
        let config = try KerasModelConfig(json: configData)
        if let metadata = try zip.read(named: "metadata.json") {
            guard (try? JSONSerialization.jsonObject(with: metadata)) is [String: Any] else {
                throw ClipSafetyError.malformed(".keras archive: metadata.json is not a JSON object")
            }
        }
        guard let weightsImage = try zip.read(named: "model.weights.h5") else {
            throw ClipSafetyError.malformed(".keras archive has no model.weights.h5")
        }
        let file: HDF5File
        do {
            file = try HDF5File(image: weightsImage, limits: limits)
        } catch let e as ClipSafetyError {
            throw ClipSafetyError(e.kind, "model.weights.h5: \(e.message)")
        }
        let store = try KerasV3WeightStore(root: file.root)
        let graph = try KerasGraphBuilder.build(config, weights: store)
        var layers = graph.layers
        for (i, layer) in config.chain.enumerated() where i < layers.count && layer.ownsWeights {
            layers[i].notes.append("weights in model.weights.h5 at layers/\(layer.trackingName)")
        }
        return RecognisedHead(graph: graph.graph, tensors: graph.tensors, inputWidth: graph.inputWidth,
                              outputWidth: graph.outputWidth, layers: layers, notes: [
            "\(config.modelClass) Keras model: architecture from config.json, weights from model.weights.h5 (groups named by Keras' tracking names, not the layer names)",
        ])
    }
}

/// The weights of `model.weights.h5`: `layers/<tracking name>/vars/0, 1, …`, where the
/// tracking name is the layer's class in snake case, numbered per class in layer order
/// (`dense`, `dense_1`, …), not the layer's name. Keras 2.13–2.15 used
/// `_layer_checkpoint_dependencies` for `layers`.
struct KerasV3WeightStore: KerasWeightStore {
    let layers: HDF5Group

    init(root: HDF5Group) throws {
        if try root.exists("layers") {
            layers = try root.group("layers")
        } else if try root.exists("_layer_checkpoint_dependencies") {
            layers = try root.group("_layer_checkpoint_dependencies")
        } else {
            throw ClipSafetyError.mismatch("model.weights.h5 has no 'layers' group")
        }
    }

    /// The layer's `vars` group, nil when the file has none for it. Recent Keras writes the
    /// layer's name as a `name` attribute there; when present it must be this layer's.
    func vars(of layer: KerasLayer) throws -> HDF5Group? {
        guard try layers.exists(layer.trackingName + "/vars") else { return nil }
        let vars = try layers.group(layer.trackingName + "/vars")
        if let owner = try vars.stringAttribute("name"), owner != layer.name {
            throw ClipSafetyError.mismatch("model.weights.h5: group '\(vars.path)' belongs to layer '\(owner)', but Keras' tracking order assigns it to \(layer.label)")
        }
        return vars
    }

    func weightCount(for layer: KerasLayer) throws -> Int {
        guard let vars = try vars(of: layer) else {
            if layer.ownsWeights {
                throw ClipSafetyError.mismatch("model.weights.h5 has no group 'layers/\(layer.trackingName)/vars' for \(layer.label)")
            }
            return 0
        }
        return try vars.memberCount()
    }

    func weight(_ index: Int, role: String, of layer: KerasLayer) throws -> HDF5FloatArray {
        guard let vars = try vars(of: layer), try vars.exists(String(index)) else {
            throw ClipSafetyError.mismatch("model.weights.h5: \(layer.label) \(role) (layers/\(layer.trackingName)/vars/\(index)) is missing")
        }
        return try vars.floatDataset(String(index))
    }
}
