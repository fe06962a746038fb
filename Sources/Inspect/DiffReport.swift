import Converters
import Foundation
import Runtime

/// What `diff A B` found: tensors only in one file, matched tensors whose dtype, shape or
/// values differ, and stored layers and signatures added or removed. `--json` prints it as
/// documented in docs/INSPECT-JSON.md (schema `clipsafety-diff/1`); every key is present, an
/// absent or non-finite value is `null`.
public struct DiffReport: Encodable, Sendable {
    public static let schemaID = "clipsafety-diff/1"

    /// One compared file.
    public struct FileInfo: Encodable, Equatable, Sendable {
        public var path: String
        /// The `FileKind` raw value its bytes were identified as.
        public var format: String
        /// Tensors the file stores (before any conversion for matching).
        public var tensors: Int
    }

    /// How tensors of A were paired with tensors of B.
    public enum Method: String, Encodable, Sendable {
        /// Same name in both files.
        case names
        /// No name in common: paired by position, every pair of equal shape.
        case order
        /// One side is a source model, the other a native file: the source was converted in
        /// memory and its tensors compared under the names the converter gives them.
        case converter
        /// One side is an ONNX export clipsafety wrote: the other side was (converted and)
        /// exported in memory and the initializers compared by name.
        case exporter
    }

    public struct Matching: Encodable, Equatable, Sendable {
        public var method: Method
        /// `a` or `b`: the side converted or exported in memory; nil for names and order.
        public var transformedSide: String?
        /// For people: what was done, or why a conversion was not possible.
        public var note: String?

        enum CodingKeys: String, CodingKey {
            case method, note
            case transformedSide = "transformed_side"
        }

