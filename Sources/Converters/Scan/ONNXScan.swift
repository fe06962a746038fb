import Foundation
import Runtime

/// ONNX models: what onnxruntime (or any ONNX runtime) would load besides the standard
/// operators. Every node of the graph, its subgraphs (`If`, `Loop`, `Scan` bodies), the
/// model-local functions and the training graphs is checked: an operator outside the standard
/// domains runs from a custom-op library (native code the loader registers) unless a local
/// function of the file defines it. Every tensor whose data lives in an external file is
/// listed; a location that is absolute or leaves the model's folder is outside the allowlist
/// (docs/SCAN.md).
enum ONNXScan {
    /// The operator sets of the ONNX standard: the default domain, its long name, the
    /// traditional-ML operators and the training preview set.
    static let standardDomains: Set<String> = ["", "ai.onnx", "ai.onnx.ml", "ai.onnx.preview.training"]

    static func scan(_ bytes: Data, part: String?, into c: inout ScanCollector, limits: ReaderLimits) {
        let model: Onnx_ModelProto
        do {
            guard bytes.count <= ONNXReader.protobufLimit else {
                throw ClipSafetyError.limitExceeded("ONNX: \(bytes.count) bytes is above the protobuf limit")
            }
            model = try SavedModelProtobuf.decode(Onnx_ModelProto.self, from: bytes, what: "ONNX model", limits: limits)
        } catch {
            return c.fail(error, in: part)
        }
        guard model.hasGraph else { return c.fail("ONNX: the model has no graph", in: part) }
        var walk = Walk(localFunctions: Set(model.functions.map { Walk.key($0.domain, $0.name) }),
                        maxDepth: limits.maxDepth, prefix: part.map { "\($0): " } ?? "")
        walk.graph(model.graph, at: "graph", depth: 0, into: &c)
        for function in model.functions {
            walk.nodes(function.node, at: "function \(function.domain).\(function.name)", depth: 0, into: &c)
        }
        for (i, training) in model.trainingInfo.enumerated() {
            if training.hasInitialization { walk.graph(training.initialization, at: "training_info[\(i)].initialization", depth: 0, into: &c) }
            if training.hasAlgorithm { walk.graph(training.algorithm, at: "training_info[\(i)].algorithm", depth: 0, into: &c) }
        }
        if let problem = walk.problem { c.fail(problem, in: part) }
        c.notes.append("\(part.map { "\($0): " } ?? "")\(walk.nodeCount) nodes checked (subgraphs, \(model.functions.count) local functions and \(model.trainingInfo.count) training graphs included)")
    }

    /// One pass over every node and tensor, depth-bounded.
    struct Walk {
        let localFunctions: Set<String>
        let maxDepth: Int
        let prefix: String
        var nodeCount = 0
        var problem: String?

        static func key(_ domain: String, _ name: String) -> String { "\(domain)\u{0}\(name)" }

        mutating func graph(_ graph: Onnx_GraphProto, at place: String, depth: Int, into c: inout ScanCollector) {
            for tensor in graph.initializer { self.tensor(tensor, at: "\(place): initializer", into: &c) }
            for sparse in graph.sparseInitializer { self.sparse(sparse, at: "\(place): sparse initializer", into: &c) }
            nodes(graph.node, at: place, depth: depth, into: &c)
        }

        mutating func nodes(_ nodes: [Onnx_NodeProto], at place: String, depth: Int, into c: inout ScanCollector) {
            guard depth <= maxDepth else {
                if problem == nil { problem = "ONNX: subgraphs nest deeper than \(maxDepth)" }
                return
            }
            for node in nodes {
                nodeCount += 1
                let location = ScanLocation(part: "\(prefix)\(place): node '\(node.name)'")
                operatorFinding(node, at: location, into: &c)
                for attribute in node.attribute {
                    let here = "\(place): node '\(node.name)' attribute \(attribute.name)"
                    if attribute.hasT { tensor(attribute.t, at: here, into: &c) }
                    for t in attribute.tensors { tensor(t, at: here, into: &c) }
                    if attribute.hasSparseTensor { sparse(attribute.sparseTensor, at: here, into: &c) }
                    for s in attribute.sparseTensors { sparse(s, at: here, into: &c) }
                    if attribute.hasG { graph(attribute.g, at: here, depth: depth + 1, into: &c) }
                    for g in attribute.graphs { graph(g, at: here, depth: depth + 1, into: &c) }
                }
            }
        }

        /// Standard operators only compute (no finding); a call of one of the file's own
        /// functions is listed as allowed; anything else needs code from outside the file.
        func operatorFinding(_ node: Onnx_NodeProto, at location: ScanLocation, into c: inout ScanCollector) {
            let domain = node.domain
            if ONNXScan.standardDomains.contains(domain) { return }
            if localFunctions.contains(Walk.key(domain, node.opType)) {
                c.add(.op, "\(domain).\(node.opType)", allowed: true, at: location, detail: "a function defined in the file")
            } else {
                c.add(.op, "\(domain).\(node.opType)", allowed: false, at: location,
                      detail: "not a standard ONNX operator: the runtime runs it from a custom-op library registered by the loader (native code), or fails")
            }
        }

        func sparse(_ sparse: Onnx_SparseTensorProto, at place: String, into c: inout ScanCollector) {
            if sparse.hasValues { tensor(sparse.values, at: place, into: &c) }
            if sparse.hasIndices { tensor(sparse.indices, at: place, into: &c) }
        }

        /// A tensor kept in another file: the runtime opens `location` relative to the model's
        /// folder.
        func tensor(_ tensor: Onnx_TensorProto, at place: String, into c: inout ScanCollector) {
            guard tensor.dataLocation == .external || !tensor.externalData.isEmpty else { return }
            let location = tensor.externalData.first { $0.key == "location" }?.value ?? ""
            let escape = ONNXScan.escapesFolder(location)
            c.add(.externalData, location, allowed: escape == nil, at: ScanLocation(part: "\(prefix)\(place) '\(tensor.name)'"),
                  detail: escape ?? "read from the model's folder when the model is loaded")
        }
    }

    /// Why an external-data location is not a plain name inside the model's folder, or nil.
    static func escapesFolder(_ location: String) -> String? {
        if location.isEmpty { return "no location given" }
        if location.hasPrefix("/") || location.hasPrefix("~") { return "an absolute path: reads a file outside the model's folder" }
        if location.contains("\\") || location.contains("\u{0}") || location.contains(":") {
            return "a backslash, drive letter or NUL in the path"
        }
        if location.split(separator: "/", omittingEmptySubsequences: false).contains("..") {
            return "'..' in the path: reads a file outside the model's folder"
        }
        return nil
    }
}
