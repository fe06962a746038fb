import Foundation
import Runtime

/// HDF5 files (Keras `.h5`, a `.keras` archive's `model.weights.h5`): every link and storage
/// that points outside the walked structures (`HDF5Preflight.survey`), then, for a Keras
/// `.h5`, the `model_config` and `training_config` attributes as Keras configs.
enum HDF5Scan {
    static func scan(_ bytes: Data, part: String?, readsKerasConfig: Bool, into c: inout ScanCollector, limits: ReaderLimits) {
        let survey: HDF5Preflight
        do {
            survey = try HDF5Preflight.survey(image: bytes, limits: limits)
        } catch {
            return c.fail(error, in: part)
        }
        for ref in survey.outsideReferences {
            let at = ScanLocation(part: (part.map { $0 + ": " } ?? "") + ref.path)
            c.add(kind(ref.kind), ref.target.isEmpty ? ref.path : ref.target, allowed: false, at: at, detail: detail(ref.kind))
        }
        guard readsKerasConfig else { return }
        guard survey.outsideReferences.isEmpty else {
            c.notes.append("model_config not read: the file points outside itself, and only self-contained files are opened")
            return
        }
        do {
            let file = try HDF5File(image: bytes, limits: limits)
            for attribute in ["model_config", "training_config"] {
                guard let text = try file.root.stringAttribute(attribute) else { continue }
                let where_ = (part.map { $0 + ": " } ?? "") + "attribute " + attribute
                KerasConfigScan.scan(data: Data(text.utf8), part: where_, revivedFromGraph: false, into: &c, limits: limits)
            }
        } catch {
            c.fail(error, in: part)
        }
    }

    static func kind(_ k: HDF5Preflight.OutsideReference.Kind) -> ScanFinding.Kind {
        switch k {
        case .softLink: return .softLink
        case .externalLink: return .externalLink
        case .userLink: return .userLink
        case .externalStorage: return .externalStorage
        case .virtualDataset: return .virtualDataset
        }
    }

    static func detail(_ k: HDF5Preflight.OutsideReference.Kind) -> String {
        switch k {
        case .softLink: return "a link by path inside the file; h5py follows it (a Keras file has none)"
        case .externalLink: return "h5py opens another file when the link is followed"
        case .userLink: return "a link type only a registered handler resolves"
        case .externalStorage: return "the dataset's bytes are read from other files"
        case .virtualDataset: return "the dataset's bytes are read from other files' datasets"
        }
    }
}
