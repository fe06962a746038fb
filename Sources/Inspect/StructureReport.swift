import Converters
import Foundation
import Runtime

/// What a format reader found in a file, whatever the file is: the `structure` object of
/// `inspect --json` (docs/INSPECT-JSON.md). Built from a `FileDescription` alone, so it
/// describes files clipsafety cannot convert (a CNN, a training checkpoint, an HDF5 data
/// file) as well as its own heads. Nothing is read beyond headers.
public struct StructureReport: Encodable, Sendable {
    public var modelClass: String?
    public var inputWidth: Int?
    public var chain: [String]?
    public var chainProblem: String?
    public var layers: [Layer]
    /// Keras' `count_params()` where the file stores layers (every weight of every layer);
    /// otherwise the elements of every stored tensor.
    public var totalParameters: Int
    public var tensorGroups: [Group]
    public var totals: Totals
    public var signatures: [ServingSignature]
    public var ops: [OpCount]
    public var metadata: [Entry]
    public var objects: [Object]
    public var notes: [String]
    /// The `--arch` of linear steps the state dict's tensors form, when they form one.
    public var suggestedArch: String?

    public struct Layer: Encodable, Equatable, Sendable {
        public var name: String
        public var className: String
        public var inbound: [String]
        public var outputShape: [Int?]?
        public var weights: [String]
        public var parameters: Int
        public var notes: [String]

        enum CodingKeys: String, CodingKey {
            case name, inbound, weights, parameters, notes
            case className = "class"
            case outputShape = "output_shape"
        }

        public func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(name, forKey: .name)
            try c.encode(className, forKey: .className)
            try c.encode(inbound, forKey: .inbound)
            try c.encode(outputShape, forKey: .outputShape)
            try c.encode(weights, forKey: .weights)
            try c.encode(parameters, forKey: .parameters)
            try c.encode(notes, forKey: .notes)
        }
    }

    /// Tensors sharing a module prefix (`layers.0`, `model_weights/dense`).
    public struct Group: Encodable, Equatable, Sendable {
        public var prefix: String
        public var tensors: Int
        public var elements: Int
    }

    public struct Totals: Encodable, Equatable, Sendable {
        public var tensors: Int
        public var elements: Int
        /// Nil when a tensor's element type has no known size.
        public var bytes: Int?
        public var byDType: [DTypeTotal]

        enum CodingKeys: String, CodingKey {
            case tensors, elements, bytes
            case byDType = "by_dtype"
        }

        public func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(tensors, forKey: .tensors)
            try c.encode(elements, forKey: .elements)
            try c.encode(bytes, forKey: .bytes)
            try c.encode(byDType, forKey: .byDType)
        }
    }

    public struct DTypeTotal: Encodable, Equatable, Sendable {
        public var dtype: String
        public var tensors: Int
        public var elements: Int
        public var bytes: Int?

        public func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(dtype, forKey: .dtype)
            try c.encode(tensors, forKey: .tensors)
            try c.encode(elements, forKey: .elements)
            try c.encode(bytes, forKey: .bytes)
        }

        enum CodingKeys: String, CodingKey { case dtype, tensors, elements, bytes }
    }

    public struct OpCount: Encodable, Equatable, Sendable {
        public var op: String
        public var count: Int
    }

    public struct Entry: Encodable, Equatable, Sendable {
        public var key: String
        public var value: String
    }

    public struct Object: Encodable, Equatable, Sendable {
        public var path: String
        public var kind: String
        public var dtype: String?
        public var shape: [Int]?
        public var chunks: [Int]?
        public var filters: [String]
        public var attributes: [Attribute]
        public var notes: [String]

        public func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(path, forKey: .path)
            try c.encode(kind, forKey: .kind)
            try c.encode(dtype, forKey: .dtype)
            try c.encode(shape, forKey: .shape)
            try c.encode(chunks, forKey: .chunks)
            try c.encode(filters, forKey: .filters)
            try c.encode(attributes, forKey: .attributes)
            try c.encode(notes, forKey: .notes)
        }

        enum CodingKeys: String, CodingKey { case path, kind, dtype, shape, chunks, filters, attributes, notes }
    }

    public struct Attribute: Encodable, Equatable, Sendable {
        public var name: String
        public var dtype: String
        public var shape: [Int]
        public var value: String?

        public func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(name, forKey: .name)
            try c.encode(dtype, forKey: .dtype)
            try c.encode(shape, forKey: .shape)
            try c.encode(value, forKey: .value)
        }

        enum CodingKeys: String, CodingKey { case name, dtype, shape, value }
    }

    enum CodingKeys: String, CodingKey {
        case chain, layers, totals, signatures, ops, metadata, objects, notes
        case modelClass = "model_class"
        case inputWidth = "input_width"
        case chainProblem = "chain_problem"
        case totalParameters = "total_parameters"
        case tensorGroups = "tensor_groups"
        case suggestedArch = "suggested_arch"
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(modelClass, forKey: .modelClass)
        try c.encode(inputWidth, forKey: .inputWidth)
        try c.encode(chain, forKey: .chain)
        try c.encode(chainProblem, forKey: .chainProblem)
        try c.encode(layers, forKey: .layers)
        try c.encode(totalParameters, forKey: .totalParameters)
        try c.encode(tensorGroups, forKey: .tensorGroups)
        try c.encode(totals, forKey: .totals)
        try c.encode(signatures, forKey: .signatures)
        try c.encode(ops, forKey: .ops)
        try c.encode(metadata, forKey: .metadata)
        try c.encode(objects, forKey: .objects)
        try c.encode(notes, forKey: .notes)
        try c.encode(suggestedArch, forKey: .suggestedArch)
    }
}