        public func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(method, forKey: .method)
            try c.encode(transformedSide, forKey: .transformedSide)
            try c.encode(note, forKey: .note)
        }
    }

    /// A tensor present in one file only.
    public struct Unmatched: Encodable, Equatable, Sendable {
        public var name: String
        public var dtype: String
        public var shape: [Int]

        public init(name: String, dtype: String, shape: [Int]) {
            self.name = name
            self.dtype = dtype
            self.shape = shape
        }
    }

    /// One tensor of A paired with one of B.
    public struct TensorDiff: Encodable, Equatable, Sendable {
        public var name: String
        /// B's name: the same as `name` except when matched by order.
        public var nameB: String
        public var dtypeA: String, dtypeB: String
        public var shapeA: [Int], shapeB: [Int]
        /// Element count, nil when the two differ (values are then not compared).
        public var elements: Int?
        /// False when the values could not be compared (different element counts, or an
        /// element type clipsafety does not compute with); `note` says why.
        public var compared: Bool
        /// Same dtype, same shape, every value within `--atol`.
        public var identical: Bool
        public var dtypeChanged: Bool
        public var shapeChanged: Bool
        /// Largest |a − b| over the pairs where neither value is NaN.
        public var maxAbsDiff: Double?
        /// Largest |a − b| / max(|a|, |b|) over the same pairs (0 where both are 0).
        public var maxRelDiff: Double?
        /// Multi-index (in A's shape) of the worst element: the first NaN-against-number
        /// element if any, else the first of the largest |a − b|; nil when nothing differs.
        public var worstIndex: [Int]?
        public var worstA: Double?
        public var worstB: Double?
        /// Elements with |a − b| > atol, NaN-against-number ones included.
        public var beyondAtol: Int?
        /// Elements where exactly one side is NaN (NaN against NaN counts as equal).
        public var nanMismatches: Int?
        public var note: String?

        enum CodingKeys: String, CodingKey {
            case name, elements, compared, identical, note
            case nameB = "name_b", dtypeA = "dtype_a", dtypeB = "dtype_b", shapeA = "shape_a", shapeB = "shape_b"
            case dtypeChanged = "dtype_changed", shapeChanged = "shape_changed"
            case maxAbsDiff = "max_abs_diff", maxRelDiff = "max_rel_diff", worstIndex = "worst_index"
            case worstA = "worst_a", worstB = "worst_b", beyondAtol = "beyond_atol", nanMismatches = "nan_mismatches"
        }

        public func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(name, forKey: .name)
            try c.encode(nameB, forKey: .nameB)
            try c.encode(dtypeA, forKey: .dtypeA)
            try c.encode(dtypeB, forKey: .dtypeB)
            try c.encode(shapeA, forKey: .shapeA)
            try c.encode(shapeB, forKey: .shapeB)
            try c.encode(elements, forKey: .elements)
            try c.encode(compared, forKey: .compared)
            try c.encode(identical, forKey: .identical)
            try c.encode(dtypeChanged, forKey: .dtypeChanged)
            try c.encode(shapeChanged, forKey: .shapeChanged)
            try c.encode(finite(maxAbsDiff), forKey: .maxAbsDiff)
            try c.encode(finite(maxRelDiff), forKey: .maxRelDiff)
            try c.encode(worstIndex, forKey: .worstIndex)
            try c.encode(finite(worstA), forKey: .worstA)
            try c.encode(finite(worstB), forKey: .worstB)
            try c.encode(beyondAtol, forKey: .beyondAtol)
            try c.encode(nanMismatches, forKey: .nanMismatches)
            try c.encode(note, forKey: .note)
        }
    }

    /// A stored layer (Keras layer, ONNX node) by name and class.
    public struct LayerEntry: Encodable, Equatable, Sendable {
        public var name: String
        public var className: String
        enum CodingKeys: String, CodingKey { case name, className = "class" }
    }

    /// A layer present in both files under one name whose class or inputs differ.
    public struct LayerChange: Encodable, Equatable, Sendable {
        public var name: String
        public var classA: String, classB: String
        public var inboundA: [String], inboundB: [String]
        enum CodingKeys: String, CodingKey {
            case name
            case classA = "class_a", classB = "class_b", inboundA = "inbound_a", inboundB = "inbound_b"
        }
    }

    /// Layers in both files, compared by name; nil in the report when either file stores none.
    public struct LayerDiff: Encodable, Equatable, Sendable {
        public var onlyInA: [LayerEntry]
        public var onlyInB: [LayerEntry]
        public var changed: [LayerChange]
        public var isEmpty: Bool { onlyInA.isEmpty && onlyInB.isEmpty && changed.isEmpty }
        enum CodingKeys: String, CodingKey { case changed, onlyInA = "only_in_a", onlyInB = "only_in_b" }
    }

    /// A signature whose input and output names match but whose types or shapes differ.
    public struct SignatureChange: Encodable, Equatable, Sendable {
        public var signature: String
        public var a: String
        public var b: String
    }

    /// Serving signatures (SavedModel, ONNX graph inputs and outputs) as
    /// `key: input → output`; nil in the report when either file stores none.
    public struct SignatureDiff: Encodable, Equatable, Sendable {
        public var onlyInA: [String]
        public var onlyInB: [String]
        public var changed: [SignatureChange]
        public var isEmpty: Bool { onlyInA.isEmpty && onlyInB.isEmpty && changed.isEmpty }
        enum CodingKeys: String, CodingKey { case changed, onlyInA = "only_in_a", onlyInB = "only_in_b" }
    }

    /// Counts for the one-line verdict.
    public struct Summary: Encodable, Equatable, Sendable {
        public var matched = 0
        public var identical = 0
        public var dtypeChanged = 0
        public var shapeChanged = 0
        /// Compared pairs with an element beyond `--atol`.
        public var valuesDiffer = 0
        public var notCompared = 0
        public var onlyInA = 0
        public var onlyInB = 0
        enum CodingKeys: String, CodingKey {
            case matched, identical
            case dtypeChanged = "dtype_changed", shapeChanged = "shape_changed", valuesDiffer = "values_differ"
            case notCompared = "not_compared", onlyInA = "only_in_a", onlyInB = "only_in_b"
        }
    }

    public var a: FileInfo
    public var b: FileInfo
    public var matching: Matching
    public var atol: Double
    public var onlyInA: [Unmatched]
    public var onlyInB: [Unmatched]
    /// Every matched pair, identical ones included, in A's order.
    public var tensors: [TensorDiff]
    public var layers: LayerDiff?
    public var signatures: SignatureDiff?

    public var summary: Summary {
        var s = Summary()
        s.matched = tensors.count
        s.identical = tensors.filter(\.identical).count
        s.dtypeChanged = tensors.filter(\.dtypeChanged).count
        s.shapeChanged = tensors.filter(\.shapeChanged).count
        s.valuesDiffer = tensors.filter { $0.compared && ($0.beyondAtol ?? 0) > 0 }.count
        s.notCompared = tensors.filter { !$0.compared }.count
        s.onlyInA = onlyInA.count
        s.onlyInB = onlyInB.count
        return s
    }

    /// True when nothing differs beyond `--atol`: the command exits 0.
    public var identical: Bool {
        onlyInA.isEmpty && onlyInB.isEmpty && tensors.allSatisfy(\.identical)
            && (layers?.isEmpty ?? true) && (signatures?.isEmpty ?? true)
    }

    enum CodingKeys: String, CodingKey {
        case schema, a, b, matching, atol, identical, summary, tensors, layers, signatures
        case onlyInA = "only_in_a", onlyInB = "only_in_b"
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(Self.schemaID, forKey: .schema)
        try c.encode(a, forKey: .a)
        try c.encode(b, forKey: .b)
        try c.encode(matching, forKey: .matching)
        try c.encode(atol, forKey: .atol)
        try c.encode(identical, forKey: .identical)
        try c.encode(summary, forKey: .summary)
        try c.encode(onlyInA, forKey: .onlyInA)
        try c.encode(onlyInB, forKey: .onlyInB)
        try c.encode(tensors, forKey: .tensors)
        try c.encode(layers, forKey: .layers)
        try c.encode(signatures, forKey: .signatures)
    }

    /// Sorted keys, two-space indentation, `/` not escaped (as `inspect --json`).
    public func json() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }
}

/// A number JSON can carry: nil for NaN and ±infinity.
func finite(_ x: Double?) -> Double? { x.flatMap { $0.isFinite ? $0 : nil } }
