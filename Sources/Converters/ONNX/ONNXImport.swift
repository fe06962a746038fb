import Foundation
import Runtime

/// Converts an ONNX model to the native format when its graph is one clipsafety runs: a chain
/// of Gemm (or MatMul + Add), Relu, Sigmoid, Sub/Div normalisation and ArgMax over one float
/// input (docs/ONNX.md, "Import"). Anything else is refused naming the first node it cannot
/// run. The card comes from the file's `clipsafety.*` metadata (our own exports, like a
/// native file's card) or from what the user states; it is never guessed.
enum ONNXImport {
    static func convert(bytes: Data, options: ConversionOptions) throws -> Conversion {
        let proto = try ONNXReader.decode(bytes, limits: options.limits)
        let graph = proto.graph
        let order = try ONNXGraphOrder.topological(graph)
        var chain = try ONNXChain(graph: graph, limits: options.limits)
        for index in order { try chain.apply(graph.node[index]) }
        let head = try chain.finish(outputs: graph.output.map(\.name))
        let sha = sha256Hex(bytes)
        var model: NativeModel
        if let stored = try storedIdentity(proto) {
            model = NativeModel(card: stored.card, source: stored.source, graph: head.graph, tensors: head.tensors)
            guard stored.card.embeddingDim == head.inputWidth, stored.card.outputColumns.count == head.outputWidth else {
                throw ClipSafetyError.mismatch("ONNX: the clipsafety card in its metadata says \(stored.card.embeddingDim) inputs and \(stored.card.outputColumns.count) outputs; the graph has \(head.inputWidth) and \(head.outputWidth)")
            }
            try CardPolicy.apply(options.stated, to: &model.card)
        } else {
            guard options.stated.task != nil || options.stated.labels != nil || Catalog.lookup(sha256: sha) != nil else {
                throw ClipSafetyError.usage("an ONNX file says nothing clipsafety can read about what its outputs mean; state it with --task (binary-nsfw, prompt-classifier, regression or unknown) and --labels")
            }
            let card = try CardPolicy.card(sha256: sha, fileName: options.fileName, inputWidth: head.inputWidth,
                                           outputWidth: head.outputWidth, endsWithSigmoid: head.graph.last == .sigmoid,
                                           stated: options.stated)
            let source = Provenance(originalFile: options.fileName, sha256: sha, sourceFormat: FileKind.onnx.rawValue)
            model = NativeModel(card: card, source: source, graph: head.graph, tensors: head.tensors)
        }
        try model.validate(limits: options.limits)
        let details = SourceDetails(layers: head.layers, signature: nil, notes: head.notes)
        return Conversion(model: model, details: details, kind: .onnx)
    }

    /// The card and provenance an ONNX file exported by clipsafety carries, nil when it has none.
    static func storedIdentity(_ proto: Onnx_ModelProto) throws -> (card: ModelCard, source: Provenance)? {
        let props = Dictionary(proto.metadataProps.map { ($0.key, $0.value) }, uniquingKeysWith: { first, _ in first })
        guard let format = props[ONNXExport.formatKey] else { return nil }
        guard format == NativeModel.formatTag || format.hasPrefix(NativeModel.formatTag + ".") else {
            throw ClipSafetyError.unsupported("ONNX: metadata '\(ONNXExport.formatKey)' is '\(format)'; this clipsafety reads \(NativeModel.formatTag)")
        }
        func decode<T: Decodable>(_: T.Type, _ key: String) throws -> T {
            guard let text = props[key], let value = try? JSONDecoder().decode(T.self, from: Data(text.utf8)) else {
                throw ClipSafetyError.malformed("ONNX: metadata '\(key)' is missing or not a valid clipsafety \(key.split(separator: ".").last ?? "")")
            }
            return value
        }
        return (try decode(ModelCard.self, ONNXExport.modelKey), try decode(Provenance.self, ONNXExport.sourceKey))
    }
}

/// The order nodes run in, refusing graphs that are not DAGs: a value produced twice, or a
/// cycle (named by one of its nodes).
enum ONNXGraphOrder {
    static func topological(_ graph: Onnx_GraphProto) throws -> [Int] {
        var producer: [String: Int] = [:]
        for (i, node) in graph.node.enumerated() {
            for output in node.output where !output.isEmpty {
                guard producer.updateValue(i, forKey: output) == nil else {
                    throw ClipSafetyError.malformed("ONNX: value '\(output)' is produced by two nodes")
                }
            }
        }
        // The usual case: the file lists nodes in topological order, as ONNX requires.
        let sorted = graph.node.enumerated().allSatisfy { i, node in node.input.allSatisfy { producer[$0].map { $0 < i } ?? true } }
        if sorted { return Array(graph.node.indices) }
        var waiting = [Int](repeating: 0, count: graph.node.count)
        var consumers = [[Int]](repeating: [], count: graph.node.count)
        for (i, node) in graph.node.enumerated() {
            for input in Set(node.input) where !input.isEmpty {
                if let p = producer[input] {
                    waiting[i] += 1
                    consumers[p].append(i)
                }
            }
        }
        // Kahn's algorithm, linear in nodes and edges.
        var order = (0..<graph.node.count).filter { waiting[$0] == 0 }
        var next = 0
        while next < order.count {
            for c in consumers[order[next]] {
                waiting[c] -= 1
                if waiting[c] == 0 { order.append(c) }
            }
            next += 1
        }
        if order.count < graph.node.count, let stuck = (0..<graph.node.count).first(where: { waiting[$0] > 0 }) {
            let node = graph.node[onCycle(from: stuck, graph: graph, producer: producer, waiting: waiting)]
            throw ClipSafetyError.malformed("ONNX: the graph has a cycle through node '\(node.name.isEmpty ? node.opType : node.name)'")
        }
        return order
    }

    /// A node on a cycle, found by walking back from a node that never became ready through
    /// inputs whose producers never did either: the first node met twice.
    static func onCycle(from start: Int, graph: Onnx_GraphProto, producer: [String: Int], waiting: [Int]) -> Int {
        var seen: Set<Int> = [], current = start
        while seen.insert(current).inserted {
            guard let previous = graph.node[current].input.compactMap({ producer[$0] }).first(where: { waiting[$0] > 0 }) else { break }
            current = previous
        }
        return current
    }
}
