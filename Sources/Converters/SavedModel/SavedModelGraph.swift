import Foundation
import Runtime

/// What `saved_model.pb` says about a SavedModel whatever wrote it (Keras 2, Keras 3's
/// `model.export`, plain TensorFlow): every signature of the served MetaGraph and how often
/// each op occurs in its graph and function library. Only the decoded protobuf is looked at;
/// no function is traced or called.
struct SavedModelGraph {
    /// Every signature but TensorFlow's internal `__saved_model_*` ones: `serving_default`
    /// first, then the others by key.
    var signatures: [ServingSignature]
    /// Op type → nodes of that type in the main graph and every library function (each
    /// function's body counted once), most frequent first, ties by name.
    var opHistogram: [(op: String, count: Int)]
    /// Nodes counted: main graph plus function bodies.
    var nodeCount: Int
    var notes: [String]

    /// Nodes counted at most; a larger graph is described with a histogram of its first nodes.
    static let maxCountedNodes = 4_000_000

    init(savedModel bytes: Data, limits: ReaderLimits) throws {
        let model = try SavedModelProtobuf.decode(Tensorflow_SavedModel.self, from: bytes, what: "saved_model.pb", limits: limits)
        guard let meta = Self.servedMetaGraph(model) else {
            throw ClipSafetyError.malformed("saved_model.pb: no MetaGraph")
        }
        var notes: [String] = []
        if model.metaGraphs.count > 1 {
            let tags = model.metaGraphs.map { "[" + $0.metaInfoDef.tags.joined(separator: ", ") + "]" }.joined(separator: ", ")
            notes.append("saved_model.pb holds \(model.metaGraphs.count) MetaGraphs (tags \(tags)); the one tagged 'serve' is described")
        }
        let (signatures, skipped) = Self.signatures(meta)
        if !skipped.isEmpty {
            notes.append("signatures without an input or an output, not listed: " + skipped.joined(separator: ", "))
        }
        let counted = Self.histogram(meta.graphDef)
        if counted.truncated {
            notes.append("op histogram of the first \(Self.maxCountedNodes) graph nodes only")
        }
        self.signatures = signatures
        self.opHistogram = counted.histogram
        self.nodeCount = counted.nodes
        self.notes = notes
    }

    /// The MetaGraph tagged `serve` (what `tf.saved_model.load` and Serving use), else the first.
    static func servedMetaGraph(_ model: Tensorflow_SavedModel) -> Tensorflow_MetaGraphDef? {
        model.metaGraphs.first { $0.metaInfoDef.tags.contains("serve") } ?? model.metaGraphs.first
    }

    /// The signatures in display order, and the keys of those that cannot be shown as a port
    /// pair (no inputs or no outputs).
    static func signatures(_ meta: Tensorflow_MetaGraphDef) -> (listed: [ServingSignature], skipped: [String]) {
        let keys = meta.signatureDef.keys.filter { !$0.hasPrefix("__saved_model") }
            .sorted { ($0 == "serving_default" ? 0 : 1, $0) < ($1 == "serving_default" ? 0 : 1, $1) }
        var listed: [ServingSignature] = []
        var skipped: [String] = []
        for key in keys {
            guard let def = meta.signatureDef[key] else { continue }
            let inputs = def.inputs.sorted { $0.key < $1.key }.map { port($0.key, $0.value) }
            let outputs = def.outputs.sorted { $0.key < $1.key }.map { port($0.key, $0.value) }
            guard let input = inputs.first, let output = outputs.first else {
                skipped.append(key)
                continue
            }
            var signature = ServingSignature(key: key, input: input, output: output)
            signature.inputs = inputs
            signature.outputs = outputs
            signature.method = def.methodName.isEmpty ? nil : def.methodName
            listed.append(signature)
        }
        return (listed, skipped)
    }

    /// A signature input or output: unknown dimensions (negative sizes) are nil, an unknown
    /// rank a nil shape.
    static func port(_ name: String, _ info: Tensorflow_TensorInfo) -> ServingSignature.Port {
        let shape: [Int?]? = info.tensorShape.unknownRank ? nil
            : info.tensorShape.dim.map { $0.size >= 0 && $0.size <= Int64(Int32.max) ? Int($0.size) : nil }
        return .init(name: name, tensor: info.name, dtype: info.dtype.tfName, shape: shape)
    }

    /// Counts the op of every node of the main graph and of every function body in the
    /// library, up to `maxCountedNodes` nodes.
    static func histogram(_ graph: Tensorflow_GraphDef) -> (histogram: [(op: String, count: Int)], nodes: Int, truncated: Bool) {
        var counts: [String: Int] = [:]
        var nodes = 0
        var truncated = false
        func count(_ list: [Tensorflow_NodeDef]) {
            for node in list {
                guard nodes < maxCountedNodes else {
                    truncated = true
                    return
                }
                counts[node.op, default: 0] += 1
                nodes += 1
            }
        }
        count(graph.node)
        for function in graph.library.function where !truncated { count(function.nodeDef) }
        let sorted = counts.sorted { ($1.value, $0.key) < ($0.value, $1.key) }.map { (op: $0.key, count: $0.value) }
        return (sorted, nodes, truncated)
    }

    /// `serving_default (keras_tensor: float32 (N, 6) → output_0: float32 (N, 1))`, for messages.
    static func summary(_ s: ServingSignature) -> String {
        func ports(_ list: [ServingSignature.Port]) -> String {
            list.map { p in
                let dims = p.shape.map { "(" + $0.map { $0.map(String.init) ?? "N" }.joined(separator: ", ") + ")" } ?? "(unknown rank)"
                return "\(p.name): \(p.dtype) \(dims)"
            }.joined(separator: ", ")
        }
        return "\(s.key) (\(ports(s.inputs)) → \(ports(s.outputs)))"
    }
}
