import Foundation
import Runtime
import SwiftProtobuf

/// ONNX model files (`.onnx`, a protobuf `ModelProto`), any producer's: decoded within the
/// reader limits and described as initializers, nodes, metadata and typed inputs and outputs.
/// Nothing the file names is opened: initializers kept in external files are refused.
enum ONNXReader {
    static let reader = FormatReader(kind: .onnx, matches: { looksLikeModel($0.bytes) },
                                     describe: { try describe($0, $1) })

    /// The largest message protobuf itself allows (2 GiB − 1).
    static let protobufLimit = Int(Int32.max)

    /// A ModelProto starts with `ir_version` (field 1, a small varint) followed by another
    /// ModelProto field: every ONNX writer emits fields in number order. Truncated or damaged
    /// files still match here, so that `describe` can say what is wrong with them.
    static func looksLikeModel(_ bytes: Data) -> Bool {
        var cursor = ByteCursor(bytes)
        guard cursor.readInteger(UInt8.self, endianness: .little) == 0x08,
              let version = cursor.readVarint(), (1...64).contains(version) else { return false }
        guard let tag = cursor.readVarint() else { return false }
        let known: Set<UInt64> = [2 << 3 | 2, 3 << 3 | 2, 4 << 3 | 2, 5 << 3 | 0, 6 << 3 | 2, 7 << 3 | 2, 8 << 3 | 2,
                                  14 << 3 | 2, 20 << 3 | 2, 25 << 3 | 2]
        return known.contains(tag)
    }

    /// The model, decoded and checked: protobuf size and nesting within limits, every
    /// initializer (subgraphs' included) holding exactly the bytes its shape declares, no
    /// external data.
    static func decode(_ bytes: Data, limits: ReaderLimits) throws -> Onnx_ModelProto {
        guard bytes.count <= Swift.min(protobufLimit, limits.maxFileBytes) else {
            throw ClipSafetyError.limitExceeded("ONNX: \(bytes.count) bytes is above the protobuf limit of \(Swift.min(protobufLimit, limits.maxFileBytes))")
        }
        let model = try SavedModelProtobuf.decode(Onnx_ModelProto.self, from: bytes, what: "ONNX model", limits: limits)
        guard model.hasGraph else { throw ClipSafetyError.malformed("ONNX: the model has no graph") }
        guard !model.opsetImport.isEmpty else { throw ClipSafetyError.malformed("ONNX: the model imports no operator set") }
        var budget = ONNXGraphWalk(limits: limits)
        try budget.check(model.graph, depth: 0)
        return model
    }

    static func describe(_ bytes: Data, _ limits: ReaderLimits) throws -> FileDescription {
        let model = try decode(bytes, limits: limits)
        let graph = model.graph
        let constant = Set(graph.initializer.map(\.name))
        let inputs = graph.input.filter { !constant.contains($0.name) }
        var description = FileDescription(format: .onnx)
        description.tensors = graph.initializer.map { proto in
            DescribedTensor(name: proto.name, dtype: ONNXTensorData.dtypeName(proto.dataType), shape: proto.dims.map { Int($0) },
                            read: { try ONNXTensorData.tensor(proto, limits: limits) })
        }
        description.layers = graph.node.enumerated().map { index, node in layer(node, index: index, constant: constant) }
        description.modelClass = "ONNX graph '\(graph.name)'"
        description.inputWidth = inputs.first.flatMap { ONNXTypes.shape($0.type)?.last ?? nil }
        description.signatures = signatures(graph, inputs: inputs)
        description.metadata = metadata(model)
        description.notes = notes(model, inputs: inputs)
        return description
    }

    /// A node as a layer: its op type (domain-qualified outside the standard domain), its
    /// inputs, attributes as JSON, and which inputs are initializers.
    static func layer(_ node: Onnx_NodeProto, index: Int, constant: Set<String>) -> DescribedLayer {
        let name = node.name.isEmpty ? "\(node.opType)_\(index)" : node.name
        var config: [String: JSONValue] = [:]
        for attribute in node.attribute { config[attribute.name] = ONNXTypes.json(attribute) }
        return DescribedLayer(name: name, className: ONNXTypes.qualifiedOp(node), inbound: node.input,
                              config: .object(config), weights: node.input.filter(constant.contains),
                              notes: ["outputs: " + node.output.joined(separator: ", ")])
    }