extension StructureReport {
    /// The report of a description; no tensor data is read.
    public init(_ d: FileDescription) {
        let counts = Dictionary(d.tensors.map { ($0.name, $0.elementCount ?? 0) }, uniquingKeysWith: { a, _ in a })
        modelClass = d.modelClass
        inputWidth = d.inputWidth
        chain = d.chain
        chainProblem = d.chainProblem
        layers = d.layers.map { layer in
            Layer(name: layer.name, className: layer.className, inbound: layer.inbound,
                  outputShape: Self.outputShape(layer), weights: layer.weights,
                  parameters: layer.weights.reduce(0) { $0 + (counts[$1] ?? 0) }, notes: layer.notes)
        }
        let allElements = d.tensors.reduce(0) { $0 + ($1.elementCount ?? 0) }
        totalParameters = layers.isEmpty ? allElements : layers.reduce(0) { $0 + $1.parameters }
        tensorGroups = Self.groups(d.tensors)
        totals = Self.totals(d.tensors)
        signatures = d.signatures
        ops = d.opHistogram.map { OpCount(op: $0.op, count: $0.count) }
        metadata = d.metadata.map { Entry(key: $0.key, value: $0.value) }
        objects = d.objects.map { o in
            Object(path: o.path, kind: o.kind.rawValue, dtype: o.dtype, shape: o.shape, chunks: o.chunks, filters: o.filters,
                   attributes: o.attributes.map { Attribute(name: $0.name, dtype: $0.dtype, shape: $0.shape, value: $0.value) },
                   notes: o.notes)
        }
        notes = d.notes
        suggestedArch = d.layers.isEmpty && d.objects.isEmpty ? LinearChain.suggestedSpec(d)?.text : nil
    }

    /// The output shape a Keras config states: an InputLayer's batch shape; nil otherwise
    /// (configs do not store the shapes layers compute).
    static func outputShape(_ layer: DescribedLayer) -> [Int?]? {
        guard layer.className == "InputLayer", let config = layer.config.object else { return nil }
        guard let dims = (config["batch_shape"] ?? config["batch_input_shape"])?.array else { return nil }
        return dims.map { $0.number.flatMap { $0 >= 0 && $0 < 1e15 ? Int($0) : nil } }
    }

    /// Tensors by module prefix (the name without its last `.` or `/` component), in file order.
    static func groups(_ tensors: [DescribedTensor]) -> [Group] {
        var order: [String] = []
        var byPrefix: [String: Group] = [:]
        for t in tensors {
            let prefix = modulePrefix(t.name)
            if byPrefix[prefix] == nil {
                order.append(prefix)
                byPrefix[prefix] = Group(prefix: prefix, tensors: 0, elements: 0)
            }
            byPrefix[prefix]?.tensors += 1
            byPrefix[prefix]?.elements += t.elementCount ?? 0
        }
        return order.compactMap { byPrefix[$0] }
    }

    /// TensorFlow checkpoints store a variable's value under `<object path>/.ATTRIBUTES/VARIABLE_VALUE`:
    /// the object path is the tensor's name for grouping.
    static let checkpointValueSuffix = "/.ATTRIBUTES/VARIABLE_VALUE"

    static func modulePrefix(_ name: String) -> String {
        let name = name.hasSuffix(checkpointValueSuffix) ? String(name.dropLast(checkpointValueSuffix.count)) : name
        guard let cut = name.lastIndex(where: { $0 == "." || $0 == "/" }) else { return "" }
        return String(name[..<cut])
    }

    static func totals(_ tensors: [DescribedTensor]) -> Totals {
        var order: [String] = []
        var byDType: [String: DTypeTotal] = [:]
        for t in tensors {
            if byDType[t.dtype] == nil {
                order.append(t.dtype)
                byDType[t.dtype] = DTypeTotal(dtype: t.dtype, tensors: 0, elements: 0, bytes: 0)
            }
            let n = t.elementCount ?? 0
            guard var row = byDType[t.dtype] else { continue }
            row.tensors += 1
            row.elements += n
            let size = elementSize(t.dtype)
            row.bytes = row.bytes.flatMap { b in size.map { b + n * $0 } }
            byDType[t.dtype] = row
        }
        let rows = order.compactMap { byDType[$0] }
        let bytes = rows.reduce(Int?(0)) { acc, r in acc.flatMap { a in r.bytes.map { a + $0 } } }
        return Totals(tensors: tensors.count, elements: rows.reduce(0) { $0 + $1.elements }, bytes: bytes, byDType: rows)
    }

    /// Bytes per element of a dtype name: the runtime's types, and the safetensors names it does
    /// not compute with (F8, unsigned, complex).
    static func elementSize(_ dtype: String) -> Int? {
        if let d = DType(rawValue: dtype) { return d.byteSize }
        return ["F8_E4M3": 1, "F8_E5M2": 1, "F8_E8M0": 1, "U16": 2, "U32": 4, "U64": 8, "C64": 8, "C128": 16][dtype]
    }
}
