import Converters
import Foundation
import Runtime

/// How `diff` pairs the tensors of two files (docs/INSPECT-JSON.md, `matching.method`):
///
/// 1. A source model (torch, Keras, SavedModel, `.npy`) against a native file: the source is
///    converted in memory and compared under the converter's names (Keras kernels transposed to
///    `[out, in]`, `norm.mean`, …): method `converter`.
/// 2. A native file or a source against an ONNX file clipsafety exported: that side is
///    (converted and) exported in memory and the initializers compared by name (the exporter's
///    own constants included): method `exporter`.
/// 3. Otherwise by name; when no name is shared and both files hold the same number of tensors
///    with equal shapes in file order (a Keras `.h5` and its `.keras`), by position: `order`.
///
/// A conversion that is impossible (not a head clipsafety recognises) falls back to 3 and says why.
enum DiffMatching {
    typealias Side = ModelDiff.Side

    static func align(_ a: Side, _ b: Side, options: ModelDiff.Options) throws -> (Side, Side, DiffReport.Matching) {
        var fallback: String?
        for (source, other, label) in [(a, b, "a"), (b, a, "b")] {
            guard let target = other.target, source.target != target else { continue }
            do {
                guard let converted = try transform(source, to: target, options: options) else { continue }
                let method: DiffReport.Method = target == .native ? .converter : .exporter
                let what = target == .native
                    ? "\(label.uppercased()) converted to the native format in memory; tensors matched by the converter's names"
                    : "\(label.uppercased()) \(source.target == .native ? "" : "converted and ")exported to ONNX in memory; initializers matched by name"
                let matching = DiffReport.Matching(method: method, transformedSide: label, note: what)
                return label == "a" ? (converted, b, matching) : (a, converted, matching)
            } catch let e as FileError where [.unsupported, .mismatch, .usage].contains(e.underlying.kind) {
                fallback = "\(label.uppercased()) does not convert (\(e.underlying.message))"
            }
        }
        let order = sharesNoName(a.description.tensors, b.description.tensors) && sameShapesInOrder(a.description.tensors, b.description.tensors)
        let byPosition = "no tensor name in common; paired by position (same count, equal shapes in file order)"
        let note = order ? [fallback, byPosition].compactMap { $0 }.joined(separator: "; ") : fallback.map { $0 + "; matched by name" }
        return (a, b, DiffReport.Matching(method: order ? .order : .names, transformedSide: nil, note: note))
    }

    /// `side` as the converter (and the exporter) would write it; nil when its format is not a
    /// model source that converts. Errors name the file.
    static func transform(_ side: Side, to target: ModelDiff.Target, options: ModelDiff.Options) throws -> Side? {
        let sources: Set<FileKind> = [.torchZip, .torchLegacy, .kerasH5, .kerasV3, .savedModelZip, .savedModelFolder, .npy]
        guard sources.contains(side.description.format) || (target == .onnxExport && side.description.format == .native) else { return nil }
        return try withFile(side.path) {
            let conversion = ConversionOptions(fileName: side.path, arch: options.arch, limits: options.limits)
            let model: NativeModel
            if let folder = side.folder {
                model = try ModelLoader.convert(folder: folder, described: side.description, options: conversion).model
            } else if let bytes = side.bytes {
                model = try ModelLoader.convert(bytes: bytes, described: side.description, options: conversion).model
            } else {
                return nil
            }
            switch target {
            case .native:
                let described = FileDescription(format: .native, tensors: model.tensors.map(DescribedTensor.init))
                return Side(path: side.path, description: described, bytes: nil)
            case .onnxExport:
                let onnx = try ONNXExport.serialized(model)
                return Side(path: side.path, description: try FormatRegistry.describe(onnx, limits: options.limits), bytes: nil)
            }
        }
    }

    /// Pairs in A's order, then the unpaired tensors of each side in file order. Names repeated
    /// within one file pair by their first occurrence.
    static func pairs(_ a: [DescribedTensor], _ b: [DescribedTensor], byOrder: Bool)
        -> (pairs: [(DescribedTensor, DescribedTensor)], onlyInA: [DescribedTensor], onlyInB: [DescribedTensor]) {
        if byOrder { return (Array(zip(a, b)), [], []) }
        let inB = Dictionary(b.enumerated().map { ($1.name, $0) }, uniquingKeysWith: { first, _ in first })
        var used = Set<Int>()
        var pairs: [(DescribedTensor, DescribedTensor)] = []
        var onlyInA: [DescribedTensor] = []
        for t in a {
            if let j = inB[t.name], !used.contains(j) {
                used.insert(j)
                pairs.append((t, b[j]))
            } else {
                onlyInA.append(t)
            }
        }
        let onlyInB = b.enumerated().filter { !used.contains($0.offset) }.map(\.element)
        return (pairs, onlyInA, onlyInB)
    }

    static func sharesNoName(_ a: [DescribedTensor], _ b: [DescribedTensor]) -> Bool {
        Set(a.map(\.name)).isDisjoint(with: b.map(\.name))
    }

    static func sameShapesInOrder(_ a: [DescribedTensor], _ b: [DescribedTensor]) -> Bool {
        !a.isEmpty && a.count == b.count && zip(a, b).allSatisfy { $0.shape == $1.shape }
    }
}