    /// One signature per graph output, each with the (first) graph input.
    static func signatures(_ graph: Onnx_GraphProto, inputs: [Onnx_ValueInfoProto]) -> [ServingSignature] {
        guard let input = inputs.first else { return [] }
        return graph.output.map { output in
            ServingSignature(key: "graph", input: ONNXTypes.port(input), output: ONNXTypes.port(output))
        }
    }

    static func metadata(_ model: Onnx_ModelProto) -> [(key: String, value: String)] {
        var entries: [(key: String, value: String)] = model.metadataProps.map { ($0.key, $0.value) }
        entries.append(("ir_version", String(model.irVersion)))
        entries.append(("opset_import", model.opsetImport.map { "\($0.domain.isEmpty ? "ai.onnx" : $0.domain) \($0.version)" }.joined(separator: ", ")))
        if model.hasProducerName { entries.append(("producer", [model.producerName, model.producerVersion].filter { !$0.isEmpty }.joined(separator: " "))) }
        if model.hasDomain { entries.append(("domain", model.domain)) }
        if model.hasModelVersion { entries.append(("model_version", String(model.modelVersion))) }
        if model.hasDocString { entries.append(("doc_string", model.docString)) }
        return entries
    }

    /// Inputs and outputs with their types, the op histogram, the initializers' total size.
    static func notes(_ model: Onnx_ModelProto, inputs: [Onnx_ValueInfoProto]) -> [String] {
        let graph = model.graph
        var notes = inputs.map { "input \($0.name): \(ONNXTypes.typeText($0.type))" }
        notes += graph.output.map { "output \($0.name): \(ONNXTypes.typeText($0.type))" }
        var histogram: [String: Int] = [:]
        var total = 0
        ONNXGraphWalk.forEachNode(graph, depth: 0) { node in
            histogram[ONNXTypes.qualifiedOp(node), default: 0] += 1
            total += 1
        }
        let ops = histogram.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }
        notes.append("\(total) nodes (subgraphs included): " + ops.map { "\($0.key) ×\($0.value)" }.joined(separator: ", "))
        let bytes = graph.initializer.reduce(0) { $0 + ONNXTensorData.storedBytes($1) }
        notes.append("\(graph.initializer.count) initializers, \(bytes) bytes of data")
        return notes
    }
}

/// Bounded walks over a graph and its subgraphs (attributes of `If`, `Loop`, `Scan`).
struct ONNXGraphWalk {
    let limits: ReaderLimits
    /// Elements declared by all initializers so far, against the uncompressed-bytes budget.
    var declaredBytes = 0

    init(limits: ReaderLimits) { self.limits = limits }

    /// Checks every initializer (and tensor attribute) of `graph` and its subgraphs.
    mutating func check(_ graph: Onnx_GraphProto, depth: Int) throws {
        guard depth <= limits.maxDepth else {
            throw ClipSafetyError.limitExceeded("ONNX: subgraphs nest deeper than \(limits.maxDepth)")
        }
        for tensor in graph.initializer { try account(tensor) }
        for node in graph.node {
            for attribute in node.attribute {
                if attribute.hasT { try account(attribute.t) }
                for tensor in attribute.tensors { try account(tensor) }
                if attribute.hasG { try check(attribute.g, depth: depth + 1) }
                for sub in attribute.graphs { try check(sub, depth: depth + 1) }
            }
        }
    }

    private mutating func account(_ tensor: Onnx_TensorProto) throws {
        let bytes = try ONNXTensorData.check(tensor, limits: limits)
        declaredBytes += bytes
        guard declaredBytes <= limits.maxUncompressedBytes else {
            throw ClipSafetyError.limitExceeded("ONNX: the initializers hold more than \(limits.maxUncompressedBytes) bytes (raise with --max-uncompressed-bytes)")
        }
    }

    /// Calls `body` for every node of `graph` and its subgraphs (already depth-checked by
    /// `check`; the depth guard stays for safety).
    static func forEachNode(_ graph: Onnx_GraphProto, depth: Int, _ body: (Onnx_NodeProto) -> Void) {
        guard depth <= 1000 else { return }
        for node in graph.node {
            body(node)
            for attribute in node.attribute {
                if attribute.hasG { forEachNode(attribute.g, depth: depth + 1, body) }
                for sub in attribute.graphs { forEachNode(sub, depth: depth + 1, body) }
            }
        }
    }
}
